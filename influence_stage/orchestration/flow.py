"""The cleaning flow: the ``CLEAN`` plan (``influence_stage.pipeline.clean``) on the Prefect executor.

load → validate input → featurize → fit ``θ*`` → auto scale → members (``chains_per_task`` chains per
task, trained together; all in one task by default, one per task on Dask) → loss matrix (row-shard
tasks into a ``LossStore`` under ``cache_dir/runs``) → decide → apply → validate output → summary →
(with ground truth: baseline self-influence for the report's distributional-bias figure) → publish
(+ report, artifacts). The step order is the plan's; this module holds the flow's parameters, its
failure handling and its artifacts.

Expensive results (``θ*``, the scale probe, each group of chains) are cached by content: the key is
the dataset fingerprint plus the fingerprint of the configuration fields that affect them
(``config.clean.config_fingerprint``, which includes the content of a checkpoint or ``hf:`` folder
named by ``clean.model``), and results are persisted under ``cache_dir``; the loss matrix is kept
on disk under ``cache_dir/runs`` with a done-flag per member. The chain and loss-shard tasks read
their rows from the run folder (``stage.shards``), never from their arguments. A re-run
with the same inputs, or a run restarted after a crash, reuses every finished piece and gives
identical scores. Nothing is published unless the output suite passes.

Run it: ``influence-stage clean --config flows/digits.yaml`` or ``python flows/clean_dataset.py``.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from pydantic import BaseModel, ConfigDict, Field

from influence_stage.config.clean import CleanConfig
from influence_stage.orchestration.cache_folder import mark_cache_dir
from influence_stage.orchestration.notify import notify_failure
from influence_stage.orchestration.prefect_executor import PrefectExecutor, transient_io
from influence_stage.pipeline import CLEAN, RunContext
from influence_stage.pipeline.publishing import bias_scores, output_fingerprint, roles_change
from influence_stage.stage.gates import GATE_MAX_DROP_FRACTION

logger = logging.getLogger(__name__)

class FlowConfig(BaseModel):
    """Parameters of the cleaning flow (also what ``--config`` YAML files hold)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(description="Hub id, local file or folder, or save_to_disk folder.")
    name: str = Field(description="Name of the published dataset: data/published/<name>/<version>/.")
    clean: CleanConfig = Field(default_factory=CleanConfig, description="What to score and how to decide.")
    publish_root: str = Field("data/published", description="Root folder of published versions.")
    cache_dir: str = Field("runs/cache", description="Where cached θ*, members and loss matrices live.")
    max_drop_fraction: float = Field(GATE_MAX_DROP_FRACTION, gt=0, le=1, description="Output gate: the output suite fails (nothing is "
                                     "published) when more than this share of input rows was dropped. Not a "
                                     "cap: decisions are capped by clean.drop_cap.")
    truth: str | None = Field(None, description="Optional parquet with row_id and is_flipped (demo ground truth, "
                              "used only for the report's precision/recall).")
    progress: bool = Field(False, description="Show progress bars while training.")
    chains_per_task: int | None = Field(None, ge=1, description="Chains trained together in one task. Default: "
                                        "all in one batched task when the model trains chains batched (the fastest "
                                        "on one machine), else one chain per task (each cached on its own); on Dask, "
                                        "one chain per task, spread over the workers.")
    push_to_hub: str | None = Field(None, description="Hub repo id to push the published version to (explicit "
                                    "opt-in; needs network and a token).")
    skip_unchanged: bool = Field(False, description="Publish nothing when the dataset and the configuration equal "
                                 "those of the latest version (on by default for deployments: scheduled runs).")
    keep: int | None = Field(None, ge=1, description="Retention: keep only the N newest published versions of the "
                             "name; the one LATEST points to is never deleted. Default: keep all.")
    notify_webhook: str | None = Field(None, pattern=r"^https?://\S+$", description="URL that receives a JSON POST "
                                       "(flow run, dataset, one-line reason) when a run fails.")
    task_timeout_s: float | None = Field(None, gt=0, description="Longest a single task may run, in seconds; a "
                                         "task past it fails the run (and nothing is published). None: no limit.")
    cache_expiration_days: float | None = Field(30.0, gt=0, description="How long a cached θ* or scale probe is "
                                                "reused; older entries are recomputed. None: never expire. "
                                                "`influence-stage cache clear` empties the cache.")

    @classmethod
    def from_yaml(cls, path: str | Path) -> "FlowConfig":
        from influence_stage._checks import read_yaml_mapping
        from influence_stage.errors import InvalidInputError

        data = read_yaml_mapping(path)
        clean = CleanConfig.from_mapping(data.pop("clean", {}) or {}, where=f"{path}: clean")
        try:
            return cls(clean=clean, **data)
        except Exception as exc:
            raise InvalidInputError(f"configuration file {path}: {exc}") from exc


def failure_reason(exc: BaseException) -> str:
    """The one-line reason a run failed: its state message, the failure notice, the CLI's error line."""
    from influence_stage.errors import InfluenceStageError, ValidationFailedError

    text = " ".join(str(exc).split())
    if isinstance(exc, ValidationFailedError):
        return f"validation failed, nothing published: {text}"
    return text if isinstance(exc, InfluenceStageError) else f"{type(exc).__name__}: {text}"


def _artifacts(params: FlowConfig, outcome: dict[str, Any]) -> None:
    """The run's artifacts: the markdown summary, and a link to the report when a version was published."""
    if outcome.get("unchanged"):
        create_markdown_artifact(f"**{params.name}**: {outcome['markdown']}.\n\nLatest: `{outcome['published']}`\n",
                                 key="cleaning-summary", description=f"influence_stage summary for {params.name}")
        get_run_logger().info("%s: %s", params.name, outcome["markdown"])
        return
    create_markdown_artifact(outcome["markdown"] + f"\n\nPublished: `{outcome['published']}`\n", key="cleaning-summary",
                             description=f"influence_stage summary for {params.name}")
    create_link_artifact(Path(outcome["report"]).resolve().as_uri(), link_text="influence_stage report",
                         key="cleaning-report")
    get_run_logger().info("published %s (%d → %d rows)", outcome["published"], outcome["rows in"],
                          outcome["rows out"])


@flow(name="clean-dataset", log_prints=False, on_failure=[notify_failure])
def clean_dataset(params: FlowConfig) -> dict[str, Any]:
    """Clean one dataset end to end; returns a summary (published path, counts, timings).

    A run that fails (a gate, bad input, anything) ends Failed with its one-line reason
    (``failure_reason``) as the state message, the exception raised to a Python caller, and
    ``params.notify_webhook`` told (``orchestration.notify.notify_failure``). With ``skip_unchanged``, a
    dataset and configuration equal to the latest version's publish nothing: the summary (and
    its artifact) says ``unchanged, nothing published (latest vN)``.
    """
    from prefect.states import Failed

    try:
        outcome = run_clean_plan(params)
    except Exception as exc:
        reason = failure_reason(exc)
        get_run_logger().error("%s", reason)
        return Failed(message=reason, data=exc)
    _artifacts(params, outcome)
    return outcome


def run_clean_plan(params: FlowConfig) -> dict[str, Any]:
    """The ``CLEAN`` plan on the Prefect executor, inside the running flow; returns the run's outcome."""
    context = RunContext(config=params.clean, source=params.source, progress=params.progress,
                         max_drop_fraction=params.max_drop_fraction, chains_per_task=params.chains_per_task,
                         cache_dir=Path(params.cache_dir), params=params)
    expiration = timedelta(days=params.cache_expiration_days) if params.cache_expiration_days else None
    executor = PrefectExecutor(cache_dir=params.cache_dir, cache_expiration=expiration, timeout_s=params.task_timeout_s)
    mark_cache_dir(params.cache_dir)  # before anything is cached: `cache clear` deletes only marked folders
    return executor.run(CLEAN, context).outcome


__all__ = ["FlowConfig", "bias_scores", "clean_dataset", "failure_reason", "output_fingerprint",
           "roles_change", "run_clean_plan", "transient_io"]


if __name__ == "__main__":
    import sys

    print(clean_dataset(FlowConfig.from_yaml(sys.argv[1] if len(sys.argv) > 1 else "flows/digits.yaml"))["markdown"])

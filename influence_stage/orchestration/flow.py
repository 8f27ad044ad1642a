"""The cleaning flow: one Prefect task per step of the stage, each wrapping the step function that
``stage.run.run`` calls in the library path.

load → validate input → featurize → fit θ* → auto scale → members (``chains_per_task`` chains per
task, trained together; all in one task by default, one per task on Dask) → loss matrix (row-shard
tasks into a ``LossStore`` under ``cache_dir/runs``, ``orchestration.dask_runner.score_on_tasks``)
→ scores + decisions → apply → validate output → (with ground truth: baseline self-influence for the report's
distributional-bias figure) → publish (+ report, artifacts).

Expensive results (θ*, the scale probe, each group of chains) are cached by content: the key is
the dataset fingerprint plus the fingerprint of the configuration fields that affect them
(``stage.steps.config_fingerprint``, which includes the content of a checkpoint or ``hf:`` folder
named by ``clean.model``), and results are persisted under ``cache_dir``; the loss matrix is kept
on disk under ``cache_dir/runs`` with a done-flag per member. The chain and loss-shard tasks read
their rows from the run folder (``stage.shards``), never from their arguments. A re-run
with the same inputs, or a run restarted after a crash, reuses every finished piece and gives
identical scores. Nothing is published unless the output suite passes.

Run it: ``influence-stage clean --config flows/digits.yaml`` or ``python flows/clean_dataset.py``.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict, Field

from influence_stage.orchestration.deployments import notify_failure
from influence_stage.engine.gex import GEXResult
from influence_stage.engine.learner import Learner
from influence_stage.engine.members import AutoScale
from influence_stage.stage import run as stage
from influence_stage.stage import steps
from influence_stage.stage.run import GATE_MAX_DROP_FRACTION
from influence_stage.stage.steps import CleanConfig, Features, Prepared
from influence_stage.data.arrow import ROW_ID, row_id_was_added
from influence_stage.data.fingerprint import dataset_fingerprint
from influence_stage.timing import Timings

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
                                     "cap: decisions are capped by clean.max_drop_fraction.")
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
        clean = steps.CleanConfig.from_mapping(data.pop("clean", {}) or {}, where=f"{path}: clean")
        try:
            return cls(clean=clean, **data)
        except Exception as exc:
            raise InvalidInputError(f"configuration file {path}: {exc}") from exc


RUN_CONTROL_FIELDS = frozenset({"progress", "skip_unchanged", "keep", "notify_webhook", "task_timeout_s",
                                "cache_expiration_days"})
"""FlowConfig fields that do not change what a run publishes: left out of :func:`output_fingerprint`."""


def output_fingerprint(params: FlowConfig) -> str:
    """Fingerprint of the configuration that shapes the published version (for ``skip_unchanged``).

    Every field but :data:`RUN_CONTROL_FIELDS`, plus ``stage.steps.config_fingerprint`` of the
    cleaning configuration (which holds the content of a checkpoint or ``hf:`` folder, so a model
    file overwritten in place counts as a change).
    """
    from influence_stage.publish.versions import config_digest

    return config_digest({"params": params.model_dump(mode="json", exclude=set(RUN_CONTROL_FIELDS)),
                          "scoring": steps.config_fingerprint(params.clean)})


def _digest(*parts: Any) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:32]


def _cache_key(context: Any, parameters: dict[str, Any]) -> str:
    """Cached tasks take an explicit ``key``: fingerprint of data + the config that affects them."""
    return f"{context.task.name}-{parameters['key']}"


CACHED = dict(cache_key_fn=_cache_key, persist_result=True)

#: The other tasks are never cached: without an explicit policy Prefect hashes every input of a task
#: (pickling the dataset, the features and the loss matrix) on each call, for a key nothing reads.
UNCACHED = dict(cache_policy=NO_CACHE)


def transient_io(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only I/O errors that may pass (a network share, the hub, a busy disk), never bad input.

    A missing or unreadable file, a full disk and every ``InfluenceStageError`` fail at once.
    """
    import errno

    from influence_stage.errors import InfluenceStageError

    exc = getattr(state, "data", None)
    if not isinstance(exc, OSError) or isinstance(exc, InfluenceStageError):
        return False
    permanent = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)
    return not isinstance(exc, permanent) and exc.errno not in (errno.ENOSPC, errno.EDQUOT)


#: Retries of the I/O tasks (load, publish), with backoff.
IO_RETRIES = dict(retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=transient_io)


@task(name="load", **IO_RETRIES, **UNCACHED)
def load_task(source: str, config: CleanConfig) -> Prepared:
    return steps.prepare(source, config)


@task(name="validate-input", **UNCACHED)
def validate_input_task(prepared: Prepared) -> Any:
    return stage.validate_input_step(prepared)


@task(name="featurize", **UNCACHED)
def featurize_task(prepared: Prepared, config: CleanConfig) -> Features:
    return steps.featurize_step(prepared, config)


@task(name="fit-theta", **CACHED)
def fit_task(prepared: Prepared, features: Features, config: CleanConfig, key: str, progress: bool = False) -> Learner:
    """θ*: a model name trained on the data, or a checkpoint / ``hf:`` folder loaded (and trained if ``fit_loaded``)."""
    return steps.make_model_step(features, config, prepared=prepared, progress=progress)


@task(name="auto-scale", **CACHED)
def scale_task(learner: Learner, prepared: Prepared, features: Features, config: CleanConfig, key: str,
               progress: bool = False) -> AutoScale | None:
    return stage.scale_step(learner, prepared, features, config, progress=progress)


@task(name="decide", **UNCACHED)
def decide_task(result: GEXResult, prepared: Prepared, features: Features, config: CleanConfig) -> Any:
    return steps.decide_step(result, features, config, prepared=prepared)


@task(name="apply", **UNCACHED)
def apply_task(prepared: Prepared, decisions: Any, config: CleanConfig) -> Any:
    return steps.apply_step(prepared, decisions, config)


@task(name="validate-output", **UNCACHED)
def validate_output_task(cleaned: Any, prepared: Prepared, decisions: Any, params: FlowConfig) -> Any:
    return stage.validate_output_step(cleaned, prepared, decisions, params.clean,
                                      max_drop_fraction=params.max_drop_fraction)


def roles_change(params: FlowConfig, columns: dict[str, Any]) -> str | None:
    """A warning when the column roles differ from those of the latest published version of the name.

    Returns None when nothing was published yet, the latest version did not record its roles, or
    they are the same.
    """
    import json

    from influence_stage.publish.versions import META_JSON, latest_version

    try:
        latest = latest_version(params.publish_root, params.name)
    except Exception:  # a damaged LATEST is publish's business; it does not stop this check
        return None
    if latest is None:
        return None
    meta_path = Path(params.publish_root) / params.name / latest / META_JSON
    try:
        previous = (json.loads(meta_path.read_text(encoding="utf-8")).get("summary") or {}).get("columns")
    except (OSError, ValueError):
        return None
    if not previous or previous == columns:
        return None
    return (f"column roles changed since {params.name} {latest}: label {previous.get('label')!r}, "
            f"{previous.get('kind')} features {previous.get('features')} then; label {columns['label']!r}, "
            f"{columns['kind']} features {columns['features']} now")


def _truth(params: FlowConfig, row_ids: np.ndarray) -> np.ndarray | None:
    if params.truth is None:
        return None
    mask = pd.read_parquet(params.truth, columns=["row_id", "is_flipped"]).set_index("row_id")["is_flipped"]
    return mask.reindex(row_ids).fillna(False).to_numpy(dtype=bool)


def _gallery(prepared: Prepared) -> Any:
    """What the report's gallery shows: the image column (a feature or not), else the text column."""
    import datasets

    roles = prepared.roles
    if roles.kind == "text":
        return [str(t) for t in prepared.dataset[roles.feature_columns[0]]]
    images = [name for name, feature in prepared.dataset.features.items() if isinstance(feature, datasets.Image)]
    column = roles.feature_columns[0] if roles.kind == "image" else (images[0] if images else None)
    if column is None:
        return None
    return lambda i: prepared.dataset[int(i)][column]


def bias_scores(result: GEXResult, prepared: Prepared, features: Features,
                log: Any = logger) -> dict[str, np.ndarray] | None:
    """Self-influence of the noisy run by three estimators, for the report's distributional-bias figure.

    The identity-curvature influence ``||g_n||²`` and the damped linearized influence
    ``g_nᵀ (H + λI)⁻¹ g_n`` (``influence_stage.engine.baselines``) are computed at θ* (``result.learner``,
    which the loss task leaves there) on the rows the run scored, next to GEX's own
    ``result.gex_influence``: side by side they show which estimators separate mislabeled from
    clean rows. The figure is a diagnostic, so whatever stops it is logged and skipped, never raised.

    Parameters
    ----------
    result : GEXResult
        The run's result, its learner at θ*.
    prepared, features : Prepared, Features
        What the run was scored on; ``stage.steps.learner_data`` builds the learner's data from them.
    log : logging.Logger-like, default the module logger
        Where the reason for a skip goes.

    Returns
    -------
    dict of str to ndarray or None
        ``{"identity-curvature IF", "damped linearized IF", "GEX"}`` → ``(n,) float64`` scores in
        row order, all ``>= 0``; None when the learner is not a ``TorchLearner`` (a Hugging Face
        model: the baselines need plain tensors and a module), when the result has no GEX
        self-influence, or when a baseline cannot be computed for this model.
    """
    from influence_stage.engine.baselines import gradient_norm_influence, linearized_influence
    from influence_stage.errors import InvalidInputError
    from influence_stage.engine.learner import TorchLearner

    learner = result.learner
    if not isinstance(learner, TorchLearner):
        log.info("distributional-bias figure skipped: the learner is a %s, not a TorchLearner (the influence "
                 "baselines need one)", type(learner).__name__)
        return None
    if result.gex_influence is None:
        log.info("distributional-bias figure skipped: the result carries no GEX self-influence")
        return None
    data = steps.learner_data(learner, prepared, features)
    try:
        identity = gradient_norm_influence(learner, data)
        linearized = linearized_influence(learner, data)
    except (InvalidInputError, RuntimeError) as exc:  # a model the baselines cannot handle, a failed solve
        log.warning("distributional-bias figure skipped: %s", " ".join(str(exc).split()))
        return None
    # g_nᵀ (H + λI)⁻¹ g_n is >= 0; a rounding error can leave a tiny negative value
    return {"identity-curvature IF": np.asarray(identity, dtype=np.float64),
            "damped linearized IF": np.clip(np.asarray(linearized, dtype=np.float64), 0.0, None),
            "GEX": np.asarray(result.gex_influence, dtype=np.float64)}


@task(name="bias-scores", **UNCACHED)
def bias_scores_task(result: GEXResult, prepared: Prepared, features: Features) -> dict[str, np.ndarray] | None:
    """The report's baseline self-influence scores (:func:`bias_scores`); never cached, the inputs hold a model."""
    return bias_scores(result, prepared, features, log=get_run_logger())


@task(name="publish", **IO_RETRIES, **UNCACHED)
def publish_task(cleaned: Any, decisions: Any, prepared: Prepared, features: Features, reports: list[Any],
                 params: FlowConfig, summary: dict[str, Any], fingerprint: str,
                 bias: dict[str, np.ndarray] | None = None) -> Any:
    """Build the HTML report (with the distributional-bias figure when ``bias`` is given) and publish."""
    from influence_stage.publish.versions import labelled_manifest, publish
    from influence_stage.report import build_report

    names = [str(v) for v in prepared.encoding.names]
    html = build_report(decisions.table, class_names=names, threshold=decisions.threshold.value,
                        truth=_truth(params, features.row_ids), gallery=_gallery(prepared), summary=summary,
                        title=f"influence_stage: {params.name}", bias_scores=bias,
                        score_name=summary.get("score"))
    if row_id_was_added(cleaned):  # the stage's own ids: published in the manifest, not as a data column
        cleaned = cleaned.remove_columns(ROW_ID)
    return publish(cleaned, labelled_manifest(decisions.table, prepared.encoding), root=params.publish_root,
                   name=params.name, config=params.model_dump(mode="json"), validation_reports=reports,
                   report_html=html, fingerprint=fingerprint, classes=list(prepared.encoding.values),
                   class_names=list(prepared.encoding.names), summary=summary, push_to_hub_repo=params.push_to_hub,
                   config_fingerprint=output_fingerprint(params), skip_unchanged=params.skip_unchanged,
                   keep=params.keep)


def failure_reason(exc: BaseException) -> str:
    """The one-line reason a run failed: its state message, the failure notice, the CLI's error line."""
    from influence_stage.errors import InfluenceStageError, ValidationFailedError

    text = " ".join(str(exc).split())
    if isinstance(exc, ValidationFailedError):
        return f"validation failed, nothing published: {text}"
    return text if isinstance(exc, InfluenceStageError) else f"{type(exc).__name__}: {text}"


def _unchanged(params: FlowConfig, version: str, removed: Any = ()) -> dict[str, Any]:
    """The summary (and summary artifact) of a run that published nothing: same data and configuration."""
    line = f"unchanged, nothing published (latest {version})"
    path = Path(params.publish_root) / params.name / version
    if removed:
        line += f"; retention removed {', '.join(removed)}"
    create_markdown_artifact(f"**{params.name}**: {line}.\n\nLatest: `{path}`\n", key="cleaning-summary",
                             description=f"influence_stage summary for {params.name}")
    get_run_logger().info("%s: %s", params.name, line)
    return {"unchanged": True, "latest": version, "published": str(path), "report": str(path / "report.html"),
            "removed": list(removed), "markdown": line}


@flow(name="clean-dataset", log_prints=False, on_failure=[notify_failure])
def clean_dataset(params: FlowConfig) -> dict[str, Any]:
    """Clean one dataset end to end; returns a summary (published path, counts, timings).

    A run that fails (a gate, bad input, anything) ends Failed with its one-line reason
    (:func:`failure_reason`) as the state message, the exception raised to a Python caller, and
    ``params.notify_webhook`` told (``deployments.notify_failure``). With ``skip_unchanged``, a
    dataset and configuration equal to the latest version's publish nothing: the summary (and
    its artifact) says ``unchanged, nothing published (latest vN)``.
    """
    from prefect.states import Failed

    try:
        return _clean_dataset(params)
    except Exception as exc:
        reason = failure_reason(exc)
        get_run_logger().error("%s", reason)
        return Failed(message=reason, data=exc)


def _clean_dataset(params: FlowConfig) -> dict[str, Any]:
    log = get_run_logger()
    config = params.clean
    # the cheap checks first (the CLI ran them before Prefect started; a Python caller gets them here)
    steps.preflight(params.source, config, name=params.name, publish_root=params.publish_root,
                    cache_dir=params.cache_dir, push_to_hub=params.push_to_hub)
    timings = Timings()
    timeout = dict(timeout_seconds=params.task_timeout_s)
    load, validate_input, featurize, decide, apply, validate_output, bias_of, publish = (
        t.with_options(**timeout) for t in (load_task, validate_input_task, featurize_task, decide_task, apply_task,
                                            validate_output_task, bias_scores_task, publish_task))
    with timings.step("load + validate + featurize"):
        prepared = load(params.source, config)
        input_report = validate_input(prepared)
        features = featurize(prepared, config)
    fingerprint = dataset_fingerprint(prepared.dataset)
    if params.skip_unchanged:  # skip the scoring work too; publish checks again under the lock
        from influence_stage.publish.versions import prune_versions, unchanged_version

        same = unchanged_version(params.publish_root, params.name, fingerprint=fingerprint,
                                 config_fingerprint=output_fingerprint(params))
        if same is not None:
            removed = prune_versions(params.publish_root, params.name, params.keep) if params.keep else []
            return _unchanged(params, same, removed)
    base_key = _digest(fingerprint, steps.config_fingerprint(config))
    cached = dict(result_storage=Path(params.cache_dir).resolve(), **timeout,
                  cache_expiration=timedelta(days=params.cache_expiration_days) if params.cache_expiration_days else None)
    with timings.step("θ*"):
        learner = fit_task.with_options(**cached)(prepared, features, config, key=_digest(base_key, "theta"),
                                                  progress=params.progress)
    with timings.step("auto scale"):
        auto = None
        if config.gex.ft_lr == "auto":
            auto = scale_task.with_options(**cached)(learner, prepared, features, config,
                                                     key=_digest(base_key, "scale"), progress=params.progress)
    # members and loss matrix: chain tasks and row-shard tasks, each reading its rows from the run folder
    # (never shipped with the task), the loss matrix on disk with a done-flag per member (a re-run
    # evaluates only unfinished members); on Dask they spread over the workers
    from influence_stage.orchestration.dask_runner import score_on_tasks

    result = score_on_tasks(learner, prepared, features, config, auto,
                            run_folder=Path(params.cache_dir) / "runs" / base_key, fingerprint=fingerprint,
                            key=base_key, chains_per_task=params.chains_per_task,
                            result_storage=cached["result_storage"], progress=params.progress, timings=timings)
    with timings.step("decide + apply + validate"):
        decisions = decide(result, prepared, features, config)
        cleaned = apply(prepared, decisions, config)
        output_report = validate_output(cleaned, prepared, decisions, params)
    table = decisions.table
    summary = stage.summarize(result, decisions, cleaned, prepared)
    change = roles_change(params, summary["columns"])
    if change is not None:  # with the guard's (stage.run.guard_warnings): one list, printed and published
        summary.setdefault("warnings", []).append(change)
        log.warning("%s", change)
    bias = None
    if params.truth is not None:  # the distributional-bias figure compares estimators against the truth
        with timings.step("bias scores (report)"):
            bias = bias_of(result, prepared, features)
    with timings.step("publish + report"):
        published = publish(cleaned, decisions, prepared, features, [input_report, output_report], params,
                                 summary, fingerprint, bias=bias)
    if published.unchanged:  # another run published the same data while this one was scoring it
        return _unchanged(params, published.version, published.removed)
    summary["published"] = str(published.path)
    summary["report"] = str(Path(published.path) / "report.html")
    if published.removed:
        summary["removed"] = list(published.removed)  # retention (keep)
    summary["seconds"] = round(sum(timings.values()), 2)
    from influence_stage.report import precision_recall_at, summary_markdown

    names = [str(v) for v in prepared.encoding.names]
    truth = _truth(params, features.row_ids)
    markdown = summary_markdown(table, names, decisions.threshold.value, truth=truth, timings=timings,
                                score_name=result.score_name, threshold_method=decisions.threshold.method,
                                n_estimated=decisions.threshold.n_estimated)
    summary["markdown"] = markdown
    if truth is not None:
        summary["precision"], summary["recall"], _ = precision_recall_at(table["is_issue"].to_numpy(dtype=bool), truth)
    create_markdown_artifact(markdown + f"\n\nPublished: `{published.path}`\n", key="cleaning-summary",
                             description=f"influence_stage summary for {params.name}")
    create_link_artifact(Path(summary["report"]).resolve().as_uri(), link_text="influence_stage report",
                         key="cleaning-report")
    log.info("published %s (%d → %d rows)", published.path, len(table), len(cleaned))
    return summary


if __name__ == "__main__":
    import sys

    print(clean_dataset(FlowConfig.from_yaml(sys.argv[1] if len(sys.argv) > 1 else "flows/digits.yaml"))["markdown"])

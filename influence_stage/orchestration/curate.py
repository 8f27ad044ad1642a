"""The curation flow: a smaller corpus of the same worth, scored by a language model with GEX.

inventory (one streaming pass: lengths, content hashes, exact duplicates, near-duplicate keys) →
load the causal language model (θ*; optionally adapted to the corpus first) → members (cycles of
continued pre-training) → scores (one streaming pass per member) → budget (``decisions.prune``) →
write the curated corpus (one streaming pass) → validate (the ``corpus`` suite) → report → publish
(versioned, with the manifest and the report).

The step order is the ``CURATE`` plan (``influence_stage.pipeline.curate``), run by the same Prefect
executor as the cleaning flow: one task per step, each calling library functions; the expensive
results (the adapted θ*, the members, the loss matrix) are cached by content, the key being the
corpus fingerprint (its shards' bytes), the model folder's digest and the settings that affect
them, persisted under ``cache_dir``; nothing is published unless the suite passes.

Every input document ends in the manifest with a status: ``kept``, ``redundant`` (pruned from the
low end of self-influence), ``junk`` (pruned from the high end), or the inventory's reason for not
scoring it (``empty``, ``too short``, ``too long``, ``duplicate``, ``not text``). The budget is a
fraction or a count of the *scored* documents.

Run it: ``influence-stage curate --config flows/corpus.yaml`` or ``python flows/curate.py [CONFIG]``.
"""

from __future__ import annotations

import argparse
import logging
import numbers
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from influence_stage.errors import InvalidInputError
from influence_stage.orchestration.prefect_executor import PrefectExecutor
from influence_stage.pipeline.context import RunContext
from influence_stage.pipeline.curate import CURATE, cleanup, preflight


logger = logging.getLogger(__name__)


class CurateConfig(BaseModel):
    """Parameters of the curation flow (also what ``--config`` YAML files hold)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(description="Corpus shards: a Parquet / Arrow / JSONL file, a folder of them, or a glob.")
    name: str = Field(description="Name of the published corpus: <publish_root>/<name>/<version>/.")
    model: str = Field(description="Local folder of a causal language model and its tokenizer (θ*).")
    budget: float | int = Field(description="Documents to keep: a fraction in (0, 1] or a count of the scored "
                                "documents.")
    text_column: str = Field("text", description="Column of the documents.")
    id_column: str | None = Field(None, description="Column of document ids (default: the row number).")
    high_share: float = Field(0.0, ge=0, le=1, description="Share of the removed documents taken from the highest "
                              "self-influence (junk); the rest are the lowest (redundant).")
    dedup: bool = Field(True, description="Leave out exact duplicates (same bytes) before scoring.")
    near_dedup: float | None = Field(None, gt=0, le=1, description="Leave out near duplicates before scoring: "
                                     "MinHash LSH (datasketch) on word 3-grams, a document whose estimated Jaccard "
                                     "similarity to an earlier kept one reaches this threshold is marked "
                                     "'duplicate' of it (None: exact duplicates only).")
    min_chars: int = Field(1, ge=1, description="Fewest characters of a scored document (after stripping).")
    max_chars: int | None = Field(None, ge=1, description="Most characters of a scored document (None: no bound).")
    skip_invalid: bool = Field(False, description="Leave non-string documents out (status 'not text') instead of "
                               "failing.")
    trainable: str = Field("all", description="Parameters the members perturb: 'all' or 'last:N' (last N blocks).")
    max_length: int | None = Field(None, ge=2, description="Tokens per window of the chunking rule.")
    max_chunks: int | None = Field(None, ge=1, description="Windows scored per document (None: all).")
    batch_size: int = Field(16, ge=1, description="Windows per SGD step of the members.")
    batch_tokens: int = Field(8192, ge=2, description="Padded tokens per forward pass when scoring.")
    fit_steps: int = Field(0, ge=0, description="AdamW steps adapting θ* to the corpus before the members (0: the "
                           "model as given is θ*).")
    fit_lr: float = Field(1e-3, gt=0, description="Peak rate of the adaptation.")
    chains: int = Field(4, ge=1, description="Member chains from θ*.")
    cycles: int = Field(2, ge=1, description="Cycles per chain; each cycle's end is a member.")
    cycle_steps: int = Field(50, ge=1, description="SGD steps per cycle (unless cycle_epochs is given).")
    cycle_epochs: float | None = Field(None, gt=0, description="Documents drawn per cycle as a multiple of the "
                                       "scored documents: ceil(cycle_epochs × n / batch_size) steps, so the steps "
                                       "grow with the corpus (None: cycle_steps).")
    shard_docs: int = Field(4096, ge=1, description="Documents per scoring work unit (a range × one pass, each with "
                            "a done-flag).")
    output_shard_rows: int | None = Field(None, ge=1, description="Most rows per Parquet shard of the curated "
                                          "corpus (None: no row limit).")
    output_shard_bytes: int | None = Field(None, ge=1, description="About the most bytes of Arrow data per Parquet "
                                           "shard of the curated corpus (None: no byte limit).")
    score: Literal["self", "reference"] = Field("self", description="The ranking: 'self' (GEX self-influence; "
                                                "removals from both ends by high_share) or 'reference' (GEX "
                                                "cross-influence on the mean loss of the reference corpus; the "
                                                "documents that help it least are removed).")
    reference: str | None = Field(None, description="Shards of the reference corpus (score: reference), read in "
                                  "memory: keep it small.")
    eval_dtype: Literal["float32", "bfloat16"] = Field("float32", description="Precision of the scoring forward "
                                                       "passes ('bfloat16': torch.autocast).")
    ft_lr: float = Field(0.05, gt=0, description="Peak SGD rate of each cycle.")
    tau: float = Field(0.0, ge=0, description="Floor of the reference loss in self-influence (0: the paper's D = L - L*; "
                       "a language model's losses sit far above any small floor).")
    seed: int = Field(0, description="Seed of the members' window order and dropout.")
    device: str = Field("cpu", description="Torch device.")
    publish_root: str = Field("data/published", description="Root folder of published versions.")
    cache_dir: str = Field("runs/cache", description="Where cached θ*, members and loss matrices live.")
    progress: bool = Field(False, description="Show progress bars.")
    notify_webhook: str | None = Field(None, pattern=r"^https?://\S+$", description="URL that receives a JSON POST "
                                       "when the curation run fails (orchestration.notify's payload).")

    @field_validator("budget", mode="before")
    @classmethod
    def _budget(cls, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise ValueError(f"budget must be a fraction in (0, 1] or a count >= 1; found {v!r}")
        if isinstance(v, numbers.Integral):
            if v < 1:
                raise ValueError(f"budget must be a fraction in (0, 1] or a count >= 1; found {v}")
        elif not 0 < float(v) <= 1:
            raise ValueError(f"budget fraction must be in (0, 1]; found {v}. Give e.g. 0.7, or an int count")
        return v

    @model_validator(mode="after")
    def _reference(self) -> "CurateConfig":
        if self.score == "reference" and not self.reference:
            raise ValueError("score: reference needs reference: the shards of a reference corpus")
        if self.score == "reference" and self.high_share:
            raise ValueError(f"score: reference removes the documents that help the reference least (the low end); "
                             f"high_share must be 0, found {self.high_share}")
        return self

    @field_validator("trainable")
    @classmethod
    def _trainable(cls, v: str) -> str:
        from influence_stage.engine.causal_lm import check_lm_trainable

        return check_lm_trainable(v)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "CurateConfig":
        """Read a YAML mapping of the fields; InvalidInputError naming the file on any problem."""
        from influence_stage._checks import read_yaml_mapping

        data = read_yaml_mapping(path)
        return cls.from_mapping(data, where=str(path))

    @classmethod
    def from_mapping(cls, data: dict[str, Any], *, where: str = "curation config") -> "CurateConfig":
        try:
            return cls(**data)
        except Exception as exc:
            raise InvalidInputError(f"{where}: {' '.join(str(exc).split())}") from exc


def notify_curation_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """``on_failure`` hook of the curation flow: the cleaning flow's failure notice
    (``orchestration.notify``), sent to the run config's ``notify_webhook``."""
    from types import SimpleNamespace

    from influence_stage.orchestration.notify import notify_failure

    config = (getattr(flow_run, "parameters", None) or {}).get("config")
    run = SimpleNamespace(name=getattr(flow_run, "name", None), id=getattr(flow_run, "id", ""),
                          deployment_id=getattr(flow_run, "deployment_id", None), parameters={"params": config})
    notify_failure(flow, run, state)


@flow(name="curate-corpus", log_prints=False, on_failure=[notify_curation_failure])
def curate_corpus(config: CurateConfig) -> dict[str, Any]:
    """Curate one corpus end to end: the ``CURATE`` plan on the Prefect executor; returns a summary
    (published path, counts, timings)."""
    context = RunContext(config=config, progress=config.progress, cache_dir=Path(config.cache_dir))
    try:
        summary = PrefectExecutor(cache_dir=config.cache_dir).run(CURATE, context).outcome
    finally:
        cleanup(context)  # the curated Arrow files, once published (or not)
    create_markdown_artifact(summary["markdown"], key="curation-summary",
                             description=f"influence_stage curation of {config.name}")
    get_run_logger().info("published %s (%d → %d documents)", summary["published"], summary["documents in"],
                          summary["documents kept"])
    return summary


def curate_on_dask(config: CurateConfig, *, address: str | None = None, n_workers: int = 2,
                   processes: bool = True) -> dict[str, Any]:
    """Run ``curate_corpus`` with a Dask task runner: the scoring work units (document range × pass)
    spread over the workers; returns the flow's summary.

    ``address``: an existing scheduler (``tcp://host:8786``); None: a local cluster of ``n_workers``
    processes with one thread each. Workers read the token cache and write the pass files under
    ``cache_dir``, which must be a shared filesystem.
    """
    from influence_stage.orchestration.dask_runner import dask_task_runner

    runner = dask_task_runner(address, n_workers=n_workers, processes=processes)
    return curate_corpus.with_options(task_runner=runner)(config)


# -- command line ------------------------------------------------------------------------------------

_OVERRIDES = ("source", "name", "model", "text_column", "publish_root", "cache_dir")


def add_curate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``curate`` command to the CLI's subparsers; returns its parser."""
    p = subparsers.add_parser("curate", help="curate a text corpus by self-influence under a budget, validate it, "
                              "publish it",
                              description="Score an unlabeled corpus with a causal language model (GEX self-"
                              "influence), keep a budget, validate with the corpus suite, publish a version.")
    p.add_argument("--config", help="YAML file with the CurateConfig fields (flows/corpus.yaml)")
    for name in _OVERRIDES:
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, help=f"override {name}")
    p.add_argument("--budget", help="documents to keep: a fraction in (0, 1] or an integer count")
    p.add_argument("--high-share", type=float, dest="high_share", help="share of removals from the highest scores")
    p.add_argument("--no-dedup", action="store_true", dest="no_dedup", help="keep exact duplicates")
    p.add_argument("--progress", action="store_true", help="show progress bars")
    p.add_argument("--dask", nargs="?", const="local", metavar="ADDRESS", help="score on Dask: a scheduler "
                   "address (workers must read --cache-dir), or no value for a local cluster")
    p.add_argument("--dask-workers", type=int, dest="dask_workers", metavar="N", help="score on a local Dask "
                   "cluster of N worker processes (default 2 with --dask)")
    return p


def _budget_arg(text: str) -> float | int:
    try:
        return int(text) if text.strip().lstrip("+").isdigit() else float(text)
    except ValueError as exc:
        raise InvalidInputError(f"--budget {text!r} is not a number; give a fraction in (0, 1] or a count.") from exc


def curate_config(args: argparse.Namespace) -> CurateConfig:
    """The configuration of a ``curate`` command line: ``--config`` YAML with the flags on top."""
    data: dict[str, Any] = {}
    if getattr(args, "config", None):
        data = CurateConfig.from_yaml(args.config).model_dump()
    for name in _OVERRIDES:
        if getattr(args, name, None) is not None:
            data[name] = getattr(args, name)
    if getattr(args, "budget", None) is not None:
        data["budget"] = _budget_arg(args.budget)
    if getattr(args, "high_share", None) is not None:
        data["high_share"] = args.high_share
    if getattr(args, "no_dedup", False):
        data["dedup"] = False
    if getattr(args, "progress", False):
        data["progress"] = True
    missing = [k for k in ("source", "name", "model", "budget") if k not in data]
    if missing:
        raise InvalidInputError(f"curate needs {missing}: give --config FILE or the flags "
                                f"{['--' + m.replace('_', '-') for m in missing]}.")
    return CurateConfig.from_mapping(data, where="curate")


def run_curate(args: argparse.Namespace) -> int:
    """Run the ``curate`` command; returns the exit code (errors propagate to the CLI's handler)."""
    config = curate_config(args)
    preflight(config)
    dask, workers = getattr(args, "dask", None), getattr(args, "dask_workers", None)
    if dask or workers is not None:
        address = None if dask in (None, "local") else dask
        if address is not None and workers is not None:
            raise InvalidInputError(f"--dask {address} names an existing cluster and --dask-workers {workers} asks "
                                    "for a local one. Fix: give one of them.")
        summary = curate_on_dask(config, address=address, n_workers=2 if workers is None else workers)
    else:
        summary = curate_corpus(config)
    print(summary["markdown"])
    print(f"\npublished: {summary['published']}\nreport:    {summary['report']}")
    return 0


if __name__ == "__main__":
    import sys

    print(curate_corpus(CurateConfig.from_yaml(sys.argv[1] if len(sys.argv) > 1 else "flows/corpus.yaml"))["markdown"])

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
fraction or a count of the *scored* documents; ``budget_tokens`` also caps the kept documents' tokens.

The settings are ``CurateConfig`` (``influence_stage.orchestration.curate_config``, importable from
here too).

Run it: ``influence-stage curate --config flows/corpus.yaml`` or ``python flows/curate.py [CONFIG]``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from influence_stage.errors import InvalidInputError
from influence_stage.orchestration.curate_config import CurateConfig
from influence_stage.orchestration.prefect_executor import PrefectExecutor
from influence_stage.pipeline.context import RunContext
from influence_stage.pipeline.curate import CURATE, cleanup, preflight


logger = logging.getLogger(__name__)

#: The Dask client whose workers run the scoring units of the flow now running (set by ``curate_on_dask``).
_UNITS_CLIENT: Any = None


def _executor(config: CurateConfig) -> PrefectExecutor:
    """The flow's executor: Prefect tasks on the driver; under ``curate_on_dask`` the work units go to Dask."""
    if _UNITS_CLIENT is None:
        return PrefectExecutor(cache_dir=config.cache_dir)
    from influence_stage.orchestration.dask_runner import DaskUnitsExecutor

    return DaskUnitsExecutor(_UNITS_CLIENT, cache_dir=config.cache_dir)


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
        summary = _executor(config).run(CURATE, context).outcome
    finally:
        cleanup(context)  # the curated Arrow files, once published (or not)
    create_markdown_artifact(summary["markdown"], key="curation-summary",
                             description=f"influence_stage curation of {config.name}")
    get_run_logger().info("published %s (%d → %d documents)", summary["published"], summary["documents in"],
                          summary["documents kept"])
    return summary


def curate_on_dask(config: CurateConfig, *, address: str | None = None, n_workers: int = 2,
                   processes: bool = True) -> dict[str, Any]:
    """Run ``curate_corpus`` with its scoring work units (document range × pass) on Dask; returns the summary.

    Prefect orchestrates on this process (every step a task here); the units run on the workers as
    plain functions (``dask_runner.DaskUnitsExecutor``), so no worker talks to a Prefect API.
    ``address``: an existing scheduler (``tcp://host:8786``); None: a local cluster of ``n_workers``
    processes with one thread each. Workers read the token cache and write the pass files under
    ``cache_dir``, which must be a shared filesystem.
    """
    global _UNITS_CLIENT
    from influence_stage.orchestration.dask_runner import dask_client

    if _UNITS_CLIENT is not None:
        raise InvalidInputError("a curation flow on Dask is already running in this process; run one at a time.")
    with dask_client(address, n_workers=n_workers, processes=processes) as client:
        _UNITS_CLIENT = client
        try:
            return curate_corpus(config)
        finally:
            _UNITS_CLIENT = None


# -- command line ------------------------------------------------------------------------------------

def add_curate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``curate`` command to the CLI's subparsers; returns its parser (``influence_stage.cli.curate``'s:
    a flag per ``CurateConfig`` field)."""
    from influence_stage.cli.curate import add_parser

    return add_parser(subparsers)


def _budget_arg(text: str) -> float | int:
    try:
        return int(text) if text.strip().lstrip("+").isdigit() else float(text)
    except ValueError as exc:
        raise InvalidInputError(f"--budget {text!r} is not a number; give a fraction in (0, 1] or a count.") from exc


def curate_config(args: argparse.Namespace) -> CurateConfig:
    """The configuration of a ``curate`` command line: ``--config`` YAML with the flags on top (a flag left out
    keeps the YAML's value)."""
    data: dict[str, Any] = {}
    if getattr(args, "config", None):
        data = CurateConfig.from_yaml(args.config).model_dump()
    for name in CurateConfig.model_fields:
        if name in ("budget", "dedup"):
            continue
        if getattr(args, name, None) is not None:
            data[name] = getattr(args, name)
    if getattr(args, "budget", None) is not None:
        data["budget"] = _budget_arg(args.budget)
    if getattr(args, "no_dedup", False):
        data["dedup"] = False
    missing = [k for k in ("source", "name", "model") if data.get(k) is None]
    if data.get("budget") is None and data.get("budget_tokens") is None:
        missing.append("budget")
    if missing:
        raise InvalidInputError(f"curate needs {missing}: give --config FILE or the flags "
                                f"{['--' + m.replace('_', '-') for m in missing]}"
                                f"{' (or --budget-tokens)' if 'budget' in missing else ''}.")
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

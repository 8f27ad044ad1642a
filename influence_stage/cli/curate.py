"""``influence-stage curate``: curate a text corpus by self-influence under a budget, validate, publish.

The flags are declared here, so ``curate --help`` imports neither Prefect nor torch; the flow
(``influence_stage.orchestration.curate``) is imported when the command runs. A test checks them
against the flow's own parser (``add_curate_parser``).
"""

from __future__ import annotations

import argparse
from typing import Any

OVERRIDES = ("source", "name", "model", "text_column", "publish_root", "cache_dir")
"""CurateConfig fields a flag of the same name overrides (``--text-column`` for ``text_column``)."""


def _curate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file with the CurateConfig fields (flows/corpus.yaml)")
    for name in OVERRIDES:
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, help=f"override {name}")
    p.add_argument("--budget", help="documents to keep: a fraction in (0, 1] or an integer count")
    p.add_argument("--high-share", type=float, dest="high_share", help="share of removals from the highest scores")
    p.add_argument("--no-dedup", action="store_true", dest="no_dedup", help="keep exact duplicates")
    p.add_argument("--progress", action="store_true", help="show progress (bars on a terminal, plain lines "
                   "in a file)")
    p.add_argument("--dask", nargs="?", const="local", metavar="ADDRESS", help="score on Dask: a scheduler "
                   "address (workers must read --cache-dir), or no value for a local cluster")
    p.add_argument("--dask-workers", type=int, dest="dask_workers", metavar="N", help="score on a local Dask "
                   "cluster of N worker processes (default 2 with --dask)")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``curate`` to the CLI's subparsers."""
    p = sub.add_parser("curate", help="curate a text corpus by self-influence under a budget, validate it, "
                       "publish it",
                       description="Score an unlabeled corpus with a causal language model (GEX self-"
                       "influence), keep a budget, validate with the corpus suite, publish a version.")
    _curate_args(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run the curation flow on the parsed arguments."""
    from influence_stage.orchestration.curate import run_curate

    if getattr(args, "script", False):
        from influence_stage.cli.console import keep_our_sigterm

        keep_our_sigterm()
    return run_curate(args)

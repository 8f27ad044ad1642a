"""``influence-stage curate``: curate a text corpus by GEX self-influence and loss per character under a budget,
validate, publish.

Every ``CurateConfig`` field has a flag of its name (``--budget-tokens`` for ``budget_tokens``), its
help the field's description, its type and choices from the field's annotation; ``--no-dedup`` turns
``dedup`` off and ``--budget`` takes a fraction or a count. ``--config`` reads a YAML file of the
fields and the flags go on top. The flags are built from ``influence_stage.orchestration.curate_config``
(pydantic only), so ``curate --help`` imports neither Prefect nor torch; the flow
(``influence_stage.orchestration.curate``) is imported when the command runs and its own parser
(``add_curate_parser``) is this one.
"""

from __future__ import annotations

import argparse
import types
import typing
from typing import Any

SPECIAL_FLAGS = {"budget": "--budget (a fraction or an integer count)", "dedup": "--no-dedup"}
"""Fields whose flag is not the generic one, and that flag."""


def _flag_type(annotation: Any) -> tuple[Any, list[str] | None]:
    """The argparse ``type`` and ``choices`` of a field annotation (``X | None`` as ``X``, a Literal as choices)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = args[0] if len(args) == 1 else str
    if typing.get_origin(annotation) is typing.Literal:
        return str, [str(a) for a in typing.get_args(annotation)]
    return annotation, None


def field_flags() -> dict[str, str]:
    """``{field: flag}`` for every ``CurateConfig`` field (``SPECIAL_FLAGS`` for the two that differ)."""
    from influence_stage.orchestration.curate_config import CurateConfig

    return {name: SPECIAL_FLAGS.get(name, f"--{name.replace('_', '-')}").split(" ")[0]
            for name in CurateConfig.model_fields}


def _curate_args(p: argparse.ArgumentParser) -> None:
    from influence_stage.orchestration.curate_config import CurateConfig

    p.add_argument("--config", help="YAML file with the CurateConfig fields (flows/corpus.yaml)")
    p.add_argument("--budget", help="documents to keep: a fraction in (0, 1] or an integer count of the scored "
                   "documents")
    p.add_argument("--no-dedup", action="store_true", dest="no_dedup", help="keep exact duplicates")
    for name, field in CurateConfig.model_fields.items():
        if name in SPECIAL_FLAGS:
            continue
        flag = f"--{name.replace('_', '-')}"
        text = (field.description or name).replace("%", "%%")
        kind, choices = _flag_type(field.annotation)
        if kind is bool:
            p.add_argument(flag, dest=name, action="store_const", const=True, help=text)
        else:
            p.add_argument(flag, dest=name, type=kind, choices=choices, metavar=name.upper() if not choices else None,
                           help=text)
    p.add_argument("--dask", nargs="?", const="local", metavar="ADDRESS", help="score on Dask: a scheduler "
                   "address (workers must read --cache-dir), or no value for a local cluster")
    p.add_argument("--dask-workers", type=int, dest="dask_workers", metavar="N", help="score on a local Dask "
                   "cluster of N worker processes (default 2 with --dask)")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``curate`` to the CLI's subparsers."""
    p = sub.add_parser("curate", help="curate a text corpus by self-influence and loss per character under a "
                       "budget, validate it, publish it",
                       description="Score an unlabeled corpus with a causal language model (GEX self-"
                       "influence), keep a budget (documents and/or tokens), validate with the corpus suite, "
                       "publish a version. Every CurateConfig field has a flag; --config reads them from YAML.")
    _curate_args(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run the curation flow on the parsed arguments."""
    from influence_stage.orchestration.curate import run_curate

    if getattr(args, "script", False):
        from influence_stage.cli.console import keep_our_sigterm

        keep_our_sigterm()
    return run_curate(args)

"""``influence-stage curate``: curate a text corpus by self-influence under a budget, validate, publish.

The curation flow's own parser (:func:`influence_stage.orchestration.curate.add_curate_parser`) is
built when the command runs, so Prefect is not imported for the other commands.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``curate`` to the CLI's subparsers (its arguments are parsed by :func:`run`)."""
    return sub.add_parser("curate", add_help=False, help="curate a text corpus by self-influence under a budget, "
                          "validate and publish it (influence-stage curate --help)")


def run(args: argparse.Namespace) -> int:
    """Parse the curation arguments (``args.rest``) and run the curation flow."""
    from influence_stage.orchestration.curate import add_curate_parser, run_curate

    parser = argparse.ArgumentParser(prog="influence-stage")
    add_curate_parser(parser.add_subparsers(dest="command", required=True))
    return run_curate(parser.parse_args(["curate", *args.rest]))

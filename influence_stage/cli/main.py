"""The ``influence-stage`` parser and the one place errors become exit codes and one-line messages.

Exit codes: 0 published (or done); 2 bad input or configuration; 3 a validation gate failed
(nothing published); 1 anything else. Errors print one line, ``error: <reason>``, on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from influence_stage.cli import cache, clean, curate, report, serve, server, versions
from influence_stage.cli.common import EXAMPLES, EXIT_ERROR, EXIT_GATE, EXIT_INPUT

COMMANDS = {"clean": clean, "serve": serve, "server": server, "report": report, "versions": versions,
            "curate": curate, "cache": cache}
"""Subcommand name → its module (``add_parser(subparsers)`` and ``run(args)``)."""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("influence_stage")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def _quiet(progress: bool) -> None:
    """Quiet by default: errors reach the user as one line, not as library log lines and bars."""
    import logging

    os.environ["PREFECT_LOGGING_LEVEL"] = "CRITICAL"  # task failures are reported by the CLI's own line
    for name in ("great_expectations", "datasets", "prefect"):
        logging.getLogger(name).setLevel(logging.CRITICAL if name == "prefect" else logging.WARNING)
    # this module sets its own logger to INFO when imported ("Created temporary directory ... docs site")
    import great_expectations.data_context.types.base  # noqa: F401

    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    if not progress:
        import datasets

        datasets.disable_progress_bars()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="influence-stage", description="Find mislabeled rows with GEX, clean them, validate, publish.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"influence-stage {_version()}")
    parser.add_argument("--verbose", action="store_true", help="show Prefect's, Great Expectations' and datasets' "
                        "own log lines (quiet by default)")
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error before its one line")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS.values():
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``influence-stage``; returns the exit code."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "curate":
        args.rest = rest  # the curation command parses its own arguments (see cli.curate)
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    from influence_stage.errors import InfluenceStageError, ValidationFailedError

    if argv is None and not args.verbose:  # the console script; calls from Python keep their own logging
        _quiet(getattr(args, "progress", False))

    if argv is None and args.command in ("clean", "serve", "curate"):
        # the console script (not a call from Python): a killed CLI must not leave Prefect's server behind
        from influence_stage.orchestration.orphans import start_watchdog

        start_watchdog()

    try:
        return COMMANDS[args.command].run(args)
    except ValidationFailedError as exc:
        _traceback(args)
        print(f"error: validation failed, nothing published: {_one_line(exc)}", file=sys.stderr)
        return EXIT_GATE
    except (InfluenceStageError, FileNotFoundError) as exc:
        _traceback(args)
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_INPUT
    except Exception as exc:  # the one-line contract holds for surprises too
        _traceback(args)
        print(f"error: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR


def _traceback(args: argparse.Namespace) -> None:
    if args.debug:
        import traceback

        traceback.print_exc()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


if __name__ == "__main__":
    sys.exit(main())

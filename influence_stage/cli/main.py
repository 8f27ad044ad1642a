"""The ``influence-stage`` parser and the one place errors become exit codes and one-line messages.

Exit codes: 0 published (or done); 2 bad input or configuration; 3 a validation gate failed
(nothing published); 1 anything else. Errors print one line, ``error: <reason>``, on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

from influence_stage.cli import cache, clean, console, curate, export, report, reviews, serve, server, versions
from influence_stage.cli.common import EXAMPLES, EXIT_ERROR, EXIT_GATE, EXIT_INPUT

COMMANDS = {"clean": clean, "serve": serve, "server": server, "report": report, "versions": versions,
            "curate": curate, "cache": cache, "export": export, "import-reviews": reviews}
"""Subcommand name → its module (``add_parser(subparsers)`` and ``run(args)``)."""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("influence_stage")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def _quiet(progress: bool) -> None:
    """Quiet by default: errors reach the user as one line, not as library log lines and bars.

    Run before the command imports Prefect, Great Expectations or datasets (nothing is imported
    here): their loggers are set now and their own settings come from the environment.
    """
    import logging

    os.environ["PREFECT_LOGGING_LEVEL"] = "CRITICAL"  # task failures are reported by the CLI's own line
    for name in ("great_expectations", "datasets", "prefect"):
        logging.getLogger(name).setLevel(logging.CRITICAL if name == "prefect" else logging.WARNING)
    # this module sets its own logger to INFO when imported ("Created temporary directory ... docs site"):
    # a filter stays in place where a level would be overwritten
    logging.getLogger("great_expectations.data_context.types.base").addFilter(
        lambda record: record.levelno >= logging.WARNING)
    if not progress or not sys.stderr.isatty():  # datasets' own bars (map, save) only on a terminal with --progress
        os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"


def _parser() -> argparse.ArgumentParser:
    parser = console.OneLineParser(
        prog="influence-stage", description="Find mislabeled rows with GEX, clean them, validate, publish.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"influence-stage {_version()}")
    parser.add_argument("--verbose", action="store_true", help="show Prefect's, Great Expectations' and datasets' "
                        "own log lines (quiet by default)")
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error before its one line")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=console.OneLineParser)
    for module in COMMANDS.values():
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``influence-stage``; returns the exit code.

    Called without ``argv`` (the console script) it also stops on SIGINT / SIGTERM / SIGHUP with one
    line, aggregates the package's warnings, writes plain progress lines when stderr is not a
    terminal, and exits as soon as the command is done (``console.exit_now``): it does not
    return then.
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    parser = _parser()
    args = parser.parse_args(argv)
    script = argv is None  # the console script; calls from Python keep their own logging and signals
    args.script = script
    collector = None
    if script:
        console.stop_on_signals(debug=args.debug)
        if not args.verbose:
            _quiet(getattr(args, "progress", False))
            collector = console.collect_warnings()
        if getattr(args, "progress", False):
            console.plain_progress()
        if args.command in ("clean", "serve", "curate"):
            # a killed CLI (SIGKILL: no handler runs) must not leave Prefect's server behind
            from influence_stage.orchestration.orphans import start_watchdog

            watchdog = start_watchdog()
            if watchdog is not None:
                console.WATCHDOG["pid"] = watchdog.pid
    code = _run(args, collector)
    if script and args.command != "server":  # the server command's foreground loop stopped its children
        console.exit_now(code)
    return code


def _run(args: argparse.Namespace, collector: Any) -> int:
    """Run the command; every error becomes one ``error:`` line on stderr and an exit code."""
    from influence_stage.errors import InfluenceStageError, ValidationFailedError

    try:
        code = COMMANDS[args.command].run(args)
        _print_warnings(collector, getattr(args, "shown_warnings", ()))
        return code
    except ValidationFailedError as exc:
        _print_warnings(collector, ())
        _traceback(args)
        print(f"error: validation failed, nothing published: {_one_line(exc)}", file=sys.stderr)
        return EXIT_GATE
    except (InfluenceStageError, FileNotFoundError) as exc:
        _print_warnings(collector, ())
        _traceback(args)
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_INPUT
    except Exception as exc:  # the one-line contract holds for surprises too
        _print_warnings(collector, ())
        _traceback(args)
        print(f"error: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR


def _print_warnings(collector: Any, shown: Any) -> None:
    if collector is not None:
        for line in collector.lines(list(shown)):
            print(f"warning: {line}", file=sys.stderr)


def _traceback(args: argparse.Namespace) -> None:
    if args.debug:
        import traceback

        traceback.print_exc()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


if __name__ == "__main__":
    sys.exit(main())

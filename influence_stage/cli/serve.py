"""``influence-stage serve``: serve the cleaning flow on a cron schedule (needs a Prefect server)."""

from __future__ import annotations

import argparse
from typing import Any

from influence_stage.cli.clean import flow_args, flow_config, preflight
from influence_stage.cli.common import EXIT_OK


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``serve`` to the CLI's subparsers."""
    serve = sub.add_parser("serve", help="serve the flow on a cron schedule (needs a Prefect server)")
    flow_args(serve)
    serve.add_argument("--cron", required=True, help='cron schedule, e.g. "0 3 * * *"')
    serve.add_argument("--deployment-name", default=None, help="deployment name (default influence-stage-<name>)")
    return serve


def check_cron(cron: str) -> str:
    """``cron`` parses as a cron schedule (Prefect's own parser)."""
    from prefect.client.schemas.schedules import CronSchedule

    from influence_stage.errors import InvalidInputError

    try:
        CronSchedule(cron=cron)
    except Exception as exc:
        raise InvalidInputError(
            f"--cron {cron!r} is not a valid cron schedule; expected five fields 'minute hour day month weekday', "
            'e.g. "0 3 * * *" (03:00 every day).'
        ) from exc
    return cron


def run(args: argparse.Namespace) -> int:
    """Run ``serve``: the configuration and cron first, then a running server, then serve."""
    from influence_stage.orchestration.deployments import require_server

    from influence_stage.cli.schema import check_args

    check_args(args)  # the source's schema and the name, before anything is imported or started
    params = flow_config(args)  # a bad configuration or cron is named first
    check_cron(args.cron)
    require_server()  # then at once: on Prefect's temporary server the schedule would never fire
    preflight(params)
    from influence_stage.orchestration.deployments import serve

    serve(params, cron=args.cron, name=args.deployment_name)
    return EXIT_OK

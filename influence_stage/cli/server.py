"""``influence-stage server start | stop | deploy``: a local Prefect server, work pool, worker and deployment.

The machinery (starting, stopping, the foreground loop) is ``influence_stage.orchestration.server``;
this module is its command line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from pathlib import Path
from typing import Any

DEFAULT_PORT = 4200
DEFAULT_POOL = "influence-stage"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``server`` to the CLI's subparsers: ``start`` (default), ``stop``, ``deploy``."""
    parser = sub.add_parser("server", help="local Prefect server, work pool, worker and the prefect.yaml "
                            "deployment (start, stop), or deploy to the server PREFECT_API_URL names")
    parser.add_argument("action", nargs="?", choices=["start", "stop", "deploy"], default="start",
                        help="start: local server + work pool + worker + deployment (foreground); stop: stop it; "
                             "deploy: register the deployment on the server PREFECT_API_URL names")
    parser.add_argument("--home", default=None, help="PREFECT_HOME of the local server (SQLite, logs); "
                        "default runs/prefect in the project folder")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port on 127.0.0.1 (0: a free one; default 4200)")
    parser.add_argument("--pool", default=None, help=f"work pool (default: prefect.yaml's, {DEFAULT_POOL})")
    parser.add_argument("--deployment", default=None, help="deployment of prefect.yaml (default: its first)")
    parser.add_argument("--config", default=None, help="FlowConfig YAML to deploy instead of prefect.yaml's "
                        "parameters (the deployment is then influence-stage-<name>)")
    parser.add_argument("--cron", default=None, help="cron schedule instead of prefect.yaml's")
    parser.add_argument("--poll-seconds", type=float, default=5.0, help="how often the worker polls (default 5)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the server and worker")
    return parser


def spec_from_args(args: argparse.Namespace) -> Any:
    """The deployment ``args`` ask for: ``prefect.yaml``'s, with ``--config`` / ``--cron`` applied."""
    from influence_stage.orchestration.deployments import PREFECT_YAML, _schedule, project_deployment
    from influence_stage.orchestration.flow import FlowConfig

    spec = project_deployment(PREFECT_YAML, args.deployment)
    if args.config:
        spec = spec.replace(params=FlowConfig.from_yaml(args.config))
    if args.cron:
        _schedule(args.cron, spec.timezone)
        spec = spec.replace(cron=args.cron)
    if args.pool:
        spec = spec.replace(work_pool=args.pool)
    return spec


def run(args: argparse.Namespace) -> int:
    """Run the ``server`` command; returns the exit code (errors raise ``InvalidInputError``: exit 2)."""
    from influence_stage.errors import InvalidInputError
    from influence_stage.orchestration import orphans
    from influence_stage.orchestration.server import DEFAULT_HOME, STATE_FILE, serve_forever, start, stop

    home = args.home or str(DEFAULT_HOME)
    if args.action == "stop":
        stopped = stop(home)
        print(f"stopped: processes {', '.join(map(str, stopped))}" if stopped else
              f"no local Prefect server was running (nothing recorded in {Path(home) / STATE_FILE})")
        return 0
    spec = spec_from_args(args)
    if args.action == "deploy":
        from influence_stage.orchestration.deployments import register, require_server

        url = require_server("influence-stage server deploy")
        deployment_id = register(spec, work_pool=spec.work_pool)
        print(f"registered deployment 'clean-dataset/{spec.name}' ({deployment_id}) on {url}, work pool "
              f"{spec.work_pool!r}; start a worker with: prefect worker start --pool {spec.work_pool}")
        return 0
    state = Path(home).resolve() / STATE_FILE
    with contextlib.suppress(OSError, ValueError, TypeError, IndexError):
        owner = json.loads(state.read_text(encoding="utf-8"))["owner"]
        if orphans.alive(int(owner[0]), owner[1]):
            raise InvalidInputError(f"a local Prefect server started by process {owner[0]} is already running "
                                    f"(recorded in {state}). Fix: use it, or stop it with `influence-stage server "
                                    "stop` first.")
    if os.environ.get(orphans.OWNER_VAR, "").split(":")[0] != str(os.getpid()):
        orphans.start_watchdog()  # a killed foreground process leaves no server or worker behind
    local = start(spec, home=home, port=args.port, pool=spec.work_pool, poll_seconds=args.poll_seconds,
                  timeout=args.timeout)
    return serve_forever(local)

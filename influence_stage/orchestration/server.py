"""A local Prefect server, a process work pool and a worker: scheduled cleaning runs on one machine.

``influence-stage server start`` (``make serve``) starts ``prefect server start`` on 127.0.0.1
(SQLite and ``PREFECT_HOME`` under ``runs/prefect/``), waits until its API answers, creates the
``process`` work pool, registers the cleaning deployment of ``prefect.yaml`` (its cron schedule,
the demo configuration, the tags and the one-run-at-a-time limit: see ``deployments``), starts a
worker on the pool, prints the UI address and how to stop, and stays in the foreground. Ctrl-C,
SIGTERM or ``influence-stage server stop`` stop the worker (and any flow run it started) and the
server; no process is left behind: each child's descendants are recorded before it is stopped
and ended too, and the watchdog of ``orphans`` ends them should the foreground process be killed
outright. ``<home>/server.json`` records the processes while they run.

For an existing server, ``influence-stage server deploy`` registers the same deployment on the
server ``PREFECT_API_URL`` names and its work pool, and starts nothing.

The command line (``influence-stage server start|stop|deploy``) is ``influence_stage.cli.server``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from influence_stage.errors import InvalidInputError
from influence_stage.orchestration import orphans
from influence_stage.orchestration.deployments import (
    DEFAULT_POOL,
    PREFECT_YAML,
    PROJECT_ROOT,
    DeploymentSpec,
    project_deployment,
    register,
)

HOST = "127.0.0.1"
DEFAULT_PORT = 4200
DEFAULT_HOME = PROJECT_ROOT / "runs" / "prefect"
"""``PREFECT_HOME`` of the local server: its SQLite database, logs and ``server.json``."""
STATE_FILE = "server.json"
STOP_TIMEOUT_S = 15.0


def free_port(host: str = HOST) -> int:
    """A TCP port nothing listens on at ``host`` now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(line.strip() for line in text[-lines:] if line.strip()) or "(empty log)"


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:  # noqa: S310 - our own server
            return response.status == 200
    except (OSError, ValueError):
        return False


def _start_time(pid: int) -> int | None:
    st = orphans._stat(pid)
    return None if st is None else st[2]


@dataclass
class Child:
    """A process this module started: its ``Popen``, start time (to tell a reused pid) and log file."""

    name: str
    proc: subprocess.Popen
    log: Path
    start: int | None = None

    def __post_init__(self) -> None:
        self.start = _start_time(self.proc.pid)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def record(self) -> list[int | None]:
        return [self.pid, self.start]


def _end(pids: Mapping[int, int | None], timeout: float) -> None:
    """SIGTERM each ``pid`` (still running with that start time), SIGKILL those left after ``timeout``."""
    left = {p: s for p, s in pids.items() if orphans.alive(p, s)}
    for p in left:
        with contextlib.suppress(OSError):
            os.kill(p, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(orphans.alive(p, s) for p, s in left.items()):
        time.sleep(0.1)
    for p, s in left.items():
        if orphans.alive(p, s):
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(orphans.alive(p, s) for p, s in left.items()):
        time.sleep(0.05)


def _stop_tree(pid: int, start: int | None, timeout: float = STOP_TIMEOUT_S) -> None:
    """End ``pid`` and every descendant it has now (recorded first: they outlive a killed parent)."""
    tree = {pid: start, **orphans.descendants(pid)}
    _end({pid: start}, timeout)
    _end(tree, timeout)


def _child_env(home: Path, extra: Mapping[str, str] | None = None, *, api_url: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)
    env.update({"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "GX_ANALYTICS_ENABLED": "false", "PREFECT_PROFILES_PATH": str(home / "profiles.toml")})
    env.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    if api_url is not None:
        env["PREFECT_API_URL"] = api_url
    env.update(extra or {})
    return env


@dataclass
class LocalPrefect:
    """A local Prefect server (and its worker, once started), started by ``start_server``.

    Attributes
    ----------
    home : Path
        Its ``PREFECT_HOME``: ``prefect.db`` (SQLite), ``logs/``, ``server.json``.
    host, port : str, int
    server : Child
    worker : Child or None
    pool : str or None
        The work pool the worker serves.
    deployment : str or None
        ``flow/deployment`` name registered by ``start``.
    """

    home: Path
    host: str
    port: int
    server: Child
    worker: Child | None = None
    pool: str | None = None
    deployment: str | None = None
    spec: DeploymentSpec | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.ui_url}/api"

    def children(self) -> list[Child]:
        return [c for c in (self.worker, self.server) if c is not None]

    @contextlib.contextmanager
    def client_settings(self) -> Iterator[None]:
        """Point this process's Prefect client at this server for the ``with`` block."""
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: self.api_url}):
            yield

    def write_state(self) -> Path:
        """Record the processes in ``<home>/server.json`` (read by ``stop`` from another process)."""
        me = os.getpid()
        state = {"owner": [me, _start_time(me)], "server": self.server.record(),
                 "worker": self.worker.record() if self.worker else None, "api_url": self.api_url,
                 "ui_url": self.ui_url, "pool": self.pool, "deployment": self.deployment}
        path = self.home / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop the worker (and the flow runs it started), then the server; remove ``server.json``.

        Each process's descendants are recorded before it is signalled and ended after it, so
        none is left behind (a flow run of the worker, a child of the server).
        """
        for child in self.children():
            _stop_tree(child.pid, child.start, timeout)
            with contextlib.suppress(Exception):
                child.proc.wait(timeout=1)
        state = self.home / STATE_FILE
        with contextlib.suppress(OSError, ValueError):
            if json.loads(state.read_text(encoding="utf-8")).get("owner", [None])[0] == os.getpid():
                state.unlink()

    def __enter__(self) -> "LocalPrefect":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start_server(home: str | os.PathLike[str] = DEFAULT_HOME, *, port: int | None = DEFAULT_PORT, host: str = HOST,
                 timeout: float = 120.0, extra_env: Mapping[str, str] | None = None) -> LocalPrefect:
    """Start ``prefect server start`` on ``host:port`` with its SQLite database under ``home``.

    Parameters
    ----------
    home : path-like, default ``runs/prefect``
        ``PREFECT_HOME`` of the server (created): ``prefect.db``, ``logs/server.log``.
    port : int or None, default 4200
        None or 0: a free port.
    host : str, default 127.0.0.1
    timeout : float, default 120
        Seconds to wait for the API to answer ``/health``.
    extra_env : mapping, optional
        More environment for the server (e.g. ``PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS``).

    Returns
    -------
    LocalPrefect
        With the server running and healthy; stop it with ``.stop()`` (or use it as a context manager).

    Raises
    ------
    InvalidInputError
        The port is taken, or the server exited or did not answer within ``timeout`` (the
        message ends with the last lines of its log).
    """
    home = Path(home).resolve()
    (home / "logs").mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    if _port_in_use(host, port):
        raise InvalidInputError(f"port {port} on {host} is already in use (another Prefect server?). Fix: stop it "
                          "(`influence-stage server stop`) or pass --port N (0 for a free port).")
    log = home / "logs" / "server.log"
    env = _child_env(home, extra_env)
    env["PREFECT_API_DATABASE_CONNECTION_URL"] = f"sqlite+aiosqlite:///{home / 'prefect.db'}"
    env["PREFECT_SERVER_API_HOST"], env["PREFECT_SERVER_API_PORT"] = host, str(port)
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port",
                                 str(port)], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=env, cwd=str(home), start_new_session=True)
    local = LocalPrefect(home=home, host=host, port=port, server=Child("server", proc, log),
                         extra_env=dict(extra_env or {}))
    deadline = time.monotonic() + timeout
    while not _healthy(local.api_url):
        if proc.poll() is not None:
            local.stop()
            raise InvalidInputError(f"the Prefect server exited with code {proc.returncode} before its API answered; "
                              f"log {log}: {_tail(log)}")
        if time.monotonic() > deadline:
            local.stop()
            raise InvalidInputError(f"the Prefect server did not answer {local.api_url}/health within {timeout:g} s; "
                              f"log {log}: {_tail(log)}")
        time.sleep(0.3)
    return local


def start_worker(local: LocalPrefect, pool: str = DEFAULT_POOL, *, poll_seconds: float = 5.0,
                 timeout: float = 90.0, cwd: str | os.PathLike[str] = PROJECT_ROOT) -> Child:
    """Start ``prefect worker start --pool <pool>`` (type ``process``) against ``local`` and wait until it is online.

    Parameters
    ----------
    local : LocalPrefect
    pool : str
    poll_seconds : float, default 5
        How often the worker asks for scheduled runs (``PREFECT_WORKER_QUERY_SECONDS``).
    timeout : float, default 90
        Seconds to wait for the worker's first heartbeat.
    cwd : path-like
        Where the worker runs (flow runs start in the deployment's folder anyway).

    Raises
    ------
    InvalidInputError
        The worker exited or did not report within ``timeout`` (with its log's last lines).
    """
    log = local.home / "logs" / "worker.log"
    name = f"influence-stage-{local.port}"
    env = _child_env(local.home, {**local.extra_env, "PREFECT_WORKER_QUERY_SECONDS": f"{poll_seconds:g}",
                                  "PREFECT_WORKER_PREFETCH_SECONDS": "5",
                                  "PREFECT_WORKER_HEARTBEAT_SECONDS": f"{max(poll_seconds, 5):g}",
                                  # flow runs inherit it: their log lines reach the UI
                                  "PREFECT_LOGGING_LEVEL": "INFO"},
                     api_url=local.api_url)
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type",
                                 "process", "--name", name], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=env, cwd=str(cwd), start_new_session=True)
    child = Child("worker", proc, log)
    local.worker, local.pool = child, pool
    deadline = time.monotonic() + timeout
    while not _worker_online(local, pool, name):
        if proc.poll() is not None:
            raise InvalidInputError(f"the Prefect worker exited with code {proc.returncode}; log {log}: {_tail(log)}")
        if time.monotonic() > deadline:
            raise InvalidInputError(f"the Prefect worker did not come online within {timeout:g} s; log {log}: {_tail(log)}")
        time.sleep(0.5)
    return child


def _worker_online(local: LocalPrefect, pool: str, name: str) -> bool:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with local.client_settings(), get_client(sync_client=True) as client:
        try:
            workers = client.read_workers_for_work_pool(pool)
        except ObjectNotFound:
            return False
    return any(w.name == name and str(getattr(w.status, "value", w.status)).upper() == "ONLINE" for w in workers)


def start(spec: DeploymentSpec | None = None, *, home: str | os.PathLike[str] = DEFAULT_HOME,
          port: int | None = DEFAULT_PORT, host: str = HOST, pool: str | None = None, poll_seconds: float = 5.0,
          timeout: float = 120.0, extra_env: Mapping[str, str] | None = None,
          project_dir: str | os.PathLike[str] = PROJECT_ROOT) -> LocalPrefect:
    """Server, work pool, deployment, worker: everything a scheduled cleaning run needs, started.

    Parameters
    ----------
    spec : DeploymentSpec, optional
        Default the first deployment of ``prefect.yaml`` (``deployments.project_deployment``).
    home, port, host, timeout, extra_env
        As for ``start_server``.
    pool : str, optional
        Work pool (type ``process``; default ``spec.work_pool``).
    poll_seconds : float
        The worker's polling interval.
    project_dir : path-like
        Where the flow is loaded from and runs.

    Returns
    -------
    LocalPrefect
        Running; ``server.json`` written. Anything that fails on the way stops what was started.
    """
    spec = spec or project_deployment(Path(project_dir) / PREFECT_YAML.name)
    pool = pool or spec.work_pool
    local = start_server(home, port=port, host=host, timeout=timeout, extra_env=extra_env)
    try:
        with local.client_settings():
            register(spec, work_pool=pool, project_dir=project_dir)
        local.deployment, local.spec, local.pool = f"clean-dataset/{spec.name}", spec, pool
        start_worker(local, pool, poll_seconds=poll_seconds, timeout=timeout, cwd=project_dir)
        local.write_state()
    except BaseException:
        local.stop()
        raise
    return local


def stop(home: str | os.PathLike[str] = DEFAULT_HOME, *, timeout: float = 30.0) -> list[int]:
    """Stop the local server recorded in ``<home>/server.json`` (started by another process).

    The process that started it is sent SIGTERM and stops its worker and server; whatever it
    leaves (it was killed, say) is ended from the record here, descendants included.

    Returns
    -------
    list of int
        The pids that were running and are now stopped (empty when nothing was recorded).
    """
    path = Path(home).resolve() / STATE_FILE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{path} cannot be read ({exc}); stop the processes by hand and delete it.") from exc
    records = {k: (int(state[k][0]), state[k][1]) for k in ("owner", "worker", "server") if state.get(k)}
    running = [pid for pid, start_ in records.values() if orphans.alive(pid, start_)]
    owner = records.pop("owner", None)
    if owner is not None and owner[0] != os.getpid() and orphans.alive(*owner):
        # the foreground process stops its worker and server itself (and removes the record)
        with contextlib.suppress(OSError):
            os.kill(owner[0], signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and orphans.alive(*owner):
            time.sleep(0.1)
        _end({owner[0]: owner[1]}, 5.0)
    for pid, start_ in records.values():  # whatever it left, or all of it when it was killed
        _stop_tree(pid, start_)
    path.unlink(missing_ok=True)
    return running


class _Stop(Exception):
    """Raised by the signal handlers (SIGINT, SIGTERM, SIGHUP) to leave the foreground loop."""


def _raise_stop(signum: int, frame: Any) -> None:
    raise _Stop(signal.Signals(signum).name)


def serve_forever(local: LocalPrefect, out: Any = None) -> int:
    """Print where everything is and how to stop; wait for Ctrl-C / SIGTERM / a child's death; stop all."""
    out = out or sys.stdout
    spec = local.spec
    schedule = f"cron {spec.cron!r} ({spec.timezone})" if spec and spec.cron else "no schedule"
    print(f"Prefect server: {local.ui_url} (UI), API {local.api_url}; data in {local.home}", file=out)
    print(f"work pool {local.pool!r} with a worker; deployment {local.deployment!r} on {schedule}", file=out)
    print(f"run it now: PREFECT_API_URL={local.api_url} prefect deployment run {local.deployment!r}", file=out)
    print("stop: Ctrl-C here, or `influence-stage server stop` from another terminal (stops server and worker)",
          file=out, flush=True)
    # SIGINT too: a process started in the background of a script inherits SIGINT ignored
    previous = {s: signal.signal(s, _raise_stop) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    code = 0
    try:
        while True:
            dead = next((c for c in local.children() if not c.alive()), None)
            if dead is not None:
                print(f"error: the Prefect {dead.name} exited with code {dead.proc.returncode}; stopping. "
                      f"Log {dead.log}: {_tail(dead.log, 5)}", file=sys.stderr, flush=True)
                code = 1
                break
            time.sleep(0.5)
    except (KeyboardInterrupt, _Stop):
        pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        local.stop()
        print("stopped: server and worker", file=out, flush=True)
    return code

"""No process outlives a killed CLI: a watchdog that ends the CLI's children when the CLI dies.

Without ``PREFECT_API_URL``, Prefect starts a temporary API server (uvicorn) as a child process on
first use and stops it at exit. A CLI killed with SIGKILL runs no exit handler, so that server
would live on, orphaned. ``start_watchdog`` marks the CLI's environment with ``OWNER_VAR`` (its pid
and start time, inherited by every process it starts, Prefect's server included) and starts a
small detached process that watches the CLI: every ``POLL_S`` seconds it records the CLI's
descendants (pid and start time, read from ``/proc``); once the CLI is gone it also collects every
process that carries the mark (a child started moments before the kill, not yet recorded), sends
them SIGTERM, then SIGKILL to those still alive after ``GRACE_S``. A recorded pid is only signalled
while its start time is unchanged, so a pid reused by an unrelated process is never touched. Linux only (``/proc``); elsewhere the watchdog
is not started and a killed run can leave the server behind (stop it with ``pkill -f
prefect.server.api.server``).

Run as ``python <this file> <pid>`` (what ``start_watchdog`` does; only the standard library is
imported, so the watchdog starts at once and stays small).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

POLL_S = 0.2
OWNER_VAR = "INFLUENCE_STAGE_OWNER"
GRACE_S = 5.0
PROC = Path("/proc")


def _stat(pid: int) -> tuple[str, int, int] | None:
    """``(state, parent pid, start time in clock ticks)`` of a process, or None when it is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
    return fields[0], int(fields[1]), int(fields[19])


def alive(pid: int, start: int | None = None) -> bool:
    """Whether ``pid`` runs (not a zombie) and, when given, still has start time ``start``."""
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X") and (start is None or st[2] == start)


def descendants(pid: int, *, exclude: int | None = None) -> dict[int, int]:
    """``{pid: start time}`` of every descendant of ``pid`` (``exclude`` and its subtree left out)."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        st = _stat(int(entry.name))
        if st is not None:
            children.setdefault(st[1], []).append(int(entry.name))
            starts[int(entry.name)] = st[2]
    out: dict[int, int] = {}
    todo = [c for c in children.get(pid, []) if c != exclude]
    while todo:
        c = todo.pop()
        out[c] = starts[c]
        todo += [g for g in children.get(c, []) if g != exclude]
    return out


def marked(mark: str, *, exclude: int) -> dict[int, int]:
    """``{pid: start time}`` of the processes whose environment has ``OWNER_VAR=mark``."""
    needle = f"{OWNER_VAR}={mark}".encode()
    out: dict[int, int] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == exclude:
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        st = _stat(int(entry.name))
        if needle in env and st is not None:
            out[int(entry.name)] = st[2]
    return out


def watch(pid: int) -> None:
    """Record ``pid``'s descendants until it is gone; then end those still running."""
    first = _stat(pid)
    if first is None:
        return
    start = first[2]
    seen: dict[int, int] = {}
    me = os.getpid()
    while alive(pid, start):
        seen.update(descendants(pid, exclude=me))
        time.sleep(POLL_S)
    seen.update(marked(f"{pid}:{start}", exclude=me))
    terminate({p: s for p, s in seen.items() if alive(p, s)}, GRACE_S)


def terminate(procs: dict[int, int], grace: float, *, poll: float = 0.1,
              more: Callable[[], dict[int, int]] | None = None) -> None:
    """SIGTERM ``procs`` (``{pid: start}``), wait up to ``grace`` seconds, then SIGKILL those still alive
    (with ``more()``'s processes: those started meanwhile)."""
    for pid in procs:
        _send(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(p, s) for p, s in procs.items()):
        time.sleep(poll)
    for pid, start in {**procs, **(more() if more is not None else {})}.items():
        if alive(pid, start):
            _send(pid, signal.SIGKILL)


def _send(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except OSError:  # gone already
        pass


def start_watchdog() -> subprocess.Popen | None:
    """Start the watchdog of this process (Linux only); it detaches into its own session."""
    if not sys.platform.startswith("linux") or not PROC.is_dir():
        return None
    me = _stat(os.getpid())
    if me is not None:
        os.environ[OWNER_VAR] = f"{os.getpid()}:{me[2]}"  # inherited by every process started from here on
    # run this file by path: the watchdog needs the standard library only, not the package's imports
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), str(os.getpid())],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True)


if __name__ == "__main__":
    watch(int(sys.argv[1]))

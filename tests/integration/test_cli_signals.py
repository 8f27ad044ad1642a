"""Every stop of the console script is clean: SIGINT (Ctrl-C, to the process group) and SIGTERM (to the
process, or to its group as ``timeout``, systemd and container runtimes send it) during loading,
training and publishing of a small ``clean`` run. Each case asserts the exit code, one line on stderr,
no child process left (Prefect's temporary server, workers), and no version half-written. A finished
run exits within seconds of printing its result.

These start the console script with a temporary Prefect server (about half a minute each on a loaded
2-core machine, from a copy of a migrated database: the ``prefect_home`` fixture): two cases run with the
integration tests (a finished run and a SIGTERM to the group while publishing), the other eight signal
cases with ``-m slow``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from influence_stage.orchestration import orphans

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process checks read /proc (Linux)")

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("influence-stage"))
NAME = "tiny"
EXIT_WITHIN_S = 5.0


@pytest.fixture(scope="module")
def tiny_source(tmp_path_factory) -> Path:
    """120 digits rows as flat pixels (no image column): the smallest run that exercises every step."""
    import pandas as pd

    path = tmp_path_factory.mktemp("src") / "tiny.parquet"
    pd.read_parquet(ROOT / "data" / "digits" / "train.parquet").drop(columns=["image"]).head(120).to_parquet(path)
    return path


def _start(tmp_path: Path, source: Path, home: Path, *extra: str) -> subprocess.Popen:
    """The console script on ``source`` with ``home`` as its ``PREFECT_HOME``."""
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_LOGGING_LEVEL": "WARNING"}
    env.pop("PREFECT_API_URL", None)
    return subprocess.Popen([CLI, "clean", "--source", str(source), "--name", NAME, "--publish-root",
                             str(tmp_path / "pub"), "--cache-dir", str(tmp_path / "cache"), *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own group: a group signal does not reach pytest


_FIRST_SEEN: dict[int, float] = {}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _reached(point: str, proc: subprocess.Popen, tmp_path: Path, children: dict[int, int]) -> bool:
    if point == "loading":  # the flow starts (Prefect's temporary server is up) and reads the source
        # the server child must have finished booting its interpreter: a group signal that lands while a
        # child is still importing `site` makes that child print CPython's own fatal-error lines
        up = [p for p in children if "uvicorn" in _cmdline(p) or "prefect" in _cmdline(p)]
        now = time.monotonic()
        for p in up:
            _FIRST_SEEN.setdefault(p, now)
        return any(now - _FIRST_SEEN[p] > 1.5 for p in up)
    if point == "training":  # θ* is cached: the members are training
        return any((tmp_path / "cache").glob("fit-theta-*"))
    base = tmp_path / "pub" / NAME  # publishing: the version's temporary folder exists
    return base.is_dir() and any(p.name.startswith(".tmp-") for p in base.iterdir())


def _version_state(tmp_path: Path) -> tuple[list[str], list[str]]:
    """(complete versions, leftovers the next publish does not remove) under the dataset's folder."""
    from influence_stage.publish.versions import list_debris

    base = tmp_path / "pub" / NAME
    if not base.is_dir():
        return [], []
    debris = {p.name for p in list_debris(tmp_path / "pub", NAME)}
    versions = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")
                      and (p / "meta.json").is_file())
    unknown = sorted(p.name for p in base.iterdir() if p.name not in debris and p.name not in versions
                     and p.name != "LATEST" and not p.name.startswith(".lock"))
    return versions, unknown


CASES = [  # the first runs in CI (a signal to the group while publishing: exit code, one line, no child left, no half
    # version); `make test-slow` runs all, a signal while loading first
    ("SIGTERM", "group", "publishing"), ("SIGINT", "group", "loading"), ("SIGTERM", "process", "loading"),
    ("SIGTERM", "process", "training"), ("SIGINT", "group", "training"), ("SIGINT", "group", "publishing"),
    ("SIGTERM", "process", "publishing"), ("SIGTERM", "group", "loading"), ("SIGTERM", "group", "training"),
]


@pytest.mark.parametrize("sig, to, point", [c if i < 1 else pytest.param(*c, marks=pytest.mark.slow)
                                            for i, c in enumerate(CASES)], ids=lambda v: str(v))
def test_a_signal_stops_the_run_with_one_line_no_child_left_and_no_half_version(tmp_path, tiny_source, sig, to,
                                                                                point, prefect_home):
    proc = _start(tmp_path, tiny_source, prefect_home)
    children: dict[int, int] = {}
    deadline = time.monotonic() + 300
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            children.update(orphans.descendants(proc.pid))
            if _reached(point, proc, tmp_path, children):
                break
            time.sleep(0.005)
        if proc.poll() is not None:
            out, err = proc.communicate()
            if proc.returncode == 0 and point == "publishing":
                pytest.skip("the run published before the poll saw its temporary folder")
            pytest.fail(f"the run ended (exit {proc.returncode}) before {point}: {err[-1500:]}")
        children.update(orphans.descendants(proc.pid))
        signum = getattr(signal, sig)
        sent = time.monotonic()
        if to == "group":
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 128 + signum, err[-2000:]
    assert took <= EXIT_WITHIN_S, f"exit took {took:.1f} s"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: interrupted by {sig};"), lines
    assert "Traceback" not in err
    time.sleep(1.0)  # ended children are reaped by init
    left = [p for p, start in children.items() if orphans.alive(p, start)] + _marked_by(proc.pid)
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert left == [], [_cmdline(p) for p in left]
    versions, unknown = _version_state(tmp_path)
    assert unknown == []  # only complete versions, or debris the next publish removes
    for v in versions:  # a version that exists is complete: its meta.json lists files that are all there
        import json

        meta = json.loads((tmp_path / "pub" / NAME / v / "meta.json").read_text())
        files = meta.get("files") or meta.get("checksums") or {}
        assert all((tmp_path / "pub" / NAME / v / f).exists() for f in files)


def test_a_finished_run_exits_promptly_after_printing_its_result(tmp_path, tiny_source, prefect_home):
    proc = _start(tmp_path, tiny_source, prefect_home, "--progress")  # stderr is a pipe: progress as plain lines
    printed = None
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("report:"):
                printed = time.monotonic()
                break
        rest = proc.communicate(timeout=120)
        exited = time.monotonic()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert printed is not None and proc.returncode == 0, rest[1][-2000:]
    assert exited - printed <= 3.0, f"{exited - printed:.2f} s between the result and the exit"
    err = rest[1]
    assert "\r" not in err and "\x1b" not in err  # a log file of a --progress run: no carriage returns, no escapes
    # the bars' counts ("50/50", or scaled as "3.84k/3.84k"), as plain lines
    assert re.search(r"\d[\d.]*[kMG]?/\d[\d.]*[kMG]?", err), err[-1000:]
    assert _version_state(tmp_path) == (["v0001"], [])
    time.sleep(1.0)
    assert _marked_by(proc.pid) == []  # no process it started (the temporary Prefect server) is left


def _marked_by(pid: int) -> list[int]:
    """Running processes whose environment carries the CLI's watchdog mark ``<pid>:<start>``."""
    needle = f"{orphans.OWNER_VAR}={pid}:".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                env = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(e.startswith(needle) for e in env) and orphans.alive(int(entry.name)):
                found.append(int(entry.name))
    return found

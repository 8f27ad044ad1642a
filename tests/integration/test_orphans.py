"""A CLI killed with SIGKILL leaves no Prefect server behind (the watchdog in influence_stage.orchestration.orphans)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from influence_stage.orchestration import orphans

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the watchdog reads /proc (Linux)")


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_watch_ends_the_children_of_a_dead_parent():
    # parent: a shell that starts a long sleep and then waits; killing the shell orphans the sleep
    parent = subprocess.Popen(["sh", "-c", "sleep 300 & wait"])
    for _ in range(100):
        kids = orphans.descendants(parent.pid)
        if kids:
            break
        time.sleep(0.05)
    assert kids, "the child did not start"
    watcher = subprocess.Popen([sys.executable, orphans.__file__, str(parent.pid)])
    time.sleep(1.0)  # it records the child
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    watcher.wait(timeout=20)
    assert not any(orphans.alive(p, s) for p, s in kids.items())


def test_a_marked_process_started_just_before_the_kill_is_found(monkeypatch):
    monkeypatch.setenv(orphans.OWNER_VAR, "123:456")
    proc = subprocess.Popen(["sleep", "30"])
    try:
        found = orphans.marked("123:456", exclude=os.getpid())
        assert proc.pid in found and os.getpid() not in found
        assert proc.pid not in orphans.marked("123:457", exclude=os.getpid())
    finally:
        proc.kill()
        proc.wait()


def test_a_pid_reused_by_another_process_is_not_touched():
    proc = subprocess.Popen(["sleep", "30"])
    try:
        start = orphans._stat(proc.pid)[2]
        assert orphans.alive(proc.pid, start) and not orphans.alive(proc.pid, start + 1)
    finally:
        proc.kill()
        proc.wait()
    assert not orphans.alive(proc.pid, start)


def test_a_killed_cli_leaves_no_prefect_server(tmp_path):
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_LOGGING_LEVEL": "WARNING",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "GX_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    cli = Path(sys.executable).with_name("influence-stage")
    proc = subprocess.Popen([str(cli), "clean", "--source", str(ROOT / "data" / "digits" / "train.parquet"),
                             "--name", "killed", "--feature-columns", "px_*", "--publish-root", str(tmp_path / "pub"),
                             "--cache-dir", str(tmp_path / "cache")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and server is None:
        server = next((p for p in orphans.descendants(proc.pid) if "uvicorn" in _cmdline(p)), None)
        time.sleep(0.2)
    if server is None:
        proc.kill()
        pytest.fail("the CLI never started Prefect's temporary server")
    start = orphans._stat(server)[2]
    proc.send_signal(signal.SIGKILL)  # at once: the watchdog may not have recorded the server yet
    proc.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and orphans.alive(server, start):
        time.sleep(0.2)
    alive = orphans.alive(server, start)
    if alive:
        os.kill(server, signal.SIGKILL)
    assert not alive, "Prefect's server outlived the killed CLI"


def test_the_console_script_is_quiet_a_task_failure_is_one_line(tmp_path, prefect_home):
    import pandas as pd

    df = pd.read_parquet(ROOT / "data" / "digits" / "train.parquet").drop(columns=["image"]).head(200)
    df = df.astype({"px_5": object})
    df.loc[7, "px_5"] = "?"
    df.to_csv(tmp_path / "d.csv", index=False)
    env = {**os.environ, "PREFECT_HOME": str(prefect_home), "PREFECT_LOGGING_LEVEL": "INFO"}
    cli = Path(sys.executable).with_name("influence-stage")
    done = subprocess.run([str(cli), "clean", "--source", str(tmp_path / "d.csv"), "--name", "q",
                           "--publish-root", str(tmp_path / "pub"), "--cache-dir", str(tmp_path / "cache")],
                          env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: column 'px_5' is numeric except for 1 cell"), done.stderr
    version = subprocess.run([str(cli), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("influence-stage ")

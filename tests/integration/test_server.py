"""Scheduled cleaning runs on a real Prefect server: deployment, worker, skip-unchanged, failures, teardown.

The fast tests check the pieces without a server (prefect.yaml through FlowConfig, the deployment's
limit and parameters, the refusals, the failure notice against a local HTTP receiver). The live
tests start ``influence-stage server start`` (a real ``prefect server start`` on a free 127.0.0.1
port, a temporary PREFECT_HOME, a process work pool and a worker), trigger the deployment with
``run_deployment`` and stop everything with ``influence-stage server stop``; they run in order.
"""

from __future__ import annotations

import http.server
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402

pytest.importorskip("prefect")

from influence_stage.cli import _parser, flow_config, main  # noqa: E402
from influence_stage.errors import InvalidInputError  # noqa: E402
from influence_stage.orchestration import deployments, orphans, server  # noqa: E402
from influence_stage.orchestration.flow import FlowConfig  # noqa: E402
from influence_stage.publish.versions import latest_version, list_versions, load_published  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "data" / "digits" / "train.parquet"
ROWS = 300
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process checks read /proc (Linux)")


def small_config(tmp: Path, source: Path, **overrides) -> dict:
    """A FlowConfig mapping that cleans ``source`` in seconds (small MLP, two one-cycle chains)."""
    return {"source": str(source), "name": "small", "publish_root": str(tmp / "pub"), "cache_dir": str(tmp / "cache"),
            "clean": {"label_column": "label", "feature_columns": ["px_*"], "model": "mlp", "action": "drop",
                      "gex": {"chains": 2, "cycles": 1, "ft_lr": 0.4}, "fit": {"epochs": 10}},
            **overrides}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """``(folder, source parquet, config YAML)``: the first ROWS demo rows."""
    tmp = tmp_path_factory.mktemp("sched")
    source = tmp / "small.parquet"
    pd.read_parquet(DIGITS).head(ROWS).to_parquet(source, index=False)
    config = tmp / "small.yaml"
    config.write_text(yaml.safe_dump(small_config(tmp, source)))
    return tmp, source, config


class Receiver:
    """An HTTP server on 127.0.0.1 that records the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append({"path": self.path, "type": self.headers.get("Content-Type"),
                                 "body": json.loads(body)})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def receiver():
    r = Receiver()
    yield r
    r.close()


# --------------------------------------------------------------------------------------------------
# without a server
# --------------------------------------------------------------------------------------------------


def test_prefect_yaml_deployment_loads_through_flow_config():
    spec = deployments.project_deployment()
    assert spec.name == "influence-stage-digits" and spec.work_pool == "influence-stage"
    assert spec.cron == "0 3 * * *" and spec.timezone == "UTC" and spec.entrypoint == deployments.ENTRYPOINT
    assert isinstance(spec.params, FlowConfig) and spec.params.clean.threshold == "estimate"
    assert spec.params.skip_unchanged and spec.params.keep == 10 and spec.params.notify_webhook is None
    assert (ROOT / spec.params.source).is_file() and (ROOT / spec.entrypoint.split(":")[0]).is_file()
    raw = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"][0]
    assert raw["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}  # what `prefect deploy` reads


@pytest.mark.parametrize("entry, match", [
    ({"name": "x"}, "has no parameters.params mapping"),
    ({"name": "x", "parameters": {"params": {"source": "s", "name": "n", "treshold": 1}}}, "treshold"),
    ({"name": "x", "parameters": {"params": {"source": "s", "name": "n", "clean": {"threshold": "otsu"}}}},
     "otsu"),
    ({"name": "x", "parameters": {"params": {"source": "s", "name": "n", "keep": 0}}}, "keep"),
    ({"name": "x", "parameters": {"params": {"source": "s", "name": "n", "notify_webhook": "ftp://x"}}},
     "notify_webhook"),
    ({"name": "x", "parameters": {"params": {"source": "s", "name": "n"}}, "schedules": [{"cron": "every day"}]},
     "cron 'every day'.*not a valid schedule"),
])
def test_a_bad_prefect_yaml_entry_is_refused_with_the_field(tmp_path, entry, match):
    path = tmp_path / "prefect.yaml"
    path.write_text(yaml.safe_dump({"deployments": [entry]}))
    with pytest.raises(InvalidInputError, match=match):
        deployments.project_deployment(path)


def test_a_missing_deployment_or_file_is_refused(tmp_path):
    with pytest.raises(InvalidInputError, match=r"has no deployment 'nope'; found \['influence-stage-digits'\]"):
        deployments.project_deployment(ROOT / "prefect.yaml", "nope")
    with pytest.raises(InvalidInputError, match="missing.yaml does not exist"):
        deployments.project_deployment(tmp_path / "missing.yaml")


def test_the_deployment_runs_one_at_a_time_and_skips_unchanged_data(small, tmp_path):
    folder, source, config = small
    params = FlowConfig.from_yaml(config)
    built = deployments.build_deployment(params, cron="0 3 * * *")
    assert built.name == "influence-stage-small" and sorted(built.tags) == ["influence_stage", "small"]
    assert built.concurrency_limit == 1
    assert built.concurrency_options.collision_strategy.value == "ENQUEUE"
    assert built.parameters["params"]["skip_unchanged"] is True  # default on for deployments
    explicit = tmp_path / "explicit.yaml"
    explicit.write_text(yaml.safe_dump(small_config(folder, source, skip_unchanged=False)))
    # a config that says skip_unchanged: false keeps publishing every run
    assert deployments.deployment_parameters(FlowConfig.from_yaml(explicit))["params"]["skip_unchanged"] is False


def test_serve_refuses_the_temporary_server_at_once(small, monkeypatch, capsys):
    _, _, config = small
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    start = time.monotonic()
    assert main(["serve", "--config", str(config), "--cron", "0 3 * * *"]) == 2
    assert time.monotonic() - start < 10
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: influence-stage serve needs a Prefect server")
    assert "influence-stage server start" in err and "PREFECT_API_URL" in err
    with pytest.raises(InvalidInputError, match="schedules never fire"):
        deployments.serve(FlowConfig.from_yaml(config), cron="0 3 * * *")


def test_deploy_without_a_server_is_refused(small, monkeypatch, capsys):
    _, _, config = small
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert main(["server", "deploy", "--config", str(config)]) == 2
    assert "influence-stage server deploy needs a Prefect server" in capsys.readouterr().err
    with pytest.raises(InvalidInputError, match="registering a deployment needs a Prefect server"):
        deployments.register(deployments.DeploymentSpec.for_params(FlowConfig.from_yaml(config)))


def test_cli_flags_for_scheduled_runs(small):
    _, _, config = small
    args = _parser().parse_args(["clean", "--config", str(config), "--skip-unchanged", "--keep", "3",
                                 "--notify-webhook", "http://127.0.0.1:9/hook"])
    params = flow_config(args)
    assert params.skip_unchanged and params.keep == 3 and params.notify_webhook == "http://127.0.0.1:9/hook"
    assert not flow_config(_parser().parse_args(["clean", "--config", str(config)])).skip_unchanged
    with pytest.raises(InvalidInputError, match="keep"):
        flow_config(_parser().parse_args(["clean", "--config", str(config), "--keep", "0"]))
    with pytest.raises(InvalidInputError, match="notify_webhook"):
        flow_config(_parser().parse_args(["clean", "--config", str(config), "--notify-webhook", "hooks.example"]))


def test_failure_notice_posts_json_to_a_local_receiver(receiver, caplog):
    run = SimpleNamespace(name="brave-otter", id="1234", deployment_id=None,
                          parameters={"params": {"name": "small", "source": "s.parquet",
                                                 "notify_webhook": receiver.url}})
    state = SimpleNamespace(type=SimpleNamespace(value="FAILED"), message="validation failed, nothing\n published")
    deployments.notify_failure(None, run, state)
    assert receiver.received == [{"path": "/hook", "type": "application/json", "body": {
        "event": "influence_stage.run.failed", "flow_run": "brave-otter", "flow_run_id": "1234",
        "deployment_id": None, "dataset": "small", "source": "s.parquet", "state": "FAILED",
        "reason": "validation failed, nothing published"}}]
    # no webhook configured: nothing sent; an unreachable one: logged, never raised
    deployments.notify_failure(None, SimpleNamespace(name="r", parameters={"params": {"name": "small"}}), state)
    assert len(receiver.received) == 1
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    run.parameters["params"]["notify_webhook"] = f"http://127.0.0.1:{closed}/hook"
    with caplog.at_level(logging.WARNING, logger=deployments.__name__):
        deployments.notify_failure(None, run, state)
    assert "failure notice for brave-otter could not be posted" in caplog.text


def test_stop_with_nothing_running_and_a_port_in_use(tmp_path):
    assert server.stop(tmp_path) == []
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(InvalidInputError, match=f"port {port} on 127.0.0.1 is already in use"):
            server.start_server(tmp_path, port=port)


@linux_only
def test_a_server_that_does_not_answer_in_time_is_stopped_and_its_log_shown(tmp_path, monkeypatch):
    seen = set()
    real = server.Child.__post_init__

    def record(self):
        real(self)
        seen.add((self.pid, self.start))

    monkeypatch.setattr(server.Child, "__post_init__", record)
    with pytest.raises(InvalidInputError, match=r"did not answer http://127\.0\.0\.1:\d+/api/health within 0\.5 s; "
                                                r"log .*server\.log"):
        server.start_server(tmp_path, port=0, timeout=0.5)
    assert seen and not any(orphans.alive(p, s) for p, s in seen)


@linux_only
@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "a child exits"])
def test_the_foreground_process_stops_every_child_and_grandchild(tmp_path, capsys, how):
    """Ctrl-C, SIGTERM or a dead child end ``serve_forever``; no process it watched is left (stand-in children)."""
    import signal

    log = tmp_path / "child.log"
    log.write_text("boom\n")

    def child(name, command):
        return server.Child(name, subprocess.Popen(command, start_new_session=True), log)

    served = child("server", ["sh", "-c", "sleep 120 & wait"])  # a grandchild, as a flow run is to the worker
    worker = child("worker", ["sh", "-c", "sleep 2; exit 3"] if how == "a child exits" else ["sleep", "120"])
    deadline = time.monotonic() + 10
    while not orphans.descendants(served.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    procs = {served.pid: served.start, worker.pid: worker.start, **orphans.descendants(served.pid)}
    assert len(procs) == 3
    local = server.LocalPrefect(home=tmp_path, host="127.0.0.1", port=1, server=served, worker=worker, pool="p",
                                deployment="clean-dataset/x")
    if how != "a child exits":
        threading.Timer(1.0, os.kill, (os.getpid(), getattr(signal, how))).start()
    previous = signal.getsignal(signal.SIGTERM)
    assert server.serve_forever(local) == (1 if how == "a child exits" else 0)
    assert signal.getsignal(signal.SIGTERM) == previous  # its handlers are undone
    assert not [p for p, s in procs.items() if orphans.alive(p, s)]
    out, err = capsys.readouterr()
    assert "stop: Ctrl-C here, or `influence-stage server stop`" in out and out.endswith("stopped: server and worker\n")
    if how == "a child exits":
        assert err.startswith("error: the Prefect worker exited with code 3; stopping.") and "boom" in err


# --------------------------------------------------------------------------------------------------
# a real server, worker and deployment (in order)
# --------------------------------------------------------------------------------------------------


def _cli() -> str:
    return str(Path(sys.executable).with_name("influence-stage"))


class Live(SimpleNamespace):
    """The running ``influence-stage server start``: process, home, API URL, deployment, receiver."""

    def settings(self):
        from prefect.settings import PREFECT_API_URL, temporary_settings

        return temporary_settings(updates={PREFECT_API_URL: self.api_url})

    def run(self, params: dict | None = None, timeout: float = 240):
        from prefect.deployments import run_deployment

        with self.settings():
            return run_deployment(self.deployment, parameters=None if params is None else {"params": params},
                                  timeout=timeout, poll_interval=1)

    def summary(self, flow_run_id) -> str:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

        with self.settings(), get_client(sync_client=True) as client:
            found = client.read_artifacts(artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["cleaning-summary"]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
        assert len(found) == 1, found
        return str(found[0].data)


def _tree(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def live(small):
    tmp, source, config = small
    home = tmp / "prefect"
    env = {**os.environ, "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "2",
           "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2"}
    env.pop("PREFECT_API_URL", None)
    out = open(tmp / "start.out", "w+")
    started = time.monotonic()
    proc = subprocess.Popen([_cli(), "server", "start", "--home", str(home), "--port", "0", "--config", str(config),
                             "--poll-seconds", "1"], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
    state = home / server.STATE_FILE
    while not state.is_file() or "stop:" not in (tmp / "start.out").read_text():
        if proc.poll() is not None or time.monotonic() - started > 180:
            proc.kill()
            pytest.fail(f"influence-stage server start did not come up: {(tmp / 'start.out').read_text()[-3000:]}")
        time.sleep(0.5)
    recorded = json.loads(state.read_text())
    receiver = Receiver()
    handle = Live(proc=proc, home=home, tmp=tmp, source=source, config=yaml.safe_load(config.read_text()),
                  api_url=recorded["api_url"], deployment=recorded["deployment"], state=recorded,
                  receiver=receiver, out=tmp / "start.out", startup_s=time.monotonic() - started)
    # a second dataset on a schedule that fires every minute: its runs come from the scheduler alone
    minutely_source = tmp / "minutely.parquet"  # its own copy: a later test changes small.parquet
    minutely_source.write_bytes(source.read_bytes())
    minutely = FlowConfig(**{**small_config(tmp, minutely_source), "name": "minutely",
                             "publish_root": str(tmp / "pub-minutely"), "clean": FlowConfig.from_yaml(config).clean})
    with handle.settings():
        deployments.register(deployments.DeploymentSpec.for_params(minutely, cron="* * * * *"))
    handle.minutely = "clean-dataset/influence-stage-minutely"
    yield handle
    receiver.close()
    if proc.poll() is None:  # a failed test left it running: stop it all the same
        subprocess.run([_cli(), "server", "stop", "--home", str(home)], env=env, timeout=120)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@linux_only
def test_live_server_registers_the_deployment_with_its_schedule_pool_and_limit(live):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId, FlowRunFilter

    out = live.out.read_text()
    assert f"Prefect server: {live.api_url[:-4]} (UI), API {live.api_url}" in out
    assert "stop: Ctrl-C here, or `influence-stage server stop`" in out
    assert live.api_url.startswith("http://127.0.0.1:")
    with live.settings(), get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name(live.deployment)
        assert dep.work_pool_name == "influence-stage" and sorted(dep.tags) == ["influence_stage", "small"]
        assert [s.schedule.cron for s in dep.schedules] == ["0 3 * * *"]
        assert dep.global_concurrency_limit.limit == 1
        assert dep.concurrency_options.collision_strategy.value == "ENQUEUE"
        assert dep.parameters["params"]["skip_unchanged"] is True and dep.parameters["params"]["source"] == str(
            live.source)
        assert client.read_work_pool("influence-stage").type == "process"
        assert [w.status.value for w in client.read_workers_for_work_pool("influence-stage")] == ["ONLINE"]
        # the scheduler service turns the cron schedule into runs at 03:00 UTC
        deadline = time.monotonic() + 60
        while True:
            runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep.id])),
                                         flow_run_filter=FlowRunFilter())
            scheduled = [r for r in runs if r.state and r.state.is_scheduled()]
            if scheduled or time.monotonic() > deadline:
                break
            time.sleep(1)
    assert scheduled, "the scheduler created no run for the cron schedule"
    assert all((r.expected_start_time.hour, r.expected_start_time.minute) == (3, 0) for r in scheduled)


@linux_only
def test_live_a_triggered_run_publishes_a_complete_version(live):
    started = time.monotonic()
    run = live.run()
    live.first_run_s = time.monotonic() - started
    assert run.state.is_completed(), run.state.message
    pub = live.tmp / "pub"
    assert list_versions(pub, "small") == ["v0001"] and latest_version(pub, "small") == "v0001"
    ds, manifest, meta = load_published(pub / "small" / "v0001", verify=True)
    assert sorted(manifest["row_id"]) == list(range(ROWS))  # every input row once
    assert meta["rows_in"] == ROWS and meta["rows_out"] == len(ds) == int((manifest["action"] != "drop").sum())
    assert meta["validation"]["input"]["success"] and meta["validation"]["output"]["success"]
    assert meta["fingerprint"] and meta["config_fingerprint"]
    assert {"report.html", "data.parquet", "manifest.parquet", "config.json"} <= set(meta["files"])
    assert "Published: `" in live.summary(run.id)


@pytest.mark.slow  # in make test: the schedule's second run on unchanged data publishes nothing (below)
@linux_only
def test_live_a_second_run_on_unchanged_data_publishes_nothing(live):
    pub = live.tmp / "pub"
    if not list_versions(pub, "small"):  # run alone (make test-slow): the first run publishes v0001
        assert live.run().state.is_completed()
    before = _tree(pub)
    run = live.run()
    assert run.state.is_completed(), run.state.message
    assert list_versions(pub, "small") == ["v0001"] and _tree(pub) == before
    assert "unchanged, nothing published (latest v0001)" in live.summary(run.id)


@linux_only
def test_live_a_failed_gate_is_a_failed_run_with_its_reason_and_a_notice(live):
    pub = live.tmp / "pub"
    before = _tree(pub)
    strict = {**live.config, "max_drop_fraction": 0.001, "notify_webhook": live.receiver.url}
    run = live.run(strict)
    assert run.state.is_failed()
    message = run.state.message
    assert message.startswith("validation failed, nothing published: suite 'output'") and "\n" not in message
    assert "drop" in message
    live.failed_message = message
    assert list_versions(pub, "small") == ["v0001"] and latest_version(pub, "small") == "v0001"
    assert _tree(pub) == before  # the previous version as it was
    deadline = time.monotonic() + 30
    while not live.receiver.received and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [r["body"] for r in live.receiver.received] == [{
        "event": "influence_stage.run.failed", "flow_run": run.name, "flow_run_id": str(run.id),
        "deployment_id": str(run.deployment_id), "dataset": "small", "source": str(live.source), "state": "FAILED",
        "reason": message}]


@pytest.mark.slow  # in make test: the deployment's concurrency limit is registered (test_live_server_registers_...)
@linux_only
def test_live_a_changed_source_publishes_once_though_triggered_twice(live):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    pub = live.tmp / "pub"
    frame = pd.read_parquet(live.source)
    frame.loc[frame.index[:5], "label"] = (frame.loc[frame.index[:5], "label"] + 1) % 10  # five labels changed
    frame.to_parquet(live.source, index=False)
    with live.settings():
        ids = [run_deployment(live.deployment, timeout=0).id for _ in range(2)]  # both at once
        with get_client(sync_client=True) as client:
            deadline = time.monotonic() + 300
            while True:
                runs = [client.read_flow_run(i) for i in ids]
                if all(r.state.is_final() for r in runs) or time.monotonic() > deadline:
                    break
                time.sleep(1)
            histories = [[s.name for s in client.read_flow_run_states(i)] for i in ids]
    assert all(r.state.is_completed() for r in runs), [(r.state.name, r.state.message) for r in runs]
    assert list_versions(pub, "small") == ["v0001", "v0002"] and latest_version(pub, "small") == "v0002"
    load_published(pub / "small" / "v0002", verify=True)
    first, second = sorted(runs, key=lambda r: r.start_time)
    assert second.start_time >= first.end_time  # one run at a time
    assert any("AwaitingConcurrencySlot" in h for h in histories), histories  # the second waited for a slot
    summaries = {r.id: live.summary(r.id) for r in runs}
    assert "Published: `" in summaries[first.id]
    assert "unchanged, nothing published (latest v0002)" in summaries[second.id]


@pytest.mark.slow  # in make test: deploying to the test server (test_live_server_registers_...)
@linux_only
def test_live_deploy_to_an_existing_server_uses_its_work_pool(live, tmp_path, capsys):
    from prefect.client.orchestration import get_client

    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**live.config, "name": "other"}))
    with live.settings():  # PREFECT_API_URL names the server
        assert main(["server", "deploy", "--config", str(other), "--pool", "influence-stage"]) == 0
    out = capsys.readouterr().out
    assert "registered deployment 'clean-dataset/influence-stage-other'" in out and live.api_url in out
    assert "prefect worker start --pool influence-stage" in out
    env = {**os.environ, "PREFECT_API_URL": live.api_url}
    with live.settings(), get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name("clean-dataset/influence-stage-other")
    assert dep.work_pool_name == "influence-stage" and dep.global_concurrency_limit.limit == 1
    assert dep.parameters["params"]["name"] == "other" and dep.parameters["params"]["skip_unchanged"] is True
    # Prefect's own CLI reads prefect.yaml the same way: one run at a time, skip_unchanged, the schedule
    done = subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"], env=env,
                          capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with live.settings():
        deployments.register(deployments.DeploymentSpec.for_params(FlowConfig.from_yaml(other)),
                             work_pool="team-pool")
    with live.settings(), get_client(sync_client=True) as client:
        # a pool the server lacks is created as a process pool; the deployment moves to it
        assert client.read_work_pool("team-pool").type == "process"
        assert client.read_deployment_by_name("clean-dataset/influence-stage-other").work_pool_name == "team-pool"
        demo = client.read_deployment_by_name("clean-dataset/influence-stage-digits")
    assert demo.global_concurrency_limit.limit == 1 and demo.concurrency_options.collision_strategy.value == "ENQUEUE"
    assert demo.parameters["params"]["skip_unchanged"] is True and demo.parameters["params"]["keep"] == 10
    assert [s.schedule.cron for s in demo.schedules] == ["0 3 * * *"] and demo.work_pool_name == "influence-stage"


@linux_only
def test_live_the_schedule_fires_and_its_second_run_publishes_nothing(live):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with live.settings(), get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name(live.minutely)
        deadline = time.monotonic() + 240
        while True:
            runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep.id])))
            done = sorted((r for r in runs if r.state and r.state.is_final()), key=lambda r: r.expected_start_time)
            if len(done) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(1)
        client.pause_deployment(dep.id)  # no more runs while the rest is checked and stopped
    assert len(done) >= 2, [(r.name, r.state.name) for r in runs]
    first, second = done[:2]
    assert all(r.state.is_completed() and r.auto_scheduled for r in (first, second))
    assert {(r.expected_start_time.second, r.expected_start_time.microsecond) for r in (first, second)} == {(0, 0)}
    assert second.expected_start_time > first.expected_start_time  # one cron tick after another
    assert "Published: `" in live.summary(first.id)
    assert "unchanged, nothing published (latest v0001)" in live.summary(second.id)
    assert list_versions(live.tmp / "pub-minutely", "minutely") == ["v0001"]


@linux_only
def test_live_stop_leaves_no_server_or_worker_process(live, capsys):
    procs = {live.proc.pid: orphans._stat(live.proc.pid)[2], **orphans.descendants(live.proc.pid)}
    names = {p: Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode() for p in procs
             if Path(f"/proc/{p}/cmdline").exists()}
    assert any("prefect server start" in c for c in names.values())
    assert any("prefect worker start" in c for c in names.values())
    port = int(live.api_url.rsplit(":", 1)[1].split("/")[0])
    started = time.monotonic()
    capsys.readouterr()
    assert main(["server", "stop", "--home", str(live.home)]) == 0
    assert capsys.readouterr().out.startswith("stopped: processes ")
    assert live.proc.wait(timeout=60) == 0
    deadline = time.monotonic() + 20  # the watchdog leaves once the foreground process is gone
    while time.monotonic() < deadline and any(orphans.alive(p, s) for p, s in procs.items()):
        time.sleep(0.2)
    left = {p: names.get(p) for p, s in procs.items() if orphans.alive(p, s)}
    assert not left, f"left running: {left}"
    assert not (live.home / server.STATE_FILE).exists()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # nothing listens on the port any more
    assert "stopped: server and worker" in live.out.read_text()
    print(f"\nlive server: startup {live.startup_s:.1f} s, first run {live.first_run_s:.1f} s, "
          f"stop {time.monotonic() - started:.1f} s; failed run's state message: {getattr(live, 'failed_message', '')}")

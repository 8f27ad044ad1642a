"""Scoring as tasks: chains and loss shards that read their own rows, on threads and on Dask worker processes."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification

pytest.importorskip("prefect_dask")
distributed = pytest.importorskip("distributed")
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect_dask import DaskTaskRunner

from influence_stage import InvalidInputError
from influence_stage.engine.gex import result_from_members
from influence_stage.engine.loss_store import LossStore
from influence_stage.engine.members import build_chains
from influence_stage.orchestration import dask_runner
from influence_stage.orchestration.dask_runner import check_scheduler, dask_task_runner
from influence_stage.orchestration.prefect_executor import score_on_tasks
from influence_stage.stage import shards, steps
from influence_stage.stage.run import scale_step, score_step

CONFIG = steps.CleanConfig.from_mapping({"label_column": "label", "model": "mlp", "fit": {"epochs": 5},
                                         "gex": {"chains": 3, "cycles": 2, "ft_lr": 0.4}})


def frame(n: int = 500, d: int = 8) -> pd.DataFrame:
    X, y = make_classification(n_samples=n, n_features=d, n_informative=5, n_classes=3, n_clusters_per_class=1,
                               random_state=0)
    df = pd.DataFrame(X.astype(np.float32), columns=[f"f{i}" for i in range(d)])
    df["label"] = y
    return df


@pytest.fixture(scope="module")
def harness(prefect_api):
    """The test process's one Prefect API (tests/conftest.py), instead of a server of this module's own."""
    yield prefect_api


@pytest.fixture(scope="module")
def cluster(harness):
    """A local Dask cluster of 2 worker processes, one thread each."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        yield c


@pytest.fixture(scope="module")
def fitted():
    df = frame()
    prepared = steps.prepare(df, CONFIG)
    features = steps.featurize_step(prepared, CONFIG)
    learner = steps.make_model_step(features, CONFIG, prepared=prepared)
    return prepared, features, learner


@flow(name="scoring-test")
def scoring(df: pd.DataFrame, folder: str, chains_per_task: int | None = None, shard_rows: int | None = None):
    prepared = steps.prepare(df, CONFIG)
    features = steps.featurize_step(prepared, CONFIG)
    learner = steps.make_model_step(features, CONFIG, prepared=prepared)
    result = score_on_tasks(learner, prepared, features, CONFIG, cache_dir=folder, chains_per_task=chains_per_task,
                            shard_rows=shard_rows)["result"]
    return result.scores, np.asarray(result.loss_matrix)


def test_two_worker_processes_give_the_single_process_scores(cluster, tmp_path):
    df = frame()
    threads, L_threads = scoring(df, str(tmp_path / "threads"), chains_per_task=1, shard_rows=150)
    runner = DaskTaskRunner(address=cluster.scheduler_address)
    with distributed.Client(cluster) as client, distributed.get_task_stream(client) as stream:
        on_dask, L_dask = scoring.with_options(task_runner=runner)(df, str(tmp_path / "dask"), chains_per_task=1,
                                                                    shard_rows=150)
    np.testing.assert_array_equal(on_dask, threads)
    np.testing.assert_array_equal(L_dask, L_threads)
    assert L_dask.shape == (len(df), 6)
    # the 3 chain tasks and 4 loss shards ran on both worker processes
    assert len({t["worker"] for t in stream.data}) == 2
    # the library's single process (all chains in one batched run) gives the same scores
    prepared = steps.prepare(df, CONFIG)
    features = steps.featurize_step(prepared, CONFIG)
    learner = steps.make_model_step(features, CONFIG, prepared=prepared)
    np.testing.assert_allclose(score_step(learner, features, CONFIG, prepared=prepared).scores, threads,
                               rtol=1e-5, atol=1e-7)


def test_a_rerun_evaluates_only_the_unfinished_members_of_each_shard(fitted, tmp_path, monkeypatch):
    prepared, features, learner = fitted
    gex = CONFIG.gex
    auto = scale_step(learner, prepared, features, CONFIG)
    members = [m for chain in build_chains(learner, features.tensor_data(), config=gex, ft_lr=0.4,
                                                  chain_ids=[0, 1], prefixes=None) for m in chain]
    ref = shards.write_rows(prepared, features, tmp_path / "rows", fingerprint="fp")
    ranges = shards.row_shards(len(features.y), 200)
    assert ranges == [(0, 200), (200, 400), (400, 500)]
    folder = str(tmp_path / "shards")
    real = type(learner).per_sample_loss
    calls = {"n": 0}

    def dies_on_the_third(self, data):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt  # killed between members 0 and 1 of the second shard
        return real(self, data)

    monkeypatch.setattr(type(learner), "per_sample_loss", dies_on_the_third)
    shards.loss_shard(ref, learner, members, 0, 200, folder, "k")
    with pytest.raises(KeyboardInterrupt):
        shards.loss_shard(ref, learner, members, 200, 400, folder, "k")
    store = LossStore(tmp_path / "matrix", key="k", n_rows=len(features.y), n_members=len(members))
    assert shards.gather_losses(store, ranges, folder, "k") == []  # the third shard has nothing yet
    monkeypatch.setattr(type(learner), "per_sample_loss", real)
    for s, e in ranges[2:]:
        shards.loss_shard(ref, learner, members, s, e, folder, "k")
    assert shards.gather_losses(store, ranges, folder, "k") == [0]  # the only member done in every shard
    counted = {"n": 0}

    def counting(self, data):
        counted["n"] += 1
        return real(self, data)

    monkeypatch.setattr(type(learner), "per_sample_loss", counting)
    shards.loss_shard(ref, learner, members, 0, 200, folder, "k")
    assert counted["n"] == 0  # finished shard: nothing evaluated
    shards.loss_shard(ref, learner, members, 200, 400, folder, "k")
    assert counted["n"] == 4 - 1  # second shard: members 1, 2 and 3 only
    counted["n"] = 0
    result = shards.scores_from_shards(learner, members, prepared, features, gex, CONFIG.fit, 0.4, auto,
                                       store=store, shards=ranges, folder=folder, key="k")
    assert counted["n"] == 1  # the base loss at θ*; every member column came from the shards
    assert store.done() == [0, 1, 2, 3]
    monkeypatch.setattr(type(learner), "per_sample_loss", real)
    plain = result_from_members(learner, features.tensor_data(), members, config=gex, ft_lr=0.4, auto=auto,
                                fit_config=CONFIG.fit)
    np.testing.assert_array_equal(np.asarray(result.loss_matrix), plain.loss_matrix)
    np.testing.assert_array_equal(result.scores, plain.scores)


def test_shards_read_their_rows_from_the_run_folder(fitted, tmp_path):
    prepared, features, learner = fitted
    ref = shards.write_rows(prepared, features, tmp_path / "rows", fingerprint="fp")
    part = shards.read_features(ref, 100, 180)
    np.testing.assert_array_equal(part.X, features.X[100:180])
    np.testing.assert_array_equal(part.y, features.y[100:180])
    np.testing.assert_array_equal(part.row_ids, features.row_ids[100:180])
    data = shards.rows_data(ref, learner, 100, 180)
    np.testing.assert_array_equal(data.X.numpy(), features.X[100:180])
    # the same fingerprint reuses the folder; features given as arrays are stored and read back
    mtime = (tmp_path / "rows" / shards.ROWS_MANIFEST).stat().st_mtime_ns
    assert shards.write_rows(prepared, features, tmp_path / "rows", fingerprint="fp").path == ref.path
    assert (tmp_path / "rows" / shards.ROWS_MANIFEST).stat().st_mtime_ns == mtime
    bare = steps.Features(X=features.X * 2, y=features.y, row_ids=features.row_ids, n_classes=features.n_classes)
    ref2 = shards.write_rows(prepared, bare, tmp_path / "rows-arrays", fingerprint="fp")
    np.testing.assert_array_equal(shards.read_features(ref2, 0, 10).X, features.X[:10] * 2)
    with pytest.raises(InvalidInputError, match="rows 490..510 are outside the run's 0..500"):
        shards.read_features(ref, 490, 510)
    import shutil

    shutil.rmtree(tmp_path / "rows")
    with pytest.raises(InvalidInputError, match="missing or unfinished on this machine.*all workers share"):
        shards.read_features(ref, 0, 10)
    with pytest.raises(InvalidInputError, match="positive size"):
        shards.row_shards(10, 0)
    store = LossStore(tmp_path / "m", key="k", n_rows=500, n_members=2)
    with pytest.raises(InvalidInputError, match="do not cover rows 0..500"):
        shards.gather_losses(store, [(0, 200), (300, 500)], tmp_path / "s", "k")


@task(name="loss-shard-dying", cache_policy=NO_CACHE, retries=1)
def dying_shard(ref, learner, members, start, stop, folder, key, marker):
    """A loss shard whose worker process dies once, after it wrote its first member."""
    if start == 0 and not os.path.exists(marker):
        store = shards.shard_store(folder, key, start, stop, len(members))
        store.write(0, np.zeros(stop - start, dtype=np.float32) + 123.0)  # a column that the re-run must keep
        open(marker, "w").close()
        os._exit(1)  # the worker process dies mid-task
    return shards.loss_shard(ref, learner, members, start, stop, folder, key)


@flow(name="dying-test")
def dying_flow(ref, learner, members, ranges, folder, marker):
    return [dying_shard.submit(ref, learner, members, s, e, folder, "k", marker).result() for s, e in ranges]


@pytest.mark.slow
def test_a_worker_that_dies_mid_shard_has_its_task_rerun(cluster, fitted, tmp_path):
    import cloudpickle

    prepared, features, learner = fitted
    members = [learner.get_state(), learner.get_state()]
    ref = shards.write_rows(prepared, features, tmp_path / "rows", fingerprint="fp")
    ranges = shards.row_shards(len(features.y), 250)
    marker = str(tmp_path / "died")
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
    try:
        dying_flow.with_options(task_runner=DaskTaskRunner(address=cluster.scheduler_address))(
            ref, learner, members, ranges, str(tmp_path / "shards"), marker)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert os.path.exists(marker)
    store = LossStore(tmp_path / "m", key="k", n_rows=len(features.y), n_members=2)
    assert shards.gather_losses(store, ranges, tmp_path / "shards", "k") == [0, 1]
    L = store.read()
    base = learner.per_sample_loss(features.tensor_data())
    np.testing.assert_array_equal(L[250:, 0], base[250:])
    np.testing.assert_array_equal(L[:, 1], base)
    assert (L[:250, 0] == 123.0).all()  # the finished member of the dead task was kept, not recomputed


def test_an_unreachable_scheduler_is_a_clear_error_within_30_seconds():
    t = time.perf_counter()
    with pytest.raises(InvalidInputError, match="cannot reach the Dask scheduler at 'tcp://127.0.0.1:9' within 5 s"):
        check_scheduler("tcp://127.0.0.1:9", timeout=5)
    assert time.perf_counter() - t < 30
    t = time.perf_counter()
    with pytest.raises(InvalidInputError, match="cannot reach the Dask scheduler"):
        dask_task_runner("tcp://127.0.0.1:9")  # the default timeout
    assert time.perf_counter() - t < 30
    with pytest.raises(InvalidInputError, match="scheduler address such as tcp://host:8786"):
        check_scheduler("  ")
    with pytest.raises(InvalidInputError, match="--dask-workers must be a positive number.*found 0"):
        dask_task_runner(n_workers=0)
    assert dask_runner.CONNECT_TIMEOUT < 30


def test_image_and_text_rows_read_by_shards_equal_the_clients(tmp_path):
    import io

    import datasets
    from PIL import Image

    rng = np.random.default_rng(0)

    def png(a):
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="PNG")
        return buf.getvalue()

    images = datasets.Dataset.from_dict(
        {"img": [{"bytes": png(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)), "path": None} for _ in range(90)],
         "label": (np.arange(90) % 3).tolist()},
        features=datasets.Features({"img": datasets.Image(), "label": datasets.Value("int64")}))
    words = ["good", "bad", "film", "plot", "actor", "great", "awful", "boring", "fun", "long", "short", "music"]
    texts = datasets.Dataset.from_dict({"text": [" ".join(rng.choice(words, 8)) for _ in range(200)],
                                        "label": (np.arange(200) % 2).tolist()})
    for ds, model, kind, refeaturized in ((images, "cnn", "image", True), (texts, "mlp", "text", False)):
        config = steps.CleanConfig(label_column="label", model=model)
        prepared = steps.prepare(ds, config)
        features = steps.featurize_step(prepared, config)
        assert prepared.roles.kind == kind
        ref = shards.write_rows(prepared, features, tmp_path / kind, fingerprint=kind)
        assert (ref.featurizer is not None) == refeaturized  # text features are stored, not rebuilt
        X = np.concatenate([shards.read_features(ref, s, e).X for s, e in shards.row_shards(ds.num_rows, 35)])
        np.testing.assert_array_equal(X, features.X)


def test_what_a_task_receives_does_not_grow_with_the_rows(tmp_path):
    import pickle

    sizes = []
    for n in (300, 3000):
        config = CONFIG.model_copy(update={"fit": CONFIG.fit.model_copy(update={"epochs": 1})})
        prepared = steps.prepare(frame(n), config)
        features = steps.featurize_step(prepared, config)
        learner = steps.make_model_step(features, config, prepared=prepared)
        assert learner.last_fit.mean_margin.shape == (n,)
        ref = shards.write_rows(prepared, features, tmp_path / str(n), fingerprint=str(n))
        sent = shards.task_learner(learner)
        assert sent.last_fit is None and learner.last_fit is not None and sent.module is learner.module
        sizes.append(len(pickle.dumps((ref, sent))))
    assert abs(sizes[1] - sizes[0]) < 200  # a path and the parameters, not the rows


# -- the cleaning flow and the CLI ----------------------------------------------------------------

DIGITS = str(Path(__file__).resolve().parents[2] / "data" / "digits" / "train.parquet")


@pytest.fixture(scope="module")
def small_source(tmp_path_factory):
    """400 demo rows as a parquet file."""
    from datasets import load_dataset

    path = tmp_path_factory.mktemp("src") / "small.parquet"
    load_dataset("parquet", data_files=DIGITS, split="train").select(range(400)).to_parquet(str(path))
    return str(path)


def flow_params(tmp_path, source):
    from influence_stage.orchestration.flow import FlowConfig

    clean = steps.CleanConfig.from_mapping({
        "label_column": "label", "feature_columns": ["px_*"], "model": "mlp", "fit": {"epochs": 10},
        "gex": {"chains": 3, "cycles": 2, "ft_lr": 0.4}})
    return FlowConfig(source=source, name="small", clean=clean, publish_root=str(tmp_path / "pub"),
                      cache_dir=str(tmp_path / "cache"))


def test_flow_keeps_the_loss_matrix_on_disk_and_a_rerun_evaluates_only_unfinished_members(
        harness, tmp_path, small_source, monkeypatch):
    from influence_stage.orchestration.flow import clean_dataset
    from influence_stage.publish.versions import load_published

    p = flow_params(tmp_path, small_source)
    first = clean_dataset(p)
    (matrix,) = (tmp_path / "cache" / "runs").glob("*/losses/*/matrix")
    assert sorted(f.name for f in (matrix / "done").iterdir()) == [f"member-{j:05d}" for j in range(6)]
    (shard,) = (matrix.parent / "shards").iterdir()
    # as after a crash between member 4's shard and the run's store: both flags gone
    (matrix / "done" / "member-00004").unlink()
    (shard / "done" / "member-00004").unlink()
    written = []
    real = LossStore.write
    monkeypatch.setattr(LossStore, "write", lambda self, j, col: written.append((self.folder.name, j)) or real(self, j, col))
    second = clean_dataset(p)
    assert written == [(shard.name, 4), ("matrix", 4)]  # member 4 only, in its shard and then in the run's store
    _, a, _ = load_published(first["published"])
    _, b, _ = load_published(second["published"])
    np.testing.assert_array_equal(a.score.to_numpy(), b.score.to_numpy())


def test_cli_names_a_bad_dask_or_device_option(harness, tmp_path, small_source, capsys):
    import torch

    from influence_stage.cli import main

    common = ["clean", "--source", small_source, "--name", "small", "--label-column", "label",
              "--feature-columns", "px_*", "--publish-root", str(tmp_path / "pub"), "--cache-dir", str(tmp_path / "c")]
    assert main(common + ["--dask-workers", "0"]) == 2
    assert "--dask-workers must be a positive number of worker processes; found 0" in capsys.readouterr().err
    t = time.perf_counter()
    assert main(common + ["--dask", "tcp://127.0.0.1:9"]) == 2
    assert "cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'" in capsys.readouterr().err
    assert time.perf_counter() - t < 30
    assert main(common + ["--dask", "tcp://127.0.0.1:9", "--dask-workers", "2"]) == 2
    assert "give one of them" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(common + ["--device", "cuda"]) == 2
        assert "device 'cuda' asked for, but torch sees no CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "pub").exists()  # nothing ran


def test_on_the_thread_pool_at_most_one_loss_shard_per_core_runs_at_once(harness, fitted, tmp_path, monkeypatch):
    """Every submitted task starts at once on Prefect's thread pool; the shards are fed one per core."""
    import threading

    prepared, features, learner = fitted
    running, most = [0], [0]
    lock = threading.Lock()
    real = shards.loss_shard

    def counted(*args, **kwargs):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            time.sleep(0.2)  # long enough for every submitted shard to have started, were they not held back
            return real(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(shards, "loss_shard", counted)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)

    @flow(name="bounded-shards")
    def scoring():
        return score_on_tasks(learner, prepared, features, CONFIG, cache_dir=tmp_path, shard_rows=50)["result"]

    result = scoring()
    assert len(shards.row_shards(len(features.y), 50)) == 10
    assert most[0] == 2
    plain = score_step(learner, features, CONFIG, prepared=prepared)
    np.testing.assert_allclose(result.scores, plain.scores, rtol=1e-5, atol=1e-7)

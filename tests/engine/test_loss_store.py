"""The on-disk loss matrix: same numbers as in memory, resumes after a crash, refuses a stale store."""

from __future__ import annotations

import os

import numpy as np
import pytest

from influence_stage import FitConfig, GEXConfig, InvalidInputError
from influence_stage.engine import influence
from influence_stage.engine.gex import score_fitted
from influence_stage.engine.loss_store import LossStore
from influence_stage.engine.losses import loss_matrix


@pytest.fixture()
def members(small_learner):
    learner, data = small_learner
    theta = learner.get_state()
    from influence_stage.engine.members import build_members

    ms = build_members(learner, data, config=GEXConfig(chains=2, cycles=2), ft_lr=0.2)
    learner.set_state(theta)
    return learner, data, ms


def test_store_gives_the_in_memory_matrix(members, tmp_path):
    learner, data, ms = members
    store = LossStore(tmp_path / "L", key="run-a", n_rows=len(data), n_members=len(ms))
    stored = loss_matrix(learner, ms, data, store=store)
    np.testing.assert_array_equal(stored, loss_matrix(learner, ms, data))
    assert store.done() == [0, 1, 2, 3] and store.pending() == []
    assert not stored.flags.writeable


def test_a_crash_resumes_with_the_unfinished_members_only(members, tmp_path, monkeypatch):
    learner, data, ms = members
    full = loss_matrix(learner, ms, data)
    calls = {"n": 0}
    real = type(learner).per_sample_loss

    def dies_on_the_third(self, d):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # a kill between members
        return real(self, d)

    monkeypatch.setattr(type(learner), "per_sample_loss", dies_on_the_third)
    store = LossStore(tmp_path / "L", key="run-a", n_rows=len(data), n_members=len(ms))
    with pytest.raises(KeyboardInterrupt):
        loss_matrix(learner, ms, data, store=store)
    assert store.done() == [0, 1]
    monkeypatch.setattr(type(learner), "per_sample_loss", real)
    counted = {"n": 0}

    def counting(self, d):
        counted["n"] += 1
        return real(self, d)

    monkeypatch.setattr(type(learner), "per_sample_loss", counting)
    again = LossStore(tmp_path / "L", key="run-a", n_rows=len(data), n_members=len(ms))
    np.testing.assert_array_equal(loss_matrix(learner, ms, data, store=again), full)
    assert counted["n"] == 2  # members 2 and 3 only


def test_a_column_without_its_flag_is_recomputed(members, tmp_path, monkeypatch):
    learner, data, ms = members
    store = LossStore(tmp_path / "L", key="k", n_rows=len(data), n_members=len(ms))
    real_replace = os.replace

    def no_flag(src, dst):
        if "member-00001" in str(dst):
            raise OSError(28, "No space left on device")  # the flag write fails after the column
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", no_flag)
    with pytest.raises(OSError, match="No space"):
        loss_matrix(learner, ms, data, store=store)
    assert store.done() == [0]
    monkeypatch.setattr(os, "replace", real_replace)
    np.testing.assert_array_equal(loss_matrix(learner, ms, data, store=store), loss_matrix(learner, ms, data))


def test_a_store_of_another_run_is_refused_unless_overwritten(tmp_path):
    LossStore(tmp_path / "L", key="run-a", n_rows=5, n_members=3).write(0, np.arange(5))
    with pytest.raises(InvalidInputError, match="belongs to another run \\(key 'run-a', 5 × 3\\)"):
        LossStore(tmp_path / "L", key="run-b", n_rows=5, n_members=3)
    with pytest.raises(InvalidInputError, match="belongs to another run"):
        LossStore(tmp_path / "L", key="run-a", n_rows=6, n_members=3)
    fresh = LossStore(tmp_path / "L", key="run-b", n_rows=5, n_members=3, overwrite=True)
    assert fresh.done() == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInputError, match="is a file"):
        LossStore(tmp_path / "file", key="k", n_rows=2, n_members=2)
    with pytest.raises(InvalidInputError, match="not done"):
        fresh.read()
    with pytest.raises(InvalidInputError, match="expected 5 losses"):
        fresh.write(1, np.zeros(4))


def test_score_fitted_through_a_store_matches_and_self_influence_in_blocks(small_learner, tmp_path, monkeypatch):
    learner, data = small_learner
    cfg = GEXConfig(chains=2, cycles=2, ft_lr=0.2, score="gex")
    theta = learner.get_state()
    plain = score_fitted(learner, data, config=cfg, fit_config=FitConfig(epochs=2))
    learner.set_state(theta)
    store = LossStore(tmp_path / "L", key="k", n_rows=len(data), n_members=4)
    on_disk = score_fitted(learner, data, config=cfg, fit_config=FitConfig(epochs=2), store=store)
    np.testing.assert_array_equal(on_disk.gex_influence, plain.gex_influence)
    monkeypatch.setattr(influence, "ROW_BLOCK", 7)  # many row blocks: the same scores
    np.testing.assert_allclose(influence.self_influence(on_disk.loss_matrix, on_disk.base_loss, trim=1),
                               influence._self_influence_block(np.asarray(on_disk.loss_matrix), on_disk.base_loss,
                                                               0.05, 1), rtol=0, atol=0)


def test_a_store_gathers_members_from_its_row_blocks(tmp_path):
    rng = np.random.default_rng(0)
    full = rng.random((10, 3), dtype=np.float32)
    parts = [LossStore(tmp_path / f"p{s}", key=f"k{s}", n_rows=e - s, n_members=3) for s, e in ((0, 4), (4, 10))]
    for j in range(3):
        parts[0].write(j, full[:4, j])
    parts[1].write(2, full[4:, 2])
    store = LossStore(tmp_path / "all", key="k", n_rows=10, n_members=3)
    assert store.gather(parts) == [2] and store.pending() == [0, 1]  # only member 2 is done in both blocks
    parts[1].write(0, full[4:, 0])
    parts[1].write(1, full[4:, 1])
    assert store.gather(parts) == [0, 1]
    np.testing.assert_array_equal(store.read(), full)
    assert np.load(tmp_path / "all" / "loss_matrix.npy", mmap_mode="r").flags.f_contiguous  # columns contiguous
    with pytest.raises(InvalidInputError, match="the parts hold 4 rows"):
        store.gather(parts[:1])

"""Members, loss matrices and the end-to-end function: same-answer checks, seeds, fast paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from influence_stage import FitConfig, GEXConfig, TensorData, TorchLearner, gex, gex_self_influence
from influence_stage.engine.members import build_chains, build_members, cycle_steps, run_chains, smooth
from influence_stage.engine.learner import CosineSchedule
from influence_stage.engine.losses import loss_matrix, loss_matrix_and_mean_proba, mean_member_proba
from influence_stage.engine.models import cnn, mlp


def _close_states(a, b, atol=1e-5):
    return all(torch.allclose(a[k], b[k], atol=atol) for k in a)


def test_batched_chains_equal_sequential_chains(small_learner):
    learner, data = small_learner
    theta = learner.get_state()
    kw = dict(start=theta, rates=[0.05, 0.2, 0.1], cycles=2, steps=7, seed=3)
    batched = run_chains(learner, data, **kw)
    learner.can_train_batched = lambda: False  # force the per-chain train_steps path
    sequential = run_chains(learner, data, **kw)
    for cb, cs in zip(batched, sequential):
        for sb, ss in zip(cb, cs):
            assert _close_states(sb, ss, atol=1e-4)
    assert _close_states(learner.get_state(), theta, atol=0)  # left at θ*


def test_members_shape_order_and_movement(small_learner):
    learner, data = small_learner
    theta = learner.get_state()
    cfg = GEXConfig(chains=2, cycles=3, cycle_epochs=0.5, min_cycle_steps=1, ft_lr=0.1)
    members = build_members(learner, data, config=cfg, ft_lr=0.1)
    assert len(members) == 6
    assert all(not _close_states(m, theta, atol=1e-6) for m in members)
    # chain-major: the first cycle of chain 1 equals a one-cycle run of chain id 1
    again = run_chains(learner, data, start=theta, rates=[0.1], cycles=1, steps=cycle_steps(len(data), cfg, learner),
                       seed=cfg.seed, chain_ids=[1])
    assert _close_states(members[3], again[0][0])
    assert not _close_states(members[0], members[3])


@pytest.mark.parametrize("batched", [True, False])
def test_continued_chains_equal_chains_run_in_one_go(small_learner, batched):
    learner, data = small_learner
    if not batched:
        learner.can_train_batched = lambda: False  # the per-chain train_steps path (batch-norm, HF models)
    theta = learner.get_state()
    cfg = GEXConfig(chains=3, cycles=3, cycle_epochs=0.5, min_cycle_steps=1)
    whole = build_members(learner, data, config=cfg, ft_lr=0.2)
    steps = cycle_steps(len(data), cfg, learner)
    # the probe's view: the first cycle of chains 0 and 1, then continued by build_members
    probe = run_chains(learner, data, start=theta, rates=[0.2, 0.2], cycles=1, steps=steps, seed=cfg.seed)
    continued = build_members(learner, data, config=cfg, ft_lr=0.2, first_chains=probe)
    assert continued[0] is probe[0][0] and continued[3] is probe[1][0]
    for a, b in zip(whole, continued):
        assert _close_states(a, b, atol=1e-4)
    # one chain alone (the flow's task), continued from a prefix, equals the same chain
    alone = build_chains(learner, data, config=cfg, ft_lr=0.2, chain_ids=[1], prefixes=[probe[1]])[0]
    for a, b in zip(whole[3:6], alone):
        assert _close_states(a, b, atol=1e-4)
    assert _close_states(learner.get_state(), theta, atol=0)
    # too long a prefix is refused with a message naming what was found
    with pytest.raises(ValueError, match="3 cycles; 4 were given as the prefix of chain 0"):
        build_chains(learner, data, config=cfg, ft_lr=0.2, chain_ids=[0], prefixes=[probe[0] * 4])


def test_build_chains_with_unequal_prefixes_and_any_chain_ids(small_learner):
    learner, data = small_learner
    cfg = GEXConfig(chains=2, cycles=3, cycle_epochs=0.5, min_cycle_steps=1)
    ids = [5, 9, 7]
    whole = build_chains(learner, data, config=cfg, ft_lr=0.2, chain_ids=ids)
    prefixes = [[], whole[1][:2], whole[2][:1]]  # chain 9 two cycles ahead, chain 7 one
    continued = build_chains(learner, data, config=cfg, ft_lr=0.2, chain_ids=ids, prefixes=prefixes)
    for a, b in zip(whole, continued):
        assert len(b) == 3 and all(_close_states(x, y, atol=1e-4) for x, y in zip(a, b))
    assert continued[1][0] is whole[1][0] and continued[2][0] is whole[2][0]  # prefixes kept as given
    full = build_chains(learner, data, config=cfg, ft_lr=0.2, chain_ids=[5], prefixes=[whole[0]])
    assert all(a is b for a, b in zip(full[0], whole[0]))  # nothing left to train
    assert build_chains(learner, data, config=cfg, ft_lr=0.2, chain_ids=[]) == []
    with pytest.raises(ValueError, match="2 chains but 1 prefixes"):
        build_chains(learner, data, config=cfg, ft_lr=0.2, chain_ids=[0, 1], prefixes=[[]])


def test_loss_matrix_vmap_equals_loop_and_chunking(small_learner):
    learner, data = small_learner
    cfg = GEXConfig(chains=2, cycles=2, cycle_epochs=0.5, min_cycle_steps=1)
    members = build_members(learner, data, config=cfg, ft_lr=0.1)
    ref = loss_matrix(learner, members, data, method="loop")
    # the loop reference itself equals per-member per_sample_loss
    learner_state = learner.get_state()
    learner.set_state(members[2])
    np.testing.assert_allclose(ref[:, 2], learner.per_sample_loss(data), rtol=1e-6)
    learner.set_state(learner_state)
    for batch, chunk in [(4096, 16), (37, 3), (1, 1)]:
        fast = loss_matrix(learner, members, data, method="vmap", batch_size=batch, member_chunk=chunk)
        np.testing.assert_allclose(fast, ref, rtol=1e-4, atol=1e-5)
    proba = mean_member_proba(learner, members, data, batch_size=50, member_chunk=3, method="vmap")
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(proba, mean_member_proba(learner, members, data, method="loop"), rtol=1e-4, atol=1e-6)


def test_the_loss_passes_keep_the_members_mean_probabilities_bit_for_bit(small_learner):
    learner, data = small_learner
    members = build_members(learner, data, config=GEXConfig(chains=2, cycles=2, cycle_epochs=0.5, min_cycle_steps=1),
                            ft_lr=0.1)
    L, kept = loss_matrix_and_mean_proba(learner, members, data, method="loop")
    np.testing.assert_array_equal(L, loss_matrix(learner, members, data, method="loop"))
    assert kept is not None and kept.dtype == np.float32
    np.testing.assert_array_equal(kept, mean_member_proba(learner, members, data, method="loop"))
    # the vmap path evaluates chunks of members at once and keeps none: the caller computes them
    L_vmap, none = loss_matrix_and_mean_proba(learner, members, data, method="vmap")
    assert none is None
    np.testing.assert_allclose(L_vmap, L, rtol=1e-4, atol=1e-5)


def test_same_seed_same_scores_other_seed_other_members(digits_noisy):
    X, y, _, _ = digits_noisy
    X, y = X[:400], y[:400]
    cfg = GEXConfig(chains=2, cycles=2, ft_lr=0.2, seed=5)
    module = mlp(64, 10, hidden=(32,), seed=1)
    TorchLearner(module).fit(TensorData.from_arrays(X, y), FitConfig(epochs=5))
    state = {k: v.clone() for k, v in module.state_dict().items()}
    a = gex(module, X, y, config=cfg)
    module.load_state_dict(state)
    b = gex(module, X, y, config=cfg)
    np.testing.assert_array_equal(a.scores, b.scores)
    module.load_state_dict(state)
    c = gex(module, X, y, config=cfg.model_copy(update={"seed": 6}))
    assert not np.allclose(a.loss_matrix, c.loss_matrix)
    assert not _close_states(a.members[0], c.members[0])


def test_batchnorm_model_uses_sequential_path_and_recalibrates():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 1, 8, 8)).astype(np.float32)
    y = np.arange(64) % 3
    learner = TorchLearner(cnn(1, 3, width=4, seed=0), batch_size=16, eval_batch_size=64)
    data = TensorData.from_arrays(X, y)
    assert not learner.can_train_batched()
    learner.train_steps(data, 3, CosineSchedule(0.1, 3), seed=0)
    bn = learner.module[1]
    with torch.no_grad():
        pre = learner.module[0](data.X)  # activations entering the first batch-norm
    torch.testing.assert_close(bn.running_mean, pre.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)
    members = build_members(learner, data, config=GEXConfig(chains=2, cycles=1, cycle_epochs=1), ft_lr=0.05)
    # eval-mode batch-norm under vmap (stacked running stats) equals the per-member loop
    loop = loss_matrix(learner, members, data, method="loop")
    np.testing.assert_allclose(loss_matrix(learner, members, data, method="vmap"), loop, rtol=1e-4, atol=1e-5)
    assert loop.shape == (64, 2) and not np.allclose(loop[:, 0], loop[:, 1])


def test_auto_scale_runs_and_is_recorded(digits_noisy):
    X, y, flipped, _ = digits_noisy
    res = gex("mlp", X[:600], y[:600], config=GEXConfig(chains=2, cycles=2, lr_grid=(0.05, 0.2, 0.8)))
    assert res.auto is not None and res.ft_lr in (0.05, 0.2, 0.8)
    assert list(res.auto.probed) == [0.05, 0.2, 0.8]
    assert 0 < res.auto.contradicted_fraction < 0.5
    # the probe ran the first cycle of chains 0 and 1 at the chosen rate; the members continue them
    assert [len(ch) for ch in res.auto.first_chains] == [1, 1]
    assert res.members[0] is res.auto.first_chains[0][0] and res.members[2] is res.auto.first_chains[1][0]
    again = build_members(res.learner, TensorData.from_arrays(X[:600], y[:600]),
                          config=GEXConfig(chains=2, cycles=2), ft_lr=res.ft_lr)
    assert all(_close_states(a, b) for a, b in zip(again, res.members))
    assert res.scores.shape == (600,) and res.loss_matrix.shape == (600, 4)
    assert roc_auc_score(flipped[:600], res.scores) > 0.8


def test_a_probe_rate_that_diverges_is_never_chosen(digits_noisy):
    X, y, _, _ = digits_noisy
    res = gex("mlp", X[:300], y[:300], config=GEXConfig(chains=2, cycles=1, lr_grid=(0.05, 1e6)),
              fit_config=FitConfig(epochs=5))
    assert res.ft_lr == 0.05  # 1e6 gives inf / NaN losses: not a candidate, and no error
    assert res.auto.probed[1e6][3] == float("inf") and np.isfinite(res.scores).all()


def test_smoothing_of_agreement():
    np.testing.assert_allclose(smooth([1.0, 0.0, 0.0, 1.0]), [2 / 3, 0.25, 0.25, 2 / 3])


@pytest.mark.slow
def test_quality_floor_on_digits(digits_noisy):
    X, y, flipped, _ = digits_noisy
    scores = gex_self_influence("mlp", X, y)
    assert roc_auc_score(flipped, scores) >= 0.97


def test_trim_option_reaches_the_scores(digits_noisy):
    from influence_stage.engine.influence import self_influence

    X, y, _, _ = digits_noisy
    res = gex("mlp", X[:300], y[:300], config=GEXConfig(chains=2, cycles=2, ft_lr=0.2, trim=1, score="gex-trimmed"),
              fit_config=FitConfig(epochs=5))
    np.testing.assert_allclose(res.scores, self_influence(res.loss_matrix, res.base_loss, trim=1))
    assert not np.allclose(res.scores, self_influence(res.loss_matrix, res.base_loss))


def test_probe_cycles_give_every_rate_two_members():
    assert GEXConfig().probe_cycle_count == 1  # 2 probe chains × 1 cycle
    assert GEXConfig(chains=1, cycles=4).probe_cycle_count == 2  # one chain: 2 cycles
    assert GEXConfig(probe_chains=1).probe_cycle_count == 2
    assert GEXConfig(probe_cycles=9, cycles=4).probe_cycle_count == 4  # never more than the chain has
    res = gex("mlp", *_tiny_xy(), config=GEXConfig(chains=1, cycles=3, lr_grid=(0.1, 0.4), holdout_epochs=2))
    assert [len(ch) for ch in res.auto.first_chains] == [2] and res.loss_matrix.shape[1] == 3
    assert all(a is b for a, b in zip(res.members[:2], res.auto.first_chains[0]))


def _tiny_xy():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 4)).astype(np.float32)
    return X, (X[:, 0] > 0).astype(int) + 2 * (X[:, 1] > 0).astype(int)


def test_warns_when_theta_fits_few_rows(caplog):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)).astype(np.float32)
    y = rng.integers(0, 4, size=200)  # random labels: one epoch of training fits few of them
    cfg = GEXConfig(chains=2, cycles=1, ft_lr=0.1, score="gex")
    with caplog.at_level("WARNING", logger="influence_stage.engine.gex"):
        res = gex("mlp", X, y, config=cfg, fit_config=FitConfig(epochs=1))
    assert res.theta_fit < 0.8
    assert any("θ* fits only" in r.message and "gex+oos+aum" in r.message for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="influence_stage.engine.gex"):  # the default score: an info line only
        gex("mlp", X, y, config=cfg.model_copy(update={"score": "gex+oos+aum"}), fit_config=FitConfig(epochs=1))
    assert not any("θ* fits only" in r.message for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="influence_stage.engine.gex"):
        res = gex("mlp", X, y, config=cfg, fit_config=FitConfig(epochs=300, lr=0.1, weight_decay=0))
    assert res.theta_fit >= 0.8  # memorised: no warning
    assert not any("θ* fits only" in r.message for r in caplog.records)


# -- devices ------------------------------------------------------------------------------------

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")


def test_device_option_resolves_and_refuses_absent_cuda(small_learner):
    from pydantic import ValidationError

    from influence_stage import InvalidInputError
    from influence_stage.engine.learner import place, resolve_device
    from influence_stage.engine.sklearn_learner import SklearnLearner

    assert resolve_device("cpu") == "cpu" and resolve_device(None) == "cpu"
    assert resolve_device("auto") == ("cuda" if CUDA else "cpu")
    assert GEXConfig().device == "cpu" and GEXConfig(device="auto").device == "auto"
    with pytest.raises(ValidationError, match="device"):
        GEXConfig(device="gpu")
    with pytest.raises(InvalidInputError, match="device must be one of .*found 'tpu'"):
        resolve_device("tpu")
    if not CUDA:
        with pytest.raises(InvalidInputError, match="'cuda' asked for, but torch sees no CUDA device.*device='cpu'"):
            resolve_device("cuda")
        with pytest.raises(InvalidInputError, match="no CUDA device"):
            TorchLearner(mlp(4, 2, hidden=(8,), seed=0), device="cuda")
    learner, _ = small_learner
    assert place(learner, "auto") is learner and learner.device == resolve_device("auto")
    learner.to("cpu")
    from sklearn.linear_model import SGDClassifier

    sk = SklearnLearner(SGDClassifier(loss="log_loss"), batch_size=32, n_classes=3)
    assert place(sk, "auto") is sk and place(sk, "cpu") is sk
    if CUDA:
        with pytest.raises(InvalidInputError, match="SklearnLearner runs on cpu and cannot be moved"):
            place(sk, "cuda")


def test_cleaner_and_stage_refuse_cuda_where_there_is_none():
    if CUDA:
        pytest.skip("a CUDA device is present")
    from influence_stage import InfluenceCleaner, InvalidInputError
    from influence_stage.config import CleanConfig
    from influence_stage.stage import steps

    X, y = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32), np.arange(60) % 3
    with pytest.raises(InvalidInputError, match="no CUDA device"):
        InfluenceCleaner(model="mlp", gex_config=GEXConfig(device="cuda", chains=2, cycles=1, ft_lr=0.1),
                         fit_config=FitConfig(epochs=1)).fit(X, y)
    config = CleanConfig(gex=GEXConfig(device="cuda"))
    with pytest.raises(InvalidInputError, match="device 'cuda' asked for"):
        steps.preflight(np.zeros((2, 2)), config)


@needs_cuda
def test_cuda_members_and_losses_match_cpu(small_learner):
    learner, data = small_learner
    theta = learner.get_state()
    cfg = GEXConfig(chains=2, cycles=2)
    cpu = build_members(learner, data, config=cfg, ft_lr=0.2)
    L_cpu = loss_matrix(learner, cpu, data)
    gpu_learner = TorchLearner(mlp(64, 10, hidden=(32,), seed=0), batch_size=32, device="cuda")
    gpu_learner.set_state(theta)
    gpu_data = data.to("cuda")
    gpu = build_members(gpu_learner, gpu_data, config=cfg, ft_lr=0.2)
    L_loop = loss_matrix(gpu_learner, gpu, gpu_data, method="loop")
    L_auto = loss_matrix(gpu_learner, gpu, gpu_data)  # vmap on CUDA
    np.testing.assert_allclose(L_auto, L_loop, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(L_loop, L_cpu, rtol=1e-3, atol=1e-4)


def test_progress_bars_count_rows_per_second(small_learner, capsys):
    learner, data = small_learner
    theta = learner.get_state()
    members = build_members(learner, data, config=GEXConfig(chains=2, cycles=1), ft_lr=0.2)
    loss_matrix(learner, members, data, progress=True)
    err = capsys.readouterr().err
    assert "members (loss)" in err and "rows/s" in err
    build_members(learner, data, config=GEXConfig(chains=2, cycles=1), ft_lr=0.2, progress=True)
    err = capsys.readouterr().err
    assert "members" in err and "rows/s" in err
    learner.fit(data, FitConfig(epochs=1, batch_size=32), progress=True)
    err = capsys.readouterr().err
    assert "fit θ*" in err and "rows/s" in err
    learner.set_state(theta)


def test_fit_history_does_not_depend_on_the_logits_block(monkeypatch):
    from influence_stage.engine import learner as learner_module

    X, y = np.random.default_rng(0).normal(size=(250, 6)).astype(np.float32), np.arange(250) % 3
    data = TensorData.from_arrays(X, y)
    runs = []
    for block in (learner_module.FIT_LOGITS_BLOCK, 3 * 32 * 3 + 1):  # one block per epoch; blocks of 3 steps
        monkeypatch.setattr(learner_module, "FIT_LOGITS_BLOCK", block)
        lr = TorchLearner(mlp(6, 3, hidden=(16,), seed=0), batch_size=32)
        runs.append((lr.fit(data, FitConfig(epochs=3, batch_size=32)), lr.per_sample_loss(data)))
    (a, la), (b, lb) = runs
    np.testing.assert_array_equal(a.mean_margin, b.mean_margin)
    np.testing.assert_array_equal(la, lb)
    assert a.accuracy == b.accuracy
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-12)
    assert a.mean_margin.shape == (250,) and (a.mean_margin != 0).mean() > 0.9  # rows of the ragged tail: 0


def test_max_steps_cuts_the_epochs_of_a_large_fit_and_leaves_small_ones_alone():
    """``FitConfig.max_steps`` bounds a fit in whole epochs; below it the recipe is unchanged."""
    recipe = FitConfig(epochs=60, batch_size=64, max_steps=100_000)
    assert recipe.epochs_for(1_000) == 60  # 15 steps per epoch: 900 steps in all
    assert recipe.epochs_for(106_000) == 60  # 1656 steps per epoch: 99,360 steps
    assert recipe.epochs_for(1_000_000) == 7  # 15,625 steps per epoch: ceil(100000 / 15625)
    assert recipe.epochs_for(10_000_000) == 1  # never fewer than one epoch
    assert FitConfig(epochs=60, max_steps=None).epochs_for(10_000_000) == 60
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(256, 5)).astype(np.float32), rng.integers(0, 3, 256)
    data = TensorData.from_arrays(X, y)
    cut = TorchLearner(mlp(5, 3, hidden=(8,), seed=0)).fit(data, FitConfig(epochs=10, batch_size=32, max_steps=20))
    assert len(cut.loss) == 3  # 8 steps per epoch: ceil(20 / 8) epochs
    whole = TorchLearner(mlp(5, 3, hidden=(8,), seed=0)).fit(data, FitConfig(epochs=10, batch_size=32))
    assert len(whole.loss) == 10

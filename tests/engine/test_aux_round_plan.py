"""The auxiliary model's cap and first round on image rows under the step floor (``GEXConfig.floored_aux_share``
and ``floored_aux_first``), and that flat features never see them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from influence_stage.config import FitConfig, GEXConfig
from influence_stage.engine.auxiliary import cross_fit, round_plan
from influence_stage.engine.learner import TensorData
from influence_stage.engine.models import build_model
from influence_stage.engine.sources import torch_learner

IMAGE = (1, 28, 28)


@pytest.mark.parametrize("share,first", [(1.0, 0.25), (0.5, 1.0), (0.25, 1.0), (0.5, 0.25)])
def test_the_cap_is_the_share_of_theta_epochs_and_the_first_round_its_share_of_the_cap(share, first):
    fit = FitConfig()
    gex = GEXConfig(floored_aux_share=share, floored_aux_first=first)
    cap, start = round_plan(800, 400, IMAGE, config=gex, fit_config=fit)
    theta = fit.epochs_for(800, IMAGE)
    assert cap == max(math.ceil(share * theta), gex.holdout_epochs)
    assert start == min(cap, max(gex.holdout_epochs, math.ceil(first * cap)))
    if first == 1.0:
        assert start == cap  # one cosine schedule, no doubling rounds


def test_the_cap_never_goes_below_holdout_epochs():
    gex = GEXConfig(floored_aux_share=0.01, floored_aux_first=0.01, holdout_epochs=8)
    assert round_plan(800, 400, IMAGE, config=gex, fit_config=FitConfig()) == (8, 8)


@pytest.mark.parametrize("shape", [(16,), None])
def test_flat_features_ignore_the_image_fields(shape):
    fit = FitConfig()
    plain = round_plan(800, 400, shape, config=GEXConfig(), fit_config=fit)
    changed = round_plan(800, 400, shape, config=GEXConfig(floored_aux_share=0.25, floored_aux_first=1.0),
                         fit_config=fit)
    assert plain == changed == (fit.epochs_for(400), GEXConfig().holdout_epochs)


def test_flat_features_under_a_floor_on_every_input_ignore_the_image_fields():
    """``min_steps_inputs='all'`` floors flat features too; their plan keeps the full share, a quarter first."""
    fit = FitConfig(min_steps_inputs="all")
    full = fit.epochs_for(800, (16,))
    assert full > fit.epochs  # the floor binds, so the floored branch is the one tested
    plans = {round_plan(800, 400, (16,), config=GEXConfig(floored_aux_share=s, floored_aux_first=f), fit_config=fit)
             for s, f in [(1.0, 0.25), (0.25, 1.0), (0.75, 1.0)]}
    assert plans == {(full, max(GEXConfig().holdout_epochs, math.ceil(full / 4)))}


def test_the_image_fields_are_checked():
    with pytest.raises(ValueError):
        GEXConfig(floored_aux_share=0.0)
    with pytest.raises(ValueError):
        GEXConfig(floored_aux_first=1.5)


def test_a_single_round_trains_each_half_exactly_the_cap():
    """With ``floored_aux_first=1`` each half trains one schedule of the cap's epochs and records them."""
    rng = np.random.default_rng(0)
    n = 48
    y = np.arange(n) % 3
    X = rng.normal(size=(n, 1, 8, 8)).astype(np.float32) + y[:, None, None, None].astype(np.float32)
    gex = GEXConfig(floored_aux_share=0.5, floored_aux_first=1.0, holdout_epochs=2, seed=0)
    fit = FitConfig(epochs=4, batch_size=16, min_steps=40)
    torch.manual_seed(0)
    learner = torch_learner(build_model("cnn", X.shape[1:], 3, seed=0), gex)
    proba, check = cross_fit(learner, TensorData.from_arrays(X, y), config=gex, fit_config=fit)
    cap, start = round_plan(n, n // 2, X.shape[1:], config=gex, fit_config=fit)
    assert start == cap
    assert check.epochs == (cap, cap)
    assert proba.shape == (n, 3) and np.allclose(proba.sum(1), 1.0, atol=1e-5)


def test_image_cycle_floor_and_grid_apply_to_image_rows_only():
    from influence_stage.engine.members import cycle_steps, probe_grid

    plain = GEXConfig(image_min_cycle_steps=None, image_lr_grid=None)
    lean = GEXConfig(image_min_cycle_steps=6, image_lr_grid=(0.0125, 0.025))
    # 800 rows, batch 128: 6 steps per epoch; the default floor is 12
    assert cycle_steps(800, lean, input_shape=IMAGE) == 6
    assert cycle_steps(800, lean, input_shape=(16,)) == cycle_steps(800, lean) == cycle_steps(800, plain, input_shape=IMAGE) == 12
    assert probe_grid(lean, IMAGE) == [0.0125, 0.025]
    assert probe_grid(lean, (16,)) == probe_grid(lean, None) == probe_grid(plain, IMAGE) == list(plain.lr_grid)


def test_the_image_defaults_are_the_low_rates_and_a_six_step_floor_on_image_rows_only():
    from influence_stage.config.fit import DEFAULT_LR_GRID
    from influence_stage.engine.members import cycle_steps, probe_grid

    gex = GEXConfig()
    assert probe_grid(gex, IMAGE) == list(gex.image_lr_grid) == [r for r in DEFAULT_LR_GRID if r <= 0.1]
    assert probe_grid(gex, (16,)) == probe_grid(gex, None) == list(DEFAULT_LR_GRID)
    assert cycle_steps(800, gex, input_shape=IMAGE) == gex.image_min_cycle_steps < gex.min_cycle_steps
    assert cycle_steps(800, gex, input_shape=(16,)) == gex.min_cycle_steps


def test_a_grid_or_cycle_floor_set_by_the_caller_wins_on_image_rows():
    """``image_lr_grid`` / ``image_min_cycle_steps`` replace only the defaults of ``lr_grid`` / ``min_cycle_steps``."""
    from influence_stage.engine.members import cycle_steps, probe_grid

    own = GEXConfig(lr_grid=(0.2, 0.4), min_cycle_steps=10)
    assert probe_grid(own, IMAGE) == [0.2, 0.4]
    assert cycle_steps(800, own, input_shape=IMAGE) == 10
    with pytest.raises(ValueError):
        GEXConfig(image_lr_grid=(0.1, 0.05))


def test_an_image_dataset_runs_with_the_image_fields(monkeypatch):
    """Through the public path: the probe uses ``image_lr_grid`` and every cycle ``image_min_cycle_steps``."""
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    from influence_stage import InfluenceCleaner
    from influence_stage.engine import members

    rng = np.random.default_rng(0)
    n = 90
    y = np.arange(n) % 3
    images = rng.integers(0, 40, size=(n, 12, 12)).astype(np.uint8)
    for i, k in enumerate(y):
        r = int(rng.integers(1, 8))
        images[i, r:r + 3, 1:11] = 255 if k == 0 else 0
        images[i, 1:11, r:r + 3] = 255 if k == 1 else images[i, 1:11, r:r + 3]
        if k == 2:
            images[i, r:r + 4, r:r + 4] = 255
    ds = datasets.Dataset.from_dict(
        {"image": [Image.fromarray(im, mode="L") for im in images], "label": [int(v) for v in y]},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")}))
    steps_seen: list[int] = []
    real = members.run_chains

    def spy(*args, **kwargs):
        steps_seen.append(kwargs["steps"])
        return real(*args, **kwargs)

    monkeypatch.setattr(members, "run_chains", spy)
    gex = GEXConfig(chains=2, cycles=2, image_lr_grid=(0.01, 0.02), image_min_cycle_steps=3,
                    holdout_epochs=2, floored_aux_share=0.5, floored_aux_first=1.0)
    cleaner = InfluenceCleaner(label_column="label", gex_config=gex, fit_config=FitConfig(epochs=5, min_steps=20),
                               random_state=0, max_drop_fraction=1.0).fit(ds)
    assert cleaner.ft_lr_ in (0.01, 0.02)
    assert steps_seen and set(steps_seen) == {3}  # 90 rows, batch 128: one step per epoch, the floor gives 3
    assert len(cleaner.scores_) == n


def test_image_eval_batch_applies_to_image_rows_on_the_cpu_and_keeps_the_losses():
    from influence_stage.engine.sources import eval_batch_size_for

    rng = np.random.default_rng(0)
    gex = GEXConfig(eval_batch_size=4096)
    images = TensorData.from_arrays(rng.normal(size=(300, 1, 12, 12)).astype(np.float32), rng.integers(0, 3, 300))
    wide = torch_learner(build_model("cnn", (1, 12, 12), 3, seed=0), gex)  # shape unknown: eval_batch_size
    assert wide.eval_batch_size == 4096
    cnn = torch_learner(build_model("cnn", (1, 12, 12), 3, seed=0), gex, (1, 12, 12))
    assert cnn.eval_batch_size == gex.image_eval_batch_size < 300
    assert cnn.fresh_copy(seed=1).eval_batch_size == gex.image_eval_batch_size  # the auxiliary halves inherit it
    assert np.allclose(cnn.per_sample_loss(images), wide.per_sample_loss(images), rtol=1e-5, atol=1e-6)
    assert torch_learner(build_model("mlp", (8,), 3, seed=0), gex, (8,)).eval_batch_size == 4096  # flat rows
    assert eval_batch_size_for(gex.model_copy(update={"image_eval_batch_size": None}), (1, 12, 12), "cpu") == 4096
    assert eval_batch_size_for(gex, (1, 12, 12), "cuda:0") == 4096  # an accelerator keeps its large batches


def test_the_engine_leaves_a_given_learners_eval_batch_alone():
    from influence_stage.engine.gex import score_fitted

    rng = np.random.default_rng(0)
    images = TensorData.from_arrays(rng.normal(size=(64, 1, 8, 8)).astype(np.float32), rng.integers(0, 2, 64))
    learner = torch_learner(build_model("cnn", (1, 8, 8), 2, seed=0), GEXConfig(eval_batch_size=50))
    score_fitted(learner, images, config=GEXConfig(chains=2, cycles=1, ft_lr=0.05, score="gex"), fit_config=FitConfig(epochs=1))
    assert learner.eval_batch_size == 50  # the caller's setting, not GEXConfig.image_eval_batch_size


def test_batchnorm_recalibration_gives_the_all_rows_mean_whatever_the_eval_batch():
    rng = np.random.default_rng(1)
    images = TensorData.from_arrays((rng.normal(size=(300, 1, 12, 12)) + np.arange(300)[:, None, None, None] / 100)
                                    .astype(np.float32), rng.integers(0, 3, 300))  # row order drifts: batches differ
    means = {}
    for size in (4096, 128, 7):  # one pass; 128 + 128 + 44 rows; many ragged passes
        learner = torch_learner(build_model("cnn", (1, 12, 12), 3, seed=0), GEXConfig(eval_batch_size=size))
        learner.recalibrate_batchnorm(images)
        bn = next(m for m in learner.module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))
        means[size] = bn.running_mean.clone()
        assert bn.momentum == 0.1  # the layer's own momentum is given back
    assert torch.allclose(means[128], means[4096], atol=1e-5)
    assert torch.allclose(means[7], means[4096], atol=1e-5)


def test_random_shift_moves_each_image_by_at_most_the_given_pixels_and_repeats():
    from influence_stage.engine.training import random_shift

    base = torch.arange(36, dtype=torch.float32).reshape(6, 6)
    X = torch.stack([base + 1000 * k for k in range(3)])[None].repeat(8, 1, 1, 1)  # 8 equal 3-channel images
    assert random_shift(X, 0, torch.Generator().manual_seed(0)) is X
    a = random_shift(X, 2, torch.Generator().manual_seed(0))
    assert torch.equal(a, random_shift(X, 2, torch.Generator().manual_seed(0))) and a.shape == X.shape
    padded = torch.nn.functional.pad(X, (2, 2, 2, 2), mode="replicate")
    offsets = []
    for i in range(8):  # each output is one 6x6 window of its edge-padded image, the same window in every channel
        found = [(dy, dx) for dy in range(5) for dx in range(5) if torch.equal(a[i], padded[i, :, dy:dy + 6, dx:dx + 6])]
        assert len(found) == 1
        offsets.append(found[0])
    assert len(set(offsets)) > 1  # equal images, moved by offsets of their own


def test_only_the_cross_fitted_halves_train_on_shifted_images(monkeypatch):
    from influence_stage import InfluenceCleaner
    from influence_stage.engine.learner import TorchLearner

    seen: list[tuple[int, int]] = []
    real = TorchLearner.fit

    def spy(self, data, recipe, **kwargs):
        seen.append((len(data), recipe.shift_pixels))
        return real(self, data, recipe, **kwargs)

    monkeypatch.setattr(TorchLearner, "fit", spy)
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    X = (rng.normal(size=(60, 1, 8, 8)) + y[:, None, None, None]).astype(np.float32)
    InfluenceCleaner(random_state=0, fit_config=FitConfig(epochs=3, min_steps=None),
                     gex_config=GEXConfig(chains=2, cycles=1, holdout_epochs=2, image_lr_grid=(0.01, 0.02)),
                     max_drop_fraction=1.0).fit(X, y)
    assert seen[0] == (60, 0)  # θ* on every row, unshifted
    halves = seen[1:]
    assert halves and all(n == 30 and shift == 2 for n, shift in halves)  # each half, shifted by the default 2


@pytest.mark.parametrize("shape", [(1, 8, 8), (6,)])
def test_the_halves_own_rate_and_batch_apply_to_image_rows_only_and_leave_the_plan(monkeypatch, shape):
    from influence_stage.engine.learner import TorchLearner

    seen: list[tuple[int, float, int, int]] = []
    real = TorchLearner.fit

    def spy(self, data, recipe, **kwargs):
        seen.append((len(data), recipe.lr, recipe.batch_size, recipe.epochs))
        return real(self, data, recipe, **kwargs)

    monkeypatch.setattr(TorchLearner, "fit", spy)
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    data = TensorData.from_arrays((rng.normal(size=(60, *shape)) + y.reshape(-1, *([1] * len(shape)))).astype(np.float32), y)
    learner = torch_learner(build_model("auto", shape, 3, seed=0), GEXConfig(), shape)
    fit = FitConfig(epochs=3, lr=0.05, batch_size=16, min_steps=None)
    plain = GEXConfig(holdout_epochs=2, image_aux_lr_scale=1.0)  # θ*'s own rate
    cross_fit(learner, data, config=plain, fit_config=fit)
    before = list(seen)
    seen.clear()
    cross_fit(learner, data, config=plain.model_copy(update={"image_aux_lr_scale": 3.0, "image_aux_batch_size": 8}),
              fit_config=fit)
    assert [e for *_, e in seen] == [e for *_, e in before]  # the same rounds of the same epochs
    assert all(lr == 0.05 and b == 16 for _, lr, b, _ in before)
    if len(shape) == 3:  # image rows: each half at three times the rate, in batches of 8
        assert all(n == 30 and lr == pytest.approx(0.15) and b == 8 for n, lr, b, _ in seen)
    else:  # flat rows keep the recipe
        assert seen == before


@pytest.mark.parametrize("field,before,after", [("image_aux_shift", 0, 2), ("image_aux_views", 1, 5),
                                                 ("image_aux_lr_scale", 1.0, 2.0), ("image_aux_batch_size", None, 8)])
def test_the_image_fields_move_the_halves_probabilities_on_image_rows_only(field, before, after):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 30)
    images = TensorData.from_arrays((rng.normal(size=(90, 1, 10, 10)) + y[:, None, None, None]).astype(np.float32), y)
    flat = TensorData.from_arrays((rng.normal(size=(90, 6)) + y[:, None]).astype(np.float32), y)
    fit = FitConfig(epochs=3)
    for data, shape, expect_change in ((images, (1, 10, 10), True), (flat, (6,), False)):
        learner = torch_learner(build_model("auto", shape, 3, seed=0), GEXConfig(), shape)
        one, _ = cross_fit(learner, data, config=GEXConfig(holdout_epochs=2, **{field: before}), fit_config=fit)
        two, _ = cross_fit(learner, data, config=GEXConfig(holdout_epochs=2, **{field: after}), fit_config=fit)
        assert (not np.array_equal(one, two)) is expect_change
        np.testing.assert_allclose(two.sum(axis=1), 1.0, rtol=1e-5)


def test_shift_image_moves_every_image_by_the_same_offset_and_repeats_the_edges():
    from influence_stage.engine.training import random_shift, shift_image

    X = torch.arange(2 * 2 * 4 * 5, dtype=torch.float32).reshape(2, 2, 4, 5)
    assert shift_image(X, 0, 0) is X
    down = shift_image(X, 1, 0)  # content one row down, the top row repeated
    assert torch.equal(down[:, :, 1:], X[:, :, :-1]) and torch.equal(down[:, :, 0], X[:, :, 0])
    left = shift_image(X, 0, -1)  # content one column left, the right column repeated
    assert torch.equal(left[..., :-1], X[..., 1:]) and torch.equal(left[..., -1], X[..., -1])
    diag = shift_image(X, -1, 1)
    assert torch.equal(diag[:, :, :-1, 1:], X[:, :, 1:, :-1])
    # the same windows of the edge-padded image random_shift draws from
    padded = torch.nn.functional.pad(X, (1, 1, 1, 1), mode="replicate")
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            assert torch.equal(shift_image(X, dy, dx), padded[:, :, 1 - dy:5 - dy, 1 - dx:6 - dx])
    assert random_shift(X, 0, torch.Generator()) is X


@pytest.mark.parametrize("views", [1, 5, 9])
def test_held_out_probabilities_are_the_mean_over_the_shifted_views(views):
    from influence_stage.engine.auxiliary import held_out_proba
    from influence_stage.engine.training import VIEW_OFFSETS, shift_image

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 10)
    data = TensorData.from_arrays(rng.normal(size=(30, 1, 8, 8)).astype(np.float32), y)
    learner = torch_learner(build_model("auto", (1, 8, 8), 3, seed=0), GEXConfig(), (1, 8, 8))
    # the image itself, its four one-pixel neighbours, then the diagonals
    assert VIEW_OFFSETS[0] == (0, 0) and set(VIEW_OFFSETS[1:5]) == {(-1, 0), (1, 0), (0, -1), (0, 1)}
    assert set(VIEW_OFFSETS[5:9]) == {(-1, -1), (-1, 1), (1, -1), (1, 1)}
    got = held_out_proba(learner, data, views)
    expect = np.mean([learner.predict_proba(TensorData(shift_image(data.X, dy, dx), data.y))
                      for dy, dx in VIEW_OFFSETS[:views]], axis=0)
    np.testing.assert_allclose(got, expect, rtol=1e-6, atol=1e-7)
    assert got.dtype == np.float32 and got.shape == (30, 3)
    if views == 1:
        assert np.array_equal(got, learner.predict_proba(data))
    else:  # the views differ, so their mean is not the unshifted image's probabilities
        assert not np.allclose(got, learner.predict_proba(data))


def test_no_shifted_views_when_the_halves_train_unshifted():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 30)
    images = TensorData.from_arrays((rng.normal(size=(90, 1, 10, 10)) + y[:, None, None, None]).astype(np.float32), y)
    learner = torch_learner(build_model("auto", (1, 10, 10), 3, seed=0), GEXConfig(), (1, 10, 10))
    fit = FitConfig(epochs=3)
    one, _ = cross_fit(learner, images, config=GEXConfig(holdout_epochs=2, image_aux_shift=0, image_aux_views=1),
                       fit_config=fit)
    five, _ = cross_fit(learner, images, config=GEXConfig(holdout_epochs=2, image_aux_shift=0, image_aux_views=5),
                        fit_config=fit)
    assert np.array_equal(one, five)


def test_image_aux_views_must_be_one_five_or_nine():
    from pydantic import ValidationError

    for bad in (0, 2, 4, 10):
        with pytest.raises(ValidationError):
            GEXConfig(image_aux_views=bad)


def test_two_folds_are_the_two_halves_of_one_stratified_split():
    from sklearn.model_selection import train_test_split

    from influence_stage.engine.auxiliary import fold_splits

    y = np.repeat(np.arange(4), 25)
    (tr0, te0), (tr1, te1) = fold_splits(y, 2, seed=3)
    a, b = train_test_split(np.arange(100), test_size=0.5, random_state=3, stratify=y)
    assert np.array_equal(tr0, a) and np.array_equal(te0, b) and np.array_equal(tr1, b) and np.array_equal(te1, a)


@pytest.mark.parametrize("folds,counts", [(3, (30, 30, 30)), (5, (40, 25, 35)), (5, (40, 55, 3))])
def test_every_row_is_held_out_by_exactly_one_fold(folds, counts):
    from influence_stage.engine.auxiliary import fold_splits

    y = np.repeat(np.arange(len(counts)), counts)
    splits = fold_splits(y, folds, seed=0)
    assert len(splits) == folds
    held = np.concatenate([te for _, te in splits])
    assert np.array_equal(np.sort(held), np.arange(len(y)))
    for tr, te in splits:
        assert not set(tr) & set(te) and len(tr) + len(te) == len(y)
    for tr, te in splits:  # stratified: each class spread over the folds, every class in every training part
        assert all(abs(np.sum(y[te] == k) - c / folds) <= 1 for k, c in enumerate(counts))
        assert set(y[tr]) == set(y)


def test_never_more_folds_than_half_the_rows():
    from influence_stage.engine.auxiliary import fold_splits

    assert len(fold_splits(np.array([0, 0, 1, 1, 0, 1]), 5, seed=0)) == 3


def test_more_folds_train_each_model_on_more_rows_and_predict_every_row_once(monkeypatch):
    from influence_stage.engine.learner import TorchLearner

    sizes: list[int] = []
    real = TorchLearner.fit

    def spy(self, data, recipe, **kwargs):
        sizes.append(len(data))
        return real(self, data, recipe, **kwargs)

    monkeypatch.setattr(TorchLearner, "fit", spy)
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 30)
    data = TensorData.from_arrays((rng.normal(size=(90, 6)) + 4 * np.eye(3)[y].repeat(2, axis=1)).astype(np.float32), y)
    learner = torch_learner(build_model("auto", (6,), 3, seed=0), GEXConfig(), (6,))
    proba, check = cross_fit(learner, data, config=GEXConfig(holdout_epochs=10, aux_folds=3),
                             fit_config=FitConfig(epochs=10))
    assert set(sizes) == {60} and len(check.epochs) == 3
    assert proba.shape == (90, 3) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert check.accuracy > 0.8  # separable classes, learned from rows each model never saw


def test_image_chains_replace_the_default_chains_on_image_rows_only():
    from influence_stage.engine.members import member_chains

    two = GEXConfig(image_chains=2)
    assert member_chains(two, IMAGE) == 2 and member_chains(two, (16,)) == member_chains(two, None) == two.chains
    assert member_chains(GEXConfig(image_chains=2, chains=5), IMAGE) == 5  # a number set in chains wins
    assert member_chains(GEXConfig(), IMAGE) == 2  # the default on image rows
    assert member_chains(GEXConfig(image_chains=None), IMAGE) == GEXConfig().chains  # None: chains


def _tiny_images() -> tuple[np.ndarray, np.ndarray]:
    """90 rows of (1, 8, 8) images in 3 classes told apart by stripes: a CNN run of seconds."""
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(3), 30)
    X = rng.normal(0, 0.3, size=(90, 1, 8, 8)).astype(np.float32)
    X[y != 1, 0, ::2, :] += 1.5
    X[y != 0, 0, :, ::2] += 1.5
    return X, y


def test_image_chains_set_the_members_of_a_run_through_the_public_path():
    """``InfluenceCleaner`` on (n, c, h, w) arrays keeps image_chains × cycles members; flat rows keep chains."""
    from influence_stage import InfluenceCleaner

    X, y = _tiny_images()
    gex = GEXConfig(image_chains=2, chains=4, cycles=2, lr_grid=(0.05, 0.2), holdout_epochs=4)
    fit = FitConfig(epochs=5, min_steps=40)
    # chains=4 is not its default, so it is used as given on images too
    assert len(InfluenceCleaner(gex_config=gex, fit_config=fit, random_state=0, max_drop_fraction=1.0)
               .fit(X, y).result_.members) == 4 * 2
    lean = gex.model_copy(update={"chains": GEXConfig().chains})
    image = InfluenceCleaner(gex_config=lean, fit_config=fit, random_state=0, max_drop_fraction=1.0).fit(X, y)
    assert len(image.result_.members) == 2 * 2 == image.result_.loss_matrix.shape[1]
    flat = InfluenceCleaner(gex_config=lean, fit_config=fit, random_state=0, max_drop_fraction=1.0).fit(
        X.reshape(90, -1), y)
    assert len(flat.result_.members) == GEXConfig().chains * 2
    from influence_stage.engine.gex import gex as run_gex

    assert len(run_gex("auto", X, y, config=lean, fit_config=fit).members) == 2 * 2  # the engine's own entry


def test_default_image_chains_train_the_members_chains_2_trains():
    """On image rows the default (``image_chains=2``) is the run ``chains=2`` gives: the same members, scores and
    suggestions, so figures measured as ``GEXConfig(chains=2)`` stand for the default."""
    from influence_stage import InfluenceCleaner

    X, y = _tiny_images()
    y[:9] = (y[:9] + 1) % 3
    fit = FitConfig(epochs=5, min_steps=40)
    runs = [InfluenceCleaner(gex_config=GEXConfig(cycles=2, holdout_epochs=4, **fields), fit_config=fit,
                             random_state=0, max_drop_fraction=1.0).fit(X, y)
            for fields in ({}, {"chains": 2, "image_chains": None})]
    assert [len(r.result_.members) for r in runs] == [4, 4]
    assert np.array_equal(runs[0].result_.loss_matrix, runs[1].result_.loss_matrix)
    assert np.array_equal(np.asarray(runs[0].scores_), np.asarray(runs[1].scores_))
    assert runs[0].issues_["suggested_label"].equals(runs[1].issues_["suggested_label"])

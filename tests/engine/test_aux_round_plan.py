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

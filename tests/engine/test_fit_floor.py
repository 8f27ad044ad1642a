"""The floor on SGD steps of the CNN recipe (``FitConfig.min_steps``) and the auxiliary model's round plan."""

from __future__ import annotations

import math


from influence_stage.config import FitConfig, GEXConfig
from influence_stage.config.fit import MAX_FLOOR_FACTOR
from influence_stage.engine.auxiliary import FLOORED_FIRST_ROUND, round_plan

IMAGE = (1, 28, 28)


def test_the_floor_raises_the_epochs_of_small_image_sets_only():
    cfg = FitConfig()
    per_epoch = 800 // cfg.batch_size
    assert cfg.steps_per_epoch(800) == per_epoch
    raised = min(math.ceil(cfg.min_steps / per_epoch), MAX_FLOOR_FACTOR * cfg.epochs)
    assert cfg.epochs_for(800, IMAGE) == max(cfg.epochs, raised) > cfg.epochs
    assert FitConfig(min_steps=1500).epochs_for(800, IMAGE) * per_epoch >= 1500
    # flat features, or a caller that does not say the row shape: the recipe's epochs
    assert cfg.epochs_for(800, (16,)) == cfg.epochs
    assert cfg.epochs_for(800) == cfg.epochs
    # a large image set already takes more steps than the floor in its epochs
    assert cfg.epochs_for(100_000, IMAGE) == cfg.epochs
    # no floor, or a floor on every input
    assert FitConfig(min_steps=None).epochs_for(800, IMAGE) == cfg.epochs
    assert FitConfig(min_steps_inputs="all").epochs_for(800, (16,)) == cfg.epochs_for(800, IMAGE)


def test_the_floor_raises_the_epochs_at_most_max_floor_factor_times():
    cfg = FitConfig(epochs=10, min_steps=5000)
    assert cfg.epochs_for(150, IMAGE) == MAX_FLOOR_FACTOR * 10  # 2 steps per epoch: the floor alone asks 2,500
    assert FitConfig(epochs=10, min_steps=5000, max_steps=5000).epochs_for(150, IMAGE) == MAX_FLOOR_FACTOR * 10


def test_the_cap_wins_over_the_floor():
    # 800 images, batch 64: 12 steps per epoch; the floor asks 200 steps (17 epochs), the cap allows 100 (9)
    recipe = FitConfig(epochs=5, min_steps=200, max_steps=100)
    assert recipe.epochs_for(800, IMAGE) == 9
    assert FitConfig(epochs=5, min_steps=200, max_steps=None).epochs_for(800, IMAGE) == 17


def test_round_plan_gives_half_data_models_the_epochs_of_theta_under_the_floor():
    fit = FitConfig()
    gex = GEXConfig(floored_aux_share=1.0, floored_aux_first=1 / FLOORED_FIRST_ROUND)
    cap, first = round_plan(800, 400, IMAGE, config=gex, fit_config=fit)
    assert cap == fit.epochs_for(800, IMAGE)  # θ*'s epochs: half θ*'s steps on half its rows
    assert first == max(gex.holdout_epochs, math.ceil(cap / FLOORED_FIRST_ROUND))
    # the default: three quarters of θ*'s epochs in one schedule
    gex = GEXConfig()
    cap, first = round_plan(800, 400, IMAGE, config=gex, fit_config=fit)
    assert cap == first == math.ceil(gex.floored_aux_share * fit.epochs_for(800, IMAGE)) < fit.epochs_for(800, IMAGE)
    # flat features: up to the recipe's epochs on the half, holdout_epochs first (unchanged)
    assert round_plan(800, 400, (16,), config=gex, fit_config=fit) == (fit.epochs_for(400), gex.holdout_epochs)
    assert round_plan(800, 400, IMAGE, config=gex, fit_config=FitConfig(min_steps=None)) == (
        fit.epochs, gex.holdout_epochs)

"""One seed derives every sub-seed: influence_stage.seeds, the rule the estimators (and the CLI) follow."""

from __future__ import annotations

import numpy as np
import pytest

from influence_stage.api.params import build_config
from influence_stage.config import FitConfig, GEXConfig
from influence_stage.seeds import SEED_HIGH, StageSeeds, derive_seeds, seeded_sections


def test_an_int_gives_the_same_four_sub_seeds_in_a_fixed_order():
    # the rule: one RandomState(seed).randint(0, 2**31 - 1, size=4), in the order gex, fit, featurize, run
    assert derive_seeds(0) == StageSeeds(gex=209652396, fit=398764591, featurize=924231285, run=1478610112)
    assert derive_seeds(7) == StageSeeds(gex=327741615, fit=976413892, featurize=1202242073, run=1369975286)
    assert SEED_HIGH == 2**31 - 1


def test_a_random_state_object_is_advanced_and_none_draws_fresh_seeds():
    rng = np.random.RandomState(0)
    first, second = derive_seeds(rng), derive_seeds(rng)
    assert first == derive_seeds(0) and second != first
    np.random.seed(3)
    a = derive_seeds(None)
    np.random.seed(3)
    assert derive_seeds(None) == a == derive_seeds(np.random.RandomState(3))


def test_the_estimator_config_takes_its_seeds_from_the_rule():
    config, _ = build_config(model="mlp", gex_config=GEXConfig(seed=99), fit_config=FitConfig(seed=98),
                             random_state=0)
    seeds = derive_seeds(0)
    assert (config.gex.seed, config.fit.seed, config.featurize.seed, config.seed) == (
        seeds.gex, seeds.fit, seeds.featurize, seeds.run)
    sections = seeded_sections({"gex": GEXConfig(chains=3), "fit": FitConfig(epochs=2)}, 0)
    assert sections["gex"].chains == 3 and sections["fit"].epochs == 2  # only the seeds change
    assert sections["gex"].seed == config.gex.seed and sections["seed"] == config.seed


def test_a_bad_random_state_is_scikit_learns_error():
    with pytest.raises(ValueError, match="cannot be used to seed"):
        derive_seeds("zero")

"""The estimators' parameters that reach the newer configuration fields: drop_cap, normalize_labels,
issue_types, featurize_config (its seed derived from random_state), and the output gate read from the
policy registry."""

from __future__ import annotations

import os

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from sklearn.base import clone  # noqa: E402

from influence_stage.api import InfluenceCleaner, InfluenceSampler  # noqa: E402
from influence_stage.config.featurize import FeaturizeConfig  # noqa: E402
from influence_stage.errors import InvalidInputError, InvalidTypeError  # noqa: E402
from influence_stage.seeds import derive_seeds  # noqa: E402


def test_the_readme_form_reaches_the_text_model_and_the_seed_rule_replaces_its_seed():
    given = FeaturizeConfig(text_model="models/encoder", seed=123)
    config, _ = InfluenceCleaner(label_column="label", featurize_config=given, random_state=0)._config()
    assert config.featurize.text_model == "models/encoder"
    assert config.featurize.seed == derive_seeds(0).featurize != 123
    assert config.featurize == given.model_copy(update={"seed": derive_seeds(0).featurize})


def test_the_new_parameters_reach_their_fields_and_survive_clone_and_set_params():
    cleaner = InfluenceCleaner(drop_cap=0.1, normalize_labels=["strip", "casefold"], issue_types=["outlier"],
                               featurize_config=FeaturizeConfig(text_components=8))
    config, _ = cleaner._config()
    assert (config.drop_cap, set(config.normalize_labels), config.issue_types, config.featurize.text_components) \
        == (0.1, {"strip", "casefold"}, ("outlier",), 8)
    copy = clone(cleaner)
    assert copy.get_params()["drop_cap"] == 0.1 and copy.get_params()["featurize_config"].text_components == 8
    copy.set_params(drop_cap=None, issue_types=[])
    config, _ = copy._config()
    assert config.drop_cap is None and config.issue_types == ()
    assert InfluenceCleaner()._config()[0].normalize_labels == ()


def test_the_sampler_takes_drop_cap_prune_tau_and_min_weight():
    sampler = InfluenceSampler(drop_cap=0.05, prune_tau=0.1, min_weight=0.2)
    assert {k: clone(sampler).get_params()[k] for k in ("drop_cap", "prune_tau", "min_weight")} == {
        "drop_cap": 0.05, "prune_tau": 0.1, "min_weight": 0.2}


def test_min_weight_clips_the_samplers_weights():
    from sklearn.datasets import load_breast_cancer

    from influence_stage.config import FitConfig, GEXConfig

    X, y = load_breast_cancer(return_X_y=True)
    weights = {}
    for min_weight in (0.05, 0.45):
        sampler = InfluenceSampler(action="reweight", min_weight=min_weight, threshold="budget:0.2", random_state=0,
                                   gex_config=GEXConfig(chains=2, cycles=2, ft_lr=0.4), fit_config=FitConfig(epochs=3))
        with pytest.warns(UserWarning):
            sampler.fit_resample(X[:150], y[:150])
        assert sampler.config_.min_weight == min_weight
        weights[min_weight] = sampler.sample_weight_
    assert float(weights[0.05].min()) < 0.45  # the clip binds: the same fit, its low weights raised to 0.45
    np.testing.assert_array_equal(weights[0.45], np.clip(weights[0.05], 0.45, 1.0))

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


def test_the_sampler_takes_drop_cap():
    sampler = InfluenceSampler(drop_cap=0.05)
    assert sampler.get_params()["drop_cap"] == 0.05 and clone(sampler).drop_cap == 0.05


@pytest.mark.parametrize("params, error, words", [
    ({"drop_cap": 1.5}, InvalidInputError, "drop_cap"),
    ({"normalize_labels": ["upper"]}, InvalidInputError, "normalize_labels"),
    ({"issue_types": "outlier"}, InvalidInputError, "issue_types is a list of issue type names"),
    ({"issue_types": ["typo"]}, InvalidInputError, "typo"),
    ({"featurize_config": {"text_model": "enc"}}, InvalidTypeError, "featurize_config must be a FeaturizeConfig"),
])
def test_bad_values_are_named_at_fit(params, error, words):
    with pytest.raises(error) as info:
        InfluenceCleaner(**params)._config()
    assert words in str(info.value)


def test_the_gate_skips_the_policies_that_do_not_use_the_threshold():
    from influence_stage.api.gate import refusal
    from influence_stage.config import CleanConfig

    table = pd.DataFrame({"action": ["drop"] * 6 + ["keep"] * 4})
    drop = refusal(table, CleanConfig(), 0.3, "InfluenceCleaner", "drop_cap=")
    assert drop is not None and "6 of 10 rows (60.0%)" in str(drop) and "drop_cap=" in str(drop)
    assert refusal(table, CleanConfig(action="prune", prune_keep=0.4), 0.3, "InfluenceCleaner", "drop_cap=") is None
    assert refusal(table, CleanConfig(), 0.6, "InfluenceCleaner", "drop_cap=") is None


def test_drop_cap_caps_the_fitted_drops(tmp_path):
    from sklearn.datasets import load_digits

    from influence_stage.config import FitConfig, GEXConfig

    X, y = load_digits(return_X_y=True)
    X, y = X[:120], y[:120].copy()
    y[:30] = (y[:30] + 1) % 10  # a quarter of the labels wrong: more flagged rows than the cap allows
    kwargs = dict(gex_config=GEXConfig(chains=2, cycles=2, ft_lr=0.4), fit_config=FitConfig(epochs=3),
                  random_state=0, threshold="budget:0.3", max_fraction_per_class=None)
    capped = InfluenceCleaner(drop_cap=0.1, **kwargs).fit(X, y)
    dropped = int((capped.issues_["action"] == "drop").sum())
    assert dropped == 12 and int(capped.issues_["is_issue"].sum()) == 36  # 10% of 120; the flags stay

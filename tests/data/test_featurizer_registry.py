"""Featurizers are a registry: the built-in kinds by name, another featurizer chosen by name, wrong kinds refused."""

from __future__ import annotations

import numpy as np
import pytest

import datasets

from influence_stage.data.columns import resolve_columns
from influence_stage.data.featurize import (
    FEATURIZER_REGISTRY,
    BaseFeaturizer,
    ImageFeaturizer,
    TabularFeaturizer,
    TextFeaturizer,
    featurize,
    featurizer_class,
)
from influence_stage.errors import InvalidInputError


def test_the_builtin_featurizers_are_the_defaults_for_their_column_kind():
    assert FEATURIZER_REGISTRY.names()[:3] == ("tabular", "image", "text")
    for kind, cls in (("tabular", TabularFeaturizer), ("image", ImageFeaturizer), ("text", TextFeaturizer)):
        assert featurizer_class(kind) is cls and issubclass(cls, BaseFeaturizer) and cls.name == kind


def test_unknown_and_wrong_kind_featurizers_are_refused_naming_the_registered_ones():
    ds = datasets.Dataset.from_dict({"a": [1.0, 2.0, 3.0], "label": [0, 1, 0]})
    roles = resolve_columns(ds, "label")
    with pytest.raises(InvalidInputError, match="unknown featurizer 'nope'; valid featurizers: 'tabular', 'image'"):
        featurize(ds, roles, featurizer="nope")
    with pytest.raises(InvalidInputError, match="featurizer 'text' reads text columns; the feature columns are tabular"):
        featurize(ds, roles, featurizer="text")
    X, fitted = featurize(ds, roles, featurizer="tabular")
    np.testing.assert_array_equal(X, featurize(ds, roles)[0])  # the name of the default gives the default
    with pytest.raises(InvalidInputError, match="either fitted= or featurizer="):
        featurize(ds, roles, fitted=fitted, featurizer="tabular")


def test_a_registered_featurizer_is_used_by_name_and_reused_when_fitted():
    @FEATURIZER_REGISTRY.register("squares")
    class Squares(BaseFeaturizer):
        help = "the squares of the numeric columns"
        kind = "tabular"

        def fit_transform(self, ds, *, batch_size=1024):
            return self.transform(ds, batch_size=batch_size)

        def transform(self, ds, *, batch_size=1024):
            return np.stack([np.asarray(ds[c], dtype=np.float32) ** 2 for c in self.columns], axis=1)

    try:
        ds = datasets.Dataset.from_dict({"a": [1.0, 2.0, 3.0], "label": [0, 1, 0]})
        roles = resolve_columns(ds, "label")
        X, fitted = featurize(ds, roles, featurizer="squares")
        assert isinstance(fitted, Squares) and X.dtype == np.float32
        np.testing.assert_array_equal(X[:, 0], [1.0, 4.0, 9.0])
        X2, _ = featurize(ds.select([2, 0]), roles, fitted=fitted)
        np.testing.assert_array_equal(X2[:, 0], [9.0, 1.0])
        # the same choice through the configuration (estimator, --featurizer and YAML build this)
        from influence_stage.config import FeaturizeConfig

        X3, by_config = featurize(ds, roles, config=FeaturizeConfig(featurizer="squares"))
        assert isinstance(by_config, Squares)
        np.testing.assert_array_equal(X3, X)
    finally:
        FEATURIZER_REGISTRY.unregister("squares")


def test_a_featurizer_must_implement_both_methods():
    class OnlyFit(BaseFeaturizer):
        kind = "tabular"

        def fit_transform(self, ds, *, batch_size=1024):
            return np.zeros((len(ds), 1), dtype=np.float32)

    with pytest.raises(TypeError, match="abstract"):
        OnlyFit(["a"])


def test_the_configuration_refuses_an_unregistered_featurizer_listing_the_registered_ones():
    import pydantic

    from influence_stage.config import FeaturizeConfig

    with pytest.raises(pydantic.ValidationError, match=r"unknown featurizer 'nope'; registered: .*'tabular'"):
        FeaturizeConfig(featurizer="nope")

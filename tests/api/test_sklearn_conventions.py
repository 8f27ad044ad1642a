"""scikit-learn conventions of the estimators: fit(X_dataframe, y), set_output, get_feature_names_out, and the
checks of a passed torch module (its sizes; whether it looks trained)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import copy  # noqa: E402
import math  # noqa: E402
import warnings  # noqa: E402

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import sklearn  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from torch import nn  # noqa: E402

from influence_stage.api import InfluenceCleaner, InfluenceSampler  # noqa: E402
from influence_stage.api.model_checks import UNTRAINED_LOSS_SHARE  # noqa: E402
from influence_stage.config import FitConfig, GEXConfig  # noqa: E402
from influence_stage.errors import InvalidInputError  # noqa: E402

N = 200
TINY = {"gex_config": GEXConfig(chains=2, cycles=2, ft_lr=0.4), "fit_config": FitConfig(epochs=5), "random_state": 0}
COLUMNS = [f"px{j}" for j in range(64)]


@pytest.fixture(scope="module")
def data():
    X, y = load_digits(return_X_y=True)
    df = pd.DataFrame(X[:N] / 16.0, columns=COLUMNS, index=np.arange(1000, 1000 + N))
    return df, y[:N]


@pytest.fixture(scope="module")
def fitted(data):
    """A cleaner fitted with fit(X_dataframe, y). (Its run also imports Great Expectations, which reroutes
    warnings to logging when first imported: the warning tests below run after it.)"""
    df, y = data
    return InfluenceCleaner(**TINY).fit(df, y)


def test_the_cleaner_takes_a_dataframe_of_features_with_y(data, fitted):
    df, y = data
    np.testing.assert_array_equal(fitted.feature_names_in_, COLUMNS)
    assert fitted.n_features_in_ == 64 and fitted.scores_.shape == (N,)
    X_res = fitted.transform(df)  # the default container: numpy, as scikit-learn
    keep = np.flatnonzero(fitted.issues_["action"].to_numpy() != "drop")
    assert isinstance(X_res, np.ndarray) and X_res.shape == (keep.size, 64) and keep.size < N
    np.testing.assert_array_equal(X_res, df.to_numpy()[keep])
    # the same rows as numpy arrays are the same data (same fingerprint): transform takes them too
    np.testing.assert_array_equal(fitted.transform(df.to_numpy()), X_res)
    with pytest.raises(InvalidInputError, match=r"feature names should match those passed to fit: found "
                                                r"\['a0', 'px1'"):
        fitted.transform(df.rename(columns={"px0": "a0"}))
    # a Dataset still takes no y
    with pytest.raises(InvalidInputError, match=r"takes y only with an array or a DataFrame of features X"):
        fitted.fit(datasets.Dataset.from_pandas(df.assign(label=y)), y)
    with pytest.raises(InvalidInputError, match=r"found the label column 'label' in X too"):
        InfluenceCleaner(**TINY).fit(df.assign(label=y), y)


def test_set_output_pandas_names_the_columns_and_keeps_the_index(data, fitted):
    df, y = data
    np.testing.assert_array_equal(fitted.get_feature_names_out(), COLUMNS)
    keep = np.flatnonzero(fitted.issues_["action"].to_numpy() != "drop")
    cleaner = copy.deepcopy(fitted).set_output(transform="pandas")
    out = cleaner.transform(df)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == COLUMNS
    np.testing.assert_array_equal(out.index, df.index[keep])
    np.testing.assert_array_equal(out.to_numpy(), df.to_numpy()[keep])
    X_res, y_res = cleaner.transform((df.to_numpy(), y))  # arrays in: a RangeIndex, the first element wrapped
    assert isinstance(X_res, pd.DataFrame) and list(X_res.index) == list(range(keep.size))
    assert isinstance(y_res, np.ndarray) and y_res.shape == (keep.size,)
    # the global setting applies when set_output was not called; "default" undoes it
    with sklearn.config_context(transform_output="pandas"):
        assert isinstance(fitted.transform(df), pd.DataFrame)
        assert isinstance(copy.deepcopy(fitted).set_output(transform="default").transform(df), np.ndarray)
    with pytest.raises(InvalidInputError, match=r"set_output\(transform=...\) must be one of \['default', "
                                                r"'pandas'\] or None; found 'polars'"):
        cleaner.set_output(transform="polars")


def test_get_feature_names_out_checks_input_features_and_names_table_columns(data, fitted):
    df, y = data
    np.testing.assert_array_equal(fitted.get_feature_names_out(COLUMNS), COLUMNS)
    with pytest.raises(InvalidInputError, match=r"input_features should have length equal to the number of "
                                                r"features \(64\), got 2"):
        fitted.get_feature_names_out(["a", "b"])
    with pytest.raises(InvalidInputError, match=r"input_features is not equal to feature_names_in_"):
        fitted.get_feature_names_out([f"q{j}" for j in range(64)])
    # arrays without names: x0..x{d-1}
    plain = InfluenceCleaner(**TINY).fit(df.to_numpy(), y)
    assert list(plain.get_feature_names_out()[:3]) == ["x0", "x1", "x2"]
    # a frame with its label column under reweight: its columns (no stage row_id) and the weight column
    frame = df.iloc[:, :8].assign(label=y)
    reweight = InfluenceCleaner(action="reweight", **TINY).fit(frame)
    names = reweight.get_feature_names_out()
    assert list(names) == [f"px{j}" for j in range(8)] + ["label", "weight"]
    assert list(reweight.transform(frame).columns) == list(names)


def test_the_sampler_takes_a_dataframe_and_returns_one(data):
    df, y = data
    sampler = InfluenceSampler(**TINY)
    assert sampler.fit(df, y) is sampler  # imbalanced-learn's fit: checks only
    X_res, y_res = sampler.fit_resample(df, y)
    assert isinstance(X_res, pd.DataFrame) and list(X_res.columns) == COLUMNS
    np.testing.assert_array_equal(X_res.to_numpy(), df.to_numpy()[sampler.sample_indices_])
    # imbalanced-learn rebuilds the frame with a fresh RangeIndex (its convention for every sampler);
    # sample_indices_ maps X_res back to the input rows
    np.testing.assert_array_equal(df.index[sampler.sample_indices_][:3], [1000, 1001, 1002])
    assert len(y_res) == len(X_res) < N


def mlp(n_in: int, n_out: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(n_in, 32), nn.ReLU(), nn.Linear(32, n_out))


@pytest.mark.parametrize("estimator", ["cleaner", "sampler"])
def test_a_module_of_the_wrong_input_size_is_named_with_both_numbers(data, estimator):
    df, y = data
    make = InfluenceCleaner if estimator == "cleaner" else InfluenceSampler
    name = make.__name__
    with pytest.raises(InvalidInputError, match=rf"{name}\(model=...\) got a Sequential that does not fit the data: "
                                                r"the model does not accept rows of shape \(64,\)\. Its first layer "
                                                r"\('0'\) expects 10 input features; the data has 64 features per row"
                                                r".*Fix: pass a module built for 64 input features and 10 output"):
        make(model=mlp(10, 10), **TINY).fit(df.to_numpy(), y) if estimator == "cleaner" else \
            make(model=mlp(10, 10), **TINY).fit_resample(df.to_numpy(), y)
    with pytest.raises(InvalidInputError, match=r"model outputs 5 classes, the data has 10\..*Fix: pass a module "
                                                r"built for 64 input features and 10 output classes"):
        make(model=mlp(64, 5), **TINY).fit(df, y) if estimator == "cleaner" else \
            make(model=mlp(64, 5), **TINY).fit_resample(df, y)


def test_an_untrained_module_used_as_theta_star_draws_a_warning(data, fitted):
    df, y = data
    with pytest.warns(UserWarning, match=r"the given model looks untrained: its mean training loss at θ\* is "
                                         r"2\.371, and a uniform guess over 10 classes scores log\(10\) = 2\.303 "
                                         r".*Fix: train the module on these rows first, or pass fit_loaded=True"):
        cleaner = InfluenceCleaner(model=mlp(64, 10), **TINY).fit(df, y)
    assert np.mean(cleaner._base_loss_) >= UNTRAINED_LOSS_SHARE * math.log(10)
    with pytest.warns(UserWarning, match=r"the given model looks untrained.*Fix: train the module on the standardised"):
        InfluenceSampler(model=mlp(64, 10), **TINY).fit_resample(df, y)
    # trained: by the stage (fit_loaded=True), or a module trained on these rows, draws none
    trained = fitted.learner_.module
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        InfluenceCleaner(model=mlp(64, 10), fit_loaded=True, **TINY).fit(df, y)
        used = InfluenceCleaner(model=copy.deepcopy(trained), **TINY).fit(df, y)
    assert np.mean(used._base_loss_) < 0.6 * math.log(10)  # measured: 1.146 (5 epochs), log(10) = 2.303

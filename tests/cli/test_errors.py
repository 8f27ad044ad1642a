"""Bad input to the engine gives a clear error that names the problem (and nothing is computed)."""

from __future__ import annotations

import numpy as np
import pytest

from influence_stage import GEXConfig, InvalidInputError, InvalidTypeError, gex_self_influence
from influence_stage.engine.models import mlp
from influence_stage.data.noise import flip_labels

X = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
Y = np.arange(20) % 2
FIXED = GEXConfig(chains=2, cycles=1, ft_lr=0.1)


def score(X_, y_, config=FIXED, model="mlp"):
    return gex_self_influence(model, X_, y_, config=config)


def test_length_mismatch():
    with pytest.raises(InvalidInputError, match="X has 20 rows, y has 19"):
        score(X, Y[:19])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features_name_row_and_feature(bad):
    X_ = X.copy()
    X_[7, 2] = bad
    with pytest.raises(InvalidInputError, match="row 7, feature 2"):
        score(X_, Y)


def test_fewer_than_two_classes():
    with pytest.raises(InvalidInputError, match="fewer than 2 classes"):
        score(X, np.zeros(20, dtype=int))


def test_labels_outside_range():
    y = Y.copy()
    y[4] = -1
    with pytest.raises(InvalidInputError, match="row 4 has -1"):
        score(X, y)
    with pytest.raises(InvalidInputError, match="outside 0..1: row 3 has 5"):
        gex_self_influence("mlp", X, np.where(np.arange(20) == 3, 5, Y), config=FIXED, n_classes=2)


def test_non_integer_labels():
    with pytest.raises(InvalidTypeError, match="integer class indices"):
        score(X, np.array(["a", "b"] * 10))
    with pytest.raises(InvalidInputError, match="row 0 has 0.5"):
        score(X, np.r_[0.5, Y[1:]].astype(float))


def test_members_fewer_than_two():
    with pytest.raises(ValueError, match="at least 2 members"):
        GEXConfig(chains=1, cycles=1, ft_lr=0.1)
    with pytest.raises(ValueError, match="probes need at least 2 members"):
        GEXConfig(chains=4, cycles=1, probe_chains=1)
    # a config built without validation still cannot reach the engine with one member
    with pytest.raises(InvalidInputError, match="at least 2 members"):
        score(X, Y, config=GEXConfig.model_construct(**{**GEXConfig().model_dump(), "chains": 1, "cycles": 1,
                                                        "ft_lr": 0.1}))


def test_empty_dataset():
    with pytest.raises(InvalidInputError, match="empty"):
        score(X[:0], Y[:0])


def test_wrong_feature_dtype_and_shape():
    with pytest.raises(InvalidTypeError, match="must be numeric"):
        score(np.array([["a"]] * 20), Y)
    with pytest.raises(InvalidInputError, match="2-D"):
        score(X[:, 0], Y)


def test_unknown_model_and_wrong_model_type():
    with pytest.raises(InvalidInputError, match="unknown model name 'resnet'"):
        score(X, Y, model="resnet")
    with pytest.raises(InvalidTypeError, match="model must be"):
        score(X, Y, model=42)


def test_auto_scale_needs_a_learner_that_can_retrain():
    class Minimal:  # implements Learner but cannot train a fresh copy
        def __init__(self):
            from influence_stage import TorchLearner
            self.inner = TorchLearner(mlp(3, 2))

        def get_state(self):
            return self.inner.get_state()

        def set_state(self, state):
            self.inner.set_state(state)

        def train_steps(self, data, steps, lr_schedule, *, seed=0):
            self.inner.train_steps(data, steps, lr_schedule, seed=seed)

        def per_sample_loss(self, data):
            return self.inner.per_sample_loss(data)

        def predict_proba(self, data):
            return self.inner.predict_proba(data)

    with pytest.raises(InvalidInputError, match="Pass a number as ft_lr"):
        score(X, Y, config=GEXConfig(chains=2, cycles=1), model=Minimal())
    # with a fixed rate the same learner works through the protocol alone (loop paths)
    assert score(X, Y, model=Minimal()).shape == (20,)


def test_config_validation():
    with pytest.raises(ValueError, match="chains"):
        GEXConfig(chains=0)
    with pytest.raises(ValueError, match="lr_grid"):
        GEXConfig(lr_grid=(0.4, 0.1))
    with pytest.raises(ValueError, match="ft_lr"):
        GEXConfig(ft_lr="fast")


def test_noise_injection_exact_counts_and_errors():
    y = np.repeat(np.arange(5), 40)
    noisy, flipped = flip_labels(y, 0.2, random_state=3)
    assert flipped.sum() == 40 and (noisy[flipped] != y[flipped]).all() and (noisy[~flipped] == y[~flipped]).all()
    noisy, flipped = flip_labels(y, 0.25, kind="asymmetric", random_state=3)
    assert all(flipped[y == c].sum() == 10 for c in range(5))
    assert ((noisy[flipped] - y[flipped]) % 5 == 1).all()
    again, _ = flip_labels(y, 0.25, kind="asymmetric", random_state=3)
    np.testing.assert_array_equal(noisy, again)
    with pytest.raises(InvalidInputError, match="kind"):
        flip_labels(y, 0.1, kind="pairwise")
    with pytest.raises(InvalidInputError, match="rate"):
        flip_labels(y, 1.5)

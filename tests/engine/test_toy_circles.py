"""The paper's toy case: a modified two-circle dataset.

Two dense outer rings (class 0 at radius 2, class 1 at radius 3) hold typical points; a sparse inner
ring of 10 points with alternating labels holds influential points (each is the only evidence for
its own label in its neighbourhood). Ground truth: leave-one-out self-influence by actual
retraining (warm-started from θ*, the point removed). Bimodality measure: Sarle's bimodality
coefficient BC = (skew² + 1) / (excess kurtosis + 3(n−1)²/((n−2)(n−3))) of log10 scores; BC > 5/9
(the value of a uniform distribution) indicates two modes.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kurtosis, skew
from sklearn.metrics import roc_auc_score

from influence_stage import FitConfig, GEXConfig, TensorData, TorchLearner, gex
from influence_stage.engine.baselines import linearized_influence
from influence_stage.engine.models import mlp

BIMODAL = 5 / 9


def two_circles(seed: int = 0, n_outer: int = 150, n_inner: int = 10):
    rng = np.random.default_rng(seed)

    def ring(radius: float, n: int) -> np.ndarray:
        angle = rng.uniform(0, 2 * np.pi, n)
        r = radius + rng.normal(0, 0.1, n)
        return np.c_[r * np.cos(angle), r * np.sin(angle)]

    angle = np.linspace(0, 2 * np.pi, n_inner, endpoint=False)
    inner = 0.8 * np.c_[np.cos(angle), np.sin(angle)]
    X = np.vstack([ring(2.0, n_outer), ring(3.0, n_outer), inner]).astype(np.float32)
    y = np.r_[np.zeros(n_outer), np.ones(n_outer), np.arange(n_inner) % 2].astype(np.int64)
    influential = np.r_[np.zeros(2 * n_outer, bool), np.ones(n_inner, bool)]
    return X, y, influential


def bimodality_coefficient(scores: np.ndarray) -> float:
    x = np.log10(np.maximum(scores, 1e-12))
    n = len(x)
    return float((skew(x) ** 2 + 1) / (kurtosis(x) + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))))


def test_bimodality_coefficient_reference_values():
    rng = np.random.default_rng(0)
    assert bimodality_coefficient(10 ** rng.normal(size=4000)) < 0.4          # one normal mode: BC ≈ 1/3
    two = np.r_[rng.normal(-3, 0.3, 2000), rng.normal(3, 0.3, 2000)]
    assert bimodality_coefficient(10 ** two) > 0.9                            # two separated modes


@pytest.fixture(scope="module")
def toy():
    X, y, influential = two_circles()
    data = TensorData.from_arrays(X, y)
    learner = TorchLearner(mlp(2, 2, hidden=(32, 32), seed=0), batch_size=32)
    history = learner.fit(data, FitConfig(epochs=300, lr=0.05, batch_size=32))
    assert history.accuracy[-1] == 1.0  # θ* fits every point, the inner ring included
    return X, y, influential, data, learner


@pytest.fixture(scope="module")
def leave_one_out(toy):
    """LOO self-influence ``loss_without_i(z_i) - loss(z_i)`` on all inner points and every 20th outer one."""
    X, y, influential, data, learner = toy
    theta, base = learner.get_state(), learner.per_sample_loss(data)
    rows = np.r_[np.flatnonzero(influential), np.flatnonzero(~influential)[::20]]
    loo = []
    for i in rows:
        learner.set_state(theta)
        learner.fit(data.subset(np.delete(np.arange(len(y)), i)), FitConfig(epochs=60, lr=0.02, batch_size=32, seed=1))
        loo.append(learner.per_sample_loss(data.subset([i]))[0] - base[i])
    learner.set_state(theta)
    return rows, np.array(loo)


def test_leave_one_out_ground_truth_marks_the_inner_ring(toy, leave_one_out):
    influential = toy[2]
    rows, loo = leave_one_out
    assert roc_auc_score(influential[rows], loo) >= 0.99
    assert loo[influential[rows]].min() > 0.2 and np.abs(loo[~influential[rows]]).max() < 0.05


def test_gex_separates_and_is_bimodal_where_linearized_is_not(toy, leave_one_out):
    X, y, influential, data, learner = toy
    theta = learner.get_state()
    result = gex(learner, X, y, config=GEXConfig(ft_lr=0.2, chains=4, cycles=4, cycle_epochs=2, batch_size=32, score="gex"))
    learner.set_state(theta)
    linear = linearized_influence(learner, data)
    assert roc_auc_score(influential, result.scores) >= 0.99
    # against the retraining ground truth: rows with LOO self-influence > 0.2 vs the rest
    rows, loo = leave_one_out
    assert roc_auc_score(loo > 0.2, result.scores[rows]) >= 0.99
    bc_gex, bc_lin = bimodality_coefficient(result.scores), bimodality_coefficient(linear)
    assert bc_gex > BIMODAL > bc_lin, (bc_gex, bc_lin)

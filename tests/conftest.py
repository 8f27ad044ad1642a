"""Shared fixtures: small deterministic datasets and a trained MLP learner."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from influence_stage.config import FitConfig
from influence_stage.engine.learner import TensorData, TorchLearner
from influence_stage.engine.models import mlp
from influence_stage.data.noise import flip_labels

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits_noisy():
    """Digits pixels standardised, 10% uniform label noise (seed 0): ``(X, y_noisy, flipped, y_true)``."""
    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32)
    X = (X - X.mean(0)) / (X.std(0) + 1e-6)
    y_noisy, flipped = flip_labels(y, 0.1, random_state=0)
    return X, y_noisy, flipped, y


@pytest.fixture()
def small_learner():
    """An MLP learner trained briefly on 300 digits rows, and its data."""
    X, y = load_digits(return_X_y=True)
    X = ((X - X.mean(0)) / (X.std(0) + 1e-6)).astype(np.float32)[:300]
    data = TensorData.from_arrays(X, y[:300])
    learner = TorchLearner(mlp(64, 10, hidden=(32,), seed=0), batch_size=32)
    learner.fit(data, FitConfig(epochs=5, lr=0.05, batch_size=32))
    return learner, data

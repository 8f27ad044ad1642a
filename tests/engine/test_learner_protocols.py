"""The Learner's optional capabilities are runtime-checkable protocols: what a learner offers is read with
isinstance, and the stage's choices follow them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from influence_stage.engine.learner import (
    CAPABILITIES,
    BatchedChains,
    CrossFittable,
    Fittable,
    FreshCopies,
    Learner,
    OnDevice,
    TorchLearner,
    capabilities,
    place,
)
from influence_stage.engine.models import mlp
from influence_stage.errors import InvalidInputError


class Minimal:
    """The five methods of Learner and nothing else."""

    def get_state(self):
        return {}

    def set_state(self, state):
        pass

    def train_steps(self, data, steps, lr_schedule, *, seed=0):
        pass

    def per_sample_loss(self, data):
        return np.zeros(len(data), dtype=np.float32)

    def predict_proba(self, data):
        return np.full((len(data), 2), 0.5, dtype=np.float32)


def test_torch_learner_offers_every_capability_and_a_minimal_learner_none():
    torch_learner = TorchLearner(mlp(3, 2, seed=0))
    assert isinstance(torch_learner, Learner)
    assert capabilities(torch_learner) == tuple(c.__name__ for c in CAPABILITIES)
    minimal = Minimal()
    assert isinstance(minimal, Learner) and capabilities(minimal) == ()


def test_capabilities_are_read_by_name_and_a_method_set_to_none_does_not_count():
    fit_only = Minimal()
    fit_only.fit = lambda data, recipe, progress=False: None
    assert isinstance(fit_only, Fittable) and not isinstance(fit_only, FreshCopies)
    assert not isinstance(fit_only, CrossFittable)  # needs both
    fit_only.fresh_copy = lambda seed: Minimal()
    assert isinstance(fit_only, CrossFittable)
    fit_only.fit = None
    assert not isinstance(fit_only, Fittable)
    half = Minimal()
    half.train_chains = lambda *a: []
    assert not isinstance(half, BatchedChains)  # can_train_batched is missing


def test_place_reads_the_device_of_an_on_device_learner():
    other = Minimal()
    assert place(other, "cpu") is other  # no device attribute: on the CPU
    other.device = "cuda:7"
    assert isinstance(other, OnDevice)
    with pytest.raises(InvalidInputError, match="runs on cuda:7 and cannot be moved"):
        place(other, "cpu")


def test_learner_data_builds_tensors_on_the_learners_device():
    from influence_stage.stage.model_step import learner_data
    from influence_stage.stage.results import Features

    features = Features(X=np.zeros((4, 3), dtype=np.float32), y=np.array([0, 1, 0, 1]), row_ids=np.arange(4),
                        n_classes=2)
    data = learner_data(Minimal(), None, features)
    assert data.X.device == torch.device("cpu") and data.X.shape == (4, 3)


def test_fit_loaded_with_a_learner_that_cannot_fit_is_refused():
    from influence_stage.config import CleanConfig
    from influence_stage.stage.model_step import make_model_step
    from influence_stage.stage.results import Features

    features = Features(X=np.zeros((4, 3), dtype=np.float32), y=np.array([0, 1, 0, 1]), row_ids=np.arange(4),
                        n_classes=2)
    with pytest.raises(InvalidInputError, match="has no fit"):
        make_model_step(features, CleanConfig(fit_loaded=True), Minimal())

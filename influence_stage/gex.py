"""End-to-end GEX on arrays: model → (θ*) → members → loss matrix → self-influence.

``gex`` returns everything it computed (``GEXResult``); ``gex_self_influence`` returns the scores.
Every higher layer (cleaner, flows, CLI, benchmarks) calls these.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from torch import nn

from influence_stage.checks import check_xy
from influence_stage.config import FitConfig, GEXConfig
from influence_stage.ensemble import AutoScale, build_members, choose_ft_lr
from influence_stage.exceptions import InvalidInputError, InvalidTypeError
from influence_stage.influence import self_influence
from influence_stage.learner import Learner, State, TensorData, TorchLearner
from influence_stage.losses import loss_matrix
from influence_stage.models import build_model

logger = logging.getLogger(__name__)

# Below this share of rows fitted by θ*, GEX warns (measured: digits and text θ* fit 0.92–1.0 of
# the given labels and GEX beats the loss at θ*; the synthetic set's θ* fits 0.50 and it does not).
THETA_FIT_WARNING = 0.8


@dataclass(frozen=True)
class GEXResult:
    """Everything one GEX run computed.

    Attributes
    ----------
    scores : ``(n_samples,) float64`` self-influence, higher = more suspicious.
    loss_matrix : ``(n_samples, n_members) float32`` member losses on the given labels.
    base_loss : ``(n_samples,) float32`` losses at θ*.
    members : member parameter states, chain-major.
    ft_lr : the fine-tuning rate used.
    auto : what the automatic scale measured, or None when ``ft_lr`` was given.
    learner : the learner, left at θ*.
    timings : wall seconds per step.
    """

    scores: np.ndarray
    loss_matrix: np.ndarray
    base_loss: np.ndarray
    members: list[State]
    ft_lr: float
    auto: AutoScale | None
    learner: Learner
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def theta_fit(self) -> float:
        """Share of rows θ* fits (probability of the given label > 0.5, i.e. loss < ln 2)."""
        return float(np.mean(self.base_loss < np.log(2.0)))


def make_learner(model: Any, X: np.ndarray, n_classes: int, *, config: GEXConfig) -> tuple[Learner, bool]:
    """Turn ``model`` into a Learner; the flag says whether it still needs training (a name was given)."""
    if isinstance(model, str):
        module = build_model(model, X.shape[1:], n_classes, seed=config.seed)
        return _torch_learner(module, config), True
    if isinstance(model, nn.Module):
        return _torch_learner(model, config), False
    if isinstance(model, Learner):
        return model, False
    raise InvalidTypeError(
        "model must be a model name ('auto', 'mlp', 'cnn'), a torch.nn.Module or a Learner; "
        f"found {type(model).__name__}."
    )


def _torch_learner(module: nn.Module, config: GEXConfig) -> TorchLearner:
    return TorchLearner(module, batch_size=config.batch_size, momentum=config.momentum,
                        weight_decay=config.weight_decay, eval_batch_size=config.eval_batch_size)


def gex(model: Any, X: Any, y: Any, *, config: GEXConfig | None = None, fit_config: FitConfig | None = None,
        fit_model: bool | None = None, n_classes: int | None = None, progress: bool = False) -> GEXResult:
    """Score every row of ``(X, y)`` by GEX self-influence.

    Parameters
    ----------
    model : str | torch.nn.Module | Learner
        A model name (built and trained on ``(X, y)`` as θ*), or a trained module or learner (θ*).
    X : array-like, shape ``(n_samples, n_features)`` or ``(n_samples, c, h, w)``
    y : array-like of int, shape ``(n_samples,)``, classes ``0..K-1`` (the given, possibly wrong labels)
    config : GEXConfig
        Members, perturbation scale and score settings.
    fit_config : FitConfig
        Recipe for training θ* and the auto scale's held-out model.
    fit_model : bool, optional
        Train θ* first. Default: only when ``model`` is a name.
    n_classes : int, optional
        Number of classes K; default ``max(y) + 1``.
    """
    config = config or GEXConfig()
    fit_config = fit_config or FitConfig()
    X_arr, y_arr, k = check_xy(X, y, n_classes=n_classes)
    learner, needs_fit = make_learner(model, X_arr, k, config=config)
    data = TensorData.from_arrays(X_arr, y_arr, device=getattr(learner, "device", "cpu"))
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if fit_model if fit_model is not None else needs_fit:
        if not hasattr(learner, "fit"):
            raise InvalidInputError(f"fit_model=True needs a learner with fit(); {type(learner).__name__} has none.")
        learner.fit(data, fit_config, progress=progress)
    timings["fit"] = time.perf_counter() - t0
    return score_fitted(learner, data, config=config, fit_config=fit_config, progress=progress, timings=timings)


def score_fitted(learner: Learner, data: TensorData, *, config: GEXConfig, fit_config: FitConfig,
                 progress: bool = False, timings: dict[str, float] | None = None) -> GEXResult:
    """GEX from a learner already at θ*: scale → members → loss matrix → scores."""
    timings = dict(timings or {})
    t = time.perf_counter()
    auto = None
    first_chains: list[list[State]] = []
    if config.ft_lr == "auto":
        auto = choose_ft_lr(learner, data, config=config, fit_config=fit_config, progress=progress)
        ft_lr, first_chains = auto.ft_lr, auto.first_chains
    else:
        ft_lr = float(config.ft_lr)
    timings["scale"] = time.perf_counter() - t
    t = time.perf_counter()
    members = build_members(learner, data, config=config, ft_lr=ft_lr, first_chains=first_chains, progress=progress)
    timings["members"] = time.perf_counter() - t
    t = time.perf_counter()
    result = result_from_members(learner, data, members, config=config, ft_lr=ft_lr, auto=auto, progress=progress)
    timings["losses"] = time.perf_counter() - t
    return replace(result, timings=timings)


def result_from_members(learner: Learner, data: Any, members: list[State], *, config: GEXConfig, ft_lr: float,
                        auto: AutoScale | None = None, progress: bool = False) -> GEXResult:
    """Base losses at θ* (the learner's current state), the loss matrix of ``members`` and the scores.

    The last step of ``score_fitted``; the Prefect flow calls it too, after building the members in
    its own tasks.
    """
    base = learner.per_sample_loss(data)
    fit = float(np.mean(base < np.log(2.0)))
    if fit < THETA_FIT_WARNING:
        # GEX ranks rows by how much the members change their loss; a row θ* never fitted keeps a high
        # loss in every member and scores low, so a θ* that fits few rows hides its mislabeled ones.
        logger.warning("θ* fits only %.0f%% of the given labels; GEX assumes θ* fits (memorises) its training "
                       "rows and ranks the rows it does not fit low. Train θ* longer or with a larger model, "
                       "or rank by the loss at θ* (influence_stage.baselines.loss_at_theta).", 100 * fit)
    L = loss_matrix(learner, members, data, batch_size=config.eval_batch_size,
                    member_chunk=config.member_chunk, progress=progress)
    return GEXResult(scores=self_influence(L, base, tau=config.tau, trim=config.trim), loss_matrix=L, base_loss=base,
                     members=list(members), ft_lr=ft_lr, auto=auto, learner=learner)


def gex_self_influence(model: Any, X: Any, y: Any, *, config: GEXConfig | None = None,
                       fit_config: FitConfig | None = None, fit_model: bool | None = None,
                       n_classes: int | None = None, progress: bool = False) -> np.ndarray:
    """GEX self-influence of every row, ``(n_samples,) float64``; higher = more suspicious.

    Same arguments as ``gex``; see there.
    """
    return gex(model, X, y, config=config, fit_config=fit_config, fit_model=fit_model,
               n_classes=n_classes, progress=progress).scores

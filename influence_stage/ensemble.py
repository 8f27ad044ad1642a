"""Member construction (chains × cycles from θ*) and the automatic perturbation scale.

Members: ``chains`` independent chains start at θ*; each runs ``cycles`` cosine cycles of
``cycle_steps`` SGD steps from ``ft_lr`` to 0, restarting the optimizer each cycle; the end of each
cycle is one member. Members are ordered chain-major: ``members[c * cycles + k]``.

Automatic scale (``ft_lr="auto"``), the criterion
--------------------------------------------------
Members should forget what θ* memorised about individual rows, but stay in θ*'s basin. We measure
that with the members' *fit to the given labels*: the share of training rows whose given label gets
probability > 0.5, averaged over members. The target is the fit that the same model reaches on rows
it never saw: a fresh model is trained on ``1 - holdout_fraction`` of the rows (stratified split)
for ``holdout_epochs`` epochs, and its fit is measured on the held-out rows (given labels there
too, so label noise lowers the target as it lowers what a non-memorising model can fit). Then one
probe chain per rate in ``lr_grid`` runs the same cycles from θ*; the chosen rate is where the probe
fit crosses the target, interpolated on a log scale between the two bracketing grid rates. Rates that
keep fit ≈ 1 leave memorised noisy rows at low loss and invert the ranking; rates whose fit falls far
below the target leave the basin and flatten it. No ground truth is used.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from tqdm.auto import tqdm

from influence_stage.config import FitConfig, GEXConfig
from influence_stage.exceptions import InvalidInputError
from influence_stage.learner import CosineSchedule, Learner, State, TensorData
from influence_stage.losses import given_label_proba

logger = logging.getLogger(__name__)


def cycle_steps(n_rows: int, config: GEXConfig) -> int:
    """SGD steps in one cycle: ``cycle_epochs`` passes over ``n_rows`` at ``batch_size``."""
    per_epoch = max(n_rows // min(config.batch_size, n_rows), 1)
    return max(1, int(round(config.cycle_epochs * per_epoch)))


def member_seed(seed: int, chain: int, cycle: int) -> int:
    """Seed of the batch order of one cycle of one chain (independent streams per chain)."""
    return int(np.random.SeedSequence([int(seed), int(chain), int(cycle)]).generate_state(1)[0])


def _batched(learner: Learner) -> bool:
    return hasattr(learner, "train_chains") and learner.can_train_batched()


def run_chains(learner: Learner, data: TensorData, *, start: State, rates: Sequence[float], cycles: int,
               steps: int, seed: int, chain_ids: Sequence[int] | None = None,
               progress: bool = False, desc: str = "members") -> list[list[State]]:
    """Run one chain per entry of ``rates`` from ``start``; return ``states[chain][cycle]``.

    Uses the learner's batched ``train_chains`` when it has one, else ``train_steps`` per chain;
    both see the same batches for the same seeds. The learner is left at ``start``.
    """
    chain_ids = list(range(len(rates))) if chain_ids is None else list(chain_ids)
    out: list[list[State]] = [[] for _ in rates]
    bar = tqdm(total=len(rates) * cycles, desc=desc, disable=not progress, leave=False)
    try:
        if _batched(learner):
            states = [start] * len(rates)
            for k in range(cycles):
                schedules = [CosineSchedule(float(r), steps) for r in rates]
                seeds = [member_seed(seed, c, k) for c in chain_ids]
                states = learner.train_chains(states, data, steps, schedules, seeds)
                for c, st in enumerate(states):
                    out[c].append(st)
                bar.update(len(rates))
        else:
            for c, rate in enumerate(rates):
                learner.set_state(start)
                for k in range(cycles):
                    learner.train_steps(data, steps, CosineSchedule(float(rate), steps),
                                        seed=member_seed(seed, chain_ids[c], k))
                    out[c].append(learner.get_state())
                    bar.update(1)
    finally:
        bar.close()
        learner.set_state(start)
    return out


def build_members(learner: Learner, data: TensorData, *, config: GEXConfig, ft_lr: float,
                  progress: bool = False) -> list[State]:
    """``config.chains × config.cycles`` members from the learner's current parameters (θ*).

    Returns the members chain-major; the learner is left at θ*.
    """
    if config.n_members < 2:
        raise InvalidInputError(
            f"GEX needs at least 2 members; chains × cycles = {config.chains} × {config.cycles} = "
            f"{config.n_members}. Raise chains or cycles."
        )
    if not (isinstance(ft_lr, (int, float)) and ft_lr > 0 and math.isfinite(ft_lr)):
        raise InvalidInputError(f"ft_lr must be a positive number; found {ft_lr!r}.")
    theta = learner.get_state()
    per_chain = run_chains(learner, data, start=theta, rates=[ft_lr] * config.chains, cycles=config.cycles,
                           steps=cycle_steps(len(data), config), seed=config.seed, progress=progress)
    return [st for chain in per_chain for st in chain]


def label_fit(p_given: np.ndarray) -> float:
    """Share of rows whose given label has probability > 0.5, averaged over members.

    ``p_given`` is ``(n_samples,)`` or ``(n_samples, n_members)``.
    """
    return float(np.mean(np.asarray(p_given) > 0.5))


@dataclass(frozen=True)
class AutoScale:
    """What ``ft_lr="auto"`` measured and chose."""

    ft_lr: float
    target_fit: float
    grid: tuple[float, ...]
    grid_fit: tuple[float, ...]
    theta_fit: float


def holdout_target_fit(learner: Learner, data: TensorData, *, config: GEXConfig, fit_config: FitConfig) -> float:
    """Fit to the given labels that a fresh model reaches on held-out rows (see module docstring)."""
    if not (hasattr(learner, "fresh_copy") and hasattr(learner, "fit")):
        raise InvalidInputError(
            "ft_lr='auto' needs a learner that can train a fresh copy (fresh_copy() and fit()); "
            f"{type(learner).__name__} has not. Pass a number as ft_lr."
        )
    y = data.y.cpu().numpy()
    idx = np.arange(len(y))
    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 else None
    tr, ho = train_test_split(idx, test_size=config.holdout_fraction, random_state=config.seed, stratify=stratify)
    fresh = learner.fresh_copy(seed=config.seed + 1)
    fresh.fit(data.subset(tr), epochs=config.holdout_epochs, lr=fit_config.lr, seed=config.seed,
              batch_size=fit_config.batch_size)
    held = data.subset(ho)
    p = fresh.predict_proba(held)[np.arange(len(ho)), held.y.cpu().numpy()]
    return label_fit(p)


def interpolate_rate(grid: Sequence[float], fits: Sequence[float], target: float) -> float:
    """The rate where fit (decreasing in rate) crosses ``target``, log-linear between grid points.

    Below the whole curve → the largest rate; above it → the smallest.
    """
    grid, fits = list(grid), list(fits)
    for i, f in enumerate(fits):
        if f <= target:
            if i == 0:
                return float(grid[0])
            f0, f1 = fits[i - 1], f
            w = 0.0 if f0 == f1 else (f0 - target) / (f0 - f1)
            return float(math.exp(math.log(grid[i - 1]) + w * (math.log(grid[i]) - math.log(grid[i - 1]))))
    return float(grid[-1])


def choose_ft_lr(learner: Learner, data: TensorData, *, config: GEXConfig, fit_config: FitConfig,
                 progress: bool = False) -> AutoScale:
    """Choose the fine-tuning rate from the data alone (criterion in the module docstring)."""
    target = holdout_target_fit(learner, data, config=config, fit_config=fit_config)
    theta = learner.get_state()
    theta_fit = label_fit(given_label_proba(learner, [theta], data, batch_size=config.eval_batch_size))
    chains = run_chains(learner, data, start=theta, rates=config.lr_grid, cycles=config.cycles,
                        steps=cycle_steps(len(data), config), seed=config.seed + 7919,
                        progress=progress, desc="auto ft_lr probe")
    fits = [label_fit(given_label_proba(learner, ch, data, batch_size=config.eval_batch_size,
                                        member_chunk=config.member_chunk)) for ch in chains]
    rate = interpolate_rate(config.lr_grid, fits, target)
    logger.info("auto ft_lr: target fit %.3f (θ* fit %.3f); grid fits %s → ft_lr %.4g", target, theta_fit,
                [round(f, 3) for f in fits], rate)
    return AutoScale(ft_lr=rate, target_fit=target, grid=tuple(config.lr_grid), grid_fit=tuple(fits),
                     theta_fit=theta_fit)

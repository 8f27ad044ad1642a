"""The auxiliary model: cross-fitted probabilities trained until held-out rows stop improving, then checked.

Three parts of a run lean on one auxiliary model, the two-fold cross-fit whose probabilities of
every row come from the half that never saw it (``GEXConfig.aux_folds`` for more folds): the
automatic scale's yardstick, the out-of-sample part of the default ranking and the noise estimate.
A model that has not learned the task contradicts most rows and drags all three with it (a
batch-norm CNN trained for 8 epochs on half of 2,000 images reached 0.47 accuracy, and the noise
estimate read 53% against a true 19%).

Training (``cross_fit``). Each half's model starts with ``holdout_epochs`` epochs of the θ*
recipe, then keeps training with warm restarts (the same recipe, as many epochs again as it has
had, so the totals double) while its agreement with the given labels of the held-out half still
rises by at least ``MIN_GAIN``, up to the epochs θ* itself gets. The probabilities of the best
round are kept. On image rows under the recipe's floor on SGD steps (``FitConfig.min_steps``) the
cap is ``GEXConfig.floored_aux_share`` of the epochs θ* gets and the first round
``floored_aux_first`` of the cap (``round_plan``; by default one cosine schedule of three
quarters of θ*'s epochs, which kept the CNN above the reliability rule on the measured image
settings for less time than doubling rounds up to all of them). Agreement with the given labels
is measurable without ground truth, and under label noise it rises and falls with the accuracy
against the true labels. An MLP that has learned its task after 8 epochs stops after one more
round.

Check (``AuxiliaryCheck``). The rule: the model is *reliable* when its out-of-sample agreement
with the given labels is clearly above the majority-class rate, ``kappa = (acc - majority) /
(1 - majority) >= RELIABLE_KAPPA`` (0.55). A model no better than predicting the largest class has
kappa 0; one that agrees with every label has 1; a perfect model under 20%, 30% and 40% uniform
noise on ten classes has 0.78, 0.67 and 0.56, so planted noise alone up to 40% does not trip it.
On 400 digits rows with only the top two pixel rows as features and clean labels, the model reaches
0.585 (kappa 0.53) and its confident joint calls 30% of the correct labels wrong. When it is not
reliable the run warns, and the scale and the estimate stop leaning on it (see ``engine.members``
and ``decisions.estimate``). The ranking keeps its out-of-sample loss as one rank of three: kappa on
noisy given labels also reads low for a model that carries real evidence (two classes under 20%
flips cap even a perfect model at 0.6), and on the weak text and weak-feature runs measured the
ranking without that rank was worse on every run.

The check makes no call when fewer than ``MIN_OTHER_ROWS`` rows lie outside the largest class: kappa's
denominator then counts a handful of rows (one row moves it by 0.1 or more), and a model that
cannot learn a class of two rows from one is not a model that failed to learn the task. Such a
run keeps the cross-fitted evidence (the rare class's rows are exactly what it contradicts; the
small-class rule of ``decisions.decide`` then decides whether they may be removed).
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

from influence_stage.config import FitConfig, GEXConfig
from influence_stage.config.fit import is_image
from influence_stage.engine.learner import Learner, TensorData
from influence_stage.engine.training import VIEW_OFFSETS, ShiftedRows

logger = logging.getLogger(__name__)

#: Smallest kappa (agreement above the majority rate, scaled to [.., 1]) of a reliable auxiliary model.
RELIABLE_KAPPA = 0.55
#: Smallest rise of held-out agreement that earns another (doubling) round of training.
MIN_GAIN = 0.01
#: Fewest rows outside the largest class for the check to call a model weak (see the module docstring).
MIN_OTHER_ROWS = 10
#: Flat features under a floor on every input: 1 / the first round's share of the cap (``round_plan``).
FLOORED_FIRST_ROUND = 4


@dataclass(frozen=True)
class AuxiliaryCheck:
    """How well the cross-fitted auxiliary model learned the task, measured on rows it never saw.

    Attributes
    ----------
    accuracy : share of rows whose given label is the held-out model's argmax.
    majority_rate : share of the largest class among the given labels.
    epochs : epochs each fold's model trained (the round kept; two halves by default).
    n_rows : rows checked (0: unknown, the check then judges by kappa alone).
    """

    accuracy: float
    majority_rate: float
    epochs: tuple[int, ...] = ()
    n_rows: int = 0

    @property
    def kappa(self) -> float:
        """``(accuracy - majority_rate) / (1 - majority_rate)``; 0 for a single class."""
        return 0.0 if self.majority_rate >= 1.0 else (self.accuracy - self.majority_rate) / (1.0 - self.majority_rate)

    @property
    def reliable(self) -> bool:
        """Whether ``kappa >= RELIABLE_KAPPA``, or too few rows lie outside the largest class to tell
        (fewer than ``MIN_OTHER_ROWS``; the rule in the module docstring)."""
        if self.n_rows and round((1.0 - self.majority_rate) * self.n_rows) < MIN_OTHER_ROWS:
            return True
        return self.kappa >= RELIABLE_KAPPA

    def message(self) -> str:
        """The warning a run shows when the model is not reliable."""
        return (f"the auxiliary cross-fitted model is weak: out-of-sample accuracy {self.accuracy:.3f} on the given "
                f"labels against a majority-class rate of {self.majority_rate:.3f} (kappa {self.kappa:.2f} < "
                f"{RELIABLE_KAPPA}); its view is not trusted: its out-of-sample loss is only one of the ranking's ranks, "
                "the automatic scale uses θ*'s training margins and the noise estimate is the midpoint of its count and "
                "the count of its probabilities averaged with the members' (in-sample). The features or the model may not carry the labels; check them before acting on "
                "the flags.")


def check_auxiliary(proba: np.ndarray, labels: np.ndarray, epochs: tuple[int, ...] = ()) -> AuxiliaryCheck:
    """The check of ``proba`` ``(n, K)`` out-of-sample probabilities against ``labels`` ``(n,)`` int."""
    y = np.asarray(labels)
    acc = float(np.mean(np.asarray(proba).argmax(axis=1) == y)) if len(y) else 0.0
    majority = float(np.bincount(y).max() / len(y)) if len(y) else 1.0
    return AuxiliaryCheck(accuracy=acc, majority_rate=majority, epochs=tuple(int(e) for e in epochs), n_rows=len(y))


def contradicted_rows(proba: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(n,) bool``: the rows whose given label ``labels`` gets probability < 0.5 from the out-of-sample
    ``proba`` ``(n, K)`` (the automatic scale's yardstick and the GEX agreement check read the same rows)."""
    y = np.asarray(labels)
    return np.asarray(proba)[np.arange(len(y)), y] < 0.5


def _agreement(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(p.argmax(axis=1) == y))


def round_plan(n_rows: int, n_train: int, input_shape: tuple[int, ...] | None, *, config: GEXConfig,
               fit_config: FitConfig) -> tuple[int, int]:
    """``(cap, first)``: the most epochs one half's model trains in all, and its first round's epochs.

    Flat features: up to the epochs the recipe gives a fit of ``n_train`` rows, ``holdout_epochs``
    first. Image rows under the recipe's step floor (``FitConfig.min_steps``): up to
    ``config.floored_aux_share`` of the epochs θ* gets on all ``n_rows`` rows (at 1, half θ*'s steps
    on half its rows), ``config.floored_aux_first`` of that cap first (at 1: one cosine schedule and
    no doubling round): with so many epochs, rounds that start at ``holdout_epochs`` would restart the
    cosine schedule five times or more, and each restart loses accuracy that one longer schedule
    keeps. Neither field touches flat features: under a floor on every input
    (``FitConfig.min_steps_inputs='all'``) they keep the full share and a first round of
    ``1 / FLOORED_FIRST_ROUND`` of it. Never under ``holdout_epochs``.
    """
    if fit_config.floors(input_shape):
        full = fit_config.epochs_for(n_rows, input_shape)
        image = is_image(input_shape)
        share, first = (config.floored_aux_share, config.floored_aux_first) if image else (1.0, 1 / FLOORED_FIRST_ROUND)
        cap = max(math.ceil(share * full), config.holdout_epochs)
        return cap, min(cap, max(config.holdout_epochs, math.ceil(first * cap)))
    cap = max(fit_config.epochs_for(n_train), config.holdout_epochs)
    return cap, config.holdout_epochs


def held_out_proba(model: Learner, held, views: int) -> np.ndarray:
    """``model``'s probabilities of ``held``, averaged over the first ``views`` of ``VIEW_OFFSETS``
    (each image moved by one offset; ``views`` 1: the rows as they are)."""
    if views <= 1:
        return model.predict_proba(held)
    total = sum(model.predict_proba(ShiftedRows(held, dy, dx)).astype(np.float64) for dy, dx in VIEW_OFFSETS[:views])
    return (total / views).astype(np.float32)


def fold_splits(y: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train rows, held-out rows)`` of each fold: two halves of a stratified split (unstratified when a
    class has a single row), or ``folds`` stratified folds (a class with fewer rows than folds spread over
    as many folds as it has rows; unstratified only when no class fills every fold), never more folds
    than half the rows."""
    counts = np.bincount(y)
    smallest, largest = int(counts[counts > 0].min()), int(counts.max())
    folds = max(2, min(int(folds), len(y) // 2))
    if folds == 2:
        a, b = train_test_split(np.arange(len(y)), test_size=0.5, random_state=seed,
                                stratify=y if smallest >= 2 else None)
        return [(a, b), (b, a)]
    if largest < folds:  # no class fills every fold: stratifying is impossible
        return list(KFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y))))
    with warnings.catch_warnings():  # a class with fewer rows than folds: spread as far as it goes
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


def cross_fit(learner: Learner, data: TensorData, *, config: GEXConfig,
              fit_config: FitConfig) -> tuple[np.ndarray, AuxiliaryCheck]:
    """Cross-fitted probabilities ``(n, K) float32`` and their check.

    Fresh copies train on each fold's training rows (``fold_splits``: by default the two halves of a
    stratified split; ``GEXConfig.aux_folds``), the first round of ``round_plan`` first, then in
    doubling warm-restart rounds while the held-out rows' agreement with their given labels rises by
    ``MIN_GAIN`` or more, up to the plan's cap (the module docstring). On image rows each model trains
    on shifted minibatches (``GEXConfig.image_aux_shift``) at ``GEXConfig.image_aux_lr_scale`` times the
    recipe's rate (and ``GEXConfig.image_aux_batch_size`` when set), and scores its held-out rows over
    ``GEXConfig.image_aux_views`` shifted views (``held_out_proba``).
    """
    y = data.y.cpu().numpy()
    splits = fold_splits(y, config.aux_folds, config.seed)
    out: np.ndarray | None = None
    used: list[int] = []
    # rows of a Hugging Face model's data (token ids, pixel values) have no ``X``: no floor is known for them
    X = getattr(data, "X", None)
    shape = tuple(int(s) for s in X.shape[1:]) if X is not None else None
    shift = config.image_aux_shift if is_image(shape) else 0
    # the views are shifts too: images a shift would change the class of (image_aux_shift=0) get one view
    views = config.image_aux_views if is_image(shape) and shift > 0 else 1
    # the halves' own rate and batch on image rows (the plan of epochs stays the recipe's)
    recipe = {"shift_pixels": shift}
    if is_image(shape):
        recipe["lr"] = fit_config.lr * config.image_aux_lr_scale
        if config.image_aux_batch_size is not None:
            recipe["batch_size"] = config.image_aux_batch_size
    for fold, (tr, te) in enumerate(splits):
        fresh = learner.fresh_copy(seed=config.seed + 1 + fold)
        train, held = data.subset(tr), data.subset(te)
        cap, step = round_plan(len(y), len(tr), shape, config=config, fit_config=fit_config)
        done, rnd = 0, 0
        best_p, best_acc, best_epochs = None, -1.0, 0
        while done < cap:
            step = min(step, cap - done)
            # round 0 is exactly the former recipe (same seed); later rounds are warm restarts
            seed = config.seed + fold if rnd == 0 else config.seed + fold + 1000 * rnd
            # the rounds set their own epochs: the step floor is already in the plan
            fresh.fit(train, fit_config.model_copy(update={"epochs": step, "seed": seed, "min_steps": None, **recipe}))
            done += step
            rnd += 1
            p = held_out_proba(fresh, held, views)
            acc = _agreement(p, y[te])
            gain = acc - best_acc
            if acc > best_acc:
                best_p, best_acc, best_epochs = p, acc, done
            if gain < MIN_GAIN:
                break
            step = done  # double the total
        if out is None:
            out = np.empty((len(y), best_p.shape[1]), dtype=np.float32)
        out[te] = best_p
        used.append(best_epochs)
    check = check_auxiliary(out, y, tuple(used))
    logger.info("auxiliary model: out-of-sample accuracy %.3f (majority %.3f, kappa %.2f) after %s epochs",
                check.accuracy, check.majority_rate, check.kappa, used)
    return out, check


__all__ = ["AuxiliaryCheck", "MIN_GAIN", "MIN_OTHER_ROWS", "RELIABLE_KAPPA", "check_auxiliary", "cross_fit",
           "fold_splits", "held_out_proba", "round_plan"]

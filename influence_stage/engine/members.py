"""Member construction (chains × cycles from θ*) and the automatic perturbation scale.

Members: ``chains`` independent chains start at θ*; each runs ``cycles`` cosine cycles of
``cycle_steps`` SGD steps from ``ft_lr`` to 0, restarting the optimizer each cycle; the end of each
cycle is one member. Members are ordered chain-major: ``members[c * cycles + k]``.

Automatic scale (``ft_lr="auto"``), the criterion
--------------------------------------------------
Members must move far enough from θ* that rows θ* only fits by memorising them lose that fit, and
not so far that they leave θ*'s basin. Too small a rate does not just weaken the scores, it inverts
them (members only lower every loss); too large a rate flattens them. The right rate differs by 4×
or more between datasets, so it is chosen per dataset, with no access to which rows are noisy:

1. *Out-of-sample evidence.* Two fresh copies of the model are trained (the θ* recipe,
   ``holdout_epochs`` epochs first, more while the held-out half still improves: see
   ``engine.auxiliary``) on the two halves of a stratified split; each predicts the other half
   (``GEXConfig.aux_folds``: k folds instead).
   A row is *contradicted* when the model that never saw it gives its given label probability < 0.5.
   This is the signal confident learning uses; here it is only a yardstick. When that model is not
   reliable (``engine.auxiliary``), the rows θ* fitted with a negative mean training margin stand in
   for the contradicted rows.
2. *Probe.* For every rate of ``lr_grid`` (``image_lr_grid`` on image rows while ``lr_grid`` is the
   default), ``probe_chains`` chains run the first ``probe_cycles`` cycles from θ* (2 when a single
   chain is probed; all in one batched run) and give GEX self-influence on every row; the rate's *agreement* is the average precision of those scores
   against the contradicted flags (with fewer than 5 contradicted rows: their Spearman
   correlation with the out-of-sample loss). A
   short probe is enough to rank the rates, at a fraction of the members' cost
   (``benchmarks/auto_ablation.py`` measures it against longer probes).
3. *Basin guard.* A rate is admissible only if its members' mean training loss is at most the
   mean out-of-sample loss of step 1: members may forget what θ* memorised, but must still fit the
   rows at least as well as a model that never saw them. Larger rates blow single losses up by
   orders of magnitude, and then every atypical row looks mislabeled.
4. *Choice.* Agreement is smoothed over grid neighbours (weights 1/4, 1/2, 1/4: single probes are
   noisy) and the admissible rate of highest smoothed agreement wins; ties go to the smaller rate.
   The probe chains at that rate are the first cycles of the first chains of the members: they
   are continued, not trained twice.

The members' fit to the given labels (share of rows with p(given) > 0.5) is recorded for each
probed rate as a diagnostic.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from sklearn.metrics import average_precision_score
from tqdm.auto import tqdm

from influence_stage.config import FitConfig, GEXConfig
from influence_stage.config.fit import is_image
from influence_stage.errors import InvalidInputError
from influence_stage.engine.auxiliary import AuxiliaryCheck, check_auxiliary, contradicted_rows, cross_fit
from influence_stage.engine.learner import (
    BatchedChains,
    CosineSchedule,
    CrossFittable,
    Learner,
    Minibatched,
    State,
    TensorData,
)
from influence_stage.engine.influence import self_influence
from influence_stage.engine.losses import loss_matrix
from influence_stage.engine.scores import oos_loss as given_label_loss

logger = logging.getLogger(__name__)


def _at_default(config: GEXConfig, name: str) -> bool:
    """Whether ``config``'s field ``name`` holds its default: an image-only field stands in for it only then,
    so a value the user set is used as given."""
    return getattr(config, name) == type(config).model_fields[name].default


def row_shape(data) -> tuple[int, ...] | None:
    """The row shape of ``data`` (``data.X.shape[1:]``), None when it has no ``X`` (token ids, pixel values)."""
    X = getattr(data, "X", None)
    return tuple(int(s) for s in X.shape[1:]) if X is not None else None


def cycle_steps(n_rows: int, config: GEXConfig, learner: Learner | None = None,
                input_shape: Sequence[int] | None = None) -> int:
    """SGD steps in one cycle: ``cycle_epochs`` passes over ``n_rows``, at least ``min_cycle_steps``
    (``image_min_cycle_steps`` instead on image rows, when set, ``input_shape`` says so and
    ``min_cycle_steps`` is left at its default: a floor set there is used as given).

    Minibatches have the learner's own ``batch_size`` when it has one (it is what ``train_steps``
    uses), else ``config.batch_size``. The floor matters on small sets: a cycle of a few steps
    barely moves the members (``benchmarks/cycle_floor.py`` measures it).
    """
    batch_size = int((learner.batch_size if isinstance(learner, Minibatched) else None) or config.batch_size)
    per_epoch = max(n_rows // min(batch_size, n_rows), 1)
    floor = config.min_cycle_steps
    if (config.image_min_cycle_steps is not None and is_image(input_shape)
            and _at_default(config, "min_cycle_steps")):
        floor = config.image_min_cycle_steps
    return max(floor, int(round(config.cycle_epochs * per_epoch)))


def probe_grid(config: GEXConfig, input_shape: Sequence[int] | None) -> list[float]:
    """The rates ``ft_lr="auto"`` probes: ``image_lr_grid`` on image rows when set and ``lr_grid`` is
    left at its default, else ``lr_grid`` (a grid set there is probed as given)."""
    if config.image_lr_grid is not None and is_image(input_shape) and _at_default(config, "lr_grid"):
        return list(config.image_lr_grid)
    return list(config.lr_grid)


def member_chains(config: GEXConfig, input_shape: Sequence[int] | None) -> int:
    """The member chains: ``image_chains`` on image rows when set and ``chains`` is left at its default, else
    ``chains`` (a number set there is used as given)."""
    if config.image_chains is not None and is_image(input_shape) and _at_default(config, "chains"):
        return int(config.image_chains)
    return int(config.chains)


def member_seed(seed: int, chain: int, cycle: int) -> int:
    """Seed of the batch order of one cycle of one chain (independent streams per chain)."""
    return int(np.random.SeedSequence([int(seed), int(chain), int(cycle)]).generate_state(1)[0])


def trains_batched(learner: Learner) -> bool:
    """Whether the learner trains several chains in one batched run (``train_chains``)."""
    return isinstance(learner, BatchedChains) and learner.can_train_batched()


def run_chains(learner: Learner, data: TensorData, *, start: State, rates: Sequence[float], cycles: int,
               steps: int, seed: int, chain_ids: Sequence[int] | None = None,
               from_states: Sequence[State] | None = None, first_cycle: int = 0,
               progress: bool = False, desc: str = "members") -> list[list[State]]:
    """Run one chain per entry of ``rates``; return ``states[chain][cycle]``.

    Chain ``c`` starts at ``from_states[c]`` (default: every chain at ``start``) and runs the cycles
    ``first_cycle … first_cycle + cycles - 1`` of chain ``chain_ids[c]``: a chain continued from its
    first cycles' end equals the same chain run in one go. Uses the learner's batched
    ``train_chains`` when it has one, else ``train_steps`` per chain; both see the same batches for
    the same seeds. The learner is left at ``start``.
    """
    chain_ids = list(range(len(rates))) if chain_ids is None else list(chain_ids)
    from_states = [start] * len(rates) if from_states is None else list(from_states)
    if len(from_states) != len(rates) or len(chain_ids) != len(rates):
        raise InvalidInputError("run_chains needs one start state and one chain id per rate.")
    out: list[list[State]] = [[] for _ in rates]
    # the bar counts training rows (steps × batch), so it shows rows per second
    rows_per_cycle = steps * min(int((learner.batch_size if isinstance(learner, Minibatched) else 1) or 1), len(data))
    bar = tqdm(total=len(rates) * cycles * rows_per_cycle, desc=desc, unit="rows", unit_scale=True,
               disable=not progress, leave=False)
    try:
        if trains_batched(learner):
            states = list(from_states)
            for k in range(first_cycle, first_cycle + cycles):
                schedules = [CosineSchedule(float(r), steps) for r in rates]
                seeds = [member_seed(seed, c, k) for c in chain_ids]
                states = learner.train_chains(states, data, steps, schedules, seeds)
                for c, st in enumerate(states):
                    out[c].append(st)
                bar.update(len(rates) * rows_per_cycle)
        else:
            for c, rate in enumerate(rates):
                learner.set_state(from_states[c])
                for k in range(first_cycle, first_cycle + cycles):
                    learner.train_steps(data, steps, CosineSchedule(float(rate), steps),
                                        seed=member_seed(seed, chain_ids[c], k))
                    out[c].append(learner.get_state())
                    bar.update(rows_per_cycle)
    finally:
        bar.close()
        learner.set_state(start)
    return out


def build_chains(learner: Learner, data: TensorData, *, config: GEXConfig, ft_lr: float, chain_ids: Sequence[int],
                 prefixes: Sequence[Sequence[State]] | None = None, progress: bool = False) -> list[list[State]]:
    """The ``config.cycles`` members of each chain in ``chain_ids``, trained together where possible.

    ``prefixes[i]``: the first members of chain ``chain_ids[i]``, already trained (by the auto
    scale's probe; empty: the chain starts at θ*, the learner's current parameters). Chains that
    are behind first catch up with the others, then all run the remaining cycles in one batched
    run (where the learner supports it). Each chain equals the same chain run in one go.
    Returns ``states[i][cycle]``; the learner is left at θ*.
    """
    prefixes = [[] for _ in chain_ids] if prefixes is None else [list(p) for p in prefixes]
    if len(prefixes) != len(chain_ids):
        raise InvalidInputError(f"{len(chain_ids)} chains but {len(prefixes)} prefixes.")
    for c, p in zip(chain_ids, prefixes):
        if len(p) > config.cycles:
            raise InvalidInputError(f"a chain has {config.cycles} cycles; {len(p)} were given as the prefix of chain {c}.")
    if not (isinstance(ft_lr, (int, float)) and ft_lr > 0 and math.isfinite(ft_lr)):
        raise InvalidInputError(f"ft_lr must be a positive number; found {ft_lr!r}.")
    theta = learner.get_state()
    steps = cycle_steps(len(data), config, learner, row_shape(data))
    states = prefixes
    while True:
        unfinished = [i for i, st in enumerate(states) if len(st) < config.cycles]
        if not unfinished:
            return states
        done = min(len(states[i]) for i in unfinished)
        group = [i for i in unfinished if len(states[i]) == done]
        ahead = [len(states[i]) for i in unfinished if len(states[i]) > done]
        upto = min(ahead) if ahead else config.cycles  # catch up with the next group, then go on together
        runs = run_chains(learner, data, start=theta, rates=[ft_lr] * len(group), cycles=upto - done, steps=steps,
                          seed=config.seed, chain_ids=[chain_ids[i] for i in group],
                          from_states=[states[i][-1] if states[i] else theta for i in group], first_cycle=done,
                          progress=progress)
        for i, run in zip(group, runs):
            states[i] = states[i] + run


def member_prefixes(chains: int, first_chains: Sequence[Sequence[State]] = ()) -> list[list[State]]:
    """The already-trained first members of each of ``chains`` chains: the auto scale's probe chains for chains
    0..c-1 (continued, not retrained), none for the others. Input of ``build_chains``."""
    reused = [list(ch) for ch in first_chains[:chains]]
    return reused + [[] for _ in range(chains - len(reused))]


@dataclass(frozen=True)
class MemberPlan:
    """Which chains still need training, in which groups, at which rate.

    In process the groups train one after another (``train``); the Prefect executor maps them, one
    task per group (``stage.scoring.chains_step``). Either way ``collect`` puts the members together.

    Attributes
    ----------
    ft_lr : float
        The fine-tuning rate of every chain.
    prefixes : list of list of State
        Each chain's members already trained (by the scale's probe); empty for the others.
    groups : list of list of int
        The chain ids left to train, one list per group; the chains of one group train together.
    """

    ft_lr: float
    prefixes: list[list[State]]
    groups: list[list[int]]

    def collect(self, trained: list[list[list[State]]]) -> list[State]:
        """The members chain-major, from each group's trained chains (in ``groups`` order)."""
        chains = [list(p) for p in self.prefixes]
        for group, states in zip(self.groups, trained, strict=True):
            for c, members in zip(group, states, strict=True):
                chains[c] = members
        return [m for chain in chains for m in chain]

    def train(self, learner: Learner, data: TensorData, *, config: GEXConfig, progress: bool = False) -> list[State]:
        """Every group in turn on ``learner`` (at θ*, where it is left): the members chain-major."""
        return self.collect([build_chains(learner, data, config=config, ft_lr=self.ft_lr, chain_ids=group,
                                          prefixes=[self.prefixes[c] for c in group], progress=progress)
                             for group in self.groups])


def plan_members(learner: Learner, config: GEXConfig, *, ft_lr: float, first_chains: Sequence[Sequence[State]] = (),
                 chains_per_task: int | None = None, input_shape: Sequence[int] | None = None) -> MemberPlan:
    """Split the member chains (``member_chains`` for rows of ``input_shape``) into groups, leaving out the
    cycles ``first_chains`` already ran.

    Default: one group of all chains when the learner trains chains batched (the fastest on one
    machine), else one chain per group. Chains trained together equal chains trained apart only
    up to rounding, so callers that cache a group key it by its chain ids.
    """
    chains = member_chains(config, input_shape)
    if chains * config.cycles < 2:
        raise InvalidInputError(
            f"GEX needs at least 2 members; chains × cycles = {chains} × {config.cycles} = "
            f"{chains * config.cycles}. Raise chains or cycles."
        )
    prefixes = member_prefixes(chains, first_chains)
    todo = [c for c, prefix in enumerate(prefixes) if len(prefix) < config.cycles]
    size = chains_per_task or (max(len(todo), 1) if trains_batched(learner) else 1)
    return MemberPlan(ft_lr=ft_lr, prefixes=prefixes, groups=[todo[i:i + size] for i in range(0, len(todo), size)])


def build_members(learner: Learner, data: TensorData, *, config: GEXConfig, ft_lr: float,
                  first_chains: Sequence[Sequence[State]] = (), progress: bool = False) -> list[State]:
    """``member_chains × config.cycles`` members from the learner's current parameters (θ*).

    ``first_chains``: the first cycles of chains 0..c-1, already trained at ``ft_lr`` with this
    config's seeds (by the auto scale's probe); they are continued, not retrained (``build_chains``).
    Returns the members chain-major; the learner is left at θ*.
    """
    return plan_members(learner, config, ft_lr=ft_lr, first_chains=first_chains, input_shape=row_shape(data)).train(
        learner, data, config=config, progress=progress)


def label_fit(p_given: np.ndarray) -> float:
    """Share of rows whose given label has probability > 0.5, averaged over members.

    ``p_given`` is ``(n_samples,)`` or ``(n_samples, n_members)``.
    """
    return float(np.mean(np.asarray(p_given) > 0.5))


@dataclass(frozen=True)
class AutoScale:
    """What ``ft_lr="auto"`` measured and chose.

    ``probed`` maps each grid rate to ``(agreement, smoothed agreement, fit, members' mean loss)``;
    rates whose members' mean loss exceeds ``oos_mean_loss`` are not chosen. ``first_chains`` holds
    the probe chains at the chosen rate (``probe_cycle_count`` members each), equal to the first cycles of
    the first chains of the final members and continued by ``build_members``. ``oos_proba``
    ``(n_samples, n_classes)``: the yardstick's cross-fitted probabilities; ``auxiliary``: their check
    (``engine.auxiliary``; when not reliable, the contradicted rows came from θ*'s training margins).
    """

    ft_lr: float
    probed: dict[float, tuple[float, float, float, float]]
    oos_mean_loss: float
    contradicted_fraction: float
    criterion: str
    first_chains: list[list[State]] = field(default_factory=list, repr=False)
    oos_proba: np.ndarray | None = field(default=None, repr=False)
    auxiliary: AuxiliaryCheck | None = None


def can_cross_fit(learner: Learner) -> bool:
    """Whether the learner can train fresh copies of itself (what out-of-sample probabilities need)."""
    return isinstance(learner, CrossFittable)


def out_of_sample_fit(learner: Learner, data: TensorData, *, config: GEXConfig,
                      fit_config: FitConfig) -> tuple[np.ndarray, AuxiliaryCheck]:
    """Class probabilities of every row from a model that never saw it, ``(n_samples, n_classes) float32``,
    and the check of that model (``engine.auxiliary.cross_fit``: two halves by default
    (``GEXConfig.aux_folds``), trained until the held-out rows stop improving)."""
    if not can_cross_fit(learner):
        raise InvalidInputError(
            "ft_lr='auto' needs a learner that can train a fresh copy (fresh_copy() and fit()); "
            f"{type(learner).__name__} has not. Pass a number as ft_lr."
        )
    return cross_fit(learner, data, config=config, fit_config=fit_config)


def out_of_sample_proba(learner: Learner, data: TensorData, *, config: GEXConfig,
                        fit_config: FitConfig) -> np.ndarray:
    """The probabilities of ``out_of_sample_fit`` alone, ``(n_samples, n_classes) float32``."""
    return out_of_sample_fit(learner, data, config=config, fit_config=fit_config)[0]


def smooth(values: Sequence[float]) -> np.ndarray:
    """Weights (1/4, 1/2, 1/4) over grid neighbours, renormalised at the ends."""
    v = np.asarray(values, dtype=np.float64)
    num = 0.5 * v
    den = np.full(len(v), 0.5)
    num[1:] += 0.25 * v[:-1]
    den[1:] += 0.25
    num[:-1] += 0.25 * v[1:]
    den[:-1] += 0.25
    return num / den


def choose_ft_lr(learner: Learner, data: TensorData, *, config: GEXConfig, fit_config: FitConfig,
                 oos_proba: np.ndarray | None = None, progress: bool = False,
                 auxiliary: AuxiliaryCheck | None = None, train_margin: np.ndarray | None = None) -> AutoScale:
    """Choose the fine-tuning rate from the data alone (criterion in the module docstring).

    All grid rates are probed together (one batched run of ``len(lr_grid) × probe_chains`` chains,
    ``config.probe_cycle_count`` cycles each); probe chain c at a rate is exactly the first cycles of chain c of
    the final members at that rate, so ``build_members`` continues the chosen rate's probe chains.
    ``oos_proba``: the yardstick's probabilities when already computed (``out_of_sample_proba``), with
    their check ``auxiliary``. When the yardstick is not reliable (``engine.auxiliary``) and θ*'s
    training margins ``train_margin`` ``(n_samples,)`` exist, the rows θ* fitted with a negative mean
    margin stand in for the contradicted rows.
    """
    y_given = data.y.cpu().numpy()
    if oos_proba is None:
        oos_proba, auxiliary = out_of_sample_fit(learner, data, config=config, fit_config=fit_config)
    elif auxiliary is None:
        auxiliary = check_auxiliary(oos_proba, y_given)
    contradicted = contradicted_rows(oos_proba, y_given)
    oos_loss = given_label_loss(oos_proba, y_given)
    evidence = oos_loss
    if not auxiliary.reliable and train_margin is not None and len(train_margin) == len(data):
        contradicted = np.asarray(train_margin) < 0
        evidence = -np.asarray(train_margin, dtype=np.float64)
    use_ap = int(contradicted.sum()) >= 5 and int((~contradicted).sum()) >= 5
    theta = learner.get_state()
    base = learner.per_sample_loss(data)
    shape = row_shape(data)
    grid = probe_grid(config, shape)
    k = min(config.probe_chains, member_chains(config, shape))
    runs = run_chains(learner, data, start=theta, rates=[g for g in grid for _ in range(k)],
                      cycles=config.probe_cycle_count,
                      steps=cycle_steps(len(data), config, learner, shape), seed=config.seed, chain_ids=list(range(k)) * len(grid),
                      progress=progress, desc="auto ft_lr probe")
    from scipy.stats import spearmanr  # here: scipy.stats costs ~0.3 s to import, and only the probe ranks

    agreement, fits, mean_loss = [], [], []
    for i in range(len(grid)):
        members = [st for ch in runs[i * k:(i + 1) * k] for st in ch]
        L = loss_matrix(learner, members, data, batch_size=config.eval_batch_size, member_chunk=config.member_chunk)
        scores = self_influence(L, base, tau=config.tau)
        if not (np.isfinite(scores).all() and np.isfinite(L).all()):
            # the rate diverged (inf / NaN losses): not a candidate
            agreement.append(float("nan"))
            fits.append(0.0)
            mean_loss.append(float("inf"))
            continue
        if use_ap:
            agreement.append(float(average_precision_score(contradicted, scores)))
        else:
            agreement.append(float(spearmanr(scores, evidence).statistic))
        fits.append(label_fit(np.exp(-L)))
        mean_loss.append(float(L.mean()))
    # a constant score (no rate moved anything) gives a NaN correlation: never choose it
    smoothed = np.nan_to_num(smooth(np.nan_to_num(agreement, nan=-1.0)), nan=-1.0)
    # stay in the basin: members must fit the rows at least as well as models that never saw them
    admissible = np.asarray(mean_loss) <= float(oos_loss.mean())
    if not admissible.any():
        logger.warning("auto ft_lr: every probed rate raised the members' mean loss above the out-of-sample "
                       "loss (%.3g); using the smallest rate %.4g. Consider a smaller lr_grid.",
                       float(oos_loss.mean()), grid[0])
        admissible[0] = True
    best = int(np.argmax(np.where(admissible, smoothed, -np.inf)))  # first maximum: ties to the smaller rate
    rate = float(grid[best])
    logger.info("auto ft_lr: %.1f%% rows contradicted out of sample; agreement %s → ft_lr %.4g",
                100 * contradicted.mean(), [round(a, 3) for a in agreement], rate)
    return AutoScale(ft_lr=rate, probed={g: (a, sm, f, ml) for g, a, sm, f, ml in zip(grid, agreement, smoothed, fits, mean_loss)},
                     oos_mean_loss=float(oos_loss.mean()),
                     contradicted_fraction=float(contradicted.mean()),
                     criterion="average_precision" if use_ap else "spearman",
                     first_chains=runs[best * k:(best + 1) * k], oos_proba=oos_proba, auxiliary=auxiliary)

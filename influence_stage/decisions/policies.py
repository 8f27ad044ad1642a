"""Decision policies: what happens to the flagged rows (drop, relabel, reweight, none, prune).

Each policy is one class in ``POLICY_REGISTRY`` (``docs/extending.md`` adds one). A policy is a
frozen dataclass whose fields are its options; ``make_policy`` builds one from a name and the
options ``decide`` was given. ``decide`` does the rest: the
input checks, the threshold (for a policy that ``uses_threshold``), the small-class rule and the
caps (for a policy that ``removes_rows``), and the table.

Pure numpy: no models, no torch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from influence_stage.decisions.suggest import (
    RELABEL_MARGIN,
    REVERSE_FLIP_ALPHA,
    SUGGESTION_MIN_PROBA,
    WEAK_AUXILIARY_MIN_PROBA,
    confident_suggestions,
)
from influence_stage.decisions.thresholds import ThresholdResult
from influence_stage.errors import InvalidInputError, InvalidTypeError
from influence_stage.registry import Registry


@dataclass(frozen=True, eq=False)
class PolicyInputs:
    """What a policy reads; every array has one entry per row, in input order.

    Attributes
    ----------
    scores : ``(n,) float64`` the ranking that was thresholded (higher = more suspicious)
    gex_influence : ``(n,) float64`` the exact GEX self-influence (NaN when not given)
    labels : ``(n,) int64`` the given labels, codes ``0..K-1``
    proba : ``(n, K) float64`` the members' mean class probabilities, or None
    suggested : ``(n,) int64`` argmax of ``proba``, on flagged rows the best other label
        (``decisions.suggest``; the given label without ``proba``). Whether that label is confident
        is ``Policy.confident``'s; the table shows an empty suggestion where it is not.
    flagged : ``(n,) bool`` rows the threshold flagged (all False for a policy that uses none)
    eligible : ``(n,) bool`` rows an action may touch
    threshold : ThresholdResult or None (None for a policy that uses no threshold)
    oos_proba : ``(n, K) float64`` the cross-fitted out-of-sample probabilities, or None; the relabel rule
        reads whether their model is reliable (``decisions.suggest.confident_suggestions``)
    """

    scores: np.ndarray
    gex_influence: np.ndarray
    labels: np.ndarray
    proba: np.ndarray | None
    suggested: np.ndarray
    flagged: np.ndarray
    eligible: np.ndarray
    threshold: ThresholdResult | None
    oos_proba: np.ndarray | None = None

    @property
    def actionable(self) -> np.ndarray:
        """``(n,) bool`` flagged rows an action may touch."""
        return self.flagged & self.eligible

    @property
    def n(self) -> int:
        return int(self.scores.size)


@dataclass(frozen=True, eq=False)
class PolicyOutcome:
    """What a policy decided.

    Attributes
    ----------
    action : ``(n,) object`` one of ``schema.ROW_ACTIONS`` per row
    weight : ``(n,) float64`` in ``(0, 1]``
    is_issue : ``(n,) bool`` or None: the rows the policy itself flagged (a policy with no threshold); None
        keeps the threshold's flags
    threshold : ThresholdResult or None: the policy's own cut (with ``is_issue``)
    """

    action: np.ndarray
    weight: np.ndarray
    is_issue: np.ndarray | None = None
    threshold: ThresholdResult | None = None


@dataclass(frozen=True)
class Policy(ABC):
    """One decision policy: a frozen dataclass registered in ``POLICY_REGISTRY``.

    Its fields are its options (all with defaults, or ``missing_options`` explains the missing
    ones); ``act`` turns the flagged rows into actions.

    Attributes
    ----------
    name : str
        Set by the registry.
    help : str
        One line for the docs and the CLI help.
    uses_threshold : bool
        The rows it acts on are the threshold's (False: the policy chooses them, e.g. a budget).
    removes_rows : bool
        It drops rows or moves them to another class: the small-class rule and the caps apply.
    needs_proba : bool
        It needs the members' class probabilities.
    """

    name: ClassVar[str] = ""
    help: ClassVar[str] = ""
    uses_threshold: ClassVar[bool] = True
    removes_rows: ClassVar[bool] = False
    needs_proba: ClassVar[bool] = False

    @abstractmethod
    def act(self, x: PolicyInputs) -> PolicyOutcome:
        """The action and weight of every row."""

    def confident(self, proba: np.ndarray, labels: np.ndarray, suggested: np.ndarray,
                  oos_proba: np.ndarray | None = None) -> np.ndarray:
        """``(n,) bool``: the suggested label is another label than the given one and confident.

        The default (every action but ``relabel``): the rule of ``decisions.suggest.confident_suggestions``
        with ``SUGGESTION_MIN_PROBA``, the same rule a default ``relabel`` acts on. A flagged row whose
        suggestion is not confident shows an empty suggestion. ``proba`` ``(n, K)``, ``labels`` and
        ``suggested`` ``(n,)`` codes, ``oos_proba`` ``(n, K)`` the cross-fitted probabilities or None.
        A policy may override it with the first three arguments only (``decide`` then passes no
        ``oos_proba``).
        """
        return confident_suggestions(proba, labels, suggested, min_proba=SUGGESTION_MIN_PROBA, oos_proba=oos_proba)

    @staticmethod
    def keep_all(n: int) -> tuple[np.ndarray, np.ndarray]:
        """``(n,)`` actions all ``"keep"`` and weights all 1.0, to start from."""
        return np.full(n, "keep", dtype=object), np.ones(n, dtype=np.float64)


#: Every decision policy accepted as ``action=``, one class each.
POLICY_REGISTRY: Registry[type[Policy]] = Registry("action", base=Policy)


@POLICY_REGISTRY.register("drop")
@dataclass(frozen=True)
class DropPolicy(Policy):
    """Flagged rows are dropped, subject to the small-class rule and the caps."""

    help = "drop the flagged rows"
    removes_rows = True

    def act(self, x: PolicyInputs) -> PolicyOutcome:
        action, weight = self.keep_all(x.n)
        action[x.actionable] = "drop"
        return PolicyOutcome(action, weight)


@POLICY_REGISTRY.register("relabel")
@dataclass(frozen=True)
class RelabelPolicy(Policy):
    """Flagged rows that pass ``rule`` take the suggested label; the others get ``fallback``.

    ``rule="argmax"``: the suggested label differs from the given one, has probability
    ``>= min_agreement`` and leads the given label's probability by ``>= min_margin``; when the
    cross-fitted model is weak its probability must also reach ``weak_min_agreement``; when it is
    reliable, a move against the run's own flip pattern is not taken (``reverse_flip_alpha``, None: off)
    (``decisions.suggest.confident_suggestions``, where the measurements behind the defaults are
    named). ``rule="soft"``: the given label gets less than chance, ``1 / K`` (then the argmax, which is
    the suggested label, is another label). The rule is also ``confident``: a flagged row's suggestion
    is shown exactly when the row would be relabeled to it (before the small-class rule and the
    caps), and is empty otherwise.
    """

    help = "give the flagged rows the members' suggested label (others: relabel_fallback)"
    removes_rows = True
    needs_proba = True
    min_agreement: float = 0.5
    fallback: str = "drop"
    rule: str = "argmax"
    min_margin: float = RELABEL_MARGIN
    weak_min_agreement: float = WEAK_AUXILIARY_MIN_PROBA
    reverse_flip_alpha: float | None = REVERSE_FLIP_ALPHA

    def confident(self, proba: np.ndarray, labels: np.ndarray, suggested: np.ndarray,
                  oos_proba: np.ndarray | None = None) -> np.ndarray:
        if self.rule == "argmax":
            return confident_suggestions(proba, labels, suggested, min_proba=self.min_agreement,
                                         margin=self.min_margin, oos_proba=oos_proba,
                                         weak_min_proba=self.weak_min_agreement,
                                         reverse_flip_alpha=self.reverse_flip_alpha)
        # soft: the given label gets less than chance, so the argmax (another label) is the suggestion
        rows = np.arange(labels.size)
        return (suggested != labels) & (proba[rows, labels] < 1.0 / proba.shape[1])

    def act(self, x: PolicyInputs) -> PolicyOutcome:
        action, weight = self.keep_all(x.n)
        ok = self.confident(x.proba, x.labels, x.suggested, oos_proba=x.oos_proba)
        action[x.actionable & ok] = "relabel"
        action[x.actionable & ~ok] = self.fallback
        return PolicyOutcome(action, weight)


@POLICY_REGISTRY.register("reweight")
@dataclass(frozen=True)
class ReweightPolicy(Policy):
    """Flagged rows get ``weight = clip(1 - p_issue, min_weight, 1)`` (at most 0.5); the others keep 1.0."""

    help = "down-weight the flagged rows (weight < 0.5), keep every row"
    min_weight: float = 0.05

    def act(self, x: PolicyInputs) -> PolicyOutcome:
        action, _ = self.keep_all(x.n)
        # only flagged rows are down-weighted: the table's weights are the weights written out
        weight = np.where(x.actionable, np.clip(1.0 - np.asarray(x.threshold.p_issue), self.min_weight, 1.0), 1.0)
        action[x.actionable] = "reweight"
        return PolicyOutcome(action, weight)


@POLICY_REGISTRY.register("none")
@dataclass(frozen=True)
class NonePolicy(Policy):
    """Score only: ``is_issue`` is computed, every row is kept with weight 1.0."""

    help = "score only: flag rows, keep every row"

    def act(self, x: PolicyInputs) -> PolicyOutcome:
        return PolicyOutcome(*self.keep_all(x.n))


@POLICY_REGISTRY.register("prune")
@dataclass(frozen=True)
class PrunePolicy(Policy):
    """Keep a budget of rows by GEX self-influence and drop the rest (``decisions.prune.prune``).

    The budget ranks by ``gex_influence`` when it was given (else by the ranking score) among the
    eligible rows; the pruned rows are ``is_issue`` and ``drop``, and the threshold is the budget
    (``method="budget"``, ``value`` the low cut). No class is emptied; the caps do not apply (the
    budget is the drop share, asked for exactly).
    """

    help = "keep the budget prune_keep by GEX self-influence, drop the rest (no threshold)"
    uses_threshold = False
    keep: float | int | None = None
    per_class: bool = False
    high_share: float = 0.0

    def missing_options(self) -> str | None:
        if self.keep is None:
            return ("action='prune' needs keep, the rows to keep: a fraction in (0, 1] or a count "
                    "(prune_keep in the config)")
        return None

    def act(self, x: PolicyInputs) -> PolicyOutcome:
        from influence_stage.decisions.prune import prune

        ranked = x.gex_influence if np.isfinite(x.gex_influence).all() else x.scores
        idx = np.flatnonzero(x.eligible)
        result = prune(ranked[idx], self.keep, labels=x.labels[idx], per_class=self.per_class,
                       high_share=self.high_share)
        removed = np.zeros(x.n, dtype=bool)
        removed[idx] = ~result.keep
        action = np.where(removed, "drop", "keep").astype(object)
        value = result.low_cut if result.low_cut is not None else float(ranked.min())
        p_issue = removed.astype(np.float64)
        flags = removed.copy()
        flags.setflags(write=False)
        p_issue.setflags(write=False)
        threshold = ThresholdResult(value=float(value), is_issue=flags, p_issue=p_issue, method="budget")
        return PolicyOutcome(action, np.ones(x.n), is_issue=removed, threshold=threshold)


#: Values accepted by ``decide(action=...)`` (a live view of ``POLICY_REGISTRY``'s names).
POLICIES = POLICY_REGISTRY.where()


def action_help() -> str:
    """Every registered policy with its one-line help, for the CLI's ``--action`` help."""
    return "; ".join(f"{name}: {cls.help}" for name, cls in POLICY_REGISTRY.items())


def check_action(name: Any) -> str:
    """Return ``name`` if it is a registered policy; else an error listing the registry's names."""
    names = list(POLICY_REGISTRY.names())
    if not isinstance(name, str):
        raise InvalidTypeError(f"action must be one of {names}; found {type(name).__name__} {name!r}.")
    if name not in POLICY_REGISTRY:
        raise InvalidInputError(f"action must be one of {names}; found {name!r}.")
    return name


def make_policy(action: str | Policy, options: Mapping[str, Any] | None = None) -> Policy:
    """The policy ``action`` with the options it takes from ``options`` (the others are ignored).

    Parameters
    ----------
    action : str or Policy
        A name in ``POLICY_REGISTRY``, or a policy already built (returned as it is).
    options : mapping, optional
        Candidate option values by field name; a policy reads the ones that are its fields.

    Raises
    ------
    InvalidInputError
        An unknown name, or a policy whose required options are missing.
    """
    if isinstance(action, Policy):
        policy = action
    else:
        cls = POLICY_REGISTRY.get(check_action(action))
        fields = {f.name for f in dataclasses.fields(cls)}
        policy = cls(**{k: v for k, v in (options or {}).items() if k in fields})
    missing = getattr(policy, "missing_options", lambda: None)()
    if missing:
        raise InvalidInputError(f"{missing}.")
    return policy


__all__ = ["POLICIES", "POLICY_REGISTRY", "DropPolicy", "NonePolicy", "Policy", "PolicyInputs", "PolicyOutcome",
           "PrunePolicy", "RelabelPolicy", "ReweightPolicy", "action_help", "check_action", "make_policy"]

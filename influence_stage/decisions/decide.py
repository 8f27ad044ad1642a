"""Scores to decisions: one action per row, with the small-class rule and the per-class and global caps.

This module owns the pipeline step ``scores → decisions``. It takes self-influence scores
``(n,) float`` (higher = more suspicious) and, optionally, ensemble class probabilities ``(n, K)``,
and returns a table with one row per input row saying what happens to it: ``keep``, ``drop``,
``relabel`` or ``reweight``. Which rows are flagged is ``influence_stage.decisions.thresholds``'
business; what a policy does with them is ``influence_stage.decisions.policies``'; the table's
columns and action names are ``influence_stage.decisions.schema``'s.
Pure numpy / pandas: no models, no torch.

**The small-class rule.** A class is *small* when it has fewer than ``min_class_rows`` rows
(default 20) and fewer than a quarter of the mean class size (``n / K`` over the classes given).
Every row of such a class is rare, so a ranking over all rows puts it near the top whatever its
label: the threshold's evidence is weak there. A removal (drop, or relabel to another class) of a
row of a small class therefore stands only on evidence about that row's label:

- with ``oos_proba`` (cross-fitted, out-of-sample probabilities): the out-of-sample model has
  learned the class (it gives at least one row of the class that class as its argmax) and gives
  this row's argmax to another class;
- else with ``proba`` (the members' mean probabilities): the members, which trained on the row,
  still give its argmax to another class;
- else: never.

Otherwise the row is kept (action ``keep``, weight 1.0, ``is_issue`` still True) and a line in
``Decisions.caps`` says so. The rule only keeps rows: it changes nothing where no class is small.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from influence_stage._checks import check_choice, check_fraction, check_labels, check_mask, check_scores
from influence_stage.decisions.policies import Policy, PolicyInputs, check_action, make_policy
from influence_stage.decisions.schema import ROW_ACTIONS, TABLE_COLUMNS
from influence_stage.decisions.thresholds import ThresholdResult, choose_threshold
from influence_stage.decisions.suggest import suggest_labels, suggested_codes, suggestion_column
from influence_stage.engine.scores import label_quality
from influence_stage.errors import InvalidInputError, InvalidTypeError

logger = logging.getLogger(__name__)

#: Tolerance on ``proba`` rows summing to 1: averaged float32 softmax outputs are exact only to rounding.
PROBA_SUM_ATOL = 1e-3
# Fractions times counts are floored; the tolerance keeps 0.29 * 100 at 29 rather than 28.
_FLOOR_TOL = 1e-9
#: A class with fewer rows than this (and fewer than SMALL_CLASS_SHARE of the mean class size) is small.
MIN_CLASS_ROWS = 20
#: A class is small only when it also holds fewer than this share of the mean class size ``n / K``.
SMALL_CLASS_SHARE = 0.25


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Decisions:
    """What happens to each input row.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per input row, in input order, with exactly the columns ``TABLE_COLUMNS``:

        - ``row_id``: the caller's row ids (default ``0..n-1``), unique.
        - ``score`` float64: the ranking that was thresholded (``GEXConfig.score``).
        - ``gex_influence`` float64: the exact GEX self-influence (NaN when it was not given).
        - ``label_quality`` float64 in [0, 1]: higher = cleaner, non-increasing in ``score``.
        - ``is_issue`` bool: flagged by the threshold. A flagged row can still be kept (relabel
          fallback ``"keep"``, a binding drop cap, or ``action="none"``).
        - ``action`` str: one of ``keep``, ``drop``, ``relabel``, ``reweight``.
        - ``given_label`` int64: the label as given.
        - ``suggested_label`` Int64 (nullable): argmax of ``proba`` when given, else the given
          label; on flagged rows the most probable other label when it is confident
          (``Policy.confident``), else empty (null; ``decisions.suggest``). Never the given label on
          a flagged row. Under ``relabel`` rows with action ``relabel`` take this label (never empty).
        - ``weight`` float64 in ``(0, 1]``: 1.0 except under ``reweight``.
    threshold : ThresholdResult
        The threshold that flagged the rows.
    caps : tuple of str
        One line per rule that kept flagged rows (the small-class rule, a class's share, the global
        drop share). The run's summary and log repeat them, so a binding cap is never silent.
    """

    table: pd.DataFrame
    threshold: ThresholdResult
    caps: tuple[str, ...] = ()

    def summary(self) -> pd.DataFrame:
        """Counts per class and per action.

        Returns
        -------
        pandas.DataFrame
            Index ``class``: every class that is a given label or a relabel target (sorted), then
            a final row ``"all"``. Columns, all int64:

            - ``n_rows``: rows with this given label.
            - ``n_flagged``: of those, rows with ``is_issue``.
            - ``keep``, ``drop``, ``relabel``, ``reweight``: rows per action, by given label.
            - ``relabeled_in``: rows relabeled *to* this class.
            - ``n_after``: rows of this class after applying the decisions
              (``n_rows - drop - relabel + relabeled_in``).
        """
        t = self.table
        given = t["given_label"].to_numpy()
        action = t["action"].to_numpy()
        flagged = t["is_issue"].to_numpy()
        relabeled = action == "relabel"
        targets = suggested_codes(t["suggested_label"])[relabeled]
        classes = np.unique(np.concatenate([given, targets]))
        records = []
        for c in classes:
            in_c = given == c
            counts = {a: int((action[in_c] == a).sum()) for a in ROW_ACTIONS}
            n_rows = int(in_c.sum())
            n_in = int((targets == c).sum())
            records.append({
                "n_rows": n_rows,
                "n_flagged": int(flagged[in_c].sum()),
                **counts,
                "relabeled_in": n_in,
                "n_after": n_rows - counts["drop"] - counts["relabel"] + n_in,
            })
        totals = {a: int((action == a).sum()) for a in ROW_ACTIONS}
        records.append({
            "n_rows": len(t),
            "n_flagged": int(flagged.sum()),
            **totals,
            "relabeled_in": totals["relabel"],
            "n_after": len(t) - totals["drop"],
        })
        index = pd.Index([int(c) for c in classes] + ["all"], name="class", dtype=object)
        return pd.DataFrame.from_records(records, index=index).astype("int64")


# --------------------------------------------------------------------------------------------
# Input checks (policy-specific; general ones live in checks.py)
# --------------------------------------------------------------------------------------------


def _check_proba(proba: Any, n: int) -> np.ndarray:
    """Return class probabilities as ``(n, K) float64``; rows in [0, 1] summing to 1."""
    if hasattr(proba, "detach"):
        proba = proba.detach().cpu().numpy()
    arr = np.asarray(proba)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise InvalidTypeError(f"proba must be numeric class probabilities; found dtype {arr.dtype}.")
    arr = arr.astype(np.float64, copy=False)
    if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] < 2:
        raise InvalidInputError(
            f"proba must have shape (n_samples, n_classes) = ({n}, K) with K >= 2, one row per score; "
            f"found shape {arr.shape}. Pass the class probabilities averaged over ensemble members."
        )
    bad = ~np.isfinite(arr).all(axis=1) | (arr < -PROBA_SUM_ATOL).any(axis=1) | (arr > 1 + PROBA_SUM_ATOL).any(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidInputError(
            f"proba must hold probabilities in [0, 1]; row {i} is {arr[i].tolist()} "
            f"({int(bad.sum())} bad row(s)). Pass softmax outputs, not logits."
        )
    sums = arr.sum(axis=1)
    off = np.abs(sums - 1.0) > PROBA_SUM_ATOL
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise InvalidInputError(
            f"proba rows must sum to 1 (within {PROBA_SUM_ATOL}); row {i} sums to {sums[i]:.6g} "
            f"({int(off.sum())} bad row(s)). Pass softmax outputs, not logits or unnormalised counts."
        )
    return arr


def _check_row_ids(row_ids: Any, n: int) -> np.ndarray:
    if row_ids is None:
        return np.arange(n, dtype=np.int64)
    arr = np.asarray(row_ids)
    if arr.ndim != 1:
        raise InvalidInputError(f"row_ids must be 1-D (n_samples,); found shape {arr.shape}.")
    if arr.shape[0] != n:
        raise InvalidInputError(
            f"row_ids must have one id per score: expected {n}, found {arr.shape[0]}."
        )
    dup = pd.Index(arr).duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise InvalidInputError(
            f"row_ids must be unique; row {i} repeats id {arr[i].item()!r} ({int(dup.sum())} duplicate(s)). "
            "Use a unique key column, or leave row_ids=None for 0..n-1."
        )
    return arr


# --------------------------------------------------------------------------------------------
# Actions
# --------------------------------------------------------------------------------------------


def _priority(idx: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``idx`` ordered by drop priority: highest score first, ties to the earlier row."""
    return idx[np.lexsort((idx, -scores[idx]))]


def small_classes(labels: np.ndarray, min_class_rows: int | None) -> np.ndarray:
    """The given classes that are small (see the module docstring), ``(m,) int64`` ascending."""
    if min_class_rows is None:
        return np.zeros(0, dtype=np.int64)
    classes, counts = np.unique(labels, return_counts=True)
    mean_size = labels.size / max(classes.size, 1)
    return classes[(counts < min_class_rows) & (counts < SMALL_CLASS_SHARE * mean_size)].astype(np.int64)


def _apply_small_class_rule(action: np.ndarray, labels: np.ndarray, proba: np.ndarray | None,
                            oos_proba: np.ndarray | None, min_class_rows: int | None) -> list[str]:
    """Keep the removals of small-class rows that lack evidence against their label (in place)."""
    bound: list[str] = []
    if oos_proba is not None:
        other, source = np.argmax(oos_proba, axis=1), "the out-of-sample model still predicts"
    elif proba is not None:
        other, source = np.argmax(proba, axis=1), "the members still predict"
    else:
        other, source = None, None
    for c in small_classes(labels, min_class_rows):
        in_c = labels == c
        removed = in_c & np.isin(action, ("drop", "relabel"))
        if other is None:
            weak, why = removed, "no class probabilities to confirm them"
        elif oos_proba is not None and not (other[in_c] == c).any():
            weak, why = removed, "the out-of-sample model never predicts this class"
        else:
            weak, why = removed & (other == labels), f"{source} their given label"
        if weak.any():
            action[weak] = "keep"
            bound.append(f"small-class rule on class {c}: {int(in_c.sum())} rows (< {min_class_rows}); "
                         f"{int(weak.sum())} flagged for removal kept, as {why}")
            logger.warning("%s", bound[-1])
    return bound


def _apply_drop_caps(
    action: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    max_fraction_per_class: float | None,
    max_drop_fraction: float | None,
) -> list[str]:
    """Flip the lowest-priority removals to keep where a cap binds (in place); one line per cap that bound.

    Per class, rows leaving it count against the cap: drops and relabels to another class (a class
    relabeled away wholesale would be emptied just the same). The global cap counts drops only.
    """
    bound: list[str] = []
    for c in np.unique(labels):
        in_c = labels == c
        n_c = int(in_c.sum())
        allowed = n_c - 1  # never empty a class
        if max_fraction_per_class is not None:
            allowed = min(allowed, int(math.floor(max_fraction_per_class * n_c + _FLOOR_TOL)))
        drops = np.flatnonzero(in_c & np.isin(action, ("drop", "relabel")))
        if drops.size > allowed:
            action[_priority(drops, scores)[allowed:]] = "keep"
            bound.append(f"per-class cap on class {c}: {drops.size} rows flagged for removal, {allowed} allowed "
                         f"(of {n_c} rows); the {drops.size - allowed} lowest-scoring are kept")
            logger.warning("%s", bound[-1])
    if max_drop_fraction is not None:
        allowed = int(math.floor(max_drop_fraction * scores.size + _FLOOR_TOL))
        drops = np.flatnonzero(action == "drop")
        if drops.size > allowed:
            action[_priority(drops, scores)[allowed:]] = "keep"
            bound.append(f"global drop cap: {drops.size} rows flagged for drop, {allowed} allowed; the "
                         f"{drops.size - allowed} lowest-scoring are kept")
            logger.warning("%s", bound[-1])
    return bound


def decide(
    scores: Any,
    given_labels: Any,
    *,
    threshold: Any = "otsu",
    action: str | Policy = "drop",
    proba: Any = None,
    row_ids: Any = None,
    min_agreement: float = 0.5,
    relabel_fallback: str = "drop",
    relabel_rule: str = "argmax",
    max_fraction_per_class: float | None = 0.5,
    max_drop_fraction: float | None = None,
    min_weight: float = 0.05,
    random_state: Any = None,
    score_floor: float = 0.0,
    gex_influence: Any = None,
    n_estimated: int | None = None,
    eligible: Any = None,
    min_class_rows: int | None = MIN_CLASS_ROWS,
    oos_proba: Any = None,
    policy_options: Mapping[str, Any] | None = None,
) -> Decisions:
    """Turn self-influence scores into one decision per row.

    Parameters
    ----------
    scores : array-like, shape ``(n,)`` float
        Self-influence scores, finite and ``>= 0``; higher = more suspicious.
    given_labels : array-like, shape ``(n,)`` int
        Labels as given, class indices ``0..K-1``.
    threshold : str or float, default ``"otsu"``
        Which rows are flagged (``is_issue``); see ``choose_threshold``.
    action : str or Policy, default ``"drop"``
        A name in ``POLICY_REGISTRY``, or a policy built
        with its options. The built-in ones:

        - ``"drop"``: flagged rows get ``drop``, subject to the caps below.
        - ``"relabel"``: flagged rows that pass ``relabel_rule`` get ``relabel`` (to
          ``suggested_label``); other flagged rows get ``relabel_fallback``. Needs ``proba``.
        - ``"reweight"``: flagged rows get ``weight = clip(1 - p_issue, min_weight, 1)`` (at most
          0.5, since their ``p_issue >= 0.5``) and action ``reweight``; the others keep weight 1.0
          and action ``keep``. The weight is non-increasing in the score.
        - ``"none"``: score only; ``is_issue`` is computed, every action is ``keep``.
        - ``"prune"``: keep the budget ``policy_options["keep"]`` by ``gex_influence`` and drop the
          rest (``PrunePolicy``); no threshold, no caps.
    proba : array-like, shape ``(n, K)`` float, optional
        Class probabilities averaged over ensemble members; rows sum to 1 (within 1e-3).
        ``suggested_label`` is its argmax (first class on ties); on flagged rows the most probable
        label other than the given one when it is confident, else empty (``decisions.suggest``).
        Without it, the given label, and empty on flagged rows.
    row_ids : array-like, shape ``(n,)``, optional
        Unique ids, default ``0..n-1``.
    min_agreement : float in [0, 1], default 0.5
        ``relabel_rule="argmax"``: relabel a flagged row only when the suggested label differs from
        the given one, ``proba[row, suggested] >= min_agreement`` and it leads
        ``proba[row, given]`` by ``decisions.suggest.RELABEL_MARGIN``; when ``oos_proba``'s model is
        weak (``engine.auxiliary``), ``proba[row, suggested]`` must also reach
        ``decisions.suggest.WEAK_AUXILIARY_MIN_PROBA`` (``decisions.suggest.confident_suggestions``;
        ``policy_options`` ``min_margin`` and ``weak_min_agreement`` set the two; ``reverse_flip_alpha`` the veto
        of ``decisions.suggest.reverse_flip_veto``). The other flagged
        rows show an empty suggestion. Under actions other than ``relabel`` a flagged row's
        suggestion is shown under the same rule with ``decisions.suggest.SUGGESTION_MIN_PROBA``
        (0.5) in place of this.
    relabel_fallback : {"drop", "keep"}, default ``"drop"``
        Action of flagged rows that are not relabeled.
    relabel_rule : {"argmax", "soft"}, default ``"argmax"``
        ``"argmax"``: the rule above. ``"soft"``: relabel a flagged row when
        ``proba[row, given] < 1 / K`` (the ensemble gives the given label less than chance),
        to the argmax; ``min_agreement`` is not used. The suggestion of the other flagged rows is empty.
    max_fraction_per_class : float in [0, 1] or None, default 0.5
        Never remove more than ``floor(fraction * n_c)`` of the ``n_c`` rows of a class (by given
        label); drops and relabels to another class both remove a row from its class. Whatever the
        value, including None, at least one row per class stays. Where a cap binds, the
        lowest-scoring rows marked for drop or relabel are kept instead (ties: the later row is
        kept). Their ``is_issue`` stays True.
    max_drop_fraction : float in [0, 1] or None, default None
        Never drop more than ``floor(fraction * n)`` rows in all; the same rule, applied after the
        per-class caps.
    score_floor : float, default 0
        Passed to ``choose_threshold`` as ``floor`` (``otsu`` and ``gmm``).
    gex_influence : array-like, shape ``(n,)``, optional
        The exact GEX self-influence, published next to ``score`` (NaN when not given).
    n_estimated : int, optional
        Estimated number of mislabeled rows, for ``threshold="estimate"``.
    eligible : array-like of bool, shape ``(n,)``, optional
        Rows an action may touch; the others keep their data (action ``keep``, weight 1.0) though
        they are scored and flagged like every row. Default: every row. (The sampler's
        ``sampling_strategy``.)
    min_weight : float in (0, 1], default 0.05
        Lower clip of the weights under ``reweight``, so that every weight is in ``(0, 1]``.
    random_state : int, RandomState instance or None
        Seed of the ``gmm`` threshold.
    min_class_rows : int or None, default 20
        The small-class rule (module docstring): in a class with fewer rows than this and fewer
        than a quarter of the mean class size, a removal stands only when the members' argmax is
        another class. None turns the rule off.
    oos_proba : array-like, shape ``(n, K)`` float, optional
        Cross-fitted out-of-sample class probabilities (the yardstick's): the small-class rule's
        evidence when given, and the relabel rule's check of their model (``min_agreement``).
    policy_options : mapping, optional
        Options of the policy named by ``action`` beyond the ones above (``prune``: ``keep``,
        ``per_class``, ``high_share``; ``relabel``: ``min_margin``, ``weak_min_agreement``,
        ``reverse_flip_alpha``).

    Returns
    -------
    Decisions
        ``table`` (one row per input row, in input order) and the ``threshold`` used.

    Raises
    ------
    InvalidInputError
        Bad scores (not 1-D, empty, NaN, negative), lengths that differ between scores, labels,
        proba and row_ids, proba of the wrong shape or not summing to 1, labels outside
        ``0..K-1``, duplicate row ids, an unknown action, ``relabel`` without ``proba``, a policy
        without its required options, an out-of-range parameter.
    InvalidTypeError
        Non-numeric scores, labels or proba; a parameter of the wrong type.
    """
    s = check_scores(scores)
    n = s.size
    if not isinstance(action, Policy):
        action = check_action(action)
    relabel_fallback = check_choice(relabel_fallback, "relabel_fallback", ("drop", "keep"))
    relabel_rule = check_choice(relabel_rule, "relabel_rule", ("argmax", "soft"))
    min_agreement = check_fraction(min_agreement, "min_agreement")
    max_fraction_per_class = check_fraction(max_fraction_per_class, "max_fraction_per_class", allow_none=True)
    max_drop_fraction = check_fraction(max_drop_fraction, "max_drop_fraction", allow_none=True)
    min_weight = check_fraction(min_weight, "min_weight", low_open=True)
    if min_class_rows is not None and (isinstance(min_class_rows, bool) or not isinstance(min_class_rows, int)
                                       or min_class_rows < 0):
        raise InvalidInputError(f"min_class_rows must be an integer >= 0 or None (no small-class rule); "
                                f"found {min_class_rows!r}.")
    policy = make_policy(action, {"min_agreement": min_agreement, "fallback": relabel_fallback,
                                  "rule": relabel_rule, "min_weight": min_weight, **(policy_options or {})})

    labels_in = np.asarray(given_labels.detach().cpu().numpy() if hasattr(given_labels, "detach") else given_labels)
    if labels_in.ndim == 1 and labels_in.shape[0] != n:
        raise InvalidInputError(
            f"given_labels must have one label per score: expected {n}, found {labels_in.shape[0]}."
        )
    if policy.needs_proba and proba is None:
        raise InvalidInputError(
            f"action={policy.name!r} needs proba (n_samples, n_classes): the class probabilities averaged over "
            "ensemble members; found proba=None. Pass proba, or use action='drop' or 'reweight'."
        )
    P = _check_proba(proba, n) if proba is not None else None
    Q = _check_proba(oos_proba, n) if oos_proba is not None else None
    y, _ = check_labels(labels_in, n_classes=None if P is None else P.shape[1], name="given_labels")
    ids = _check_row_ids(row_ids, n)

    gi = np.full(n, np.nan) if gex_influence is None else check_scores(gex_influence, name="gex_influence")
    if gi.shape[0] != n:
        raise InvalidInputError(f"gex_influence must have one value per score: expected {n}, found {gi.shape[0]}.")
    thr = choose_threshold(s, threshold, random_state=random_state, floor=score_floor, n_estimated=n_estimated) \
        if policy.uses_threshold else None
    flagged = np.asarray(thr.is_issue) if thr is not None else np.zeros(n, dtype=bool)
    pool = np.ones(n, dtype=bool) if eligible is None else check_mask(eligible, n, "eligible")
    # flagged rows: the best label other than the given one (decisions.suggest)
    suggested = suggest_labels(P, y, flagged) if P is not None else y.copy()
    outcome = policy.act(PolicyInputs(scores=s, gex_influence=gi, labels=y, proba=P, suggested=suggested,
                                      flagged=flagged, eligible=pool, threshold=thr, oos_proba=Q))
    act = np.asarray(outcome.action, dtype=object).copy()
    weight = np.asarray(outcome.weight, dtype=np.float64)
    if outcome.is_issue is not None:
        flagged = np.asarray(outcome.is_issue, dtype=bool)
        thr = outcome.threshold
        suggested = suggest_labels(P, y, flagged) if P is not None else y.copy()
    # a flagged row shows its suggestion only where it is confident (decisions.suggest)
    confident = _confident(policy, P, y, suggested, Q) if P is not None else np.zeros(n, dtype=bool)
    suggested_column = suggestion_column(suggested, flagged, confident)
    unsure = (act == "relabel") & ~(flagged & confident)
    if unsure.any():
        i = int(np.flatnonzero(unsure)[0])
        raise InvalidInputError(
            f"policy {policy.name!r} relabels row {i}, whose suggested label is not confident by its own rule "
            f"({int(unsure.sum())} such rows); a relabeled row needs a confident suggestion. Fix the policy's act or "
            "confident.")
    caps: list[str] = []
    if policy.removes_rows:
        caps = _apply_small_class_rule(act, y, P, Q, min_class_rows)
        caps += _apply_drop_caps(act, s, y, max_fraction_per_class, max_drop_fraction)

    table = pd.DataFrame(
        {
            "row_id": ids,
            "score": s,
            "gex_influence": gi,
            "label_quality": label_quality(s),
            "is_issue": flagged.copy(),
            "action": act.astype(str),
            "given_label": y,
            "suggested_label": suggested_column,
            "weight": weight,
        },
        columns=list(TABLE_COLUMNS),
    )
    logger.info(
        "decisions (%s): %s", policy.name, {a: int((act == a).sum()) for a in ROW_ACTIONS if (act == a).any()}
    )
    return Decisions(table=table, threshold=thr, caps=tuple(caps))


def _confident(policy: Policy, P: np.ndarray, y: np.ndarray, suggested: np.ndarray, Q: np.ndarray | None) -> np.ndarray:
    """``policy.confident`` with the cross-fitted probabilities when its signature takes them (a policy written
    before they were passed overrides it with three arguments)."""
    if "oos_proba" in inspect.signature(policy.confident).parameters:
        return policy.confident(P, y, suggested, oos_proba=Q)
    return policy.confident(P, y, suggested)


__all__ = ["MIN_CLASS_ROWS", "SMALL_CLASS_SHARE", "Decisions", "decide", "small_classes"]

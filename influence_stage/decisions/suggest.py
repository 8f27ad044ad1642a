"""Relabel suggestions: which label a flagged row should get, and from which evidence.

A flagged row is one the ranking believes carries a wrong label, so its suggestion is the most
probable label *other than the given one* (``suggest_labels``); it is never the given label.
When that label is not confident (the decision policy's ``Policy.confident``: under ``relabel``
the relabel rule itself, so a suggestion on a flagged row is exactly a relabel target; under the
other actions the same rule with ``SUGGESTION_MIN_PROBA``), the flagged row's suggestion is
empty (null, ``suggestion_column``): no other label is confident, and under ``relabel`` the row
falls back to ``relabel_fallback``. Rows that are not flagged keep the argmax as their suggestion
(usually their given label). The decisions table's ``suggested_label`` is therefore a nullable
integer column (pandas ``Int64``); ``suggested_codes`` reads it back as codes with ``NO_SUGGESTION``.

The probabilities (``suggestion_proba``): the mean of the members' mean probabilities
(in-sample: they remember the given label of every row they trained on) and the cross-fitted
probabilities (out-of-sample: from a model that never saw the row), when the cross-fitted model is
reliable (``engine.auxiliary``); else the members' alone.

The rule (``confident_suggestions``): the suggested label ``s`` of a row given ``y`` is confident when

- ``proba[s] >= min_proba`` (``min_agreement`` under ``relabel``, default 0.5), and
- ``proba[s] - proba[y] >= RELABEL_MARGIN``: the evidence must prefer ``s`` to the given label by a
  clear margin, not only make it the best of the others. A flagged row whose given label keeps a
  large share is often a correct row flagged by mistake, and relabeling it is always wrong;
- when the cross-fitted model is weak (its held-out agreement with the given labels fails the
  reliability check of ``engine.auxiliary``), ``proba`` is the members' alone, which learned the
  task no better, and ``proba[s]`` must also reach ``WEAK_AUXILIARY_MIN_PROBA``;
- when it is reliable, the move from ``y`` to ``s`` must not run against the run's own flip pattern
  (``reverse_flip_veto`` at ``REVERSE_FLIP_ALPHA``): under class-dependent flips a correct row is
  often pulled towards the class its own class is flipped into, and relabeling it there is wrong.

Chosen among candidate rules measured on the same flagged rows of every setting of
``benchmarks/detect.py`` and of the digits28 images (``benchmarks/suggest_sources.py --rules``,
``results/relabel_rules.md``: accuracy and coverage per rule and setting). The margin is what lifts
the weak-feature and class-dependent settings to the target accuracy at a small cost in coverage;
a floor alone does it only by giving up most of the coverage where the models are strong. The
higher floor under a weak cross-fitted model is what reaches it where the task itself is hard
(synthetic tabular data, text), at the price of relabeling few rows there. The veto was put to
two rules written before their deciding runs (``results/relabel_direction_rule*.md``): at p < 0.2 it
cost coverage on uniform flips and was not adopted; at p < 0.05 it was.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

#: A flagged row's best other label is confident (under every action but ``relabel``, which sets its own
#: ``min_agreement``) when its probability reaches this: more likely than all the other labels together.
SUGGESTION_MIN_PROBA = 0.5
#: How far the suggested label's probability must lead the given label's for the suggestion to be confident.
RELABEL_MARGIN = 0.3
#: The least probability of a confident suggestion when the cross-fitted model is weak (``engine.auxiliary``).
WEAK_AUXILIARY_MIN_PROBA = 0.75
#: Significance of the reverse-flip veto (``reverse_flip_veto``) under a reliable cross-fitted model; None turns
#: it off.
REVERSE_FLIP_ALPHA: float | None = 0.05
#: The code that stands for an empty suggestion in an int64 array (``suggested_codes``).
NO_SUGGESTION = -1
#: The pandas dtype of the decisions table's ``suggested_label`` column (integer codes, null when empty).
SUGGESTED_DTYPE = "Int64"


def suggestion_proba(member_proba: np.ndarray, oos_proba: np.ndarray | None = None,
                     auxiliary: Any = None) -> np.ndarray:
    """Class probabilities the suggestions come from, ``(n, K) float64``, rows summing to 1.

    ``member_proba`` ``(n, K)``: the members' mean probabilities; ``oos_proba`` ``(n, K)`` or None:
    the cross-fitted probabilities; ``auxiliary``: their check (``engine.auxiliary.AuxiliaryCheck``),
    used only when it is reliable (None counts as reliable).
    """
    P = np.asarray(member_proba, dtype=np.float64)
    if oos_proba is None or np.shape(oos_proba) != P.shape or (auxiliary is not None and not auxiliary.reliable):
        return P
    return (P + np.asarray(oos_proba, dtype=np.float64)) / 2.0


def suggest_labels(proba: np.ndarray, given: np.ndarray, flagged: np.ndarray) -> np.ndarray:
    """The suggested label of every row, ``(n,) int64``.

    Flagged rows get the most probable label other than their given one (first class on ties);
    the other rows get the argmax of ``proba`` ``(n, K)``. ``given`` ``(n,)`` int codes,
    ``flagged`` ``(n,)`` bool. With a single class there is no other label: the given one stays.
    """
    P = np.asarray(proba, dtype=np.float64)
    y = np.asarray(given, dtype=np.int64)
    out = np.argmax(P, axis=1).astype(np.int64)
    rows = np.flatnonzero(np.asarray(flagged, dtype=bool))
    if rows.size and P.shape[1] > 1:
        other = P[rows].copy()
        other[np.arange(rows.size), y[rows]] = -np.inf
        out[rows] = np.argmax(other, axis=1)
    return out


def auxiliary_reliable(oos_proba: np.ndarray | None, labels: np.ndarray) -> bool:
    """Whether the cross-fitted model behind ``oos_proba`` ``(n, K)`` passes the reliability check of
    ``engine.auxiliary`` against ``labels`` ``(n,)`` codes (the check the run itself makes on the same
    probabilities and labels); True without ``oos_proba`` (nothing to distrust)."""
    if oos_proba is None:
        return True
    from influence_stage.engine.auxiliary import check_auxiliary

    return bool(check_auxiliary(np.asarray(oos_proba), np.asarray(labels)).reliable)


def reverse_flip_veto(labels: np.ndarray, suggested: np.ndarray, oos_proba: np.ndarray, alpha: float) -> np.ndarray:
    """``(n,) bool``: rows whose move from the given label ``g`` to ``suggested`` ``s`` runs against the
    run's own flip pattern.

    The confident joint of the cross-fitted probabilities (``cleanlab.count.compute_confident_joint``,
    uncalibrated, as in ``decisions.estimate``) counts, per pair of classes, the rows given ``g`` that
    look like ``s`` (``C[g, s]``: the direction of the move) and the rows given ``s`` that look like
    ``g`` (``C[s, g]``: the reverse flip). Under uniform noise both directions are equally likely.
    When flips run one way (class-dependent noise, ``s`` -> ``g``), a model trained on the given labels
    learns that ``s``-looking rows are sometimes ``g`` *and* that ``g``-looking rows drift towards the
    flip target, so an atypical but correct ``g`` row is pulled towards ``s`` with nothing having
    flipped it there. A move is vetoed when ``C[s, g] > C[g, s]`` and the one-sided binomial test of
    ``C[s, g]`` among ``C[s, g] + C[g, s]`` at 1/2 gives a p-value below ``alpha``.

    ``labels``, ``suggested`` ``(n,)`` int codes, ``oos_proba`` ``(n, K)``. Rows with ``s == g`` are never
    vetoed, nor moves from or to a small class (``decisions.decide.small_classes``): the confident joint's
    threshold of such a class rests on a handful of rows (of a 2-row class that no model learns, most rows
    of every other class "look like" it), so its counts are no pattern.
    """
    from cleanlab.count import compute_confident_joint
    from scipy.stats import binom

    from influence_stage.decisions.decide import MIN_CLASS_ROWS, small_classes
    from influence_stage.decisions.estimate import _present_classes

    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(suggested, dtype=np.int64)
    out = np.zeros(y.size, dtype=bool)
    codes, P, present = _present_classes(y, np.asarray(oos_proba, dtype=np.float64))
    if present.size < 2:
        return out
    K = np.shape(oos_proba)[1]
    joint = np.zeros((K, K), dtype=np.int64)  # classes never given count nothing in either direction
    joint[np.ix_(present, present)] = compute_confident_joint(codes, P, calibrate=False)
    small = small_classes(y, MIN_CLASS_ROWS)
    rows = np.flatnonzero((s != y) & ~np.isin(y, small) & ~np.isin(s, small))
    forward, reverse = joint[y[rows], s[rows]], joint[s[rows], y[rows]]
    p_value = binom.sf(reverse - 1, forward + reverse, 0.5)  # P(X >= reverse) when both directions are alike
    out[rows] = (reverse > forward) & (p_value < alpha)
    return out


def confident_suggestions(proba: np.ndarray, labels: np.ndarray, suggested: np.ndarray, *, min_proba: float,
                          margin: float = RELABEL_MARGIN, oos_proba: np.ndarray | None = None,
                          weak_min_proba: float = WEAK_AUXILIARY_MIN_PROBA,
                          reverse_flip_alpha: float | None = REVERSE_FLIP_ALPHA) -> np.ndarray:
    """``(n,) bool``: the suggested label is another label than the given one and confident (module docstring).

    Parameters
    ----------
    proba : ``(n, K) float`` the suggestions' probabilities (``suggestion_proba``)
    labels, suggested : ``(n,) int`` the given and the suggested label codes
    min_proba : least ``proba[row, suggested]``
    margin : least ``proba[row, suggested] - proba[row, given]``
    oos_proba : ``(n, K) float`` or None, the cross-fitted probabilities: when their model is not reliable
        (``auxiliary_reliable``), ``proba[row, suggested]`` must also reach ``weak_min_proba``; when it is,
        and ``reverse_flip_alpha`` is not None, moves against the run's flip pattern are not confident
        (``reverse_flip_veto``)
    """
    P = np.asarray(proba, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(suggested, dtype=np.int64)
    rows = np.arange(y.size)
    reliable = auxiliary_reliable(oos_proba, y)
    floor = min_proba if reliable else max(min_proba, weak_min_proba)
    p_s = P[rows, s]
    ok = (s != y) & (p_s >= floor) & (p_s - P[rows, y] >= margin - 1e-12)
    if reverse_flip_alpha is not None and oos_proba is not None and reliable and ok.any():
        ok &= ~reverse_flip_veto(y, s, oos_proba, reverse_flip_alpha)
    return ok


def suggestion_column(suggested: np.ndarray, flagged: np.ndarray, confident: np.ndarray) -> pd.arrays.IntegerArray:
    """The ``suggested_label`` column: ``suggested`` ``(n,) int`` as pandas ``Int64``, null on flagged rows
    (``flagged`` ``(n,) bool``) whose suggestion is not ``confident`` ``(n,) bool``."""
    empty = np.asarray(flagged, dtype=bool) & ~np.asarray(confident, dtype=bool)
    return pd.arrays.IntegerArray(np.where(empty, 0, np.asarray(suggested, dtype=np.int64)), empty)


def suggested_codes(values: object) -> np.ndarray:
    """A ``suggested_label`` column (``Int64``, float with NaN, object with None, or int) as ``(n,) int64``
    codes, ``NO_SUGGESTION`` where it is empty."""
    series = pd.Series(values) if not isinstance(values, pd.Series) else values
    if series.dtype == object:
        series = pd.to_numeric(series)
    return series.astype("Float64").fillna(NO_SUGGESTION).to_numpy(dtype=np.int64)


def suggested_names(values: object, names: np.ndarray) -> np.ndarray:
    """``(n,) object``: ``names[code]`` of each suggestion of ``values`` (a ``suggested_label`` column), None
    where it is empty; ``names`` ``(K,)`` the class names."""
    codes = suggested_codes(values)
    empty = codes == NO_SUGGESTION
    names = np.asarray(names, dtype=object)
    out = names[np.where(empty, 0, codes)] if names.size else np.full(codes.size, None, dtype=object)
    out[empty] = None
    return out


__all__ = ["NO_SUGGESTION", "RELABEL_MARGIN", "REVERSE_FLIP_ALPHA", "SUGGESTED_DTYPE", "SUGGESTION_MIN_PROBA",
           "WEAK_AUXILIARY_MIN_PROBA", "auxiliary_reliable", "confident_suggestions", "reverse_flip_veto",
           "suggest_labels", "suggested_codes", "suggested_names", "suggestion_column", "suggestion_proba"]

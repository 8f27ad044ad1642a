"""Relabel suggestions: which label a flagged row should get, and from which evidence.

A flagged row is one the ranking believes carries a wrong label, so its suggestion is the most
probable label *other than the given one* (``suggest_labels``); it is never the given label.
Whether the row is actually relabeled is the decision rule's (``decide``: the suggestion's
probability must reach ``min_agreement``; else the row falls back to ``relabel_fallback``).
Rows that are not flagged keep the argmax as their suggestion (usually their given label).

The probabilities (``suggestion_proba``): the mean of the members' mean probabilities
(in-sample: they remember the given label of every row they trained on) and the cross-fitted
probabilities (out-of-sample: from a model that never saw the row), when the cross-fitted model is
reliable (``engine.auxiliary``); else the members' alone. Measured in
``benchmarks/detect_images.py`` (relabel accuracy and coverage per source).
"""

from __future__ import annotations

from typing import Any

import numpy as np


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


__all__ = ["suggest_labels", "suggestion_proba"]

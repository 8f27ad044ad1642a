"""Pruning with a budget: keep a fraction or a count of the rows, by self-influence.

The data-curation use of GEX: self-influence ``s[n]`` is low for rows the model fits anyway
(redundant, easy rows: removing one changes nothing) and high for rows it only fits by memorising
them (junk, mislabeled or foreign rows). ``prune`` keeps a budget of rows and removes the rest from
the low end (``"redundant"``) and, for the share ``high_share`` of the removals, from the high end
(``"junk"``):

- ``keep``: a float in ``(0, 1]`` is a fraction of the rows, ``round(keep * n)`` rows are kept (at
  least one); an int ``>= 1`` is a count (at most ``n``). ``True``/``False`` are refused.
- ``per_class=True``: each class keeps its share of the budget (largest-remainder rounding, so the
  total is exactly the budget) and is pruned on its own ranking; ``False``: one global ranking.
- A class is never emptied: with labels, every class present keeps at least one row (a budget
  below the number of classes is refused). In the global mode the row a class keeps is the first
  one the ranking would have kept.
- Ties are broken by row order (a stable sort), so the same scores always give the same rows.

Pure numpy / pandas, no models: ``scores`` come from ``influence.self_influence`` or any other
score where higher means "more influential on itself".
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from influence_stage._checks import check_scores
from influence_stage.errors import InvalidInputError, InvalidTypeError

#: Values of ``PruneResult.reason``.
REASONS: tuple[str, ...] = ("kept", "redundant", "junk")


@dataclass(frozen=True, eq=False)
class PruneResult:
    """Which rows a budget keeps, and why the others go.

    Attributes
    ----------
    keep : ``(n,) bool`` the rows kept.
    reason : ``(n,) object`` ``"kept"``, ``"redundant"`` (removed from the low end) or ``"junk"``
        (removed from the high end).
    n_keep : int, the number of rows kept (the budget as a count).
    budget : float or int, the budget as given.
    per_class : bool, whether each class was pruned on its own ranking.
    high_share : float, the share of the removals taken from the high end.
    low_cut : float or None, the largest score removed as redundant (None when none was).
    high_cut : float or None, the smallest score removed as junk (None when none was).
    """

    keep: np.ndarray
    reason: np.ndarray
    n_keep: int
    budget: float | int
    per_class: bool
    high_share: float
    low_cut: float | None
    high_cut: float | None

    @property
    def indices(self) -> np.ndarray:
        """Row indices kept, ascending, ``(n_keep,) int64``."""
        return np.flatnonzero(self.keep).astype(np.int64)

    @property
    def kept_fraction(self) -> float:
        return float(self.keep.mean()) if len(self.keep) else 0.0

    def table(self, scores: np.ndarray, row_ids: Any = None) -> pd.DataFrame:
        """One row per input row: ``row_id``, ``score``, ``rank`` (0 = lowest score), ``kept``, ``reason``."""
        scores = np.asarray(scores, dtype=np.float64)
        ids = np.arange(len(scores)) if row_ids is None else np.asarray(row_ids)
        rank = np.empty(len(scores), dtype=np.int64)
        rank[np.argsort(scores, kind="stable")] = np.arange(len(scores))
        return pd.DataFrame({"row_id": ids, "score": scores, "rank": rank, "kept": self.keep,
                             "reason": self.reason})


def check_budget(keep: Any, n_rows: int) -> int:
    """The number of rows a budget keeps out of ``n_rows``.

    Parameters
    ----------
    keep : float or int
        A fraction in ``(0, 1]`` (float) or a count in ``1..n_rows`` (int).
    n_rows : int
        Rows to choose from.

    Returns
    -------
    int
        ``round(keep * n_rows)`` (at least 1) for a fraction, ``keep`` for a count.

    Raises
    ------
    InvalidTypeError
        ``keep`` is not a number, or is a bool.
    InvalidInputError
        A fraction outside ``(0, 1]``, a count below 1 or above ``n_rows``, or no rows.
    """
    if isinstance(keep, (bool, np.bool_)) or not isinstance(keep, numbers.Real):
        raise InvalidTypeError(f"the budget must be a fraction in (0, 1] or a row count >= 1; found {keep!r} "
                               f"({type(keep).__name__}).")
    if n_rows < 1:
        raise InvalidInputError("cannot prune 0 rows; the data is empty.")
    if isinstance(keep, numbers.Integral):
        count = int(keep)
        if count < 1 or count > n_rows:
            raise InvalidInputError(f"the budget keeps {count} rows, but there are {n_rows}; give a count in "
                                    f"1..{n_rows} or a fraction in (0, 1].")
        return count
    frac = float(keep)
    if not math.isfinite(frac) or not 0.0 < frac <= 1.0:
        raise InvalidInputError(f"the budget fraction must be in (0, 1]; found {frac}. Give e.g. 0.7 to keep 70% of "
                                "the rows, or an int to keep that many rows.")
    return max(1, min(n_rows, int(round(frac * n_rows))))


def _allocate(counts: np.ndarray, n_keep: int) -> np.ndarray:
    """Rows each class keeps: proportional to its size, at least 1, summing to ``n_keep`` exactly."""
    n = counts.sum()
    quota = counts * (n_keep / n)
    alloc = np.clip(np.floor(quota + 1e-9).astype(np.int64), 1, counts)
    remainder = quota - np.floor(quota + 1e-9)
    while alloc.sum() < n_keep:  # the largest remainders first, then the largest classes
        room = alloc < counts
        order = np.lexsort((-counts, -remainder))
        i = next(int(j) for j in order if room[j])
        alloc[i] += 1
        remainder[i] = -1.0
    while alloc.sum() > n_keep:  # lifted to 1: take back from the classes furthest above their quota
        over = np.where(alloc > 1, alloc - quota, -np.inf)
        alloc[int(np.argmax(over))] -= 1
    return alloc


def prune(scores: Any, keep: float | int, *, labels: Any = None, per_class: bool = False,
          high_share: float = 0.0) -> PruneResult:
    """Keep a budget of rows: remove the lowest self-influence, and optionally the highest.

    Parameters
    ----------
    scores : array-like, shape ``(n,)``
        Self-influence (or any score, higher = more influential on itself).
    keep : float or int
        The budget: a fraction in ``(0, 1]`` or a count ``1..n`` (``check_budget``).
    labels : array-like, shape ``(n,)``, optional
        Class of each row. With labels no class is ever emptied; needed for ``per_class``.
    per_class : bool, default False
        Give each class its share of the budget and prune it on its own ranking.
    high_share : float in ``[0, 1]``, default 0
        Share of the removed rows taken from the high end (junk / mislabeled); the rest come from
        the low end (redundant). 0 removes only the lowest scores.

    Returns
    -------
    PruneResult

    Raises
    ------
    InvalidInputError
        A bad budget, scores that are not 1-D and finite, labels of another length, ``per_class``
        without labels, ``high_share`` outside ``[0, 1]``, or a budget below the number of classes.
    """
    s = check_scores(scores, nonnegative=False)
    n = len(s)
    n_keep = check_budget(keep, n)
    if isinstance(high_share, (bool, np.bool_)) or not isinstance(high_share, numbers.Real) \
            or not 0.0 <= float(high_share) <= 1.0:
        raise InvalidInputError(f"high_share must be a number in [0, 1] (the share of removed rows taken from the "
                                f"highest scores); found {high_share!r}.")
    high_share = float(high_share)
    if labels is None:
        if per_class:
            raise InvalidInputError("per_class=True needs labels; pass labels= or use per_class=False.")
        codes, n_classes = np.zeros(n, dtype=np.int64), 0
    else:
        lab = np.asarray(labels)
        if lab.shape != (n,):
            raise InvalidInputError(f"labels must have shape ({n},) to match the scores; found {lab.shape}.")
        _, codes = np.unique(lab, return_inverse=True)
        codes = codes.astype(np.int64)
        n_classes = int(codes.max()) + 1
        if n_keep < n_classes:
            raise InvalidInputError(f"the budget keeps {n_keep} rows but there are {n_classes} classes, and no class "
                                    f"may be emptied; keep at least {n_classes} rows.")
    reason = np.full(n, "kept", dtype=object)
    if per_class:
        counts = np.bincount(codes, minlength=n_classes)
        alloc = _allocate(counts, n_keep)
        for c in range(n_classes):
            rows = np.flatnonzero(codes == c)
            _remove(s, rows, len(rows) - int(alloc[c]), high_share, reason, protect=None)
    else:
        protect = codes if labels is not None else None
        _remove(s, np.arange(n), n - n_keep, high_share, reason, protect=protect)
    keep_mask = reason == "kept"
    low, high = s[reason == "redundant"], s[reason == "junk"]
    return PruneResult(keep=keep_mask, reason=reason, n_keep=int(keep_mask.sum()), budget=keep,
                       per_class=bool(per_class), high_share=high_share,
                       low_cut=float(low.max()) if low.size else None,
                       high_cut=float(high.min()) if high.size else None)


def _remove(s: np.ndarray, rows: np.ndarray, n_remove: int, high_share: float, reason: np.ndarray, *,
            protect: np.ndarray | None) -> None:
    """Mark ``n_remove`` of ``rows`` removed: ``round(high_share * n_remove)`` from the top, the rest
    from the bottom; with ``protect`` (class codes) the last row of a class is skipped."""
    if n_remove <= 0:
        return
    n_high = int(round(high_share * n_remove))
    order = rows[np.argsort(s[rows], kind="stable")]  # ascending, ties by row order
    left = None if protect is None else np.bincount(protect[rows], minlength=int(protect.max()) + 1)

    def take(candidates: np.ndarray, k: int, label: str) -> int:
        done = 0
        for i in candidates:
            if done == k:
                break
            if reason[i] != "kept":
                continue
            if left is not None:
                if left[protect[i]] <= 1:
                    continue
                left[protect[i]] -= 1
            reason[i] = label
            done += 1
        return done

    done_high = take(order[::-1], n_high, "junk")
    done_low = take(order, n_remove - done_high, "redundant")
    if done_high + done_low < n_remove:  # the low end ran into protected rows: fill from the high end
        take(order[::-1], n_remove - done_high - done_low, "junk")


def prune_decisions(scores: Any, given_labels: Any, keep: float | int, *, per_class: bool = False,
                    high_share: float = 0.0, row_ids: Any = None, ranking: Any = None,
                    eligible: Any = None) -> Any:
    """The budget as a decisions table: kept rows ``keep``, pruned rows ``drop`` (``is_issue`` True).

    ``decide`` with the ``prune`` policy (``PrunePolicy``),
    so the same apply step, output suite, report and publishing handle it. Classes are never
    emptied (``given_labels`` are the classes).

    Parameters
    ----------
    scores : array-like, shape ``(n,)``
        The GEX self-influence the budget ranks by (stored as ``gex_influence``).
    given_labels : array-like of int, shape ``(n,)``
        Class codes ``0..K-1``.
    keep, per_class, high_share
        As for ``prune``.
    row_ids : array-like, optional
        Default ``0..n-1``.
    ranking : array-like, shape ``(n,)``, optional
        The run's ranking score shown as ``score`` (default: ``scores``).
    eligible : array-like of bool, shape ``(n,)``, optional
        Rows the budget chooses among (a fraction or count of these); the others are kept.
        Default: every row.

    Returns
    -------
    Decisions
        ``threshold.method`` is ``"budget"``, its ``value`` the low cut (the largest score removed
        as redundant; the smallest score when nothing was), ``is_issue`` the pruned rows.
    """
    from influence_stage.decisions.decide import decide
    from influence_stage.decisions.policies import PrunePolicy

    s = check_scores(scores, nonnegative=False)
    y = np.asarray(given_labels)
    if y.shape != s.shape or not np.issubdtype(y.dtype, np.integer):
        raise InvalidInputError(f"given_labels must be integer class codes of shape {s.shape}; found shape {y.shape}, "
                                f"dtype {y.dtype}.")
    return decide(s if ranking is None else ranking, y, action=PrunePolicy(keep=keep, per_class=per_class,
                                                                        high_share=high_share),
                  gex_influence=s, row_ids=row_ids, eligible=eligible)

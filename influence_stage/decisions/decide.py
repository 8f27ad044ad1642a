"""Scores to decisions: thresholds (otsu, gmm, quantile, budget, value) and one action per row.

This module owns the pipeline step ``scores → decisions``. It takes self-influence scores
``(n,) float`` (higher = more suspicious) and, optionally, ensemble class probabilities ``(n, K)``,
and returns a table with one row per input row saying what happens to it: ``keep``, ``drop``,
``relabel`` or ``reweight``. Pure numpy / pandas / scikit-learn: no models, no torch.

Thresholds work on **log scores**. Self-influence is a mean of squares, so scores span orders of
magnitude and the clean and suspicious groups are roughly log-normal. Scores may be exactly zero,
so the log uses a floor tied to the score scale: ``log(max(score, eps))`` with ``eps`` the 1st
percentile of the positive scores (1.0 when no score is positive). Zeros then sit at the bottom of
the observed low tail instead of forming a detached mode that Otsu or a mixture would split off,
and scores above the floor are not distorted. Multiplying all scores by a constant multiplies every
threshold value by the same constant.
"""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.mixture import GaussianMixture
from sklearn.utils import check_random_state

from influence_stage._checks import check_labels
from influence_stage.errors import InvalidInputError, InvalidTypeError
from influence_stage.engine.scores import label_quality

logger = logging.getLogger(__name__)

#: Values accepted by ``decide(action=...)``.
ACTIONS: tuple[str, ...] = ("drop", "relabel", "reweight", "none")
#: Values of the ``action`` column of the decisions table.
ROW_ACTIONS: tuple[str, ...] = ("keep", "drop", "relabel", "reweight")
#: Columns of the decisions table, in order (DESIGN.md, ``issues_``).
TABLE_COLUMNS: tuple[str, ...] = (
    "row_id", "score", "gex_influence", "label_quality", "is_issue", "action", "given_label", "suggested_label",
    "weight",
)
#: Threshold methods, as reported in ``ThresholdResult.method``.
THRESHOLD_METHODS: tuple[str, ...] = ("estimate", "otsu", "gmm", "quantile", "budget", "value")
#: The default threshold: flag the estimated number of label issues (see influence_stage.decisions.estimate).
DEFAULT_THRESHOLD = "estimate"
#: Histogram bins of Otsu's method.
OTSU_BINS = 256
#: Percentile of the positive scores used as the log floor ``eps``.
LOG_FLOOR_PERCENTILE = 1.0
#: Tolerance on ``proba`` rows summing to 1: averaged float32 softmax outputs are exact only to rounding.
PROBA_SUM_ATOL = 1e-3
# Fractions times counts are floored; the tolerance keeps 0.29 * 100 at 29 rather than 28.
_FLOOR_TOL = 1e-9

_SPEC_HELP = (
    "Use 'estimate' (flag the estimated number of label issues), 'otsu', 'gmm', 'quantile:q' (0 <= q <= 1, flag "
    "rows above the q-quantile), "
    "'budget:f' (0 <= f <= 1, flag exactly the top fraction f), or a number >= 0 (a score value)."
)


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThresholdSpec:
    """A parsed threshold specification.

    Attributes
    ----------
    method : {"otsu", "gmm", "quantile", "budget", "value"}
        The thresholding method.
    param : float or None
        ``q`` for ``quantile``, ``f`` for ``budget``, the score value for ``value``; None otherwise.
    """

    method: Literal["estimate", "otsu", "gmm", "quantile", "budget", "value"]
    param: float | None = None


@dataclass(frozen=True, eq=False)
class ThresholdResult:
    """Which rows a threshold flags, and a probability-like score per row.

    Attributes
    ----------
    value : float
        The score cut-off. Rows scoring above ``value`` are flagged and rows scoring below it are
        not. For every method but ``budget``, ``is_issue == (scores > value)`` exactly; for
        ``budget`` rows tied at ``value`` are flagged in row order until the budget is met.
        For ``otsu`` and ``gmm`` the value is the log-space midpoint between the largest unflagged
        and the smallest flagged score (the largest score when nothing is flagged).
    is_issue : ndarray, shape ``(n,)`` bool
        Flagged rows. Read-only.
    p_issue : ndarray, shape ``(n,)`` float64 in ``[0, 1]``
        Non-decreasing in the score; ``p_issue > 0.5`` implies ``is_issue`` and ``is_issue``
        implies ``p_issue >= 0.5``. For ``gmm`` it is the posterior of the higher-mean component
        (made monotone in the tails, see :func:`choose_threshold`) and ``is_issue == p_issue > 0.5``.
        For the other methods it is a logistic of the log score centred at the threshold:
        ``p = 1 / (1 + exp(-(log(max(s, eps)) - log(max(value, eps))) / scale))`` with ``scale``
        the robust spread of the log scores (IQR / 1.349; the standard deviation if the IQR is 0;
        1.0 if both are 0). Read-only.
    method : str
        One of ``THRESHOLD_METHODS``.
    n_estimated : int or None
        ``estimate`` only: the estimated number of mislabeled rows it flagged (before ties).
    """

    value: float
    is_issue: np.ndarray
    p_issue: np.ndarray
    method: str
    n_estimated: int | None = None

    @property
    def estimated_noise_rate(self) -> float | None:
        """``n_estimated / n`` (``estimate`` only), the share of rows estimated to be mislabeled."""
        return None if self.n_estimated is None else self.n_estimated / max(self.is_issue.size, 1)

    @property
    def n_flagged(self) -> int:
        """Number of flagged rows."""
        return int(self.is_issue.sum())


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
        - ``suggested_label`` int64: argmax of ``proba`` when given, else the given label.
          Under ``relabel`` rows with action ``relabel`` take this label.
        - ``weight`` float64 in ``(0, 1]``: 1.0 except under ``reweight``.
    threshold : ThresholdResult
        The threshold that flagged the rows.
    """

    table: pd.DataFrame
    threshold: ThresholdResult

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
        targets = t["suggested_label"].to_numpy()[relabeled]
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


def _check_scores(scores: Any, *, name: str = "scores") -> np.ndarray:
    """Return scores as ``(n,) float64``: 1-D, non-empty, finite, non-negative."""
    if hasattr(scores, "detach"):  # a torch tensor
        scores = scores.detach().cpu().numpy()
    try:
        arr = np.asarray(scores)
    except Exception as exc:  # ragged lists and the like
        raise InvalidTypeError(f"{name} could not be turned into an array: {exc}") from exc
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise InvalidTypeError(
            f"{name} must be real numbers (self-influence scores); found dtype {arr.dtype}."
        )
    if arr.ndim != 1:
        raise InvalidInputError(
            f"{name} must be 1-D (n_samples,); found shape {arr.shape}. "
            "Pass one self-influence score per row (e.g. scores.ravel() for an (n, 1) column)."
        )
    if arr.shape[0] == 0:
        raise InvalidInputError(f"{name} is empty (0 rows); there is nothing to decide.")
    arr = arr.astype(np.float64, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidInputError(
            f"{name} must be finite; found {int(bad.sum())} NaN or infinite value(s), first at row {i} "
            f"({arr[i]}). Recompute the scores or drop those rows before deciding."
        )
    neg = arr < 0
    if neg.any():
        i = int(np.flatnonzero(neg)[0])
        raise InvalidInputError(
            f"{name} must be >= 0 (self-influence is a mean of squares); found {int(neg.sum())} "
            f"negative value(s), first at row {i} ({arr[i]}). Pass self-influence scores, not deviations."
        )
    return arr


def _check_fraction(value: Any, name: str, *, allow_none: bool = False, low_open: bool = False) -> float | None:
    """Return ``value`` as a float in ``[0, 1]`` (``(0, 1]`` with ``low_open``), or None if allowed."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        expected = "a number in " + ("(0, 1]" if low_open else "[0, 1]") + (" or None" if allow_none else "")
        raise InvalidTypeError(f"{name} must be {expected}; found {type(value).__name__} {value!r}.")
    v = float(value)
    ok = (0.0 < v <= 1.0) if low_open else (0.0 <= v <= 1.0)
    if not ok:
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise InvalidInputError(f"{name} must be in {interval}; found {value!r}.")
    return v


def _check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise InvalidTypeError(f"{name} must be one of {list(choices)}; found {type(value).__name__} {value!r}.")
    if value not in choices:
        raise InvalidInputError(f"{name} must be one of {list(choices)}; found {value!r}.")
    return value


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


def _check_mask(mask: Any, n: int, name: str) -> np.ndarray:
    m = np.asarray(mask)
    if m.shape != (n,) or m.dtype != bool:
        raise InvalidInputError(f"{name} must be a boolean array of shape ({n},); found dtype {m.dtype}, shape {m.shape}.")
    return m


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
# Thresholds
# --------------------------------------------------------------------------------------------


def parse_threshold(spec: Any) -> ThresholdSpec:
    """Parse a threshold specification.

    Parameters
    ----------
    spec : str or float
        ``"otsu"``, ``"gmm"``, ``"quantile:q"`` with ``0 <= q <= 1``, ``"budget:f"`` with
        ``0 <= f <= 1``, or a number ``>= 0`` (a float or a numeric string) used as a score value.
        Names are case-insensitive and surrounding whitespace is ignored.

    Returns
    -------
    ThresholdSpec

    Raises
    ------
    InvalidTypeError
        ``spec`` is neither a string nor a real number.
    InvalidInputError
        ``spec`` is malformed or its parameter is out of range.
    """
    if isinstance(spec, bool) or not isinstance(spec, (str, numbers.Real)):
        raise InvalidTypeError(
            f"threshold must be a string or a number; found {type(spec).__name__} {spec!r}. {_SPEC_HELP}"
        )
    if isinstance(spec, numbers.Real):
        return ThresholdSpec("value", _check_value_threshold(float(spec), spec))
    text = spec.strip().lower()
    if text in ("estimate", "otsu", "gmm"):
        return ThresholdSpec(text)  # type: ignore[arg-type]
    if ":" in text:
        name, _, arg = (part.strip() for part in text.partition(":"))
        if name not in ("quantile", "budget"):
            raise InvalidInputError(f"unknown threshold method {name!r} in {spec!r}. {_SPEC_HELP}")
        try:
            x = float(arg)
        except ValueError:
            raise InvalidInputError(
                f"threshold {spec!r}: the {name} parameter must be a number in [0, 1]; found {arg!r}. "
                f"{_SPEC_HELP}"
            ) from None
        if not 0.0 <= x <= 1.0:  # also rejects NaN
            raise InvalidInputError(
                f"threshold {spec!r}: the {name} parameter must be in [0, 1]; found {x}. {_SPEC_HELP}"
            )
        return ThresholdSpec(name, x)  # type: ignore[arg-type]
    try:
        x = float(text)
    except ValueError:
        raise InvalidInputError(f"unknown threshold {spec!r}. {_SPEC_HELP}") from None
    return ThresholdSpec("value", _check_value_threshold(x, spec))


def _check_value_threshold(x: float, spec: Any) -> float:
    if not math.isfinite(x) or x < 0:
        raise InvalidInputError(
            f"a score-value threshold must be a finite number >= 0 (scores are non-negative); "
            f"found {spec!r}. {_SPEC_HELP}"
        )
    return x


def _log_scores(scores: np.ndarray) -> tuple[np.ndarray, float]:
    """``log(max(scores, eps))`` and ``eps`` (the 1st percentile of the positive scores)."""
    positive = scores[scores > 0]
    eps = float(np.percentile(positive, LOG_FLOOR_PERCENTILE)) if positive.size else 1.0
    return np.log(np.maximum(scores, eps)), eps


def _robust_scale(x: np.ndarray) -> float:
    q25, q75 = np.percentile(x, [25.0, 75.0])
    scale = (q75 - q25) / 1.349  # IQR of a standard normal
    if not scale > 0:
        scale = float(np.std(x))
    return float(scale) if scale > 0 else 1.0


def _logistic_p(log_s: np.ndarray, value: float, eps: float) -> np.ndarray:
    """Logistic in log score centred at ``log(max(value, eps))``; bounded in [0, 1], non-decreasing."""
    centre = math.log(max(value, eps))
    z = (log_s - centre) / _robust_scale(log_s)
    # tanh form: no overflow for large |z|
    return np.clip(0.5 * (1.0 + np.tanh(0.5 * z)), 0.0, 1.0)


def _cut_between(scores: np.ndarray, is_issue: np.ndarray, eps: float) -> float:
    """A value with ``is_issue == scores > value``, for a flagged set that is an upper set in score.

    The log-space midpoint between the largest unflagged and the smallest flagged score; the largest
    score when nothing is flagged; just below the smallest score when everything is.
    """
    if not is_issue.any():
        return float(scores.max())
    if is_issue.all():
        return float(np.nextafter(scores.min(), -np.inf))
    a = float(scores[~is_issue].max())
    b = float(scores[is_issue].min())
    mid = math.exp(0.5 * (math.log(max(a, eps)) + math.log(max(b, eps))))
    return mid if a < mid < b else a


def _otsu(log_s: np.ndarray, bins: int = OTSU_BINS) -> np.ndarray:
    """Otsu's split of ``log_s`` on a ``bins``-bin histogram; returns the flagged (upper) rows."""
    lo, hi = float(log_s.min()), float(log_s.max())
    if not hi > lo:
        return np.zeros(log_s.shape, dtype=bool)  # one value: no split
    counts, edges = np.histogram(log_s, bins=bins, range=(lo, hi))
    centres = 0.5 * (edges[:-1] + edges[1:])
    n = counts.sum()
    c0 = np.cumsum(counts)[:-1]  # rows in the lower class when the cut is after bin k
    s0 = np.cumsum(counts * centres)[:-1]
    total = float((counts * centres).sum())
    valid = (c0 > 0) & (c0 < n)
    w0 = c0 / n
    with np.errstate(divide="ignore", invalid="ignore"):
        # between-class variance (mu_T w0 - mu_0 w0)^2 / (w0 w1), with sums instead of means
        between = (total / n * w0 - s0 / n) ** 2 / (w0 * (1.0 - w0))
    between = np.where(valid, between, -np.inf)
    k = int(np.argmax(between))
    # np.histogram puts a value equal to an inner edge in the upper bin, hence >=
    return log_s >= edges[k + 1]


def _gmm_posterior(log_s: np.ndarray, random_state: Any) -> np.ndarray:
    """Monotone P(issue) from a two-component Gaussian mixture on log scores."""
    if log_s.size < 2 or not np.ptp(log_s) > 0:
        return np.zeros(log_s.shape, dtype=np.float64)
    x = log_s.reshape(-1, 1)
    gm = GaussianMixture(n_components=2, covariance_type="full", random_state=check_random_state(random_state))
    gm.fit(x)
    means = gm.means_[:, 0]
    hi = int(np.argmax(means))
    post = gm.predict_proba(x)[:, hi]
    # With unequal variances the wider component wins in both tails, so the raw posterior can fall
    # again above the high mean (or rise below the low mean). Between the two means it is increasing
    # (the log-odds derivative is positive at both means and linear), so anchor at their midpoint and
    # take the running max above it and the running min below it.
    order = np.argsort(log_s, kind="stable")
    xs, ps = log_s[order], post[order]
    j = int(np.searchsorted(xs, 0.5 * float(means.sum())))
    up = np.maximum.accumulate(ps[j:])
    down = np.minimum.accumulate(ps[:j][::-1])[::-1]
    env = np.maximum.accumulate(np.concatenate([down, up]))  # a no-op unless no row lies between the means
    p = np.empty_like(post)
    p[order] = np.clip(env, 0.0, 1.0)
    return p


def _budget(scores: np.ndarray, f: float) -> tuple[np.ndarray, float]:
    """Exactly ``floor(f n + 0.5)`` top-scoring rows; ties in score go to the earlier row."""
    n = scores.size
    k = int(math.floor(f * n + 0.5))
    order = np.lexsort((np.arange(n), -scores))  # by score descending, then row order
    is_issue = np.zeros(n, dtype=bool)
    is_issue[order[:k]] = True
    value = float(scores[order[k - 1]]) if k > 0 else float(scores.max())
    return is_issue, value


def choose_threshold(scores: Any, spec: Any = "otsu", random_state: Any = None, *,
                     floor: float = 0.0, n_estimated: int | None = None) -> ThresholdResult:
    """Flag suspicious rows from self-influence scores.

    Parameters
    ----------
    scores : array-like, shape ``(n,)`` float
        Self-influence scores, finite and ``>= 0``; higher = more suspicious.
    spec : str or float, default ``"otsu"``
        - ``"estimate"``: exactly ``n_estimated`` top-scoring rows (ties by row order), the
          estimated number of mislabeled rows (``estimate.confident_joint_count``); needs
          ``n_estimated``.
        - ``"otsu"``: Otsu's threshold on log scores (256-bin histogram, the cut that maximises
          the between-class variance). Flags the upper class.
        - ``"gmm"``: a two-component :class:`sklearn.mixture.GaussianMixture` on log scores.
          ``p_issue`` is the posterior of the component with the higher mean, made monotone in
          the score (running max above the midpoint of the two means, running min below it,
          because with unequal variances the wider component wins in both far tails);
          ``is_issue = p_issue > 0.5``.
        - ``"quantile:q"``: rows with score above ``numpy.quantile(scores, q)`` (linear
          interpolation). Tied scores are all flagged or all not.
        - ``"budget:f"``: exactly ``floor(f * n + 0.5)`` rows, the highest scores, ties broken by
          row order (earlier row first).
        - a number (float or numeric string) ``>= 0``: rows with score above that value.

        With all scores equal, ``otsu`` and ``gmm`` flag nothing.
    random_state : int, RandomState instance or None
        Seed of the mixture fit (``gmm`` only); the same seed gives the same result.
    floor : float, default 0
        ``otsu`` and ``gmm`` only: rows with score ``<= floor`` are never flagged and are left out
        of the fit (when at least 10 rows lie above it). GEX scores pile up in a spike at about
        ``tau**2`` (rows every member fits to ~0 loss); without the floor, Otsu splits that spike
        from everything else instead of finding the mislabeled mode. The pipeline passes
        ``2 * tau**2``.
    n_estimated : int, optional
        The estimated number of mislabeled rows, for ``"estimate"``.

    Returns
    -------
    ThresholdResult
        ``value``, ``is_issue (n,) bool``, ``p_issue (n,) float64``, ``method``; see the class.

    Raises
    ------
    InvalidInputError
        Scores not 1-D, empty, non-finite or negative; a malformed ``spec``.
    InvalidTypeError
        Non-numeric scores; ``spec`` of the wrong type.
    """
    s = _check_scores(scores)
    parsed = parse_threshold(spec)
    log_s, eps = _log_scores(s)
    fit = s > floor
    if fit.sum() < 10:
        fit = np.ones(s.size, dtype=bool)
    if parsed.method == "otsu":
        is_issue = np.zeros(s.size, dtype=bool)
        is_issue[fit] = _otsu(log_s[fit])
        value = _cut_between(s, is_issue, eps)
        p = _logistic_p(log_s, value, eps)
    elif parsed.method == "gmm":
        p = np.zeros(s.size, dtype=np.float64)
        p[fit] = _gmm_posterior(log_s[fit], random_state)
        is_issue = p > 0.5
        value = _cut_between(s, is_issue, eps)
    elif parsed.method == "quantile":
        value = float(np.quantile(s, parsed.param))
        is_issue = s > value
        p = _logistic_p(log_s, value, eps)
    elif parsed.method == "budget":
        is_issue, value = _budget(s, parsed.param)
        p = _logistic_p(log_s, value, eps)
    elif parsed.method == "estimate":
        if isinstance(n_estimated, bool) or not isinstance(n_estimated, numbers.Integral) or not 0 <= n_estimated <= s.size:
            raise InvalidInputError(
                f"threshold 'estimate' needs the estimated number of mislabeled rows, an integer in 0..{s.size}; "
                f"found {n_estimated!r}. Pass n_estimated (estimate.confident_joint_count), or use another threshold."
            )
        is_issue, value = _budget(s, int(n_estimated) / s.size if s.size else 0.0)
        p = _logistic_p(log_s, value, eps)
    else:  # "value"
        value = float(parsed.param)
        is_issue = s > value
        p = _logistic_p(log_s, value, eps)
    is_issue = np.asarray(is_issue, dtype=bool)
    p = np.asarray(p, dtype=np.float64)
    is_issue.setflags(write=False)
    p.setflags(write=False)
    logger.info(
        "threshold %s: value=%.6g, %d of %d rows flagged", parsed.method, value, int(is_issue.sum()), s.size
    )
    return ThresholdResult(value=float(value), is_issue=is_issue, p_issue=p, method=parsed.method,
                           n_estimated=int(n_estimated) if parsed.method == "estimate" else None)


# --------------------------------------------------------------------------------------------
# Actions
# --------------------------------------------------------------------------------------------


def _priority(idx: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``idx`` ordered by drop priority: highest score first, ties to the earlier row."""
    return idx[np.lexsort((idx, -scores[idx]))]


def _apply_drop_caps(
    action: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    max_fraction_per_class: float | None,
    max_drop_fraction: float | None,
) -> None:
    """Flip the lowest-priority removals to keep where a cap binds (in place).

    Per class, rows leaving it count against the cap: drops and relabels to another class (a class
    relabeled away wholesale would be emptied just the same). The global cap counts drops only.
    """
    for c in np.unique(labels):
        in_c = labels == c
        n_c = int(in_c.sum())
        allowed = n_c - 1  # never empty a class
        if max_fraction_per_class is not None:
            allowed = min(allowed, int(math.floor(max_fraction_per_class * n_c + _FLOOR_TOL)))
        drops = np.flatnonzero(in_c & np.isin(action, ("drop", "relabel")))
        if drops.size > allowed:
            action[_priority(drops, scores)[allowed:]] = "keep"
            logger.info(
                "per-class cap on class %s: %d rows flagged for drop, %d allowed (of %d rows); "
                "the %d lowest-scoring are kept", c, drops.size, allowed, n_c, drops.size - allowed,
            )
    if max_drop_fraction is not None:
        allowed = int(math.floor(max_drop_fraction * scores.size + _FLOOR_TOL))
        drops = np.flatnonzero(action == "drop")
        if drops.size > allowed:
            action[_priority(drops, scores)[allowed:]] = "keep"
            logger.info(
                "global drop cap: %d rows flagged for drop, %d allowed; the %d lowest-scoring are kept",
                drops.size, allowed, drops.size - allowed,
            )


def decide(
    scores: Any,
    given_labels: Any,
    *,
    threshold: Any = "otsu",
    action: str = "drop",
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
) -> Decisions:
    """Turn self-influence scores into one decision per row.

    Parameters
    ----------
    scores : array-like, shape ``(n,)`` float
        Self-influence scores, finite and ``>= 0``; higher = more suspicious.
    given_labels : array-like, shape ``(n,)`` int
        Labels as given, class indices ``0..K-1``.
    threshold : str or float, default ``"otsu"``
        Which rows are flagged (``is_issue``); see :func:`choose_threshold`.
    action : {"drop", "relabel", "reweight", "none"}, default ``"drop"``
        - ``"drop"``: flagged rows get ``drop``, subject to the caps below.
        - ``"relabel"``: flagged rows that pass ``relabel_rule`` get ``relabel`` (to
          ``suggested_label``); other flagged rows get ``relabel_fallback``. Needs ``proba``.
        - ``"reweight"``: flagged rows get ``weight = clip(1 - p_issue, min_weight, 1)`` (at most
          0.5, since their ``p_issue >= 0.5``) and action ``reweight``; the others keep weight 1.0
          and action ``keep``. The weight is non-increasing in the score.
        - ``"none"``: score only; ``is_issue`` is computed, every action is ``keep``.
    proba : array-like, shape ``(n, K)`` float, optional
        Class probabilities averaged over ensemble members; rows sum to 1 (within 1e-3).
        ``suggested_label`` is its argmax (first class on ties); without it, the given label.
    row_ids : array-like, shape ``(n,)``, optional
        Unique ids, default ``0..n-1``.
    min_agreement : float in [0, 1], default 0.5
        ``relabel_rule="argmax"``: relabel a flagged row only when the suggested label differs from
        the given one and ``proba[row, suggested] >= min_agreement``.
    relabel_fallback : {"drop", "keep"}, default ``"drop"``
        Action of flagged rows that are not relabeled.
    relabel_rule : {"argmax", "soft"}, default ``"argmax"``
        ``"argmax"``: the rule above. ``"soft"``: relabel a flagged row when
        ``proba[row, given] < 1 / K`` (the ensemble gives the given label less than chance),
        to the argmax; ``min_agreement`` is not used.
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
        Passed to :func:`choose_threshold` as ``floor`` (``otsu`` and ``gmm``).
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

    Returns
    -------
    Decisions
        ``table`` (one row per input row, in input order) and the ``threshold`` used.

    Raises
    ------
    InvalidInputError
        Bad scores (not 1-D, empty, NaN, negative), lengths that differ between scores, labels,
        proba and row_ids, proba of the wrong shape or not summing to 1, labels outside
        ``0..K-1``, duplicate row ids, an unknown action, ``relabel`` without ``proba``, an
        out-of-range parameter.
    InvalidTypeError
        Non-numeric scores, labels or proba; a parameter of the wrong type.
    """
    s = _check_scores(scores)
    n = s.size
    action = _check_choice(action, "action", ACTIONS)
    relabel_fallback = _check_choice(relabel_fallback, "relabel_fallback", ("drop", "keep"))
    relabel_rule = _check_choice(relabel_rule, "relabel_rule", ("argmax", "soft"))
    min_agreement = _check_fraction(min_agreement, "min_agreement")
    max_fraction_per_class = _check_fraction(max_fraction_per_class, "max_fraction_per_class", allow_none=True)
    max_drop_fraction = _check_fraction(max_drop_fraction, "max_drop_fraction", allow_none=True)
    min_weight = _check_fraction(min_weight, "min_weight", low_open=True)

    labels_in = np.asarray(given_labels.detach().cpu().numpy() if hasattr(given_labels, "detach") else given_labels)
    if labels_in.ndim == 1 and labels_in.shape[0] != n:
        raise InvalidInputError(
            f"given_labels must have one label per score: expected {n}, found {labels_in.shape[0]}."
        )
    if action == "relabel" and proba is None:
        raise InvalidInputError(
            "action='relabel' needs proba (n_samples, n_classes): the class probabilities averaged over "
            "ensemble members; found proba=None. Pass proba, or use action='drop' or 'reweight'."
        )
    P = _check_proba(proba, n) if proba is not None else None
    y, _ = check_labels(labels_in, n_classes=None if P is None else P.shape[1], name="given_labels")
    ids = _check_row_ids(row_ids, n)

    gi = np.full(n, np.nan) if gex_influence is None else _check_scores(gex_influence, name="gex_influence")
    if gi.shape[0] != n:
        raise InvalidInputError(f"gex_influence must have one value per score: expected {n}, found {gi.shape[0]}.")
    thr = choose_threshold(s, threshold, random_state=random_state, floor=score_floor, n_estimated=n_estimated)
    flagged = np.asarray(thr.is_issue)
    actionable = flagged if eligible is None else flagged & _check_mask(eligible, n, "eligible")
    suggested = np.argmax(P, axis=1).astype(np.int64) if P is not None else y.copy()
    act = np.full(n, "keep", dtype=object)
    weight = np.ones(n, dtype=np.float64)

    if action == "drop":
        act[actionable] = "drop"
    elif action == "relabel":
        rows = np.arange(n)
        if relabel_rule == "argmax":
            ok = (suggested != y) & (P[rows, suggested] >= min_agreement)
        else:  # soft: the given label gets less than chance
            ok = P[rows, y] < 1.0 / P.shape[1]
        act[actionable & ok] = "relabel"
        act[actionable & ~ok] = relabel_fallback
    elif action == "reweight":
        # only flagged rows are down-weighted: the table's weights are the weights written out
        weight = np.where(actionable, np.clip(1.0 - np.asarray(thr.p_issue), min_weight, 1.0), 1.0)
        act[actionable] = "reweight"
    # action == "none": all keep

    if action in ("drop", "relabel"):
        _apply_drop_caps(act, s, y, max_fraction_per_class, max_drop_fraction)

    table = pd.DataFrame(
        {
            "row_id": ids,
            "score": s,
            "gex_influence": gi,
            "label_quality": label_quality(s),
            "is_issue": flagged.copy(),
            "action": act.astype(str),
            "given_label": y,
            "suggested_label": suggested,
            "weight": weight,
        },
        columns=list(TABLE_COLUMNS),
    )
    logger.info(
        "decisions (%s): %s", action, {a: int((act == a).sum()) for a in ROW_ACTIONS if (act == a).any()}
    )
    return Decisions(table=table, threshold=thr)


__all__ = [
    "ACTIONS", "DEFAULT_THRESHOLD", "Decisions", "ROW_ACTIONS", "TABLE_COLUMNS", "THRESHOLD_METHODS", "ThresholdResult",
    "ThresholdSpec", "choose_threshold", "decide", "parse_threshold",
]

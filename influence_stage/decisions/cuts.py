"""The numeric cuts behind the threshold methods: log scores with a floor tied to their scale,
Otsu's split, a two-component mixture's posterior, a budget, and the cut between two groups.

Separate from ``thresholds`` (the registered methods that choose among them) so each module has one job.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Histogram bins of Otsu's method.
OTSU_BINS = 256
#: Percentile of the positive scores used as the log floor ``eps``.
LOG_FLOOR_PERCENTILE = 1.0


def log_scores(scores: np.ndarray) -> tuple[np.ndarray, float]:
    """``log(max(scores, eps))`` and ``eps`` (the 1st percentile of the positive scores)."""
    positive = scores[scores > 0]
    eps = float(np.percentile(positive, LOG_FLOOR_PERCENTILE)) if positive.size else 1.0
    return np.log(np.maximum(scores, eps)), eps


def robust_scale(x: np.ndarray) -> float:
    q25, q75 = np.percentile(x, [25.0, 75.0])
    scale = (q75 - q25) / 1.349  # IQR of a standard normal
    if not scale > 0:
        scale = float(np.std(x))
    return float(scale) if scale > 0 else 1.0


def logistic_p(log_s: np.ndarray, value: float, eps: float) -> np.ndarray:
    """Logistic in log score centred at ``log(max(value, eps))``; bounded in [0, 1], non-decreasing."""
    centre = math.log(max(value, eps))
    z = (log_s - centre) / robust_scale(log_s)
    # tanh form: no overflow for large |z|
    return np.clip(0.5 * (1.0 + np.tanh(0.5 * z)), 0.0, 1.0)


def cut_between(scores: np.ndarray, is_issue: np.ndarray, eps: float) -> float:
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


def otsu_cut(log_s: np.ndarray, bins: int = OTSU_BINS) -> np.ndarray:
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


def gmm_posterior(log_s: np.ndarray, random_state: Any) -> np.ndarray:
    """Monotone P(issue) from a two-component Gaussian mixture on log scores."""
    if log_s.size < 2 or not np.ptp(log_s) > 0:
        return np.zeros(log_s.shape, dtype=np.float64)
    from sklearn.mixture import GaussianMixture  # imported on use: the CLI and config read this module
    from sklearn.utils import check_random_state

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


def budget_cut(scores: np.ndarray, f: float) -> tuple[np.ndarray, float]:
    """Exactly ``floor(f n + 0.5)`` top-scoring rows; ties in score go to the earlier row."""
    n = scores.size
    k = int(math.floor(f * n + 0.5))
    order = np.lexsort((np.arange(n), -scores))  # by score descending, then row order
    is_issue = np.zeros(n, dtype=bool)
    is_issue[order[:k]] = True
    value = float(scores[order[k - 1]]) if k > 0 else float(scores.max())
    return is_issue, value

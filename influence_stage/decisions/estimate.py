"""How many rows carry a wrong label, estimated without ground truth.

The default threshold (``"estimate"``) flags that many rows, the highest-ranked ones: a threshold
should flag about as many rows as are actually wrong, not cut at a histogram valley.

- ``both_count`` (the default, ``GEXConfig.estimate_count="both"``): the rows cleanlab's
  ``find_label_issues`` flags under ``filter_by="both"`` on the cross-fitted out-of-sample
  probabilities that the automatic scale's yardstick already trained: rows whose predicted class is
  another one and that both the per-class and the noise-rate pruning select.
- ``confident_joint_count`` (``estimate_count="confident_joint"``, the default before): the number of off-diagonal entries of the confident
  joint of the cross-fitted out-of-sample probabilities that the automatic scale's yardstick
  already trained (confident learning, computed by cleanlab's ``count.num_label_issues``). Rows are
  counted as wrong only where a model that never saw them is more confident in another class than
  that class's own average self-confidence.
- A bound by the rows θ* fitted with a negative mean training margin was measured on the default path
  and rejected (``benchmarks/results/estimate_margin_bound.md``): it removes most clean-label flags on
  weak features, but an MLP that memorises flipped rows gives them a positive mean margin too, so it
  cuts real label errors on digits.
- ``weak_model_count``: the count when the cross-fitted model is not reliable (either setting), the
  midpoint of the confident joint of its probabilities alone (an over-count: its own errors count
  as label errors) and of their mean with the members' probabilities (an under-count: the members
  remember the wrong labels).
- ``mixture_count``: the expected size of the upper component of a two-component Gaussian
  mixture on the log of a score (a posterior sum); kept for comparison in the detection benchmark,
  where it over-counts on every setting.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from influence_stage.errors import InvalidInputError


def _check(labels: Any, proba: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels)
    P = np.asarray(proba, dtype=np.float64)
    if P.ndim != 2 or y.ndim != 1 or P.shape[0] != y.shape[0] or P.shape[1] < 2:
        raise InvalidInputError(f"labels (n,) and out-of-sample probabilities (n, K >= 2) must match; found "
                                f"{y.shape} and {P.shape}.")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= P.shape[1]:
        raise InvalidInputError(f"labels must be class codes 0..{P.shape[1] - 1}.")
    return y.astype(np.int64), P


def confident_joint_count(labels: Any, oos_proba: Any) -> int:
    """Estimated number of mislabeled rows: off-diagonal count of the confident joint.

    Parameters
    ----------
    labels : ``(n_samples,)`` int, the given labels as codes ``0..K-1``
    oos_proba : ``(n_samples, K)`` float, out-of-sample class probabilities (rows never seen by the
        model that predicted them)

    Returns
    -------
    int in ``[0, n_samples]``
    """
    from cleanlab.count import num_label_issues

    return _count_present(labels, oos_proba, num_label_issues)


def both_count(labels: Any, oos_proba: Any) -> int:
    """Estimated number of mislabeled rows: the rows cleanlab's ``find_label_issues`` flags under
    ``filter_by="both"`` (flagged by pruning both per class and by the noise rate) on out-of-sample
    probabilities. The default (``GEXConfig.estimate_count="both"``): the confident joint's count is low
    where the cross-fitted model is strong, and cutting the ranking here instead flagged more of the
    wrong labels and fewer correct ones on digits and images, though more correct ones on weak features
    (``benchmarks/RESULTS.md``).

    Parameters
    ----------
    labels : ``(n_samples,)`` int, the given labels as codes ``0..K-1``
    oos_proba : ``(n_samples, K)`` float, out-of-sample class probabilities

    Returns
    -------
    int in ``[0, n_samples]``
    """
    return _count_present(labels, oos_proba, lambda y, P: label_issue_flags(y, P, filter_by="both").sum())


#: cleanlab's ``find_label_issues`` keeps its per-class inputs in module globals when it runs in process, so
#: two calls at once (two fits in threads of one process: Prefect's or Dask's thread runners) corrupt each
#: other's; ``label_issue_flags`` holds this lock.
_CLEANLAB_LOCK = threading.Lock()


def label_issue_flags(labels: Any, pred_probs: Any, **kwargs: Any) -> np.ndarray:
    """cleanlab's ``find_label_issues(labels, pred_probs, **kwargs)`` as the package calls it everywhere: in
    this process (``n_jobs=1``: its default forks a pool, which deadlocks inside a threaded host such as a
    Prefect task or a Dask worker) and one call at a time (``_CLEANLAB_LOCK``). The flags are the same
    either way; ``(n,) bool``."""
    from cleanlab.filter import find_label_issues

    with _CLEANLAB_LOCK:
        return find_label_issues(labels, pred_probs, n_jobs=1, **kwargs)


#: ``GEXConfig.estimate_count`` -> the count of a reliable cross-fitted model's probabilities.
ESTIMATE_COUNTS = {"confident_joint": confident_joint_count, "both": both_count}


def _count_present(labels: Any, proba: Any, count) -> int:
    """``count(y, P)`` on the classes given at least once (``_present_classes``); 0 with fewer than two."""
    y, P, present = _present_classes(*_check(labels, proba))
    return 0 if present.size < 2 else int(count(y, P))


def weak_model_count(labels: Any, oos_proba: Any, member_proba: Any) -> int:
    """Estimated number of mislabeled rows when the cross-fitted model is weak (``engine.auxiliary``).

    The midpoint of two counts that bracket the truth: the confident joint of the cross-fitted
    probabilities alone over-counts (a weak model's own errors count as label errors), the
    confident joint of their mean with the members' probabilities under-counts (the members trained
    on every row and remember the wrong labels). Measured against either count alone in
    ``benchmarks/results/weak_model_estimate.md``.

    Parameters
    ----------
    labels : ``(n_samples,)`` int, the given labels as codes ``0..K-1``
    oos_proba : ``(n_samples, K)`` float, the cross-fitted out-of-sample probabilities
    member_proba : ``(n_samples, K)`` float, the members' mean probabilities (in-sample)

    Returns
    -------
    int in ``[0, n_samples]``
    """
    upper = confident_joint_count(labels, oos_proba)
    lower = confident_joint_count(labels, (np.asarray(member_proba, dtype=np.float64)
                                           + np.asarray(oos_proba, dtype=np.float64)) / 2)
    return int(round((upper + lower) / 2))


def class_noise_share(labels: Any, oos_proba: Any, n_classes: int, count: str) -> np.ndarray:
    """``(n_classes,) float64``: per given class, the share of its rows counted as wrong by ``count``
    (``GEXConfig.estimate_count``).

    ``"both"``: the rows of class k that cleanlab's ``find_label_issues(filter_by="both")`` flags, over
    the rows of class k; weighted by the class sizes the shares sum to ``both_count``. ``"confident_joint"``:
    the rows of class k that a model which never saw them puts confidently in another class
    (``cleanlab.count.compute_confident_joint``, uncalibrated), over the rows of class k; their weighted
    sum can exceed ``confident_joint_count`` by a few rows, which ``num_label_issues`` trims. NaN for a
    class no row is given.
    """
    if count not in ESTIMATE_COUNTS:
        raise InvalidInputError(f"count must be one of {sorted(ESTIMATE_COUNTS)}; got {count!r}.")
    y, P, present = _present_classes(*_check(labels, oos_proba))
    share = np.full(n_classes, np.nan)
    if present.size < 2:
        share[present] = 0.0
        return share
    sizes = np.bincount(y, minlength=present.size)
    if count == "both":
        wrong = np.bincount(y[label_issue_flags(y, P, filter_by="both")], minlength=present.size)
    else:
        from cleanlab.count import compute_confident_joint

        joint = compute_confident_joint(y, P, calibrate=False)
        wrong = joint.sum(axis=1) - np.diag(joint)
    share[present] = wrong / sizes
    return share


def _present_classes(y: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels recoded onto the classes given at least once, their renormalised probabilities, and those
    classes: cleanlab needs every class of ``P`` to be given."""
    present = np.unique(y)
    if present.size == P.shape[1]:
        return y, P, present
    P = P[:, present]
    return np.searchsorted(present, y), P / P.sum(axis=1, keepdims=True), present


def mixture_count(score: Any, random_state: int = 0) -> int:
    """Expected number of rows in the upper component of a 2-Gaussian mixture on ``log(score)``."""
    s = np.asarray(score, dtype=np.float64)
    positive = s[s > 0]
    if positive.size < 2 or not np.ptp(positive) > 0:
        return 0
    from sklearn.mixture import GaussianMixture

    x = np.log(np.maximum(s, np.percentile(positive, 1.0))).reshape(-1, 1)
    gm = GaussianMixture(n_components=2, random_state=random_state).fit(x)
    hi = int(np.argmax(gm.means_[:, 0]))
    return int(round(float(gm.predict_proba(x)[:, hi].sum())))


__all__ = ["ESTIMATE_COUNTS", "both_count", "class_noise_share", "confident_joint_count", "label_issue_flags",
           "mixture_count", "weak_model_count"]

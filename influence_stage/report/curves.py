"""Figures against a ground truth: the precision-recall curve of the scores, and the distributional
bias of several scores (where the true issues fall in each score's distribution).

Drawn with ``matplotlib.figure.Figure`` and an Agg canvas, never ``pyplot``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
)

from influence_stage._checks import check_mask, check_positive_int, check_scores
from influence_stage.errors import InvalidInputError, InvalidTypeError
from influence_stage.report.common import (
    CLEAN_COLOR,
    ISSUE_COLOR,
    check_threshold,
    check_truth,
    new_figure,
    precision_recall_at,
)

logger = logging.getLogger(__name__)


def plot_precision_recall(scores: Any, truth: Any, threshold: float | None = None, *, flagged: Any = None,
                          score_name: str | None = None) -> Figure:
    """Precision / recall curve of the scores against a ground-truth mask, with AP in the legend.

    Parameters
    ----------
    scores : array-like, shape ``(n,)`` float
        Self-influence scores, higher = more suspicious.
    truth : array-like, shape ``(n,)`` bool
        Truly mislabeled rows; at least one.
    threshold : float, optional
        When given without ``flagged``, the operating point of ``scores > threshold`` is marked
        (``gid="operating_point"``) with its precision and recall.
    flagged : array-like, shape ``(n,)`` bool, optional
        The rows the run flagged (``is_issue``). When given, the operating point is theirs,
        computed by ``influence_stage.report.precision_recall_at`` like the report's table
        (per-class caps and ties can make it differ from ``scores > threshold``).
    score_name : str, optional
        The ranking the scores are (the run's score name); it names the curve. None reads "score".

    Returns
    -------
    matplotlib.figure.Figure
        One axes: recall on x, precision on y; the curve's legend label is
        ``"<score_name> (AP = <ap>)"`` with ``ap`` = ``sklearn.metrics.average_precision_score``
        to 3 decimals.
    """
    s = check_scores(scores)
    t = check_truth(truth, s.size)
    precision, recall, _ = precision_recall_curve(t, s)
    ap = float(average_precision_score(t, s))

    fig = new_figure(5.5, 4.5)
    ax = fig.add_subplot()
    name = "score" if score_name is None else str(score_name)
    ax.plot(recall, precision, drawstyle="steps-post", color=CLEAN_COLOR, label=f"{name} (AP = {ap:.3f})")
    prevalence = float(t.mean())
    ax.axhline(prevalence, color="#9e9e9e", linestyle=":", label=f"chance (prevalence {prevalence:.3f})")
    point = None
    if flagged is not None:
        mask = check_mask(flagged, s.size, "flagged")
        point = precision_recall_at(mask, t)[:2], f"flagged rows ({int(mask.sum())})"
    elif threshold is not None:
        thr = check_threshold(threshold)
        point = precision_recall_at(s > thr, t)[:2], f"threshold {thr:.3g}"
    if point is not None:
        (p, r), what = point
        if not math.isnan(p):
            ax.plot([r], [p], marker="o", markersize=8, color=ISSUE_COLOR, linestyle="none",
                    gid="operating_point", label=f"{what}: P = {p:.3f}, R = {r:.3f}")
        else:
            logger.info("no row flagged (%s); no operating point drawn", what)
    ax.set_xlim(0.0, 1.02)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("Precision / recall vs ground truth")
    ax.legend(loc="lower left", fontsize="small")
    return fig


def check_bias_inputs(scores: Any, truth: Any) -> tuple[list[tuple[str, np.ndarray]], np.ndarray]:
    """Check the inputs of ``plot_distributional_bias``; return ``[(method, scores)]`` and the mask.

    Raises
    ------
    InvalidTypeError
        ``scores`` is not a mapping; a method's scores or ``truth`` are not numeric / boolean.
    InvalidInputError
        No method; a method's scores not 1-D, of another length than ``truth``, non-finite or
        negative; ``truth`` with no mislabeled or no clean row.
    """
    if not isinstance(scores, Mapping):
        raise InvalidTypeError(
            f"scores must be a mapping of method name to per-row scores, e.g. {{'GEX': gex_scores}}; "
            f"found {type(scores).__name__}."
        )
    if len(scores) == 0:
        raise InvalidInputError(
            "scores is empty (no method); give at least one method name → per-row scores entry."
        )
    t_arr = np.asarray(truth.to_numpy() if isinstance(truth, pd.Series) else truth)
    if t_arr.ndim != 1:
        raise InvalidInputError(f"truth must be 1-D, one entry per row; found shape {t_arr.shape}.")
    t = check_mask(t_arr, t_arr.shape[0], "truth")
    if not t.any():
        raise InvalidInputError(
            "truth marks no row as mislabeled; AUROC and AP need at least one mislabeled and one clean row."
        )
    if t.all():
        raise InvalidInputError(
            "truth marks every row as mislabeled (no clean row); AUROC and AP need at least one "
            "mislabeled and one clean row."
        )
    checked = []
    for key, values in scores.items():
        name = str(key)
        s = check_scores(values, name=f"scores[{name!r}]", n=t.shape[0], aligned_with="truth")
        checked.append((name, s))
    return checked, t


def plot_distributional_bias(scores: Mapping[str, Any], truth: Any, *, bins: int = 40) -> Figure:
    """Per self-influence estimator, the log-score histograms of clean and truly mislabeled rows.

    An estimator is distributionally biased when its scores of clean and mislabeled rows come from
    overlapping distributions (a single mode, ruled by something else than the label, such as the
    gradient norm): no threshold then separates the groups. One panel per method makes that visible
    side by side, with the ranking quality of the raw scores in each title.

    Parameters
    ----------
    scores : mapping of str to array-like, each shape ``(n,)`` float
        Method name → its self-influence scores, finite and ``>= 0``, aligned with ``truth``. One
        panel per entry, in the mapping's order.
    truth : array-like, shape ``(n,)`` bool
        Truly mislabeled rows; at least one mislabeled and one clean row.
    bins : int, default 40
        Number of equal-width bins in ``log10`` of the score, shared by the two groups of a panel.

    Returns
    -------
    matplotlib.figure.Figure
        Exactly ``len(scores)`` axes (three per row of panels), in the mapping's order. Each axes
        overlays the histograms of ``log10(max(score, floor))`` of the clean and of the truly
        mislabeled rows, each normalised to unit area so that the small mislabeled group stays
        visible; ``floor`` is the 1st percentile of the method's positive scores (1.0 when none is
        positive), so zeros and tiny scores sit in the lowest bins instead of stretching the axis.
        Titles read ``"<method>: AUROC <a> · AP <p>"`` with
        ``sklearn.metrics.roc_auc_score`` and ``sklearn.metrics.average_precision_score``
        of the raw scores against ``truth``, to 3 decimals.

    Raises
    ------
    InvalidTypeError
        ``scores`` is not a mapping; non-numeric scores; ``truth`` not boolean (or 0/1).
    InvalidInputError
        An empty mapping; a method's scores not 1-D, of another length than ``truth``, non-finite or
        negative; ``truth`` with no mislabeled or no clean row.
    """
    methods, t = check_bias_inputs(scores, truth)
    bins = check_positive_int(bins, "bins")
    n_bad, n_clean = int(t.sum()), int((~t).sum())

    ncols = min(len(methods), 3)
    nrows = math.ceil(len(methods) / ncols)
    fig = new_figure(4.4 * ncols, 3.4 * nrows)
    for k, (name, s) in enumerate(methods):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        pos = s[s > 0]
        floor = float(np.percentile(pos, 1)) if pos.size else 1.0
        x = np.log10(np.maximum(s, floor))
        lo, hi = float(x.min()), float(x.max())
        if hi - lo < 1e-12:  # one value: give the bins a width
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, bins + 1)
        ax.hist(x[~t], bins=edges, density=True, histtype="stepfilled", alpha=0.5, color=CLEAN_COLOR,
                edgecolor=CLEAN_COLOR, label=f"clean ({n_clean})")
        ax.hist(x[t], bins=edges, density=True, histtype="stepfilled", alpha=0.5, color=ISSUE_COLOR,
                edgecolor=ISSUE_COLOR, label=f"truly mislabeled ({n_bad})")
        auroc = float(roc_auc_score(t, s))
        ap = float(average_precision_score(t, s))
        ax.set_title(f"{name}: AUROC {auroc:.3f} · AP {ap:.3f}", fontsize="medium", parse_math=False)
        n_floored = int((s < floor).sum())
        ax.set_xlabel("log10(score)" + (f"; {n_floored} rows floored at the 1st percentile" if n_floored else ""))
        ax.set_ylabel("density")
        ax.legend(loc="best", fontsize="small")
    fig.suptitle("Self-influence of clean vs truly mislabeled rows")
    return fig


__all__ = ["check_bias_inputs", "plot_distributional_bias", "plot_precision_recall"]

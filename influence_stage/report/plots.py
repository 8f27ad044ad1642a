"""The report's figures, drawn from the decisions table (and a ground-truth mask where one exists).

Figures are made with ``matplotlib.figure.Figure`` and an Agg canvas, never with ``pyplot``: no
global figure registry, no backend switch, safe in worker threads and under any ``MPLBACKEND``.
Every user string that goes into a figure is drawn with ``parse_math=False`` (a class name with
``$`` must not be parsed as TeX).

This module draws the score histogram and the issues per class; the gallery figure is in
``influence_stage.report.gallery_figure`` and the curves against a ground truth (precision-recall,
distributional bias) in ``influence_stage.report.curves``. Every name still imports from here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from influence_stage._checks import check_mask, check_positive_int, check_scores
from influence_stage.decisions.schema import ROW_ACTIONS, check_table
from influence_stage.engine.scores import RANK_SCORES
from influence_stage.report.common import (
    ACTION_COLORS,
    CLEAN_COLOR,
    ISSUE_COLOR,
    check_threshold,
    log_floor,
    new_figure,
)

logger = logging.getLogger(__name__)


def plot_score_histogram(
    scores: Any, threshold: float | None, is_issue: Any = None, truth: Any = None, *, bins: int = 60,
    score_name: str | None = None,
) -> Figure:
    """Histogram of the scores with the threshold marked: a log x-axis for GEX-scale scores, a linear
    one for the rank scores (means of percentile ranks in (0, 1], where a log axis would mislead).

    Parameters
    ----------
    scores : array-like, shape ``(n,)`` float
        Self-influence scores, finite and ``>= 0``. Zeros are drawn at half the smallest positive
        score (a log axis has no zero); the x label says so when there are any.
    threshold : float or None
        The cut-off on these scores that flagged the rows, finite and ``>= 0``; drawn as a vertical
        line (``gid="threshold"``) at ``max(threshold, floor)``, labelled
        ``"threshold = <t> on <score> (<n> flagged)"``. None: the rows were not flagged by a cut on
        these scores (e.g. the exact GEX score of a run that ranks by a rank score), and no line is drawn.
    is_issue : array-like, shape ``(n,)`` bool, optional
        Flagged rows. Without ``truth`` the histogram is split into flagged and not flagged;
        the flagged count in the threshold label comes from it (else ``scores > threshold``).
    truth : array-like, shape ``(n,)`` bool, optional
        Truly mislabeled rows (demos / benchmarks). When given the histogram is two stacked groups,
        "truly mislabeled" and "clean"; it takes precedence over ``is_issue`` for the split.
    bins : int, default 60
        Number of bins (log-spaced on the log axis).
    score_name : str, optional
        The name of these scores (``scores.SCORES``), used in the title, axis label and threshold
        label. None or a GEX-scale name: a log axis (None reads "GEX self-influence"); a rank
        score: a linear axis on [0, 1].

    Returns
    -------
    matplotlib.figure.Figure
        One axes, x scale ``"log"`` (``"linear"`` for a rank score).
    """
    s = check_scores(scores)
    thr = None if threshold is None else check_threshold(threshold)
    if score_name in RANK_SCORES:
        return _rank_histogram(s, thr, is_issue, truth, check_positive_int(bins, "bins"), str(score_name))
    bins = check_positive_int(bins, "bins")
    flagged = _flagged(s, thr, is_issue)
    t = check_mask(truth, s.size, "truth") if truth is not None else None
    name = "GEX self-influence" if score_name is None else str(score_name)

    floor = log_floor(s)
    x = np.maximum(s, floor)
    thr_x = floor if thr is None else max(thr, floor)
    lo, hi = float(min(x.min(), thr_x)), float(max(x.max(), thr_x))
    if hi <= lo * 1.0001:  # all scores equal: widen so the bins have a width
        lo, hi = lo / 2.0, hi * 2.0
    edges = np.geomspace(lo, hi * 1.0001, bins + 1)

    fig = new_figure(7.0, 3.8)
    ax = fig.add_subplot()
    if t is not None:
        ax.hist(
            [x[~t], x[t]], bins=edges, stacked=True, color=[CLEAN_COLOR, ISSUE_COLOR],
            label=[f"clean ({int((~t).sum())})", f"truly mislabeled ({int(t.sum())})"],
        )
    elif is_issue is not None:
        ax.hist(
            [x[~flagged], x[flagged]], bins=edges, stacked=True, color=[CLEAN_COLOR, ISSUE_COLOR],
            label=[f"not flagged ({int((~flagged).sum())})", f"flagged ({int(flagged.sum())})"],
        )
    else:
        ax.hist(x, bins=edges, color=CLEAN_COLOR, label=f"rows ({s.size})")
    if thr is not None:
        ax.axvline(thr_x, color="black", linestyle="--", linewidth=1.5, gid="threshold",
                   label=_threshold_label(thr, name, flagged))
    ax.set_xscale("log")
    n_zero = int((s == 0).sum())
    ax.set_xlabel(
        f"score: {name} (log scale)"
        + (f"; {n_zero} zero score(s) drawn at {floor:.2g}" if n_zero else ""), parse_math=False,
    )
    ax.set_ylabel("rows")
    ax.set_title(f"Scores: {name}", parse_math=False)
    ax.legend(loc="upper right", fontsize="small")
    return fig


def _flagged(s: np.ndarray, thr: float | None, is_issue: Any) -> np.ndarray:
    """The flagged rows: ``is_issue`` when given, else ``s > thr`` (none without a threshold)."""
    if is_issue is not None:
        return check_mask(is_issue, s.size, "is_issue")
    return s > thr if thr is not None else np.zeros(s.size, dtype=bool)


def _threshold_label(thr: float, name: str, flagged: np.ndarray) -> str:
    """The legend entry of a threshold line: its value, the score it cuts and the rows it flagged."""
    return f"threshold = {thr:.3g} on {name} ({int(flagged.sum())} flagged)"


def _rank_histogram(s: np.ndarray, thr: float | None, is_issue: Any, truth: Any, bins: int,
                    score_name: str) -> Figure:
    """``plot_score_histogram`` for a rank score: linear axis on [0, 1]."""
    flagged = _flagged(s, thr, is_issue)
    t = check_mask(truth, s.size, "truth") if truth is not None else None
    edges = np.linspace(0.0, 1.0, bins + 1)
    fig = new_figure(7.0, 3.8)
    ax = fig.add_subplot()
    if t is not None:
        ax.hist([s[~t], s[t]], bins=edges, stacked=True, color=[CLEAN_COLOR, ISSUE_COLOR],
                label=[f"clean ({int((~t).sum())})", f"truly mislabeled ({int(t.sum())})"])
    else:
        ax.hist([s[~flagged], s[flagged]], bins=edges, stacked=True, color=[CLEAN_COLOR, ISSUE_COLOR],
                label=[f"not flagged ({int((~flagged).sum())})", f"flagged ({int(flagged.sum())})"])
    if thr is not None:
        ax.axvline(thr, color="black", linestyle="--", linewidth=1.5, gid="threshold",
                   label=_threshold_label(thr, score_name, flagged))
    ax.set_xlabel(f"score: {score_name} (mean percentile rank; 1 = most suspicious)", parse_math=False)
    ax.set_ylabel("rows")
    ax.set_title(f"Ranking score ({score_name})", parse_math=False)
    ax.legend(loc="upper left", fontsize="small")
    return fig


def plot_issues_per_class(table: pd.DataFrame, class_names: Sequence[str]) -> Figure:
    """Bar chart, per given class, of the rows flagged or acted on, stacked by action.

    A row counts when it is flagged (``is_issue``) or its action is not ``keep``; its bar segment is
    its action, so flagged rows that were kept (a binding drop cap, relabel fallback ``keep``)
    appear as ``keep (flagged)``. Every action that occurs among the counted rows is one series of
    ``len(class_names)`` bars (one per class, zero-height bars included); when no row counts, one
    all-zero ``flagged`` series.

    Parameters
    ----------
    table : pandas.DataFrame
        The decisions table (``row_id, score, is_issue, action, given_label, suggested_label, weight``).
    class_names : sequence of str
        ``class_names[k]`` names label ``k``.

    Returns
    -------
    matplotlib.figure.Figure
        One axes; ``ax.containers`` holds one bar container per series, each with one bar per class.
    """
    t, names = check_table(table, class_names)
    K = len(names)
    counted = t["is_issue"].to_numpy() | (t["action"].to_numpy() != "keep")
    given = t["given_label"].to_numpy()[counted]
    action = t["action"].to_numpy()[counted]

    fig = new_figure(max(5.0, min(0.45 * K + 2.0, 24.0)), 4.0)
    ax = fig.add_subplot()
    pos = np.arange(K)
    bottom = np.zeros(K)
    drawn = False
    for a in ROW_ACTIONS:
        in_a = action == a
        if not in_a.any():
            continue
        counts = np.bincount(given[in_a], minlength=K).astype(float)
        label = "keep (flagged)" if a == "keep" else a
        ax.bar(pos, counts, bottom=bottom, color=ACTION_COLORS[a], label=f"{label} ({int(counts.sum())})")
        bottom += counts
        drawn = True
    if not drawn:
        ax.bar(pos, np.zeros(K), color=ISSUE_COLOR, label="flagged (0)")
    ax.set_xticks(pos)
    ax.set_xticklabels(names, rotation=45 if K > 6 else 0, ha="right" if K > 6 else "center", parse_math=False)
    ax.set_xlabel("given class")
    ax.set_ylabel("rows flagged or acted on")
    ax.set_title("Issues per class, by action")
    ax.legend(fontsize="small")
    return fig


# The gallery figure (report.gallery_figure) and the ground-truth curves (report.curves) live in their
# own modules; their names stay importable from here.
from influence_stage.report.curves import (  # noqa: E402
    check_bias_inputs,
    plot_distributional_bias,
    plot_precision_recall,
)
from influence_stage.report.gallery_figure import _as_image, as_image, gallery_kind, plot_gallery  # noqa: E402,F401

__all__ = [
    "as_image", "check_bias_inputs", "gallery_kind", "plot_distributional_bias", "plot_gallery",
    "plot_issues_per_class", "plot_precision_recall", "plot_score_histogram",
]

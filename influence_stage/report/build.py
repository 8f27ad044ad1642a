"""Plots and the report of one cleaning run: figures, a self-contained HTML page, a markdown summary.

This module owns the step ``decisions → report``. It reads the decisions table (one row per input
row, columns ``row_id, score, gex_influence, label_quality, is_issue, action, given_label,
suggested_label, weight``, see :class:`influence_stage.decisions.decide.Decisions`) and draws:

- :func:`plot_score_histogram` — the scores on a log axis with the threshold; GEX self-influence is
  a mean of squares, so it spans orders of magnitude and mislabeled rows form their own high mode
  that only shows on a log axis;
- :func:`plot_issues_per_class` — rows flagged or acted on, per given class, split by action;
- :func:`plot_gallery` — the most suspicious rows (images or texts) with ``given → suggested``;
- :func:`plot_precision_recall` — precision / recall against a ground-truth mask (demos and
  benchmarks only: real data has no such mask);
- :func:`plot_distributional_bias` — per self-influence estimator, the log-score histograms of clean
  and truly mislabeled rows, to show which estimators separate the two groups (ground truth only).

Beside the figures, the report and the markdown summary list the flagged rows per
``(given label, suggested label)`` pair: which classes the flagged rows are suspected to belong to.

:func:`build_report` puts them into one HTML string with no external resources (figures are base64
PNGs, CSS is inline, scripts are forbidden by a Content-Security-Policy), :func:`write_report` saves
it, and :func:`summary_markdown` gives the short text used as a Prefect markdown artifact and printed
by ``make run``.

Figures are made with :class:`matplotlib.figure.Figure` and an Agg canvas, never with ``pyplot``: no
global figure registry, no backend switch, safe in worker threads and under any ``MPLBACKEND``.
Every user string that goes into a figure is drawn with ``parse_math=False`` (a class name with
``$`` must not be parsed as TeX), and every user string that goes into HTML or markdown is escaped.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
import numbers
import os
import re
import tempfile
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from influence_stage.errors import InvalidInputError, InvalidTypeError
from influence_stage._checks import check_mask, check_positive_int, check_scores
from influence_stage.decisions.schema import ROW_ACTIONS, check_table
from influence_stage.engine.scores import RANK_SCORES

logger = logging.getLogger(__name__)

#: Rows listed in the report's table of most suspicious rows.
TOP_ROWS = 50
#: Default number of cells of the gallery.
GALLERY_K = 24
#: Classes listed one by one in :func:`summary_markdown`; beyond this, the classes with most flagged rows.
MARKDOWN_MAX_CLASSES = 20
#: ``(given, suggested)`` pairs of flagged rows listed in :func:`summary_markdown`, the most frequent.
MARKDOWN_MAX_PAIRS = 10
#: ``(given, suggested)`` pairs of flagged rows listed in the HTML report, the most frequent.
REPORT_MAX_PAIRS = 50
#: Characters of a text shown in one gallery cell; longer texts are cut with an ellipsis.
GALLERY_TEXT_CHARS = 400
#: Characters of a class name in a gallery cell title (image cells, text cells); longer names are cut.
GALLERY_NAME_CHARS = (20, 36)
#: Resolution of the PNGs embedded in the report.
PNG_DPI = 100

#: Section titles of the HTML report, in order (``precision_recall`` only with ground truth,
#: ``gallery`` only with a gallery source, ``bias`` only with ground truth and bias scores,
#: ``gex_histogram`` only when the run ranks by a rank score).
SECTION_TITLES: dict[str, str] = {
    "summary": "Summary",
    "histogram": "Score distribution",
    "gex_histogram": "GEX self-influence distribution",
    "per_class": "Issues per class",
    "confusion": "Flagged rows: given → suggested label",
    "gallery": "Most suspicious rows",
    "precision_recall": "Precision / recall vs ground truth",
    "bias": "Distributional bias: clean vs mislabeled self-influence",
    "top_rows": f"Top {TOP_ROWS} rows by score",
}

# One colour per action, the same in every figure.
_ACTION_COLORS = {"keep": "#9e9e9e", "drop": "#d62728", "relabel": "#1f77b4", "reweight": "#ff7f0e"}
_CLEAN_COLOR = "#4c72b0"
_ISSUE_COLOR = "#dd8452"


# --------------------------------------------------------------------------------------------
# Input checks (report-specific: the decisions table as it arrives from policy or a manifest)
# --------------------------------------------------------------------------------------------


def _check_threshold(threshold: Any) -> float:
    """Return the threshold as a finite float ``>= 0``."""
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise InvalidTypeError(
            f"threshold must be a number (the score cut-off, e.g. Decisions.threshold.value); "
            f"found {type(threshold).__name__}."
        )
    t = float(threshold)
    if not math.isfinite(t) or t < 0:
        raise InvalidInputError(f"threshold must be finite and >= 0; found {threshold!r}.")
    return t


def _check_truth(truth: Any, n: int) -> np.ndarray:
    """Ground-truth mask of truly mislabeled rows, ``(n,) bool``, with at least one positive row."""
    t = check_mask(truth, n, "truth")
    if not t.any():
        raise InvalidInputError(
            "truth marks no row as mislabeled; precision and recall need at least one positive row. "
            "Pass truth=None when there is no ground truth."
        )
    return t


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _new_figure(width: float, height: float) -> Figure:
    """A figure with its own Agg canvas: no pyplot state, no backend switch."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _log_floor(scores: np.ndarray) -> float:
    """Value that stands in for zero scores on a log axis: half the smallest positive score.

    Zeros then sit in the lowest bin, just below every positive score, instead of disappearing
    from the axis; positive scores are drawn as they are. 1.0 when no score is positive.
    """
    pos = scores[scores > 0]
    return float(pos.min()) / 2.0 if pos.size else 1.0


def precision_recall_at(flagged: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """Precision, recall and F1 of a flagged set; NaN where undefined (nothing flagged)."""
    tp = int((flagged & truth).sum())
    n_flagged = int(flagged.sum())
    n_true = int(truth.sum())
    recall = tp / n_true if n_true else float("nan")
    if n_flagged == 0:
        return float("nan"), recall, float("nan")
    precision = tp / n_flagged
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    return precision, recall, f1


def _fmt_num(x: float) -> str:
    """A short number for tables: ``n/a`` for NaN, 4 significant digits otherwise."""
    return "n/a" if isinstance(x, float) and math.isnan(x) else f"{x:.4g}"


def _action_counts(table: pd.DataFrame) -> dict[str, int]:
    action = table["action"].to_numpy()
    return {a: int((action == a).sum()) for a in ROW_ACTIONS}


def _shorten(text: str, n_chars: int) -> str:
    """``text`` cut to ``n_chars`` characters, the last one an ellipsis when cut."""
    return text if len(text) <= n_chars else text[: n_chars - 1] + "…"


def _top_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest scores, highest first; ties keep row order."""
    return np.argsort(-scores, kind="stable")[: min(k, scores.size)]


def _flagged_pairs(t: pd.DataFrame) -> pd.DataFrame:
    """Flagged rows counted per ``(given_label, suggested_label)`` pair.

    Columns ``given_label, suggested_label, rows, relabeled`` (``relabeled``: of those rows, the ones
    whose action is ``relabel``), one row per pair that occurs, most frequent first; ties in order of
    given then suggested label. Empty when nothing is flagged.
    """
    flagged = t[t["is_issue"].to_numpy()]
    pairs = (
        flagged.assign(relabeled=(flagged["action"] == "relabel").astype(np.int64), rows=1)
        .groupby(["given_label", "suggested_label"], sort=True)[["rows", "relabeled"]].sum()
        .reset_index()
    )
    return pairs.sort_values("rows", ascending=False, kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def plot_score_histogram(
    scores: Any, threshold: float, is_issue: Any = None, truth: Any = None, *, bins: int = 60,
    score_name: str | None = None,
) -> Figure:
    """Histogram of the scores with the threshold marked: a log x-axis for GEX-scale scores, a linear
    one for the rank scores (means of percentile ranks in (0, 1], where a log axis would mislead).

    Parameters
    ----------
    scores : array-like, shape ``(n,)`` float
        Self-influence scores, finite and ``>= 0``. Zeros are drawn at half the smallest positive
        score (a log axis has no zero); the x label says so when there are any.
    threshold : float
        The score cut-off, finite and ``>= 0``; drawn as a vertical line (``gid="threshold"``) at
        ``max(threshold, floor)``, labelled with its value and the number of flagged rows.
    is_issue : array-like, shape ``(n,)`` bool, optional
        Flagged rows. Without ``truth`` the histogram is split into flagged and not flagged;
        the flagged count in the threshold label comes from it (else ``scores > threshold``).
    truth : array-like, shape ``(n,)`` bool, optional
        Truly mislabeled rows (demos / benchmarks). When given the histogram is two stacked groups,
        "truly mislabeled" and "clean"; it takes precedence over ``is_issue`` for the split.
    bins : int, default 60
        Number of bins (log-spaced on the log axis).
    score_name : str, optional
        The run's score (``scores.SCORES``). None or a GEX-scale name: GEX self-influence on a log
        axis; a rank score: a linear axis titled with the name.

    Returns
    -------
    matplotlib.figure.Figure
        One axes, x scale ``"log"`` (``"linear"`` for a rank score).
    """
    s = check_scores(scores)
    if score_name in RANK_SCORES:
        return _rank_histogram(s, _check_threshold(threshold), is_issue, truth, check_positive_int(bins, "bins"),
                               str(score_name))
    thr = _check_threshold(threshold)
    bins = check_positive_int(bins, "bins")
    flagged = check_mask(is_issue, s.size, "is_issue") if is_issue is not None else s > thr
    t = check_mask(truth, s.size, "truth") if truth is not None else None

    floor = _log_floor(s)
    x = np.maximum(s, floor)
    thr_x = max(thr, floor)
    lo, hi = float(min(x.min(), thr_x)), float(max(x.max(), thr_x))
    if hi <= lo * 1.0001:  # all scores equal: widen so the bins have a width
        lo, hi = lo / 2.0, hi * 2.0
    edges = np.geomspace(lo, hi * 1.0001, bins + 1)

    fig = _new_figure(7.0, 3.8)
    ax = fig.add_subplot()
    if t is not None:
        ax.hist(
            [x[~t], x[t]], bins=edges, stacked=True, color=[_CLEAN_COLOR, _ISSUE_COLOR],
            label=[f"clean ({int((~t).sum())})", f"truly mislabeled ({int(t.sum())})"],
        )
    elif is_issue is not None:
        ax.hist(
            [x[~flagged], x[flagged]], bins=edges, stacked=True, color=[_CLEAN_COLOR, _ISSUE_COLOR],
            label=[f"not flagged ({int((~flagged).sum())})", f"flagged ({int(flagged.sum())})"],
        )
    else:
        ax.hist(x, bins=edges, color=_CLEAN_COLOR, label=f"rows ({s.size})")
    ax.axvline(
        thr_x, color="black", linestyle="--", linewidth=1.5, gid="threshold",
        label=f"threshold = {thr:.3g} ({int(flagged.sum())} flagged)",
    )
    ax.set_xscale("log")
    n_zero = int((s == 0).sum())
    ax.set_xlabel(
        "self-influence score (log scale)"
        + (f"; {n_zero} zero score(s) drawn at {floor:.2g}" if n_zero else "")
    )
    ax.set_ylabel("rows")
    ax.set_title("GEX self-influence scores")
    ax.legend(loc="upper right", fontsize="small")
    return fig


def _rank_histogram(s: np.ndarray, thr: float, is_issue: Any, truth: Any, bins: int, score_name: str) -> Figure:
    """``plot_score_histogram`` for a rank score: linear axis on [0, 1]."""
    flagged = check_mask(is_issue, s.size, "is_issue") if is_issue is not None else s > thr
    t = check_mask(truth, s.size, "truth") if truth is not None else None
    edges = np.linspace(0.0, 1.0, bins + 1)
    fig = _new_figure(7.0, 3.8)
    ax = fig.add_subplot()
    if t is not None:
        ax.hist([s[~t], s[t]], bins=edges, stacked=True, color=[_CLEAN_COLOR, _ISSUE_COLOR],
                label=[f"clean ({int((~t).sum())})", f"truly mislabeled ({int(t.sum())})"])
    else:
        ax.hist([s[~flagged], s[flagged]], bins=edges, stacked=True, color=[_CLEAN_COLOR, _ISSUE_COLOR],
                label=[f"not flagged ({int((~flagged).sum())})", f"flagged ({int(flagged.sum())})"])
    ax.axvline(thr, color="black", linestyle="--", linewidth=1.5, gid="threshold",
               label=f"threshold = {thr:.3g} ({int(flagged.sum())} flagged)")
    ax.set_xlabel(f"score: {score_name} (mean percentile rank; 1 = most suspicious)")
    ax.set_ylabel("rows")
    ax.set_title(f"Ranking score ({score_name})")
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

    fig = _new_figure(max(5.0, min(0.45 * K + 2.0, 24.0)), 4.0)
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
        ax.bar(pos, counts, bottom=bottom, color=_ACTION_COLORS[a], label=f"{label} ({int(counts.sum())})")
        bottom += counts
        drawn = True
    if not drawn:
        ax.bar(pos, np.zeros(K), color=_ISSUE_COLOR, label="flagged (0)")
    ax.set_xticks(pos)
    ax.set_xticklabels(names, rotation=45 if K > 6 else 0, ha="right" if K > 6 else "center", parse_math=False)
    ax.set_xlabel("given class")
    ax.set_ylabel("rows flagged or acted on")
    ax.set_title("Issues per class, by action")
    ax.legend(fontsize="small")
    return fig


def _gallery_kind(source: Any, n: int) -> tuple[str, Any]:
    """Classify a gallery source: ``("image", array (n, h, w[, c]))``, ``("callable", f)`` or ``("text", list)``."""
    if callable(source):
        return "callable", source
    if isinstance(source, (str, bytes)):
        raise InvalidTypeError(
            "gallery must be an image array (n, h, w) / (n, h, w, c), a callable row → image, "
            "or a sequence of n strings; found a single string."
        )
    if isinstance(source, np.ndarray) and source.dtype != object and np.issubdtype(source.dtype, np.number):
        arr = source
        if arr.ndim == 4 and arr.shape[1] in (1, 3, 4) and arr.shape[3] not in (1, 3, 4):
            arr = np.moveaxis(arr, 1, 3)  # channels-first (n, c, h, w), as featurized for torch
        if arr.ndim not in (3, 4) or (arr.ndim == 4 and arr.shape[3] not in (1, 3, 4)):
            raise InvalidInputError(
                f"an image gallery must have shape (n, h, w) or (n, h, w, c) with c in (1, 3, 4); "
                f"found {source.shape}."
            )
        if arr.shape[0] != n:
            raise InvalidInputError(
                f"the gallery must have one image per row of the table: expected {n}, found {arr.shape[0]}."
            )
        return "image", arr
    if isinstance(source, (Sequence, np.ndarray, pd.Series)):
        items = list(source.tolist() if isinstance(source, (np.ndarray, pd.Series)) else source)
        if len(items) != n:
            raise InvalidInputError(
                f"the gallery must have one text per row of the table: expected {n}, found {len(items)}."
            )
        if not all(isinstance(v, str) or v is None for v in items):
            bad = next(i for i, v in enumerate(items) if not (isinstance(v, str) or v is None))
            raise InvalidTypeError(
                f"a text gallery must hold strings; row {bad} is {type(items[bad]).__name__}. "
                "For images pass a numeric array (n, h, w) / (n, h, w, c) or a callable."
            )
        return "text", items
    raise InvalidTypeError(
        f"gallery must be an image array, a callable row → image, or a sequence of strings; "
        f"found {type(source).__name__}."
    )


def _as_image(img: Any) -> np.ndarray:
    """An image ready for ``imshow``: 2-D gray, or RGB(A) scaled into ``[0, 1]`` when float."""
    arr = np.asarray(img)  # PIL images convert to (h, w) or (h, w, c) uint8
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3):
        raise InvalidInputError(f"a gallery image must be (h, w) or (h, w, c); found shape {arr.shape}.")
    if arr.dtype == bool:
        arr = arr.astype(np.float64)
    if arr.ndim == 3 and not np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float64)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        if lo < 0.0 or hi > 1.0:  # imshow wants RGB floats in [0, 1]; rescale per image
            arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    elif arr.ndim == 3 and arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return arr


def plot_gallery(
    table: pd.DataFrame,
    images_or_texts: Any,
    class_names: Sequence[str],
    k: int = GALLERY_K,
) -> Figure:
    """The ``k`` most suspicious rows (highest score) as a grid, each titled ``given → suggested``.

    Parameters
    ----------
    table : pandas.DataFrame
        The decisions table.
    images_or_texts : ndarray, callable or sequence of str
        What to draw for each row, aligned with the table rows (position ``i`` is table row ``i``):

        - an image array ``(n, h, w)`` (drawn gray), ``(n, h, w, c)`` with ``c`` in 1, 3, 4, or
          channels-first ``(n, c, h, w)``;
        - a callable ``f(i) -> image`` taking the row *position* ``i`` (``0..n-1``, the input order,
          not ``row_id``) and returning a PIL image or an array ``(h, w)`` / ``(h, w, c)``;
        - a sequence of ``n`` strings: each cell shows the text wrapped, cut at
          ``GALLERY_TEXT_CHARS`` (400) characters.
    class_names : sequence of str
        ``class_names[k]`` names label ``k``.
    k : int, default 24
        Number of cells; fewer when the table has fewer rows. Ties in score keep row order.

    Returns
    -------
    matplotlib.figure.Figure
        Exactly ``min(k, n)`` axes, highest score first; for images each axes holds one image.
        Cell titles: ``"<given> → <suggested>"`` then ``"score <s> · <action>"``; class names
        longer than ``GALLERY_NAME_CHARS`` (20 in image cells, 36 in text cells) are cut with "…".
    """
    t, names = check_table(table, class_names)
    k = check_positive_int(k, "k")
    kind, source = _gallery_kind(images_or_texts, len(t))
    top = _top_rows(t["score"].to_numpy(), k)
    n_cells = top.size

    ncols = min(n_cells, 6 if kind != "text" else 3)
    nrows = math.ceil(n_cells / ncols)
    cell_w, cell_h = (1.9, 2.1) if kind != "text" else (3.6, 2.4)
    name_chars = GALLERY_NAME_CHARS[kind == "text"]
    fig = _new_figure(ncols * cell_w, nrows * cell_h)
    for cell, i in enumerate(top):
        row = t.iloc[int(i)]
        ax = fig.add_subplot(nrows, ncols, cell + 1)
        ax.set_xticks([])
        ax.set_yticks([])
        given = _shorten(names[int(row["given_label"])], name_chars)
        suggested = _shorten(names[int(row["suggested_label"])], name_chars)
        ax.set_title(
            f"{given} → {suggested}\nscore {row['score']:.3g} · {row['action']}",
            fontsize=8, parse_math=False,
        )
        if kind == "text":
            text = source[int(i)] or ""
            text = _shorten(" ".join(text.split()), GALLERY_TEXT_CHARS)
            ax.text(
                0.03, 0.97, textwrap.fill(text, width=52), ha="left", va="top", fontsize=7,
                wrap=False, transform=ax.transAxes, parse_math=False,
            )
        else:
            img = _as_image(source[int(i)] if kind == "image" else source(int(i)))
            if img.ndim == 2:
                ax.imshow(img, cmap="gray", interpolation="nearest")
            else:
                ax.imshow(img, interpolation="nearest")
    fig.suptitle(f"Top {n_cells} rows by score (given → suggested)")
    return fig


def plot_precision_recall(scores: Any, truth: Any, threshold: float | None = None) -> Figure:
    """Precision / recall curve of the scores against a ground-truth mask, with AP in the legend.

    Parameters
    ----------
    scores : array-like, shape ``(n,)`` float
        Self-influence scores, higher = more suspicious.
    truth : array-like, shape ``(n,)`` bool
        Truly mislabeled rows; at least one.
    threshold : float, optional
        When given, the operating point of ``scores > threshold`` (the rule of every threshold
        method but ``budget``, whose ties can differ) is marked (``gid="operating_point"``) with its
        precision and recall.

    Returns
    -------
    matplotlib.figure.Figure
        One axes: recall on x, precision on y; the curve's legend label is ``"GEX (AP = <ap>)"``
        with ``ap`` = :func:`sklearn.metrics.average_precision_score` to 3 decimals.
    """
    s = check_scores(scores)
    t = _check_truth(truth, s.size)
    precision, recall, _ = precision_recall_curve(t, s)
    ap = float(average_precision_score(t, s))

    fig = _new_figure(5.5, 4.5)
    ax = fig.add_subplot()
    ax.plot(recall, precision, drawstyle="steps-post", color=_CLEAN_COLOR, label=f"GEX (AP = {ap:.3f})")
    prevalence = float(t.mean())
    ax.axhline(prevalence, color="#9e9e9e", linestyle=":", label=f"chance (prevalence {prevalence:.3f})")
    if threshold is not None:
        thr = _check_threshold(threshold)
        p, r, _ = precision_recall_at(s > thr, t)
        if not math.isnan(p):
            ax.plot(
                [r], [p], marker="o", markersize=8, color=_ISSUE_COLOR, linestyle="none",
                gid="operating_point", label=f"threshold {thr:.3g}: P = {p:.3f}, R = {r:.3f}",
            )
        else:
            logger.info("no score above the threshold %.3g; no operating point drawn", thr)
    ax.set_xlim(0.0, 1.02)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("Precision / recall vs ground truth")
    ax.legend(loc="lower left", fontsize="small")
    return fig


def _check_bias_inputs(scores: Any, truth: Any) -> tuple[list[tuple[str, np.ndarray]], np.ndarray]:
    """Check the inputs of :func:`plot_distributional_bias`; return ``[(method, scores)]`` and the mask.

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
        :func:`sklearn.metrics.roc_auc_score` and :func:`sklearn.metrics.average_precision_score`
        of the raw scores against ``truth``, to 3 decimals.

    Raises
    ------
    InvalidTypeError
        ``scores`` is not a mapping; non-numeric scores; ``truth`` not boolean (or 0/1).
    InvalidInputError
        An empty mapping; a method's scores not 1-D, of another length than ``truth``, non-finite or
        negative; ``truth`` with no mislabeled or no clean row.
    """
    methods, t = _check_bias_inputs(scores, truth)
    bins = check_positive_int(bins, "bins")
    n_bad, n_clean = int(t.sum()), int((~t).sum())

    ncols = min(len(methods), 3)
    nrows = math.ceil(len(methods) / ncols)
    fig = _new_figure(4.4 * ncols, 3.4 * nrows)
    for k, (name, s) in enumerate(methods):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        pos = s[s > 0]
        floor = float(np.percentile(pos, 1)) if pos.size else 1.0
        x = np.log10(np.maximum(s, floor))
        lo, hi = float(x.min()), float(x.max())
        if hi - lo < 1e-12:  # one value: give the bins a width
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, bins + 1)
        ax.hist(x[~t], bins=edges, density=True, histtype="stepfilled", alpha=0.5, color=_CLEAN_COLOR,
                edgecolor=_CLEAN_COLOR, label=f"clean ({n_clean})")
        ax.hist(x[t], bins=edges, density=True, histtype="stepfilled", alpha=0.5, color=_ISSUE_COLOR,
                edgecolor=_ISSUE_COLOR, label=f"truly mislabeled ({n_bad})")
        auroc = float(roc_auc_score(t, s))
        ap = float(average_precision_score(t, s))
        ax.set_title(f"{name}: AUROC {auroc:.3f} · AP {ap:.3f}", fontsize="medium", parse_math=False)
        n_floored = int((s < floor).sum())
        ax.set_xlabel("log10(score)" + (f"; {n_floored} rows floored at the 1st percentile" if n_floored else ""))
        ax.set_ylabel("density")
        ax.legend(loc="best", fontsize="small")
    fig.suptitle("Self-influence of clean vs truly mislabeled rows")
    return fig


# --------------------------------------------------------------------------------------------
# HTML report
# --------------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       margin: 2em auto; max-width: 1100px; color: #222; line-height: 1.4; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .5em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; }
code { font-size: .85em; white-space: pre-wrap; word-break: break-word; }
.note { color: #666; font-size: .9em; }
"""


def _figure_png_base64(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=PNG_DPI)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img_tag(fig: Figure, alt: str) -> str:
    return f'<img src="data:image/png;base64,{_figure_png_base64(fig)}" alt="{html.escape(alt)}">'


def _cell(value: Any) -> str:
    """One table cell: numbers right-aligned, dicts / lists as JSON, everything escaped."""
    if isinstance(value, bool) or value is None:
        return f"<td>{html.escape(str(value))}</td>"
    if isinstance(value, numbers.Integral):
        return f'<td class="num">{int(value)}</td>'
    if isinstance(value, numbers.Real):
        return f'<td class="num">{html.escape(_fmt_num(float(value)))}</td>'
    if isinstance(value, (Mapping, list, tuple)):
        text = json.dumps(value, default=str, sort_keys=isinstance(value, Mapping), indent=1)
        return f"<td><code>{html.escape(text)}</code></td>"
    return f"<td>{html.escape(str(value))}</td>"


def _kv_table(rows: Sequence[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{html.escape(str(key))}</th>{_cell(value)}</tr>" for key, value in rows)
    return f"<table>{body}</table>"


def _section(key: str, body: str) -> str:
    return f'<section id="{key}">\n<h2>{html.escape(SECTION_TITLES[key])}</h2>\n{body}\n</section>\n'


def _summary_key(key: Any) -> str:
    """A summary key reduced for comparison: lower case, ``_``, ``:`` and ``-`` as spaces, single spaces."""
    return " ".join(re.sub(r"[_:\-]", " ", str(key).lower()).split())


def _same_value(a: Any, b: Any) -> bool:
    """Whether a summary entry states the same value as the report computed (numbers within rounding)."""
    if isinstance(a, numbers.Real) and isinstance(b, numbers.Real) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-12)
    return a == b


def _summary_rows(computed: list[tuple[str, Any]], summary: Mapping[str, Any] | None,
                  aliases: Mapping[str, str]) -> list[tuple[str, Any]]:
    """The summary table: the counts computed from the table, then the ``summary`` entries they do not repeat.

    A ``summary`` entry whose key names a computed row (``aliases`` maps reduced keys, see
    :func:`_summary_key`, to computed row labels: ``"rows in"``, ``"flagged"``, ``"action drop"``…)
    is left out, so each count is shown once, as computed from the table; a warning is logged when
    its value differs from the computed one.
    """
    values = dict(computed)
    rows = list(computed)
    for key, value in (summary or {}).items():
        label = aliases.get(_summary_key(key))
        if label is None:
            rows.append((str(key), value))
        elif not _same_value(value, values[label]):
            logger.warning("summary entry %r = %r differs from %r = %r computed from the table; showing the "
                           "table's value", key, value, label, values[label])
    return rows


def _pairs_table(t: pd.DataFrame, names: list[str]) -> str:
    """HTML table of the flagged rows per ``(given, suggested)`` pair, at most :data:`REPORT_MAX_PAIRS` pairs."""
    pairs = _flagged_pairs(t)
    n_flagged = int(pairs["rows"].sum())
    if n_flagged == 0:
        return '<p class="note">No row was flagged.</p>'
    head = ["given", "suggested", "flagged rows", "share of flagged", "relabeled"]
    lines = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for r in pairs.head(REPORT_MAX_PAIRS).itertuples(index=False):
        lines.append(
            f"<tr><td>{html.escape(names[int(r.given_label)])}</td>"
            f"<td>{html.escape(names[int(r.suggested_label)])}</td>"
            f'<td class="num">{int(r.rows)}</td><td class="num">{100.0 * r.rows / n_flagged:.1f}%</td>'
            f'<td class="num">{int(r.relabeled)}</td></tr>'
        )
    lines.append("</table>")
    note = (f"{n_flagged} flagged rows in {len(pairs)} (given, suggested) pairs, most frequent first. A pair "
            "with the same label twice: the suggested label agrees with the given one.")
    if len(pairs) > REPORT_MAX_PAIRS:
        rest = pairs.iloc[REPORT_MAX_PAIRS:]
        note += f" {len(rest)} more pairs ({int(rest['rows'].sum())} rows) not shown."
    return "\n".join(lines) + f'\n<p class="note">{html.escape(note)}</p>'


def build_report(
    table: pd.DataFrame,
    *,
    class_names: Sequence[str],
    threshold: float,
    truth: Any = None,
    gallery: Any = None,
    summary: Mapping[str, Any] | None = None,
    title: str = "influence_stage report",
    bias_scores: Mapping[str, Any] | None = None,
    score_name: str | None = None,
) -> str:
    """One self-contained HTML page describing a cleaning run.

    Sections, in order (titles in :data:`SECTION_TITLES`): summary (rows in and out, rows flagged,
    rows per action, threshold, then the ``summary`` entries that do not repeat these counts),
    score histogram, issues per class, flagged rows per ``(given, suggested)`` label pair, gallery
    of the most suspicious rows (only with ``gallery``), precision / recall vs ground truth with
    precision, recall and F1 of ``is_issue`` (only with ``truth``), distributional bias of the
    self-influence estimators (only with ``truth`` and ``bias_scores``), and the top
    :data:`TOP_ROWS` rows by score. Figures are embedded as base64 PNGs, CSS is inline and a
    Content-Security-Policy forbids scripts and any outside resource; every user string (title,
    class names, row ids, summary keys and values, method names) is HTML-escaped.

    Parameters
    ----------
    table : pandas.DataFrame
        The decisions table, one row per input row, columns
        ``row_id, score, is_issue, action, given_label, suggested_label, weight``.
    class_names : sequence of str
        ``class_names[k]`` names label ``k``.
    threshold : float
        The score cut-off that flagged the rows, ``>= 0``.
    truth : array-like, shape ``(n,)`` bool, optional
        Truly mislabeled rows, aligned with the table (demos / benchmarks only).
    gallery : ndarray, callable or sequence of str, optional
        Images or texts of the rows; see :func:`plot_gallery`.
    summary : mapping, optional
        Extra entries for the summary table (timings, chosen ``ft_lr``, the config…); nested
        mappings and lists are shown as JSON. Entries that name a count the report computes from
        the table (``rows in``, ``rows out``, ``flagged`` / ``issues flagged``, ``action <a>``,
        ``threshold``, ``classes``; case, ``_`` and ``:`` ignored) are not repeated: the computed
        value is shown once, and a warning is logged when the entry disagrees with it.
    title : str, default "influence_stage report"
        Page title and heading.
    bias_scores : mapping of str to array-like, optional
        Method name → self-influence scores of the rows, aligned with the table; drawn with
        :func:`plot_distributional_bias`. Used only together with ``truth``.

    Returns
    -------
    str
        The HTML document.

    Raises
    ------
    InvalidInputError
        Missing table columns, an empty table, ``truth`` or ``gallery`` of the wrong length,
        ``truth`` without a positive row, bad labels, scores or threshold; with ``truth``, bias
        scores that :func:`plot_distributional_bias` rejects.
    InvalidTypeError
        A table column, ``truth``, ``gallery``, ``summary`` or ``bias_scores`` of the wrong type.
    """
    t, names = check_table(table, class_names)
    thr = _check_threshold(threshold)
    n = len(t)
    truth_mask = _check_truth(truth, n) if truth is not None else None
    if summary is not None and not isinstance(summary, Mapping):
        raise InvalidTypeError(f"summary must be a mapping (dict) of extra entries; found {type(summary).__name__}.")
    if bias_scores is not None and not isinstance(bias_scores, Mapping):
        raise InvalidTypeError(
            f"bias_scores must be a mapping of method name to per-row scores; found {type(bias_scores).__name__}."
        )
    # Checked before any figure is drawn, so a bad gallery or bias scores fail fast.
    if gallery is not None:
        _gallery_kind(gallery, n)
    show_bias = bias_scores is not None and truth_mask is not None
    if show_bias:
        _check_bias_inputs(bias_scores, truth_mask)
    elif bias_scores is not None:
        logger.info("bias_scores given without truth: the distributional-bias section needs ground truth, left out")

    scores = t["score"].to_numpy()
    is_issue = t["is_issue"].to_numpy()
    counts = _action_counts(t)
    computed: list[tuple[str, Any]] = [
        ("rows in", n),
        ("rows out", n - counts["drop"]),
        ("issues flagged", int(is_issue.sum())),
        *((f"action: {a}", counts[a]) for a in ROW_ACTIONS),
        ("threshold", thr),
        ("classes", len(names)),
    ]
    aliases = {_summary_key(label): label for label, _ in computed}
    aliases["flagged"] = "issues flagged"
    if truth_mask is not None:
        computed += [("truly mislabeled (ground truth)", int(truth_mask.sum())),
                     ("true noise rate (ground truth)", float(truth_mask.mean()))]
    rows = _summary_rows(computed, summary, aliases)

    parts = [_section("summary", _kv_table(rows))]
    parts.append(_section(
        "histogram",
        _img_tag(plot_score_histogram(scores, thr, is_issue=is_issue, truth=truth_mask, score_name=score_name),
                 "score histogram")
        + ('<p class="note">The run ranks by a mean of percentile ranks (spread evenly by construction); the '
           'threshold flags the estimated number of mislabeled rows.</p>' if score_name in RANK_SCORES else
           '<p class="note">Log x-axis: mislabeled rows typically form their own high mode.</p>'),
    ))
    if score_name in RANK_SCORES:
        gi = t["gex_influence"].to_numpy(dtype=np.float64)
        if np.isfinite(gi).all() and (gi >= 0).all():
            fig = plot_score_histogram(gi, float(np.min(gi[is_issue])) if is_issue.any() else float(gi.max()),
                                       is_issue=is_issue, truth=truth_mask)
            parts.append(_section("gex_histogram", _img_tag(fig, "GEX self-influence histogram")
                                  + '<p class="note">The exact GEX self-influence of the same rows (log x-axis); '
                                    'the dashed line is the lowest GEX score among the flagged rows.</p>'))
    parts.append(_section("per_class", _img_tag(plot_issues_per_class(t, names), "issues per class")))
    parts.append(_section("confusion", _pairs_table(t, names)))
    if gallery is not None:
        k = min(GALLERY_K, n)
        parts.append(_section(
            "gallery",
            _img_tag(plot_gallery(t, gallery, names, k=k), "most suspicious rows")
            + f'<p class="note">The {k} highest-scoring rows; each cell: given label → suggested label, '
            "score and action.</p>",
        ))
    if truth_mask is not None:
        p, r, f1 = precision_recall_at(is_issue, truth_mask)
        ap = float(average_precision_score(truth_mask, scores))
        numbers_table = _kv_table([
            ("precision at threshold", p), ("recall at threshold", r), ("F1 at threshold", f1),
            ("average precision (scores)", ap),
        ])
        parts.append(_section(
            "precision_recall",
            numbers_table
            + '<p class="note">Precision, recall and F1 of the flagged rows (<code>is_issue</code>) '
            "against the ground-truth mask.</p>"
            + _img_tag(plot_precision_recall(scores, truth_mask, thr), "precision recall curve"),
        ))
    if show_bias:
        parts.append(_section(
            "bias",
            _img_tag(plot_distributional_bias(bias_scores, truth_mask), "distributional bias")
            + '<p class="note">One panel per estimator: histograms of log10 self-influence of clean and of '
            "truly mislabeled rows, each of unit area. An estimator without distributional bias separates "
            "the two groups; AUROC and AP rank its raw scores against the ground truth.</p>",
        ))
    parts.append(_section("top_rows", _top_rows_table(t, names, truth_mask)))

    csp = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    doc = (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n" + "".join(parts) + "</body>\n</html>\n"
    )
    logger.info("built report %r: %d rows, %d sections, %d characters", title, n, len(parts), len(doc))
    return doc


def _top_rows_table(t: pd.DataFrame, names: list[str], truth: np.ndarray | None) -> str:
    top = _top_rows(t["score"].to_numpy(), TOP_ROWS)
    head = ["rank", "row_id", "score", "given", "suggested", "action", "weight"]
    if truth is not None:
        head.append("truly mislabeled")
    lines = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for rank, i in enumerate(top, start=1):
        row = t.iloc[int(i)]
        cells = [
            f'<td class="num">{rank}</td>',
            f"<td>{html.escape(str(row['row_id']))}</td>",
            f'<td class="num">{row["score"]:.4g}</td>',
            f"<td>{html.escape(names[int(row['given_label'])])}</td>",
            f"<td>{html.escape(names[int(row['suggested_label'])])}</td>",
            f"<td>{html.escape(str(row['action']))}</td>",
            f'<td class="num">{row["weight"]:.3g}</td>',
        ]
        if truth is not None:
            cells.append(f"<td>{'yes' if truth[int(i)] else 'no'}</td>")
        lines.append("<tr>" + "".join(cells) + "</tr>")
    lines.append("</table>")
    return "\n".join(lines)


def write_report(path: str | os.PathLike[str], html_text: str) -> Path:
    """Write the report atomically (a temporary file in the same folder, then a rename).

    Parameters
    ----------
    path : str or path-like
        Destination file; missing parent folders are created.
    html_text : str
        The document from :func:`build_report`, written as UTF-8.

    Returns
    -------
    pathlib.Path
        The absolute path written.
    """
    if not isinstance(html_text, str):
        raise InvalidTypeError(f"html_text must be a str (from build_report); found {type(html_text).__name__}.")
    dest = Path(path).expanduser().resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(html_text)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    logger.info("wrote report to %s", dest)
    return dest


# --------------------------------------------------------------------------------------------
# Markdown summary
# --------------------------------------------------------------------------------------------

def _md_escape(text: str) -> str:
    """Escape a user string for markdown: HTML entities for ``&<>``, backslashes for markup."""
    text = " ".join(str(text).split())
    text = html.escape(text, quote=False)  # &, <, > → entities (safe in any markdown renderer)
    return "".join("\\" + ch if ch in "\\`*_[]|#" else ch for ch in text)


def summary_markdown(
    table: pd.DataFrame,
    class_names: Sequence[str],
    threshold: float,
    truth: Any = None,
    timings: Mapping[str, float] | None = None,
    *,
    score_name: str | None = None,
    threshold_method: str | None = None,
    n_estimated: int | None = None,
) -> str:
    """A short markdown summary of a cleaning run (Prefect markdown artifact, ``make run`` output).

    Parameters
    ----------
    table : pandas.DataFrame
        The decisions table.
    class_names : sequence of str
        ``class_names[k]`` names label ``k``.
    threshold : float
        The score cut-off, ``>= 0``.
    truth : array-like, shape ``(n,)`` bool, optional
        Truly mislabeled rows; adds precision and recall of ``is_issue`` against it (``n/a`` when
        nothing is flagged).
    timings : mapping of str to float, optional
        Seconds per step, listed in the given order.
    score_name : str, optional
        The ranking the threshold cut (``GEXResult.score_name``), shown under the headline.
    threshold_method : str, optional
        How the threshold was chosen (``ThresholdResult.method``), shown under the headline.
    n_estimated : int, optional
        The estimated number of mislabeled rows (``ThresholdResult.n_estimated``), ``0..n``; shown
        as the estimated noise rate ``n_estimated / n`` with the count, and, with ``truth``, the
        true noise rate next to it.

    Returns
    -------
    str
        Markdown: a headline (rows in / out, flagged, threshold), a line with the score, threshold
        method and estimated noise rate (when any of them is given), a table of rows per action
        (``| drop | 12 |`` …), a table per class (rows, flagged, drop, relabel, reweight; at most
        :data:`MARKDOWN_MAX_CLASSES` classes, those with most flagged rows, when there are more),
        a table of the flagged rows per ``given → suggested`` label pair (the
        :data:`MARKDOWN_MAX_PAIRS` most frequent pairs; none when nothing is flagged), the
        ground-truth line and the timings. Class names, step names and the score and method names
        are escaped.

    Raises
    ------
    InvalidInputError
        Bad table, labels, threshold or ``truth`` (as :func:`build_report`); ``n_estimated``
        outside ``0..n``.
    InvalidTypeError
        ``timings`` not a mapping of numbers; ``score_name`` or ``threshold_method`` not a string;
        ``n_estimated`` not an integer.
    """
    t, names = check_table(table, class_names)
    thr = _check_threshold(threshold)
    n = len(t)
    truth_mask = _check_truth(truth, n) if truth is not None else None
    if timings is not None:
        if not isinstance(timings, Mapping):
            raise InvalidTypeError(
                f"timings must be a mapping of step name to seconds; found {type(timings).__name__}."
            )
        for key, value in timings.items():
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise InvalidTypeError(f"timings[{key!r}] must be a number of seconds; found {value!r}.")
    for name, value in (("score_name", score_name), ("threshold_method", threshold_method)):
        if value is not None and not isinstance(value, str):
            raise InvalidTypeError(f"{name} must be a string; found {type(value).__name__}.")
    if n_estimated is not None:
        if isinstance(n_estimated, bool) or not isinstance(n_estimated, numbers.Integral):
            raise InvalidTypeError(
                f"n_estimated must be an integer (the estimated number of mislabeled rows); found {n_estimated!r}."
            )
        if not 0 <= n_estimated <= n:
            raise InvalidInputError(f"n_estimated must be in 0..{n} (the table has {n} rows); found {n_estimated}.")

    counts = _action_counts(t)
    is_issue = t["is_issue"].to_numpy()
    n_flagged = int(is_issue.sum())
    lines = [
        "## influence_stage summary",
        "",
        f"**{n}** rows in, **{n - counts['drop']}** rows out; **{n_flagged}** flagged "
        f"({100.0 * n_flagged / n:.1f}%) at threshold **{thr:.4g}**.",
        "",
    ]
    run_line = _run_line(n, truth_mask, score_name, threshold_method, n_estimated)
    if run_line:
        lines += [run_line, ""]
    lines += [
        "| action | rows |",
        "|---|---:|",
        *(f"| {a} | {counts[a]} |" for a in ROW_ACTIONS),
        "",
    ]

    K = len(names)
    given = t["given_label"].to_numpy()
    action = t["action"].to_numpy()
    per_class = pd.DataFrame({
        "rows": np.bincount(given, minlength=K),
        "flagged": np.bincount(given[is_issue], minlength=K),
        **{a: np.bincount(given[action == a], minlength=K) for a in ("drop", "relabel", "reweight")},
    })
    shown = per_class
    if K > MARKDOWN_MAX_CLASSES:
        order = per_class.sort_values(["flagged", "rows"], ascending=False, kind="stable").index
        shown = per_class.loc[order[:MARKDOWN_MAX_CLASSES]]
    lines += ["| class | rows | flagged | drop | relabel | reweight |", "|---|---:|---:|---:|---:|---:|"]
    for c, r in shown.iterrows():
        lines.append(
            f"| {_md_escape(names[int(c)])} | {r['rows']} | {r['flagged']} | {r['drop']} | "
            f"{r['relabel']} | {r['reweight']} |"
        )
    if K > MARKDOWN_MAX_CLASSES:
        lines.append(f"\n_{K - MARKDOWN_MAX_CLASSES} more classes not shown (fewest flagged rows)._")
    lines.append("")

    pairs = _flagged_pairs(t)
    if len(pairs):
        lines += ["| flagged: given → suggested | rows |", "|---|---:|"]
        for r in pairs.head(MARKDOWN_MAX_PAIRS).itertuples(index=False):
            given, suggested = _md_escape(names[int(r.given_label)]), _md_escape(names[int(r.suggested_label)])
            lines.append(f"| {given} → {suggested} | {int(r.rows)} |")
        if len(pairs) > MARKDOWN_MAX_PAIRS:
            rest = pairs.iloc[MARKDOWN_MAX_PAIRS:]
            lines.append(f"\n_{len(rest)} more pairs not shown ({int(rest['rows'].sum())} flagged rows)._")
        lines.append("")

    if truth_mask is not None:
        p, r, f1 = precision_recall_at(is_issue, truth_mask)
        tp = int((is_issue & truth_mask).sum())
        lines += [
            f"Against ground truth ({int(truth_mask.sum())} truly mislabeled rows): "
            f"precision **{_fmt_pr(p)}**, recall **{_fmt_pr(r)}**, F1 **{_fmt_pr(f1)}** "
            f"({tp} of {n_flagged} flagged rows are truly mislabeled).",
            "",
        ]
    if timings:
        lines += ["| step | seconds |", "|---|---:|"]
        lines += [f"| {_md_escape(key)} | {float(value):.2f} |" for key, value in timings.items()]
        lines.append("")
    return "\n".join(lines)


def _fmt_pr(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.3f}"


def _run_line(n: int, truth: np.ndarray | None, score_name: str | None, threshold_method: str | None,
              n_estimated: int | None) -> str:
    """The markdown line naming the score, the threshold method and the estimated (and true) noise rate."""
    parts = []
    if score_name is not None:
        parts.append(f"score **{_md_escape(score_name)}**")
    if threshold_method is not None:
        parts.append(f"threshold method **{_md_escape(threshold_method)}**")
    if n_estimated is not None:
        rate = f"estimated noise rate **{100.0 * n_estimated / n:.1f}%** ({n_estimated} rows)"
        if truth is not None:
            n_true = int(truth.sum())
            rate += f", true noise rate **{100.0 * n_true / n:.1f}%** ({n_true} rows)"
        parts.append(rate)
    if not parts:
        return ""
    line = "; ".join(parts) + "."
    return line[0].upper() + line[1:]


__all__ = [
    "GALLERY_K", "SECTION_TITLES", "TOP_ROWS", "build_report", "plot_distributional_bias", "plot_gallery",
    "plot_issues_per_class", "plot_precision_recall", "plot_score_histogram", "summary_markdown", "write_report",
]

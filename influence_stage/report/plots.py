"""The report's figures, drawn from the decisions table (and a ground-truth mask where one exists).

Figures are made with ``matplotlib.figure.Figure`` and an Agg canvas, never with ``pyplot``: no
global figure registry, no backend switch, safe in worker threads and under any ``MPLBACKEND``.
Every user string that goes into a figure is drawn with ``parse_math=False`` (a class name with
``$`` must not be parsed as TeX).
"""

from __future__ import annotations

import logging
import math
import textwrap
from collections.abc import Mapping, Sequence
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
from influence_stage.decisions.schema import ROW_ACTIONS, check_table
from influence_stage.engine.scores import RANK_SCORES
from influence_stage.errors import InvalidInputError, InvalidTypeError
from influence_stage.report.common import (
    ACTION_COLORS,
    CLEAN_COLOR,
    GALLERY_K,
    GALLERY_NAME_CHARS,
    GALLERY_TEXT_CHARS,
    ISSUE_COLOR,
    check_threshold,
    check_truth,
    log_floor,
    new_figure,
    precision_recall_at,
    shorten,
    top_rows,
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


def gallery_kind(source: Any, n: int) -> tuple[str, Any]:
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


def as_image(img: Any) -> np.ndarray:
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


_as_image = as_image  # the former private name


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
    kind, source = gallery_kind(images_or_texts, len(t))
    top = top_rows(t["score"].to_numpy(), k)
    n_cells = top.size

    ncols = min(n_cells, 6 if kind != "text" else 3)
    nrows = math.ceil(n_cells / ncols)
    cell_w, cell_h = (1.9, 2.1) if kind != "text" else (3.6, 2.4)
    name_chars = GALLERY_NAME_CHARS[kind == "text"]
    fig = new_figure(ncols * cell_w, nrows * cell_h)
    for cell, i in enumerate(top):
        row = t.iloc[int(i)]
        ax = fig.add_subplot(nrows, ncols, cell + 1)
        ax.set_xticks([])
        ax.set_yticks([])
        given = shorten(names[int(row["given_label"])], name_chars)
        suggested = shorten(names[int(row["suggested_label"])], name_chars)
        ax.set_title(
            f"{given} → {suggested}\nscore {row['score']:.3g} · {row['action']}",
            fontsize=8, parse_math=False,
        )
        if kind == "text":
            text = source[int(i)] or ""
            text = shorten(" ".join(text.split()), GALLERY_TEXT_CHARS)
            ax.text(
                0.03, 0.97, textwrap.fill(text, width=52), ha="left", va="top", fontsize=7,
                wrap=False, transform=ax.transAxes, parse_math=False,
            )
        else:
            img = as_image(source[int(i)] if kind == "image" else source(int(i)))
            if img.ndim == 2:
                ax.imshow(img, cmap="gray", interpolation="nearest")
            else:
                ax.imshow(img, interpolation="nearest")
    fig.suptitle(f"Top {n_cells} rows by score (given → suggested)")
    return fig


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

"""The markdown summary of one run: the Prefect artifact and what `make run` prints."""

from __future__ import annotations

import html
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from influence_stage.decisions.schema import ROW_ACTIONS, check_table
from influence_stage.errors import InvalidInputError, InvalidTypeError
from influence_stage.report.common import (
    suggested_name,
    MARKDOWN_MAX_CLASSES,
    MARKDOWN_MAX_PAIRS,
    action_counts,
    check_threshold,
    check_truth,
    flagged_pairs,
    precision_recall_at,
)



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
        ``MARKDOWN_MAX_CLASSES`` classes, those with most flagged rows, when there are more),
        a table of the flagged rows per ``given → suggested`` label pair (the
        ``MARKDOWN_MAX_PAIRS`` most frequent pairs; none when nothing is flagged), the
        ground-truth line and the timings. Class names, step names and the score and method names
        are escaped.

    Raises
    ------
    InvalidInputError
        Bad table, labels, threshold or ``truth`` (as ``build_report``); ``n_estimated``
        outside ``0..n``.
    InvalidTypeError
        ``timings`` not a mapping of numbers; ``score_name`` or ``threshold_method`` not a string;
        ``n_estimated`` not an integer.
    """
    t, names = check_table(table, class_names)
    thr = check_threshold(threshold)
    n = len(t)
    truth_mask = check_truth(truth, n) if truth is not None else None
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

    counts = action_counts(t)
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

    pairs = flagged_pairs(t)
    if len(pairs):
        lines += ["| flagged: given → suggested | rows |", "|---|---:|"]
        for r in pairs.head(MARKDOWN_MAX_PAIRS).itertuples(index=False):
            given = _md_escape(names[int(r.given_label)])
            suggested = _md_escape(suggested_name(names, r.suggested_label))
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

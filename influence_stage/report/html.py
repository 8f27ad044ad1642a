"""The HTML report of one run: one self-contained page (figures as base64 PNGs, inline CSS, no scripts)."""

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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import (
    average_precision_score,
)

from influence_stage.decisions.schema import ROW_ACTIONS, check_table
from influence_stage.engine.scores import RANK_SCORES
from influence_stage.errors import InvalidInputError, InvalidTypeError
from influence_stage.report.common import (
    suggested_name,
    GALLERY_K,
    PNG_DPI,
    REPORT_MAX_PAIRS,
    SECTION_TITLES,
    TOP_ROWS,
    action_counts,
    check_threshold,
    check_truth,
    file_mode,
    flagged_pairs,
    fmt_num,
    precision_recall_at,
    roles_line,
    top_rows,
)
from influence_stage.report.gallery import GALLERY_CSS, gallery_html
from influence_stage.report.plots import (
    gallery_kind,
    check_bias_inputs,
    plot_distributional_bias,
    plot_issues_per_class,
    plot_precision_recall,
    plot_score_histogram,
)

logger = logging.getLogger(__name__)


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
""" + GALLERY_CSS


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
        return f'<td class="num">{html.escape(fmt_num(float(value)))}</td>'
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
    ``_summary_key``, to computed row labels: ``"rows in"``, ``"flagged"``, ``"action drop"``…)
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
    """HTML table of the flagged rows per ``(given, suggested)`` pair, at most ``REPORT_MAX_PAIRS`` pairs."""
    pairs = flagged_pairs(t)
    n_flagged = int(pairs["rows"].sum())
    if n_flagged == 0:
        return '<p class="note">No row was flagged.</p>'
    head = ["given", "suggested", "flagged rows", "share of flagged", "relabeled"]
    lines = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for r in pairs.head(REPORT_MAX_PAIRS).itertuples(index=False):
        lines.append(
            f"<tr><td>{html.escape(names[int(r.given_label)])}</td>"
            f"<td>{html.escape(suggested_name(names, r.suggested_label))}</td>"
            f'<td class="num">{int(r.rows)}</td><td class="num">{100.0 * r.rows / n_flagged:.1f}%</td>'
            f'<td class="num">{int(r.relabeled)}</td></tr>'
        )
    lines.append("</table>")
    note = (f"{n_flagged} flagged rows in {len(pairs)} (given, suggested) pairs, most frequent first. A flagged "
            "row's suggestion is never its given label; it is (none) where no other label is confident (such a "
            "row is not relabeled).")
    if len(pairs) > REPORT_MAX_PAIRS:
        rest = pairs.iloc[REPORT_MAX_PAIRS:]
        note += f" {len(rest)} more pairs ({int(rest['rows'].sum())} rows) not shown."
    return "\n".join(lines) + f'\n<p class="note">{html.escape(note)}</p>'


#: How a rank score published under evidence first (``engine.scores.evidence_first``) was built.
EVIDENCE_FIRST_NOTE = (", halved, with 0.5 added where the suggestion probabilities favour another label than the "
                       "given one (evidence first: rows that favour their own label lie in (0, 0.5], the others above)")


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
    issue_types: Mapping[str, int] | None = None,
    harm: pd.DataFrame | None = None,
) -> str:
    """One self-contained HTML page describing a cleaning run.

    Sections, in order (titles in ``SECTION_TITLES``): summary (rows in and out, rows flagged,
    rows per action, threshold, then the ``summary`` entries that do not repeat these counts),
    score histogram, issues per class, flagged rows per ``(given, suggested)`` label pair, gallery
    of the most suspicious rows (only with ``gallery``), precision / recall vs ground truth with
    precision, recall and F1 of ``is_issue`` (only with ``truth``), distributional bias of the
    self-influence estimators (only with ``truth`` and ``bias_scores``), issue types beside label
    issues (only when the run found issue types: ``issue_types``, else the summary's
    ``"issue types"`` entry; rows flagged per type and, with ``harm``, the top ``TOP_ROWS``
    flagged rows by GEX harm rank), and the top ``TOP_ROWS`` rows by score. Figures are embedded as base64 PNGs, CSS is inline and a
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
        Images or texts of the rows (see ``plot_gallery``), shown by
        ``influence_stage.report.gallery.gallery_html``: one ``<img>`` thumbnail per image row,
        texts as HTML text.
    summary : mapping, optional
        Extra entries for the summary table (timings, chosen ``ft_lr``, the config…); nested
        mappings and lists are shown as JSON, except ``columns`` (the run's column roles,
        ``{"label", "kind", "features"}``), shown in one line by
        ``influence_stage.report.common.roles_line``. Entries that name a count the report computes from
        the table (``rows in``, ``rows out``, ``flagged`` / ``issues flagged``, ``action <a>``,
        ``threshold``, ``classes``; case, ``_`` and ``:`` ignored) are not repeated: the computed
        value is shown once, and a warning is logged when the entry disagrees with it.
    title : str, default "influence_stage report"
        Page title and heading.
    bias_scores : mapping of str to array-like, optional
        Method name → self-influence scores of the rows, aligned with the table; drawn with
        ``plot_distributional_bias``. Used only together with ``truth``.
    score_name : str, optional
        The ranking in the ``score`` column (``GEXResult.score_name``): it names the histogram, the
        threshold line and the precision / recall curve. For a rank score the exact GEX scores
        (``gex_influence``) get their own histogram, without a line: the threshold cut the ranking,
        not them.
    issue_types : mapping of str to int, optional
        Issue type → rows flagged for it (``stage.issues.issue_counts``; an estimator's
        ``issue_summary()["n_issues"]``). Default: the ``summary``'s ``"issue types"`` entry (the
        pipeline's summary has one), with its ``"exact duplicates dropped"`` entry shown beside; the
        summary table then leaves the ``"issue types"`` entry out.
    harm : pandas.DataFrame, optional
        ``harm`` (float, higher = more harmful to the reference loss) and ``harm_rank`` (int, 1 = the
        most harmful flagged row, 0 = not flagged) per row, aligned with the table
        (``influence_stage.issues.rank_by_harm``). Shown only with issue types.

    Returns
    -------
    str
        The HTML document.

    Raises
    ------
    InvalidInputError
        Missing table columns, an empty table, ``truth`` or ``gallery`` of the wrong length,
        ``truth`` without a positive row, bad labels, scores or threshold; with ``truth``, bias
        scores that ``plot_distributional_bias`` rejects.
    InvalidTypeError
        A table column, ``truth``, ``gallery``, ``summary`` or ``bias_scores`` of the wrong type.
    """
    t, names = check_table(table, class_names)
    thr = check_threshold(threshold)
    n = len(t)
    truth_mask = check_truth(truth, n) if truth is not None else None
    if summary is not None and not isinstance(summary, Mapping):
        raise InvalidTypeError(f"summary must be a mapping (dict) of extra entries; found {type(summary).__name__}.")
    if bias_scores is not None and not isinstance(bias_scores, Mapping):
        raise InvalidTypeError(
            f"bias_scores must be a mapping of method name to per-row scores; found {type(bias_scores).__name__}."
        )
    # Checked before any figure is drawn, so a bad gallery or bias scores fail fast.
    if gallery is not None:
        gallery_kind(gallery, n)
    show_bias = bias_scores is not None and truth_mask is not None
    if show_bias:
        check_bias_inputs(bias_scores, truth_mask)
    elif bias_scores is not None:
        logger.info("bias_scores given without truth: the distributional-bias section needs ground truth, left out")

    scores = t["score"].to_numpy()
    is_issue = t["is_issue"].to_numpy()
    counts = action_counts(t)
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
    if summary is not None and roles_line(summary.get("columns")) is not None:
        summary = {**summary, "columns": roles_line(summary["columns"])}
    types = _issue_type_counts(issue_types, summary)
    if types and summary is not None and "issue types" in summary:  # shown as a table in its own section
        summary = {k: v for k, v in summary.items() if k != "issue types"}
    rows = _summary_rows(computed, summary, aliases)
    ranking = "score" if score_name is None else str(score_name)
    evidence_first = bool(summary and summary.get("evidence first"))

    parts = [_section("summary", _kv_table(rows))]
    parts.append(_section(
        "histogram",
        _img_tag(plot_score_histogram(scores, thr, is_issue=is_issue, truth=truth_mask, score_name=score_name),
                 "score histogram")
        + (f'<p class="note">The run ranks by <code>{html.escape(ranking)}</code>, a mean of percentile ranks '
           f'(spread evenly by construction){EVIDENCE_FIRST_NOTE if evidence_first else ""}; the dashed line is the '
           'threshold on it, which flags the estimated number of mislabeled rows.</p>'
           if score_name in RANK_SCORES else
           f'<p class="note">The run ranks by <code>{html.escape(ranking)}</code>; the dashed line is the threshold '
           'on it. Log x-axis: mislabeled rows typically form their own high mode.</p>'),
    ))
    if score_name in RANK_SCORES:
        parts.extend(_gex_histogram(t, is_issue, truth_mask, ranking))
    parts.append(_section("per_class", _img_tag(plot_issues_per_class(t, names), "issues per class")))
    parts.append(_section("confusion", _pairs_table(t, names)))
    if gallery is not None:
        k = min(GALLERY_K, n)
        parts.append(_section(
            "gallery",
            gallery_html(t, gallery, names, k=k)
            + f'<p class="note">The {k} rows highest on <code>{html.escape(ranking)}</code>; each cell: given '
            "label → suggested label, score, action and row id.</p>",
        ))
    if truth_mask is not None:
        # The table and the figure's operating point come from the same function on the same mask.
        p, r, f1 = precision_recall_at(is_issue, truth_mask)
        ap = float(average_precision_score(truth_mask, scores))
        numbers_table = _kv_table([
            ("precision at threshold", p), ("recall at threshold", r), ("F1 at threshold", f1),
            (f"average precision ({ranking})", ap),
        ])
        parts.append(_section(
            "precision_recall",
            numbers_table
            + '<p class="note">Precision, recall and F1 of the flagged rows (<code>is_issue</code>) '
            "against the ground-truth mask; the dot on the curve is the same point.</p>"
            + _img_tag(plot_precision_recall(scores, truth_mask, flagged=is_issue, score_name=score_name),
                       "precision recall curve"),
        ))
    if show_bias:
        parts.append(_section(
            "bias",
            _img_tag(plot_distributional_bias(bias_scores, truth_mask), "distributional bias")
            + '<p class="note">One panel per estimator: histograms of log10 self-influence of clean and of '
            "truly mislabeled rows, each of unit area. An estimator without distributional bias separates "
            "the two groups; AUROC and AP rank its raw scores against the ground truth.</p>",
        ))
    if types:
        parts.append(_section("issue_types", _issue_types_html(
            types, summary, None if harm is None else _check_harm(harm, n), t, names)))
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


def _gex_histogram(t: pd.DataFrame, is_issue: np.ndarray, truth: np.ndarray | None, ranking: str) -> list[str]:
    """The section of the exact GEX scores of a run ranked by a rank score: no line, the cut was on the ranking."""
    gi = t["gex_influence"].to_numpy(dtype=np.float64)
    if not (np.isfinite(gi).all() and (gi >= 0).all()):
        return []
    fig = plot_score_histogram(gi, None, is_issue=is_issue, truth=truth, score_name="gex")
    fig.axes[0].set_title(f"Exact GEX self-influence (rows flagged on {ranking})", parse_math=False)
    if is_issue.any():
        lo, hi = float(gi[is_issue].min()), float(gi[is_issue].max())
        spread = f"The {int(is_issue.sum())} flagged rows have GEX scores from {lo:.3g} to {hi:.3g}. "
    else:
        spread = "No row was flagged. "
    note = (f'<p class="note">The exact GEX self-influence of the same rows (log x-axis). No line is drawn: the '
            f"rows were flagged by the threshold on <code>{html.escape(ranking)}</code> (above), not by a cut on "
            f"this score. {spread}</p>")
    return [_section("gex_histogram", _img_tag(fig, "GEX self-influence histogram") + note)]


HARM_CAVEAT = (
    "Harm ranks the flagged rows by GEX cross-influence on a reference loss (higher = removing the row "
    "lowers that loss more). Measured (benchmarks/RESULTS.md, \"Harm ranking downstream\"): dropping the "
    "flagged rows highest on harm never helped a retrained model more than dropping the same number by the "
    "label-issue score; it is shown for review, not used to choose the rows a policy acts on."
)


def _issue_type_counts(issue_types: Mapping[str, int] | None, summary: Mapping[str, Any] | None) -> dict[str, int]:
    """``{type: rows flagged}`` from ``issue_types``, else the summary's ``"issue types"`` entry; ``{}`` if none."""
    source = issue_types if issue_types is not None else (summary or {}).get("issue types")
    if source is None:
        return {}
    if not isinstance(source, Mapping):
        raise InvalidTypeError(f"issue_types (or the summary's 'issue types' entry) must be a mapping of issue "
                               f"type to rows flagged; found {type(source).__name__}.")
    out = {}
    for key, value in source.items():
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 0:
            raise InvalidInputError(f"issue type {key!r} must count rows flagged as an int >= 0; found {value!r}. "
                                    "Pass {type: n_rows}, as stage.issues.issue_counts returns.")
        out[str(key)] = int(value)
    return out


def _check_harm(harm: Any, n: int) -> pd.DataFrame:
    if not isinstance(harm, pd.DataFrame):
        raise InvalidTypeError(f"harm must be a DataFrame with columns harm and harm_rank (rank_by_harm); "
                               f"found {type(harm).__name__}.")
    missing = [c for c in ("harm", "harm_rank") if c not in harm.columns]
    if missing or len(harm) != n:
        raise InvalidInputError(f"harm must have columns harm and harm_rank and one row per table row ({n}); found "
                                f"columns {list(harm.columns)} and {len(harm)} rows. Pass rank_by_harm's result.")
    return harm.reset_index(drop=True)


def _issue_types_html(types: dict[str, int], summary: Mapping[str, Any] | None, harm: pd.DataFrame | None,
                      t: pd.DataFrame, names: list[str]) -> str:
    """Rows flagged per issue type, then (with ``harm``) the top flagged rows by harm rank and its caveat."""
    n = len(t)
    lines = ["<table>", "<tr><th>issue type</th><th>rows flagged</th><th>share of rows</th></tr>"]
    for name, count in types.items():
        lines.append(f"<tr><td>{html.escape(name)}</td><td class=\"num\">{count}</td>"
                     f'<td class="num">{100.0 * count / n:.1f}%</td></tr>')
    lines.append("</table>")
    dropped = (summary or {}).get("exact duplicates dropped")
    note = "Rows flagged per issue type beside label issues (a row can have several types)."
    if isinstance(dropped, numbers.Integral):
        note += f" Exact duplicates dropped (every copy after the first): {int(dropped)}."
    out = "\n".join(lines) + f'\n<p class="note">{html.escape(note)}</p>'
    if harm is None:
        return out
    ranked = harm.index[harm["harm_rank"].to_numpy() > 0]
    order = sorted(ranked, key=lambda i: int(harm.at[i, "harm_rank"]))[:TOP_ROWS]
    if not order:
        return out + '\n<p class="note">No flagged row has a harm rank.</p>'
    head = ["harm rank", "row_id", "harm", "score", "given", "suggested", "action"]
    rows = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for i in order:
        row = t.iloc[int(i)]
        rows.append(
            f'<tr><td class="num">{int(harm.at[i, "harm_rank"])}</td><td>{html.escape(str(row["row_id"]))}</td>'
            f'<td class="num">{float(harm.at[i, "harm"]):.4g}</td><td class="num">{row["score"]:.4g}</td>'
            f"<td>{html.escape(names[int(row['given_label'])])}</td>"
            f"<td>{html.escape(suggested_name(names, row['suggested_label']))}</td>"
            f"<td>{html.escape(str(row['action']))}</td></tr>"
        )
    rows.append("</table>")
    return (out + f"\n<h3>Top {len(order)} flagged rows by harm rank</h3>\n" + "\n".join(rows)
            + f'\n<p class="note">{html.escape(HARM_CAVEAT)}</p>')


def _top_rows_table(t: pd.DataFrame, names: list[str], truth: np.ndarray | None) -> str:
    top = top_rows(t["score"].to_numpy(), TOP_ROWS)
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
            f"<td>{html.escape(suggested_name(names, row['suggested_label']))}</td>",
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
        The document from ``build_report``, written as UTF-8.

    Returns
    -------
    pathlib.Path
        The absolute path written; its mode is ``0o666 & ~umask``, as for any file the user creates.
    """
    if not isinstance(html_text, str):
        raise InvalidTypeError(f"html_text must be a str (from build_report); found {type(html_text).__name__}.")
    dest = Path(path).expanduser().resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(html_text)
        os.chmod(tmp, file_mode())  # mkstemp's 0600 would survive the rename; a report is meant to be shared
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    logger.info("wrote report to %s", dest)
    return dest

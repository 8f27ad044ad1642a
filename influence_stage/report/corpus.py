"""The curation report: one self-contained HTML page for a curated corpus.

What it shows: the run's summary (counts per manifest status, the budget, the model, timings),
the histogram of the documents' log self-influence with the budget's cut(s) drawn on it (the
lowest scores go as redundant, with a high-end share the highest as junk), sample documents from
the top, the middle and the bottom of the ranking (``sample_rows`` picks them, the flow reads
their texts in one streaming pass), and the near-duplicate groups that were found and kept.
Figures are base64 PNGs, CSS is inline: the file opens offline.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from influence_stage.errors import InvalidInputError

#: Sample documents shown per part of the ranking.
SAMPLES_PER_PART = 5
#: Characters of a sample document shown.
SAMPLE_CHARS = 400
_STYLE = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;"
          "margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}"
          "th{background:#f3f3f3}pre{white-space:pre-wrap;margin:0;font-size:90%}h2{margin-top:1.6em}")


def _scored(manifest: pd.DataFrame) -> pd.DataFrame:
    if "score" not in manifest.columns or "status" not in manifest.columns:
        raise InvalidInputError(f"the manifest needs 'score' and 'status' columns; found {list(manifest.columns)}.")
    return manifest[manifest["score"].notna()]


def sample_rows(manifest: pd.DataFrame, k: int = SAMPLES_PER_PART) -> dict[str, list[int]]:
    """Row ids of ``k`` scored documents from the top, the middle and the bottom of the ranking."""
    t = _scored(manifest).sort_values("score", kind="stable")
    ids = t["row_id"].to_numpy()
    n = len(ids)
    if n == 0:
        return {"top": [], "middle": [], "bottom": []}
    mid = max(0, n // 2 - k // 2)
    return {"top": [int(i) for i in ids[::-1][:k]], "middle": [int(i) for i in ids[mid:mid + k]],
            "bottom": [int(i) for i in ids[:k]]}


def plot_corpus_histogram(scores: np.ndarray, status: Sequence[str], *, low_cut: float | None,
                          high_cut: float | None, bins: int = 50) -> Figure:
    """Histogram of ``log10`` self-influence, kept and removed documents stacked, the cuts as lines."""
    s = np.asarray(scores, dtype=np.float64)
    st = np.asarray(status, dtype=object)
    floor = np.percentile(s[s > 0], 1) if np.any(s > 0) else 1.0
    log = np.log10(np.maximum(s, floor))
    fig = Figure(figsize=(8, 3.6))
    ax = fig.add_subplot()
    edges = np.histogram_bin_edges(log, bins=bins)
    parts = [(log[st == name], name) for name in ("kept", "redundant", "junk") if np.any(st == name)]
    ax.hist([p for p, _ in parts], bins=edges, stacked=True, label=[f"{n} ({len(p)})" for p, n in parts],
            color=[{"kept": "#4c72b0", "redundant": "#bbbbbb", "junk": "#c44e52"}[n] for _, n in parts])
    for cut, name in ((low_cut, "redundant cut"), (high_cut, "junk cut")):
        if cut is not None:
            ax.axvline(np.log10(max(cut, floor)), color="black", ls="--", lw=1)
            ax.text(np.log10(max(cut, floor)), ax.get_ylim()[1] * 0.95, f" {name}", fontsize=8, va="top")
    ax.set_xlabel("log10 self-influence (GEX)")
    ax.set_ylabel("documents")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _table(rows: Sequence[tuple[Any, Any]]) -> str:
    return "<table>" + "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                               for k, v in rows) + "</table>"


def build_corpus_report(manifest: pd.DataFrame, *, texts: Mapping[int, str], summary: Mapping[str, Any],
                        low_cut: float | None, high_cut: float | None,
                        near_duplicates: Sequence[Sequence[int]] = (), title: str = "Corpus curation") -> str:
    """The report as one HTML string.

    Parameters
    ----------
    manifest : pandas.DataFrame
        The curation manifest (``row_id``, ``status``, ``score``, ``base_loss``, ...).
    texts : mapping of row id to str
        Texts of the sample documents (``sample_rows``) and of near-duplicate examples.
    summary : mapping
        Run summary shown as a table.
    low_cut, high_cut : float or None
        The budget's cuts (``PruneResult.low_cut`` / ``high_cut``).
    near_duplicates : sequence of row-id groups
        Near-duplicate groups found (reported, not removed).
    title : str
    """
    scored = _scored(manifest)
    esc = html.escape
    counts = manifest["status"].value_counts().to_dict()
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
             f"<style>{_STYLE}</style></head><body><h1>{esc(title)}</h1>",
             "<h2>Summary</h2>", _table(list(summary.items())),
             "<h2>Documents by status</h2>", _table(sorted(counts.items()))]
    if len(scored):
        fig = plot_corpus_histogram(scored["score"].to_numpy(), scored["status"].to_numpy(), low_cut=low_cut,
                                    high_cut=high_cut)
        parts += ["<h2>Self-influence and the budget's cut</h2>",
                  f'<img src="data:image/png;base64,{_png(fig)}" alt="histogram of log self-influence">']
    by_id = manifest.set_index("row_id")
    for part, ids in sample_rows(manifest).items():
        rows = "".join(
            f"<tr><td>{i}</td><td>{esc(str(by_id.loc[i, 'status']))}</td><td>{by_id.loc[i, 'score']:.4g}</td>"
            f"<td>{by_id.loc[i, 'base_loss']:.3f}</td><td><pre>{esc(str(texts.get(i, ''))[:SAMPLE_CHARS])}</pre></td></tr>"
            for i in ids)
        parts.append(f"<h2>Samples: {part} of the ranking</h2><table><tr><th>row</th><th>status</th>"
                     f"<th>self-influence</th><th>loss at θ*</th><th>text</th></tr>{rows}</table>")
    parts.append(f"<h2>Near-duplicates (reported, not removed)</h2><p>{len(near_duplicates)} group(s) of documents "
                 "equal after lower-casing and collapsing punctuation and spaces, but not byte for byte.</p>")
    if near_duplicates:
        rows = "".join(f"<tr><td>{esc(', '.join(map(str, g[:10])))}{' …' if len(g) > 10 else ''}</td>"
                       f"<td><pre>{esc(str(texts.get(int(g[0]), ''))[:200])}</pre></td></tr>"
                       for g in list(near_duplicates)[:10])
        parts.append(f"<table><tr><th>rows</th><th>first text</th></tr>{rows}</table>")
    parts.append("</body></html>\n")
    return "".join(parts)

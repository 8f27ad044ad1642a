"""The report renders flagged rows whose suggestion is empty (no confident other label) as "(none)"."""

from __future__ import annotations

import numpy as np
import pandas as pd

from influence_stage.decisions import decide
from influence_stage.report import build_report, plot_gallery, summary_markdown
from influence_stage.report.common import NO_SUGGESTION_TEXT, flagged_pairs
from influence_stage.report.gallery import gallery_html

NAMES = ["cat", "dog", "fox"]


def _table() -> pd.DataFrame:
    """12 rows; rows 0-5 flagged: 0-2 have a confident other label (relabeled), 3-5 none (dropped)."""
    n = 12
    y = np.arange(n) % 3
    proba = np.full((n, 3), 0.1)
    proba[np.arange(n), y] = 0.8
    proba[:3] = 0.1
    proba[np.arange(3), (y[:3] + 1) % 3] = 0.8            # confident other label
    proba[3:6] = [0.4, 0.35, 0.25]                        # no other label reaches 0.5
    scores = np.r_[np.full(6, 5.0) + np.arange(6), np.linspace(0.1, 0.6, 6)]
    table = decide(scores, y, threshold=2.0, action="relabel", proba=proba, max_fraction_per_class=None).table
    assert table["suggested_label"].isna().tolist() == [False] * 3 + [True] * 3 + [False] * 6
    return table


def test_flagged_pairs_count_the_empty_suggestions():
    pairs = flagged_pairs(_table())
    assert int(pairs["rows"].sum()) == 6
    empty = pairs[pairs["suggested_label"].isna()]
    assert int(empty["rows"].sum()) == 3 and int(empty["relabeled"].sum()) == 0


def test_markdown_and_html_render_empty_suggestions():
    table = _table()
    md = summary_markdown(table, NAMES, threshold=2.0)
    assert f"→ {NO_SUGGESTION_TEXT} |" in md
    assert "nan" not in md and "<NA>" not in md
    doc = build_report(table, class_names=NAMES, threshold=2.0)
    assert f"<td>{NO_SUGGESTION_TEXT}</td>" in doc
    assert "&lt;NA&gt;" not in doc and ">nan<" not in doc


def test_galleries_caption_empty_suggestions():
    table = _table()
    texts = [f"text {i}" for i in range(len(table))]
    html = gallery_html(table, texts, NAMES, k=6)
    assert html.count(f"→ {NO_SUGGESTION_TEXT}") == 3
    fig = plot_gallery(table, texts, NAMES, k=6)
    titles = [ax.get_title() for ax in fig.axes]
    assert sum(f"→ {NO_SUGGESTION_TEXT}" in t for t in titles) == 3

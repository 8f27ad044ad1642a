"""Tests of what the HTML report shows: the gallery as HTML (thumbnails, texts as text), the column
roles in one line, the file mode, the GEX histogram's line, the legends' score name, and precision /
recall in the figure equal to the table."""

from __future__ import annotations

import base64
import html as html_lib
import io
import math
import os
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import influence_stage.report.html as report_html
from influence_stage.errors import InvalidInputError, InvalidTypeError
from influence_stage.report import (
    GALLERY_K,
    build_report,
    gallery_html,
    plot_precision_recall,
    plot_score_histogram,
    precision_recall_at,
    write_report,
)
from influence_stage.report.common import file_mode, roles_line
from influence_stage.report.gallery import GALLERY_HTML_TEXT_CHARS, THUMBNAIL_PIXELS, image_png_base64

N, K = 120, 4
NAMES = ["cat", "dog", "<b>bird</b>", "fish"]
PX = [f"px_{j}" for j in range(64)]


def _table(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """120 rows, 4 classes, 20 truly mislabeled rows with higher scores; the top 24 rows flagged."""
    rng = np.random.default_rng(seed)
    truth = np.zeros(N, dtype=bool)
    truth[rng.choice(N, 20, replace=False)] = True
    scores = np.where(truth, rng.lognormal(-2.0, 1.0, N), rng.lognormal(-5.0, 1.0, N))
    given = rng.integers(0, K, N)
    is_issue = scores >= np.sort(scores)[-24]
    suggested = np.where(is_issue, (given + 1) % K, given)
    table = pd.DataFrame({
        "row_id": np.arange(500, 500 + N), "score": scores, "gex_influence": 2.0 * scores ** 2,
        "label_quality": 1.0 - scores / scores.max(), "is_issue": is_issue,
        "action": np.where(is_issue, "drop", "keep"), "given_label": given.astype(np.int64),
        "suggested_label": suggested.astype(np.int64), "weight": np.ones(N),
    })
    return table, truth


class _Tags(HTMLParser):
    """Start tags with their attributes, and the text inside each ``<blockquote>`` and summary row."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.quotes: list[str] = []
        self.rows: dict[str, str] = {}
        self._in_quote = False
        self._cells: list[str] | None = None
        self._cell = ""

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "blockquote":
            self._in_quote, self._cell = True, ""
        elif tag == "tr":
            self._cells = []
        elif tag in ("th", "td"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "blockquote":
            self.quotes.append(self._cell)
            self._in_quote = False
        elif tag in ("th", "td") and self._cells is not None:
            self._cells.append(self._cell)
        elif tag == "tr" and self._cells is not None:
            if len(self._cells) == 2:
                self.rows[self._cells[0]] = self._cells[1]
            self._cells = None

    def handle_data(self, data):
        self._cell += data


def _parse(doc: str) -> _Tags:
    p = _Tags()
    p.feed(doc)
    return p


def _section(doc: str, key: str) -> str:
    return doc.split(f'<section id="{key}">')[1].split("</section>")[0]


def _top(table: pd.DataFrame, k: int) -> np.ndarray:
    return np.argsort(-table["score"].to_numpy(), kind="stable")[:k]


# ------------------------------------------------------------------------------------------------
# Gallery
# ------------------------------------------------------------------------------------------------

def test_image_gallery_has_one_img_per_row_with_its_pixels():
    table, _ = _table()
    images = np.random.default_rng(1).random((N, 8, 8))
    doc = build_report(table, class_names=NAMES, threshold=0.0, gallery=images)
    imgs = [a for tag, a in _parse(_section(doc, "gallery")).tags if tag == "img"]
    assert len(imgs) == GALLERY_K
    top = _top(table, GALLERY_K)
    for attrs, i in zip(imgs, top):
        assert attrs["class"] == "thumb" and f"row {500 + i}:" in attrs["alt"]
        png = Image.open(io.BytesIO(base64.b64decode(attrs["src"].split(",", 1)[1])))
        assert png.size == (8, 8) and png.mode == "L"
        img = images[i]
        expected = np.rint((img - img.min()) / (img.max() - img.min()) * 255).astype(np.uint8)
        assert np.array_equal(np.asarray(png), expected)
    # Captions are text: given → suggested, score, action, row id; class names escaped.
    first = table.iloc[int(top[0])]
    caption = f"{NAMES[first['given_label']]} → {NAMES[first['suggested_label']]}"
    assert html_lib.escape(caption) in doc and "<b>bird</b>" not in doc


def test_text_gallery_is_html_text_not_pictures():
    table, _ = _table()
    texts = [f"review {i}: a <script>alert({i})</script> & more   words\nhere" for i in range(N)]
    texts[int(_top(table, 1)[0])] = "w" * (GALLERY_HTML_TEXT_CHARS + 50)
    doc = build_report(table, class_names=NAMES, threshold=0.0, gallery=texts)
    section = _section(doc, "gallery")
    parsed = _parse(section)
    assert not [a for tag, a in parsed.tags if tag == "img"] and "data:image/png" not in section
    assert "<script>" not in doc
    top = _top(table, GALLERY_K)
    assert len(parsed.quotes) == GALLERY_K
    assert parsed.quotes[0] == "w" * (GALLERY_HTML_TEXT_CHARS - 1) + "…"
    for quote, i in zip(parsed.quotes[1:], top[1:]):
        assert quote == f"review {i}: a <script>alert({i})</script> & more words here"  # whitespace collapsed


def test_gallery_callable_pil_images_are_shrunk_to_thumbnails():
    table, _ = _table()
    big = Image.fromarray(np.random.default_rng(2).integers(0, 256, (300, 200, 3), dtype=np.uint8))
    section = gallery_html(table, lambda i: big, NAMES, k=3)
    srcs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', section)
    assert len(srcs) == 3
    png = Image.open(io.BytesIO(base64.b64decode(srcs[0])))
    assert png.size == (85, THUMBNAIL_PIXELS) and png.mode == "RGB"
    # uint8 gray pixels are kept as they are, not stretched.
    gray = np.full((5, 6), 7, dtype=np.uint8)
    gray[0, 0] = 9
    kept = Image.open(io.BytesIO(base64.b64decode(image_png_base64(gray))))
    assert np.array_equal(np.asarray(kept), gray)


def test_gallery_errors():
    table, _ = _table()
    with pytest.raises(InvalidInputError, match="one text per row"):
        gallery_html(table, ["a"] * 3, NAMES)
    with pytest.raises(InvalidTypeError, match="single string"):
        gallery_html(table, "abc", NAMES)
    with pytest.raises(InvalidInputError, match="k must"):
        gallery_html(table, ["a"] * N, NAMES, k=0)


# ------------------------------------------------------------------------------------------------
# Summary roles, file mode
# ------------------------------------------------------------------------------------------------

def test_roles_are_one_compact_line():
    roles = {"label": "label", "kind": "tabular", "features": PX}
    assert roles_line(roles) == "label: label · 64 numeric features: px_0 … px_63"
    assert roles_line({"label": "y", "kind": "text", "features": ["sentence"]}) == "label: y · 1 text column: sentence"
    assert roles_line({"label": "y", "kind": "tabular", "features": ["a", "b", "c"]}) == \
        "label: y · 3 numeric features: a, b, c"
    assert roles_line(["not", "roles"]) is None
    table, _ = _table()
    doc = build_report(table, class_names=NAMES, threshold=0.0, summary={"columns": roles})
    rows = _parse(_section(doc, "summary")).rows
    assert rows["columns"] == "label: label · 64 numeric features: px_0 … px_63"
    assert "px_1" not in doc and "px_62" not in doc


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_write_report_follows_the_umask(tmp_path, mask):
    table, _ = _table()
    doc = build_report(table, class_names=NAMES, threshold=0.0)
    old = os.umask(mask)
    try:
        assert file_mode() == 0o666 & ~mask
        out = write_report(tmp_path / f"r{mask:o}.html", doc)
    finally:
        os.umask(old)
    assert os.stat(out).st_mode & 0o777 == 0o666 & ~mask
    assert out.read_text(encoding="utf-8") == doc


# ------------------------------------------------------------------------------------------------
# The report says what it shows
# ------------------------------------------------------------------------------------------------

def _capture(monkeypatch, name: str) -> list:
    figures = []
    original = getattr(report_html, name)

    def wrapped(*args, **kwargs):
        fig = original(*args, **kwargs)
        figures.append(fig)
        return fig

    monkeypatch.setattr(report_html, name, wrapped)
    return figures


def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_line_on_the_gex_histogram_only_where_it_is_a_cut(monkeypatch):
    table, truth = _table()
    rank = table.copy()
    rank["score"] = (np.argsort(np.argsort(table["score"].to_numpy())) + 1) / N
    thr = float(np.sort(rank["score"])[-25])
    figures = _capture(monkeypatch, "plot_score_histogram")
    doc = build_report(rank, class_names=NAMES, threshold=thr, truth=truth, score_name="gex+oos+aum")
    main, gex = (f.axes[0] for f in figures)
    (line,) = [ln for ln in main.get_lines() if ln.get_gid() == "threshold"]
    assert line.get_xdata()[0] == thr
    assert f"threshold = {thr:.3g} on gex+oos+aum (24 flagged)" in _legend(main)
    assert not gex.get_lines() and not any("threshold" in s for s in _legend(gex))
    assert "gex+oos+aum" in gex.get_title() and "GEX" in gex.get_title()
    note = _section(doc, "gex_histogram")
    assert "No line is drawn" in note and "threshold on <code>gex+oos+aum</code>" in note
    gi = table["gex_influence"].to_numpy()[table["is_issue"].to_numpy()]
    assert f"from {gi.min():.3g} to {gi.max():.3g}" in note
    # A GEX-scale run: its own scores carry the threshold, and no second histogram.
    figures.clear()
    doc = build_report(table, class_names=NAMES, threshold=0.01, score_name="gex")
    assert len(figures) == 1 and "gex_histogram" not in doc
    assert any(s.startswith("threshold = 0.01 on gex ") for s in _legend(figures[0].axes[0]))
    # Without a threshold no line, whatever the axis.
    for name in (None, "gex+oos+aum"):
        ax = plot_score_histogram(rank["score"], None, is_issue=rank["is_issue"], score_name=name).axes[0]
        assert not [ln for ln in ax.get_lines() if ln.get_gid() == "threshold"]


def test_precision_recall_in_the_figure_equals_the_table(monkeypatch):
    table, truth = _table()
    # A per-class cap kept three of the rows above the threshold: is_issue is not scores > threshold.
    capped = table.copy()
    flagged = capped["is_issue"].to_numpy().copy()
    flagged[_top(table, 3)] = False
    capped["is_issue"] = flagged
    thr = float(np.sort(table["score"])[-25])
    assert ((capped["score"] > thr).to_numpy() != flagged).sum() == 3
    figures = _capture(monkeypatch, "plot_precision_recall")
    doc = build_report(capped, class_names=NAMES, threshold=thr, truth=truth, score_name="gex-trimmed")
    (ax,) = figures[0].axes
    (point,) = [ln for ln in ax.get_lines() if ln.get_gid() == "operating_point"]
    rows = _parse(_section(doc, "precision_recall")).rows
    p, r, _ = precision_recall_at(flagged, truth)
    assert point.get_ydata()[0] == p and point.get_xdata()[0] == r  # the same function, the same mask
    assert float(rows["precision at threshold"]) == pytest.approx(p, rel=1e-3)
    assert float(rows["recall at threshold"]) == pytest.approx(r, rel=1e-3)
    p_cut, _, _ = precision_recall_at(table["score"].to_numpy() > thr, truth)
    assert not math.isclose(p_cut, p)  # the old operating point (scores > threshold) would differ
    assert any(s.startswith("gex-trimmed (AP = ") for s in _legend(ax))
    assert "average precision (gex-trimmed)" in rows
    # plot_precision_recall alone: the flagged mask wins over the threshold.
    alone = plot_precision_recall(capped["score"], truth, thr, flagged=flagged).axes[0]
    (pt,) = [ln for ln in alone.get_lines() if ln.get_gid() == "operating_point"]
    assert (pt.get_xdata()[0], pt.get_ydata()[0]) == (r, p)
    with pytest.raises(InvalidInputError):
        plot_precision_recall(capped["score"], truth, flagged=flagged[:-1])

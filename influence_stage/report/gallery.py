"""The report's gallery of the most suspicious rows as HTML: image thumbnails and texts as text.

Each cell is one row: an image as its own small base64 PNG (``<img>``), or a text as escaped HTML
text (selectable, searchable, read by screen readers; never drawn into a picture), captioned with
``given → suggested``, the score, the action and the row id. ``influence_stage.report.plot_gallery``
draws the same rows into one matplotlib figure for users who want a figure; the HTML report uses
this module.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from influence_stage._checks import check_positive_int
from influence_stage.decisions.schema import check_table
from influence_stage.report.common import GALLERY_K, GALLERY_NAME_CHARS, shorten, suggested_name, top_rows
from influence_stage.report.plots import as_image, gallery_kind

#: Characters of a text shown in one HTML gallery cell; longer texts are cut with an ellipsis.
GALLERY_HTML_TEXT_CHARS = 1000

#: Longest side, in pixels, of an embedded thumbnail; larger images are shrunk (smaller ones are
#: embedded at their own size and enlarged by the page's CSS, pixel for pixel).
THUMBNAIL_PIXELS = 128

GALLERY_CSS = """
.gallery { display: flex; flex-wrap: wrap; gap: .6em; }
.gallery figure { margin: 0; border: 1px solid #ccc; padding: .3em; font-size: .8em; background: #fafafa; }
.gallery figure.image { width: 8.5em; text-align: center; }
.gallery figure.text { width: 21em; }
.gallery img.thumb { width: 96px; height: 96px; object-fit: contain; image-rendering: pixelated; }
.gallery blockquote { margin: .2em 0; font-size: 1.1em; white-space: pre-wrap; word-break: break-word; }
.gallery figcaption { color: #444; }
"""


def image_png_base64(img: Any) -> str:
    """One image as a base64 PNG, shrunk to at most ``THUMBNAIL_PIXELS`` on its longest side.

    Parameters
    ----------
    img : array-like or PIL image
        ``(h, w)`` gray or ``(h, w, c)`` with ``c`` in 1, 3, 4. ``uint8`` pixels are kept as they are;
        a 2-D image of another dtype is scaled from its own minimum and maximum to 0..255 (as the
        figure's gray colour map does); float RGB(A) is taken in [0, 1] (rescaled per image when
        outside, as ``influence_stage.report.plot_gallery`` does).

    Returns
    -------
    str
        The PNG file, base64-encoded (ASCII).
    """
    from PIL import Image

    arr = as_image(img)
    if arr.dtype != np.uint8:
        a = np.nan_to_num(arr.astype(np.float64))
        if a.ndim == 2:
            lo, hi = float(a.min()), float(a.max())
            a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
        arr = np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
    pil = Image.fromarray(arr)
    if max(pil.size) > THUMBNAIL_PIXELS:
        pil.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def gallery_html(table: pd.DataFrame, images_or_texts: Any, class_names: Sequence[str], k: int = GALLERY_K) -> str:
    """The ``k`` most suspicious rows (highest score first) as HTML cells.

    Parameters
    ----------
    table : pandas.DataFrame
        The decisions table.
    images_or_texts : ndarray, callable or sequence of str
        As ``influence_stage.report.plot_gallery``: an image array ``(n, h, w[, c])`` or
        ``(n, c, h, w)``, a callable ``f(i) -> image`` of the row position, or ``n`` strings.
    class_names : sequence of str
        ``class_names[k]`` names label ``k``.
    k : int, default 24
        Number of cells; fewer when the table has fewer rows. Ties in score keep row order.

    Returns
    -------
    str
        ``<div class="gallery">`` holding ``min(k, n)`` ``<figure>`` cells, highest score first: for
        images one ``<img class="thumb">`` each (a base64 PNG, ``image_png_base64``); for texts
        one ``<blockquote>`` with the text, whitespace collapsed, cut at
        ``GALLERY_HTML_TEXT_CHARS`` characters and HTML-escaped. Captions read
        ``<given> → <suggested>`` then ``score <s> · <action> · row <row_id>``, escaped.
    """
    t, names = check_table(table, class_names)
    k = check_positive_int(k, "k")
    kind, source = gallery_kind(images_or_texts, len(t))
    name_chars = GALLERY_NAME_CHARS[kind == "text"]
    cells = []
    for i in top_rows(t["score"].to_numpy(), k):
        row = t.iloc[int(i)]
        given = shorten(names[int(row["given_label"])], name_chars)
        suggested = shorten(suggested_name(names, row["suggested_label"]), name_chars)
        caption = (f"<figcaption><b>{html.escape(given)} → {html.escape(suggested)}</b><br>"
                   f"score {row['score']:.3g} · {html.escape(str(row['action']))} · "
                   f"row {html.escape(str(row['row_id']))}</figcaption>")
        if kind == "text":
            text = shorten(" ".join((source[int(i)] or "").split()), GALLERY_HTML_TEXT_CHARS)
            cells.append(f'<figure class="text"><blockquote>{html.escape(text)}</blockquote>{caption}</figure>')
        else:
            png = image_png_base64(source[int(i)] if kind == "image" else source(int(i)))
            alt = html.escape(f"row {row['row_id']}: given {given}, suggested {suggested}", quote=True)
            cells.append(f'<figure class="image"><img class="thumb" src="data:image/png;base64,{png}" '
                         f'alt="{alt}">{caption}</figure>')
    return '<div class="gallery">\n' + "\n".join(cells) + "\n</div>"

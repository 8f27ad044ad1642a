"""The gallery figure: the most suspicious rows drawn into one matplotlib figure (images as images,
texts as wrapped text), and what a gallery source holds (``gallery_kind``, ``as_image``).

Drawn with ``matplotlib.figure.Figure`` and an Agg canvas, never ``pyplot``; user strings with
``parse_math=False``. The HTML report's gallery is ``influence_stage.report.gallery``.
"""

from __future__ import annotations

import logging
import math
import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from influence_stage._checks import check_positive_int
from influence_stage.decisions.schema import check_table
from influence_stage.errors import InvalidInputError, InvalidTypeError
from influence_stage.report.common import (
    suggested_name,
    GALLERY_K,
    GALLERY_NAME_CHARS,
    GALLERY_TEXT_CHARS,
    new_figure,
    shorten,
    top_rows,
)

logger = logging.getLogger(__name__)


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
        suggested = shorten(suggested_name(names, row["suggested_label"]), name_chars)
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


__all__ = ["as_image", "gallery_kind", "plot_gallery"]

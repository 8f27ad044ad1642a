"""Arrow helpers of the data layer: batches of columns, column kinds, short previews for messages."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

import datasets
import numpy as np
import pyarrow as pa

ROW_ID = "row_id"
"""Name of the column that identifies every input row, stable through every step."""

ADDED_ROW_ID = "influence_stage:added"
"""The ``id`` of the ``row_id`` feature when the stage added the column (the source had none): such a
column is the stage's, so published data leaves it out (the row ids live in the manifest)."""


def row_id_was_added(ds: datasets.Dataset) -> bool:
    """Whether ``ds``'s ``row_id`` column was added by the stage rather than given by the source."""
    return getattr(ds.features.get(ROW_ID), "id", None) == ADDED_ROW_ID


Kind = Literal["tabular", "image", "text"]


NUMERIC_DTYPE_PREFIXES = ("int", "uint", "float", "bool")


STRING_DTYPES = {"string", "large_string"}


def preview(items: Sequence[Any], limit: int = 10) -> str:
    """``[a, b, ...]`` with at most ``limit`` items and the total when cut."""
    items = list(items)
    shown = ", ".join(repr(x) for x in items[:limit])
    more = f", ... ({len(items)} in all)" if len(items) > limit else ""
    return f"[{shown}{more}]"


def gathered(ds: datasets.Dataset, columns: Sequence[str], start: int, stop: int) -> pa.Table | None:
    """Rows ``start:stop`` of a dataset with an indices mapping (after select / filter / shuffle).

    datasets gathers such rows one slice per row (about 1 s per 100k rows); one Arrow ``take`` is
    ~100x faster. Returns None when the dataset has no indices mapping or its internals differ.
    """
    indices = getattr(ds, "_indices", None)
    if indices is None:
        return None
    try:
        table = ds.data.table.select(list(columns))
        rows = indices.column(0).slice(start, stop - start).to_numpy().astype(np.int64)
    except Exception:  # pragma: no cover - a datasets version with other internals: use the public path
        return None
    return take_rows(table, rows)


def take_rows(table: pa.Table, rows: np.ndarray) -> pa.Table:
    """Rows ``rows`` of ``table``, in that order, taken one record batch at a time.

    ``Table.take`` on a column of many chunks (a memory-mapped dataset holds one per 1000 rows)
    first concatenates all of them, so each call would copy the whole column, however few rows it
    wants. Here each batch the rows fall in gives its own rows; unsorted rows are taken sorted and
    put back in order within the result.
    """
    rows = np.asarray(rows, dtype=np.int64)
    batches = [b for b in table.to_batches() if b.num_rows]
    if len(batches) <= 1 or not len(rows):
        return table.take(pa.array(rows, type=pa.int64()))
    order = None
    if np.any(rows[1:] < rows[:-1]):
        order = np.argsort(rows, kind="stable")
        rows = rows[order]
    offsets = np.cumsum([0] + [b.num_rows for b in batches])
    which = np.searchsorted(offsets, rows, side="right") - 1
    bounds = [0, *(np.flatnonzero(np.diff(which)) + 1).tolist(), len(rows)]
    parts = [batches[which[a]].take(pa.array(rows[a:b] - offsets[which[a]], type=pa.int64()))
             for a, b in zip(bounds, bounds[1:])]
    out = pa.Table.from_batches(parts, schema=table.schema)
    if order is None:
        return out
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return out.take(pa.array(inverse, type=pa.int64()))


def flat_dataset(ds: datasets.Dataset) -> datasets.Dataset:
    """The same rows as ``ds`` without an indices mapping: one contiguous Arrow table, in ``ds`` order.

    A selected or filtered dataset is a view (an indices mapping over the original table), and
    datasets writes such a view one gathered slice per row: Parquet and ``save_to_disk`` then take
    seconds and hundreds of MB per 100k rows. Arrow takes (``take_rows``) give a plain table
    that writes at disk speed. ``ds`` itself when it has no mapping (or other internals).
    """
    empty = gathered(ds, ds.column_names, 0, 0)
    if empty is None:
        return ds
    from datasets.table import InMemoryTable

    # gathered in blocks, so that putting shuffled rows back in order never copies the whole table twice
    blocks = [gathered(ds, ds.column_names, start, min(start + FLAT_BLOCK_ROWS, ds.num_rows))
              for start in range(0, ds.num_rows, FLAT_BLOCK_ROWS)]
    table = pa.concat_tables(blocks) if blocks else empty
    return datasets.Dataset(InMemoryTable(table), info=ds.info.copy(), split=ds.split)


FLAT_BLOCK_ROWS = 1 << 16
"""Rows per gathered block of ``flat_dataset`` (one Arrow chunk each)."""


def in_memory_dataset(table: pa.Table, features: datasets.Features | None = None, *,
                      like: datasets.Dataset | None = None) -> datasets.Dataset:
    """A ``datasets.Dataset`` over an Arrow table, without hashing its content.

    ``Dataset.from_dict`` / ``from_pandas`` / ``add_column`` fingerprint a new in-memory dataset by
    pickling its state, which costs seconds on a wide table (10k rows x 784 columns) and is used
    only by ``datasets``' own cache of ``map`` results, which in-memory data never writes. The stage
    keys its caches on ``influence_stage.data.fingerprint.dataset_fingerprint`` (content), so a
    fresh random ``datasets`` fingerprint is given instead, as ``datasets`` does for data it cannot hash.

    Parameters
    ----------
    table : pyarrow.Table
        ``n`` rows.
    features : datasets.Features, optional
        The columns' feature types; inferred from the Arrow schema when None.
    like : datasets.Dataset, optional
        A dataset whose info (description, citation, ...) and split the new one keeps.
    """
    from datasets.fingerprint import generate_random_fingerprint
    from datasets.table import InMemoryTable

    info = like.info.copy() if like is not None else datasets.DatasetInfo()
    info.features = features
    return datasets.Dataset(InMemoryTable(table), info=info, split=like.split if like is not None else None,
                            fingerprint=generate_random_fingerprint())


def arrow_column(ds: datasets.Dataset, name: str) -> pa.Array:
    """One column as a contiguous Arrow array, in dataset order (indices mapping applied)."""
    if getattr(ds, "_indices", True) is None:
        try:  # no indices mapping: the stored column itself (a formatted read copies the schema's features)
            col = ds.data.table.column(name)
            return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        except (AttributeError, KeyError):  # pragma: no cover - other datasets internals: the public path
            pass
    table = gathered(ds, [name], 0, ds.num_rows)
    col = (table if table is not None else ds.with_format("arrow", columns=[name])[:])[name]
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def where(row: int, row_id: Any) -> str:
    """``"row 5 (row_id 12)"`` for messages (numpy scalars shown as plain numbers)."""
    if hasattr(row_id, "item"):
        row_id = row_id.item()
    return f"row {row}" if row_id is None else f"row {row} (row_id {row_id})"


def iter_batches(ds: datasets.Dataset, columns: Sequence[str], batch_size: int) -> Iterator[tuple[int, pa.Table]]:
    """Yield ``(first_row, arrow_table)`` batches of ``columns`` (plus ``row_id`` when present).

    Arrow format means no decoding: image columns come as ``{bytes, path}`` structs.
    """
    cols = list(columns)
    if ROW_ID in ds.column_names and ROW_ID not in cols:
        cols.append(ROW_ID)
    if gathered(ds, cols, 0, 0) is not None:
        for start in range(0, ds.num_rows, batch_size):
            yield start, gathered(ds, cols, start, min(start + batch_size, ds.num_rows))
        return
    start = 0
    for table in ds.with_format("arrow", columns=cols).iter(batch_size=batch_size):
        yield start, table
        start += table.num_rows


def batch_row_ids(table: pa.Table) -> list[Any] | None:
    return table.column(ROW_ID).to_pylist() if ROW_ID in table.column_names else None


def value_dtype(feature: Any) -> str | None:
    return feature.dtype if isinstance(feature, datasets.Value) else None


def is_numeric_value(feature: Any) -> bool:
    dtype = value_dtype(feature)
    return dtype is not None and dtype.startswith(NUMERIC_DTYPE_PREFIXES)


def is_string_value(feature: Any) -> bool:
    return value_dtype(feature) in STRING_DTYPES


def list_depth_and_leaf(feature: Any) -> tuple[int, Any]:
    depth = 0
    while isinstance(feature, (datasets.List, datasets.LargeList)):
        depth += 1
        feature = feature.feature
    return depth, feature


def _feature_key(feature: Any) -> Any:
    """A hashable key equal for features of the same kind: plain values by class and dtype, others by repr."""
    if type(feature) is datasets.Value:
        return (datasets.Value, feature.dtype)
    return (type(feature), repr(feature))


def column_kinds(features: datasets.Features) -> dict[str, str | None]:
    """``column_kind`` of every column, worked out once per distinct feature type.

    A wide table (784 pixel columns, 1,024 embedding columns) holds a handful of distinct feature
    types; the per-column cost is one dictionary lookup. Pass ``ds.features`` once: each access of
    that property deep-copies every feature.

    Parameters
    ----------
    features : datasets.Features
        ``{column: feature}`` of ``d`` columns.

    Returns
    -------
    dict of str to str or None
        ``d`` entries, in column order.
    """
    keys = [_feature_key(f) for f in features.values()]
    kind_of: dict[Any, str | None] = {}
    for key, feature in zip(keys, features.values()):
        if key not in kind_of:
            kind_of[key] = column_kind(feature)
    return {name: kind_of[key] for name, key in zip(features, keys)}


def string_columns(features: datasets.Features) -> list[str]:
    """The columns of plain string values (``Value("string")`` / ``Value("large_string")``), in order."""
    return [name for name, f in features.items() if isinstance(f, datasets.Value) and f.dtype in STRING_DTYPES]


def column_kind(feature: Any) -> str | None:
    """``"image"``, ``"text"``, ``"numeric"``, ``"categorical"`` (a ClassLabel) or ``None`` (unusable)."""
    if isinstance(feature, datasets.Image):
        return "image"
    if isinstance(feature, (datasets.Array2D, datasets.Array3D)):
        return "image"
    depth, leaf = list_depth_and_leaf(feature)
    if depth == 1 and is_numeric_value(leaf):
        return "numeric"  # a vector per row (an embedding): one tabular feature per position
    if depth in (2, 3) and is_numeric_value(leaf):
        return "image"  # a 2-D or 3-D numeric array per row
    if depth:
        return None
    if isinstance(feature, datasets.ClassLabel):
        return "categorical"
    if is_string_value(feature):
        return "text"
    if is_numeric_value(feature):
        return "numeric"
    return None

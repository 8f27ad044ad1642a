"""The stage's ``row_id`` column: added as ``0..n-1`` when absent, checked when present, read back."""

from __future__ import annotations

import datasets
import numpy as np
import pyarrow as pa

from influence_stage.data.arrow import ADDED_ROW_ID, ROW_ID, arrow_column, in_memory_dataset, value_dtype
from influence_stage.errors import InvalidInputError, InvalidTypeError


def ensure_row_id(ds: datasets.Dataset) -> datasets.Dataset:
    """Add ``row_id`` ``(n,) int64`` = ``0..n-1`` in row order if absent; else check it.

    An existing ``row_id`` must be an integer column without nulls and without duplicates.
    """
    if ROW_ID not in ds.column_names:
        from datasets.table import InMemoryTable

        if isinstance(ds.data, InMemoryTable) and ds._indices is None:
            # Dataset.add_column, without re-hashing a wide table for datasets' fingerprint. Memory-mapped
            # data keeps add_column, which pickles as references to its files rather than as the rows.
            features = ds.features
            features[ROW_ID] = datasets.Value("int64", id=ADDED_ROW_ID)
            table = ds.data.table.append_column(ROW_ID, pa.array(np.arange(ds.num_rows, dtype=np.int64)))
            return in_memory_dataset(table, features, like=ds)
        return ds.add_column(ROW_ID, np.arange(ds.num_rows, dtype=np.int64),
                             feature=datasets.Value("int64", id=ADDED_ROW_ID))
    feature = ds.features[ROW_ID]
    dtype = value_dtype(feature)
    if dtype is None or not dtype.startswith(("int", "uint")):
        raise InvalidTypeError(
            f"column {ROW_ID!r} must hold integer ids; found {feature!r}. "
            f"Fix: rename that column so a fresh {ROW_ID} is added."
        )
    col = arrow_column(ds, ROW_ID)
    if col.null_count:
        first = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
        raise InvalidInputError(
            f"column {ROW_ID!r} must have no nulls; found {col.null_count}, the first at row {first}. "
            f"Fix: fill them or drop the column so fresh ids are added."
        )
    ids = col.to_numpy(zero_copy_only=False)
    ordered = np.sort(ids, kind="stable")
    dup = np.flatnonzero(ordered[1:] == ordered[:-1])
    if dup.size:
        value = ordered[dup[0]]
        rows = np.flatnonzero(ids == value)[:5].tolist()
        n_dup = np.unique(ordered[dup]).size
        raise InvalidInputError(
            f"column {ROW_ID!r} must be unique; id {int(value)} appears at rows {rows} "
            f"({n_dup} duplicated id(s) in all). Fix: deduplicate or drop the column so fresh ids are added."
        )
    return ds


def row_ids(ds: datasets.Dataset) -> np.ndarray:
    """The ``row_id`` column as ``(n,) int64``, in dataset order."""
    if ROW_ID not in ds.column_names:
        raise InvalidInputError(
            f"the dataset has no {ROW_ID!r} column; found columns {ds.column_names}. "
            "Fix: load it with load_source (or ensure_row_id)."
        )
    return arrow_column(ds, ROW_ID).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


__all__ = ["ensure_row_id", "row_ids"]

"""Numeric columns, and list / array columns of numbers (embeddings), → standardised float32 features."""

from __future__ import annotations

from collections.abc import Sequence

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from influence_stage.data.arrow import Kind, batch_row_ids, iter_batches, where
from influence_stage.data.featurize.config import FeaturizeConfig, Welford, safe_scale
from influence_stage.errors import (
    InvalidInputError,
)


def _is_list(typ: pa.DataType) -> bool:
    return pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ)


class TabularFeaturizer:
    """Numeric and bool columns, and list / array columns of numbers, → standardized ``(n, d)`` float32.

    A scalar column gives one feature. A list column (an embedding stored as ``List(float32)``, a
    fixed-size ``List(float32, length=d)``, an Arrow ``fixed_size_list``) gives one feature per
    position: its vectors must all have the length fitted on (the first row's), so a row's
    vector is spread over ``d`` consecutive features, in column order. Each feature is centred by
    its fitted mean and divided by its fitted population std; a feature with zero std is only
    centred; bools count as 0/1. A null, NaN or infinite value (or a vector of another length)
    raises an error naming the column and the row.

    Attributes
    ----------
    widths_ : tuple of int
        Features per column (1 for a scalar column, the vector length for a list column).
    mean_ : numpy.ndarray, shape ``(d,)`` float64
    scale_ : numpy.ndarray, shape ``(d,)`` float64
        Fitted std, 1.0 where the std is 0.
    n_features_out_ : int
        ``d = sum(widths_)``.
    """

    kind: Kind = "tabular"

    def __init__(self, columns: Sequence[str], config: FeaturizeConfig | None = None) -> None:
        self.columns = tuple(columns)
        self.config = config or FeaturizeConfig()

    def _bad(self, table: pa.Table, start: int, name: str, bad: np.ndarray, found: str, expected: str) -> None:
        i = int(np.flatnonzero(bad)[0])
        ids = batch_row_ids(table)
        raise InvalidInputError(
            f"feature column {name!r} has {found} at {where(start + i, None if ids is None else ids[i])} "
            f"({int(bad.sum())} in this batch). Expected {expected}. Fix: impute or drop those rows, or leave the "
            "column out with feature_columns=."
        )

    def _width(self, col: pa.Array) -> int:
        """Features of one column: 1, or the length of its first non-null vector."""
        if not _is_list(col.type):
            return 1
        if pa.types.is_fixed_size_list(col.type):
            return int(col.type.list_size)
        lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
        valid = lengths[~np.isnan(lengths.astype(np.float64))] if lengths.dtype.kind == "f" else lengths
        return int(valid[0]) if len(valid) else 0

    def _vectors(self, col: pa.Array, width: int, table: pa.Table, start: int, name: str) -> np.ndarray:
        """A list column's rows as ``(rows, width)`` float64 (every row checked)."""
        null = col.is_null().to_numpy(zero_copy_only=False)
        if null.any():
            self._bad(table, start, name, null, "a missing vector (null)", f"a vector of {width} finite numbers")
        lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
        wrong = lengths != width
        if wrong.any():
            i = int(np.flatnonzero(wrong)[0])
            self._bad(table, start, name, wrong, f"a vector of length {int(lengths[i])}",
                      f"every vector of the length fitted on ({width})")
        leaf = col.flatten()
        leaf_null = leaf.is_null().to_numpy(zero_copy_only=False)
        values = pc.fill_null(leaf, False if pa.types.is_boolean(leaf.type) else 0).to_numpy(
            zero_copy_only=False).astype(np.float64).reshape(len(col), width)
        bad = leaf_null.reshape(len(col), width).any(1) | ~np.isfinite(values).all(1)
        if bad.any():
            self._bad(table, start, name, bad, "a vector with a missing or non-finite value",
                      f"a vector of {width} finite numbers")
        return values

    def _read(self, table: pa.Table, start: int) -> np.ndarray:
        block = np.empty((table.num_rows, sum(self.widths_)), dtype=np.float64)
        at = 0
        for name, width in zip(self.columns, self.widths_):
            col = table.column(name).combine_chunks()
            if _is_list(col.type):
                block[:, at:at + width] = self._vectors(col, width, table, start, name)
            elif width != 1:
                raise InvalidInputError(f"feature column {name!r} holds single numbers; the featurizer was fitted on "
                                        f"vectors of {width}. Fix: featurize data with the columns it was fitted on.")
            else:
                null = col.is_null().to_numpy(zero_copy_only=False)
                values = pc.fill_null(col, False if pa.types.is_boolean(col.type) else 0).to_numpy(
                    zero_copy_only=False).astype(np.float64)
                bad = null | ~np.isfinite(values)
                if bad.any():
                    i = int(np.flatnonzero(bad)[0])
                    found = "null" if null[i] else repr(float(values[i]))
                    self._bad(table, start, name, bad, f"a missing or non-finite value ({found})", "finite numbers")
                block[:, at] = values
            at += width
        return block

    def fit(self, ds: datasets.Dataset, *, batch_size: int = 4096) -> TabularFeaturizer:
        """Learn each feature's mean and std from ``ds`` (one pass); list columns' lengths from their first row."""
        stats = None
        for start, table in iter_batches(ds, self.columns, batch_size):
            if stats is None:
                self.widths_ = tuple(self._width(table.column(c).combine_chunks()) for c in self.columns)
                empty = [c for c, w in zip(self.columns, self.widths_) if w == 0]
                if empty:
                    raise InvalidInputError(f"feature column {empty[0]!r} holds empty vectors (or none) in its "
                                            "first rows; expected vectors of numbers. Fix: leave it out with "
                                            "feature_columns=.")
                stats = Welford(sum(self.widths_))
            stats.update(self._read(table, start))
        if stats is None:
            raise InvalidInputError("the dataset has 0 rows; nothing to fit the featurizer on.")
        self.mean_ = stats.mean
        self.scale_ = safe_scale(stats.std, stats.mean)
        self.n_features_out_ = int(sum(self.widths_))
        return self

    def transform(self, ds: datasets.Dataset, *, batch_size: int = 4096) -> np.ndarray:
        """Standardized features ``(n, d)`` float32."""
        if not hasattr(self, "widths_"):  # fitted before list columns were read: one feature per column
            self.widths_ = (1,) * len(self.columns)
        out = np.empty((ds.num_rows, self.n_features_out_), dtype=np.float32)
        for start, table in iter_batches(ds, self.columns, batch_size):
            out[start:start + table.num_rows] = (self._read(table, start) - self.mean_) / self.scale_
        return out

    def fit_transform(self, ds: datasets.Dataset, *, batch_size: int = 4096) -> np.ndarray:
        return self.fit(ds, batch_size=batch_size).transform(ds, batch_size=batch_size)

"""Numeric columns, and list / array columns of numbers (embeddings), → standardised float32 features.

Missing cells. A null or NaN cell of a numeric column (a null vector, or a null / NaN entry of a
vector, in a list column) is filled with its feature's median over the rows where it is present,
computed at fit; ``missing_`` records which cells of the data last transformed were filled, so the
stage reports those rows as ``null`` issues (``influence_stage.issues``) instead of failing. An
infinite value, a feature with no value on any row, or a vector of another length is an error
naming the column.
"""

from __future__ import annotations

import warnings
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


#: A feature whose fitted std is below this share of the median non-zero std of all the features is
#: constant (only centred): a near-constant column, such as an encoder dimension that is ~0 on every row
#: and given as its own float column, would otherwise be scaled from rounding noise up to unit variance.
RELATIVE_CONSTANT_STD = 1e-5


def tabular_scale(std: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``(d,)`` float64: ``std`` ``(d,)``, with 1.0 for a constant feature.

    A feature is constant when its std is at the rounding level of its mean ``(d,)`` (``safe_scale``)
    or below ``RELATIVE_CONSTANT_STD`` times the median of the features' non-zero stds.
    """
    std = np.asarray(std, dtype=np.float64)
    scale = safe_scale(std, mean)
    nonzero = std[std > 0]
    if nonzero.size:
        scale = np.where(std < RELATIVE_CONSTANT_STD * float(np.median(nonzero)), 1.0, scale)
    return scale


def _is_list(typ: pa.DataType) -> bool:
    return pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ)


def _as_float(col: pa.Array) -> np.ndarray:
    """A numeric or bool Arrow array as float64, with NaN where it is null."""
    null = col.is_null().to_numpy(zero_copy_only=False)
    values = pc.fill_null(col, False if pa.types.is_boolean(col.type) else 0).to_numpy(
        zero_copy_only=False).astype(np.float64)
    if null.any():
        values[null] = np.nan
    return values


class TabularFeaturizer:
    """Numeric and bool columns, and list / array columns of numbers, → standardized ``(n, d)`` float32.

    A scalar column gives one feature. A list column (an embedding stored as ``List(float32)``, a
    fixed-size ``List(float32, length=d)``, an Arrow ``fixed_size_list``) gives one feature per
    position: its vectors must all have the length fitted on (the first non-null vector's), so a
    row's vector is spread over ``d`` consecutive features, in column order. Each feature is centred
    by its fitted mean and divided by its fitted population std; a constant feature (zero std, or a
    std below ``RELATIVE_CONSTANT_STD`` times the median non-zero std, ``tabular_scale``) is only
    centred; bools count as 0/1.

    A missing cell (null or NaN; a null vector, or a null or NaN entry of a vector) is filled with
    its feature's median over the fit rows where it is present (``fill_``; a feature with no missing
    cell at fit is filled with its fitted mean, i.e. 0 once standardised), and the mean and std are
    those of the filled values. ``missing_`` marks the filled cells of the data last transformed,
    for the ``null`` issue type. An infinite value, a feature with no value on any fit row, or a
    vector of another length raises an error naming the column and the row.

    Attributes
    ----------
    widths_ : tuple of int
        Features per column (1 for a scalar column, the vector length for a list column).
    mean_ : numpy.ndarray, shape ``(d,)`` float64
    scale_ : numpy.ndarray, shape ``(d,)`` float64
        Fitted std, 1.0 where the feature is constant (``tabular_scale``).
    fill_ : numpy.ndarray, shape ``(d,)`` float64
        The value a missing cell of each feature is filled with.
    n_missing_fit_ : numpy.ndarray, shape ``(d,)`` int64
        Missing cells per feature in the fit data.
    missing_ : numpy.ndarray, shape ``(n, d)`` bool, or None
        The cells filled in the data last transformed (its ``n`` rows in order); None when none was.
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
            f"({int(bad.sum())} in this batch). Expected {expected}. Fix: replace or drop those rows, or leave the "
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
        """A list column's rows as ``(rows, width)`` float64, NaN where missing (every row checked)."""
        null = col.is_null().to_numpy(zero_copy_only=False)
        lengths = pc.fill_null(pc.list_value_length(col), width).to_numpy(zero_copy_only=False)
        wrong = lengths != width
        if wrong.any():
            i = int(np.flatnonzero(wrong)[0])
            self._bad(table, start, name, wrong, f"a vector of length {int(lengths[i])}",
                      f"every vector of the length fitted on ({width})")
        values = np.full((len(col), width), np.nan)
        if (~null).any():
            present = col.filter(pa.array(~null))
            values[~null] = _as_float(present.flatten()).reshape(-1, width)
        inf = np.isinf(values).any(1)
        if inf.any():
            self._bad(table, start, name, inf, "a vector with an infinite value", "vectors of finite numbers "
                      "(a null or NaN entry is a missing cell, filled with its median)")
        return values

    def _read(self, table: pa.Table, start: int) -> np.ndarray:
        """One batch as ``(rows, d)`` float64 with NaN at the missing cells (infinity refused)."""
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
                values = _as_float(col)
                inf = np.isinf(values)
                if inf.any():
                    self._bad(table, start, name, inf, f"an infinite value ({float(values[inf][0])!r})",
                              "finite numbers (a null or NaN cell is a missing cell, filled with its median)")
                block[:, at] = values
            at += width
        return block

    def _feature_column(self, j: int) -> str:
        """The column (and vector position) feature ``j`` comes from, for messages."""
        at = 0
        for name, width in zip(self.columns, self.widths_):
            if j < at + width:
                return repr(name) if width == 1 else f"{name!r} (vector position {j - at})"
            at += width
        return str(j)

    def _medians(self, ds: datasets.Dataset, features: np.ndarray, batch_size: int) -> np.ndarray:
        """The median of each feature in ``features`` over the rows where it is present (one more pass)."""
        parts = [self._read(table, start)[:, features] for start, table in iter_batches(ds, self.columns, batch_size)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing feature: refused just below
            median = np.nanmedian(np.concatenate(parts), axis=0)
        empty = np.flatnonzero(np.isnan(median))
        if empty.size:
            raise InvalidInputError(f"feature column {self._feature_column(int(features[empty[0]]))} has no value on "
                                    "any row (every cell null or NaN); a missing cell is filled with its column's "
                                    "median, which needs some values. Fix: leave the column out with "
                                    "feature_columns=, or fill it.")
        return median

    def fit(self, ds: datasets.Dataset, *, batch_size: int = 4096) -> TabularFeaturizer:
        """Learn each feature's mean, std and fill value from ``ds``; list columns' lengths from their first vector.

        One pass when no cell is missing; otherwise two more: the medians of the features with missing
        cells, then the mean and std of the filled values.
        """
        stats = None
        n_missing = None
        for start, table in iter_batches(ds, self.columns, batch_size):
            if stats is None:
                self.widths_ = tuple(self._width(table.column(c).combine_chunks()) for c in self.columns)
                empty = [c for c, w in zip(self.columns, self.widths_) if w == 0]
                if empty:
                    raise InvalidInputError(f"feature column {empty[0]!r} holds empty vectors (or none) in its "
                                            "first rows; expected vectors of numbers. Fix: leave it out with "
                                            "feature_columns=.")
                stats = Welford(sum(self.widths_))
                n_missing = np.zeros(sum(self.widths_), dtype=np.int64)
            block = self._read(table, start)
            missing = np.isnan(block)
            n_missing += missing.sum(axis=0)
            if not n_missing.any():
                stats.update(block)
        if stats is None or n_missing is None:
            raise InvalidInputError("the dataset has 0 rows; nothing to fit the featurizer on.")
        d = int(sum(self.widths_))
        fill = np.full(d, np.nan)
        if n_missing.any():
            with_missing = np.flatnonzero(n_missing)
            fill[with_missing] = self._medians(ds, with_missing, batch_size)
            stats = Welford(d)
            for start, table in iter_batches(ds, self.columns, batch_size):
                block = self._read(table, start)
                stats.update(np.where(np.isnan(block), fill[None, :], block))
        self.mean_ = stats.mean
        self.scale_ = tabular_scale(stats.std, stats.mean)
        self.fill_ = np.where(np.isnan(fill), self.mean_, fill)
        self.n_missing_fit_ = n_missing
        self.n_features_out_ = d
        return self

    def transform(self, ds: datasets.Dataset, *, batch_size: int = 4096) -> np.ndarray:
        """Standardized features ``(n, d)`` float32, missing cells filled (recorded in ``missing_``)."""
        if not hasattr(self, "widths_"):  # fitted before list columns were read: one feature per column
            self.widths_ = (1,) * len(self.columns)
        fill = getattr(self, "fill_", self.mean_)  # fitted before missing cells were filled: the mean
        out = np.empty((ds.num_rows, self.n_features_out_), dtype=np.float32)
        filled = None
        for start, table in iter_batches(ds, self.columns, batch_size):
            block = self._read(table, start)
            missing = np.isnan(block)
            if missing.any():
                if filled is None:
                    filled = np.zeros(out.shape, dtype=bool)
                filled[start:start + table.num_rows] = missing
                block = np.where(missing, fill[None, :], block)
            out[start:start + table.num_rows] = (block - self.mean_) / self.scale_
        self.missing_ = filled
        return out

    def fit_transform(self, ds: datasets.Dataset, *, batch_size: int = 4096) -> np.ndarray:
        return self.fit(ds, batch_size=batch_size).transform(ds, batch_size=batch_size)

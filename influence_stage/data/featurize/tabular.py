"""Numeric columns (and list/array columns) → standardised float32 features."""

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


class TabularFeaturizer:
    """Numeric and bool columns → standardized ``(n, d)`` float32.

    Each column is centred by its fitted mean and divided by its fitted population std; a column
    with zero std is only centred; bools count as 0/1. A null, NaN or infinite value raises an
    error naming the column and the row.

    Attributes
    ----------
    mean_ : numpy.ndarray, shape ``(d,)`` float64
    scale_ : numpy.ndarray, shape ``(d,)`` float64
        Fitted std, 1.0 where the std is 0.
    n_features_out_ : int
    """

    kind: Kind = "tabular"

    def __init__(self, columns: Sequence[str], config: FeaturizeConfig | None = None) -> None:
        self.columns = tuple(columns)
        self.config = config or FeaturizeConfig()

    def _read(self, table: pa.Table, start: int) -> np.ndarray:
        ids = None
        block = np.empty((table.num_rows, len(self.columns)), dtype=np.float64)
        for j, name in enumerate(self.columns):
            col = table.column(name).combine_chunks()
            null = col.is_null().to_numpy(zero_copy_only=False)
            values = pc.fill_null(col, False if pa.types.is_boolean(col.type) else 0).to_numpy(
                zero_copy_only=False).astype(np.float64)
            bad = null | ~np.isfinite(values)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                ids = batch_row_ids(table) if ids is None else ids
                found = "null" if null[i] else repr(float(values[i]))
                raise InvalidInputError(
                    f"feature column {name!r} has a missing or non-finite value ({found}) at "
                    f"{where(start + i, None if ids is None else ids[i])} ({int(bad.sum())} in this batch). "
                    "Expected finite numbers. Fix: impute or drop those rows, or leave the column out with "
                    "feature_columns=."
                )
            block[:, j] = values
        return block

    def fit(self, ds: datasets.Dataset, *, batch_size: int = 4096) -> TabularFeaturizer:
        """Learn column means and stds from ``ds`` (one pass)."""
        stats = Welford(len(self.columns))
        for start, table in iter_batches(ds, self.columns, batch_size):
            stats.update(self._read(table, start))
        self.mean_ = stats.mean
        self.scale_ = safe_scale(stats.std, stats.mean)
        self.n_features_out_ = len(self.columns)
        return self

    def transform(self, ds: datasets.Dataset, *, batch_size: int = 4096) -> np.ndarray:
        """Standardized features ``(n, d)`` float32."""
        out = np.empty((ds.num_rows, len(self.columns)), dtype=np.float32)
        for start, table in iter_batches(ds, self.columns, batch_size):
            out[start:start + table.num_rows] = (self._read(table, start) - self.mean_) / self.scale_
        return out

    def fit_transform(self, ds: datasets.Dataset, *, batch_size: int = 4096) -> np.ndarray:
        return self.fit(ds, batch_size=batch_size).transform(ds, batch_size=batch_size)

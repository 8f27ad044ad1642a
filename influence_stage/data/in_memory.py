"""Sources already in memory as a ``datasets.Dataset``: a split of a ``DatasetDict``, a pandas
``DataFrame``, and arrays ``(X, y)`` (features or images), each with the stage's ``row_id``.
"""

from __future__ import annotations

import logging
from typing import Any

import datasets
import numpy as np
import pandas as pd
import pyarrow as pa

from influence_stage._checks import check_features
from influence_stage.data.arrow import ADDED_ROW_ID, ROW_ID, in_memory_dataset
from influence_stage.errors import InvalidInputError, InvalidTypeError

logger = logging.getLogger(__name__)


def pick_split(dd: datasets.DatasetDict, split: str | None, what: str) -> datasets.Dataset:
    names = list(dd.keys())
    if split is None:
        if len(names) == 1:
            logger.info("%s has one split, %r; using it.", what, names[0])
            return dd[names[0]]
        raise InvalidInputError(
            f"{what} has several splits {names}; expected split= to name one. "
            f"Fix: pass e.g. split={names[0]!r}."
        )
    if split not in dd:
        raise InvalidInputError(
            f"{what} has no split {split!r}; available splits: {names}. Fix: pass one of them as split=."
        )
    return dd[split]


def from_arrays(X: Any, y: Any, label_column: str) -> datasets.Dataset:
    check_features(X, name="X", allow_nan=True)  # numeric, at least 2-D, non-empty; NaN only in 2-D (null issues)
    X = np.asarray(X.detach().cpu().numpy() if hasattr(X, "detach") else X)
    y = np.asarray(y.detach().cpu().numpy() if hasattr(y, "detach") else y)
    if y.ndim != 1:
        raise InvalidInputError(f"y must be 1-D (n_samples,); found shape {y.shape}. Fix: pass y.ravel().")
    if len(y) != len(X):
        raise InvalidInputError(f"X and y have different lengths: X has {len(X)} rows, y has {len(y)}.")
    if y.dtype.kind in "OUS":
        y = np.asarray(y.tolist(), dtype=object)
    label_type = pa.array(y.tolist() if y.dtype == object else y).type
    label_feature = datasets.Features.from_arrow_schema(pa.schema([(label_column, label_type)]))[label_column]
    if X.ndim == 2:
        names = [f"x{j}" for j in range(X.shape[1])]
        if label_column in names:
            raise InvalidInputError(
                f"label_column={label_column!r} clashes with a generated feature column name x0..x{X.shape[1] - 1}. "
                "Fix: use another label_column."
            )
        # One Arrow array per row of X transposed (zero-copy views), one table, no per-column conversion.
        by_column = np.ascontiguousarray(X.T)
        arrays = [pa.array(by_column[j]) for j in range(X.shape[1])]
        labels = pa.array(y.tolist() if y.dtype == object else y, type=label_type)
        features = datasets.Features({**{name: datasets.Value(X.dtype.name) for name in names},
                                      label_column: label_feature})
        table = pa.Table.from_arrays([*arrays, labels], names=[*names, label_column])
        return in_memory_dataset(*with_row_id(table.cast(features.arrow_schema), features))
    else:
        if X.ndim == 4 and X.shape[-1] not in (1, 2, 3, 4) and X.shape[1] in (1, 3, 4):
            X = np.ascontiguousarray(X.transpose(0, 2, 3, 1))  # (n, c, h, w) → (n, h, w, c)
        if X.ndim not in (3, 4) or (X.ndim == 4 and X.shape[-1] not in (1, 2, 3, 4)):
            raise InvalidInputError(
                f"X with {X.ndim} dimensions must be images: (n, h, w), (n, h, w, c) or (n, c, h, w) "
                f"with c in 1..4; found shape {X.shape}. Fix: reshape X to (n, features) for tabular data."
            )
        name = "image" if label_column != "image" else "pixels"
        array_type = datasets.Array2D if X.ndim == 3 else datasets.Array3D
        columns = {name: X}
        features = {name: array_type(shape=X.shape[1:], dtype=str(X.dtype))}
    columns[label_column] = y.tolist() if y.dtype == object else y
    features[label_column] = label_feature
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


def with_row_id(table: pa.Table, features: datasets.Features) -> tuple[pa.Table, datasets.Features]:
    """``table`` and ``features`` with the stage's ``row_id`` (``0..n-1``) appended when absent.

    Built data gets its row ids before it becomes a Dataset: one Dataset construction instead of
    two (each re-serialises every feature of a wide table). ``ensure_row_id`` then checks them.
    """
    if ROW_ID in table.column_names:
        return table, features
    features = datasets.Features({**features, ROW_ID: datasets.Value("int64", id=ADDED_ROW_ID)})
    return table.append_column(ROW_ID, pa.array(np.arange(table.num_rows, dtype=np.int64))), features


def from_pandas(df: pd.DataFrame) -> datasets.Dataset:
    try:
        # What Dataset.from_pandas does, without hashing the whole table for datasets' fingerprint.
        table = pa.Table.from_pandas(df, preserve_index=False)
        return in_memory_dataset(*with_row_id(table, datasets.Features.from_arrow_schema(table.schema)))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        # Object columns of PIL images or numpy arrays: let datasets infer Image / nested lists.
        logger.debug("Dataset.from_pandas failed (%s); building the dataset column by column.", exc)
        try:
            return datasets.Dataset.from_dict({str(c): df[c].tolist() for c in df.columns})
        except Exception as exc2:
            raise InvalidTypeError(
                f"the DataFrame could not be converted to a datasets.Dataset: {exc2}. Expected columns of "
                "numbers, strings, PIL images or equally-ranked numpy arrays. Fix: convert or drop that column."
            ) from exc2


__all__ = ["from_arrays", "from_pandas", "pick_split", "with_row_id"]

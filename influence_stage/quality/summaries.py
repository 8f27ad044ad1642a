"""Per-column summaries the gates validate: one row per column, computed for all columns at once.

A wide table (784 pixel columns, 1,024 embedding columns) must not cost one Great Expectations
expectation, one ``Dataset.features`` copy or one Arrow read per column. The gates therefore
derive small frames with one row per column (is it present, what is its feature type) with whole-table operations, and express each property as *one* expectation
over that frame (see ``influence_stage.quality.suites``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import datasets
import numpy as np
import pandas as pd

from influence_stage.data.arrow import ROW_ID, NUMERIC_DTYPE_PREFIXES, iter_batches

SUMMARY_BLOCK_ROWS = 16384
"""Rows read at a time when counting missing values (bounds the memory of a wide table's block)."""


def column_names(data: datasets.Dataset | pd.DataFrame) -> list[str]:
    """The columns of a Dataset or a DataFrame, as strings, in order."""
    return list(data.column_names) if isinstance(data, datasets.Dataset) else [str(c) for c in data.columns]


def _value_key(feature: Any) -> Any:
    # Value features differ only by dtype in their repr; other features are rare and keyed by repr.
    return ("value", feature.dtype) if type(feature) is datasets.Value else ("other", repr(feature))


def numeric_columns(data: datasets.Dataset | pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """The numeric (int, uint, float or bool) columns among ``columns`` that ``data`` has, in order.

    A Dataset's column is numeric when its feature is a numeric ``datasets.Value``; a DataFrame's
    when its dtype is numeric or bool. The schema is read once; each distinct type is judged once.
    """
    if isinstance(data, datasets.Dataset):
        features = data.features  # one deep copy for all columns
        is_numeric = {c: isinstance(f, datasets.Value) and str(f.dtype).startswith(NUMERIC_DTYPE_PREFIXES)
                      for c, f in features.items()}
    else:
        dtypes = data.dtypes
        verdict = {dt: bool(pd.api.types.is_numeric_dtype(dt) or pd.api.types.is_bool_dtype(dt))
                   for dt in set(dtypes)}
        is_numeric = dict(zip((str(c) for c in data.columns), (verdict[dt] for dt in dtypes)))
    return [c for c in columns if is_numeric.get(c, False)]


def type_names(data: datasets.Dataset | pd.DataFrame) -> dict[str, str]:
    """``{column: type name}``: a Dataset's ``repr`` of each feature, a DataFrame's dtype as text.

    Each distinct feature type is rendered once, so a table of 784 ``Value("float32")`` columns
    costs one ``repr``.
    """
    if isinstance(data, datasets.Dataset):
        features = data.features
        rendered: dict[Any, str] = {}
        out = {}
        for name, feature in features.items():
            key = _value_key(feature)
            if key not in rendered:
                rendered[key] = repr(feature)
            out[name] = rendered[key]
        return out
    return dict(zip((str(c) for c in data.columns), data.dtypes.astype(str)))


def _blocks(data: datasets.Dataset | pd.DataFrame, columns: Sequence[str]) -> Any:
    """``(first_row, frame of columns, row ids or None)`` in row blocks of ``SUMMARY_BLOCK_ROWS``."""
    if isinstance(data, pd.DataFrame):
        ids = data[ROW_ID].to_numpy() if ROW_ID in data.columns else None
        yield 0, data.loc[:, list(columns)], ids
        return
    for start, table in iter_batches(data, columns, SUMMARY_BLOCK_ROWS):
        ids = table.column(ROW_ID).to_numpy() if ROW_ID in table.column_names else None
        # One Arrow → pandas conversion per block: columns of one dtype become one 2-D block.
        yield start, table.select(list(columns)).to_pandas(), ids


def missing_values(data: datasets.Dataset | pd.DataFrame, columns: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Null / NaN counts of ``columns`` and the row id of each column's first missing value.

    Parameters
    ----------
    data : datasets.Dataset or pandas.DataFrame
        ``n`` rows; ``columns`` must exist (numeric columns: nulls and NaN are both missing).
    columns : sequence of str
        ``d`` columns.

    Returns
    -------
    counts : numpy.ndarray, shape ``(d,)`` int64
        Missing values per column.
    first : numpy.ndarray, shape ``(d,)`` object
        The ``row_id`` (the row position when there is no ``row_id`` column) of each column's first
        missing value; None where the column has none.
    """
    columns = list(columns)
    counts = np.zeros(len(columns), dtype=np.int64)
    first = np.full(len(columns), None, dtype=object)
    if not columns:
        return counts, first
    for start, frame, ids in _blocks(data, columns):
        mask = frame.isna().to_numpy(dtype=bool)  # (rows, d), vectorised over all columns
        found = mask.sum(axis=0)
        new = (found > 0) & (counts == 0)
        if new.any():
            rows = mask[:, new].argmax(axis=0)
            first[new] = [int(ids[r]) if ids is not None else start + int(r) for r in rows]
        counts += found
    return counts, first


def input_column_summary(data: datasets.Dataset | pd.DataFrame, *, label_column: str,
                         feature_columns: Sequence[str]) -> pd.DataFrame:
    """The input suite's ``columns`` batch: one row per required column (label, ``row_id``, features).

    Columns: ``column`` (the name); ``label_present`` / ``row_id_present`` / ``feature_present``
    (True / False on the rows of that role, None elsewhere, which GE column-map expectations skip).
    Built from the schema alone: no row of the data is read.
    """
    names = np.asarray([label_column, ROW_ID, *feature_columns], dtype=object)
    is_present = pd.Index(column_names(data)).get_indexer(names) >= 0  # one hash lookup for all columns
    role_of = np.asarray(["label_present", "row_id_present"] + ["feature_present"] * len(feature_columns),
                         dtype=object)
    frame: dict[str, Any] = {"column": pd.Series(names, dtype=object)}
    for role in ("label_present", "row_id_present", "feature_present"):
        values = is_present.astype(object)
        values[role_of != role] = None
        frame[role] = pd.Series(values, dtype=object)
    return pd.DataFrame(frame)


def output_column_summary(input_data: datasets.Dataset | pd.DataFrame, output_data: datasets.Dataset | pd.DataFrame,
                          expected_columns: Sequence[str]) -> pd.DataFrame:
    """The output suite's ``columns`` batch: one row per column of the expected list or of the output.

    Columns: ``column``; ``expected_rank`` / ``output_rank``, the column's rank among the columns
    both lists share, -1 in the list that alone has it and None in the other, so that a missing or
    an extra column differs on its own row only and a moved column on the rows it passes; ``input_feature``
    / ``output_feature``, the feature types of the input's columns (None for other columns, or where
    the output lacks the column). The output has the expected columns in order exactly when every
    row's ranks are equal (column names are unique).
    """
    expected = list(expected_columns)
    found = column_names(output_data)
    in_expected, in_found = set(expected), set(found)
    names = expected + [c for c in found if c not in in_expected]
    common_expected = [c for c in expected if c in in_found]
    common_found = [c for c in found if c in in_expected]
    expected_rank = dict(zip(common_expected, range(len(common_expected))))
    output_rank = dict(zip(common_found, range(len(common_found))))
    in_types, out_types = type_names(input_data), type_names(output_data)  # each schema read once
    return pd.DataFrame({
        "column": pd.Series(names, dtype=object),
        "expected_rank": pd.Series([expected_rank.get(c, -1 if c in in_expected else None) for c in names],
                                   dtype=object),
        "output_rank": pd.Series([output_rank.get(c, -1 if c in in_found else None) for c in names], dtype=object),
        "input_feature": pd.Series([in_types.get(c) for c in names], dtype=object),
        "output_feature": pd.Series([out_types.get(c) if c in in_types else None for c in names], dtype=object),
    })

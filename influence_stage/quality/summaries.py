"""Per-column summaries the gates validate: one row per column, computed for all columns at once.

A wide table (784 pixel columns, 1,024 embedding columns) must not cost one Great Expectations
expectation, one ``Dataset.features`` copy or one Arrow read per column. The gates therefore
derive small frames with one row per column (is it present, how many infinite values does it hold,
what is its feature type) with whole-table operations, and express each property as *one* expectation
over that frame (see ``influence_stage.quality.suites``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import datasets
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from influence_stage.data.arrow import ROW_ID, NUMERIC_DTYPE_PREFIXES, iter_batches

SUMMARY_BLOCK_ROWS = 16384
"""Rows read at a time when counting missing values (bounds the memory of a wide table's block)."""


def column_names(data: datasets.Dataset | pd.DataFrame) -> list[str]:
    """The columns of a Dataset or a DataFrame, as strings, in order."""
    return list(data.column_names) if isinstance(data, datasets.Dataset) else [str(c) for c in data.columns]


def plain_table(data: datasets.Dataset, columns: Sequence[str]) -> pa.Table | None:
    """``columns`` of a dataset as its own Arrow table, when its rows are that table's rows (no indices mapping).

    ``Dataset.select_columns`` and ``Dataset.with_format`` deep-copy the dataset's info and features on each
    call, which costs more than reading a small dataset; the table itself is read without a copy. None when
    the dataset has an indices mapping (after select / filter / shuffle: ``data.arrow.gathered`` takes those
    rows) or other internals; the caller then uses the public path.
    """
    if getattr(data, "_indices", "unknown") is not None:
        return None
    try:
        return data.data.table.select(list(columns))
    except Exception:  # pragma: no cover - a datasets version with other internals: use the public path
        return None


def _value_key(feature: Any) -> Any:
    # Value features differ only by dtype in their repr; other features are rare and keyed by repr.
    return ("value", feature.dtype) if type(feature) is datasets.Value else ("other", repr(feature))


def numeric_columns(data: datasets.Dataset | pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """The numeric (int, uint, float or bool) columns among ``columns`` that ``data`` has, in order.

    A Dataset's column is numeric when its feature is a numeric ``datasets.Value``; a DataFrame's
    when its dtype is numeric or bool. The schema is read once; each distinct type is judged once.
    """
    if isinstance(data, datasets.Dataset):
        features = data.info.features  # read only: Dataset.features would deep-copy every feature
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
        features = data.info.features  # read only: Dataset.features would deep-copy every feature
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
    """``(first_row, Arrow table or pandas frame, row ids or None)`` in blocks of ``SUMMARY_BLOCK_ROWS`` rows."""
    if isinstance(data, pd.DataFrame):
        ids = data[ROW_ID].to_numpy() if ROW_ID in data.columns else None
        yield 0, data.loc[:, list(columns)], ids
        return
    cols = [*columns, ROW_ID] if ROW_ID in data.column_names and ROW_ID not in columns else list(columns)
    whole = plain_table(data, cols)
    if whole is None:
        blocks = iter_batches(data, columns, SUMMARY_BLOCK_ROWS)
    else:
        starts = range(0, whole.num_rows, SUMMARY_BLOCK_ROWS)
        blocks = ((start, whole.slice(start, SUMMARY_BLOCK_ROWS)) for start in starts)
    for start, table in blocks:
        ids = table.column(ROW_ID).to_numpy() if ROW_ID in table.column_names else None
        yield start, table, ids


def _frame_of(block: pa.Table | pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Scalar ``columns`` of a block as pandas: one Arrow → pandas conversion (one 2-D block per dtype)."""
    if isinstance(block, pa.Table):
        # One thread: on a busy machine Arrow's pool can wait longer for a free core than the copy takes.
        return block.select(list(columns)).to_pandas(use_threads=False)
    return block.loc[:, list(columns)]


def _scan(data: datasets.Dataset | pd.DataFrame, columns: Sequence[str],
          cells: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per column: how many cells ``cells(frame) -> (rows, d) bool`` marks, and the row id of the first one."""
    columns = list(columns)
    counts = np.zeros(len(columns), dtype=np.int64)
    first = np.full(len(columns), None, dtype=object)
    if not columns:
        return counts, first
    for start, block, ids in _blocks(data, columns):
        mask = cells(_frame_of(block, columns))  # (rows, d), vectorised over all columns
        found = mask.sum(axis=0)
        new = (found > 0) & (counts == 0)
        if new.any():
            rows = mask[:, new].argmax(axis=0)
            first[new] = [int(ids[r]) if ids is not None else start + int(r) for r in rows]
        counts += found
    return counts, first


def _isna(frame: pd.DataFrame) -> np.ndarray:
    return frame.isna().to_numpy(dtype=bool)


def missing_values(data: datasets.Dataset | pd.DataFrame, columns: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Null / NaN counts of ``columns`` and the row id of each column's first missing value.

    Parameters
    ----------
    data : datasets.Dataset or pandas.DataFrame
        ``n`` rows; ``columns`` must exist and be scalar (nulls and NaN are both missing).
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
    return _scan(data, columns, _isna)


def _isinf(frame: pd.DataFrame) -> np.ndarray:
    if all(isinstance(dt, np.dtype) for dt in set(frame.dtypes)):
        return np.isinf(frame.to_numpy())  # float32 columns stay float32: no upcast of a wide block
    return np.isinf(frame.to_numpy(dtype=np.float64, na_value=np.nan))  # pandas' nullable Float dtypes


def _float_types(data: datasets.Dataset | pd.DataFrame) -> dict[str, str]:
    """``{column: "scalar" | "list"}`` for the columns that can hold an infinite value: floats, lists of floats.

    Read from the Arrow schema (a Dataset) or the dtypes (a DataFrame), each distinct type judged once.
    """
    if isinstance(data, pd.DataFrame):
        verdict = {dt: pd.api.types.is_float_dtype(dt) for dt in set(data.dtypes)}
        return {str(c): "scalar" for c, dt in zip(data.columns, data.dtypes) if verdict[dt]}
    schema = data.data.schema
    kind_of: dict[pa.DataType, str | None] = {}
    out = {}
    for name, typ in zip(schema.names, schema.types):
        if typ not in kind_of:
            if pa.types.is_floating(typ):
                kind_of[typ] = "scalar"
            elif (pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ)) \
                    and pa.types.is_floating(typ.value_type):
                kind_of[typ] = "list"
            else:
                kind_of[typ] = None
        if kind_of[typ]:
            out[name] = kind_of[typ]
    return out


def infinite_values(data: datasets.Dataset | pd.DataFrame, columns: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Infinite (``inf`` / ``-inf``) cells of ``columns`` and the row id of each column's first one.

    Only float columns and lists of floats (an embedding column: every position of every vector)
    can hold one; other columns count 0. Scalar float columns are read in row blocks as one
    ``(rows, d)`` matrix, so the cost does not grow with a Python loop over columns; each list
    column is flattened once per block.

    Parameters
    ----------
    data : datasets.Dataset or pandas.DataFrame
        ``n`` rows; ``columns`` that it lacks count 0.
    columns : sequence of str
        ``d`` columns.

    Returns
    -------
    counts : numpy.ndarray, shape ``(d,)`` int64
        Infinite cells per column.
    first : numpy.ndarray, shape ``(d,)`` object
        The ``row_id`` (the row position when there is no ``row_id`` column) of each column's first
        row with one; None where the column has none.
    """
    columns = list(columns)
    kinds = _float_types(data)
    counts = np.zeros(len(columns), dtype=np.int64)
    first = np.full(len(columns), None, dtype=object)
    kind = np.asarray([kinds.get(c) for c in columns], dtype=object)
    scalar = np.flatnonzero(kind == "scalar")
    if scalar.size:
        counts[scalar], first[scalar] = _scan(data, [columns[i] for i in scalar], _isinf)
    for i in np.flatnonzero(kind == "list"):  # embedding columns: few, each one read as a flat array
        name = columns[i]
        for start, block, ids in _blocks(data, [name]):
            col = block.column(name).combine_chunks()
            values = pc.list_flatten(col).to_numpy(zero_copy_only=False)
            rows = pc.list_parent_indices(col).to_numpy(zero_copy_only=False)[np.isinf(values)]
            if rows.size and counts[i] == 0:
                r = int(rows.min())
                first[i] = int(ids[r]) if ids is not None else start + r
            counts[i] += rows.size
    return counts, first


def input_column_summary(data: datasets.Dataset | pd.DataFrame, *, label_column: str,
                         feature_columns: Sequence[str]) -> pd.DataFrame:
    """The input suite's ``columns`` batch: one row per required column (label, ``row_id``, features).

    Columns: ``column`` (the name); ``label_present`` / ``row_id_present`` / ``feature_present``
    (True / False on the rows of that role, None elsewhere, which GE column-map expectations skip);
    ``infinite_values`` (``inf`` / ``-inf`` cells over every row of a feature column, see
    ``infinite_values``; None on the label and ``row_id`` rows) and ``first_infinite_row_id``.
    Null and NaN cells are not counted: they are the ``null`` issue type, found downstream.
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
    counts, first = infinite_values(data, feature_columns)
    infinite = pd.array(np.r_[0, 0, counts], dtype="Int64")
    infinite[:2] = pd.NA
    has_first = np.r_[False, False, [v is not None for v in first]]
    first_id = pd.array(np.zeros(len(names), dtype=np.int64), dtype="Int64")
    first_id[has_first] = np.asarray([v for v in first if v is not None], dtype=np.int64)
    first_id[~has_first] = pd.NA
    frame["infinite_values"] = pd.Series(infinite)
    frame["first_infinite_row_id"] = pd.Series(first_id)
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
    expected = pd.Index(list(expected_columns), dtype=object)
    found = pd.Index(column_names(output_data), dtype=object)
    names = expected.append(found[~found.isin(expected)])
    common_expected, common_found = expected[expected.isin(found)], found[found.isin(expected)]
    # get_indexer: the rank among the shared columns, -1 for a column of that list alone; None outside the list
    expected_rank = np.where(names.isin(expected), common_expected.get_indexer(names), None)
    output_rank = np.where(names.isin(found), common_found.get_indexer(names), None)
    in_types = pd.Series(type_names(input_data), dtype=object)  # each schema read once
    out_types = pd.Series(type_names(output_data), dtype=object)
    input_feature = in_types.reindex(names).to_numpy(dtype=object)
    output_feature = np.where(names.isin(in_types.index), out_types.reindex(names).to_numpy(dtype=object), None)
    return pd.DataFrame({
        "column": pd.Series(names.to_numpy(), dtype=object),
        "expected_rank": pd.Series(expected_rank, dtype=object),
        "output_rank": pd.Series(output_rank, dtype=object),
        "input_feature": pd.Series(input_feature, dtype=object).where(pd.notna(input_feature), None),
        "output_feature": pd.Series(output_feature, dtype=object).where(pd.notna(output_feature), None),
    })

"""The gates: run a suite on a dataset (the input suite on the loaded data, the output suite on the cleaned data and its manifest) and report each expectation."""

from __future__ import annotations

import functools
import logging
import math
import numbers
from collections.abc import Sequence
from typing import Any

import datasets
import numpy as np
import pandas as pd

from influence_stage.data.arrow import ROW_ID, gathered
from influence_stage.errors import InvalidInputError, InvalidTypeError
from influence_stage.quality.accounting import accounting_frame
from influence_stage.quality.checks import compile_checks
from influence_stage.quality.summaries import (
    column_names,
    input_column_summary,
    output_column_summary,
    plain_table,
)
from influence_stage.quality.suites import build_input_suites, build_output_suites
from influence_stage.quality.report import (  # re-exported: the gate's public names
    PARTIAL_UNEXPECTED_COUNT,
    ValidationReport,
    failure_line,
    json_default,
    plain,
)
from influence_stage.quality.runner import Batch, result_dicts, run_suite, validate_batches

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=16)
def _gate_suites(suite: str, label_column: str, weight_column: str | None) -> tuple[dict[str, Any], Any]:
    """``(GE suites by batch, the checks its check summary counts)`` of a gate, built once per process and
    column names: building the suites and reading their expectations back costs more than a small gate."""
    if suite == "input":
        suites = build_input_suites(label_column=label_column)
    else:
        suites = build_output_suites(label_column=label_column, weight_column=weight_column)
    return suites, compile_checks(suites)


def _check_data(data: Any, name: str) -> None:
    if not isinstance(data, (datasets.Dataset, pd.DataFrame)):
        raise InvalidTypeError(
            f"{name} must be a datasets.Dataset or a pandas DataFrame; found {type(data).__name__}."
        )


_column_names = column_names


def _frame(data: datasets.Dataset | pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Only ``columns`` (those present) as a pandas frame."""
    names = set(_column_names(data))
    present = [c for c in dict.fromkeys(columns) if c in names]
    if isinstance(data, datasets.Dataset):
        if not present:
            return pd.DataFrame(index=pd.RangeIndex(data.num_rows))
        # After select / filter, datasets gathers row by row; one Arrow take is ~100x faster.
        table = plain_table(data, present)
        if table is None:
            table = gathered(data, present, 0, data.num_rows)
        if table is not None:
            return table.to_pandas(use_threads=False)  # a few columns: Arrow's thread pool costs more
        return data.select_columns(present).to_pandas()
    return data.loc[:, present].reset_index(drop=True)


def _feature_of(data: datasets.Dataset | pd.DataFrame, column: str) -> Any:
    return data.info.features[column] if isinstance(data, datasets.Dataset) else None  # no deep copy


def label_text(value: Any) -> str:
    """A label value's string form, as ``influence_stage.data.labels.LabelEncoding`` names it."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return f"{float(value):g}"
    return str(value)


def _labels(series: pd.Series, feature: Any, class_set: list[Any]) -> pd.Series:
    """Labels in the class set's terms, object dtype, None where missing (see the module docstring)."""
    all_str = all(isinstance(c, str) for c in class_set)
    missing = series.isna().to_numpy()
    mapping: dict[Any, Any] = {}
    uniques = pd.unique(series[~missing])
    if isinstance(feature, datasets.ClassLabel):
        names = list(feature.names)
        for code in uniques:
            c = int(code)
            if c == -1:  # datasets' "no label"
                mapping[code] = None
            elif not all_str:
                mapping[code] = c
            elif 0 <= c < len(names):
                mapping[code] = names[c]
            else:
                mapping[code] = f"<invalid ClassLabel code {c}>"
    elif all_str:
        mapping = {v: v if isinstance(v, str) else label_text(v) for v in uniques}
    else:
        mapping = {v: v.item() if isinstance(v, np.generic) else v for v in uniques}
    out = np.full(len(series), None, dtype=object)
    present = ~missing
    if present.any():
        out[present] = series[present].map(mapping).to_numpy(dtype=object)
    return pd.Series(out, index=series.index, dtype=object, name=series.name)


def _check_label_args(label_column: Any, class_names: Any) -> list[Any]:
    if not isinstance(label_column, str) or not label_column:
        raise InvalidTypeError(f"label_column must be a non-empty string; found {label_column!r}.")
    if isinstance(class_names, (str, bytes)) or not isinstance(class_names, (Sequence, np.ndarray, pd.Index)):
        raise InvalidTypeError(
            f"class_names must be a sequence of class names or values; found {type(class_names).__name__}."
        )
    classes = [c.item() if isinstance(c, np.generic) else c for c in list(class_names)]
    if not classes:
        raise InvalidInputError("class_names is empty; expected the K >= 1 declared classes in code order.")
    seen: set[Any] = set()
    for c in classes:
        if not isinstance(c, (str, numbers.Integral, numbers.Real)) or isinstance(c, float) and math.isnan(c):
            raise InvalidTypeError(f"class_names must hold strings or numbers; found {c!r}.")
        if c in seen:
            raise InvalidInputError(f"class_names lists {c!r} more than once; expected unique classes.")
        seen.add(c)
    return classes


def validate_input(
    df_or_ds: datasets.Dataset | pd.DataFrame,
    *,
    label_column: str,
    feature_columns: Sequence[str],
    class_names: Sequence[Any],
    min_rows_per_class: int = 2,
) -> ValidationReport:
    """Run the ``input`` suite on a labelled dataset.

    Checks: the label column, ``row_id`` and every feature column exist; no feature column holds
    an infinite value (a failure names the column and its first row); labels are not null and in
    ``class_names``; ``row_id`` is not null and unique; every declared class has at least
    ``min_rows_per_class`` rows (a failure names the class).

    Null or NaN cells in feature columns do not fail the suite: a row with one is a ``null`` issue,
    found and reported downstream (``influence_stage.issues``), not a reason to refuse the dataset.

    Parameters
    ----------
    df_or_ds : datasets.Dataset or pandas.DataFrame
        ``n`` rows with a ``row_id`` column. The label, ``row_id`` and float feature columns
        (scalars or lists of floats) are read.
    label_column : str
        The label column (``ClassLabel``, integer, bool, float or string).
    feature_columns : sequence of str
        The feature columns.
    class_names : sequence
        The ``K`` declared classes in code order: names (strings) or label values.
    min_rows_per_class : int, default 2
        The fewest rows a declared class may have; 0 disables the check.

    Returns
    -------
    ValidationReport
        Call ``ValidationReport.raise_if_failed`` to stop on a failure.
    """
    _check_data(df_or_ds, "df_or_ds")
    classes = _check_label_args(label_column, class_names)
    if isinstance(feature_columns, str) or not isinstance(feature_columns, Sequence):
        raise InvalidTypeError(f"feature_columns must be a sequence of column names; found {feature_columns!r}.")
    features = [str(c) for c in feature_columns]
    if isinstance(min_rows_per_class, bool) or not isinstance(min_rows_per_class, numbers.Integral) \
            or min_rows_per_class < 0:
        raise InvalidInputError(f"min_rows_per_class must be an integer >= 0; found {min_rows_per_class!r}.")

    suites, checks = _gate_suites("input", label_column, None)

    rows = _frame(df_or_ds, [ROW_ID, label_column])
    if label_column in rows.columns:
        rows[label_column] = _labels(rows[label_column], _feature_of(df_or_ds, label_column), classes)
        counts = rows[label_column].value_counts()
        n_rows = [int(counts.get(c, 0)) for c in classes]
    else:
        n_rows = [0] * len(classes)
    class_counts = pd.DataFrame({"class": pd.Series(classes, dtype=object), "n_rows": n_rows})

    batches = [
        Batch("columns", input_column_summary(df_or_ds, label_column=label_column, feature_columns=features),
              ("column", "first_infinite_row_id")),
        Batch("rows", rows, (ROW_ID,)),
        Batch("class_counts", class_counts, ("class",)),
    ]
    parameters = {"class_set": classes, "min_rows_per_class": int(min_rows_per_class)}
    columns_used = {"label_column": label_column, "feature_columns": features}
    return run_suite("input", suites, batches, parameters, columns_used, checks)


def validate_output(
    output_ds: datasets.Dataset | pd.DataFrame,
    input_ds: datasets.Dataset | pd.DataFrame,
    manifest: pd.DataFrame,
    *,
    label_column: str,
    class_names: Sequence[Any],
    max_drop_fraction: float,
    weight_column: str = "weight",
) -> ValidationReport:
    """Run the ``output`` suite: the publish gate.

    Checks: the output has the input's columns in order (plus ``weight_column`` when present) and
    their feature types; labels not null and in ``class_names``; weights not null and in
    ``(0, 1]`` (no weight column means every weight is 1); output ``row_id`` not null and unique;
    the manifest has the decision-table columns, unique non-null ``row_id``, valid actions, label
    label values in ``class_names`` and weights in ``(0, 1]``; every output and manifest ``row_id`` is an
    input ``row_id``; every input row is in the manifest exactly once; the output holds exactly
    the rows whose action is keep, relabel or reweight, with the manifest's label after the action
    (``new_label`` when the manifest has it, else ``suggested_label`` for relabel and
    ``given_label`` otherwise) and the manifest's weight; at most ``max_drop_fraction`` of the
    input rows are missing from the output.

    Parameters
    ----------
    output_ds : datasets.Dataset or pandas.DataFrame
        The cleaned dataset.
    input_ds : datasets.Dataset or pandas.DataFrame
        The dataset the decisions were made on (its ``row_id`` column and feature types are read).
    manifest : pandas.DataFrame
        One row per input row: ``row_id, score, is_issue, action, given_label, suggested_label,
        weight`` (label columns hold label *values* in ``class_names``' terms, as the published
        manifest does: see ``publish.labelled_manifest``), optionally ``new_label``.
    label_column : str
        The label column.
    class_names : sequence
        The ``K`` declared classes in code order (code ``k`` is ``class_names[k]``).
    max_drop_fraction : float
        In ``[0, 1]``.
    weight_column : str, default "weight"
        The optional weight column of the output.

    Returns
    -------
    ValidationReport
    """
    _check_data(output_ds, "output_ds")
    _check_data(input_ds, "input_ds")
    if not isinstance(manifest, pd.DataFrame):
        raise InvalidTypeError(f"manifest must be a pandas DataFrame; found {type(manifest).__name__}.")
    classes = _check_label_args(label_column, class_names)
    if not isinstance(weight_column, str) or not weight_column:
        raise InvalidTypeError(f"weight_column must be a non-empty string; found {weight_column!r}.")
    if isinstance(max_drop_fraction, bool) or not isinstance(max_drop_fraction, numbers.Real) \
            or not 0.0 <= float(max_drop_fraction) <= 1.0:
        raise InvalidInputError(f"max_drop_fraction must be a number in [0, 1]; found {max_drop_fraction!r}.")

    in_cols = _column_names(input_ds)
    out_cols = _column_names(output_ds)
    expected_columns = list(in_cols)
    if weight_column in out_cols and weight_column not in in_cols:
        expected_columns.append(weight_column)
    suites, checks = _gate_suites("output", label_column, weight_column)

    rows = _frame(output_ds, [ROW_ID, label_column, weight_column])
    if label_column in rows.columns:
        rows[label_column] = _labels(rows[label_column], _feature_of(output_ds, label_column), classes)
    if weight_column not in rows.columns:
        rows[weight_column] = 1.0  # no weight column: every row has weight 1
    input_ids = _frame(input_ds, [ROW_ID])
    input_ids = input_ids[ROW_ID] if ROW_ID in input_ids.columns else pd.Series([], dtype="int64")
    accounting = accounting_frame(input_ids, manifest, rows, label_column=label_column,
                                   weight_column=weight_column, classes=classes)

    batches = [
        Batch("columns", output_column_summary(input_ds, output_ds, expected_columns), ("column",)),
        Batch("rows", rows, (ROW_ID,)),
        Batch("manifest", manifest.reset_index(drop=True), (ROW_ID,)),
        Batch("accounting", accounting, (ROW_ID,)),
        Batch("drop", accounting.loc[:, ["dropped"]], ()),
    ]
    parameters = {"class_set": classes, "max_drop_fraction": float(max_drop_fraction)}
    columns_used = {"label_column": label_column, "weight_column": weight_column, "expected_columns": expected_columns}
    return run_suite("output", suites, batches, parameters, columns_used, checks)

"""The gates: run a suite on a dataset (the input suite on the loaded data, the output suite on the cleaned data and its manifest) and report each expectation."""

from __future__ import annotations

import json
import logging
import math
import numbers
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pandas as pd

from influence_stage.data.arrow import ROW_ID, gathered
from influence_stage.errors import (
    InvalidInputError,
    InvalidTypeError,
    ValidationFailedError,
)
from influence_stage.quality.accounting import accounting_frame
from influence_stage.quality.summaries import (
    column_names,
    input_column_summary,
    output_column_summary,
)
from influence_stage.quality.suites import (
    SUITE_VERSIONS,
    build_input_suites,
    build_output_suites,
    ephemeral_context,
    gx_modules,
)

logger = logging.getLogger(__name__)


PARTIAL_UNEXPECTED_COUNT = 10
"""How many unexpected values (and their row ids) a result keeps."""


@dataclass(frozen=True, eq=False)
class ValidationReport:
    """The outcome of one suite on one dataset.

    Attributes
    ----------
    suite : str
        ``"input"`` or ``"output"``.
    success : bool
        Every expectation of every batch passed.
    results : tuple of dict
        One dict per expectation, in suite order, with keys ``suite``, ``batch``, ``key`` (a
        stable name of the check, e.g. ``"label_in_class_set"``), ``expectation_type``,
        ``column`` (the column, ``"A|B"`` for a column pair, None for table checks),
        ``description``, ``success``, ``unexpected_count`` (None for aggregate checks),
        ``unexpected_values`` (at most ``PARTIAL_UNEXPECTED_COUNT``), ``unexpected_index``
        (the identifying column, e.g. ``row_id`` or ``class``, of those values),
        ``observed_value``, ``error`` (why the expectation could not be evaluated, else None),
        ``kwargs`` (the expectation's arguments with parameters filled in) and ``meta`` (the
        expectation's meta: ``key``, and ``per_column`` for a check on a summary with one row per
        column, whose ``unexpected_index`` then names the data columns under ``"column"``).
    suite_version : int
        The suite's version (``SUITE_VERSIONS``).
    parameters : dict
        The run-time suite parameters and the column names used.
    ge_results : dict of str to ExpectationSuiteValidationResult
        The raw Great Expectations results, one per batch.
    """

    suite: str
    success: bool
    results: tuple[dict[str, Any], ...]
    suite_version: int
    parameters: dict[str, Any] = field(default_factory=dict)
    ge_results: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data: our summary plus each batch's GE validation result JSON."""
        gx, _ = gx_modules()
        return {
            "suite": self.suite,
            "suite_version": self.suite_version,
            "success": self.success,
            "great_expectations_version": gx.__version__,
            "parameters": self.parameters,
            "failures": self.failures(),
            "batches": {name: result.to_json_dict() for name, result in self.ge_results.items()},
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The validation results as JSON text (GE's result JSON per batch under ``"batches"``)."""
        return json.dumps(self.to_dict(), indent=indent, default=json_default)

    def failures(self) -> list[str]:
        """One line per failed expectation, naming the suite, batch, check, column and what was found."""
        return [failure_line(r) for r in self.results if not r["success"]]

    def raise_if_failed(self) -> ValidationReport:
        """Return ``self`` when every expectation passed.

        Raises
        ------
        ValidationFailedError
            Listing each failed expectation, one per line.
        """
        if self.success:
            return self
        failed = self.failures()
        lines = "\n".join(f"  - {line}" for line in failed)
        raise ValidationFailedError(
            f"suite {self.suite!r} (version {self.suite_version}) failed {len(failed)} of {len(self.results)} "
            f"expectation(s):\n{lines}"
        )


def plain(value: Any) -> Any:
    """``value`` with numpy scalars and arrays turned into Python ones, recursively."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _short(values: Sequence[Any], limit: int = 5) -> str:
    shown = ", ".join(repr(v) for v in list(values)[:limit])
    more = f", ... ({len(values)} shown of more)" if len(values) > limit else ""
    return f"[{shown}{more}]"


def _missing(value: Any) -> bool:
    return value is None or isinstance(value, float) and math.isnan(value)


def _per_column_detail(r: dict[str, Any]) -> str:
    """What failed on a per-column summary, named by the data columns (not the summary's)."""
    index = r["unexpected_index"]
    names = [d.get("column") for d in index]
    if r["meta"].get("per_column") == "order":
        missing = [d.get("column") for d in index if _missing(d.get("output_rank"))]
        extra = [d.get("column") for d in index if _missing(d.get("expected_rank"))]
        moved = [c for c in names if c not in missing and c not in extra]
        parts = [f"{what} {cols}" for what, cols in (("missing column(s)", missing), ("unexpected column(s)", extra),
                                                     ("columns out of order", moved)) if cols]
        more = f" ({r['unexpected_count']} columns in all)" if r["unexpected_count"] > len(names) else ""
        return "; ".join(parts) + more
    if r["meta"].get("per_column") == "infinite values":
        parts = []
        for d, count in zip(index, r["unexpected_values"]):
            at = d.get("first_infinite_row_id")
            first = "" if _missing(at) else f", the first at row_id {int(at)}"
            parts.append(f"column {d.get('column')!r} has {count} infinite value(s){first}")
    else:
        parts = [f"column {c!r} not found" for c in names]
    more = f" ({r['unexpected_count']} columns in all)" if r["unexpected_count"] > len(parts) else ""
    return "; ".join(parts) + more


def failure_line(r: dict[str, Any]) -> str:
    per_column = bool(r.get("meta", {}).get("per_column"))
    where = "the column summary" if per_column else f"column {r['column']!r}" if r["column"] else "table"
    head = f"{r['suite']}.{r['batch']}: {r['key']} ({r['description']}) on {where} [{r['expectation_type']}]"
    if r["error"]:
        return f"{head} could not be evaluated: {r['error']}"
    if per_column and r["unexpected_count"]:
        return f"{head} failed: {_per_column_detail(r)}"
    if r["unexpected_count"] is not None:
        detail = f"{r['unexpected_count']} unexpected value(s) {_short(r['unexpected_values'])}"
        own = set((r["column"] or "").split("|"))
        ids = [{k: v for k, v in d.items() if k not in own and not _missing(v)} for d in r["unexpected_index"]]
        ids = [d for d in ids if d]
        if ids:
            keys = sorted({k for d in ids for k in d})
            detail += " at " + ", ".join(f"{k} {_short([d.get(k) for d in ids])}" for k in keys)
        return f"{head} failed: {detail}"
    observed = r["observed_value"]
    if r["expectation_type"] == "expect_table_columns_to_match_set":
        missing = [c for c in r["kwargs"].get("column_set") or [] if c not in (observed or [])]
        return f"{head} failed: missing column(s) {missing}"
    if r["expectation_type"] == "expect_column_to_exist":
        return f"{head} failed: column {r['column']!r} not found"
    bounds = {k: r["kwargs"][k] for k in ("min_value", "max_value") if r["kwargs"].get(k) is not None}
    return f"{head} failed: observed {observed!r}, expected {bounds}"


def _error_message(exception_info: Any) -> str | None:
    """The first exception message of a GE result's ``exception_info`` (flat or keyed by metric)."""
    if not exception_info:
        return None
    infos = [exception_info] if "raised_exception" in exception_info else list(exception_info.values())
    for info in infos:
        if isinstance(info, Mapping) and info.get("raised_exception"):
            return str(info.get("exception_message") or "an exception was raised")
    return None


def result_dicts(suite: str, batch: str, ge_suite: Any, ge_result: Any) -> list[dict[str, Any]]:
    """Per-expectation dicts of one batch, in the suite's order."""
    order = _suite_order(ge_suite)
    rows = []
    for res in ge_result.results:
        d = res.to_json_dict()
        config = d["expectation_config"]
        kwargs = {k: v for k, v in config["kwargs"].items() if k != "batch_id"}
        meta = config.get("meta") or {}
        result = d.get("result") or {}
        if "column" in kwargs:
            column = kwargs["column"]
        elif "column_A" in kwargs:
            column = f"{kwargs['column_A']}|{kwargs['column_B']}"
        else:
            column = None
        index = result.get("partial_unexpected_index_list") or []
        rows.append({
            "suite": suite,
            "batch": batch,
            "key": meta.get("key", config["type"]),
            "expectation_type": config["type"],
            "column": column,
            "description": config.get("description") or "",
            "success": bool(d["success"]),
            "unexpected_count": result.get("unexpected_count"),
            "unexpected_values": list(result.get("partial_unexpected_list") or [])[:PARTIAL_UNEXPECTED_COUNT],
            "unexpected_index": [dict(x) for x in index][:PARTIAL_UNEXPECTED_COUNT],
            "observed_value": result.get("observed_value"),
            "error": _error_message(d.get("exception_info")),
            "kwargs": kwargs,
            "meta": dict(meta),
            "_order": _order_of(order, config, meta, len(ge_suite.expectations)),
        })
    rows.sort(key=lambda r: r["_order"])
    for r in rows:
        del r["_order"]
    return rows


def _json_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _suite_order(ge_suite: Any) -> dict[tuple[str, str], list[tuple[dict[str, Any], int]]]:
    """``{(type, meta JSON): [(suite kwargs, position), ...]}``: each result finds its few candidates at once."""
    order: dict[tuple[str, str], list[tuple[dict[str, Any], int]]] = {}
    for i, e in enumerate(ge_suite.expectations):
        kwargs = json.loads(_json_key(e.configuration.kwargs))
        order.setdefault((e.expectation_type, _json_key(e.meta)), []).append((kwargs, i))
    return order


def _order_of(order: dict[tuple[str, str], list[tuple[dict[str, Any], int]]], config: dict[str, Any],
              meta: dict[str, Any], end: int) -> int:
    # Suite kwargs hold {"$PARAMETER": ...} where results hold the values: match on type + meta +
    # the kwargs that are not parameters; fall back to the end.
    for suite_kwargs, i in order.get((config["type"], _json_key(meta)), []):
        if all(config["kwargs"].get(k) == v for k, v in suite_kwargs.items() if not _is_param(v)):
            return i
    return end


def _is_param(value: Any) -> bool:
    return isinstance(value, Mapping) and "$PARAMETER" in value


@dataclass(frozen=True)
class Batch:
    name: str
    frame: pd.DataFrame
    index_columns: tuple[str, ...]


def validate_batches(suite: str, suites: dict[str, Any], batches: list[Batch],
                     parameters: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Validate each batch against its GE suite in one ephemeral context: ``(result dicts, raw GE results)``.

    The one place that talks to Great Expectations' validation API, for the input, output and corpus suites.
    """
    with _GX_LOCK:
        return _validate_batches(suite, suites, batches, parameters)


_GX_LOCK = threading.Lock()
"""One validation at a time: the process's Great Expectations context is shared (and not thread-safe)."""

_GX_STATE: dict[str, Any] = {}
"""The process's ephemeral GE context, one pandas data source per suite, one batch definition per batch."""


def _batch_definition(suite: str, batch: str) -> Any:
    """The whole-dataframe batch definition of ``suite.batch``, registered once per process.

    Registering a data source or an asset rewrites the context's configuration; doing it once, not
    on every gate, keeps a small dataset's gates from being dominated by that bookkeeping.
    """
    if "context" not in _GX_STATE:
        _GX_STATE["context"] = ephemeral_context()
    key = f"{suite}.{batch}"
    if key not in _GX_STATE:
        source_key = f"source:{suite}"
        if source_key not in _GX_STATE:
            _GX_STATE[source_key] = _GX_STATE["context"].data_sources.add_pandas(f"influence_stage_{suite}")
        _GX_STATE[key] = _GX_STATE[source_key].add_dataframe_asset(batch).add_batch_definition_whole_dataframe("whole")
    return _GX_STATE[key]


def _validate_batches(suite: str, suites: dict[str, Any], batches: list[Batch],
                      parameters: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    results: list[dict[str, Any]] = []
    ge_results: dict[str, Any] = {}
    for batch in batches:
        definition = _batch_definition(suite, batch.name)
        result_format: dict[str, Any] = {
            "result_format": "SUMMARY",
            "partial_unexpected_count": PARTIAL_UNEXPECTED_COUNT,
            "return_unexpected_index_query": False,
        }
        index = [c for c in batch.index_columns if c in batch.frame.columns]
        if index:
            result_format["unexpected_index_column_names"] = index
        ge_result = definition.get_batch(batch_parameters={"dataframe": batch.frame}).validate(
            suites[batch.name], expectation_parameters=parameters, result_format=result_format)
        for evr in ge_result.results:
            # numpy scalars (e.g. a pandas mean) break GE's Data Docs renderer and our messages.
            if evr.result and "observed_value" in evr.result:
                evr.result["observed_value"] = plain(evr.result["observed_value"])
        ge_results[batch.name] = ge_result
        results.extend(result_dicts(suite, batch.name, suites[batch.name], ge_result))
    return results, ge_results


def run_suite(suite: str, suites: dict[str, Any], batches: list[Batch], parameters: dict[str, Any],
              columns_used: dict[str, Any]) -> ValidationReport:
    """Validate each batch against its GE suite and log the outcome."""
    results, ge_results = validate_batches(suite, suites, batches, parameters)
    success = all(r["success"] for r in results)
    report = ValidationReport(
        suite=suite,
        success=success,
        results=tuple(results),
        suite_version=SUITE_VERSIONS[suite],
        parameters={**columns_used, **parameters},
        ge_results=ge_results,
    )
    n_failed = sum(not r["success"] for r in results)
    if success:
        logger.info("Suite %r passed: %d expectation(s).", suite, len(results))
    else:
        logger.warning("Suite %r failed %d of %d expectation(s): %s", suite, n_failed, len(results),
                       "; ".join(report.failures()))
    return report


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
        table = gathered(data, present, 0, data.num_rows)
        if table is not None:
            return table.to_pandas()
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

    suites = build_input_suites(label_column=label_column)

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
    return run_suite("input", suites, batches, parameters, columns_used)


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
    suites = build_output_suites(label_column=label_column, weight_column=weight_column)


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
    ]
    parameters = {"class_set": classes, "max_drop_fraction": float(max_drop_fraction)}
    columns_used = {"label_column": label_column, "weight_column": weight_column, "expected_columns": expected_columns}
    return run_suite("output", suites, batches, parameters, columns_used)

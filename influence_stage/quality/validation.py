"""Data-quality gates with Great Expectations 1.x: the ``input`` and ``output`` expectation suites.

This module owns the two gates of the stage:

``validate_input``    the labelled dataset before featurizing (suite ``input``)
``validate_output``   the cleaned dataset + the manifest against the input (suite ``output``);
                      a failure stops the stage and nothing is published
``render_data_docs``  HTML of a report (Great Expectations Data Docs pages + an offline index)

How the suites are built, stored and parametrised
-------------------------------------------------
The suites are built **in code** from ``great_expectations.expectations`` classes
(:func:`build_input_suites`, :func:`build_output_suites`) and stored as versioned JSON snapshots in
``influence_stage/suites/<suite>.json`` (GE's own suite format, one GE suite per *batch*, see below,
plus a ``version``). A test checks that the stored JSON equals what the code builds, so a change to
a suite shows up as a reviewed diff of the JSON; :func:`write_suite_files` regenerates the files and
refuses to change the expectations without a bump of :data:`SUITE_VERSIONS`. Code is the source,
not the JSON, because column names are not GE suite parameters (``$PARAMETER`` works for values
only) and the input suite has one expectation per feature column: loading from JSON would need a
template language of our own on top of GE's format. The snapshot is built with placeholder column
names (``<label_column>``, ``<feature_column>``, ...).

Values are bound at run time with GE's own suite parameters (``{"$PARAMETER": name}``, passed to
``Batch.validate(expectation_parameters=...)``): ``class_set``, ``min_rows_per_class``,
``expected_columns``, ``max_drop_fraction``. Column names are substituted when
the suite is built. The parameters a run used are recorded in :meth:`ValidationReport.to_json`.

Batches
-------
A suite can only look at one table at a time, so each suite validates a few small pandas frames
(*batches*), each with its own GE suite named ``<suite>.<batch>``. Only the needed columns are read
(``Dataset.select_columns([...]).to_pandas()``); checks across tables (does the manifest account for
every input row exactly once? does every output row come from the input?) are GE expectations on a
derived frame, the outer join of input, manifest and output ``row_id``s, so no list of ids is ever
passed as an expectation argument (it would be copied into the result JSON).

``input``:  ``columns`` (a 0-row frame with the input's columns: label, ``row_id`` and every
feature column present), ``rows`` (label not null and in the class set, ``row_id`` not null and
unique, numeric feature columns without nulls), ``class_counts`` (one row per declared class:
at least ``min_rows_per_class`` rows).

``output``: ``columns`` (the input's columns in order, plus the weight column when present),
``features`` (each input column keeps its feature type), ``rows`` (label not null and in the class
set, weights in ``(0, 1]``, ``row_id`` not null and unique; no weight column means all weights 1),
``manifest`` (the decision table's columns, ``row_id`` not null and unique, actions, label codes,
weights), ``accounting`` (every output and manifest ``row_id`` is an input row; each input row is
in the manifest exactly once; the output holds exactly the rows the manifest keeps, relabels or
reweights; their labels and weights are the manifest's; the dropped fraction is at most
``max_drop_fraction``).

Labels are compared in the class set's terms: a ``ClassLabel`` column is decoded to its names when
the class set holds strings (else its codes are compared); a numeric or bool column is compared by
its string form (``str`` of ints and bools, ``f"{v:g}"`` of floats) when the class set holds
strings, matching :class:`influence_stage.data.sources.LabelEncoding` names.

Great Expectations is imported lazily (about 4 s) with ``GX_ANALYTICS_ENABLED=false`` set first.
"""

from __future__ import annotations

import html
import json
import logging
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pandas as pd

from influence_stage.data.arrow import ROW_ID, gathered
from influence_stage.decisions.schema import ROW_ACTIONS
from influence_stage.errors import InvalidInputError, InvalidTypeError, ValidationFailedError
from influence_stage.decisions import TABLE_COLUMNS

logger = logging.getLogger(__name__)

SUITE_VERSIONS: dict[str, int] = {"input": 1, "output": 3}
"""Version of each suite; bump it whenever its expectations change (``write_suite_files`` checks)."""

SUITES_DIR = "suites"
"""Folder of the stored suite JSON, inside the ``influence_stage`` package."""

PARTIAL_UNEXPECTED_COUNT = 10
"""How many unexpected values (and their row ids) a result keeps."""

#: Placeholder column names the stored JSON snapshots are built with.
TEMPLATE_COLUMNS: dict[str, Any] = {
    "label_column": "<label_column>",
    "feature_columns": ("<feature_column>",),
    "numeric_feature_columns": ("<numeric_feature_column>",),
    "weight_column": "<weight_column>",
}

#: Run-time parameters (GE suite parameters) of each suite, with what they mean.
SUITE_PARAMETERS: dict[str, dict[str, str]] = {
    "input": {
        "class_set": "the declared classes, in code order (ClassLabel names, or label values)",
        "min_rows_per_class": "the fewest rows a declared class may have",
    },
    "output": {
        "class_set": "the declared classes, in code order (ClassLabel names, or label values)",
        "expected_columns": "the input's columns in order, plus the weight column when the output has one",
        "max_drop_fraction": "the largest allowed fraction of input rows missing from the output",
    },
}

# Derived-frame markers of where a row id comes from.
_FROM_INPUT = "input"
_NOT_FROM_INPUT = "not an input row_id"

_GX_READY = False


# --------------------------------------------------------------------------------------------------
# Great Expectations, imported lazily
# --------------------------------------------------------------------------------------------------


def _gx() -> tuple[Any, Any]:
    """``(great_expectations, great_expectations.expectations)``, imported on first use."""
    global _GX_READY
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    import great_expectations.expectations as gxe

    if not _GX_READY:
        _GX_READY = True
        logger.debug("Imported great_expectations %s.", gx.__version__)
    return gx, gxe


def _ephemeral_context() -> Any:
    """An in-memory GE data context with progress bars off."""
    gx, _ = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _param(name: str) -> dict[str, str]:
    return {"$PARAMETER": name}


# --------------------------------------------------------------------------------------------------
# suites
# --------------------------------------------------------------------------------------------------


def _suite(gx: Any, suite: str, batch: str, expectations: list[Any]) -> Any:
    return gx.ExpectationSuite(
        name=f"{suite}.{batch}",
        expectations=expectations,
        meta={"suite": suite, "suite_version": SUITE_VERSIONS[suite], "batch": batch},
    )


def build_input_suites(
    *,
    label_column: str,
    feature_columns: Sequence[str],
    numeric_feature_columns: Sequence[str],
) -> dict[str, Any]:
    """The ``input`` suite: one GE ``ExpectationSuite`` per batch.

    Parameters
    ----------
    label_column : str
        The label column.
    feature_columns : sequence of str
        Every feature column (each must exist).
    numeric_feature_columns : sequence of str
        The numeric ones among them (each must have no nulls / NaN).

    Returns
    -------
    dict of str to great_expectations.ExpectationSuite
        Keys ``"columns"``, ``"rows"``, ``"class_counts"``. Values that vary per run are suite
        parameters (:data:`SUITE_PARAMETERS`).
    """
    gx, gxe = _gx()
    columns = [
        gxe.ExpectColumnToExist(column=label_column, description="the label column is present",
                                meta={"key": "label_column_present"}),
        gxe.ExpectColumnToExist(column=ROW_ID, description="the row_id column is present",
                                meta={"key": "row_id_present"}),
    ]
    columns += [
        gxe.ExpectColumnToExist(column=c, description=f"feature column {c} is present",
                                meta={"key": "feature_column_present"})
        for c in feature_columns
    ]
    rows = [
        gxe.ExpectColumnValuesToNotBeNull(column=label_column, description="every row has a label",
                                          meta={"key": "label_not_null"}),
        gxe.ExpectColumnValuesToBeInSet(column=label_column, value_set=_param("class_set"),
                                        description="labels are in the declared class set",
                                        meta={"key": "label_in_class_set"}),
        gxe.ExpectColumnValuesToNotBeNull(column=ROW_ID, description="every row has a row_id",
                                          meta={"key": "row_id_not_null"}),
        gxe.ExpectColumnValuesToBeUnique(column=ROW_ID, description="row_id values are unique",
                                         meta={"key": "row_id_unique"}),
    ]
    rows += [
        gxe.ExpectColumnValuesToNotBeNull(column=c, description=f"numeric feature column {c} has no nulls or NaN",
                                          meta={"key": "numeric_feature_not_null"})
        for c in numeric_feature_columns
    ]
    class_counts = [
        gxe.ExpectColumnValuesToBeBetween(column="n_rows", min_value=_param("min_rows_per_class"),
                                          description="every declared class has at least min_rows_per_class rows",
                                          meta={"key": "rows_per_class"}),
    ]
    return {
        "columns": _suite(gx, "input", "columns", columns),
        "rows": _suite(gx, "input", "rows", rows),
        "class_counts": _suite(gx, "input", "class_counts", class_counts),
    }


def build_output_suites(*, label_column: str, weight_column: str) -> dict[str, Any]:
    """The ``output`` suite: one GE ``ExpectationSuite`` per batch.

    Parameters
    ----------
    label_column : str
        The label column.
    weight_column : str
        The optional weight column of the output.

    Returns
    -------
    dict of str to great_expectations.ExpectationSuite
        Keys ``"columns"``, ``"features"``, ``"rows"``, ``"manifest"``, ``"accounting"``.
    """
    gx, gxe = _gx()
    columns = [
        gxe.ExpectTableColumnsToMatchOrderedList(
            column_list=_param("expected_columns"),
            description="the output has the input's columns in the input's order (plus the weight column)",
            meta={"key": "schema_preserved"}),
    ]
    features = [
        gxe.ExpectColumnPairValuesToBeEqual(
            column_A="input_feature", column_B="output_feature", ignore_row_if="either_value_is_missing",
            description="every input column keeps its feature type", meta={"key": "feature_types_preserved"}),
    ]
    rows = [
        gxe.ExpectColumnValuesToNotBeNull(column=ROW_ID, description="every output row has a row_id",
                                          meta={"key": "row_id_not_null"}),
        gxe.ExpectColumnValuesToBeUnique(column=ROW_ID, description="output row_id values are unique",
                                         meta={"key": "row_id_unique"}),
        gxe.ExpectColumnValuesToNotBeNull(column=label_column, description="every output row has a label",
                                          meta={"key": "label_not_null"}),
        gxe.ExpectColumnValuesToBeInSet(column=label_column, value_set=_param("class_set"),
                                        description="output labels are in the declared class set",
                                        meta={"key": "label_in_class_set"}),
        gxe.ExpectColumnValuesToNotBeNull(column=weight_column, description="every output row has a weight",
                                          meta={"key": "weight_not_null"}),
        gxe.ExpectColumnValuesToBeBetween(column=weight_column, min_value=0.0, max_value=1.0, strict_min=True,
                                          description="weights are in (0, 1]", meta={"key": "weight_in_range"}),
    ]
    manifest = [
        gxe.ExpectColumnToExist(column=c, description=f"the manifest has column {c}",
                                meta={"key": "manifest_column_present"})
        for c in TABLE_COLUMNS
    ]
    manifest += [
        gxe.ExpectColumnValuesToNotBeNull(column=ROW_ID, description="every manifest row has a row_id",
                                          meta={"key": "manifest_row_id_not_null"}),
        gxe.ExpectColumnValuesToBeUnique(column=ROW_ID, description="manifest row_id values are unique",
                                         meta={"key": "manifest_row_id_unique"}),
        gxe.ExpectColumnValuesToBeInSet(column="action", value_set=list(ROW_ACTIONS),
                                        description=f"manifest actions are one of {list(ROW_ACTIONS)}",
                                        meta={"key": "manifest_action_valid"}),
        gxe.ExpectColumnValuesToBeInSet(column="given_label", value_set=_param("class_set"),
                                        description="manifest given_label values are in the declared class set",
                                        meta={"key": "manifest_given_label_in_class_set"}),
        gxe.ExpectColumnValuesToBeInSet(column="suggested_label", value_set=_param("class_set"),
                                        description="manifest suggested_label values are in the declared class set",
                                        meta={"key": "manifest_suggested_label_in_class_set"}),
        gxe.ExpectColumnValuesToBeBetween(column="weight", min_value=0.0, max_value=1.0, strict_min=True,
                                          description="manifest weights are in (0, 1]",
                                          meta={"key": "manifest_weight_in_range"}),
        gxe.ExpectColumnValuesToBeBetween(column="label_quality", min_value=0.0, max_value=1.0,
                                          description="manifest label quality is in [0, 1]",
                                          meta={"key": "manifest_label_quality_in_range"}),
    ]
    accounting = [
        gxe.ExpectColumnValuesToBeInSet(column="output_row_source", value_set=[_FROM_INPUT],
                                        description="every output row_id is an input row_id",
                                        meta={"key": "output_rows_from_input"}),
        gxe.ExpectColumnValuesToBeInSet(column="manifest_row_source", value_set=[_FROM_INPUT],
                                        description="every manifest row_id is an input row_id",
                                        meta={"key": "manifest_rows_from_input"}),
        gxe.ExpectColumnValuesToBeInSet(column="manifest_count", value_set=[1],
                                        description="the manifest lists every input row exactly once",
                                        meta={"key": "manifest_covers_input"}),
        gxe.ExpectColumnPairValuesToBeEqual(
            column_A="output_count", column_B="expected_output_count", ignore_row_if="either_value_is_missing",
            description="the output holds exactly the rows the manifest keeps, relabels or reweights",
            meta={"key": "output_matches_manifest"}),
        gxe.ExpectColumnPairValuesToBeEqual(
            column_A="output_label", column_B="expected_label", ignore_row_if="either_value_is_missing",
            description="output labels are the manifest's label after the action",
            meta={"key": "labels_match_manifest"}),
        gxe.ExpectColumnPairValuesToBeEqual(
            column_A="output_weight", column_B="expected_weight", ignore_row_if="either_value_is_missing",
            description="output weights are the manifest's weights", meta={"key": "weights_match_manifest"}),
        gxe.ExpectColumnMeanToBeBetween(column="dropped", min_value=0.0, max_value=_param("max_drop_fraction"),
                                        description="the fraction of input rows dropped is at most max_drop_fraction",
                                        meta={"key": "drop_fraction"}),
    ]
    return {
        "columns": _suite(gx, "output", "columns", columns),
        "features": _suite(gx, "output", "features", features),
        "rows": _suite(gx, "output", "rows", rows),
        "manifest": _suite(gx, "output", "manifest", manifest),
        "accounting": _suite(gx, "output", "accounting", accounting),
    }


def _suite_json(suite: Any) -> dict[str, Any]:
    """A GE suite as JSON without the parts that vary between GE releases or runs."""
    out = suite.to_json_dict()
    out.pop("id", None)
    out["meta"] = {k: v for k, v in out.get("meta", {}).items() if k != "great_expectations_version"}
    for expectation in out.get("expectations", []):
        expectation.pop("id", None)
    return out


_SUITE_DESCRIPTIONS = {
    "input": "Gate before featurizing: label and feature columns present, labels valid, enough rows per class, "
             "unique row ids.",
    "output": "Publish gate: schema kept, labels valid, weights in (0, 1], bounded drop fraction, every input "
              "row accounted for exactly once by the manifest and the output.",
}


def suite_document(suite: str) -> dict[str, Any]:
    """What ``influence_stage/suites/<suite>.json`` holds: the suite built with placeholder columns.

    Parameters
    ----------
    suite : {"input", "output"}
        The suite.

    Returns
    -------
    dict
        ``name``, ``version``, ``description``, ``placeholders`` (placeholder column names),
        ``parameters`` (run-time suite parameters and their meaning) and ``batches`` (one GE suite
        JSON per batch).
    """
    if suite == "input":
        suites = build_input_suites(
            label_column=TEMPLATE_COLUMNS["label_column"],
            feature_columns=TEMPLATE_COLUMNS["feature_columns"],
            numeric_feature_columns=TEMPLATE_COLUMNS["numeric_feature_columns"],
        )
        placeholders = {k: TEMPLATE_COLUMNS[k] for k in ("label_column", "feature_columns", "numeric_feature_columns")}
    elif suite == "output":
        suites = build_output_suites(label_column=TEMPLATE_COLUMNS["label_column"],
                                     weight_column=TEMPLATE_COLUMNS["weight_column"])
        placeholders = {k: TEMPLATE_COLUMNS[k] for k in ("label_column", "weight_column")}
    else:
        raise InvalidInputError(f"unknown suite {suite!r}; expected one of {sorted(SUITE_VERSIONS)}.")
    return {
        "name": suite,
        "version": SUITE_VERSIONS[suite],
        "description": _SUITE_DESCRIPTIONS[suite],
        "placeholders": {k: list(v) if isinstance(v, tuple) else v for k, v in placeholders.items()},
        "parameters": dict(SUITE_PARAMETERS[suite]),
        "batches": {batch: _suite_json(s) for batch, s in suites.items()},
    }


def stored_suite(suite: str) -> dict[str, Any]:
    """The stored JSON of a suite, read from the installed package (``influence_stage/suites``)."""
    if suite not in SUITE_VERSIONS:
        raise InvalidInputError(f"unknown suite {suite!r}; expected one of {sorted(SUITE_VERSIONS)}.")
    path = resources.files("influence_stage.quality").joinpath(SUITES_DIR, f"{suite}.json")
    return json.loads(path.read_text(encoding="utf-8"))


def write_suite_files(directory: str | Path | None = None) -> list[Path]:
    """Regenerate the stored suite JSON from the code.

    Run ``python -c "from influence_stage.quality.validation import write_suite_files; write_suite_files()"``
    after changing a suite, and bump its :data:`SUITE_VERSIONS` entry.

    Parameters
    ----------
    directory : str or Path, optional
        Where to write; default the package's ``suites`` folder.

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    InvalidInputError
        A suite's expectations changed but its version did not (the message names the suite).
    """
    folder = Path(directory) if directory is not None else Path(__file__).with_name(SUITES_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for suite in SUITE_VERSIONS:
        doc = suite_document(suite)
        path = folder / f"{suite}.json"
        if path.exists():
            old = json.loads(path.read_text(encoding="utf-8"))
            if old.get("version") == doc["version"] and old != doc:
                raise InvalidInputError(
                    f"suite {suite!r} changed but its version is still {doc['version']}; expected a new version. "
                    f"Fix: bump SUITE_VERSIONS[{suite!r}] in influence_stage/validation.py."
                )
        path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        written.append(path)
    return written


# --------------------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------------------


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
        ``unexpected_values`` (at most :data:`PARTIAL_UNEXPECTED_COUNT`), ``unexpected_index``
        (the identifying column, e.g. ``row_id`` or ``class``, of those values),
        ``observed_value``, ``error`` (why the expectation could not be evaluated, else None) and
        ``kwargs`` (the expectation's arguments with parameters filled in).
    suite_version : int
        The suite's version (:data:`SUITE_VERSIONS`).
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
        gx, _ = _gx()
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
        return json.dumps(self.to_dict(), indent=indent, default=_json_default)

    def failures(self) -> list[str]:
        """One line per failed expectation, naming the suite, batch, check, column and what was found."""
        return [_failure_line(r) for r in self.results if not r["success"]]

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


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars and arrays turned into Python ones, recursively."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _json_default(value: Any) -> Any:
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


def _failure_line(r: dict[str, Any]) -> str:
    where = f"column {r['column']!r}" if r["column"] else "table"
    head = f"{r['suite']}.{r['batch']}: {r['key']} ({r['description']}) on {where} [{r['expectation_type']}]"
    if r["error"]:
        return f"{head} could not be evaluated: {r['error']}"
    if r["unexpected_count"] is not None:
        detail = f"{r['unexpected_count']} unexpected value(s) {_short(r['unexpected_values'])}"
        own = set((r["column"] or "").split("|"))
        ids = [{k: v for k, v in d.items() if k not in own} for d in r["unexpected_index"]]
        ids = [d for d in ids if d]
        if ids:
            keys = sorted({k for d in ids for k in d})
            detail += " at " + ", ".join(f"{k} {_short([d.get(k) for d in ids])}" for k in keys)
        return f"{head} failed: {detail}"
    observed = r["observed_value"]
    if r["expectation_type"] == "expect_table_columns_to_match_ordered_list":
        expected = list(r["kwargs"].get("column_list") or [])
        found = list(observed or [])
        missing = [c for c in expected if c not in found]
        extra = [c for c in found if c not in expected]
        parts = []
        if missing:
            parts.append(f"missing column(s) {missing}")
        if extra:
            parts.append(f"unexpected column(s) {extra}")
        if not parts:
            parts.append("columns out of order")
        return f"{head} failed: {'; '.join(parts)}; expected {expected}, found {found}"
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


def _result_dicts(suite: str, batch: str, ge_suite: Any, ge_result: Any) -> list[dict[str, Any]]:
    """Per-expectation dicts of one batch, in the suite's order."""
    order = {
        (e.expectation_type, json.dumps(e.meta, sort_keys=True, default=str),
         json.dumps(e.configuration.kwargs, sort_keys=True, default=str)): i
        for i, e in enumerate(ge_suite.expectations)
    }
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
            "_order": _order_of(order, config, meta),
        })
    rows.sort(key=lambda r: r["_order"])
    for r in rows:
        del r["_order"]
    return rows


def _order_of(order: dict[tuple[str, str, str], int], config: dict[str, Any], meta: dict[str, Any]) -> int:
    # Suite kwargs hold {"$PARAMETER": ...} where results hold the values: match on type + meta +
    # the kwargs that are not parameters; fall back to the end.
    for (etype, emeta, ekwargs), i in order.items():
        if etype != config["type"] or emeta != json.dumps(meta, sort_keys=True, default=str):
            continue
        suite_kwargs = json.loads(ekwargs)
        if all(config["kwargs"].get(k) == v for k, v in suite_kwargs.items() if not _is_param(v)):
            return i
    return len(order)


def _is_param(value: Any) -> bool:
    return isinstance(value, Mapping) and "$PARAMETER" in value


@dataclass(frozen=True)
class _Batch:
    name: str
    frame: pd.DataFrame
    index_columns: tuple[str, ...]


def _run(suite: str, suites: dict[str, Any], batches: list[_Batch], parameters: dict[str, Any],
         columns_used: dict[str, Any]) -> ValidationReport:
    """Validate each batch against its GE suite in one ephemeral context."""
    context = _ephemeral_context()
    source = context.data_sources.add_pandas(f"influence_stage_{suite}")
    results: list[dict[str, Any]] = []
    ge_results: dict[str, Any] = {}
    for batch in batches:
        definition = source.add_dataframe_asset(batch.name).add_batch_definition_whole_dataframe("whole")
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
                evr.result["observed_value"] = _plain(evr.result["observed_value"])
        ge_results[batch.name] = ge_result
        results.extend(_result_dicts(suite, batch.name, suites[batch.name], ge_result))
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


# --------------------------------------------------------------------------------------------------
# frames
# --------------------------------------------------------------------------------------------------


def _check_data(data: Any, name: str) -> None:
    if not isinstance(data, (datasets.Dataset, pd.DataFrame)):
        raise InvalidTypeError(
            f"{name} must be a datasets.Dataset or a pandas DataFrame; found {type(data).__name__}."
        )


def _column_names(data: datasets.Dataset | pd.DataFrame) -> list[str]:
    return list(data.column_names) if isinstance(data, datasets.Dataset) else [str(c) for c in data.columns]


def _frame(data: datasets.Dataset | pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Only ``columns`` (those present) as a pandas frame."""
    present = [c for c in dict.fromkeys(columns) if c in _column_names(data)]
    if isinstance(data, datasets.Dataset):
        if not present:
            return pd.DataFrame(index=pd.RangeIndex(data.num_rows))
        # After select / filter, datasets gathers row by row; one Arrow take is ~100x faster.
        table = gathered(data, present, 0, data.num_rows)
        if table is not None:
            return table.to_pandas()
        return data.select_columns(present).to_pandas()
    return data.loc[:, present].reset_index(drop=True)


def _empty_frame(columns: Sequence[str]) -> pd.DataFrame:
    """A 0-row frame with these columns: table-level checks need the names only."""
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


def _feature_of(data: datasets.Dataset | pd.DataFrame, column: str) -> Any:
    return data.features[column] if isinstance(data, datasets.Dataset) else None


def _is_numeric(data: datasets.Dataset | pd.DataFrame, column: str) -> bool:
    if isinstance(data, datasets.Dataset):
        feature = data.features[column]
        return isinstance(feature, datasets.Value) and str(feature.dtype).startswith(("int", "uint", "float", "bool"))
    dtype = data[column].dtype
    return pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)


def _type_name(data: datasets.Dataset | pd.DataFrame, column: str) -> str:
    if isinstance(data, datasets.Dataset):
        return repr(data.features[column])
    return str(data[column].dtype)


def _label_text(value: Any) -> str:
    """A label value's string form, as :class:`influence_stage.data.sources.LabelEncoding` names it."""
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
        mapping = {v: v if isinstance(v, str) else _label_text(v) for v in uniques}
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


# --------------------------------------------------------------------------------------------------
# input
# --------------------------------------------------------------------------------------------------


def validate_input(
    df_or_ds: datasets.Dataset | pd.DataFrame,
    *,
    label_column: str,
    feature_columns: Sequence[str],
    class_names: Sequence[Any],
    min_rows_per_class: int = 2,
) -> ValidationReport:
    """Run the ``input`` suite on a labelled dataset.

    Checks: the label column, ``row_id`` and every feature column exist; labels are not null and
    in ``class_names``; numeric feature columns have no nulls / NaN; ``row_id`` is not null and
    unique; every declared class has at least ``min_rows_per_class`` rows (a failure names the
    class).

    Parameters
    ----------
    df_or_ds : datasets.Dataset or pandas.DataFrame
        ``n`` rows with a ``row_id`` column. Only the label, ``row_id`` and numeric feature
        columns are read.
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
        Call :meth:`ValidationReport.raise_if_failed` to stop on a failure.
    """
    _check_data(df_or_ds, "df_or_ds")
    classes = _check_label_args(label_column, class_names)
    if isinstance(feature_columns, str) or not isinstance(feature_columns, Sequence):
        raise InvalidTypeError(f"feature_columns must be a sequence of column names; found {feature_columns!r}.")
    features = [str(c) for c in feature_columns]
    if isinstance(min_rows_per_class, bool) or not isinstance(min_rows_per_class, numbers.Integral) \
            or min_rows_per_class < 0:
        raise InvalidInputError(f"min_rows_per_class must be an integer >= 0; found {min_rows_per_class!r}.")

    present = set(_column_names(df_or_ds))
    numeric = [c for c in features if c in present and c != label_column and _is_numeric(df_or_ds, c)]
    suites = build_input_suites(label_column=label_column, feature_columns=features, numeric_feature_columns=numeric)

    rows = _frame(df_or_ds, [ROW_ID, label_column, *numeric])
    if label_column in rows.columns:
        rows[label_column] = _labels(rows[label_column], _feature_of(df_or_ds, label_column), classes)
        counts = rows[label_column].value_counts()
        n_rows = [int(counts.get(c, 0)) for c in classes]
    else:
        n_rows = [0] * len(classes)
    class_counts = pd.DataFrame({"class": pd.Series(classes, dtype=object), "n_rows": n_rows})

    batches = [
        _Batch("columns", _empty_frame(_column_names(df_or_ds)), ()),
        _Batch("rows", rows, (ROW_ID,)),
        _Batch("class_counts", class_counts, ("class",)),
    ]
    parameters = {"class_set": classes, "min_rows_per_class": int(min_rows_per_class)}
    columns_used = {"label_column": label_column, "feature_columns": features, "numeric_feature_columns": numeric}
    return _run("input", suites, batches, parameters, columns_used)


# --------------------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------------------


def _int_ids(values: pd.Series, what: str) -> pd.Series:
    """Non-null row ids as int64 (nulls are reported by the not-null expectations)."""
    values = values[values.notna()]
    try:
        return pd.to_numeric(values).astype("int64")
    except (TypeError, ValueError) as exc:
        raise InvalidTypeError(f"{what} row_id must hold integers; found dtype {values.dtype}.") from exc


def _manifest_labels(values: pd.Series) -> np.ndarray:
    """Manifest label values as plain Python objects (numpy scalars unwrapped); None where missing."""
    out = np.full(len(values), None, dtype=object)
    for i, v in enumerate(values.to_numpy(dtype=object)):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            continue
        out[i] = v.item() if isinstance(v, np.generic) else v
    return out


def _get(frame: pd.DataFrame, column: str) -> pd.Series:
    """``frame[column]`` as objects, or all None when the column is absent."""
    if column in frame.columns:
        return frame[column].astype(object)
    return pd.Series(None, index=frame.index, dtype=object)


def _get_float(frame: pd.DataFrame, column: str) -> pd.Series:
    """``frame[column]`` as float64 (NaN where not a number), or all NaN when the column is absent."""
    if column in frame.columns:
        return pd.to_numeric(frame[column], errors="coerce").astype(np.float64)
    return pd.Series(np.nan, index=frame.index, dtype=np.float64)


def _keyed(frame: pd.DataFrame, what: str, count_column: str) -> pd.DataFrame:
    """The first row of each non-null ``row_id`` (as int64), with how often it occurs in ``count_column``."""
    ids = _int_ids(_get(frame, ROW_ID), what)
    first = frame.loc[ids.index].assign(**{ROW_ID: ids}).drop_duplicates(ROW_ID, keep="first")
    return first.assign(**{count_column: first[ROW_ID].map(ids.value_counts()).to_numpy(dtype=np.int64)})


def _accounting_frame(input_ids: pd.Series, manifest: pd.DataFrame, out_rows: pd.DataFrame, *,
                      label_column: str, weight_column: str, classes: list[Any]) -> pd.DataFrame:
    """The outer join of input, manifest and output row ids, with one derived column per check.

    Columns (None / NaN where a check does not apply to the row, which GE column-map expectations
    skip): ``row_id``; ``output_row_source`` / ``manifest_row_source`` ("input" or not) for ids
    in the output / manifest; ``manifest_count`` for input rows; ``output_count`` and
    ``expected_output_count`` (0 for drop, 1 otherwise) for input rows with a manifest action;
    ``output_label`` / ``expected_label`` and ``output_weight`` / ``expected_weight`` for output
    rows; ``dropped`` (1.0 / 0.0) for input rows.
    """
    inp = pd.DataFrame({ROW_ID: _int_ids(input_ids, "input").drop_duplicates().to_numpy(), "in_input": True})

    man = _keyed(manifest, "manifest", "n_manifest")
    action = _get(man, "action")
    if "new_label" in man.columns:
        label_value = _get(man, "new_label")
    else:
        label_value = _get(man, "given_label").where(action != "relabel", _get(man, "suggested_label"))
    man_part = pd.DataFrame({
        ROW_ID: man[ROW_ID].to_numpy(),
        "n_manifest": man["n_manifest"].to_numpy(),
        "action": action.to_numpy(dtype=object),
        "expected_label": _manifest_labels(label_value),
        "expected_weight": _get_float(man, "weight").to_numpy(),
    })

    out = _keyed(out_rows, "output", "n_output")
    out_part = pd.DataFrame({
        ROW_ID: out[ROW_ID].to_numpy(),
        "n_output": out["n_output"].to_numpy(),
        "output_label": _get(out, label_column).to_numpy(dtype=object),
        "output_weight": _get_float(out, weight_column).to_numpy(),
    })

    acc = inp.merge(man_part, on=ROW_ID, how="outer").merge(out_part, on=ROW_ID, how="outer")
    acc = acc.sort_values(ROW_ID, kind="stable").reset_index(drop=True)
    in_input = acc["in_input"].eq(True).to_numpy()
    n_manifest = acc["n_manifest"].fillna(0).to_numpy(dtype=np.int64)
    n_output = acc["n_output"].fillna(0).to_numpy(dtype=np.int64)
    acts = acc["action"].to_numpy(dtype=object)
    valid_action = np.isin(acts, np.asarray(ROW_ACTIONS, dtype=object))
    source = np.where(in_input, _FROM_INPUT, _NOT_FROM_INPUT).astype(object)

    def masked(values: np.ndarray, mask: np.ndarray) -> pd.Series:
        """``values`` where ``mask``, else missing (skipped by GE); numbers stay numeric (fast null checks)."""
        values = np.asarray(values)
        if values.dtype.kind in "iu":
            return pd.Series(pd.array(values, dtype="Int64")).mask(~mask)
        if values.dtype.kind == "f":
            return pd.Series(np.where(mask, values, np.nan))
        out_values = values.astype(object, copy=True)
        out_values[~mask] = None
        return pd.Series(out_values, dtype=object)

    in_output = n_output > 0
    in_both = in_input & valid_action
    paired = in_output & in_both
    return pd.DataFrame({
        ROW_ID: acc[ROW_ID].to_numpy(dtype=np.int64),
        "output_row_source": masked(source, in_output),
        "manifest_row_source": masked(source, n_manifest > 0),
        "manifest_count": masked(n_manifest, in_input),
        "output_count": masked(n_output, in_both),
        "expected_output_count": masked(np.where(acts == "drop", 0, 1), in_both),
        "output_label": masked(acc["output_label"].to_numpy(dtype=object), paired),
        "expected_label": masked(acc["expected_label"].to_numpy(dtype=object), paired),
        "output_weight": masked(acc["output_weight"].to_numpy(dtype=np.float64), paired),
        "expected_weight": masked(acc["expected_weight"].to_numpy(dtype=np.float64), paired),
        "dropped": np.where(in_input, (~in_output).astype(np.float64), np.nan),
    })


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

    features = pd.DataFrame({
        "column": pd.Series(in_cols, dtype=object),
        "input_feature": pd.Series([_type_name(input_ds, c) for c in in_cols], dtype=object),
        "output_feature": pd.Series([_type_name(output_ds, c) if c in out_cols else None for c in in_cols],
                                    dtype=object),
    })

    rows = _frame(output_ds, [ROW_ID, label_column, weight_column])
    if label_column in rows.columns:
        rows[label_column] = _labels(rows[label_column], _feature_of(output_ds, label_column), classes)
    if weight_column not in rows.columns:
        rows[weight_column] = 1.0  # no weight column: every row has weight 1
    input_ids = _frame(input_ds, [ROW_ID])
    input_ids = input_ids[ROW_ID] if ROW_ID in input_ids.columns else pd.Series([], dtype="int64")
    accounting = _accounting_frame(input_ids, manifest, rows, label_column=label_column,
                                   weight_column=weight_column, classes=classes)

    batches = [
        _Batch("columns", _empty_frame(out_cols), ()),
        _Batch("features", features, ("column",)),
        _Batch("rows", rows, (ROW_ID,)),
        _Batch("manifest", manifest.reset_index(drop=True), (ROW_ID,)),
        _Batch("accounting", accounting, (ROW_ID,)),
    ]
    parameters = {
        "class_set": classes,
        "expected_columns": expected_columns,
        "max_drop_fraction": float(max_drop_fraction),
    }
    columns_used = {"label_column": label_column, "weight_column": weight_column}
    return _run("output", suites, batches, parameters, columns_used)


# --------------------------------------------------------------------------------------------------
# data docs
# --------------------------------------------------------------------------------------------------


_INDEX_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
tr.fail td { background: #fde8e8; }
tr.pass td.status { color: #1a7f37; }
tr.fail td.status { color: #b42318; font-weight: bold; }
code { font-size: 0.95em; }
"""


def render_data_docs(report: ValidationReport, out_dir: str | Path) -> Path:
    """Write the report as HTML: GE Data Docs pages per batch and an index page.

    Great Expectations builds Data Docs *sites* from a file-backed context's stores; an ephemeral
    context has none, so this calls GE's own page renderer (``ValidationResultsPageRenderer`` +
    ``DefaultJinjaPageView``, what the site builder uses) on each batch result and writes
    ``<suite>.<batch>.html``. Those pages take their CSS and JavaScript from CDNs (unstyled
    offline), so the index ``<suite>.html`` is a self-contained table of every expectation
    (readable offline) linking to them.

    Parameters
    ----------
    report : ValidationReport
        A report from :func:`validate_input` or :func:`validate_output`.
    out_dir : str or Path
        Created if missing; existing files of the same names are replaced.

    Returns
    -------
    Path
        The index page ``out_dir / f"{report.suite}.html"``.
    """
    if not isinstance(report, ValidationReport):
        raise InvalidTypeError(f"report must be a ValidationReport; found {type(report).__name__}.")
    _gx()
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pages = {}
    for batch, result in report.ge_results.items():
        document = ValidationResultsPageRenderer().render(result)
        page = out / f"{report.suite}.{batch}.html"
        page.write_text(DefaultJinjaPageView().render(document), encoding="utf-8")
        pages[batch] = page.name

    esc = html.escape
    status = "passed" if report.success else "FAILED"
    n_failed = sum(not r["success"] for r in report.results)
    rows = []
    for r in report.results:
        detail = "" if r["success"] else _failure_line(r)
        if r["success"] and r["observed_value"] is not None and not isinstance(r["observed_value"], list):
            detail = f"observed {r['observed_value']!r}"
        rows.append(
            f'<tr class="{"pass" if r["success"] else "fail"}">'
            f'<td class="status">{"pass" if r["success"] else "FAIL"}</td>'
            f'<td><a href="{esc(pages.get(r["batch"], ""))}">{esc(r["batch"])}</a></td>'
            f"<td><code>{esc(r['key'])}</code></td><td>{esc(r['description'])}</td>"
            f"<td><code>{esc(str(r['column'] or ''))}</code></td><td><code>{esc(r['expectation_type'])}</code></td>"
            f"<td>{'' if r['unexpected_count'] is None else r['unexpected_count']}</td><td>{esc(detail)}</td></tr>"
        )
    params = esc(json.dumps(report.parameters, default=_json_default, indent=1))
    links = " · ".join(f'<a href="{esc(p)}">{esc(b)}</a>' for b, p in pages.items())
    index = out / f"{report.suite}.html"
    index.write_text(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>Validation: {esc(report.suite)}</title><style>{_INDEX_STYLE}</style></head><body>"
        f"<h1>Suite <code>{esc(report.suite)}</code> (version {report.suite_version}): {status}</h1>"
        f"<p>{len(report.results) - n_failed} of {len(report.results)} expectation(s) passed. "
        f"Great Expectations Data Docs per batch: {links}</p>"
        "<table><thead><tr><th>status</th><th>batch</th><th>check</th><th>description</th><th>column</th>"
        "<th>expectation</th><th>unexpected</th><th>detail</th></tr></thead><tbody>"
        + "".join(rows)
        + f"</tbody></table><h2>Parameters</h2><pre>{params}</pre></body></html>\n",
        encoding="utf-8",
    )
    return index

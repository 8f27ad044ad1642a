"""The expectation suites: built in code from Great Expectations 1.x classes, stored as versioned JSON snapshots."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from influence_stage.data.arrow import ROW_ID
from influence_stage.decisions import TABLE_COLUMNS
from influence_stage.decisions.schema import ROW_ACTIONS
from influence_stage.errors import (
    InvalidInputError,
)
from influence_stage.quality.accounting import FROM_INPUT

logger = logging.getLogger(__name__)


SUITE_VERSIONS: dict[str, int] = {"input": 5, "output": 9}
"""Version of each suite; bump it whenever its expectations change (``write_suite_files`` checks)."""


SUITES_DIR = "suites"
"""Folder of the stored suite JSON, inside the ``influence_stage`` package."""


#: Placeholder column names the stored JSON snapshots are built with.
TEMPLATE_COLUMNS: dict[str, Any] = {
    "label_column": "<label_column>",
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
        "max_drop_fraction": "the largest allowed fraction of input rows missing from the output",
    },
}


_GX_READY = False


def gx_modules() -> tuple[Any, Any]:
    """``(great_expectations, great_expectations.expectations)``, imported on first use."""
    global _GX_READY
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    import great_expectations.expectations as gxe

    if not _GX_READY:
        _GX_READY = True
        logger.debug("Imported great_expectations %s.", gx.__version__)
    return gx, gxe


def ephemeral_context() -> Any:
    """An in-memory GE data context with progress bars off."""
    gx, _ = gx_modules()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


COLUMN_SUMMARY_NOTE = (
    "Runs on a summary frame with one row per column (influence_stage.quality.summaries), so one expectation "
    "covers every column of a wide table; a failure names the column(s) in the 'column' index."
)
"""Why some expectations see a per-column summary rather than the data: the notes those expectations carry."""

COLUMN_SUMMARY_BATCH_NOTE = (
    "A summary, not the data: one row per required column (the label, row_id, each feature column) with "
    "label_present / row_id_present / feature_present (None on rows of another role) and, for feature columns, "
    "infinite_values (inf / -inf cells over all rows; null and NaN cells are not counted) and "
    "first_infinite_row_id."
)

RUNS_ON_COLUMN_SUMMARY = "column summary"
"""``meta["runs_on"]`` of an expectation (and of a suite) that sees the per-column summary, not the data."""
OUTPUT_COLUMN_SUMMARY_BATCH_NOTE = (
    "A summary, not the data: one row per column of the expected list (the input's columns, plus the weight "
    "column when the output has one) or of the output, with its rank among the columns both share "
    "(expected_rank, output_rank; None where in one list only) and its feature type in the input and the output."
)


def param(name: str) -> dict[str, str]:
    return {"$PARAMETER": name}


def manifest_expectations(gxe: Any, columns: Sequence[str]) -> list[Any]:
    """What every manifest must satisfy, whatever it describes: its columns, and one unique row_id per row."""
    return [
        *(gxe.ExpectColumnToExist(column=c, description=f"the manifest has column {c}",
                                  meta={"key": "manifest_column_present"}) for c in columns),
        gxe.ExpectColumnValuesToNotBeNull(column=ROW_ID, description="every manifest row has a row_id",
                                          meta={"key": "manifest_row_id_not_null"}),
        gxe.ExpectColumnValuesToBeUnique(column=ROW_ID, description="manifest row_id values are unique",
                                         meta={"key": "manifest_row_id_unique"}),
    ]


def make_suite(gx: Any, suite: str, batch: str, expectations: list[Any], notes: str | None = None,
               runs_on: str | None = None) -> Any:
    """One batch's GE suite; ``notes`` and ``meta["runs_on"]`` say what the batch is when not the data (a summary)."""
    meta = {"suite": suite, "suite_version": SUITE_VERSIONS[suite], "batch": batch}
    if runs_on:
        meta["runs_on"] = runs_on
    return gx.ExpectationSuite(name=f"{suite}.{batch}", expectations=expectations, meta=meta, notes=notes)


def summary_meta(key: str, per_column: str) -> dict[str, str]:
    """The meta of an expectation over the per-column summary: its key, how a failure names columns, and
    ``runs_on``, which says it sees one row per column rather than the data."""
    return {"key": key, "per_column": per_column, "runs_on": RUNS_ON_COLUMN_SUMMARY}


def with_check_summary(gx: Any, gxe: Any, suite: str, suites: dict[str, Any]) -> dict[str, Any]:
    """``suites`` with the check summary's suite (``quality.checks``) first, under ``"checks"``: one expectation
    per kind of check of the other batches. A suite whose checks the summary cannot count gets none."""
    from influence_stage.quality.checks import (
        CHECK_SUMMARY_NOTE,
        CHECKS_BATCH,
        RUNS_ON_CHECK_SUMMARY,
        check_suite_expectations,
        compile_checks,
    )

    checks = compile_checks(suites)
    if checks is None:
        return suites
    first = make_suite(gx, suite, CHECKS_BATCH, check_suite_expectations(gxe, checks), notes=CHECK_SUMMARY_NOTE,
                       runs_on=RUNS_ON_CHECK_SUMMARY)
    return {CHECKS_BATCH: first, **suites}


def build_input_suites(*, label_column: str) -> dict[str, Any]:
    """The ``input`` suite: one GE ``ExpectationSuite`` per batch.

    The column checks (label, ``row_id`` and every feature column present; no infinite value in a
    feature column) run on a summary with one row per column
    (``influence_stage.quality.summaries.input_column_summary``; their ``meta["runs_on"]`` says
    so): one expectation per property covers any number of feature columns, so the suite does
    not depend on the feature columns. Null / NaN cells in feature columns do not fail the suite:
    they are the stage's ``null`` issue type, found and reported downstream. Null labels and null
    ``row_id`` values do fail it.

    Parameters
    ----------
    label_column : str
        The label column.

    Returns
    -------
    dict of str to great_expectations.ExpectationSuite
        Keys ``"checks"`` (the check summary of the other batches, validated first; see
        ``influence_stage.quality.checks``), ``"columns"`` (the per-column summary), ``"rows"``,
        ``"class_counts"``. Values that vary per run are suite parameters (``SUITE_PARAMETERS``).
    """
    gx, gxe = gx_modules()
    columns = [
        gxe.ExpectColumnValuesToBeInSet(column="label_present", value_set=[True],
                                        description="the label column is present (on the column summary)",
                                        meta=summary_meta("label_column_present", "not found"),
                                        notes=COLUMN_SUMMARY_NOTE),
        gxe.ExpectColumnValuesToBeInSet(column="row_id_present", value_set=[True],
                                        description="the row_id column is present (on the column summary)",
                                        meta=summary_meta("row_id_present", "not found"),
                                        notes=COLUMN_SUMMARY_NOTE),
        gxe.ExpectColumnValuesToBeInSet(column="feature_present", value_set=[True],
                                        description="every feature column is present (on the column summary)",
                                        meta=summary_meta("feature_column_present", "not found"),
                                        notes=COLUMN_SUMMARY_NOTE),
        gxe.ExpectColumnValuesToBeInSet(column="infinite_values", value_set=[0],
                                        description="feature columns hold no infinite values (on the column "
                                                    "summary)",
                                        meta=summary_meta("feature_finite", "infinite values"),
                                        notes=COLUMN_SUMMARY_NOTE + " Infinite cells are counted over every row of "
                                        "each float feature column and every position of each list-of-floats "
                                        "column; null and NaN cells are the null issue type, not counted here."),
    ]
    rows = [
        gxe.ExpectColumnValuesToNotBeNull(column=label_column, description="every row has a label",
                                          meta={"key": "label_not_null"}),
        gxe.ExpectColumnValuesToBeInSet(column=label_column, value_set=param("class_set"),
                                        description="labels are in the declared class set",
                                        meta={"key": "label_in_class_set"}),
        gxe.ExpectColumnValuesToNotBeNull(column=ROW_ID, description="every row has a row_id",
                                          meta={"key": "row_id_not_null"}),
        gxe.ExpectColumnValuesToBeUnique(column=ROW_ID, description="row_id values are unique",
                                         meta={"key": "row_id_unique"}),
    ]
    class_counts = [
        gxe.ExpectColumnValuesToBeBetween(column="n_rows", min_value=param("min_rows_per_class"),
                                          description="every declared class has at least min_rows_per_class rows",
                                          meta={"key": "rows_per_class"}),
    ]
    return with_check_summary(gx, gxe, "input", {
        "columns": make_suite(gx, "input", "columns", columns, notes=COLUMN_SUMMARY_BATCH_NOTE,
                              runs_on=RUNS_ON_COLUMN_SUMMARY),
        "rows": make_suite(gx, "input", "rows", rows),
        "class_counts": make_suite(gx, "input", "class_counts", class_counts),
    })


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
        Keys ``"checks"`` (the check summary of the other batches, validated first; see
        ``influence_stage.quality.checks``), ``"columns"`` (a summary with one row per column: order and
        feature types), ``"rows"``,
        ``"manifest"``, ``"accounting"`` (one row per row id of the input, manifest or output) and
        ``"drop"`` (the accounting's ``dropped`` column: the fraction of input rows dropped).
    """
    gx, gxe = gx_modules()
    columns = [
        gxe.ExpectColumnPairValuesToBeEqual(
            column_A="expected_rank", column_B="output_rank", ignore_row_if="both_values_are_missing",
            description="the output has the input's columns in the input's order (plus the weight column; on the "
                        "column summary)",
            meta=summary_meta("schema_preserved", "order"), notes=COLUMN_SUMMARY_NOTE),
        gxe.ExpectColumnPairValuesToBeEqual(
            column_A="input_feature", column_B="output_feature", ignore_row_if="either_value_is_missing",
            description="every input column keeps its feature type (on the column summary)",
            meta={"key": "feature_types_preserved", "runs_on": RUNS_ON_COLUMN_SUMMARY}, notes=COLUMN_SUMMARY_NOTE),
    ]
    rows = [
        gxe.ExpectColumnValuesToNotBeNull(column=ROW_ID, description="every output row has a row_id",
                                          meta={"key": "row_id_not_null"}),
        gxe.ExpectColumnValuesToBeUnique(column=ROW_ID, description="output row_id values are unique",
                                         meta={"key": "row_id_unique"}),
        gxe.ExpectColumnValuesToNotBeNull(column=label_column, description="every output row has a label",
                                          meta={"key": "label_not_null"}),
        gxe.ExpectColumnValuesToBeInSet(column=label_column, value_set=param("class_set"),
                                        description="output labels are in the declared class set",
                                        meta={"key": "label_in_class_set"}),
        gxe.ExpectColumnValuesToNotBeNull(column=weight_column, description="every output row has a weight",
                                          meta={"key": "weight_not_null"}),
        gxe.ExpectColumnValuesToBeBetween(column=weight_column, min_value=0.0, max_value=1.0, strict_min=True,
                                          description="weights are in (0, 1]", meta={"key": "weight_in_range"}),
    ]
    manifest = [
        gxe.ExpectTableColumnsToMatchSet(column_set=list(TABLE_COLUMNS), exact_match=False,
                                         description="the manifest has the decision table's columns",
                                         meta={"key": "manifest_columns_present"}),
        gxe.ExpectColumnValuesToNotBeNull(column=ROW_ID, description="every manifest row has a row_id",
                                          meta={"key": "manifest_row_id_not_null"}),
        gxe.ExpectColumnValuesToBeUnique(column=ROW_ID, description="manifest row_id values are unique",
                                         meta={"key": "manifest_row_id_unique"}),
    ] + [
        gxe.ExpectColumnValuesToBeInSet(column="action", value_set=list(ROW_ACTIONS),
                                        description=f"manifest actions are one of {list(ROW_ACTIONS)}",
                                        meta={"key": "manifest_action_valid"}),
        gxe.ExpectColumnValuesToBeInSet(column="given_label", value_set=param("class_set"),
                                        description="manifest given_label values are in the declared class set",
                                        meta={"key": "manifest_given_label_in_class_set"}),
        gxe.ExpectColumnValuesToBeInSet(column="suggested_label", value_set=param("class_set"),
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
        gxe.ExpectColumnValuesToBeInSet(column="output_row_source", value_set=[FROM_INPUT],
                                        description="every output row_id is an input row_id",
                                        meta={"key": "output_rows_from_input"}),
        gxe.ExpectColumnValuesToBeInSet(column="manifest_row_source", value_set=[FROM_INPUT],
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
    ]
    # An aggregate alone in its batch: when the batches are validated, this one is validated with its details
    # (the observed fraction), while the row checks above are first validated for success alone (quality.runner).
    drop = [
        gxe.ExpectColumnMeanToBeBetween(column="dropped", min_value=0.0, max_value=param("max_drop_fraction"),
                                        description="the fraction of input rows dropped is at most max_drop_fraction",
                                        meta={"key": "drop_fraction"}),
    ]
    return with_check_summary(gx, gxe, "output", {
        "columns": make_suite(gx, "output", "columns", columns, notes=OUTPUT_COLUMN_SUMMARY_BATCH_NOTE,
                              runs_on=RUNS_ON_COLUMN_SUMMARY),
        "rows": make_suite(gx, "output", "rows", rows),
        "manifest": make_suite(gx, "output", "manifest", manifest),
        "accounting": make_suite(gx, "output", "accounting", accounting),
        "drop": make_suite(gx, "output", "drop", drop),
    })


def suite_json(suite: Any) -> dict[str, Any]:
    """A GE suite as JSON without the parts that vary between GE releases or runs."""
    out = suite.to_json_dict()
    out.pop("id", None)
    out["meta"] = {k: v for k, v in out.get("meta", {}).items() if k != "great_expectations_version"}
    for expectation in out.get("expectations", []):
        expectation.pop("id", None)
    return out


_SUITE_DESCRIPTIONS = {
    "input": "Gate before featurizing: label and feature columns present, no infinite feature values, labels valid, "
             "enough rows per class, unique row ids. Null or NaN feature cells pass (the null issue type). The "
             "per-column checks run on a column summary (meta runs_on). The batch 'checks' is validated first: a "
             "check summary counting what each expectation of the other batches flags; only when it fails are the "
             "other batches validated.",
    "output": "Publish gate: schema kept, labels valid, weights in (0, 1], bounded drop fraction, every input "
              "row accounted for exactly once by the manifest and the output. The per-column checks run on a "
              "column summary (meta runs_on). The batch 'checks' is validated first: a check summary counting what "
              "each expectation of the other batches flags; only when it fails are the other batches validated.",
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
        suites = build_input_suites(label_column=TEMPLATE_COLUMNS["label_column"])
        placeholders = {k: TEMPLATE_COLUMNS[k] for k in ("label_column",)}
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
        "batches": {batch: suite_json(s) for batch, s in suites.items()},
    }


def stored_suite(suite: str) -> dict[str, Any]:
    """The stored JSON of a suite, read from the installed package (``influence_stage/suites``)."""
    if suite not in SUITE_VERSIONS:
        raise InvalidInputError(f"unknown suite {suite!r}; expected one of {sorted(SUITE_VERSIONS)}.")
    path = resources.files("influence_stage.quality").joinpath(SUITES_DIR, f"{suite}.json")
    return json.loads(path.read_text(encoding="utf-8"))


def write_suite_files(directory: str | Path | None = None) -> list[Path]:
    """Regenerate the stored suite JSON from the code.

    Run ``python -c "from influence_stage.quality import write_suite_files; write_suite_files()"``
    after changing a suite, and bump its ``SUITE_VERSIONS`` entry.

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
                    f"Fix: bump SUITE_VERSIONS[{suite!r}] in influence_stage/quality/suites.py."
                )
        path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        written.append(path)
    return written

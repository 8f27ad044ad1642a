"""Data-quality gates with Great Expectations 1.x: the ``input`` and ``output`` expectation suites.

This package owns the two gates of the stage:

``validate_input``    the labelled dataset before featurizing (suite ``input``)
``validate_output``   the cleaned dataset + the manifest against the input (suite ``output``);
                      a failure stops the stage and nothing is published
``render_data_docs``  HTML of a report (Great Expectations Data Docs pages, offline, + an index)

How the suites are built, stored and parametrised
-------------------------------------------------
The suites are built **in code** from ``great_expectations.expectations`` classes
(``build_input_suites``, ``build_output_suites``) and stored as versioned JSON snapshots in
``influence_stage/suites/<suite>.json`` (GE's own suite format, one GE suite per *batch*, see below,
plus a ``version``). A test checks that the stored JSON equals what the code builds, so a change to
a suite shows up as a reviewed diff of the JSON; ``write_suite_files`` regenerates the files and
refuses to change the expectations without a bump of ``SUITE_VERSIONS``. Code is the source,
not the JSON, because column names are not GE suite parameters (``$PARAMETER`` works for values
only): loading from JSON would need a template language of our own on top of GE's format. The
snapshot is built with placeholder column names (``<label_column>``, ``<weight_column>``).

Wide data
---------
No check costs one expectation, one ``Dataset.features`` copy or one Arrow read per column: checks
over many columns (every feature column present, no infinite feature value, the output's columns
in order, their feature types) run as *one* expectation each over a summary frame
with one row per column (``influence_stage.quality.summaries``), computed with whole-table
operations. Those expectations and batches say so in their ``notes`` and ``meta["runs_on"]``; a
failure names the columns.
The suites do not depend on the number or names of the feature columns. One GE context, data
source and batch definition per batch are registered once per process, and each gate's suites are
built once per process and column names.

Values are bound at run time with GE's own suite parameters (``{"$PARAMETER": name}``, passed to
``Batch.validate(expectation_parameters=...)``): ``class_set``, ``min_rows_per_class``,
``max_drop_fraction``. Column names are substituted when
the suite is built. The parameters a run used are recorded in ``ValidationReport.to_json``.

Batches
-------
A suite can only look at one table at a time, so each suite validates a few small pandas frames
(*batches*), each with its own GE suite named ``<suite>.<batch>``. Only the needed columns are read
(``Dataset.select_columns([...]).to_pandas()``); checks across tables (does the manifest account for
every input row exactly once? does every output row come from the input?) are GE expectations on a
derived frame, the outer join of input, manifest and output ``row_id``s, so no list of ids is ever
passed as an expectation argument (it would be copied into the result JSON).

``input``:  ``columns`` (a summary, one row per required column: label, ``row_id`` and every
feature column present, no infinite value in a feature column), ``rows`` (label not null and in
the class set, ``row_id`` not null and unique), ``class_counts`` (one row per declared class: at
least ``min_rows_per_class`` rows). Null or NaN feature cells do not fail it: such rows are the
``null`` issue type, reported downstream.

``output``: ``columns`` (a summary, one row per column: the input's columns in order, plus the
weight column when present; each input column keeps its feature type), ``rows`` (label not null
and in the class set, weights in ``(0, 1]``, ``row_id`` not null and unique; no weight column means
all weights 1), ``manifest`` (the decision table's columns, ``row_id`` not null and unique, actions, label codes,
weights), ``accounting`` (every output and manifest ``row_id`` is an input row; each input row is
in the manifest exactly once; the output holds exactly the rows the manifest keeps, relabels or
reweights; their labels and weights are the manifest's), ``drop`` (the dropped fraction of the
input rows is at most ``max_drop_fraction``).

The first pass: a check summary
-------------------------------
Great Expectations costs a few milliseconds per expectation and per validation call whatever the
size of the data, so on a small dataset the 32 expectations of the two gates cost more than the data
they read. Each gate therefore first validates one more batch, ``checks`` (``influence_stage.quality.checks``):
a summary with one row per expectation of the other batches (batch, key, expectation type, column)
and ``unexpected``, the number of values that expectation flags, counted on the batch's frame with
the pandas operation GE's engine uses for that expectation type (``isnull``, ``isin``,
``duplicated(keep=False)``, the bounds, ``==`` after ``ignore_row_if``, ``mean``, the table's
columns). Its suite holds one expectation, ``checks_pass``: ``unexpected`` is 0 on every row. The
suite JSON says so (``meta["runs_on"] == "check summary"``, ``notes``, ``meta["checks"]`` listing the
keys it covers). When it passes, the report holds its one result plus the summary's rows
(``ValidationReport.checks``: every check with 0 values flagged, an aggregate with its observed
value, e.g. the dropped fraction). When it fails, the other batches are validated as below and the
report is theirs, naming each failed expectation with its values and rows. A count errs towards
failing: a check that cannot be counted as the engine evaluates it (a missing column, a non-numeric
column under numeric bounds) counts 1, which only sends the gate to its batches, where GE decides;
a suite with an expectation type the summary does not count has no first pass.

A batch with row checks (column-map expectations) is validated first with GE's ``BOOLEAN_ONLY``
result format, which skips the unexpected-value lists, counts and index metrics; only a batch that
fails is validated again with ``SUMMARY`` for the values and rows that broke it. A batch of
aggregates alone (``drop``) is validated with its observed value.

Labels are compared in the class set's terms: a ``ClassLabel`` column is decoded to its names when
the class set holds strings (else its codes are compared); a numeric or bool column is compared by
its string form (``str`` of ints and bools, ``f"{v:g}"`` of floats) when the class set holds
strings, matching ``influence_stage.data.labels.LabelEncoding`` names.

Great Expectations is imported lazily (about 4 s) with ``GX_ANALYTICS_ENABLED=false`` set first.
"""

from influence_stage.quality.docs import render_data_docs
from influence_stage.quality.gate import PARTIAL_UNEXPECTED_COUNT, ValidationReport, validate_input, validate_output
from influence_stage.quality.suites import (
    SUITE_PARAMETERS,
    SUITE_VERSIONS,
    build_input_suites,
    build_output_suites,
    stored_suite,
    suite_document,
    write_suite_files,
)

__all__ = [
    "PARTIAL_UNEXPECTED_COUNT", "SUITE_PARAMETERS", "SUITE_VERSIONS", "ValidationReport", "build_input_suites",
    "build_output_suites", "render_data_docs", "stored_suite", "suite_document", "validate_input", "validate_output",
    "write_suite_files",
]

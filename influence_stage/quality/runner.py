"""Running Great Expectations suites on batches: one ephemeral context, a lock around it, each result as a plain dict in suite order; a gate's check summary first (``quality.checks``)."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from influence_stage.quality.checks import CHECKS_BATCH, Check, check_summary
from influence_stage.quality.suites import SUITE_VERSIONS, ephemeral_context
from influence_stage.quality.report import PARTIAL_UNEXPECTED_COUNT, ValidationReport, plain

logger = logging.getLogger(__name__)


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
    A batch with row checks is validated for success alone first; only a failing batch is validated
    again for its details, so a passing expectation's result holds no unexpected count or values
    (its ``observed_value`` is kept where the batch has no row checks, e.g. an aggregate over a column).
    """
    with _GX_LOCK, no_batch_fingerprint():
        return _validate_batches(suite, suites, batches, parameters)


_GX_LOCK = threading.Lock()
"""One validation at a time: the process's Great Expectations context is shared (and not thread-safe)."""


@contextlib.contextmanager
def no_batch_fingerprint() -> Iterator[None]:
    """Great Expectations' pandas batch fingerprint turned off while the block runs, restored after (also on error).

    GE hashes every pandas batch whose shallow size is under ``pandas_execution_engine.HASH_THRESHOLD``
    (``pandas_data_fingerprint`` in the result's ``meta.batch_markers``): a pass over a whole million-row frame
    that costs time and a copy's worth of memory, and that nothing in the stage reads. With the threshold at 0
    the marker is left out, as GE itself does for frames above the threshold; every expectation's result is
    unchanged. Callers hold ``_GX_LOCK``, so the module attribute is not changed under another validation.
    """
    from great_expectations.execution_engine import pandas_execution_engine as engine

    previous = engine.HASH_THRESHOLD
    engine.HASH_THRESHOLD = 0
    try:
        yield
    finally:
        engine.HASH_THRESHOLD = previous

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


def _has_row_checks(ge_suite: Any) -> bool:
    """Whether ``ge_suite`` holds a column-map expectation (one whose detail is a list of unexpected values)."""
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )

    kinds = (ColumnMapExpectation, ColumnPairMapExpectation, MulticolumnMapExpectation)
    return any(isinstance(e, kinds) for e in ge_suite.expectations)


FAST_RESULT_FORMAT = {"result_format": "BOOLEAN_ONLY"}
"""The first pass over a batch with row checks: success only (no unexpected-value lists, counts or index
metrics are computed, which is most of Great Expectations' work per expectation)."""


def _validate_one(definition: Any, batch: Batch, ge_suite: Any, parameters: dict[str, Any]) -> Any:
    """One batch against its suite: GE's ``BOOLEAN_ONLY`` result format first when the suite has row checks, then,
    only when that fails (or has none), ``SUMMARY`` with the unexpected values and their index columns."""
    frame = batch.frame
    if _has_row_checks(ge_suite):
        fast = definition.get_batch(batch_parameters={"dataframe": frame}).validate(
            ge_suite, expectation_parameters=parameters, result_format=dict(FAST_RESULT_FORMAT))
        if fast.success:
            return fast
    result_format: dict[str, Any] = {
        "result_format": "SUMMARY",
        "partial_unexpected_count": PARTIAL_UNEXPECTED_COUNT,
        "return_unexpected_index_query": False,
    }
    index = [c for c in batch.index_columns if c in frame.columns]
    if index:
        result_format["unexpected_index_column_names"] = index
    ge_result = definition.get_batch(batch_parameters={"dataframe": frame}).validate(
        ge_suite, expectation_parameters=parameters, result_format=result_format)
    for evr in ge_result.results:
        # numpy scalars (e.g. a pandas mean) break GE's Data Docs renderer and our messages.
        if evr.result and "observed_value" in evr.result:
            evr.result["observed_value"] = plain(evr.result["observed_value"])
    return ge_result


def _validate_batches(suite: str, suites: dict[str, Any], batches: list[Batch],
                      parameters: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    results: list[dict[str, Any]] = []
    ge_results: dict[str, Any] = {}
    for batch in batches:
        ge_result = _validate_one(_batch_definition(suite, batch.name), batch, suites[batch.name], parameters)
        ge_results[batch.name] = ge_result
        results.extend(result_dicts(suite, batch.name, suites[batch.name], ge_result))
    return results, ge_results


def _first_pass(suite: str, suites: dict[str, Any], batches: list[Batch], parameters: dict[str, Any],
                checks: tuple[Check, ...]) -> tuple[Any, pd.DataFrame]:
    """``(GE result, check summary)``: the check summary of ``batches`` validated for success alone
    (GE's ``BOOLEAN_ONLY``)."""
    summary = check_summary(checks, {b.name: b.frame for b in batches}, parameters)
    definition = _batch_definition(suite, CHECKS_BATCH)
    result = definition.get_batch(batch_parameters={"dataframe": summary}).validate(
        suites[CHECKS_BATCH], expectation_parameters=parameters, result_format=dict(FAST_RESULT_FORMAT))
    return result, summary


def run_suite(suite: str, suites: dict[str, Any], batches: list[Batch], parameters: dict[str, Any],
              columns_used: dict[str, Any], checks: tuple[Check, ...] | None = None) -> ValidationReport:
    """Validate a gate and log the outcome: its check summary first when ``checks`` is given, then, only when
    that fails (or there is none), each batch against its GE suite (``validate_batches``).

    A report of a passing first pass holds the check summary's results (one per kind of check); any other
    report holds the batches' results, with the values and rows that failed.
    """
    results = None
    counted: tuple[dict[str, Any], ...] = ()
    if checks is not None and CHECKS_BATCH in suites:
        with _GX_LOCK, no_batch_fingerprint():
            first, summary = _first_pass(suite, suites, batches, parameters, checks)
        if first.success:
            ge_results = {CHECKS_BATCH: first}
            results = result_dicts(suite, CHECKS_BATCH, suites[CHECKS_BATCH], first)
            counted = tuple({k: plain(v) for k, v in row.items()} for row in summary.to_dict("records"))
    if results is None:
        results, ge_results = validate_batches(suite, suites, batches, parameters)
        if checks is not None and CHECKS_BATCH in suites and all(r["success"] for r in results):
            logger.warning("Suite %r: the check summary flagged a check that its batch passes; the batches' "
                           "results stand.", suite)
    success = all(r["success"] for r in results)
    report = ValidationReport(
        suite=suite,
        success=success,
        results=tuple(results),
        suite_version=SUITE_VERSIONS[suite],
        parameters={**columns_used, **parameters},
        ge_results=ge_results,
        checks=counted,
    )
    n_failed = sum(not r["success"] for r in results)
    if success:
        logger.info("Suite %r passed: %d expectation(s).", suite, len(results))
    else:
        logger.warning("Suite %r failed %d of %d expectation(s): %s", suite, n_failed, len(results),
                       "; ".join(report.failures()))
    return report

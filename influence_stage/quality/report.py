"""A gate's result: ``ValidationReport`` (every expectation's outcome) and the one-line failure text."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from influence_stage.errors import ValidationFailedError
from influence_stage.quality.suites import SUITE_VERSIONS, gx_modules

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
        ``description``, ``success``, ``unexpected_count`` (None for aggregate checks, and for
        the checks of a batch with row checks that passed: such a batch is validated for success
        alone, see ``quality.runner.validate_batches``),
        ``unexpected_values`` (at most ``PARTIAL_UNEXPECTED_COUNT``), ``unexpected_index``
        (the identifying column, e.g. ``row_id`` or ``class``, of those values),
        ``observed_value``, ``error`` (why the expectation could not be evaluated, else None),
        ``kwargs`` (the expectation's arguments with parameters filled in) and ``meta`` (the
        expectation's meta: ``key``, and ``per_column`` for a check on a summary with one row per
        column, whose ``unexpected_index`` then names the data columns under ``"column"``).
        When the gate's first pass, its check summary (``quality.checks``), passed, these are that
        batch's results (one, ``checks_pass``) and ``checks`` lists each expectation it counted;
        otherwise they are the results of every expectation of the other batches.
    suite_version : int
        The suite's version (``SUITE_VERSIONS``).
    parameters : dict
        The run-time suite parameters and the column names used.
    ge_results : dict of str to ExpectationSuiteValidationResult
        The raw Great Expectations results, one per batch.
    checks : tuple of dict
        After a passing first pass: the check summary, one dict per expectation of the other batches
        (``batch``, ``key``, ``expectation_type``, ``column``, ``description``, ``unexpected`` (0), ``observed_value`` (an
        aggregate's value, e.g. the dropped fraction, else None)); empty otherwise.
    """

    suite: str
    success: bool
    results: tuple[dict[str, Any], ...]
    suite_version: int
    parameters: dict[str, Any] = field(default_factory=dict)
    ge_results: dict[str, Any] = field(default_factory=dict, repr=False)
    checks: tuple[dict[str, Any], ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data: our summary, the check summary's rows (``checks``) and each batch's GE
        validation result JSON."""
        gx, _ = gx_modules()
        return {
            "suite": self.suite,
            "suite_version": self.suite_version,
            "success": self.success,
            "great_expectations_version": gx.__version__,
            "parameters": self.parameters,
            "failures": self.failures(),
            "checks": list(self.checks),
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

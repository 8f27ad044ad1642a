"""The gates' first pass: a check summary (one row per expectation of the gate's batches), validated by one
expectation.

Great Expectations costs a few milliseconds per expectation and per validation call whatever the size of
the data, so on a small dataset the 30-odd expectations of the two gates cost more than the data they
read. The first pass of a gate therefore validates one small frame, the *check summary*: one row per
expectation of the gate's other batches (its batch, key and column), with the number of values that
expectation flags, counted with the operation Great Expectations' pandas engine uses for it (``isnull``,
``isin``, ``duplicated(keep=False)``, comparison with the bounds, ``==`` on the pair after its
``ignore_row_if`` filter, ``mean``, the table's columns; see ``KINDS``). The summary's suite holds one
expectation, ``checks_pass``: the count is 0 on every row. Two expectations or fifty, the first pass costs
one validation call and one expectation.

Only when that pass fails does the gate validate its batches themselves (``quality.runner``), so a
failure reports, as before, each failed expectation with the values and rows that broke it. A count
errs towards failing: a check that cannot be counted the way the engine evaluates it (a missing column,
a non-numeric column under numeric bounds, an argument this module does not know) counts 1, which only
sends the gate to its batches, where Great Expectations decides. A suite holding an expectation type not
listed in ``KINDS`` gets no first pass at all (``compile_checks`` returns None).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

#: The expectation types the summary counts, with the pandas operation Great Expectations' engine uses for each.
KINDS: dict[str, str] = {
    "expect_column_values_to_not_be_null": "isnull",
    "expect_column_values_to_be_in_set": "isin over the non-null values",
    "expect_column_values_to_be_unique": "duplicated(keep=False) over the non-null values",
    "expect_column_values_to_be_between": "comparison with the bounds over the non-null numbers",
    "expect_column_pair_values_to_be_equal": "== after the ignore_row_if filter",
    "expect_column_mean_to_be_between": "mean (skipping nulls) against the bounds",
    "expect_table_columns_to_match_set": "the table's columns against column_set",
}

#: Expectation arguments the counts understand; any other one (``row_condition``, ...) leaves a suite without
#: a first pass. ``mostly`` is read as 1 (every flagged value counts): stricter, never laxer, than the engine.
_KNOWN_KWARGS = {"column", "column_A", "column_B", "value_set", "min_value", "max_value", "strict_min", "strict_max",
                 "ignore_row_if", "column_set", "exact_match", "mostly", "batch_id"}

CHECKS_BATCH = "checks"
"""The check summary's batch name in each gate's suite."""

RUNS_ON_CHECK_SUMMARY = "check summary"
"""``meta["runs_on"]`` of the first pass's expectations: they see the check summary, not the data."""

CHECK_SUMMARY_NOTE = (
    "A summary, not the data: one row per expectation of the suite's other batches (batch, key, expectation type, "
    "column) with 'unexpected', the number of values it flags, counted with Great Expectations' pandas operation "
    "for that expectation type (1 for a failed aggregate or table check, and for a check that cannot be counted "
    "that way). When this batch fails, the other batches are validated themselves and the report holds their "
    "results, naming the values and rows."
)


@dataclass(frozen=True)
class Check:
    """One expectation of a row-level batch, as the summary counts it."""

    batch: str
    key: str
    type: str
    kwargs: Mapping[str, Any]
    description: str = ""


def compile_checks(suites: Mapping[str, Any]) -> tuple[Check, ...] | None:
    """Every expectation of ``suites`` (batch -> GE suite, the check summary's own batch left out), in order.

    Returns None when an expectation is of a type or has an argument the counts do not cover: such a suite
    is validated batch by batch.
    """
    checks = []
    for batch, suite in suites.items():
        if batch == CHECKS_BATCH:
            continue
        for expectation in suite.expectations:
            config = expectation.configuration.to_json_dict()
            kwargs = dict(config["kwargs"])
            if config["type"] not in KINDS or set(kwargs) - _KNOWN_KWARGS:
                return None
            key = (config.get("meta") or {}).get("key", config["type"])
            checks.append(Check(batch, key, config["type"], kwargs, config.get("description") or ""))
    return tuple(checks)


def check_suite_expectations(gxe: Any, checks: tuple[Check, ...]) -> list[Any]:
    """The check summary's one expectation: no check flags a value (``unexpected`` is 0 on every row).

    ``meta["checks"]`` lists the keys of the checks it covers, in the suite's order.
    """
    return [gxe.ExpectColumnValuesToBeInSet(
        column="unexpected", value_set=[0],
        description="no expectation of the other batches flags a value (on the check summary)",
        meta={"key": "checks_pass", "checks": [c.key for c in checks], "runs_on": RUNS_ON_CHECK_SUMMARY},
        notes=CHECK_SUMMARY_NOTE)]


def _resolved(kwargs: Mapping[str, Any], parameters: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in kwargs.items():
        if isinstance(v, Mapping) and "$PARAMETER" in v:
            v = parameters[v["$PARAMETER"]]  # a KeyError makes the check uncountable: it counts 1
        out[k] = v
    return out


def _numeric(values: pd.Series) -> np.ndarray | None:
    """``values`` as numbers when the engine compares them as numbers (an int or float column), else None."""
    if values.dtype.kind in "iuf":
        return values.to_numpy(dtype=np.float64)
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)  # nullable Int64 / Float64, nulls dropped before
    return None


def _outside(values: np.ndarray, kw: Mapping[str, Any]) -> np.ndarray:
    low, high = kw.get("min_value"), kw.get("max_value")
    if low is None and high is None or any(isinstance(b, (str, bool)) for b in (low, high)) \
            or low is not None and high is not None and low > high:
        raise ValueError("bounds the counts do not compare")  # the engine raises or compares otherwise
    bad = np.zeros(len(values), dtype=bool)
    if low is not None:
        bad |= values <= low if kw.get("strict_min") else values < low
    if high is not None:
        bad |= values >= high if kw.get("strict_max") else values > high
    return bad


def _count(check: Check, frame: pd.DataFrame, parameters: Mapping[str, Any]) -> int | tuple[int, float]:
    """How many values ``check`` flags in ``frame`` (1 for a failed aggregate or table check); an aggregate's
    count comes with its observed value."""
    kw = _resolved(check.kwargs, parameters)
    kind = check.type
    if kind == "expect_table_columns_to_match_set":
        expected = set(kw.get("column_set") or ())
        found = set(frame.columns)
        return len(expected - found) + (len(found - expected) if kw.get("exact_match", True) else 0)
    if kind == "expect_column_pair_values_to_be_equal":
        pair = frame.loc[:, [kw["column_A"], kw["column_B"]]]
        how = kw.get("ignore_row_if", "both_values_are_missing")
        if how in ("both_values_are_missing", "either_value_is_missing"):
            pair = pair.dropna(how="all" if how == "both_values_are_missing" else "any")
        elif how != "neither":
            raise ValueError(f"ignore_row_if {how!r}")
        equal = pair.iloc[:, 0] == pair.iloc[:, 1]
        return int((~equal.fillna(False).astype(bool)).sum())
    column = frame[kw["column"]]  # a missing column: KeyError, counted 1
    if kind == "expect_column_values_to_not_be_null":
        return int(column.isna().sum())
    if kind == "expect_column_mean_to_be_between":
        numbers = _numeric(column)
        mean = float(np.nanmean(numbers)) if numbers is not None and (~np.isnan(numbers)).any() else math.nan
        return int(math.isnan(mean) or bool(_outside(np.asarray([mean]), kw)[0])), mean
    values = column[column.notna()]  # column-map expectations skip missing values
    if kind == "expect_column_values_to_be_in_set":
        return int((~values.isin(list(kw["value_set"]))).sum()) if kw.get("value_set") is not None else 0
    if kind == "expect_column_values_to_be_unique":
        return int(values.duplicated(keep=False).sum())
    if kind == "expect_column_values_to_be_between":
        numbers = _numeric(values)
        if numbers is None:
            raise ValueError("a column the counts do not compare")
        return int(_outside(numbers, kw).sum())
    raise ValueError(f"no count for {kind}")  # pragma: no cover - compile_checks admits only KINDS


def check_summary(checks: tuple[Check, ...], frames: Mapping[str, pd.DataFrame],
                  parameters: Mapping[str, Any]) -> pd.DataFrame:
    """The check summary: one row per check, its count in its kind's column.

    Parameters
    ----------
    checks : tuple of Check
        From ``compile_checks``.
    frames : mapping of str to pandas.DataFrame
        Each batch's frame, by batch name.
    parameters : mapping
        The suite parameters (``{"$PARAMETER": name}`` values are looked up here).

    Returns
    -------
    pandas.DataFrame
        ``len(checks)`` rows: ``batch``, ``key``, ``expectation_type``, ``column`` (the column, ``"A|B"`` for a
        pair, None for a table check), ``description``, ``unexpected``: how many values the check flags (1 for a failed
        aggregate or table check, or a check that cannot be counted), and ``observed_value`` (an aggregate's
        value, e.g. the dropped fraction; None for other checks).
    """
    counts = np.zeros(len(checks), dtype=np.int64)
    observed = np.full(len(checks), None, dtype=object)
    names = []
    for i, check in enumerate(checks):
        kw = check.kwargs
        names.append(kw.get("column") or (f"{kw['column_A']}|{kw['column_B']}" if "column_A" in kw else None))
        try:
            n = _count(check, frames[check.batch], parameters)
        except Exception:  # noqa: BLE001 - not countable as the engine evaluates it: send the gate to its batches
            n = 1
        if isinstance(n, tuple):
            n, observed[i] = n
        counts[i] = n
    return pd.DataFrame({
        "batch": pd.Series([c.batch for c in checks], dtype=object),
        "key": pd.Series([c.key for c in checks], dtype=object),
        "expectation_type": pd.Series([c.type for c in checks], dtype=object),
        "column": pd.Series(names, dtype=object),
        "description": pd.Series([c.description for c in checks], dtype=object),
        "unexpected": counts,
        "observed_value": pd.Series(observed, dtype=object),
    })

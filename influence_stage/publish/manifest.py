"""The published manifest's labels: class codes turned into the input's own label values, and back.

``manifest.parquet`` holds one row per input row (what happened to it). The decisions table
carries class codes ``0..K-1`` in ``given_label`` / ``suggested_label``; the published manifest
carries the values of the input's label column instead (``labelled_manifest``), with the
class list in ``meta.json`` (``check_classes``) so ``manifest_codes`` can turn them back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from influence_stage.errors import InvalidInputError, InvalidTypeError
from influence_stage.publish.store import json_ready

LABEL_COLUMNS = ("given_label", "suggested_label")
"""The manifest columns that hold labels (values of the input's label column once published)."""

NULLABLE_LABEL_COLUMNS = ("suggested_label",)
"""Label columns that may be empty (null): a flagged row with no confident other label
(``influence_stage.decisions.suggest``)."""


def _decode_column(values: pd.Series, encoding: Any) -> Any:
    """Label codes (``Int64`` or int, null where empty) as the input's label values, null kept empty.

    Without an empty cell the values come back exactly as ``encoding.decode`` gives them; with one,
    as a nullable column of the same kind (``Int64`` for int labels, ``boolean`` for bools, ``Float64``
    for floats, objects with None otherwise).
    """
    empty = np.asarray(pd.isna(values), dtype=bool)
    if not empty.any():
        return encoding.decode(pd.Series(values).to_numpy(dtype=np.int64))
    decoded = encoding.decode(pd.Series(values)[~empty].to_numpy(dtype=np.int64))
    kind = decoded.dtype.kind
    dtype = {"i": "Int64", "u": "Int64", "b": "boolean", "f": "Float64"}.get(kind)
    out = np.empty(len(values), dtype=object)
    out[~empty] = decoded.tolist()
    out[empty] = None
    if dtype is None:
        return pd.Series(out, dtype=object).to_numpy()
    return pd.array(out.tolist(), dtype=dtype)


ISSUE_EXTRA_COLUMNS = ("exact_duplicate_of",)
"""Columns of the issue report carried into the manifest besides the ``is_<type>_issue`` flags."""


def issue_manifest_columns(issues: Any) -> pd.DataFrame | None:
    """The issue report's columns the manifest carries: every ``is_<type>_issue`` flag (bool) and
    ``exact_duplicate_of`` (int64: the position in the input of the row's first copy, -1 for first copies
    and unique rows). None when there is no report.

    Parameters
    ----------
    issues : IssueReport, its table (a DataFrame, one row per input row) or None
    """
    table = getattr(issues, "table", issues)
    if table is None:
        return None
    if not isinstance(table, pd.DataFrame):
        raise InvalidTypeError(f"issues must be an IssueReport or its table (a DataFrame); found "
                               f"{type(table).__name__}.")
    cols = [c for c in table.columns if (c.startswith("is_") and c.endswith("_issue") and c != "is_any_issue")
            or c in ISSUE_EXTRA_COLUMNS]
    return table[cols].reset_index(drop=True) if cols else None


def labelled_manifest(table: pd.DataFrame, encoding: Any, issues: Any = None) -> pd.DataFrame:
    """The decisions table as it is published: label codes replaced by the input's label values.

    ``influence_stage.decisions.decide.decide``'s table holds class codes ``0..K-1`` in
    ``given_label`` / ``suggested_label``; the published ``manifest.parquet`` holds the values of
    the input's label column instead, with its dtype (``LabelEncoding.decode``): ints like
    ``{0, 5, 7}``, strings, bools. For a ``ClassLabel`` column those are its stored ints, as in
    ``data.parquet``; its names are in
    ``meta.json`` (``class_names``). An empty ``suggested_label`` (null) stays empty. Other
    columns are unchanged.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per input row, with ``given_label`` and ``suggested_label`` codes.
    encoding : influence_stage.data.labels.LabelEncoding
        The encoding the codes come from.
    issues : IssueReport or its table, optional
        The run's issue types (``PipelineResult.issues``): their flags and ``exact_duplicate_of``
        (``issue_manifest_columns``) are appended after the decisions table's columns.

    Returns
    -------
    pandas.DataFrame
        A copy, same rows; the same columns, then the issue columns when ``issues`` is given.
    """
    if not isinstance(table, pd.DataFrame):
        raise InvalidTypeError(f"table must be a pandas DataFrame; found {type(table).__name__}.")
    out = table.copy()
    for column in LABEL_COLUMNS:
        if column not in out.columns:
            raise InvalidInputError(f"the decisions table has no {column!r} column; found {list(out.columns)}.")
        if column in NULLABLE_LABEL_COLUMNS:
            out[column] = _decode_column(out[column], encoding)
        else:
            out[column] = encoding.decode(out[column].to_numpy())
    extra = issue_manifest_columns(issues)
    if extra is not None:
        if len(extra) != len(out):
            raise InvalidInputError(f"the issue table has {len(extra)} rows for {len(out)} manifest rows; expected "
                                    "one per input row (the report of this run).")
        extra = extra.drop(columns=[c for c in extra.columns if c in out.columns])
        out = pd.concat([out.reset_index(drop=True), extra], axis=1).set_axis(out.index)
    return out


def check_classes(manifest: pd.DataFrame, classes: Any, class_names: Any) -> dict[str, Any]:
    """``{"classes": [...], "class_names": [...]}`` for meta.json, after checking the manifest uses them.

    Empty when ``classes`` is None.

    Raises
    ------
    InvalidInputError
        ``class_names`` of another length than ``classes``, or a manifest label value that is not
        one of ``classes`` (codes published instead of ``labelled_manifest``'s values).
    """
    if classes is None:
        return {}
    values = json_ready(list(classes), "classes")
    names = [str(v) for v in values] if class_names is None else [str(n) for n in class_names]
    if len(names) != len(values):
        raise InvalidInputError(f"class_names has {len(names)} names for {len(values)} classes; expected one each.")
    known = set(values)
    for column in LABEL_COLUMNS:
        if column not in manifest.columns:
            continue
        present = manifest[column].dropna() if column in NULLABLE_LABEL_COLUMNS else manifest[column]
        found = [v.item() if isinstance(v, np.generic) else v for v in pd.unique(present)]
        unknown = [v for v in found if v not in known]
        if unknown:
            raise InvalidInputError(
                f"manifest column {column!r} holds {unknown[:5]!r}, not in the classes {values[:10]!r}; expected "
                "the input's label values. Fix: publish "
                "influence_stage.publish.manifest.labelled_manifest(table, encoding), not the codes."
            )
    return {"classes": values, "class_names": names}


def manifest_codes(manifest: pd.DataFrame, meta: Mapping[str, Any]) -> pd.DataFrame:
    """A published manifest with its label values turned back into class codes ``0..K-1``.

    The inverse of ``labelled_manifest``, through ``meta.json``'s ``classes``; a version
    without ``classes`` (published before manifests held label values) is returned as it is.

    Raises
    ------
    InvalidInputError
        A label value that is not one of ``meta["classes"]``.
    """
    classes = meta.get("classes")
    if classes is None:
        return manifest
    index = {v: k for k, v in enumerate(classes)}
    out = manifest.copy()
    for column in LABEL_COLUMNS:
        empty = np.asarray(out[column].isna(), dtype=bool) if column in NULLABLE_LABEL_COLUMNS \
            else np.zeros(len(out), dtype=bool)
        values = [v.item() if isinstance(v, np.generic) else v for v in out[column].tolist()]
        unknown = [v for v, e in zip(values, empty) if not e and v not in index]
        if unknown:
            raise InvalidInputError(
                f"published manifest column {column!r} holds {unknown[0]!r}, not one of the classes in meta.json "
                f"{classes[:10]!r}; the version is damaged. Fix: re-publish it."
            )
        codes = np.asarray([0 if e else index[v] for v, e in zip(values, empty)], dtype=np.int64)
        out[column] = pd.arrays.IntegerArray(codes, empty) if column in NULLABLE_LABEL_COLUMNS else codes
    return out


def action_counts(manifest: pd.DataFrame) -> dict[str, int] | None:
    """Rows per ``action`` value (``keep``, ``drop``, ...), or None when the manifest has no ``action`` column."""
    if "action" not in manifest.columns:
        return None
    counts = manifest["action"].astype(object).value_counts(dropna=False)
    return {str(k): int(v) for k, v in counts.items()}


def flagged_count(manifest: pd.DataFrame) -> int | None:
    """Rows the stage flagged (``is_issue`` true), or None when the manifest has no ``is_issue`` column."""
    if "is_issue" not in manifest.columns:
        return None
    return int(manifest["is_issue"].fillna(False).astype(bool).sum())

"""The decisions contract: the table's columns and the action names, with the one check of a table.

Every layer that reads or writes a decisions table (decide, apply, the quality suites, the report,
publishing, the scikit-learn views) takes these names from here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from influence_stage._checks import check_class_names
from influence_stage.decisions.policies import POLICIES
from influence_stage.errors import InvalidInputError, InvalidTypeError

#: Values accepted by ``decide(action=...)`` and ``CleanConfig.action``: the decision policies'
#: names (a live view of ``decisions.policies.POLICY_REGISTRY``).
CONFIG_ACTIONS = POLICIES
#: Values of the ``action`` column of the decisions table.
ROW_ACTIONS: tuple[str, ...] = ("keep", "drop", "relabel", "reweight")
#: Columns of the decisions table, in order.
TABLE_COLUMNS: tuple[str, ...] = (
    "row_id", "score", "gex_influence", "label_quality", "is_issue", "action", "given_label", "suggested_label",
    "weight",
)


def _scalar(value: Any) -> Any:
    """A numpy scalar as a plain Python value, for readable error messages."""
    return value.item() if isinstance(value, np.generic) else value


def _label_codes(values: pd.Series, column: str, n_classes: int, nullable: bool = False) -> Any:
    """Return a label column as ``(n,) int64`` in ``0..n_classes-1`` or raise naming the first bad row.

    ``nullable``: empty cells (null, NaN, None) are allowed and the column comes back as pandas ``Int64``.
    """
    null = values.isna().to_numpy() if nullable else np.zeros(len(values), dtype=bool)
    if nullable and values.dtype == object and null.any():
        try:
            values = pd.to_numeric(values)
        except (TypeError, ValueError):
            pass  # refused just below, by dtype
    arr = values.to_numpy(dtype=np.float64, na_value=np.nan) if pd.api.types.is_numeric_dtype(values) \
        and values.dtype != bool else values.to_numpy()
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise InvalidTypeError(
            f"table column {column!r} must hold integer class codes 0..{n_classes - 1}"
            f"{' (or be empty)' if nullable else ''}; found dtype "
            f"{values.dtype}. Encode labels as codes and pass their names as class_names."
        )
    arr = arr.astype(np.float64)
    bad = ~null & (~np.isfinite(arr) | (arr != np.round(arr)) | (arr < 0) | (arr >= n_classes))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidInputError(
            f"table column {column!r} must hold class codes 0..{n_classes - 1} (one per entry of "
            f"class_names, {n_classes} given); row {i} has {_scalar(values.iloc[i])!r} "
            f"({int(bad.sum())} bad rows in all). Pass one class name per class."
        )
    if nullable:
        return pd.arrays.IntegerArray(np.where(null, 0, arr).astype(np.int64), null)
    return arr.astype(np.int64)


def check_table(table: Any, class_names: Any) -> tuple[pd.DataFrame, list[str]]:
    """Check the decisions table; return a clean copy (dtypes fixed, index 0..n-1) and the class names.

    Raises
    ------
    InvalidTypeError
        ``table`` is not a DataFrame; a column has the wrong dtype.
    InvalidInputError
        Missing columns (named), no rows, a negative or non-finite score, an unknown action, a label
        outside ``0..len(class_names)-1``, an empty ``suggested_label`` on a ``relabel`` row.
        ``suggested_label`` may be empty (null) on the other rows (``decisions.suggest``) and comes
        back as pandas ``Int64``.
    """
    if not isinstance(table, pd.DataFrame):
        raise InvalidTypeError(
            f"table must be a pandas DataFrame (the decisions table, e.g. Decisions.table or "
            f"cleaner.issues_); found {type(table).__name__}."
        )
    missing = [c for c in TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise InvalidInputError(
            f"table is missing column(s) {missing}; expected {list(TABLE_COLUMNS)}, found "
            f"{[str(c) for c in table.columns]}. Pass the decisions table made by decisions.decide."
        )
    if len(table) == 0:
        raise InvalidInputError("table is empty (0 rows); a report needs at least one scored row.")
    names = check_class_names(class_names)

    score = table["score"]
    if score.dtype == bool or not pd.api.types.is_numeric_dtype(score):
        raise InvalidTypeError(f"table column 'score' must be numeric; found dtype {score.dtype}.")
    s = score.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(s) | (s < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidInputError(
            f"table column 'score' must be finite and >= 0 (every ranking score is); "
            f"row {i} has {float(s[i])!r} ({int(bad.sum())} bad rows in all)."
        )

    flag = table["is_issue"]
    if flag.dtype == bool:
        is_issue = flag.to_numpy(dtype=bool)
    else:
        raw = flag.to_numpy()
        ok = pd.api.types.is_numeric_dtype(flag) and np.isin(raw, (0, 1)).all()
        if not ok:
            raise InvalidTypeError(
                f"table column 'is_issue' must be boolean (or 0/1); found dtype {flag.dtype}."
            )
        is_issue = raw.astype(bool)

    action = table["action"].astype(str).to_numpy()
    unknown = sorted(set(action) - set(ROW_ACTIONS))
    if unknown:
        i = int(np.flatnonzero(~np.isin(action, ROW_ACTIONS))[0])
        raise InvalidInputError(
            f"table column 'action' must hold only {list(ROW_ACTIONS)}; found {unknown} "
            f"(first at row {i})."
        )

    weight = table["weight"]
    if weight.dtype == bool or not pd.api.types.is_numeric_dtype(weight):
        raise InvalidTypeError(f"table column 'weight' must be numeric; found dtype {weight.dtype}.")

    given = _label_codes(table["given_label"], "given_label", len(names))
    suggested = _label_codes(table["suggested_label"], "suggested_label", len(names), nullable=True)
    empty = (action == "relabel") & np.asarray(pd.isna(suggested), dtype=bool)
    if empty.any():
        i = int(np.flatnonzero(empty)[0])
        raise InvalidInputError(
            f"table row {i} has action 'relabel' and an empty suggested_label ({int(empty.sum())} such rows); "
            "a relabeled row needs the label it is relabeled to."
        )
    clean = pd.DataFrame(
        {
            "row_id": table["row_id"].to_numpy(),
            "score": s,
            "gex_influence": pd.to_numeric(table["gex_influence"], errors="coerce").to_numpy(dtype=np.float64),
            "label_quality": pd.to_numeric(table["label_quality"], errors="coerce").to_numpy(dtype=np.float64),
            "is_issue": is_issue,
            "action": action.astype(object),
            "given_label": given,
            "suggested_label": suggested,
            "weight": weight.to_numpy(dtype=np.float64),
        },
        columns=list(TABLE_COLUMNS),
    )
    return clean, names

"""Every issue type of a run in one table, ranked by harm, and the policy that acts on them.

:func:`find_issues` takes what a run has (features, labels, cross-fitted probabilities, the
decisions table, the deviation matrices) and returns one row per input row with ``<type>_score`` and
``is_<type>`` for each issue type, the harm of every row and the harm rank of the flagged ones, plus a
JSON-ready summary. :func:`apply_issue_policy` turns it into actions on the decisions table: by
default, exact duplicates after their first copy are dropped and every other issue is reported only.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from influence_stage._checks import check_labels
from influence_stage.errors import InvalidInputError, InvalidTypeError
from influence_stage.issues.datalab import DatalabFindings, run_datalab
from influence_stage.issues.harm import rank_by_harm
from influence_stage.issues.types import DEFAULT_ISSUE_TYPES, ISSUE_TYPE_REGISTRY, IssueInputs, IssueType

#: Issue types :func:`apply_issue_policy` drops by default (exact duplicates: every copy after the first).
DEFAULT_DROP: tuple[str, ...] = ("exact_duplicate",)


@dataclass(frozen=True, eq=False)
class IssueReport:
    """The issue types of one run.

    Attributes
    ----------
    table : DataFrame, one row per input row, in input order: ``row_id`` (from the decisions table,
        else the position); per issue type ``<type>_score`` (quality in [0, 1], lower = more severe)
        and ``is_<type>``; extra columns of some types (``exact_duplicate_of``); ``is_any_issue``
        (any type, or the decisions table's label issue ``is_issue``); with deviations, ``harm``
        (higher = more harmful to the reference loss) and ``harm_rank`` (1 = most harmful flagged row,
        0 = not flagged).
    summary : JSON-ready dict: ``{"types": {type: {n_flagged, dataset_score, ...}}, "n_rows",
        "n_any_issue", "datalab_seconds", "seconds", "harm": {...} or None}``.
    """

    table: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(self.summary.get("types", {}))


def _features(features: Any) -> np.ndarray:
    if hasattr(features, "detach"):
        features = features.detach().cpu().numpy()
    arr = np.asarray(features)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InvalidTypeError(f"features must be numeric (the stage's featurized rows); found dtype {arr.dtype}.")
    if arr.ndim < 2 or arr.shape[0] == 0:
        raise InvalidInputError(f"features must be (n_samples, n_features) with at least one row; found shape "
                                f"{arr.shape}.")
    arr = arr.reshape(arr.shape[0], -1).astype(np.float32, copy=False)
    if np.isinf(arr).any():
        i, j = np.argwhere(np.isinf(arr))[0]
        raise InvalidInputError(f"features hold an infinite value at row {int(i)}, feature {int(j)}; NaN marks a "
                                "missing cell (reported as a null issue), infinity is not allowed. Fix: replace it.")
    return arr


def _proba(proba: Any, n: int, k: int) -> np.ndarray | None:
    if proba is None:
        return None
    arr = np.asarray(proba, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] < k:
        raise InvalidInputError(f"proba must have shape ({n}, K) with K >= {k} (one column per class); found "
                                f"{arr.shape}. Pass the cross-fitted out-of-sample probabilities of these rows.")
    if not np.isfinite(arr).all() or (arr < 0).any() or not np.allclose(arr.sum(axis=1), 1.0, atol=1e-3):
        raise InvalidInputError("proba must hold finite, non-negative rows summing to 1 (class probabilities).")
    return arr


def _types(types: Sequence[str] | None, options: Mapping[str, Mapping[str, Any]] | None) -> list[IssueType]:
    names = list(DEFAULT_ISSUE_TYPES if types is None else types)
    if isinstance(types, str):
        raise InvalidTypeError(f"types must be a list of issue type names; found the string {types!r}. "
                               f"Fix: types=[{types!r}].")
    options = dict(options or {})
    unknown = [k for k in options if k not in names]
    if unknown:
        raise InvalidInputError(f"options given for issue type(s) {unknown} that are not run; run types: {names}.")
    out = []
    for name in names:
        cls = ISSUE_TYPE_REGISTRY.get(name)
        try:
            out.append(cls(**options.get(name, {})))
        except TypeError as exc:
            raise InvalidInputError(f"issue type {name!r} does not take options {dict(options[name])}: {exc}.") from exc
    return out


def find_issues(features: Any, labels: Any, proba: Any = None, *, decisions: pd.DataFrame | None = None,
                deviations: Any = None, reference_deviations: Any = None, types: Sequence[str] | None = None,
                options: Mapping[str, Mapping[str, Any]] | None = None) -> IssueReport:
    """Find every issue type on a run's features and probabilities; rank the flagged rows by harm.

    Parameters
    ----------
    features : array, shape ``(n_samples, n_features)`` (or ``(n, ...)``, flattened) float32
        The stage's features of the rows; NaN marks a missing cell (the ``null`` type).
    labels : array of int, shape ``(n_samples,)``, codes ``0..K-1``
        The given labels.
    proba : array, shape ``(n_samples, K)``, optional
        Cross-fitted out-of-sample class probabilities (``GEXResult.oos_proba``). Without them the
        types that need them (``underperforming_group``) are left out of the default set.
    decisions : DataFrame, optional
        The decisions table (``Decisions.table``); gives ``row_id`` and the label issue ``is_issue``.
    deviations : array, shape ``(n_samples, M)``, optional
        ``deviation(loss_matrix, base_loss, tau)`` of the training rows: adds ``harm`` and ``harm_rank``.
    reference_deviations : array, shape ``(n_ref, M)``, optional
        Deviations of held-out rows under the same members; default reference: the unflagged rows.
    types : sequence of str, optional
        Issue type names (default: every registered type that the inputs allow).
    options : ``{type: {option: value}}``, optional
        Each type's options (its dataclass fields, e.g. ``{"outlier": {"k": 15}}``).

    Returns
    -------
    IssueReport
    """
    start = time.perf_counter()
    X = _features(features)
    y, k = check_labels(labels)
    if y.shape[0] != X.shape[0]:
        raise InvalidInputError(f"labels must have one entry per row of features: {X.shape[0]} rows, "
                                f"{y.shape[0]} labels.")
    P = _proba(proba, X.shape[0], k)
    if decisions is not None:
        if not isinstance(decisions, pd.DataFrame) or len(decisions) != X.shape[0]:
            raise InvalidInputError("decisions must be the decisions table with one row per row of features; found "
                                    f"{type(decisions).__name__} of length {len(decisions) if hasattr(decisions, '__len__') else '?'}.")
    chosen = _types(types if types is not None else (
        None if P is not None else [t for t in DEFAULT_ISSUE_TYPES if not ISSUE_TYPE_REGISTRY.get(t).needs_proba]),
        options)
    missing_proba = [t.name for t in chosen if t.needs_proba and P is None]
    if missing_proba:
        raise InvalidInputError(f"issue type(s) {missing_proba} need out-of-sample probabilities; pass proba "
                                "(the run's cross-fitted probabilities, GEXResult.oos_proba) or leave them out.")
    managers = {t.datalab_name: t.datalab_kwargs() for t in chosen if t.datalab_name is not None}
    lab: DatalabFindings | None = run_datalab(X, y, P, managers) if managers else None
    x = IssueInputs(features=X, labels=y, proba=P)

    row_id = decisions["row_id"].to_numpy() if decisions is not None and "row_id" in decisions else np.arange(len(y))
    columns: dict[str, Any] = {"row_id": row_id}
    type_summary: dict[str, Any] = {}
    any_issue = np.zeros(len(y), dtype=bool)
    for t in chosen:
        found = t.find(x, lab)
        columns[f"{t.name}_score"] = np.asarray(found.score, dtype=np.float64)
        columns[f"is_{t.name}"] = np.asarray(found.flag, dtype=bool)
        columns.update(found.extra)
        type_summary[t.name] = found.summary
        any_issue |= found.flag
    if decisions is not None and "is_issue" in decisions:
        any_issue |= decisions["is_issue"].to_numpy(dtype=bool)
    columns["is_any_issue"] = any_issue
    table = pd.DataFrame(columns)
    harm_summary = None
    if deviations is not None:
        ranked = rank_by_harm(deviations, any_issue, D_reference=reference_deviations)
        if len(ranked) != len(table):
            raise InvalidInputError(f"deviations must have one row per row of features: {len(table)} rows, "
                                    f"{len(ranked)} deviation rows.")
        table["harm"] = ranked["harm"].to_numpy()
        table["harm_rank"] = ranked["harm_rank"].to_numpy()
        flagged_harm = table.loc[any_issue, "harm"]
        harm_summary = {"reference": "held-out rows" if reference_deviations is not None else "unflagged rows",
                        "n_ranked": int(any_issue.sum()),
                        "n_harmful": int((flagged_harm > 0).sum()),
                        "top_row_ids": [r.item() if hasattr(r, "item") else r
                                        for r in table.loc[any_issue].sort_values("harm_rank")["row_id"][:10]]}
    summary = {"types": type_summary, "n_rows": int(len(y)), "n_any_issue": int(any_issue.sum()),
               "datalab_seconds": None if lab is None else float(lab.seconds),
               "seconds": float(time.perf_counter() - start), "harm": harm_summary}
    return IssueReport(table=table, summary=summary)


def apply_issue_policy(decisions: pd.DataFrame, issues: IssueReport | pd.DataFrame, *,
                       drop: Sequence[str] = DEFAULT_DROP) -> pd.DataFrame:
    """The decisions table with the issue policy applied: a copy, ``action`` changed to ``"drop"`` where
    the policy drops, and an ``issue_action`` column saying why (``""`` where nothing changed).

    Parameters
    ----------
    decisions : DataFrame
        The decisions table, one row per input row (``row_id``, ``action``, ...).
    issues : IssueReport or its table
        From :func:`find_issues` on the same rows, same order.
    drop : sequence of str
        Issue types whose flagged rows are dropped. ``"exact_duplicate"`` drops every copy after the first
        (the first is kept); any other type drops every flagged row. Default: exact duplicates only; every
        other type is reported, not acted on.

    Raises
    ------
    InvalidInputError
        Tables of different lengths or row ids; a type in ``drop`` that ``issues`` does not hold.
    """
    table = issues.table if isinstance(issues, IssueReport) else issues
    if not isinstance(decisions, pd.DataFrame) or "action" not in decisions:
        raise InvalidTypeError("decisions must be the decisions table (a DataFrame with an 'action' column); found "
                               f"{type(decisions).__name__}.")
    if len(decisions) != len(table) or ("row_id" in decisions and not np.array_equal(
            decisions["row_id"].to_numpy(), table["row_id"].to_numpy())):
        raise InvalidInputError("decisions and issues must cover the same rows in the same order; found "
                                f"{len(decisions)} and {len(table)} rows (or different row_id values). "
                                "Run find_issues with decisions=<this table>.")
    if isinstance(drop, str):
        drop = (drop,)
    out = decisions.copy()
    reason = np.full(len(out), "", dtype=object)
    action = out["action"].to_numpy(dtype=object).copy()
    for name in drop:
        if f"is_{name}" not in table:
            raise InvalidInputError(f"issue type {name!r} is not in the issues table; its types: "
                                    f"{[c[3:] for c in table.columns if c.startswith('is_') and c != 'is_any_issue']}.")
        if name == "exact_duplicate":
            hit = table["exact_duplicate_of"].to_numpy() >= 0
        else:
            hit = table[f"is_{name}"].to_numpy(dtype=bool)
        hit &= action != "drop"
        action[hit] = "drop"
        reason[hit] = name
    out["action"] = action
    out["issue_action"] = reason
    return out


__all__ = ["DEFAULT_DROP", "IssueReport", "apply_issue_policy", "find_issues"]

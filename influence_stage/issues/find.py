"""Every issue type of a run in one table, ranked by harm, and the policy that acts on them.

``find_data_issues`` takes what a run has (features, labels, cross-fitted probabilities, the
decisions table, the deviation matrices) and returns one row per input row with ``<type>_score`` and
``is_<type>`` for each issue type, the harm of every row and the harm rank of the flagged ones, plus a
JSON-ready summary. ``apply_issue_policy`` turns it into actions on the decisions table: by
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
from influence_stage.decisions.issues import ISSUE_REGISTRY
from influence_stage.decisions.issues import find_issues as run_issue_types
from influence_stage.issues.datalab import DatalabFindings, run_datalab
from influence_stage.issues.harm import rank_by_harm
from influence_stage.issues.types import DATA_ISSUE_TYPES, DatalabIssueType, exact_duplicate_of

#: Issue types ``apply_issue_policy`` drops by default (exact duplicates: every copy after the first).
DEFAULT_DROP: tuple[str, ...] = ("exact_duplicate",)


@dataclass(frozen=True, eq=False)
class IssueReport:
    """The issue types of one run.

    Attributes
    ----------
    table : DataFrame, one row per input row, in input order: ``row_id`` (from the decisions table,
        else the position); per issue type ``<type>_score`` (higher = more of the issue) and
        ``is_<type>_issue``; extra columns of some types (``exact_duplicate_of``); ``is_any_issue``
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


def _types(types: Sequence[str] | None, has_proba: bool) -> list[str]:
    if isinstance(types, str):
        raise InvalidTypeError(f"types must be a list of issue type names; found the string {types!r}. "
                               f"Fix: types=[{types!r}].")
    if types is None:
        return [t for t in DATA_ISSUE_TYPES if has_proba or "oos_proba" not in ISSUE_REGISTRY.get(t).needs]
    names = list(types)
    for name in names:
        ISSUE_REGISTRY.get(name)  # an unknown name: the error lists the registered ones
    return names


def find_data_issues(features: Any, labels: Any, proba: Any = None, *, decisions: pd.DataFrame | None = None,
                deviations: Any = None, reference_deviations: Any = None, types: Sequence[str] | None = None,
                options: Mapping[str, Mapping[str, Any]] | None = None) -> IssueReport:
    """Find every issue type on a run's features and probabilities; rank the flagged rows by harm.

    The types are entries of the issue-type registry (``ISSUE_REGISTRY``);
    the Datalab-backed ones share one Datalab call.

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
        The decisions table (``Decisions.table``); gives ``row_id``, and the label issue ``is_issue``
        counts in ``is_any_issue`` (the ``label`` type may then be named in ``types``).
    deviations : array, shape ``(n_samples, M)``, optional
        ``deviation(loss_matrix, base_loss, tau)`` of the training rows: adds ``harm`` and ``harm_rank``.
    reference_deviations : array, shape ``(n_ref, M)``, optional
        Deviations of held-out rows under the same members; default reference: the unflagged rows.
    types : sequence of str, optional
        Issue type names (default ``DATA_ISSUE_TYPES``, less the ones
        that need ``proba`` when it is not given).
    options : ``{type: {option: value}}``, optional
        Options of the Datalab-backed types (their dataclass fields, e.g. ``{"outlier": {"k": 15}}``).

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
    if decisions is not None and (not isinstance(decisions, pd.DataFrame) or len(decisions) != X.shape[0]):
        raise InvalidInputError("decisions must be the decisions table with one row per row of features; found "
                                f"{type(decisions).__name__} of length "
                                f"{len(decisions) if hasattr(decisions, '__len__') else '?'}.")
    names = _types(types, P is not None)
    options = {name: dict(opts) for name, opts in (options or {}).items()}
    unknown = [name for name in options if name not in names]
    if unknown:
        raise InvalidInputError(f"options given for issue type(s) {unknown} that are not run; run types: {names}.")
    classes = [ISSUE_REGISTRY.get(name) for name in names]
    missing_proba = [c.name for c in classes if "oos_proba" in c.needs and P is None]
    if missing_proba:
        raise InvalidInputError(f"issue type(s) {missing_proba} need out-of-sample probabilities; pass proba "
                                "(the run's cross-fitted probabilities, GEXResult.oos_proba) or leave them out.")
    managers: dict[str, dict[str, Any]] = {}
    for cls in classes:
        if issubclass(cls, DatalabIssueType):
            try:
                managers[cls.datalab_name] = cls(**options.get(cls.name, {})).datalab_kwargs()
            except TypeError as exc:
                raise InvalidInputError(f"issue type {cls.name!r} does not take options {options[cls.name]}: "
                                        f"{exc}.") from exc
        elif options.get(cls.name):
            raise InvalidInputError(f"issue type {cls.name!r} takes no options; found {options[cls.name]}.")
    lab: DatalabFindings | None = run_datalab(X, y, P, managers) if managers else None

    base = decisions.reset_index(drop=True) if decisions is not None else pd.DataFrame(
        {"row_id": np.arange(len(y)), "given_label": y})
    dup_of = exact_duplicate_of(X) if "exact_duplicate" in names else None
    found, type_summary = run_issue_types(base, names, oos_proba=P, features=X, labels=y, datalab=lab,
                                          issue_options=options, exact_duplicate_of=dup_of)
    new = [c for c in found.columns if c not in base.columns]
    table = found[["row_id", *new]].copy() if "row_id" in found else found[new].copy()
    if dup_of is not None:
        table["exact_duplicate_of"] = dup_of
    flags = [c for c in new if c.startswith("is_") and c.endswith("_issue")]
    any_issue = table[flags].to_numpy(dtype=bool).any(axis=1) if flags else np.zeros(len(y), dtype=bool)
    if decisions is not None and "is_issue" in base:
        any_issue |= base["is_issue"].to_numpy(dtype=bool)
    table["is_any_issue"] = any_issue
    harm_summary = None
    if deviations is not None:
        deviations = np.asarray(deviations, dtype=np.float64)
        if deviations.ndim != 2 or deviations.shape[0] != len(y):
            raise InvalidInputError(f"deviations must be (n_samples, n_members) with one row per row of features "
                                    f"({len(y)}); found shape {deviations.shape}. Pass deviation(loss_matrix, "
                                    "base_loss, tau) of these rows.")
        ranked = rank_by_harm(deviations, any_issue, D_reference=reference_deviations)
        table["harm"] = ranked["harm"].to_numpy()
        table["harm_rank"] = ranked["harm_rank"].to_numpy()
        ids = table.loc[any_issue].sort_values("harm_rank")["row_id"] if "row_id" in table else []
        harm_summary = {"reference": "held-out rows" if reference_deviations is not None else "unflagged rows",
                        "n_ranked": int(any_issue.sum()),
                        "n_harmful": int((table.loc[any_issue, "harm"] > 0).sum()),
                        "top_row_ids": [r.item() if hasattr(r, "item") else r for r in list(ids)[:10]]}
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
        From ``find_data_issues`` on the same rows, same order.
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
                                "Run find_data_issues with decisions=<this table>.")
    if isinstance(drop, str):
        drop = (drop,)
    out = decisions.copy()
    reason = np.full(len(out), "", dtype=object)
    action = out["action"].to_numpy(dtype=object).copy()
    for name in drop:
        if f"is_{name}_issue" not in table:
            held = [c[3:-6] for c in table.columns if c.startswith("is_") and c.endswith("_issue")]
            raise InvalidInputError(f"issue type {name!r} is not in the issues table; its types: {held}. "
                                    f"Fix: run find_data_issues with types including {name!r}.")
        if name == "exact_duplicate":
            hit = table["exact_duplicate_of"].to_numpy() >= 0
        else:
            hit = table[f"is_{name}_issue"].to_numpy(dtype=bool)
        hit = hit & (action != "drop")
        action[hit] = "drop"
        reason[hit] = name
    out["action"] = action
    out["issue_action"] = reason
    return out


__all__ = ["DEFAULT_DROP", "IssueReport", "apply_issue_policy", "find_data_issues"]

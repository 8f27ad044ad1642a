"""The issue types of a run (``influence_stage.issues.find_data_issues``) on the stage's own features and
cross-fitted probabilities, and the default policy on them.

``issues_step`` is the step function of the plan's ``issues`` step
(``influence_stage.pipeline.issues.Issues``); the estimators call it too when a run's plan did not
(``PipelineResult`` without ``issues``), with ``apply_policy=False`` since their rows were already applied.

Which types run (``issue_types_for``), from the configuration's ``issue_types`` (a field of
``CleanConfig`` once the configuration has it; until then the default):

- ``None`` (the default): every data issue type (``DATA_ISSUE_TYPES``, less ``underperforming_group``
  without out-of-sample probabilities) up to ``ISSUE_MAX_ROWS`` (10,000) rows; above it, only
  ``exact_duplicate`` (a hash of the feature rows, linear in ``n``), with a ``note`` in the summary
  saying which types were skipped and how to run them. The Datalab-backed types build kNN graphs:
  measured 35-42 s on 20,000 rows x 40 features, more than the rest of the run;
- a list of names: exactly those, at any size (an empty list: none; the step returns no report);
- names are checked against ``ISSUE_REGISTRY`` (an unknown name: the error lists the registered ones).

The default policy (``influence_stage.issues.apply_issue_policy``): rows that repeat an earlier
row's features bit for bit *and its label* are dropped (the first copy is kept); a copy with another
label (a label conflict) is reported, not dropped; when such copies are more than
``MAX_COPY_DROP_SHARE`` of the rows (features with few distinct values: categorical columns, a
coarse featurizer) none is dropped and the summary's ``note`` says so. Every other type is reported
only. Under the default types, a Datalab type that fails on the features (too few rows for its kNN
graph) is skipped with a note instead of failing the run; named types fail loudly.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from typing import Any

import numpy as np

from influence_stage.decisions.issues import ISSUE_REGISTRY
from influence_stage.errors import InvalidInputError, InvalidTypeError
from influence_stage.issues import DATA_ISSUE_TYPES, DEFAULT_DROP, IssueReport, apply_issue_policy, find_data_issues

logger = logging.getLogger(__name__)

#: Rows up to which the default runs every data issue type; above it only ``exact_duplicate`` runs.
#: Measured on 40 random features, 10 classes, with probabilities (2 shared CPU cores): 5,000 rows 2.5 s,
#: 10,000 rows 4.3 s, 20,000 rows 35 s (outlier + near_duplicate + null + class_imbalance 12.5 s,
#: non_iid 10.0 s, underperforming_group 12.7 s): the kNN types grow faster than the rows, and above
#: 10,000 rows cost more than the rest of a run.
ISSUE_MAX_ROWS = 10_000
#: The types the default keeps above ``ISSUE_MAX_ROWS`` (linear in the rows, no kNN graph).
CHEAP_TYPES: tuple[str, ...] = ("exact_duplicate",)
#: The policy drops exact copies only while they are at most this share of the rows: above it the
#: features hold few distinct values (categorical columns, a coarse featurizer) and copies are expected,
#: so they are reported, not dropped (a note in the summary says so).
MAX_COPY_DROP_SHARE = 0.05


def issue_types_for(config: Any, n_rows: int, has_proba: bool) -> tuple[tuple[str, ...], str | None]:
    """The issue types a run of ``n_rows`` rows runs, and a note on the ones the default skipped.

    Parameters
    ----------
    config : CleanConfig
        Its ``issue_types`` (None when the configuration has no such field).
    n_rows : int
    has_proba : bool
        The run computed cross-fitted out-of-sample probabilities.

    Returns
    -------
    types : tuple of str
    note : str or None
        Why the default left types out (the row limit), else None.
    """
    chosen = getattr(config, "issue_types", None)
    if chosen is not None:
        if isinstance(chosen, str):
            raise InvalidTypeError(f"issue_types must be a list of issue type names; found the string {chosen!r}. "
                                   f"Fix: issue_types=[{chosen!r}].")
        names = tuple(chosen)
        for name in names:
            ISSUE_REGISTRY.get(name)  # an unknown name: the error lists the registered ones
        return tuple(n for n in names if n != "label"), None
    default = tuple(t for t in DATA_ISSUE_TYPES if has_proba or "oos_proba" not in ISSUE_REGISTRY.get(t).needs)
    if n_rows <= ISSUE_MAX_ROWS:
        return default, None
    skipped = [t for t in default if t not in CHEAP_TYPES]
    note = (f"{n_rows} rows > {ISSUE_MAX_ROWS}: issue types {skipped} skipped (a kNN graph each; name them in "
            "issue_types to run them)")
    return tuple(t for t in default if t in CHEAP_TYPES), note


def _feature_array(features: Any) -> tuple[np.ndarray | None, str | None]:
    """The features as one in-memory array, or None and why not."""
    X = features.X
    if getattr(features, "store", None) is not None:
        return None, "features are on disk (featurize.on_disk): issue types on features skipped"
    arr = np.asarray(X)
    if arr.ndim < 2 or arr.reshape(arr.shape[0], -1).shape[1] == 0:
        return None, "no features (the model reads the raw columns): issue types on features skipped"
    missing = getattr(features, "missing", None)  # (n, d) bool: cells a featurizer imputed, reported as nulls
    if missing is not None:
        missing = np.asarray(missing, dtype=bool)
        if missing.any():
            arr = np.where(missing.reshape(arr.shape), np.float32(np.nan), arr).astype(arr.dtype, copy=False)
    return arr, None


def _find(X: np.ndarray, y: Any, oos: Any, table: Any, deviations: Any, types: tuple[str, ...]) -> IssueReport:
    """``find_data_issues`` with the process's warning filters restored afterwards: the modules cleanlab imports
    on its first call, inside its own ``catch_warnings`` block, left an "ignore every warning" filter behind,
    which silenced the stage's own warnings (the untrained-model warning, the CLI's warning lines) for the
    rest of the process."""
    with warnings.catch_warnings():
        return find_data_issues(X, y, oos, decisions=table, deviations=deviations, types=types)


def _find_skipping_failures(X: np.ndarray, y: Any, oos: Any, table: Any, deviations: Any, types: tuple[str, ...],
                            note: str | None, explicit: bool) -> tuple[IssueReport | None, tuple[str, ...], str | None]:
    """``_find``; under the default type list, the types Datalab could not run on these features are skipped
    with a note and the others kept (named types fail loudly: the user asked for them).

    Datalab names the managers that failed (``DatalabTypesFailed.failed``): those types go and the rest run
    again; a second failure, or an error that names no manager, leaves the cheap types only.
    """
    for attempt in range(2):
        try:
            return _find(X, y, oos, table, deviations, types), types, note
        except InvalidInputError as exc:  # Datalab on too few rows, one feature, ...: the default falls back
            cheap = tuple(t for t in types if t in CHEAP_TYPES)
            if explicit or cheap == types:
                raise
            failed = set(getattr(exc, "failed", ()))
            named = tuple(t for t in types if getattr(ISSUE_REGISTRY.get(t), "datalab_name", None) in failed)
            keep = tuple(t for t in types if t not in named) if named and attempt == 0 else cheap
            note = f"{'' if note is None else note + '; '}issue types {[t for t in types if t not in keep]} " \
                   f"failed on these features and were skipped ({' '.join(str(exc).split())[:200]})"
            types = keep
            if not types:
                return None, types, note
    return _find(X, y, oos, table, deviations, types), types, note


def issues_step(result: Any, features: Any, decisions: Any, config: Any, *,
                apply_policy: bool = True) -> tuple[IssueReport | None, Any]:
    """Find the run's issue types and apply the default policy.

    Parameters
    ----------
    result : GEXResult
        Its ``oos_proba`` ``(n, K)`` (cross-fitted probabilities, when computed) and ``loss_matrix`` /
        ``base_loss`` (for the harm ranking: ``deviation(loss_matrix, base_loss, gex.tau)``).
    features : Features
        ``X`` ``(n, ...)`` float32 (the stage's features) and ``y`` ``(n,)`` codes; a ``missing``
        attribute ``(n, d)`` bool (cells a featurizer imputed), when it has one, puts NaN back into
        those cells for the issue types, so ``null`` flags their rows.
    decisions : Decisions
        The decisions of the run, one row per input row.
    config : CleanConfig
        ``issue_types`` (see ``issue_types_for``) and ``gex.tau``.
    apply_policy : bool
        Apply ``apply_issue_policy`` (drop exact duplicates after the first
        copy). False: report only (for rows already applied).

    Returns
    -------
    report : IssueReport or None
        None when no type runs (``issue_types=[]``). Its table gains ``issue_action`` (the type that
        changed the row's action, ``""`` elsewhere); its summary ``note`` (or None) and ``policy``
        (``{"drop": [...], "n_dropped": int}``).
    decisions : Decisions
        The same object when the policy changed nothing (the common case: no exact duplicates),
        else a copy whose table has ``action="drop"`` on the dropped copies (columns unchanged).
    """
    n = len(decisions.table)
    oos = getattr(result, "oos_proba", None)
    types, note = issue_types_for(config, n, oos is not None)
    X, why = _feature_array(features)
    if X is None:
        note = why if note is None else f"{note}; {why}"
        types = ()
    if not types:
        if note:
            logger.info("issue types: %s", note)
        return None, decisions
    deviations = None
    if getattr(result, "loss_matrix", None) is not None and getattr(result, "base_loss", None) is not None:
        from influence_stage.engine.influence import deviation

        tau = getattr(getattr(config, "gex", None), "tau", 0.05)
        deviations = deviation(np.asarray(result.loss_matrix), np.asarray(result.base_loss), tau)
    explicit = getattr(config, "issue_types", None) is not None
    report, types, note = _find_skipping_failures(X, features.y, oos, decisions.table, deviations, types,
                                                  note, explicit)
    if report is None:
        logger.info("issue types: %s", note)
        return None, decisions
    drop = [t for t in DEFAULT_DROP if t in types] if apply_policy else []
    table = report.table
    policy_table = table
    if "exact_duplicate" in drop:
        first = table["exact_duplicate_of"].to_numpy()
        y = np.asarray(features.y)
        later = first >= 0
        same = later.copy()
        same[later] = y[later] == y[first[later]]  # a copy with another label is a label conflict: reported
        if same.sum() > MAX_COPY_DROP_SHARE * n:
            note = f"{'' if note is None else note + '; '}{int(same.sum())} exact copies (> " \
                   f"{MAX_COPY_DROP_SHARE:.0%} of the rows): the features hold few distinct values; copies reported, " \
                   "not dropped"
            drop = [t for t in drop if t != "exact_duplicate"]
        else:
            policy_table = table.assign(exact_duplicate_of=np.where(same, first, -1))
    if drop:
        applied = apply_issue_policy(decisions.table, policy_table, drop=drop)
        reason = applied.pop("issue_action")
    else:
        applied, reason = decisions.table, np.full(n, "", dtype=object)
    table = table.assign(issue_action=np.asarray(reason, dtype=object))
    changed = int((np.asarray(reason, dtype=object) != "").sum())
    summary = dict(report.summary, note=note, policy={"drop": list(drop), "n_dropped": changed})
    out = IssueReport(table=table, summary=summary)
    if note:
        logger.info("issue types: %s", note)
    if not changed:
        return out, decisions
    return out, dataclasses.replace(decisions, table=applied)


def issue_counts(report: IssueReport | None) -> dict[str, int]:
    """``{type: rows flagged}`` of a report (empty for None), in the report's order."""
    if report is None:
        return {}
    out = {}
    for name in report.types:
        col = f"is_{name}_issue"
        if col in report.table:
            out[name] = int(report.table[col].to_numpy(dtype=bool).sum())
    return out


__all__ = ["CHEAP_TYPES", "ISSUE_MAX_ROWS", "MAX_COPY_DROP_SHARE", "issue_counts", "issue_types_for", "issues_step"]

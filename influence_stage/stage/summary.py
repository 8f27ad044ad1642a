"""The run's summary: counts and choices, the column roles, and the warnings a reader must not miss."""

from __future__ import annotations

import logging
from typing import Any

import datasets

from influence_stage.decisions import Decisions
from influence_stage.engine.gex import GEXResult
from influence_stage.stage.steps import Prepared

logger = logging.getLogger(__name__)

FLAGGED_OVER_ESTIMATE = 2.0
"""The summary warns when more rows are flagged than this many times the estimated number of
mislabeled rows (plus 1% of the rows): a threshold far looser than the data's noise."""


def column_roles(prepared: Prepared) -> dict[str, Any]:
    """The column roles the run used: ``{"label": name, "kind": "tabular" | "text" | "image", "features": [...]}``.

    Recorded in the summary (printed by the CLI, in ``meta.json``'s ``summary`` and the report), so
    a switch of roles between runs is visible, never silent.
    """
    roles = prepared.roles
    return {"label": roles.label_column, "kind": roles.kind, "features": list(roles.feature_columns)}


def guard_warnings(result: GEXResult, decisions: Decisions, *, estimate_count: str) -> list[str]:
    """What a reader of the summary must not miss: caps that bound, a flagged share far above the noise estimate.

    The estimate is the threshold's own under ``"estimate"``; under another threshold, the count
    ``estimate_count`` (``GEXConfig.estimate_count``, ``decisions.estimate.ESTIMATE_COUNTS``) of the
    run's out-of-sample probabilities when the scale left them.
    """
    from influence_stage.decisions.estimate import ESTIMATE_COUNTS

    lines = list(decisions.caps)
    table = decisions.table
    n, flagged = len(table), int(table["is_issue"].sum())
    n_est = decisions.threshold.n_estimated
    if n_est is None and result.oos_proba is not None:
        n_est = ESTIMATE_COUNTS[estimate_count](table["given_label"].to_numpy(), result.oos_proba)
    if n_est is not None and flagged > FLAGGED_OVER_ESTIMATE * n_est + 0.01 * n:
        lines.append(f"{flagged} rows flagged ({flagged / n:.1%}), far above the estimated noise rate "
                     f"({n_est / n:.1%}, {n_est} rows): the threshold {decisions.threshold.method!r} flags many "
                     "rows that are likely clean; check it, or use the default threshold 'estimate'")
    for line in lines:
        logger.warning("%s", line)
    return lines


def summarize(result: GEXResult, decisions: Decisions, cleaned: datasets.Dataset, prepared: Prepared, *,
              estimate_count: str, issues: Any = None) -> dict[str, Any]:
    """The run's counts and choices: rows in and out, flagged, per action, rate, score, threshold, roles,
    the auxiliary model's check (``engine.auxiliary``) and the guard's warnings (``guard_warnings``)."""
    table = decisions.table
    counts = table["action"].value_counts().to_dict()
    summary: dict[str, Any] = {
        "rows in": len(table), "rows out": len(cleaned), "flagged": int(table["is_issue"].sum()),
        **{f"action {k}": int(v) for k, v in sorted(counts.items())}, "ft_lr": result.ft_lr,
        "score": result.score_name,
        # rows the models place in their given class ranked after the others (engine.scores.evidence_first)
        "evidence first": result.evidence_first,
        "threshold method": decisions.threshold.method,
        "threshold": float(decisions.threshold.value), "members": len(result.members),
        "theta fit": round(result.theta_fit, 4),  # share of rows θ* fits (gex.THETA_FIT_WARNING)
        "columns": column_roles(prepared),
    }
    if issues is not None:  # the issue types beside label issues (stage.issues)
        from influence_stage.stage.issues import issue_counts

        summary["issue types"] = issue_counts(issues)
        policy = issues.summary.get("policy") or {}
        summary["exact duplicates dropped"] = int(policy.get("n_dropped", 0))
        if issues.summary.get("note"):
            summary["issue types note"] = issues.summary["note"]
    encoding = prepared.encoding
    if encoding.normalization:  # what normalize_labels did, so a merge of spellings is never silent
        summary["labels normalized"] = {"by": list(encoding.normalization),
                                        "merged": {str(k): list(v) for k, v in encoding.merged}}
    if decisions.threshold.n_estimated is not None:
        summary["estimated noise rate"] = round(float(decisions.threshold.estimated_noise_rate), 4)
    aux = getattr(result, "auxiliary", None)
    if aux is not None:  # the cross-fitted model's out-of-sample accuracy on the given labels (engine.auxiliary)
        summary["auxiliary accuracy"] = round(aux.accuracy, 4)
        summary["auxiliary reliable"] = bool(aux.reliable)
    agreement = getattr(result, "gex_agreement", None)
    if agreement is not None:  # the exact GEX score against the reliable cross-fitted model (engine.gex)
        summary["gex agreement"] = {"ap": round(agreement.ap, 4), "chance": round(agreement.chance, 4)}
    warnings = guard_warnings(result, decisions, estimate_count=estimate_count)
    if agreement is not None and agreement.inverted:  # already logged by engine.gex
        warnings = [agreement.message(result.theta_fit, result.score_name), *warnings]
    if aux is not None and not aux.reliable:  # already logged by engine.gex
        warnings = [aux.message(), *warnings]
    if warnings:
        summary["warnings"] = warnings
    return summary


__all__ = ["FLAGGED_OVER_ESTIMATE", "column_roles", "guard_warnings", "summarize"]

"""The HTML report of a fitted estimator (``InfluenceCleaner``, ``InfluenceSampler``): the notebook path.

The page is ``influence_stage.report.build_report``, as published by the pipeline, fed from the
estimator's fitted attributes: the decisions table, the class names, the threshold, the score name,
the run's choices and column roles for the summary, and the gallery of the most suspicious rows
from the data the estimator was fitted on (images as thumbnails, texts as text), so a notebook
shows what the published report shows.
"""

from __future__ import annotations

import logging
from typing import Any

from influence_stage.report.html import build_report

logger = logging.getLogger(__name__)


def estimator_summary(estimator: Any) -> dict[str, Any]:
    """The summary entries of a fitted estimator's report: score, threshold method, members, ``ft_lr``,
    estimated noise rate (when the run estimated one) and the column roles (``columns``).

    Parameters
    ----------
    estimator : InfluenceCleaner or InfluenceSampler
        Fitted (``decisions_``, ``score_name_``, ``members_``, ``ft_lr_``, ``estimated_noise_rate_``;
        ``_roles_`` when the estimator records column roles).

    Returns
    -------
    dict
        Entries in display order; ``columns`` is ``{"label", "kind", "features"}``, which the report
        shows in one line (``influence_stage.report.common.roles_line``).
    """
    out: dict[str, Any] = {"score": estimator.score_name_,
                           "evidence first": bool(getattr(estimator, "_evidence_first_", False)),
                           "threshold method": estimator.decisions_.threshold.method,
                           "members": len(estimator.members_), "ft_lr": estimator.ft_lr_}
    if estimator.estimated_noise_rate_ is not None:
        out["estimated noise rate"] = round(float(estimator.estimated_noise_rate_), 4)
    aux = getattr(getattr(estimator, "result_", None), "auxiliary", None)
    if aux is not None:  # the cross-fitted model's check (engine.auxiliary)
        out["auxiliary accuracy"] = round(float(aux.accuracy), 4)
        if not aux.reliable:
            out["auxiliary warning"] = aux.message()
    agreement = getattr(getattr(estimator, "result_", None), "gex_agreement", None)
    if agreement is not None:  # the exact GEX score against the reliable cross-fitted model (engine.gex)
        out["gex agreement"] = f"AP {agreement.ap:.3f} for the contradicted rows (chance {agreement.chance:.3f})"
        if agreement.inverted:
            out["gex warning"] = agreement.message(estimator.result_.theta_fit, estimator.result_.score_name)
    roles = getattr(estimator, "_roles_", None)
    if roles is not None:
        out["columns"] = {"label": roles.label_column, "kind": roles.kind, "features": list(roles.feature_columns)}
    return out


def estimator_gallery(estimator: Any) -> Any:
    """The gallery source of a fitted estimator: its image column, else its text column, else None.

    Read from the data the estimator was fitted on (``pipeline_.prepared``), as the published
    report does (``influence_stage.pipeline.publishing.gallery``). None for tabular data without an
    image column, and for an estimator restored by ``load`` (the data is not saved with it).
    """
    from influence_stage.pipeline.publishing import gallery

    pipeline = getattr(estimator, "pipeline_", None)
    prepared = getattr(pipeline, "prepared", None)
    if prepared is None:
        return None
    try:
        return gallery(prepared)
    except (KeyError, IndexError, TypeError, ValueError) as exc:  # a diagnostic: never fail the report on it
        logger.warning("no gallery in the report: the fitted data's rows could not be read (%s)", exc)
        return None


def estimator_report_html(estimator: Any, *, truth: Any = None, title: str = "influence_stage report") -> str:
    """The HTML report of a fitted estimator, with the same sections as the published report.

    Parameters
    ----------
    estimator : InfluenceCleaner or InfluenceSampler
        Fitted (``issues_`` set).
    truth : array-like of bool, shape ``(n_samples,)``, optional
        Truly mislabeled rows (demos): adds precision / recall.
    title : str, default "influence_stage report"
        Page title and heading.

    Returns
    -------
    str
        The page (``influence_stage.report.build_report``): the summary with
        ``estimator_summary``, the gallery with ``estimator_gallery``, the issue types and harm
        ranking with ``estimator_issue_types``.
    """
    types, harm = estimator_issue_types(estimator)
    return build_report(estimator.decisions_.table, class_names=[str(c) for c in estimator.classes_],
                        threshold=estimator.threshold_, truth=truth, gallery=estimator_gallery(estimator),
                        summary=estimator_summary(estimator), title=title, score_name=estimator.score_name_,
                        issue_types=types, harm=harm)


def estimator_issue_types(estimator: Any) -> tuple[dict[str, int] | None, Any]:
    """The issue types of a fitted estimator for the report: ``({type: rows flagged}, harm)``.

    The counts are the ``is_<type>_issue`` columns of ``issues_`` summed, for the types of the
    run's issue report (``issue_report_summary_["types"]``; as ``issue_summary()["n_issues"]``,
    without the ``label`` row the report's other sections are about); ``harm`` is the ``harm`` and ``harm_rank`` columns of
    ``issues_`` when the run ranked the flagged rows by harm, else None. ``(None, None)`` when the
    run looked for no issue type beside label issues.
    """
    summary = getattr(estimator, "issue_report_summary_", None)
    issues = getattr(estimator, "issues_", None)
    if summary is None or issues is None:
        return None, None
    types = {str(name): int(issues[f"is_{name}_issue"].to_numpy(dtype=bool).sum())
             for name in summary.get("types", {}) if f"is_{name}_issue" in issues.columns}
    harm = None
    if {"harm", "harm_rank"} <= set(issues.columns):
        harm = issues[["harm", "harm_rank"]].reset_index(drop=True)
    return types or None, harm

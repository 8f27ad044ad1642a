"""The cleaning flow's steps around the library's: checks before any work, the unchanged-data stop, the
summary, the report's bias scores, publishing and the run's outcome.

They read the flow's parameters from ``RunContext.params`` (an ``orchestration.flow.FlowConfig``:
``name``, ``publish_root``, ``cache_dir``, ``truth``, ``skip_unchanged``, ``keep``, ...) and never
import Prefect: the executor decides how they run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from influence_stage.config.clean import config_fingerprint
from influence_stage.data.arrow import ROW_ID, row_id_was_added
from influence_stage.engine.gex import GEXResult
from influence_stage.pipeline.context import RunContext
from influence_stage.pipeline.step import Step
from influence_stage.stage import steps
from influence_stage.stage.steps import Features, Prepared, learner_data
from influence_stage.stage.summary import summarize

logger = logging.getLogger(__name__)

RUN_CONTROL_FIELDS = frozenset({"progress", "skip_unchanged", "keep", "notify_webhook", "task_timeout_s",
                                "cache_expiration_days"})
"""FlowConfig fields that do not change what a run publishes: left out of ``output_fingerprint``."""

LOCATION_FIELDS = frozenset({"source", "cache_dir"})
"""FlowConfig fields that say where the input and the cache are, not what they hold: left out of
``output_fingerprint`` (the data fingerprint covers the source's content, so a renamed or moved
file with the same rows is the same input; the cache only holds what the keys already name)."""


def output_fingerprint(params: Any) -> str:
    """Fingerprint of the configuration that shapes the published version (for ``skip_unchanged``).

    Every field but ``RUN_CONTROL_FIELDS`` and ``LOCATION_FIELDS``, plus
    ``config.clean.config_fingerprint`` of the cleaning configuration (which holds the content of a
    checkpoint or ``hf:`` folder, so a model file overwritten in place counts as a change). The
    source's content is the data fingerprint's business, not this one's.
    """
    from influence_stage.publish.versions import config_digest

    excluded = set(RUN_CONTROL_FIELDS | LOCATION_FIELDS)
    return config_digest({"params": params.model_dump(mode="json", exclude=excluded),
                          "scoring": config_fingerprint(params.clean)})


def roles_change(params: Any, columns: dict[str, Any]) -> str | None:
    """A warning when the column roles differ from those of the latest published version of the name.

    Returns None when nothing was published yet, the latest version did not record its roles, or
    they are the same.
    """
    import json

    from influence_stage.publish.versions import META_JSON, latest_version

    try:
        latest = latest_version(params.publish_root, params.name)
    except Exception:  # a damaged LATEST is publish's business; it does not stop this check
        return None
    if latest is None:
        return None
    meta_path = Path(params.publish_root) / params.name / latest / META_JSON
    try:
        previous = (json.loads(meta_path.read_text(encoding="utf-8")).get("summary") or {}).get("columns")
    except (OSError, ValueError):
        return None
    if not previous or previous == columns:
        return None
    return (f"column roles changed since {params.name} {latest}: label {previous.get('label')!r}, "
            f"{previous.get('kind')} features {previous.get('features')} then; label {columns['label']!r}, "
            f"{columns['kind']} features {columns['features']} now")


def truth_mask(params: Any, row_ids: np.ndarray) -> np.ndarray | None:
    if params.truth is None:
        return None
    mask = pd.read_parquet(params.truth, columns=["row_id", "is_flipped"]).set_index("row_id")["is_flipped"]
    return mask.reindex(row_ids).fillna(False).to_numpy(dtype=bool)


def gallery(prepared: Prepared) -> Any:
    """What the report's gallery shows: the image column (a feature or not), else the text column."""
    import datasets

    roles = prepared.roles
    if roles.kind == "text":
        return [str(t) for t in prepared.dataset[roles.feature_columns[0]]]
    images = [name for name, feature in prepared.dataset.features.items() if isinstance(feature, datasets.Image)]
    column = roles.feature_columns[0] if roles.kind == "image" else (images[0] if images else None)
    if column is None:
        return None
    return lambda i: prepared.dataset[int(i)][column]


def bias_scores(result: GEXResult, prepared: Prepared, features: Features,
                log: Any = logger) -> dict[str, np.ndarray] | None:
    """Self-influence of the noisy run by three estimators, for the report's distributional-bias figure.

    The identity-curvature influence ``||g_n||²`` and the damped linearized influence
    ``g_nᵀ (H + λI)⁻¹ g_n`` (``influence_stage.engine.baselines``) are computed at ``θ*`` (``result.learner``,
    which the loss task leaves there) on the rows the run scored, next to GEX's own
    ``result.gex_influence``: side by side they show which estimators separate mislabeled from
    clean rows. The figure is a diagnostic, so whatever stops it is logged and skipped, never raised.

    Parameters
    ----------
    result : GEXResult
        The run's result, its learner at ``θ*``.
    prepared, features : Prepared, Features
        What the run was scored on; ``stage.steps.learner_data`` builds the learner's data from them.
    log : logging.Logger-like, default the module logger
        Where the reason for a skip goes.

    Returns
    -------
    dict of str to ndarray or None
        ``{"identity-curvature IF", "damped linearized IF", "GEX"}`` → ``(n,) float64`` scores in
        row order, all ``>= 0``; None when the learner is not a ``TorchLearner`` (a Hugging Face
        model: the baselines need plain tensors and a module), when the result has no GEX
        self-influence, or when a baseline cannot be computed for this model.
    """
    from influence_stage.engine.baselines import gradient_norm_influence, linearized_influence
    from influence_stage.errors import InvalidInputError
    from influence_stage.engine.learner import TorchLearner

    learner = result.learner
    if not isinstance(learner, TorchLearner):
        log.info("distributional-bias figure skipped: the learner is a %s, not a TorchLearner (the influence "
                 "baselines need one)", type(learner).__name__)
        return None
    if result.gex_influence is None:
        log.info("distributional-bias figure skipped: the result carries no GEX self-influence")
        return None
    data = learner_data(learner, prepared, features)
    try:
        identity = gradient_norm_influence(learner, data)
        linearized = linearized_influence(learner, data)
    except (InvalidInputError, RuntimeError) as exc:  # a model the baselines cannot handle, a failed solve
        log.warning("distributional-bias figure skipped: %s", " ".join(str(exc).split()))
        return None
    # g_nᵀ (H + λI)⁻¹ g_n is >= 0; a rounding error can leave a tiny negative value
    return {"identity-curvature IF": np.asarray(identity, dtype=np.float64),
            "damped linearized IF": np.clip(np.asarray(linearized, dtype=np.float64), 0.0, None),
            "GEX": np.asarray(result.gex_influence, dtype=np.float64)}


def unchanged_outcome(params: Any, version: str, removed: Any = ()) -> dict[str, Any]:
    """The outcome of a run that published nothing: the dataset and configuration equal the latest version's."""
    line = f"unchanged, nothing published (latest {version})"
    path = Path(params.publish_root) / params.name / version
    if removed:
        line += f"; retention removed {', '.join(removed)}"
    logger.info("%s: %s", params.name, line)
    return {"unchanged": True, "latest": version, "published": str(path), "report": str(path / "report.html"),
            "removed": list(removed), "markdown": line}


class Preflight(Step):
    """Every check that needs no features and no training (``stage.steps.preflight``), before any work."""

    name, timing, task = "preflight", "preflight", False

    def run(self, context: RunContext) -> Any:
        p = context.params
        steps.preflight(context.source, context.config, name=p.name, publish_root=p.publish_root,
                        cache_dir=p.cache_dir, push_to_hub=p.push_to_hub)


class SkipUnchanged(Step):
    """Under ``skip_unchanged``: stop, publishing nothing, when data and configuration equal the latest version's.

    The scoring work is skipped too; publish checks again under its lock.
    """

    name, reads, timing, task = "skip-unchanged", ("prepared",), "skip unchanged", False

    def applies(self, context: RunContext) -> bool:
        return bool(context.params.skip_unchanged)

    def run(self, context: RunContext) -> Any:
        from influence_stage.publish.versions import prune_versions, unchanged_version

        p = context.params
        same = unchanged_version(p.publish_root, p.name, fingerprint=context.fingerprint,
                                 config_fingerprint=output_fingerprint(p))
        if same is not None:
            removed = prune_versions(p.publish_root, p.name, p.keep) if p.keep else []
            context.stop(unchanged_outcome(p, same, removed))


class Summarize(Step):
    """The run's summary (``stage.summary.summarize``) with a warning when the column roles changed."""

    name, reads, writes, timing, task = ("summarize", ("result", "decisions", "cleaned", "prepared", "issues"),
                                         ("summary",),
                                         "summarize", False)

    def run(self, context: RunContext) -> Any:
        summary = summarize(context["result"], context["decisions"], context["cleaned"], context["prepared"],
                            issues=context.get("issues"), estimate_count=context.config.gex.estimate_count)
        change = roles_change(context.params, summary["columns"])
        if change is not None:  # with the guard's (stage.summary.guard_warnings): one list, printed and published
            summary.setdefault("warnings", []).append(change)
            logger.warning("%s", change)
        return summary


class BiasScores(Step):
    """The report's baseline self-influence scores (``bias_scores``), with ground truth only."""

    name, reads, writes, timing = "bias-scores", ("result", "prepared", "features"), ("bias",), "bias scores (report)"

    def applies(self, context: RunContext) -> bool:
        return context.params.truth is not None

    def run(self, context: RunContext) -> Any:
        return bias_scores(context["result"], context["prepared"], context["features"])


def _harm_of(issues: Any) -> Any:
    """The issues step's ``harm`` and ``harm_rank`` per row (for the report's harm table), when it has them."""
    table = getattr(issues, "table", None)
    if table is None or not {"harm", "harm_rank"} <= set(table.columns):
        return None
    return table[["harm", "harm_rank"]]


class Publish(Step):
    """The HTML report (with the distributional-bias figure when there are bias scores) and the published version."""

    name, reads, writes, timing, io = ("publish", ("cleaned", "decisions", "prepared", "features", "summary", "issues"),
                                       ("published",), "publish + report", True)

    def run(self, context: RunContext) -> Any:
        from influence_stage.publish.versions import labelled_manifest, publish
        from influence_stage.report import build_report

        p, prepared, decisions, summary = context.params, context["prepared"], context["decisions"], context["summary"]
        names = [str(v) for v in prepared.encoding.names]
        html = build_report(decisions.table, class_names=names, threshold=decisions.threshold.value,
                            truth=truth_mask(p, context["features"].row_ids), gallery=gallery(prepared),
                            summary=summary, title=f"influence_stage: {p.name}", bias_scores=context.get("bias"),
                            score_name=summary.get("score"), harm=_harm_of(context.get("issues")))
        cleaned = context["cleaned"]
        if row_id_was_added(cleaned):  # the stage's own ids: published in the manifest, not as a data column
            cleaned = cleaned.remove_columns(ROW_ID)
        reports = [context.get("input_report"), context.get("output_report")]
        return publish(cleaned, labelled_manifest(decisions.table, prepared.encoding, issues=context.get("issues")),
                       root=p.publish_root,
                       name=p.name, config=p.model_dump(mode="json"), validation_reports=reports,
                       report_html=html, fingerprint=context.fingerprint, classes=list(prepared.encoding.values),
                       class_names=list(prepared.encoding.names), summary=summary, push_to_hub_repo=p.push_to_hub,
                       config_fingerprint=output_fingerprint(p), skip_unchanged=p.skip_unchanged, keep=p.keep)


class Outcome(Step):
    """The run's outcome: the summary with the published path, the timings and the markdown summary.

    When another run published the same data while this one was scoring it, the outcome says
    ``unchanged`` instead.
    """

    name, reads, timing, task = "outcome", ("published", "summary", "decisions", "result"), "outcome", False

    def run(self, context: RunContext) -> Any:
        from influence_stage.report import precision_recall_at, summary_markdown

        p, published = context.params, context["published"]
        if published.unchanged:
            context.stop(unchanged_outcome(p, published.version, published.removed))
            return
        summary, decisions, prepared = context["summary"], context["decisions"], context["prepared"]
        table = decisions.table
        summary["published"] = str(published.path)
        summary["report"] = str(Path(published.path) / "report.html")
        if published.removed:
            summary["removed"] = list(published.removed)  # retention (keep)
        summary["seconds"] = round(sum(context.timings.values()), 2)
        names = [str(v) for v in prepared.encoding.names]
        truth = truth_mask(p, context["features"].row_ids)
        summary["markdown"] = summary_markdown(
            table, names, decisions.threshold.value, truth=truth, timings=context.timings,
            score_name=context["result"].score_name, threshold_method=decisions.threshold.method,
            n_estimated=decisions.threshold.n_estimated)
        if truth is not None:
            summary["precision"], summary["recall"], _ = precision_recall_at(table["is_issue"].to_numpy(dtype=bool),
                                                                             truth)
        logger.info("published %s (%d → %d rows)", published.path, len(table), len(context["cleaned"]))
        context.stop(summary)


PUBLISH_STEPS: tuple[Step, ...] = (Summarize(), BiasScores(), Publish(), Outcome())
"""The flow's steps after the output gate, in order."""


__all__ = ["LOCATION_FIELDS", "PUBLISH_STEPS", "RUN_CONTROL_FIELDS", "BiasScores", "Outcome", "Preflight", "Publish", "SkipUnchanged",
           "Summarize", "bias_scores", "gallery", "output_fingerprint", "roles_change", "truth_mask",
           "unchanged_outcome"]

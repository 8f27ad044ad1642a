"""The stage's one orchestration: the steps in order, the quality gates included.

:func:`run` is what ``run_pipeline``, ``InfluenceCleaner`` and ``InfluenceSampler`` call. The
Prefect flow (``influence_stage.orchestration.flow``) calls the same step functions, each wrapped
in a task: load → validate input → featurize → θ* → scale → member groups → loss matrix → decide
→ apply → validate output. Only the member groups differ by caller: :func:`plan_members` splits the
chains into groups, the library trains them one after another, the flow maps a task over them
(one per Dask worker). The members and the scores are the same for the same seed.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np

from influence_stage.config import GEXConfig
from influence_stage.decisions import Decisions
from influence_stage.engine.gex import GEXResult, result_from_members
from influence_stage.engine.learner import Learner, State
from influence_stage.engine.members import AutoScale, build_chains, choose_ft_lr, member_prefixes, trains_batched
from influence_stage.stage.steps import (
    CleanConfig,
    Features,
    PipelineResult,
    Prepared,
    _check_config,
    apply_step,
    decide_step,
    featurize_step,
    learner_data,
    make_model_step,
    prepare,
)
from influence_stage.timing import Timings

logger = logging.getLogger(__name__)

GATE_MAX_DROP_FRACTION = 0.3
"""The output gate's default: it fails (nothing is returned or published; exit 3 in the CLI) when
more than this share of the input rows was dropped, so an unexpected mass drop needs a deliberate
raise. Not a cap: the decisions are capped by ``CleanConfig.max_drop_fraction``."""

FLAGGED_OVER_ESTIMATE = 2.0
"""The summary warns when more rows are flagged than this many times the estimated number of
mislabeled rows (plus 1% of the rows): a threshold far looser than the data's noise."""


# -- the gates ----------------------------------------------------------------------------------


def validate_input_step(prepared: Prepared) -> Any:
    """The input suite on the loaded dataset; raises ``ValidationFailedError`` when it fails.

    Returns
    -------
    ValidationReport
    """
    from influence_stage.quality import validate_input

    roles = prepared.roles
    report = validate_input(prepared.dataset, label_column=roles.label_column,
                            feature_columns=list(roles.feature_columns), class_names=list(prepared.encoding.values))
    return report.raise_if_failed()


def validate_output_step(cleaned: datasets.Dataset, prepared: Prepared, decisions: Decisions, config: CleanConfig,
                         *, max_drop_fraction: float = GATE_MAX_DROP_FRACTION) -> Any:
    """The output suite on the cleaned dataset and its manifest; raises ``ValidationFailedError``.

    The gate checks the manifest as it is published: in the input's label values, not codes. Under
    ``action="prune"`` the drop share is the budget, asked for and checked exactly by
    ``decisions.prune``, so ``max_drop_fraction`` does not bound it.

    Returns
    -------
    ValidationReport
    """
    from influence_stage.publish.versions import labelled_manifest
    from influence_stage.quality import validate_output

    if config.action == "prune":
        max_drop_fraction = 1.0

    from influence_stage.errors import ValidationFailedError

    report = validate_output(cleaned, prepared.dataset, labelled_manifest(decisions.table, prepared.encoding),
                             label_column=prepared.roles.label_column, class_names=list(prepared.encoding.values),
                             max_drop_fraction=max_drop_fraction, weight_column=config.weight_column)
    try:
        return report.raise_if_failed()
    except ValidationFailedError as exc:
        if any(r["key"] == "drop_fraction" and not r["success"] for r in report.results):
            dropped = int((decisions.table["action"] == "drop").sum())
            raise ValidationFailedError(
                f"{exc} Fix: {dropped} of {len(decisions.table)} rows would be dropped, more than the gate's "
                f"max_drop_fraction={max_drop_fraction:g}; if that is intended, raise max_drop_fraction (the "
                "flow's max_drop_fraction, --max-drop-fraction), else cap the decisions (clean.max_drop_fraction) "
                "or use a stricter threshold.") from exc
        raise


# -- scoring: scale, member groups, loss matrix ---------------------------------------------------


def scale_step(learner: Learner, prepared: Prepared | None, features: Features, config: CleanConfig, *,
               progress: bool = False) -> AutoScale | None:
    """The automatic fine-tuning rate (``engine.members.choose_ft_lr``); None when ``gex.ft_lr`` is a number."""
    config = _check_config(config)
    if config.gex.ft_lr != "auto":
        return None
    data = learner_data(learner, prepared, features)
    auto = choose_ft_lr(learner, data, config=config.gex, fit_config=config.fit, progress=progress)
    logger.info("auto ft_lr = %g (contradicted out of sample: %.1f%%)", auto.ft_lr, 100 * auto.contradicted_fraction)
    return auto


@dataclass(frozen=True)
class MemberPlan:
    """Which chains still need training, in which groups, at which rate.

    Attributes
    ----------
    ft_lr : float
        The fine-tuning rate of every chain.
    prefixes : list of list of State
        Each chain's members already trained (by the scale's probe); empty for the others.
    groups : list of list of int
        The chain ids left to train, one list per group; the chains of one group train together.
    """

    ft_lr: float
    prefixes: list[list[State]]
    groups: list[list[int]]

    def collect(self, trained: list[list[list[State]]]) -> list[State]:
        """The members chain-major, from each group's trained chains (in ``groups`` order)."""
        chains = [list(p) for p in self.prefixes]
        for group, states in zip(self.groups, trained, strict=True):
            for c, members in zip(group, states, strict=True):
                chains[c] = members
        return [m for chain in chains for m in chain]


def plan_members(learner: Learner, config: CleanConfig, auto: AutoScale | None, *,
                 chains_per_task: int | None = None) -> MemberPlan:
    """Split the chains left to train into groups.

    Default: one group of all chains when the learner trains chains batched (the fastest on one
    machine), else one chain per group. Chains trained together equal chains trained apart only
    up to rounding, so callers that cache a group key it by its chain ids.
    """
    gex = config.gex
    ft_lr, reused = (auto.ft_lr, list(auto.first_chains)) if auto is not None else (float(gex.ft_lr), [])
    prefixes = member_prefixes(gex, reused)
    todo = [c for c, prefix in enumerate(prefixes) if len(prefix) < gex.cycles]
    size = chains_per_task or (max(len(todo), 1) if trains_batched(learner) else 1)
    return MemberPlan(ft_lr=ft_lr, prefixes=prefixes, groups=[todo[i:i + size] for i in range(0, len(todo), size)])


def chains_step(learner: Learner, prepared: Prepared | None, features: Features, gex: GEXConfig, ft_lr: float,
                chains: list[int], prefixes: list[list[State]], *, progress: bool = False) -> list[list[State]]:
    """The members of one group of chains (``gex.cycles`` each), trained together.

    ``prefixes``: each chain's first members when the scale's probe already trained them. Works on
    its own copy of the learner: ``functional_call`` swaps a module's parameters while it runs, so
    groups trained side by side must not share one module.
    """
    learner = copy.deepcopy(learner)
    data = learner_data(learner, prepared, features)
    return build_chains(learner, data, config=gex, ft_lr=ft_lr, chain_ids=chains, prefixes=prefixes,
                        progress=progress)


def loss_step(learner: Learner, members: list[State], prepared: Prepared | None, features: Features,
              config: CleanConfig, ft_lr: float, auto: AutoScale | None, *, progress: bool = False) -> GEXResult:
    """Loss matrix and scores (``engine.gex.result_from_members``)."""
    data = learner_data(learner, prepared, features)
    return result_from_members(learner, data, members, config=config.gex, ft_lr=ft_lr, auto=auto,
                               fit_config=config.fit, progress=progress)


def score_step(learner: Learner, features: Features, config: CleanConfig, *, prepared: Prepared | None = None,
               progress: bool = False, timings: Timings | None = None) -> GEXResult:
    """GEX from θ*: perturbation scale → member groups → loss matrix → scores.

    Parameters
    ----------
    learner : Learner
        At θ*.
    features : Features
    config : CleanConfig
    prepared : Prepared, optional
        Needed for an ``HFLearner`` (see :func:`~influence_stage.stage.steps.learner_data`).
    progress : bool
    timings : Timings, optional
        Receives ``scale``, ``members`` and ``losses``.

    Returns
    -------
    GEXResult
        ``scores`` ``(n,) float64`` aligned with ``features.row_ids``.
    """
    config = _check_config(config)
    timings = timings if timings is not None else Timings()
    with timings.step("scale"):
        auto = scale_step(learner, prepared, features, config, progress=progress)
    with timings.step("members"):
        plan = plan_members(learner, config, auto)
        members = plan.collect([chains_step(learner, prepared, features, config.gex, plan.ft_lr, group,
                                            [plan.prefixes[c] for c in group], progress=progress)
                                for group in plan.groups])
    with timings.step("losses"):
        return loss_step(learner, members, prepared, features, config, plan.ft_lr, auto, progress=progress)


# -- the summary ----------------------------------------------------------------------------------


def column_roles(prepared: Prepared) -> dict[str, Any]:
    """The column roles the run used: ``{"label": name, "kind": "tabular" | "text" | "image", "features": [...]}``.

    Recorded in the summary (printed by the CLI, in ``meta.json``'s ``summary`` and the report), so
    a switch of roles between runs is visible, never silent.
    """
    roles = prepared.roles
    return {"label": roles.label_column, "kind": roles.kind, "features": list(roles.feature_columns)}


def guard_warnings(result: GEXResult, decisions: Decisions) -> list[str]:
    """What a reader of the summary must not miss: caps that bound, a flagged share far above the noise estimate.

    The estimate is the confident-joint count of the run's out-of-sample probabilities (the
    threshold's own under ``"estimate"``, else computed here when the scale left them).
    """
    from influence_stage.decisions.estimate import confident_joint_count

    lines = list(decisions.caps)
    table = decisions.table
    n, flagged = len(table), int(table["is_issue"].sum())
    n_est = decisions.threshold.n_estimated
    if n_est is None and result.oos_proba is not None:
        n_est = confident_joint_count(table["given_label"].to_numpy(), result.oos_proba)
    if n_est is not None and flagged > FLAGGED_OVER_ESTIMATE * n_est + 0.01 * n:
        lines.append(f"{flagged} rows flagged ({flagged / n:.1%}), far above the estimated noise rate "
                     f"({n_est / n:.1%}, {n_est} rows): the threshold {decisions.threshold.method!r} flags many "
                     "rows that are likely clean; check it, or use the default threshold 'estimate'")
    for line in lines:
        logger.warning("%s", line)
    return lines


def summarize(result: GEXResult, decisions: Decisions, cleaned: datasets.Dataset, prepared: Prepared) -> dict[str, Any]:
    """The run's counts and choices: rows in and out, flagged, per action, rate, score, threshold, roles,
    and the guard's warnings (:func:`guard_warnings`)."""
    table = decisions.table
    counts = table["action"].value_counts().to_dict()
    summary: dict[str, Any] = {
        "rows in": len(table), "rows out": len(cleaned), "flagged": int(table["is_issue"].sum()),
        **{f"action {k}": int(v) for k, v in sorted(counts.items())}, "ft_lr": result.ft_lr,
        "score": result.score_name, "threshold method": decisions.threshold.method,
        "threshold": float(decisions.threshold.value), "members": len(result.members),
        "theta fit": round(result.theta_fit, 4),  # share of rows θ* fits (gex.THETA_FIT_WARNING)
        "columns": column_roles(prepared),
    }
    if decisions.threshold.n_estimated is not None:
        summary["estimated noise rate"] = round(float(decisions.threshold.estimated_noise_rate), 4)
    warnings = guard_warnings(result, decisions)
    if warnings:
        summary["warnings"] = warnings
    return summary


# -- the whole stage ------------------------------------------------------------------------------


def run(source: Any, config: CleanConfig, model: Any = None, *, progress: bool = False, validate: bool = True,
        max_drop_fraction: float = GATE_MAX_DROP_FRACTION, only_rows: np.ndarray | None = None) -> PipelineResult:
    """Run every step: prepare → validate input → featurize → θ* → score → decide → apply → validate output.

    Parameters
    ----------
    source : see :func:`~influence_stage.stage.steps.prepare`
    config : CleanConfig
    model : None, str, torch.nn.Module, Learner or estimator
        See :func:`~influence_stage.stage.steps.make_model_step` (None: ``config.model``).
    progress : bool
        Progress bars for θ*, the scale and the members.
    validate : bool, default True
        Run the input and output suites; a failure raises ``ValidationFailedError`` and nothing is returned.
    max_drop_fraction : float, default :data:`GATE_MAX_DROP_FRACTION`
        The output gate's limit on the dropped share of rows.
    only_rows : ndarray of bool, optional
        ``(n,)`` in input order: rows outside it keep their data (their action is ``keep``), though
        they are scored and flagged like every row. The sampler's ``sampling_strategy``.

    Returns
    -------
    PipelineResult
        With ``reports`` (the input and output suites' reports when ``validate``) and ``summary``.
    """
    config = _check_config(config)
    timings = Timings()
    reports: list[Any] = []
    with timings.step("prepare"):
        prepared = prepare(source, config)
    if validate:
        with timings.step("validate input"):
            reports.append(validate_input_step(prepared))
    with timings.step("featurize"):
        features = featurize_step(prepared, config)
    with timings.step("model"):
        learner = make_model_step(features, config, model, prepared=prepared, progress=progress)
    with timings.step("score"):
        result = score_step(learner, features, config, prepared=prepared, progress=progress)
    with timings.step("decide"):
        decisions = decide_step(result, features, config, prepared=prepared, only_rows=only_rows)
    with timings.step("apply"):
        cleaned = apply_step(prepared, decisions, config)
    if validate:
        with timings.step("validate output"):
            reports.append(validate_output_step(cleaned, prepared, decisions, config,
                                                max_drop_fraction=max_drop_fraction))
    logger.info("stage done: %d → %d rows; seconds per step %s", prepared.dataset.num_rows, cleaned.num_rows,
                timings.rounded())
    return PipelineResult(prepared=prepared, features=features, learner=learner, gex_result=result,
                          decisions=decisions, cleaned=cleaned, timings=dict(timings), reports=reports,
                          summary=summarize(result, decisions, cleaned, prepared))


def run_pipeline(source: Any, config: CleanConfig, model: Any = None, progress: bool = False, *,
                 validate: bool = True, max_drop_fraction: float = GATE_MAX_DROP_FRACTION) -> PipelineResult:
    """The stage from Python: :func:`run` with the gates. Same arguments."""
    return run(source, config, model, progress=progress, validate=validate, max_drop_fraction=max_drop_fraction)


__all__ = [
    "FLAGGED_OVER_ESTIMATE", "GATE_MAX_DROP_FRACTION", "MemberPlan", "chains_step", "column_roles",
    "guard_warnings", "loss_step", "plan_members", "run",
    "run_pipeline", "scale_step", "score_step", "summarize", "validate_input_step", "validate_output_step",
]

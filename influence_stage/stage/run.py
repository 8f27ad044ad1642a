"""The stage from Python: ``run`` runs the ``CLEAN_LIBRARY`` plan in process.

``run`` is what ``run_pipeline``, ``InfluenceCleaner`` and ``InfluenceSampler`` call. The step
order lives once, in ``influence_stage.pipeline.clean``: load → validate input → featurize → ``θ*`` →
scale → member groups → loss matrix → decide → apply → validate output. The Prefect flow runs the
same steps (``CLEAN``) as tasks, the member groups and loss shards mapped over the task runner; the
members and the scores are the same for the same seed.

The gates are in ``stage.gates``, the scoring pieces in ``stage.scoring`` and the summary in
``stage.summary``.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from influence_stage.config.clean import CleanConfig
from influence_stage.engine.gex import GEXResult
from influence_stage.engine.learner import Learner
from influence_stage.pipeline import CLEAN_LIBRARY, SCORE, LocalExecutor, RunContext
from influence_stage.stage.gates import GATE_MAX_DROP_FRACTION
from influence_stage.stage.scoring import scale_step  # noqa: F401  (re-exported, see __all__)
from influence_stage.stage.preflight import check_config
from influence_stage.stage.steps import Features, PipelineResult, Prepared
from influence_stage.stage.summary import summarize
from influence_stage.timing import Timings

logger = logging.getLogger(__name__)


def score_step(learner: Learner, features: Features, config: CleanConfig, *, prepared: Prepared | None = None,
               progress: bool = False, timings: Timings | None = None) -> GEXResult:
    """GEX from ``θ*`` in process: the ``SCORE`` plan (perturbation scale → member groups → loss matrix →
    scores).

    Parameters
    ----------
    learner : Learner
        At ``θ*``.
    features : Features
    config : CleanConfig
    prepared : Prepared, optional
        Needed for an ``HFLearner`` (see ``learner_data``).
    progress : bool
    timings : Timings, optional
        Receives ``auto-scale``, ``members`` and ``losses``.

    Returns
    -------
    GEXResult
        ``scores`` ``(n,) float64`` aligned with ``features.row_ids``.
    """
    config = check_config(config)
    context = RunContext(config=config, progress=progress,
                         values={"learner": learner, "features": features, "prepared": prepared})
    LocalExecutor().run(SCORE, context)
    if timings is not None:
        timings.update({name: timings.get(name, 0.0) + s for name, s in context.step_seconds.items()})
    return context["result"]


def run(source: Any, config: CleanConfig, model: Any = None, *, progress: bool = False, validate: bool = True,
        max_drop_fraction: float = GATE_MAX_DROP_FRACTION, only_rows: np.ndarray | None = None) -> PipelineResult:
    """Run the ``CLEAN_LIBRARY`` plan: prepare → validate input → featurize → ``θ*`` → score → decide → apply → validate output.

    Parameters
    ----------
    source : see ``prepare``
    config : CleanConfig
    model : None, str, torch.nn.Module, Learner or estimator
        See ``make_model_step`` (None: ``config.model``).
    progress : bool
        Progress bars for ``θ*``, the scale and the members.
    validate : bool, default True
        Run the input and output suites; a failure raises ``ValidationFailedError`` and nothing is returned.
    max_drop_fraction : float, default ``GATE_MAX_DROP_FRACTION``
        The output gate's limit on the dropped share of rows.
    only_rows : ndarray of bool, optional
        ``(n,)`` in input order: rows outside it keep their data (their action is ``keep``), though
        they are scored and flagged like every row. The sampler's ``sampling_strategy``.

    Returns
    -------
    PipelineResult
        With ``reports`` (the input and output suites' reports when ``validate``), ``summary`` and
        ``timings`` (seconds per step label: ``prepare``, ``validate input``, ``featurize``,
        ``model``, ``score``, ``decide``, ``apply``, ``validate output``).
    """
    config = check_config(config)
    context = RunContext(config=config, source=source, model=model, progress=progress, validate=validate,
                         max_drop_fraction=max_drop_fraction, only_rows=only_rows)
    LocalExecutor().run(CLEAN_LIBRARY, context)
    prepared, cleaned, result, decisions = context["prepared"], context["cleaned"], context["result"], \
        context["decisions"]
    logger.info("stage done: %d → %d rows; seconds per step %s", prepared.dataset.num_rows, cleaned.num_rows,
                context.timings.rounded())
    reports = [r for r in (context.get("input_report"), context.get("output_report")) if r is not None]
    return PipelineResult(prepared=prepared, features=context["features"], learner=context["learner"],
                          gex_result=result, decisions=decisions, cleaned=cleaned, timings=dict(context.timings),
                          reports=reports, issues=context.get("issues"),
                          summary=summarize(result, decisions, cleaned, prepared, issues=context.get("issues"),
                                            estimate_count=config.gex.estimate_count))


def run_pipeline(source: Any, config: CleanConfig, model: Any = None, progress: bool = False, *,
                 validate: bool = True, max_drop_fraction: float = GATE_MAX_DROP_FRACTION) -> PipelineResult:
    """The stage from Python: ``run`` with the gates. Same arguments."""
    return run(source, config, model, progress=progress, validate=validate, max_drop_fraction=max_drop_fraction)


__all__ = ["GATE_MAX_DROP_FRACTION", "run", "run_pipeline", "scale_step", "score_step", "summarize"]

"""Plans of steps and the executors that run them: the stage's step order, written once.

``step``        ``Step``, ``MappedStep`` (work units), ``Plan``
``context``     ``RunContext``: a run's inputs, settings and the values its steps write
``clean``       the cleaning steps; the plans ``CLEAN_LIBRARY``, ``CLEAN`` and ``SCORE``
``publishing``  the flow's steps after the output gate (summary, bias scores, publish)
``curate``      the plan ``CURATE`` (imported on use: corpus and LM helpers), with its steps in
                ``curate_inputs`` (corpus, dedup, tokens), ``curate_model`` (θ* and its adaptation),
                ``curate_scores`` (members and scoring passes) and ``curate_output`` (selection, shards)
``local``       ``LocalExecutor``: in process (estimators, ``run_pipeline``, benchmarks)

The Prefect executor (tasks, work units mapped on Dask) is
``influence_stage.orchestration.prefect_executor``.
"""

from influence_stage.pipeline.clean import CLEAN, CLEAN_LIBRARY, SCORE
from influence_stage.pipeline.context import RunContext
from influence_stage.pipeline.local import LocalExecutor
from influence_stage.pipeline.step import MappedStep, Plan, Step, WorkUnits

__all__ = ["CLEAN", "CLEAN_LIBRARY", "SCORE", "LocalExecutor", "MappedStep", "Plan", "RunContext", "Step",
           "WorkUnits"]

"""The in-process executor: a plan's steps one after another in this process, timed.

What the estimators, ``run_pipeline`` and the benchmarks use. Nothing is cached and mapped steps
run their in-process form (``Step.run``): the member groups one after another, the loss matrix in
memory.
"""

from __future__ import annotations

import logging
from typing import Any

from influence_stage.memory import release_free_memory
from influence_stage.pipeline.context import RunContext
from influence_stage.pipeline.step import Plan, Step

logger = logging.getLogger(__name__)


class LocalExecutor:
    """Runs a ``Plan`` in process.

    Each step that applies runs and writes its values into the context; a step that does not
    apply writes None for each of its values. After each step the memory it freed is handed back to
    the operating system (``memory.release_free_memory``). Seconds go to ``context.timings`` (per
    ``Step.timing`` label) and ``context.step_seconds`` (per step name). A step that calls
    ``context.stop`` ends the run.

    Examples
    --------
    A one-step plan: the step reads ``x`` from the context and writes ``y``:

    >>> from influence_stage.config import CleanConfig
    >>> from influence_stage.pipeline.context import RunContext
    >>> from influence_stage.pipeline.local import LocalExecutor
    >>> from influence_stage.pipeline.step import Plan, Step
    >>> class Double(Step):
    ...     name, reads, writes = "double", ("x",), ("y",)
    ...     def run(self, context):
    ...         return 2 * context["x"]
    >>> context = RunContext(config=CleanConfig(), values={"x": 21})
    >>> LocalExecutor().run(Plan("demo", (Double(),)), context)["y"]
    42
    >>> sorted(context.step_seconds.rounded())
    ['double']
    """

    def run(self, plan: Plan, context: RunContext) -> RunContext:
        """Run ``plan``'s steps on ``context``; returns the context."""
        for step in plan:
            if context.stopped:
                break
            if not step.applies(context):
                step.store(context, None if len(step.writes) <= 1 else (None,) * len(step.writes))
                continue
            with context.timings.step(step.timing or step.name), context.step_seconds.step(step.name):
                value = self.run_step(step, context)
            step.store(context, value)
            del value
            release_free_memory()  # what the step built and dropped (a million-row column, a batch's buffers)
        logger.debug("plan %s done; seconds per step %s", plan.name, context.step_seconds.rounded())
        return context

    def run_step(self, step: Step, context: RunContext) -> Any:
        """One step's value: here its in-process form (``Step.run``); another executor overrides this alone."""
        return step.run(context)


__all__ = ["LocalExecutor"]

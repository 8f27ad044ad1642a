"""The ``issues`` step: every issue type of the run beside label issues, and the default policy on them.

It runs after ``decide`` and before ``apply`` (so the rows the policy drops, exact duplicates after
their first copy, are dropped from the output and checked by the output gate), through
``influence_stage.stage.issues.issues_step``; it writes ``issues`` (an
``IssueReport``, or None when no type ran) and ``decisions`` (the same
object when the policy changed nothing).
"""

from __future__ import annotations

from typing import Any

from influence_stage.pipeline.context import RunContext
from influence_stage.pipeline.step import Step
from influence_stage.stage.issues import issues_step


class Issues(Step):
    """Issue types on the run's features and out-of-sample probabilities (``stage.issues.issues_step``)."""

    name, reads, writes, timing = "issues", ("result", "features", "decisions"), ("issues", "decisions"), "issues"

    def run(self, context: RunContext) -> Any:
        return issues_step(context["result"], context["features"], context["decisions"], context.config)


__all__ = ["Issues"]

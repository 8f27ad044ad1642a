"""The estimators' output gate on the dropped share: refused, the fit stays for inspection.

``influence_stage.stage.run.run`` runs the input and output Great Expectations suites. Run from an
estimator, the suite's drop-share expectation is left to ``run_gated``: the run is asked for a
limit of 1.0 and the estimator's own ``max_drop_fraction`` is checked on the decisions afterwards,
with the same rule as the suite (the share of rows whose action is ``drop`` must not exceed it; not
applied under ``action="prune"``, whose budget is the drop share). So a refusal happens after the
estimator has stored its fitted attributes (``scores_``, ``issues_``, ``get_issues()``,
``report()``) and the message names the estimator's argument, not a YAML path or a CLI flag.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from influence_stage._checks import check_fraction
from influence_stage.errors import ValidationFailedError
from influence_stage.stage.run import run
from influence_stage.config import CleanConfig
from influence_stage.stage.steps import PipelineResult


def check_gate_fraction(value: Any) -> float:
    """The output gate's ``max_drop_fraction``: a number in (0, 1]."""
    return check_fraction(value, "max_drop_fraction", low_open=True)


def run_gated(source: Any, config: CleanConfig, model: Any, *, max_drop_fraction: Any, progress: bool = False,
              only_rows: np.ndarray | None = None) -> tuple[PipelineResult, float]:
    """``run`` with both suites, the drop share left to ``refusal``.

    Returns
    -------
    result : PipelineResult
    max_drop_fraction : float
        The checked limit, for ``refusal``.
    """
    limit = check_gate_fraction(max_drop_fraction)
    return run(source, config, model, progress=progress, max_drop_fraction=1.0, only_rows=only_rows), limit


def refusal(table: Any, config: CleanConfig, max_drop_fraction: float, estimator: str,
            caps: str) -> ValidationFailedError | None:
    """The output gate's error when more than ``max_drop_fraction`` of the rows would be dropped, else None.

    Parameters
    ----------
    table : pandas.DataFrame
        The decisions table, one row per input row (``action``).
    config : CleanConfig
        A policy that does not use the threshold (``action="prune"``: its budget is the drop
        share) is not bounded.
    max_drop_fraction : float
    estimator : str
        The estimator's class name, for the message.
    caps : str
        The estimator's own arguments that cap the decisions, for the message's fix.
    """
    from influence_stage.decisions.policies import POLICY_REGISTRY

    if not POLICY_REGISTRY.get(config.action).uses_threshold:  # a budget policy: its budget is the drop share
        return None
    n = len(table)
    dropped = int((table["action"] == "drop").sum())
    if n == 0 or dropped / n <= max_drop_fraction:
        return None
    return ValidationFailedError(
        f"the output gate refused the result of {estimator}: {dropped} of {n} rows ({dropped / n:.1%}) would be "
        f"dropped, more than max_drop_fraction={max_drop_fraction:g}. The fit is kept for inspection: scores_, "
        f"issues_, get_issues() and report() work; the cleaned data is not returned. Fix: if the drops are intended, "
        f"raise max_drop_fraction=, e.g. {estimator}(max_drop_fraction={min(1.0, np.ceil(100 * dropped / n) / 100):g}); "
        f"else cap the decisions with {caps}."
    )

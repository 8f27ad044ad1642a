"""The stage's quality gates: the input suite on the loaded rows, the output suite on the cleaned rows.

Both raise ``ValidationFailedError`` when their suite fails, so nothing after them runs (and nothing
is published).
"""

from __future__ import annotations

from typing import Any

import datasets

from influence_stage.config.clean import CleanConfig
from influence_stage.decisions import Decisions
from influence_stage.decisions.policies import POLICY_REGISTRY
from influence_stage.stage.steps import Prepared

GATE_MAX_DROP_FRACTION = 0.3
"""The output gate's default: it fails (nothing is returned or published; exit 3 in the CLI) when
more than this share of the input rows was dropped, so an unexpected mass drop needs a deliberate
raise. Not a cap: the decisions are capped by ``CleanConfig.drop_cap``."""


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

    The gate checks the manifest as it is published: in the input's label values, not codes. Under a
    policy that uses no threshold (``action="prune"``) the drop share is the budget, asked for and
    checked exactly by the policy, so ``max_drop_fraction`` does not bound it.

    Returns
    -------
    ValidationReport
    """
    from influence_stage.publish.versions import labelled_manifest
    from influence_stage.quality import validate_output

    if not POLICY_REGISTRY.get(config.action).uses_threshold:  # a budget policy's drop share is its budget
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
                "flow's max_drop_fraction, --max-drop-fraction), else cap the decisions (clean.drop_cap) "
                "or use a stricter threshold.") from exc
        raise


__all__ = ["GATE_MAX_DROP_FRACTION", "validate_input_step", "validate_output_step"]

"""Scores to decisions: the table's schema, the thresholds, one action per row, and applying them."""

from influence_stage.decisions.decide import Decisions, decide
from influence_stage.decisions.issues import ISSUE_REGISTRY, IssueType, find_issues
from influence_stage.decisions.policies import POLICY_REGISTRY, Policy, check_action, make_policy
from influence_stage.decisions.schema import CONFIG_ACTIONS, ROW_ACTIONS, TABLE_COLUMNS
from influence_stage.decisions.thresholds import (
    DEFAULT_THRESHOLD,
    THRESHOLD_METHODS,
    THRESHOLD_REGISTRY,
    ThresholdResult,
    ThresholdSpec,
    choose_threshold,
    parse_threshold,
)

__all__ = [
    "CONFIG_ACTIONS", "DEFAULT_THRESHOLD", "Decisions", "ISSUE_REGISTRY", "IssueType", "POLICY_REGISTRY", "Policy", "check_action", "make_policy", "ROW_ACTIONS", "TABLE_COLUMNS", "THRESHOLD_METHODS",
    "THRESHOLD_REGISTRY", "ThresholdResult", "ThresholdSpec", "choose_threshold", "decide", "find_issues", "parse_threshold",
]

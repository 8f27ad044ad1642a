"""Issue types beside label issues (cleanlab Datalab's issue managers on the stage's features and
cross-fitted probabilities), their GEX harm ranking, and the hand-off to review tools.

- ``types``: the issue types, one class each, registered in
  ``influence_stage.decisions.issues.ISSUE_REGISTRY``;
- ``datalab``: the one Datalab call that finds the Datalab-backed types;
- ``harm``: GEX cross-influence of each row on a reference loss;
- ``find``: ``find_data_issues`` (the per-row table and summary) and
  ``apply_issue_policy`` (by default: drop exact duplicates after the first copy, report the rest);
- ``export``: Label Studio tasks, Argilla records, the issue file;
- ``reviews``: reviewed labels read back from those tools, published as a new version;
- ``mlflow``: an optional MLflow log of a run.
"""

from influence_stage.issues.find import DEFAULT_DROP, IssueReport, apply_issue_policy, find_data_issues
from influence_stage.issues.harm import harm_scores, rank_by_harm
from influence_stage.issues.types import DATA_ISSUE_TYPES, DatalabIssueType, exact_duplicate_of

__all__ = [
    "DATA_ISSUE_TYPES", "DEFAULT_DROP", "DatalabIssueType", "IssueReport", "apply_issue_policy", "exact_duplicate_of",
    "find_data_issues", "harm_scores", "publish_reviews", "rank_by_harm", "read_reviews",
]


def __getattr__(name: str):
    # the reviews module reads datasets; imported on first use so the CLI's --help stays light
    if name in ("publish_reviews", "read_reviews"):
        from influence_stage.issues import reviews

        return getattr(reviews, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

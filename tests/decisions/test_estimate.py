"""The estimated number of label issues: the confident joint, bounded by θ*'s training margins."""

from __future__ import annotations

import numpy as np
import pytest

from influence_stage.decisions.estimate import confident_joint_count, issue_count
from influence_stage.errors import InvalidInputError


def _case(seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), 40)
    P = np.full((120, 3), 0.05)
    P[np.arange(120), y] = 0.9
    wrong = rng.choice(120, 12, replace=False)  # the cross-fitted model confidently disagrees with 12 rows
    P[wrong] = 0.05
    P[wrong, (y[wrong] + 1) % 3] = 0.9
    return y, P, wrong


def test_the_count_is_the_confident_joint_without_margins():
    y, P, wrong = _case()
    assert confident_joint_count(y, P) == 12
    assert issue_count(y, P) == 12


def test_rows_theta_fits_are_not_counted_beyond_the_rows_with_a_negative_margin():
    y, P, wrong = _case()
    margin = np.ones(120)
    margin[wrong[:4]] = -1.0  # θ* lost 4 of the 12 contradicted rows' given labels: the others are hard but fitted
    assert issue_count(y, P, train_margin=margin) == 4
    # more rows with a negative margin than the confident joint counts: the confident joint bounds it
    assert issue_count(y, P, train_margin=-np.ones(120)) == 12


def test_a_weak_cross_fitted_model_counts_on_the_mean_with_the_members():
    y, P, wrong = _case()
    members = np.eye(3)[y] * 0.9 + 0.1 / 3  # in-sample: every given label fitted
    mean_count = confident_joint_count(y, (P + members) / 2)
    assert issue_count(y, P, member_proba=members, reliable=False) == mean_count
    assert issue_count(y, P, member_proba=members, reliable=True) == 12  # reliable: the cross-fitted view alone


def test_a_margin_of_the_wrong_length_is_refused():
    y, P, _ = _case()
    with pytest.raises(InvalidInputError, match="train_margin"):
        issue_count(y, P, train_margin=np.ones(5))


def test_a_weak_model_count_is_the_midpoint_of_its_over_and_under_count():
    from influence_stage.decisions.estimate import weak_model_count

    y, P, wrong = _case()
    members = np.eye(3)[y] * 0.9 + 0.1 / 3  # in-sample: every given label fitted, so the mean contradicts fewer rows
    upper, lower = confident_joint_count(y, P), confident_joint_count(y, (P + members) / 2)
    assert lower < upper
    assert weak_model_count(y, P, members) == round((upper + lower) / 2)


def test_the_stage_estimate_of_a_weak_model_is_the_midpoint():
    """``stage.steps.estimated_issues`` on an unreliable auxiliary model uses ``weak_model_count``."""
    from types import SimpleNamespace

    from influence_stage.config import CleanConfig
    from influence_stage.decisions.estimate import weak_model_count
    from influence_stage.stage.steps import estimated_issues

    y, P, wrong = _case()
    members = np.eye(3)[y] * 0.9 + 0.1 / 3
    weak = SimpleNamespace(oos_proba=P, auxiliary=SimpleNamespace(reliable=False), learner=None)
    strong = SimpleNamespace(oos_proba=P, auxiliary=SimpleNamespace(reliable=True), learner=None)
    data = SimpleNamespace(y=y)
    assert estimated_issues(weak, data, CleanConfig(), member_proba=members) == weak_model_count(y, P, members)
    assert estimated_issues(strong, data, CleanConfig(), member_proba=members) == confident_joint_count(y, P) == 12

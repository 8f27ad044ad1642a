"""The estimated number of label issues: the confident joint, bounded by θ*'s training margins."""

from __future__ import annotations

import numpy as np

from influence_stage.decisions.estimate import confident_joint_count, weak_model_count


def _case(seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), 40)
    P = np.full((120, 3), 0.05)
    P[np.arange(120), y] = 0.9
    wrong = rng.choice(120, 12, replace=False)  # the cross-fitted model confidently disagrees with 12 rows
    P[wrong] = 0.05
    P[wrong, (y[wrong] + 1) % 3] = 0.9
    return y, P, wrong


def test_the_count_is_the_confident_joint():
    y, P, wrong = _case()
    assert confident_joint_count(y, P) == 12


def test_a_weak_model_count_is_the_midpoint_of_its_over_and_under_count():
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

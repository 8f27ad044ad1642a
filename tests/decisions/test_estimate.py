"""The estimated number of label issues: cleanlab's counts on the cross-fitted probabilities (``both`` by
default, the confident joint on request), the weak-model midpoint, and the per-class shares."""

from __future__ import annotations

import numpy as np
import pytest

from influence_stage.decisions.estimate import both_count, class_noise_share, confident_joint_count, weak_model_count


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
    assert estimated_issues(strong, data, CleanConfig(), member_proba=members) == both_count(y, P)  # the default
    assert confident_joint_count(y, P) == 12


def _noisy_case(seed: int):
    """120 rows of 3 classes; a model that never saw them leans to another class on 20 rows, with noise."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), 40)
    P = rng.dirichlet(np.ones(3), size=120) * 0.5
    wrong = rng.choice(120, 20, replace=False)
    lean = y.copy()
    lean[wrong] = (y[wrong] + rng.integers(1, 3, 20)) % 3
    P[np.arange(120), lean] += 0.5
    return y, P


def test_the_both_count_is_cleanlabs_find_label_issues_under_both():
    from cleanlab.filter import find_label_issues

    y, P = _noisy_case(0)
    expected = int(find_label_issues(y, P, filter_by="both").sum())
    assert 0 < expected < 120
    assert both_count(y, P) == expected
    y2, P2, wrong = _case()
    assert both_count(y2, P2) == int(find_label_issues(y2, P2, filter_by="both").sum())


def test_the_stage_estimate_follows_estimate_count_for_a_reliable_model_only():
    from types import SimpleNamespace

    from influence_stage.config import CleanConfig, GEXConfig
    from influence_stage.stage.steps import estimated_issues

    y, P = _noisy_case(3)
    assert both_count(y, P) != confident_joint_count(y, P)  # the two rules differ on these rows
    members = np.eye(3)[y] * 0.9 + 0.1 / 3
    strong = SimpleNamespace(oos_proba=P, auxiliary=SimpleNamespace(reliable=True), learner=None)
    weak = SimpleNamespace(oos_proba=P, auxiliary=SimpleNamespace(reliable=False), learner=None)
    data = SimpleNamespace(y=y)
    both = CleanConfig(gex=GEXConfig(estimate_count="both"))
    joint = CleanConfig(gex=GEXConfig(estimate_count="confident_joint"))
    assert estimated_issues(strong, data, joint, member_proba=members) == confident_joint_count(y, P)
    assert estimated_issues(strong, data, both, member_proba=members) == both_count(y, P)
    assert estimated_issues(strong, data, CleanConfig(), member_proba=members) == both_count(y, P)  # the default
    # a weak model keeps the midpoint rule whichever count is set
    assert estimated_issues(weak, data, both, member_proba=members) == weak_model_count(y, P, members)


def test_the_estimate_threshold_flags_the_both_count_by_default():
    """End to end on digits: the default threshold flags as many rows as ``both_count`` of the run's own
    cross-fitted probabilities (the default ``estimate_count="both"``), and the confident joint's count when
    asked; the two rules differ on these rows."""
    from sklearn.datasets import load_digits

    from influence_stage import InfluenceCleaner
    from influence_stage.config import FitConfig, GEXConfig
    from influence_stage.data.noise import flip_labels

    X, y = load_digits(return_X_y=True)
    X, y = X[:400], y[:400]
    noisy, _ = flip_labels(y, 0.15, kind="uniform", random_state=0)
    cleaner = InfluenceCleaner(random_state=0, fit_config=FitConfig(epochs=20),
                               gex_config=GEXConfig(chains=2, cycles=2),
                               max_drop_fraction=1.0).fit(X, noisy)
    assert cleaner.result_.auxiliary.reliable
    expected = both_count(noisy, cleaner.result_.oos_proba)
    joint = confident_joint_count(noisy, cleaner.result_.oos_proba)
    assert expected > 0 and expected != joint  # the rules differ here
    assert int(cleaner.issues_["is_issue"].sum()) == expected
    again = InfluenceCleaner(random_state=0, fit_config=FitConfig(epochs=20),
                             gex_config=GEXConfig(chains=2, cycles=2, estimate_count="confident_joint"),
                             max_drop_fraction=1.0).fit(X, noisy)
    np.testing.assert_array_equal(again.result_.oos_proba, cleaner.result_.oos_proba)  # the same fit, another count
    assert int(again.issues_["is_issue"].sum()) == joint


def test_the_both_count_forks_no_pool(monkeypatch):
    """cleanlab's ``find_label_issues`` forks a process pool by default, which deadlocked inside the
    Prefect flow's task threads; the stage's count and class shares run it in process."""
    import multiprocessing

    import psutil

    def refuse(*args, **kwargs):
        raise AssertionError("a process pool was started")

    monkeypatch.setattr(multiprocessing, "Pool", refuse)
    monkeypatch.setattr(psutil, "cpu_count", lambda logical=True: 4)  # the library's default: a pool of 4
    y, P = _noisy_case(0)
    from cleanlab.filter import find_label_issues

    with pytest.raises(AssertionError, match="process pool"):  # the guard holds: the default would fork here
        find_label_issues(y, P, filter_by="both")
    assert both_count(y, P) > 0
    from influence_stage.engine.baselines import confident_learning_scores

    _, issues = confident_learning_scores(y, P)  # the benchmarks' cleanlab goes through the same call
    assert issues.sum() == int(find_label_issues(y, P, n_jobs=1).sum()) > 0
    weighted = np.nansum(class_noise_share(y, P, P.shape[1], "both") * np.bincount(y, minlength=P.shape[1]))
    assert weighted == pytest.approx(both_count(y, P))


def test_the_both_count_is_the_same_from_threads_at_once():
    """cleanlab keeps ``find_label_issues``' per-class inputs in module globals when it runs in process;
    fits in threads of one process (Prefect's or Dask's thread runners) count at once, and each gets its own
    rows' count."""
    from concurrent.futures import ThreadPoolExecutor

    cases = [_noisy_case(seed) for seed in range(8)]
    expected = [both_count(y, P) for y, P in cases]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(10):
            got = list(pool.map(lambda case: both_count(*case), cases))
            assert got == expected

"""The stage reads the decision-policy and threshold registries: a newly registered policy is a valid
``action``, a policy that chooses its own rows (no threshold) skips the members' probabilities and
the estimate, and the output gate leaves its drop share to it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from influence_stage.config import CleanConfig, FitConfig, GEXConfig
from influence_stage.decisions.policies import POLICY_REGISTRY, Policy, PolicyOutcome
from influence_stage.decisions.thresholds import ThresholdResult
from influence_stage.errors import InvalidInputError


@pytest.fixture()
def every_other():
    """A budget policy registered as 'every-other' (drops every second eligible row), removed afterwards."""

    @POLICY_REGISTRY.register("every-other")
    @dataclass(frozen=True)
    class EveryOther(Policy):
        help = "drop every second row (a test budget)"
        uses_threshold = False

        def act(self, x):
            action, weight = self.keep_all(x.n)
            drop = x.eligible & (np.arange(x.n) % 2 == 1)
            action[drop] = "drop"
            cut = ThresholdResult(value=0.0, is_issue=drop, p_issue=drop.astype(np.float64), method="budget")
            return PolicyOutcome(action, weight, is_issue=drop, threshold=cut)

    yield EveryOther
    POLICY_REGISTRY.unregister("every-other")


def test_config_accepts_a_registered_policy_and_lists_the_names(every_other):
    assert CleanConfig(action="every-other").action == "every-other"
    with pytest.raises(InvalidInputError, match=r"action must be one of \['drop', 'relabel', 'reweight', 'none', "
                       r"'prune', 'every-other'\]; found 'halve'"):
        CleanConfig.from_mapping({"action": "halve"})


def test_unknown_action_is_refused_with_the_names():
    with pytest.raises(InvalidInputError, match=r"action must be one of \['drop', 'relabel', 'reweight', 'none', "
                       r"'prune'\]; found 'delete'"):
        CleanConfig.from_mapping({"action": "delete"})


def test_valley_thresholds_come_from_the_registry():
    with pytest.raises(InvalidInputError, match="threshold 'gmm' splits the score histogram at a valley"):
        CleanConfig.from_mapping({"threshold": "gmm", "gex": {"score": "gex+oos"}})
    assert CleanConfig(threshold="quantile:0.9", gex=GEXConfig(score="gex+oos")).threshold == "quantile:0.9"


def test_the_decision_reuses_the_probabilities_of_the_loss_passes(digits_noisy, monkeypatch):
    import influence_stage.stage.steps as steps
    from influence_stage.engine.losses import mean_member_proba
    from influence_stage.stage.run import run

    X, _, _, y = digits_noisy
    cfg = CleanConfig(model="mlp", action="relabel", gex=GEXConfig(chains=2, cycles=2, ft_lr=0.1), fit=FitConfig(epochs=3))
    res = run((X[:200], y[:200]), cfg)
    kept = res.gex_result.member_proba
    assert kept is not None and kept.shape == (200, 10)
    data = steps.learner_data(res.gex_result.learner, res.prepared, res.features)
    np.testing.assert_array_equal(kept, mean_member_proba(res.gex_result.learner, res.gex_result.members, data))

    def refuse(*args, **kwargs):
        raise AssertionError("the members' probabilities were kept by the loss passes")

    monkeypatch.setattr(steps, "mean_member_proba", refuse)
    again = steps.decide_step(res.gex_result, res.features, cfg)
    pd.testing.assert_frame_equal(again.table, res.decisions.table)


def test_a_budget_policy_runs_without_probabilities_and_past_the_gate(every_other, digits_noisy, monkeypatch):
    import influence_stage.stage.steps as steps
    from influence_stage.stage.run import run

    def refuse(*args, **kwargs):
        raise AssertionError("a policy without a threshold needs no member probabilities or estimate")

    monkeypatch.setattr(steps, "mean_member_proba", refuse)
    monkeypatch.setattr(steps, "estimated_issues", refuse)
    X, _, _, y = digits_noisy
    X, y = X[:200], y[:200]
    cfg = CleanConfig(model="mlp", action="every-other", gex=GEXConfig(chains=2, cycles=2, ft_lr=0.1, score="gex"),
                      fit=FitConfig(epochs=3))
    res = run((X, y), cfg)  # 100 of 200 rows dropped: past the gate's 0.3, the policy's own budget
    table = res.decisions.table
    assert res.cleaned.num_rows == 100
    assert table["action"].tolist() == ["keep", "drop"] * 100
    assert table["is_issue"].sum() == 100
    # no probabilities: a flagged row has no suggestion, the others keep their given label
    np.testing.assert_array_equal(table["suggested_label"].isna().to_numpy(), table["is_issue"].to_numpy())
    kept = ~table["is_issue"].to_numpy()
    assert (table["suggested_label"].to_numpy(dtype=np.int64, na_value=-1)[kept] == y[kept]).all()


def test_the_decision_cap_is_drop_cap_and_the_old_key_names_both():
    import yaml

    from influence_stage.orchestration.flow import FlowConfig

    assert CleanConfig(drop_cap=0.2).drop_cap == 0.2
    message = (r"max_drop_fraction is not a key of the clean configuration: the cap on decisions is named drop_cap "
               r"\(never drop more than this fraction of all rows.*and max_drop_fraction is the output gate.*Fix: "
               r"rename clean.max_drop_fraction to clean.drop_cap")
    with pytest.raises(InvalidInputError, match="configuration: " + message):
        CleanConfig.from_mapping({"max_drop_fraction": 0.2})
    with pytest.raises(ValueError, match=message):
        CleanConfig(max_drop_fraction=0.2)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "flow.yaml"
        path.write_text(yaml.safe_dump({"source": "x.csv", "name": "x", "max_drop_fraction": 0.5,
                                        "clean": {"max_drop_fraction": 0.1}}))
        with pytest.raises(InvalidInputError, match=f"{path}: clean: " + message):
            FlowConfig.from_yaml(path)
        path.write_text(yaml.safe_dump({"source": "x.csv", "name": "x", "max_drop_fraction": 0.5,
                                        "clean": {"drop_cap": 0.1}}))
        flow = FlowConfig.from_yaml(path)
        assert (flow.max_drop_fraction, flow.clean.drop_cap) == (0.5, 0.1)

"""The plug-point registries: lookup, names, errors, and that the validators read them."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from influence_stage.decisions import THRESHOLD_REGISTRY, choose_threshold, parse_threshold
from influence_stage.decisions.thresholds import Threshold, ThresholdInputs
from influence_stage.engine.scores import (
    NEEDS_OOS,
    RANK_SCORES,
    SCORE_REGISTRY,
    SCORES,
    Score,
    ScoreInputs,
    check_score_name,
    ranking_score,
    resolve_score,
)
from influence_stage.errors import InvalidInputError, InvalidTypeError
from influence_stage.registry import Registry


class Base:
    pass


def test_registry_registers_by_name_in_order_and_sets_the_name():
    reg = Registry("widget", base=Base, fix="Fix: register one.")

    @reg.register("b")
    class B(Base):
        pass

    @reg.register("a")
    class A(Base):
        pass

    assert reg.names() == ("b", "a") and list(reg) == ["b", "a"] and len(reg) == 2
    assert reg.get("a") is A and A.name == "a" and "b" in reg and "c" not in reg
    assert reg.where() == {"a", "b"}
    with pytest.raises(InvalidInputError, match=r"^unknown widget 'c'; valid widgets: 'b', 'a'\. Fix: register one\.$"):
        reg.get("c")
    with pytest.raises(InvalidInputError, match="unknown widget 3"):
        reg.get(3)


def test_registry_refuses_duplicates_bad_names_and_foreign_classes():
    reg = Registry("widget", base=Base)
    reg.register("a")(type("A", (Base,), {}))
    with pytest.raises(InvalidInputError, match="widget 'a' is already registered"):
        reg.register("a")
    with pytest.raises(InvalidInputError, match="non-empty string"):
        reg.register(" a")
    with pytest.raises(InvalidTypeError, match="must subclass Base"):
        reg.register("x")(int)
    with pytest.raises(InvalidTypeError, match="decorates a class"):
        reg.register("y")(lambda: 0)
    replacement = reg.register("a", replace=True)(type("A2", (Base,), {}))
    assert reg.get("a") is replacement
    reg.unregister("a")
    assert reg.names() == ()


def test_where_follows_later_registrations():
    reg = Registry("widget")
    flagged = reg.where("special")
    reg.register("plain")(type("P", (), {}))
    assert set(flagged) == set()
    reg.register("odd")(type("O", (), {"special": True}))
    assert "odd" in flagged and list(flagged) == ["odd"] and len(flagged) == 1


def test_score_names_come_from_the_registry():
    assert tuple(SCORES) == SCORE_REGISTRY.names() == ("gex", "gex-trimmed", "member-loss", "gex+oos", "gex+oos+aum",
                                                       "gex+aum", "oos", "oos+aum")
    assert set(NEEDS_OOS) == {"gex+oos", "gex+oos+aum", "oos", "oos+aum"}
    assert set(RANK_SCORES) == {"gex+oos", "gex+oos+aum", "gex+aum", "oos", "oos+aum"}  # gex+aum: no cross-fitted model needed


def test_a_registered_score_is_accepted_everywhere_and_listed_in_errors():
    @SCORE_REGISTRY.register("max-loss")
    class MaxLoss(Score):
        def compute(self, x: ScoreInputs) -> np.ndarray:
            return np.asarray(x.L, dtype=np.float64).max(axis=1)

    try:
        assert check_score_name("max-loss") == "max-loss" and "max-loss" in SCORES
        L = np.array([[1.0, 3.0], [0.5, 0.2]])
        np.testing.assert_array_equal(ranking_score("max-loss", L, np.zeros(2), tau=0.05, trim=0), [3.0, 0.5])
        assert resolve_score("max-loss", has_oos=False, has_margin=False) == "max-loss"
        with pytest.raises(InvalidInputError, match="valid scores: .*'oos\\+aum', 'max-loss'"):
            check_score_name("nope")
    finally:
        SCORE_REGISTRY.unregister("max-loss")
    assert "max-loss" not in SCORES


def test_score_needing_oos_without_it_names_the_scores_that_need_none():
    with pytest.raises(InvalidInputError, match=r"Fix: use score='gex' or score='gex-trimmed'\.$"):
        resolve_score("gex+oos", has_oos=False, has_margin=True)
    assert resolve_score("gex+oos+aum", has_oos=True, has_margin=False) == "gex+oos"
    with pytest.raises(InvalidInputError, match="needs one training margin per row"):
        ranking_score("gex+oos+aum", np.ones((3, 4)), np.zeros(3), tau=0.05, trim=1, oos_loss=np.ones(3))


def test_threshold_names_come_from_the_registry_and_errors_list_their_forms():
    assert THRESHOLD_REGISTRY.names() == ("estimate", "otsu", "gmm", "quantile", "budget", "value")
    with pytest.raises(InvalidInputError, match=r"threshold 'quantile' needs a parameter: 'quantile:q'"):
        parse_threshold("quantile")
    with pytest.raises(InvalidInputError, match=r"unknown threshold method 'otsu' in 'otsu:3'"):
        parse_threshold("otsu:3")  # otsu takes no parameter
    assert parse_threshold("value:0.3").param == 0.3


def test_a_registered_threshold_parses_and_flags():
    @THRESHOLD_REGISTRY.register("top")
    class Top(Threshold):
        form = "'top:f' (flag rows above f times the largest score)"
        param = "f"

        def flag(self, x: ThresholdInputs):
            value = float(x.param * x.scores.max())
            return x.scores > value, value, x.logistic(value)

    try:
        res = choose_threshold(np.array([1.0, 2.0, 9.0, 10.0]), "top:0.5")
        assert res.method == "top" and res.value == 5.0 and res.is_issue.tolist() == [False, False, True, True]
        with pytest.raises(InvalidInputError, match=r"'top:f' \(flag rows above f times the largest score\)"):
            parse_threshold("nope")
    finally:
        THRESHOLD_REGISTRY.unregister("top")


def test_scores_module_does_not_import_scipy_stats_at_import_time():
    tree = ast.parse(Path(__file__).parents[2].joinpath("influence_stage/engine/scores.py").read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
    assert not [m for m in names if m.startswith("scipy")], names


# ---------------------------------------------------------------------------------------------
# Decision policies
# ---------------------------------------------------------------------------------------------

from dataclasses import dataclass  # noqa: E402

from influence_stage.decisions import POLICY_REGISTRY, Policy, check_action, decide, make_policy  # noqa: E402
from influence_stage.decisions.policies import PolicyInputs, PolicyOutcome, PrunePolicy  # noqa: E402
from influence_stage.decisions.prune import prune_decisions  # noqa: E402


def test_policy_names_come_from_the_registry_and_prune_is_one_of_them():
    assert POLICY_REGISTRY.names() == ("drop", "relabel", "reweight", "none", "prune")
    assert check_action("prune") == "prune"
    with pytest.raises(InvalidInputError, match=r"action must be one of \['drop', .*'prune'\]; found 'delete'"):
        check_action("delete")
    with pytest.raises(InvalidTypeError, match="action must be one of"):
        check_action(3)


def test_make_policy_takes_only_its_options_and_names_missing_ones():
    p = make_policy("relabel", {"min_agreement": 0.7, "keep": 5, "min_weight": 0.2})
    assert (p.min_agreement, p.fallback, p.rule) == (0.7, "drop", "argmax")
    assert make_policy("prune", {"keep": 0.5, "min_weight": 0.2}).keep == 0.5
    with pytest.raises(InvalidInputError, match=r"action='prune' needs keep, the rows to keep"):
        make_policy("prune")
    with pytest.raises(InvalidInputError, match=r"action='prune' needs keep"):
        decide(np.arange(6.0), np.array([0, 1] * 3), action="prune")


def test_prune_through_decide_equals_prune_decisions():
    s = np.arange(10.0)
    y = np.array([0, 1] * 5)
    ranking = np.linspace(0.0, 1.0, 10)[::-1].copy()
    a = prune_decisions(s, y, 0.6, high_share=0.25, ranking=ranking)
    b = decide(ranking, y, action="prune", gex_influence=s, policy_options={"keep": 0.6, "high_share": 0.25})
    assert a.table.equals(b.table) and b.threshold.method == "budget" and b.caps == ()
    assert set(b.table.loc[b.table["action"] == "drop", "row_id"]) == {0, 1, 2, 9}
    assert b.table["is_issue"].sum() == 4 and b.threshold.value == 2.0
    # a policy instance works as well, and prune ranks by the ranking when no gex_influence is given
    c = decide(s, y, action=PrunePolicy(keep=0.6))
    assert set(c.table.loc[c.table["action"] == "drop", "row_id"]) == {0, 1, 2, 3}


def test_a_registered_policy_is_accepted_by_decide():
    @POLICY_REGISTRY.register("halve")
    @dataclass(frozen=True)
    class Halve(Policy):
        factor: float = 0.5

        def act(self, x: PolicyInputs) -> PolicyOutcome:
            action, weight = self.keep_all(x.n)
            weight[x.actionable] = self.factor
            action[x.actionable] = "reweight"
            return PolicyOutcome(action, weight)

    try:
        t = decide(np.array([1.0, 2.0, 30.0, 40.0]), np.array([0, 1, 0, 1]), threshold=10.0, action="halve",
                   policy_options={"factor": 0.25}).table
        assert t["weight"].tolist() == [1.0, 1.0, 0.25, 0.25]
        assert t["action"].tolist() == ["keep", "keep", "reweight", "reweight"]
        with pytest.raises(InvalidInputError, match=r"'prune', 'halve'\]"):
            check_action("nope")
    finally:
        POLICY_REGISTRY.unregister("halve")


# ---------------------------------------------------------------------------------------------
# Issue types
# ---------------------------------------------------------------------------------------------

from influence_stage.decisions import ISSUE_REGISTRY, IssueType, find_issues  # noqa: E402
from influence_stage.decisions.issues import IssueInputs, IssueResult  # noqa: E402


def _decisions():
    return decide(np.array([1.0, 2.0, 30.0, 40.0]), np.array([0, 1, 0, 1]), threshold=10.0, action="none")


def test_label_issues_are_the_tables_own_columns():
    d = _decisions()
    table, summary = find_issues(d.table, threshold=d.threshold)
    assert table.equals(d.table) and ISSUE_REGISTRY.names()[0] == "label"
    assert summary == {"label": {"n_issues": 2, "threshold": "value", "value": 10.0, "estimated_noise_rate": None}}
    assert find_issues(d.table)[1] == {"label": {"n_issues": 2}}


def test_find_issues_errors():
    d = _decisions()
    with pytest.raises(InvalidInputError, match=r"unknown issue type 'dupes'; valid issue types: 'label'"):
        find_issues(d.table, ["dupes"])
    with pytest.raises(InvalidInputError, match="issue types must be distinct"):
        find_issues(d.table, ["label", "label"])

    @ISSUE_REGISTRY.register("needy")
    class Needy(IssueType):
        needs = ("features",)

        def detect(self, x: IssueInputs) -> IssueResult:
            return IssueResult(score=np.zeros(3), flag=np.zeros(x.n, bool), summary={})

    try:
        with pytest.raises(InvalidInputError, match=r"issue type 'needy' needs features; found none\. Fix: pass features="):
            find_issues(d.table, ["needy"])
        with pytest.raises(InvalidInputError, match=r"one score and one flag per row \(4\); found shapes \(3,\) and \(4,\)"):
            find_issues(d.table, ["needy"], features=np.zeros((4, 2)))
    finally:
        ISSUE_REGISTRY.unregister("needy")


def test_help_lines_list_the_registry_names():
    from influence_stage.decisions.policies import action_help
    from influence_stage.decisions.thresholds import threshold_help
    from influence_stage.engine.scores import score_help

    assert score_help() == ("ranking: gex+oos+aum (default), gex, gex-trimmed, member-loss, gex+oos, gex+aum, oos or "
                            "oos+aum")
    assert threshold_help().startswith("'estimate' (flag the estimated number of label issues), 'otsu', 'gmm', ")
    assert threshold_help().endswith(", or a number >= 0 (a score value)")
    assert action_help().startswith("drop: drop the flagged rows; relabel: ") and "; prune: keep the budget" in action_help()

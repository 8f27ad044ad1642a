"""Relabel suggestions: never the given label; a flagged row with no confident other label falls back as configured."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from influence_stage.decisions import decide


def _case():
    # rows 0-3 flagged (high scores); rows 0, 1 have a confident other label, rows 2, 3 do not
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    P = np.full((10, 3), 1 / 3)
    P[np.arange(10), y] = 0.8
    P[np.arange(10), (y + 1) % 3] = 0.1
    P[np.arange(10), (y + 2) % 3] = 0.1
    P[0] = [0.1, 0.85, 0.05]  # given 0: 1 is confident
    P[1] = [0.05, 0.1, 0.85]  # given 1: 2 is confident
    P[2] = [0.3, 0.3, 0.4]    # given 2: the best other label (0) has 0.3 < min_agreement
    P[3] = [0.6, 0.35, 0.05]  # given 0, the given label is still the most probable: 1 has 0.35
    scores = np.r_[np.full(4, 10.0), np.linspace(0.1, 0.5, 6)]
    return scores, y, P


@pytest.mark.parametrize("fallback", ["drop", "keep"])
def test_a_flagged_row_without_a_confident_other_label_falls_back(fallback):
    scores, y, P = _case()
    t = decide(scores, y, threshold=1.0, action="relabel", proba=P, min_agreement=0.5,
               relabel_fallback=fallback, max_fraction_per_class=None).table
    assert t["is_issue"].to_numpy()[:4].all() and not t["is_issue"].to_numpy()[4:].any()
    action = t["action"].to_numpy()
    suggested = t["suggested_label"].to_numpy()
    assert list(action[:2]) == ["relabel", "relabel"]
    assert list(suggested[:2]) == [1, 2]
    assert list(action[2:4]) == [fallback, fallback]  # no other label reaches min_agreement
    # the suggestion of a flagged row is never its given label, relabeled or not
    assert not np.any(suggested[:4] == y[:4])
    # a relabeled row takes a label other than its given one
    rel = action == "relabel"
    assert not np.any(suggested[rel] == y[rel])


# The relabel rule (decisions.suggest.confident_suggestions): a floor, a margin over the given label, and a
# higher floor when the cross-fitted model is weak. Rows 0-3 flagged, given labels 0, 1, 2, 0.
RULE_SCORES = np.r_[np.full(4, 10.0), np.linspace(0.1, 0.5, 16)]
RULE_LABELS = np.r_[[0, 1, 2, 0], np.arange(16) % 3]
RULE_PROBA = np.vstack([
    [0.05, 0.90, 0.05],  # 0: 1 with 0.90, 0.85 over the given label
    [0.10, 0.30, 0.60],  # 1: 2 with 0.60, 0.30 over the given label
    [0.35, 0.10, 0.55],  # 2: the given label leads
    [0.38, 0.55, 0.07],  # 3: 1 with 0.55 >= 0.5, but only 0.17 over the given label (0.38)
    np.eye(3)[np.arange(16) % 3] * 0.7 + 0.1,
])


def _rule(oos_proba=None, **kw):
    kw.setdefault("max_fraction_per_class", None)
    return decide(RULE_SCORES, RULE_LABELS, threshold=1.0, action="relabel", proba=RULE_PROBA,
                  oos_proba=oos_proba, **kw).table


def _shown(t):
    return [None if pd.isna(v) else int(v) for v in t["suggested_label"].tolist()[:4]]


def test_a_suggestion_must_lead_the_given_label_by_the_margin():
    from influence_stage.decisions.suggest import RELABEL_MARGIN

    assert 0.17 < RELABEL_MARGIN <= 0.30
    t = _rule()
    assert t["action"].tolist()[:4] == ["relabel", "relabel", "drop", "drop"]
    assert _shown(t) == [1, 2, None, None]
    t = _rule(policy_options={"min_margin": 0.0})
    assert t["action"].tolist()[:4] == ["relabel", "relabel", "drop", "relabel"]
    assert _shown(t) == [1, 2, None, 1]


def _oos(reliable: bool) -> np.ndarray:
    """Cross-fitted probabilities that agree with the given labels (reliable) or with none of them (weak)."""
    target = RULE_LABELS if reliable else (RULE_LABELS + 1) % 3
    return np.eye(3)[target] * 0.7 + 0.1


def test_a_weak_cross_fitted_model_raises_the_floor():
    from influence_stage.decisions.suggest import WEAK_AUXILIARY_MIN_PROBA, auxiliary_reliable

    assert auxiliary_reliable(_oos(True), RULE_LABELS) and not auxiliary_reliable(_oos(False), RULE_LABELS)
    assert 0.60 < WEAK_AUXILIARY_MIN_PROBA <= 0.90
    # a reliable model: the usual rule; a weak one: row 1 (0.60) is not confident any more, row 0 (0.90) is
    assert _shown(_rule(_oos(True))) == [1, 2, None, None]
    weak = _rule(_oos(False))
    assert weak["action"].tolist()[:4] == ["relabel", "drop", "drop", "drop"]
    assert _shown(weak) == [1, None, None, None]
    # the floor is the policy's option, and the other actions show the same suggestions
    assert _shown(_rule(_oos(False), policy_options={"weak_min_agreement": 0.5})) == [1, 2, None, None]
    assert _shown(decide(RULE_SCORES, RULE_LABELS, threshold=1.0, action="drop", proba=RULE_PROBA,
                         oos_proba=_oos(False)).table) == [1, None, None, None]


def test_a_policy_with_the_three_argument_confident_still_works():
    from dataclasses import dataclass

    from influence_stage.decisions.policies import Policy, PolicyOutcome

    @dataclass(frozen=True)
    class RelabelSure(Policy):
        removes_rows = True
        needs_proba = True

        def confident(self, proba, labels, suggested):
            return (suggested != labels) & (proba[np.arange(labels.size), suggested] >= 0.8)

        def act(self, x):
            action, weight = self.keep_all(x.n)
            ok = self.confident(x.proba, x.labels, x.suggested)
            action[x.actionable & ok] = "relabel"
            action[x.actionable & ~ok] = "drop"
            return PolicyOutcome(action, weight)

    t = decide(RULE_SCORES, RULE_LABELS, threshold=1.0, action=RelabelSure(), proba=RULE_PROBA, oos_proba=_oos(False),
               max_fraction_per_class=None).table
    assert t["action"].tolist()[:4] == ["relabel", "drop", "drop", "drop"]
    assert _shown(t) == [1, None, None, None]


def _flip_pattern(reverse: int, forward: int, n_clean: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Labels and cross-fitted probabilities over three classes: ``reverse`` rows given 1 that look like 0
    (flips 0 -> 1), ``forward`` rows given 0 that look like 1, and ``n_clean`` rows of each class that look
    like their label. The last row is given 0 and looks like 1 (one of the ``forward`` rows)."""
    y = np.r_[np.repeat([0, 1, 2], n_clean), np.ones(reverse, int), np.zeros(forward, int)]
    looks = np.r_[np.repeat([0, 1, 2], n_clean), np.zeros(reverse, int), np.ones(forward, int)]
    return y, np.eye(3)[looks] * 0.85 + 0.05


def test_a_move_against_the_run_s_flip_pattern_is_vetoed():
    from influence_stage.decisions.suggest import reverse_flip_veto

    # flips run 0 -> 1 (20 rows given 1 look like 0; 1 row given 0 looks like 1): moving the last row 0 -> 1 is
    # against the pattern; moving a flipped row 1 -> 0 is with it
    y, Q = _flip_pattern(reverse=20, forward=1)
    moved = y.copy()
    moved[-1], moved[-2] = 1, 0
    veto = reverse_flip_veto(y, moved, Q, alpha=0.2)
    assert veto[-1] and not veto[-2]
    assert not veto[:-2].any()  # rows that keep their label are never vetoed
    # both directions alike (uniform flips): nothing is vetoed, whichever way the rows move
    y, Q = _flip_pattern(reverse=4, forward=4)
    moved = np.where(np.arange(y.size) >= 180, 1 - y, y)
    assert not reverse_flip_veto(y, moved, Q, alpha=0.2).any()
    # a smaller alpha needs more evidence: 5 against 1 is p = 0.109
    y, Q = _flip_pattern(reverse=5, forward=1)
    moved = y.copy()
    moved[-1] = 1
    assert reverse_flip_veto(y, moved, Q, alpha=0.2)[-1] and not reverse_flip_veto(y, moved, Q, alpha=0.05)[-1]


def test_the_reverse_flip_veto_acts_only_with_a_reliable_cross_fitted_model():
    from influence_stage.decisions.suggest import auxiliary_reliable, confident_suggestions

    y, Q = _flip_pattern(reverse=20, forward=1)
    P = Q.copy()  # the suggestions' probabilities: the last row's best other label 1 at 0.85
    s = np.where(np.arange(y.size) == y.size - 1, 1, y)
    assert auxiliary_reliable(Q, y)
    on = confident_suggestions(P, y, s, min_proba=0.5, oos_proba=Q, reverse_flip_alpha=0.2)
    off = confident_suggestions(P, y, s, min_proba=0.5, oos_proba=Q, reverse_flip_alpha=None)
    assert off[-1] and not on[-1]
    # a weak cross-fitted model is not read for the pattern (its joint is not evidence)
    weak = np.eye(3)[(y + 1) % 3] * 0.85 + 0.05
    assert not auxiliary_reliable(weak, y)
    kept = confident_suggestions(P, y, s, min_proba=0.5, oos_proba=weak, reverse_flip_alpha=0.2)
    assert kept[-1]
    # the relabel policy takes the option, and an empty suggestion follows the veto
    t = decide(np.r_[np.zeros(y.size - 1), 10.0], y, threshold=1.0, action="relabel", proba=P, oos_proba=Q,
               max_fraction_per_class=None, policy_options={"reverse_flip_alpha": 0.2}).table
    assert t["action"].iloc[-1] == "drop" and pd.isna(t["suggested_label"].iloc[-1])
    t = decide(np.r_[np.zeros(y.size - 1), 10.0], y, threshold=1.0, action="relabel", proba=P, oos_proba=Q,
               max_fraction_per_class=None, policy_options={"reverse_flip_alpha": None}).table
    assert t["action"].iloc[-1] == "relabel" and t["suggested_label"].iloc[-1] == 1


def test_the_default_relabel_rule_vetoes_moves_against_the_flip_pattern():
    from influence_stage.decisions.suggest import REVERSE_FLIP_ALPHA

    assert REVERSE_FLIP_ALPHA == 0.05
    y, Q = _flip_pattern(reverse=20, forward=1)
    scores = np.r_[np.zeros(y.size - 1), 10.0]
    for action in ("relabel", "drop"):  # the rows relabeled, and the suggestions shown under every action
        t = decide(scores, y, threshold=1.0, action=action, proba=Q, oos_proba=Q, max_fraction_per_class=None).table
        assert t["action"].iloc[-1] == "drop" and pd.isna(t["suggested_label"].iloc[-1])


def test_a_class_with_few_rows_takes_no_part_in_the_flip_pattern():
    from influence_stage.decisions import suggest

    from influence_stage.decisions.decide import MIN_CLASS_ROWS, small_classes

    # class 2 is given 6 rows + 1; 8 rows given 0 look like 2, and the last row (given 2) looks like 0
    y = np.r_[np.repeat([0, 1, 2], [60, 60, 6]), np.zeros(8, int), 2]
    looks = np.r_[np.repeat([0, 1, 2], [60, 60, 6]), np.full(8, 2), 0]
    Q = np.eye(3)[looks] * 0.85 + 0.05
    moved = y.copy()
    moved[-1] = 0
    assert list(small_classes(y, MIN_CLASS_ROWS)) == [2]  # the small-class rule's own definition
    assert not suggest.reverse_flip_veto(y, moved, Q, alpha=0.05).any()
    # the same counts with class 2 as large as the others: the move is against the pattern (8 against 1)
    y2, looks2 = np.r_[y, np.full(50, 2)], np.r_[looks, np.full(50, 2)]
    veto = suggest.reverse_flip_veto(y2, np.r_[moved, np.full(50, 2)], np.eye(3)[looks2] * 0.85 + 0.05, alpha=0.05)
    assert veto[y.size - 1] and veto.sum() == 1


def test_the_configuration_defaults_are_the_relabel_rules_own():
    """CleanConfig, InfluenceCleaner and the relabel policy start from the same rule (the constants here)."""
    import inspect

    from influence_stage.api import InfluenceCleaner
    from influence_stage.config import CleanConfig
    from influence_stage.decisions.policies import RelabelPolicy
    from influence_stage.decisions.suggest import RELABEL_MARGIN, REVERSE_FLIP_ALPHA, WEAK_AUXILIARY_MIN_PROBA

    rule = (RELABEL_MARGIN, WEAK_AUXILIARY_MIN_PROBA, REVERSE_FLIP_ALPHA)
    config = CleanConfig()
    assert (config.relabel_margin, config.weak_min_agreement, config.reverse_flip_alpha) == rule
    params = inspect.signature(InfluenceCleaner).parameters
    assert tuple(params[p].default for p in ("relabel_margin", "weak_min_agreement", "reverse_flip_alpha")) == rule
    policy = RelabelPolicy()
    assert (policy.min_margin, policy.weak_min_agreement, policy.reverse_flip_alpha) == rule

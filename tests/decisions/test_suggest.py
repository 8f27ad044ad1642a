"""Relabel suggestions: never the given label; a flagged row with no confident other label falls back as configured."""

from __future__ import annotations

import numpy as np
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

"""The small-class rule: rows of a rare class are not removed on the ranking's evidence alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from influence_stage.decisions import decide
from influence_stage.decisions.decide import MIN_CLASS_ROWS, small_classes
from influence_stage.errors import InvalidInputError

# 60 rows of class 0, 2 of class 1; the two class-1 rows score highest, and so does row 0
LABELS = np.r_[np.zeros(60, int), np.ones(2, int)]
SCORES = np.r_[50.0, np.linspace(1.0, 2.0, 59), 100.0, 90.0]


def _proba(argmax):
    """(n, 2) probabilities with the given argmax per row (0.9 on it)."""
    p = np.full((len(argmax), 2), 0.1)
    p[np.arange(len(argmax)), argmax] = 0.9
    return p


def test_small_classes_are_rare_in_absolute_and_relative_terms():
    assert MIN_CLASS_ROWS == 20
    assert small_classes(LABELS, 20).tolist() == [1]
    assert small_classes(np.r_[np.zeros(5, int), np.ones(4, int)], 20).tolist() == []  # balanced: not rare
    assert small_classes(np.r_[np.zeros(600, int), np.ones(30, int)], 20).tolist() == []  # 30 rows: enough
    assert small_classes(LABELS, None).tolist() == []


def test_small_class_rows_the_members_keep_in_their_class_are_kept():
    d = decide(SCORES, LABELS, threshold=10.0, proba=_proba(LABELS))
    t = d.table
    assert t["is_issue"].tolist()[-2:] == [True, True] and t["action"].tolist()[-2:] == ["keep", "keep"]
    assert t["action"].tolist()[0] == "drop"  # a large class is not protected
    assert d.caps == ("small-class rule on class 1: 2 rows (< 20); 2 flagged for removal kept, as the members "
                      "still predict their given label",)
    # the out-of-sample model, when given, is the evidence instead: here it never predicts class 1
    oos = decide(SCORES, LABELS, threshold=10.0, proba=_proba(np.zeros(62, int)), oos_proba=_proba(np.zeros(62, int)))
    assert oos.table["action"].tolist()[-2:] == ["keep", "keep"]
    assert oos.caps[0].endswith("kept, as the out-of-sample model never predicts this class")
    assert d.summary().loc[1, "n_after"] == 2


def test_a_small_class_row_the_members_move_elsewhere_is_removed():
    argmax = LABELS.copy()
    argmax[-1] = 0  # the members put the last row in class 0
    t = decide(SCORES, LABELS, threshold=10.0, proba=_proba(argmax)).table
    assert t["action"].tolist()[-2:] == ["keep", "drop"]
    r = decide(SCORES, LABELS, threshold=10.0, action="relabel", proba=_proba(argmax)).table
    assert r["action"].tolist()[-2:] == ["keep", "relabel"] and r["suggested_label"].tolist()[-1] == 0
    # out of sample: a model that predicts class 1 for one of its rows and class 0 for the other
    oos = decide(SCORES, LABELS, threshold=10.0, proba=_proba(LABELS), oos_proba=_proba(argmax))
    assert oos.table["action"].tolist()[-2:] == ["keep", "drop"]
    assert oos.caps[0].endswith("1 flagged for removal kept, as the out-of-sample model still predicts their given label")


def test_without_probabilities_no_small_class_row_is_removed_and_the_rule_can_be_turned_off():
    d = decide(SCORES, LABELS, threshold=10.0)
    assert d.table["action"].tolist()[-2:] == ["keep", "keep"]
    assert "no class probabilities to confirm them" in d.caps[0]
    off = decide(SCORES, LABELS, threshold=10.0, min_class_rows=None)
    assert off.table["action"].tolist()[-2:] == ["drop", "keep"]  # the per-class cap keeps one row only
    assert off.caps[0].startswith("per-class cap on class 1")
    # reweight and none remove nothing: the rule does not apply
    w = decide(SCORES, LABELS, threshold=10.0, action="reweight").table
    assert w["action"].tolist()[-2:] == ["reweight", "reweight"]


@pytest.mark.parametrize("bad", [-1, 2.5, True, "5"])
def test_min_class_rows_is_checked(bad):
    with pytest.raises(InvalidInputError, match="min_class_rows must be an integer >= 0 or None"):
        decide(SCORES, LABELS, threshold=10.0, min_class_rows=bad)


def test_digits_zero_vs_one_at_178_to_2_keeps_both_correct_minority_rows():
    import datasets

    from influence_stage import InfluenceCleaner

    df = pd.read_parquet(Path(__file__).parents[2] / "data/digits/train.parquet").drop(columns=["image"])
    d = pd.concat([df[df.label == 0].iloc[:178], df[df.label == 1].iloc[:2]]).reset_index(drop=True)
    c = InfluenceCleaner(label_column="label", random_state=0).fit(datasets.Dataset.from_pandas(d, preserve_index=False))
    t = c.issues_
    minority = t[t["given_label"] == 1]
    # the ranking puts both at the top, and every flagged row is one of them (the estimate's count, cleanlab's
    # find_label_issues, keeps one row of each class, so it flags one of the two) ...
    assert len(minority) == 2 and set(minority.index) == set(np.argsort(c.scores_)[-2:])
    assert t["is_issue"].sum() == 1 and t.loc[t["is_issue"], "given_label"].eq(1).all()
    assert (minority["action"] == "keep").all()  # ... but no row of the 2-row class is dropped
    assert (t["action"] == "drop").sum() == 0

"""Empty relabel suggestions: a flagged row's suggestion is never its given label, and is empty (null) where
no other label is confident; every reader of the table takes the empty value."""

from __future__ import annotations

import datasets
import numpy as np
import pandas as pd
import pytest

from influence_stage.data.labels import encode_labels
from influence_stage.decisions import decide
from influence_stage.decisions.apply import apply_to_arrays, relabel_targets
from influence_stage.decisions.schema import check_table
from influence_stage.decisions.suggest import NO_SUGGESTION, SUGGESTION_MIN_PROBA, suggested_codes
from influence_stage.errors import InvalidInputError


def _random_case(seed: int, n: int = 120, k: int = 4):
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.full(k, 0.6), size=n)
    labels = rng.integers(0, k, n)
    scores = rng.random(n)
    return scores, labels, proba


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kw", [dict(action="drop"), dict(action="none"), dict(action="reweight"),
                                dict(action="relabel"), dict(action="relabel", relabel_fallback="keep"),
                                dict(action="relabel", min_agreement=0.8), dict(action="relabel", relabel_rule="soft")])
def test_a_flagged_rows_suggestion_is_never_its_given_label(seed, kw):
    scores, labels, proba = _random_case(seed)
    t = decide(scores, labels, threshold=0.6, proba=proba, max_fraction_per_class=None, **kw).table
    assert t["suggested_label"].dtype == "Int64"
    flagged = t["is_issue"].to_numpy()
    assert 0 < flagged.sum() < len(t)
    codes = suggested_codes(t["suggested_label"])
    assert not np.any(codes[flagged] == labels[flagged])
    # a relabeled row has a suggestion, another label than its own
    relabeled = t["action"].to_numpy() == "relabel"
    assert not np.any(codes[relabeled] == NO_SUGGESTION)
    assert not np.any(codes[relabeled] == labels[relabeled])
    # the rows not flagged keep the argmax
    np.testing.assert_array_equal(codes[~flagged], proba[~flagged].argmax(axis=1))


def _shown(t: pd.DataFrame) -> list:
    return [None if pd.isna(v) else int(v) for v in t["suggested_label"]]


# rows 0-3 flagged; given labels 0, 1, 2, 0
SCORES = np.array([9.0, 9.0, 9.0, 9.0, 0.1, 0.2, 0.3])
LABELS = np.array([0, 1, 2, 0, 0, 1, 2])
PROBA = np.array([
    [0.10, 0.85, 0.05],  # 0: 1 is confident (0.85)
    [0.05, 0.30, 0.65],  # 1: 2 has 0.65
    [0.30, 0.30, 0.40],  # 2: the given label is the argmax; the best other (0) has 0.30
    [0.45, 0.40, 0.15],  # 3: the given label leads; 1 has 0.40
    [0.80, 0.10, 0.10],
    [0.10, 0.80, 0.10],
    [0.10, 0.10, 0.80],
])


@pytest.mark.parametrize("fallback", ["drop", "keep"])
def test_a_flagged_row_without_a_confident_other_label_has_an_empty_suggestion_and_falls_back(fallback):
    t = decide(SCORES, LABELS, threshold=1.0, action="relabel", proba=PROBA, relabel_fallback=fallback,
               max_fraction_per_class=None).table
    assert t["action"].tolist()[:4] == ["relabel", "relabel", fallback, fallback]
    assert _shown(t) == [1, 2, None, None, 0, 1, 2]
    # the applied labels: the relabels only; the empty rows keep their label or are dropped
    X = np.arange(7)[:, None]
    enc = encode_labels(datasets.Dataset.from_dict({"label": LABELS}), "label")
    X_out, y_out = apply_to_arrays(X, LABELS, t, enc)
    kept = [0, 1, 4, 5, 6] if fallback == "drop" else list(range(7))
    assert X_out[:, 0].tolist() == kept
    expected = LABELS.copy()
    expected[[0, 1]] = [1, 2]
    assert y_out.tolist() == expected[kept].tolist()


def test_min_agreement_sets_which_suggestions_are_shown_under_relabel():
    t = decide(SCORES, LABELS, threshold=1.0, action="relabel", proba=PROBA, min_agreement=0.4,
               max_fraction_per_class=None).table
    assert _shown(t)[:4] == [1, 2, None, None]  # row 3: 0.40 >= 0.4, but the given label leads (0.45)
    t = decide(SCORES, LABELS, threshold=1.0, action="relabel", proba=PROBA, min_agreement=0.4,
               max_fraction_per_class=None, policy_options={"min_margin": -1.0}).table
    assert _shown(t)[:4] == [1, 2, None, 1]  # without the margin, row 3 passes
    t = decide(SCORES, LABELS, threshold=1.0, action="relabel", proba=PROBA, min_agreement=0.7,
               max_fraction_per_class=None).table
    assert _shown(t)[:4] == [1, None, None, None]


@pytest.mark.parametrize("action", ["drop", "none", "reweight"])
def test_other_actions_show_a_suggestion_that_reaches_one_half(action):
    assert SUGGESTION_MIN_PROBA == 0.5
    # min_agreement is the relabel rule's: it does not change the column under other actions
    for min_agreement in (0.1, 0.9):
        t = decide(SCORES, LABELS, threshold=1.0, action=action, proba=PROBA, min_agreement=min_agreement).table
        assert _shown(t) == [1, 2, None, None, 0, 1, 2]


def test_the_soft_rule_shows_the_suggestion_of_the_rows_it_relabels():
    # soft: relabel when the given label has less than 1/3; rows 0 (0.10) and 1 (0.30); not 2 (0.40), 3 (0.45)
    t = decide(SCORES, LABELS, threshold=1.0, action="relabel", relabel_rule="soft", proba=PROBA,
               max_fraction_per_class=None).table
    assert t["action"].tolist()[:4] == ["relabel", "relabel", "drop", "drop"]
    assert _shown(t)[:4] == [1, 2, None, None]


def test_without_probabilities_every_flagged_row_has_an_empty_suggestion():
    t = decide(SCORES, LABELS, threshold=1.0, action="drop").table
    assert _shown(t) == [None] * 4 + LABELS[4:].tolist()


def test_caps_keep_a_relabel_with_its_suggestion():
    # max_fraction_per_class=0.5 with 2 rows of class 0 flagged: one removal allowed; the kept row keeps its suggestion
    t = decide(SCORES, LABELS, threshold=1.0, action="relabel", proba=PROBA, min_agreement=0.4,
               max_fraction_per_class=0.5, policy_options={"min_margin": -1.0}).table
    assert t["action"].tolist()[:4] == ["relabel", "relabel", "drop", "keep"]
    assert _shown(t)[:4] == [1, 2, None, 1]


def test_summary_counts_relabels_with_empty_suggestions_elsewhere():
    d = decide(SCORES, LABELS, threshold=1.0, action="relabel", proba=PROBA, max_fraction_per_class=None)
    s = d.summary()
    assert s.loc["all", "relabel"] == 2 and s.loc[1, "relabeled_in"] == 1 and s.loc[2, "relabeled_in"] == 1


def test_check_table_takes_empty_suggestions_in_every_spelling():
    t = decide(SCORES, LABELS, threshold=1.0, action="drop", proba=PROBA).table
    names = ["a", "b", "c"]
    for column in (t["suggested_label"],                                    # Int64 with <NA>
                   t["suggested_label"].astype("float64"),                  # a CSV read back: NaN
                   t["suggested_label"].astype(object).where(t["suggested_label"].notna(), None)):  # None
        clean, _ = check_table(t.assign(suggested_label=column), names)
        assert clean["suggested_label"].dtype == "Int64"
        assert _shown(clean) == [1, 2, None, None, 0, 1, 2]


def test_check_table_refuses_a_relabel_without_a_suggestion():
    t = decide(SCORES, LABELS, threshold=1.0, action="relabel", proba=PROBA, max_fraction_per_class=None).table
    bad = t.copy()
    bad.loc[0, "suggested_label"] = pd.NA
    with pytest.raises(InvalidInputError, match=r"row 0 has action 'relabel' and an empty suggested_label"):
        check_table(bad, ["a", "b", "c"])
    with pytest.raises(InvalidInputError, match=r"row_id 0 has suggested_label empty \(null\)"):
        relabel_targets(bad, bad["action"].to_numpy() == "relabel", 3)
    # the bad code on a given_label is still named first
    with pytest.raises(InvalidInputError, match="'given_label' must hold class codes"):
        check_table(bad.assign(given_label=9), ["a", "b", "c"])


def test_a_policy_that_relabels_an_unconfident_row_is_refused():
    from dataclasses import dataclass

    from influence_stage.decisions.policies import Policy, PolicyOutcome

    @dataclass(frozen=True)
    class RelabelAll(Policy):
        removes_rows = True
        needs_proba = True

        def act(self, x):
            action, weight = self.keep_all(x.n)
            action[x.actionable] = "relabel"
            return PolicyOutcome(action, weight)

    with pytest.raises(InvalidInputError, match="not confident by its own rule"):
        decide(SCORES, LABELS, threshold=1.0, action=RelabelAll(), proba=PROBA)


def test_great_expectations_in_set_ignores_empty_suggestions():
    """The manifest suite's ``suggested_label`` in-set check counts no null as unexpected (GE's default)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    frame = pd.DataFrame({"suggested_label": pd.array([0, None, 2, None], dtype="Int64")})
    context = gx.get_context(mode="ephemeral")
    batch = (context.data_sources.add_pandas("s").add_dataframe_asset("a")
             .add_batch_definition_whole_dataframe("b").get_batch(batch_parameters={"dataframe": frame}))
    ok = batch.validate(gxe.ExpectColumnValuesToBeInSet(column="suggested_label", value_set=[0, 1, 2]))
    assert ok.success and ok.result["unexpected_count"] == 0
    bad = batch.validate(gxe.ExpectColumnValuesToBeInSet(column="suggested_label", value_set=[0, 1]))
    assert not bad.success and bad.result["unexpected_count"] == 1  # the 2; the nulls still do not count


def test_a_saved_cleaner_keeps_empty_suggestions(tmp_path):
    from sklearn.datasets import load_digits

    from influence_stage.api import InfluenceCleaner
    from influence_stage.config import FitConfig, GEXConfig

    X, y = load_digits(return_X_y=True)
    y = y[:200].copy()
    y[::10] = (y[::10] + 3) % 10  # 20 flipped labels
    cleaner = InfluenceCleaner(gex_config=GEXConfig(chains=2, cycles=2, ft_lr=0.4), fit_config=FitConfig(epochs=5),
                               action="relabel", relabel_fallback="keep", random_state=0).fit(X[:200], y)
    issues = cleaner.issues_
    empty = issues["suggested_label"].isna().to_numpy()
    assert empty.any(), "the fit should leave some flagged row without a confident other label"
    assert issues["is_issue"].to_numpy()[empty].all()
    assert issues["suggested_label_name"].isna().to_numpy().tolist() == empty.tolist()
    back = InfluenceCleaner.load(cleaner.save(tmp_path / "cleaner"))
    pd.testing.assert_series_equal(back.issues_["suggested_label"], issues["suggested_label"])
    assert back.issues_["suggested_label_name"].tolist() == issues["suggested_label_name"].tolist()
    assert back.decisions_.table["suggested_label"].dtype == "Int64"

"""Tests of influence_stage.decisions: thresholds on scores with known answers, actions, caps, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.mixture import GaussianMixture

from influence_stage.errors import InvalidInputError, InvalidTypeError
from influence_stage.decisions import (
    TABLE_COLUMNS,
    ThresholdSpec,
    choose_threshold,
    decide,
    parse_threshold,
)

N_LOW, N_HIGH = 900, 100


@pytest.fixture(scope="module")
def two_clusters() -> tuple[np.ndarray, np.ndarray]:
    """Scores from two log-normal clusters 4 log-units apart (sigma 0.3), shuffled; and the high mask."""
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.lognormal(0.0, 0.3, N_LOW), rng.lognormal(4.0, 0.3, N_HIGH)])
    high = np.r_[np.zeros(N_LOW, bool), np.ones(N_HIGH, bool)]
    perm = rng.permutation(scores.size)
    return scores[perm], high[perm]


def _top_k_mask(scores: np.ndarray, k: int) -> np.ndarray:
    """Naive reference: the k highest scores, ties to the earlier row."""
    ranked = sorted(range(scores.size), key=lambda i: (-scores[i], i))
    mask = np.zeros(scores.size, bool)
    mask[ranked[:k]] = True
    return mask


def _is_monotone(scores: np.ndarray, values: np.ndarray, *, increasing: bool) -> bool:
    order = np.argsort(scores, kind="stable")
    d = np.diff(values[order])
    return bool(np.all(d >= 0) if increasing else np.all(d <= 0))


# ---------------------------------------------------------------------------------------------
# Threshold specs
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("otsu", ThresholdSpec("otsu")),
        (" GMM ", ThresholdSpec("gmm")),
        ("quantile:0.9", ThresholdSpec("quantile", 0.9)),
        ("budget: 0.1", ThresholdSpec("budget", 0.1)),
        ("budget:0", ThresholdSpec("budget", 0.0)),
        ("2.5", ThresholdSpec("value", 2.5)),
        (3, ThresholdSpec("value", 3.0)),
        (np.float32(0.5), ThresholdSpec("value", 0.5)),
    ],
)
def test_parse_threshold_accepts(spec, expected):
    assert parse_threshold(spec) == expected


@pytest.mark.parametrize(
    "spec, match",
    [
        ("quantile:1.5", r"quantile parameter must be in \[0, 1\]; found 1.5"),
        ("budget:abc", r"budget parameter must be a number in \[0, 1\]; found 'abc'"),
        ("budget:-0.1", r"budget parameter must be in \[0, 1\]"),
        ("quantile:", r"quantile parameter must be a number"),
        ("quantile:nan", r"quantile parameter must be in \[0, 1\]"),
        ("foo", r"unknown threshold 'foo'"),
        ("top:0.1", r"unknown threshold method 'top'"),
        ("-1", r"finite number >= 0.*found '-1'"),
        (float("inf"), r"finite number >= 0"),
    ],
)
def test_parse_threshold_rejects(spec, match):
    with pytest.raises(InvalidInputError, match=match):
        parse_threshold(spec)


@pytest.mark.parametrize("spec", [True, None, [0.5]])
def test_parse_threshold_rejects_types(spec):
    with pytest.raises(InvalidTypeError, match="threshold must be a string or a number"):
        parse_threshold(spec)


# ---------------------------------------------------------------------------------------------
# Thresholds with known answers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["otsu", "gmm"])
def test_otsu_and_gmm_flag_exactly_the_high_cluster(two_clusters, spec):
    scores, high = two_clusters
    res = choose_threshold(scores, spec, random_state=0)
    assert res.method == spec
    np.testing.assert_array_equal(res.is_issue, high)
    assert scores[~high].max() < res.value < scores[high].min()
    np.testing.assert_array_equal(res.is_issue, scores > res.value)


def test_otsu_and_gmm_with_exact_zeros(two_clusters):
    scores, high = two_clusters
    scores = scores.copy()
    low_rows = np.flatnonzero(~high)[:20]
    scores[low_rows] = 0.0
    for spec in ("otsu", "gmm"):
        res = choose_threshold(scores, spec, random_state=0)
        np.testing.assert_array_equal(res.is_issue, high, err_msg=spec)
        assert np.all(np.isfinite(res.p_issue))


def test_otsu_closed_form_on_point_masses():
    # log scores {0 x60, 1 x30, 5 x10}: between-class variance 0.96 (cut after 0) vs 1.96 (after 1)
    log_s = np.r_[np.zeros(60), np.ones(30), np.full(10, 5.0)]
    res = choose_threshold(np.exp(log_s), "otsu")
    np.testing.assert_array_equal(res.is_issue, log_s == 5.0)
    # log scores {0 x10, 4 x30, 5 x60}: 1.96 (cut after 0) vs 0.96 (after 4): flags 90 rows, not the top 60
    log_s = np.r_[np.zeros(10), np.full(30, 4.0), np.full(60, 5.0)]
    res = choose_threshold(np.exp(log_s), "otsu")
    np.testing.assert_array_equal(res.is_issue, log_s > 0)
    assert res.n_flagged == 90


def test_otsu_matches_exact_split_reference(two_clusters):
    """The histogram Otsu equals a naive exact Otsu over every split of the sorted log scores."""
    scores, _ = two_clusters
    x = np.sort(np.log(scores))
    best, best_k = -1.0, None
    for k in range(1, x.size):
        a, b = x[:k], x[k:]
        var = (k / x.size) * (1 - k / x.size) * (b.mean() - a.mean()) ** 2
        if var > best:
            best, best_k = var, k
    expected = np.log(scores) >= x[best_k]
    np.testing.assert_array_equal(choose_threshold(scores, "otsu").is_issue, expected)


def test_quantile_flags_top_ten_percent(two_clusters):
    scores, _ = two_clusters
    res = choose_threshold(scores, "quantile:0.9")
    assert res.method == "quantile"
    assert res.n_flagged == 100
    np.testing.assert_array_equal(res.is_issue, _top_k_mask(scores, 100))
    assert res.value == pytest.approx(np.quantile(scores, 0.9))


def test_quantile_small_vector():
    res = choose_threshold(np.arange(10.0), "quantile:0.5")  # median 4.5
    assert res.value == pytest.approx(4.5)
    np.testing.assert_array_equal(res.is_issue, np.arange(10) >= 5)


def test_budget_flags_exactly_round_fn(two_clusters):
    scores, _ = two_clusters
    res = choose_threshold(scores, "budget:0.05")
    assert res.method == "budget"
    assert res.n_flagged == 50
    np.testing.assert_array_equal(res.is_issue, _top_k_mask(scores, 50))
    assert res.value == scores[res.is_issue].min()
    assert choose_threshold(scores[:37], "budget:0.1").n_flagged == 4  # 3.7 -> 4
    assert choose_threshold(scores, "budget:0").n_flagged == 0
    assert choose_threshold(scores, "budget:1").n_flagged == scores.size


def test_budget_breaks_ties_by_row_order():
    scores = np.array([1.0, 2.0, 2.0, 2.0, 0.0, 2.0])
    res = choose_threshold(scores, "budget:0.5")  # 3 rows of the four tied at 2.0
    np.testing.assert_array_equal(res.is_issue, [False, True, True, True, False, False])
    assert res.value == 2.0


def test_numeric_threshold():
    scores = np.array([0.0, 1.0, 2.0, 3.0, 1.5])
    for spec in (1.5, "1.5"):
        res = choose_threshold(scores, spec)
        assert res.method == "value"
        assert res.value == 1.5
        np.testing.assert_array_equal(res.is_issue, [False, False, True, True, False])


def test_constant_scores_flag_nothing_for_otsu_and_gmm():
    for spec in ("otsu", "gmm"):
        res = choose_threshold(np.full(20, 0.3), spec, random_state=0)
        assert res.n_flagged == 0
        assert res.value == 0.3


@pytest.mark.parametrize("spec", ["otsu", "gmm", "quantile:0.8", "budget:0.3", "2.0"])
def test_p_issue_bounded_monotone_and_consistent(two_clusters, spec):
    scores, _ = two_clusters
    res = choose_threshold(scores, spec, random_state=0)
    p = res.p_issue
    assert p.shape == scores.shape and p.dtype == np.float64
    assert np.all((p >= 0) & (p <= 1))
    assert _is_monotone(scores, p, increasing=True)
    assert np.all(res.is_issue[p > 0.5])  # p > 0.5 implies flagged
    assert np.all(p[res.is_issue] >= 0.5)  # flagged implies p >= 0.5
    assert np.all(res.is_issue[scores > res.value]) and not np.any(res.is_issue[scores < res.value])
    assert not res.is_issue.flags.writeable and not p.flags.writeable


def test_logistic_p_is_one_half_at_the_threshold():
    scores = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    res = choose_threshold(scores, 4.0)
    assert res.p_issue[2] == pytest.approx(0.5)
    assert res.p_issue[3] > 0.5 > res.p_issue[1]


def test_gmm_posterior_is_near_certain_on_separated_clusters(two_clusters):
    scores, high = two_clusters
    res = choose_threshold(scores, "gmm", random_state=0)
    assert res.p_issue[high].min() > 0.99 and res.p_issue[~high].max() < 0.01


def test_gmm_tail_is_made_monotone():
    """Narrow high component: sklearn's raw posterior drops back to ~0 for an extreme score."""
    rng = np.random.default_rng(1)
    log_s = np.r_[rng.normal(0.0, 2.0, 900), rng.normal(10.0, 0.1, 100), 11.5]
    scores = np.exp(log_s)
    gm = GaussianMixture(2, random_state=0).fit(log_s[:, None])
    raw = gm.predict_proba(log_s[:, None])[:, int(np.argmax(gm.means_[:, 0]))]
    assert raw[-1] < 0.5  # precondition: the raw posterior is not monotone
    res = choose_threshold(scores, "gmm", random_state=0)
    assert res.is_issue[-1]
    assert res.p_issue[-1] >= res.p_issue[900:1000].max()
    assert _is_monotone(scores, res.p_issue, increasing=True)
    np.testing.assert_array_equal(res.is_issue, log_s > 8.5)  # low cluster max 7.5, high min 9.76


def test_gmm_same_seed_same_result(two_clusters):
    scores, _ = two_clusters
    noisy = scores * np.exp(np.random.default_rng(5).normal(0, 1.0, scores.size))  # less separated
    a = choose_threshold(noisy, "gmm", random_state=7)
    b = choose_threshold(noisy, "gmm", random_state=7)
    np.testing.assert_array_equal(a.p_issue, b.p_issue)
    np.testing.assert_array_equal(a.is_issue, b.is_issue)
    assert a.value == b.value


def test_threshold_scales_with_the_scores(two_clusters):
    scores, _ = two_clusters
    for spec in ("otsu", "gmm", "quantile:0.9"):
        a = choose_threshold(scores, spec, random_state=0)
        b = choose_threshold(scores * 1e-6, spec, random_state=0)
        np.testing.assert_array_equal(a.is_issue, b.is_issue)
        assert b.value == pytest.approx(a.value * 1e-6, rel=1e-6)


# ---------------------------------------------------------------------------------------------
# Actions
# ---------------------------------------------------------------------------------------------

# rows 0-4 flagged by threshold 5.0, rows 5-8 not
RELABEL_SCORES = np.array([10.0, 11.0, 12.0, 13.0, 14.0, 1.0, 1.1, 1.2, 1.3])
RELABEL_LABELS = np.array([0, 0, 1, 2, 1, 2, 0, 1, 2])
RELABEL_PROBA = np.array([
    [0.1, 0.8, 0.1],   # 0: given 0, suggests 1 with 0.8            -> relabel
    [0.3, 0.4, 0.3],   # 1: given 0, suggests 1 with 0.4 < 0.5      -> fallback
    [0.1, 0.8, 0.1],   # 2: given 1, suggests 0 (never its own) 0.1 -> fallback
    [0.5, 0.2, 0.3],   # 3: given 2, suggests 0 with 0.5, only 0.2 over the given label -> fallback
    [0.2, 0.2, 0.6],   # 4: given 1, suggests 2 with 0.6            -> relabel
    [0.9, 0.05, 0.05],  # 5: not flagged                           -> keep
    [0.8, 0.1, 0.1],
    [0.1, 0.8, 0.1],
    [0.1, 0.1, 0.8],
])


def _relabel(**kw) -> pd.DataFrame:
    kw.setdefault("threshold", 5.0)
    kw.setdefault("max_fraction_per_class", None)  # the rule itself; caps are tested on their own
    return decide(RELABEL_SCORES, RELABEL_LABELS, action="relabel", proba=RELABEL_PROBA, **kw).table


def test_relabel_argmax_rule_with_fallbacks():
    t = _relabel()
    assert t["action"].tolist() == ["relabel", "drop", "drop", "drop", "relabel", "keep", "keep", "keep", "keep"]
    # flagged rows: the best label other than the given one when it passes the rule, else empty; the others: the argmax
    assert t["suggested_label"].dtype == "Int64"
    assert t["suggested_label"].astype(object).where(t["suggested_label"].notna(), None).tolist() \
        == [1, None, None, None, 2, 0, 0, 1, 2]
    assert t["is_issue"].tolist() == [True] * 5 + [False] * 4
    assert np.all(t["weight"] == 1.0)
    t = _relabel(relabel_fallback="keep")
    assert t["action"].tolist() == ["relabel", "keep", "keep", "keep", "relabel", "keep", "keep", "keep", "keep"]
    # without the margin over the given label, row 3 (exactly min_agreement) is relabeled
    t = _relabel(policy_options={"min_margin": 0.0})
    assert t["action"].tolist()[:5] == ["relabel", "drop", "drop", "relabel", "relabel"]


def test_relabel_min_agreement():
    t = _relabel(min_agreement=0.7, max_fraction_per_class=None)
    assert t["action"].tolist()[:5] == ["relabel", "drop", "drop", "drop", "drop"]
    # cap 0.5: each class has 3 rows, so 1 may leave it (drop or relabel away); the higher score
    # wins: class 0 keeps row 0 (10.0 < 11.0), class 1 keeps row 2 (12.0 < 14.0)
    t = _relabel(min_agreement=0.7, max_fraction_per_class=0.5)
    assert t["action"].tolist()[:5] == ["keep", "drop", "keep", "drop", "drop"]
    # with no floor and no margin, any other label will do
    t = _relabel(min_agreement=0.0, relabel_fallback="keep", policy_options={"min_margin": -1.0})
    assert t["action"].tolist()[:5] == ["relabel", "relabel", "relabel", "relabel", "relabel"]


def test_relabel_soft_rule():
    # K = 3: relabel when proba[given] < 1/3 -> rows 0 (0.1), 1 (0.3), 3 (0.3), 4 (0.2); row 2 has 0.8
    t = _relabel(relabel_rule="soft")
    assert t["action"].tolist()[:5] == ["relabel", "relabel", "drop", "relabel", "relabel"]


def test_summary_counts():
    s = decide(RELABEL_SCORES, RELABEL_LABELS, threshold=5.0, action="relabel", proba=RELABEL_PROBA,
               max_fraction_per_class=None, policy_options={"min_margin": 0.0}).summary()
    assert list(s.index) == [0, 1, 2, "all"]
    assert s.loc[0].to_dict() == {"n_rows": 3, "n_flagged": 2, "keep": 1, "drop": 1, "relabel": 1,
                                  "reweight": 0, "relabeled_in": 1, "n_after": 2}
    assert s.loc[1, "relabeled_in"] == 1 and s.loc[1, "n_after"] == 3 - 1 - 1 + 1
    assert s.loc[2, "n_after"] == 3 - 0 - 1 + 1
    assert s.loc["all"].to_dict() == {"n_rows": 9, "n_flagged": 5, "keep": 4, "drop": 2, "relabel": 3,
                                      "reweight": 0, "relabeled_in": 3, "n_after": 7}


def test_reweight(two_clusters):
    scores, high = two_clusters
    labels = np.arange(scores.size) % 2
    d = decide(scores, labels, action="reweight", min_weight=0.2)
    t = d.table
    w = t["weight"].to_numpy()
    assert np.all((w > 0) & (w <= 1)) and w.min() == pytest.approx(0.2)
    assert _is_monotone(scores, w, increasing=False)
    np.testing.assert_allclose(w, np.where(high, np.clip(1 - d.threshold.p_issue, 0.2, 1.0), 1.0))
    assert (t["action"] == "reweight").tolist() == high.tolist()
    assert set(t["action"][~high]) == {"keep"}
    assert (w[~high] == 1.0).all() and w[high].max() < 0.5
    for spec in ("gmm", "budget:0.3"):
        w = decide(scores, labels, threshold=spec, action="reweight", random_state=0).table["weight"].to_numpy()
        assert np.all((w >= 0.05) & (w <= 1)) and _is_monotone(scores, w, increasing=False)


def test_action_none_keeps_everything(two_clusters):
    scores, high = two_clusters
    t = decide(scores, np.arange(scores.size) % 3, action="none").table
    assert set(t["action"]) == {"keep"}
    assert t["is_issue"].tolist() == high.tolist()
    assert np.all(t["weight"] == 1.0)
    # without proba: the given label, and empty on flagged rows (no other label is confident)
    suggested = t["suggested_label"]
    assert suggested.isna().tolist() == high.tolist()
    assert (suggested[~high] == t["given_label"][~high]).all()


def test_drop(two_clusters):
    scores, high = two_clusters
    t = decide(scores, np.arange(scores.size) % 2).table
    assert (t["action"] == "drop").tolist() == high.tolist()


# ---------------------------------------------------------------------------------------------
# Caps
# ---------------------------------------------------------------------------------------------

# class 0: 10 rows, all high (all flagged); class 1: 30 low rows and 2 high ones
CAP_SCORES = np.r_[np.arange(100.0, 110.0), np.linspace(1.0, 2.0, 30), 200.0, 50.0]
CAP_LABELS = np.r_[np.zeros(10, int), np.ones(32, int)]


def test_per_class_cap_keeps_lowest_scoring_flagged_rows():
    t = decide(CAP_SCORES, CAP_LABELS, threshold=10.0).table
    assert t["is_issue"].sum() == 12
    dropped = np.flatnonzero(t["action"] == "drop")
    # class 0: floor(0.5 * 10) = 5 drops, the five highest (105..109); class 1: both high rows
    assert dropped.tolist() == [5, 6, 7, 8, 9, 40, 41]
    assert t.loc[:4, "action"].eq("keep").all() and t.loc[:4, "is_issue"].all()


@pytest.mark.parametrize("fraction", [1.0, None])
def test_cap_never_empties_a_class(fraction):
    t = decide(CAP_SCORES, CAP_LABELS, threshold=10.0, max_fraction_per_class=fraction).table
    kept0 = np.flatnonzero((t["given_label"] == 0) & (t["action"] == "keep"))
    assert kept0.tolist() == [0]  # the lowest-scoring row of the all-flagged class
    assert (t["action"] == "drop").sum() == 11


def test_cap_on_a_one_row_class():
    scores = np.array([5.0, 1.0, 1.0, 9.0])
    labels = np.array([0, 0, 0, 1])
    t = decide(scores, labels, threshold=3.0, max_fraction_per_class=1.0).table
    assert t["action"].tolist() == ["drop", "keep", "keep", "keep"]


def test_cap_ties_keep_the_later_row():
    scores = np.r_[np.full(4, 7.0), np.ones(4)]
    labels = np.r_[np.zeros(4, int), np.ones(4, int)]
    t = decide(scores, labels, threshold=3.0).table  # 2 of the 4 tied rows may go
    assert t["action"].tolist()[:4] == ["drop", "drop", "keep", "keep"]


def test_global_drop_cap():
    t = decide(CAP_SCORES, CAP_LABELS, threshold=10.0, max_drop_fraction=0.1).table
    # floor(0.1 * 42) = 4 of the 7 capped drops: scores 200, 109, 108, 107
    assert np.flatnonzero(t["action"] == "drop").tolist() == [7, 8, 9, 40]
    t = decide(CAP_SCORES, CAP_LABELS, threshold=10.0, max_drop_fraction=0.0).table
    assert set(t["action"]) == {"keep"}


def test_caps_apply_to_relabel_fallback_drops():
    # class-0 rows: the other label has 0.3 < 0.5 -> fallback drop; class-1 rows: 0 with 0.7 -> relabel
    proba = np.tile([0.7, 0.3], (CAP_SCORES.size, 1))
    t = decide(CAP_SCORES, CAP_LABELS, threshold=10.0, action="relabel", proba=proba).table
    assert np.flatnonzero(t["action"] == "drop").tolist() == [5, 6, 7, 8, 9]
    assert np.flatnonzero(t["action"] == "relabel").tolist() == [40, 41]


# ---------------------------------------------------------------------------------------------
# Row accounting
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["drop", "reweight", "none", "relabel"])
def test_row_accounting(two_clusters, action):
    scores, _ = two_clusters
    n = scores.size
    rng = np.random.default_rng(3)
    ids = np.array([f"r{i}" for i in rng.permutation(n)])
    labels = rng.integers(0, 3, n)
    proba = rng.dirichlet(np.ones(3), n)
    d = decide(scores, labels, action=action, proba=proba, row_ids=ids)
    t = d.table
    assert tuple(t.columns) == TABLE_COLUMNS
    assert len(t) == n and t["row_id"].is_unique
    assert t["row_id"].tolist() == ids.tolist()
    np.testing.assert_array_equal(t["score"].to_numpy(), scores)
    np.testing.assert_array_equal(t["given_label"].to_numpy(), labels)
    flagged = t["is_issue"].to_numpy()
    np.testing.assert_array_equal(t["suggested_label"].to_numpy()[~flagged], proba.argmax(axis=1)[~flagged])
    assert not np.any(t["suggested_label"].to_numpy()[flagged] == labels[flagged])
    assert set(t["action"]) <= {"keep", "drop", "relabel", "reweight"}
    assert d.summary().loc["all", "n_rows"] == n


def test_default_row_ids():
    t = decide([0.1, 5.0, 0.2, 0.3], [0, 1, 1, 0], threshold=1.0).table
    assert t["row_id"].tolist() == [0, 1, 2, 3]
    assert t["action"].tolist() == ["keep", "drop", "keep", "keep"]


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------

GOOD_S = np.array([0.1, 0.2, 3.0, 0.4])
GOOD_Y = np.array([0, 1, 0, 1])
GOOD_P = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.5, 0.5]])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"scores": np.ones((4, 1))}, r"scores must be 1-D \(n_samples,\); found shape \(4, 1\)"),
        ({"scores": np.array([])}, r"scores is empty"),
        ({"scores": np.array([0.1, 0.2, 0.3, np.nan])}, r"must be finite; row 3 has nan \(1 bad rows"),
        ({"scores": np.array([0.1, np.inf, 0.3, 0.4])}, r"row 1 has inf"),
        ({"scores": np.array([0.1, 0.2, -0.5, 0.4])}, r"must be >= 0.*row 2 has -0.5"),
        ({"given_labels": np.array([0, 1, 0])}, r"one label per score: expected 4, found 3"),
        ({"given_labels": np.array([0, 1, 0, 2]), "proba": GOOD_P}, r"labels outside 0..1: row 3 has 2"),
        ({"proba": GOOD_P[:3]}, r"proba must have shape.*\(4, K\).*found shape \(3, 2\)"),
        ({"proba": GOOD_P[:, :1]}, r"found shape \(4, 1\)"),
        ({"proba": np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.3], [0.5, 0.5]])}, r"row 2 sums to 0.6"),
        ({"proba": np.array([[0.9, 0.1], [2.0, -1.0], [0.3, 0.7], [0.5, 0.5]])}, r"\[0, 1\]; row 1"),
        ({"action": "delete"}, r"action must be one of \['drop', 'relabel', 'reweight', 'none', 'prune'\]; found 'delete'"),
        ({"action": "relabel"}, r"action='relabel' needs proba"),
        ({"row_ids": [1, 2, 3]}, r"row_ids must have one id per score: expected 4, found 3"),
        ({"row_ids": ["a", "b", "a", "c"]}, r"row_ids must be unique; row 2 repeats id 'a'"),
        ({"threshold": "quantile:1.5"}, r"quantile parameter must be in \[0, 1\]"),
        ({"min_agreement": 1.2}, r"min_agreement must be in \[0, 1\]; found 1.2"),
        ({"relabel_fallback": "reweight"}, r"relabel_fallback must be one of \['drop', 'keep'\]"),
        ({"relabel_rule": "hard"}, r"relabel_rule must be one of \['argmax', 'soft'\]"),
        ({"min_weight": 0.0}, r"min_weight must be in \(0, 1\]; found 0.0"),
        ({"max_fraction_per_class": 1.5}, r"max_fraction_per_class must be in \[0, 1\]"),
        ({"max_drop_fraction": -0.1}, r"max_drop_fraction must be in \[0, 1\]"),
    ],
)
def test_decide_errors(kwargs, match):
    args = {"scores": GOOD_S, "given_labels": GOOD_Y, **kwargs}
    with pytest.raises(InvalidInputError, match=match):
        decide(args.pop("scores"), args.pop("given_labels"), **args)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"scores": np.array(["a", "b", "c", "d"])}, r"scores must be numeric"),
        ({"given_labels": np.array(["x", "y", "x", "y"])}, r"given_labels must hold integer class indices"),
        ({"action": 1}, r"action must be one of"),
        ({"min_weight": "0.1"}, r"min_weight must be a number"),
    ],
)
def test_decide_type_errors(kwargs, match):
    args = {"scores": GOOD_S, "given_labels": GOOD_Y, **kwargs}
    with pytest.raises(InvalidTypeError, match=match):
        decide(args.pop("scores"), args.pop("given_labels"), **args)


def test_choose_threshold_errors():
    with pytest.raises(InvalidInputError, match=r"row 1 has nan"):
        choose_threshold([0.1, float("nan")], "otsu")
    with pytest.raises(InvalidInputError, match=r"unknown threshold 'foo'"):
        choose_threshold(GOOD_S, "foo")
    with pytest.raises(InvalidInputError, match=r"budget parameter must be a number"):
        choose_threshold(GOOD_S, "budget:abc")


def test_errors_are_builtin_subclasses():
    with pytest.raises(ValueError):
        decide(GOOD_S, GOOD_Y, action="delete")
    with pytest.raises(TypeError):
        decide(GOOD_S, GOOD_Y, action=None)


def test_floor_keeps_the_tau_spike_out_of_otsu_and_gmm():
    # GEX-like scores: 600 rows piled at tau**2 (fitted by every member), 300 clean rows spread
    # above it, 100 mislabeled rows in a high mode
    rng = np.random.default_rng(0)
    tau2 = 0.05 ** 2
    spike = tau2 * rng.uniform(0.6, 1.0, 600)
    clean = 10 ** rng.normal(-1.5, 0.3, 300)
    noisy = 10 ** rng.normal(0.5, 0.3, 100)
    s = np.r_[spike, clean, noisy]
    for spec in ("otsu", "gmm"):
        with_floor = choose_threshold(s, spec, random_state=0, floor=2 * tau2)
        assert with_floor.is_issue[900:].all() and not with_floor.is_issue[:900].any(), spec
    # without the floor Otsu splits the spike off: 345 rows flagged, the 100 mislabeled and 245 clean
    assert choose_threshold(s, "otsu").is_issue.sum() > 300
    d = decide(s, np.arange(1000) % 2, threshold="otsu", score_floor=2 * tau2)
    assert d.table.is_issue.sum() == 100


def test_relabel_cannot_empty_a_class():
    # class 2 has 4 rows, every one flagged and confidently predicted as class 0
    y = np.r_[np.zeros(10, int), np.ones(10, int), np.full(4, 2)]
    s = np.r_[np.full(20, 0.001), np.full(4, 5.0)]
    proba = np.full((24, 3), 0.05)
    proba[np.arange(24), y] = 0.9
    proba[20:] = [0.9, 0.05, 0.05]
    d = decide(s, y, threshold=1.0, action="relabel", proba=proba, max_fraction_per_class=None)
    actions = d.table.action.to_numpy()
    assert (actions[20:] == "relabel").sum() == 3 and (actions[20:] == "keep").sum() == 1
    d = decide(s, y, threshold=1.0, action="relabel", proba=proba, max_fraction_per_class=0.5)
    assert (d.table.action.to_numpy()[20:] == "relabel").sum() == 2


def test_reweight_weights_are_one_on_unflagged_rows():
    rng = np.random.default_rng(0)
    s = np.r_[10 ** rng.normal(-2, 0.3, 90), 10 ** rng.normal(1, 0.3, 10)]
    d = decide(s, np.arange(100) % 2, threshold="gmm", action="reweight", random_state=0)
    t = d.table
    assert (t.loc[~t.is_issue, "weight"] == 1.0).all() and (t.loc[~t.is_issue, "action"] == "keep").all()
    assert (t.loc[t.is_issue, "weight"] <= 0.5).all() and (t.loc[t.is_issue, "weight"] > 0).all()

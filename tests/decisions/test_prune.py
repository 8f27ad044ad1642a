"""Pruning with a budget: which rows go, class protection, budget checks, and GEX on digits."""

from __future__ import annotations

import numpy as np
import pytest

from influence_stage.decisions.prune import REASONS, check_budget, prune
from influence_stage.errors import InvalidInputError, InvalidTypeError


def test_fraction_removes_the_lowest_scores():
    s = np.array([5.0, 1.0, 3.0, 0.5, 4.0, 2.0, 6.0, 7.0, 8.0, 9.0])
    r = prune(s, 0.7)
    assert r.n_keep == 7
    assert set(np.flatnonzero(~r.keep)) == {1, 3, 5}  # the three lowest: 1.0, 0.5, 2.0
    assert all(r.reason[i] == "redundant" for i in (1, 3, 5))
    assert r.low_cut == 2.0 and r.high_cut is None
    assert r.kept_fraction == pytest.approx(0.7)


def test_count_and_high_share_take_from_both_ends():
    s = np.arange(20, dtype=float)
    r = prune(s, 12, high_share=0.25)  # 8 removed: 2 from the top, 6 from the bottom
    assert r.n_keep == 12
    assert set(np.flatnonzero(r.reason == "junk")) == {18, 19}
    assert set(np.flatnonzero(r.reason == "redundant")) == set(range(6))
    assert r.high_cut == 18.0 and r.low_cut == 5.0
    assert set(r.reason) <= set(REASONS)


def test_global_mode_never_empties_a_class():
    # class 1 holds the four lowest scores: a global cut of 6 rows would remove all of it
    s = np.array([0.1, 0.2, 0.3, 0.4, 5, 6, 7, 8, 9, 10], dtype=float)
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    r = prune(s, 4, labels=y)
    assert r.n_keep == 4
    assert r.keep[y == 1].sum() == 1
    assert r.keep[3]  # the class keeps the row the ranking would keep first (its highest score)


def test_per_class_keeps_each_class_share():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], [50, 30, 20])
    s = rng.random(100)
    r = prune(s, 0.5, labels=y, per_class=True)
    assert r.n_keep == 50
    assert [int(r.keep[y == c].sum()) for c in range(3)] == [25, 15, 10]
    for c in range(3):  # inside each class, every kept score is above every removed one
        kept, gone = s[(y == c) & r.keep], s[(y == c) & ~r.keep]
        assert kept.min() > gone.max()


def test_per_class_rounding_sums_to_the_budget_and_keeps_tiny_classes():
    y = np.array([0] * 7 + [1] * 7 + [2])
    r = prune(np.linspace(0, 1, 15), 5, labels=y, per_class=True)
    assert r.n_keep == 5
    assert all(r.keep[y == c].sum() >= 1 for c in range(3))


def test_ties_are_broken_by_row_order_and_result_is_deterministic():
    s = np.zeros(10)
    a, b = prune(s, 0.5), prune(s, 0.5)
    assert np.array_equal(a.keep, b.keep)
    assert np.array_equal(np.flatnonzero(~a.keep), np.arange(5))


def test_table_lists_every_row():
    s = np.array([3.0, 1.0, 2.0])
    t = prune(s, 2).table(s, row_ids=["a", "b", "c"])
    assert list(t["row_id"]) == ["a", "b", "c"]
    assert list(t["rank"]) == [2, 0, 1]
    assert list(t["kept"]) == [True, False, True]


def test_keep_all():
    r = prune(np.arange(5.0), 1.0)
    assert r.keep.all() and r.low_cut is None


@pytest.mark.parametrize("budget, match", [
    (0.0, r"fraction must be in \(0, 1\]"), (1.5, r"fraction must be in \(0, 1\]"),
    (-0.1, r"fraction must be in \(0, 1\]"), (float("nan"), r"fraction must be in \(0, 1\]"),
    (0, r"keeps 0 rows, but there are 10"), (11, r"keeps 11 rows, but there are 10"),
])
def test_bad_budget_is_refused(budget, match):
    with pytest.raises(InvalidInputError, match=match):
        prune(np.arange(10.0), budget)


@pytest.mark.parametrize("budget", [True, "0.5", None])
def test_budget_of_wrong_type_is_refused(budget):
    with pytest.raises(InvalidTypeError, match="the budget must be a fraction"):
        check_budget(budget, 10)


def test_other_bad_arguments():
    with pytest.raises(InvalidInputError, match="there are 3 classes"):
        prune(np.arange(6.0), 2, labels=[0, 1, 2, 0, 1, 2])
    with pytest.raises(InvalidInputError, match="per_class=True needs labels"):
        prune(np.arange(6.0), 3, per_class=True)
    with pytest.raises(InvalidInputError, match="labels must have shape"):
        prune(np.arange(6.0), 3, labels=[0, 1])
    with pytest.raises(InvalidInputError, match="high_share must be a number in"):
        prune(np.arange(6.0), 3, high_share=1.5)
    with pytest.raises(InvalidInputError, match="scores must be finite; row 2 has nan"):
        prune(np.array([1.0, 2.0, np.nan]), 2)
    with pytest.raises(InvalidInputError, match="scores must be 1-D"):
        prune(np.zeros((3, 2)), 2)
    with pytest.raises(InvalidInputError, match="cannot prune 0 rows"):
        check_budget(0.5, 0)


def test_gex_lowest_rows_are_the_easy_ones(small_learner):
    """On real scores: the rows pruned first are fitted better at θ* than the rows kept."""
    from influence_stage.config import GEXConfig
    from influence_stage.engine.gex import score_fitted
    from influence_stage.config import FitConfig

    learner, data = small_learner
    res = score_fitted(learner, data, config=GEXConfig(chains=2, cycles=2, ft_lr=0.1, score="gex"),
                       fit_config=FitConfig(epochs=2))
    r = prune(res.gex_influence, 0.7, labels=data.y.numpy())
    assert r.n_keep == 210
    assert res.base_loss[~r.keep].mean() < res.base_loss[r.keep].mean()


# -- the stage's action="prune" ---------------------------------------------------------------------


def test_prune_decisions_table_and_eligible_rows():
    from influence_stage.decisions.prune import prune_decisions
    from influence_stage.decisions.schema import TABLE_COLUMNS

    s = np.arange(10.0)
    y = np.array([0, 1] * 5)
    d = prune_decisions(s, y, 0.6, high_share=0.25)
    assert list(d.table.columns) == list(TABLE_COLUMNS)
    assert (d.table["action"] == "drop").sum() == 4 and d.table["is_issue"].sum() == 4
    assert set(d.table.loc[d.table["action"] == "drop", "row_id"]) == {0, 1, 2, 9}
    assert (d.table["suggested_label"] == d.table["given_label"]).all() and d.threshold.method == "budget"
    only = np.array([True] * 5 + [False] * 5)  # the budget counts among the eligible rows; the others stay
    e = prune_decisions(s, y, 0.6, eligible=only)
    assert (e.table["action"][~only] == "keep").all() and (e.table["action"][only] == "drop").sum() == 2
    with pytest.raises(InvalidInputError, match="given_labels must be integer class codes"):
        prune_decisions(s, y.astype(float), 0.5)


def test_clean_config_prune_fields():
    from influence_stage.stage.steps import CleanConfig

    cfg = CleanConfig(action="prune", prune_keep=0.7, prune_high_share=0.1, prune_per_class=True)
    assert cfg.prune_keep == 0.7 and CleanConfig.model_validate(cfg.model_dump(mode="json")) == cfg
    assert CleanConfig(action="prune", prune_keep=100).prune_keep == 100
    with pytest.raises(InvalidInputError, match="action='prune' needs prune_keep"):
        CleanConfig.from_mapping({"action": "prune"})
    for bad in (0, 1.5, True, "half"):
        with pytest.raises(InvalidInputError, match="prune_keep must be a fraction in"):
            CleanConfig.from_mapping({"action": "prune", "prune_keep": bad})


def test_stage_prunes_with_a_budget(digits_noisy):
    from influence_stage.config import FitConfig, GEXConfig
    from influence_stage.stage.run import run
    from influence_stage.stage.steps import CleanConfig

    X, _, _, y = digits_noisy
    X, y = X[:300], y[:300]
    cfg = CleanConfig(model="mlp", action="prune", prune_keep=0.8, prune_per_class=True,
                      gex=GEXConfig(chains=2, cycles=2, ft_lr=0.1, score="gex"), fit=FitConfig(epochs=5))
    res = run((X, y), cfg)
    table = res.decisions.table
    assert (table["action"] == "keep").sum() == 240 and res.cleaned.num_rows == 240
    counts = np.bincount(y, minlength=10)
    kept = np.bincount(y[table["action"].to_numpy() == "keep"], minlength=10)
    assert np.all(np.abs(kept - 0.8 * counts) <= 1)  # each class keeps its share
    dropped = table["action"].to_numpy() == "drop"
    g = table["gex_influence"].to_numpy()
    for c in range(10):  # inside a class the pruned rows are its lowest self-influence
        assert g[dropped & (y == c)].max() <= g[~dropped & (y == c)].min()


def test_cleaner_and_sampler_prune(digits_noisy):
    from influence_stage.config import FitConfig, GEXConfig
    from influence_stage.api import InfluenceCleaner, InfluenceSampler

    X, _, _, y = digits_noisy
    X, y = X[:300], y[:300]
    gex_cfg, fit_cfg = GEXConfig(chains=2, cycles=2, ft_lr=0.1, score="gex"), FitConfig(epochs=5)
    sampler = InfluenceSampler(action="prune", prune_keep=0.5, sampling_strategy="all", gex_config=gex_cfg,
                               fit_config=fit_cfg, random_state=0)
    X_res, y_res = sampler.fit_resample(X, y)
    assert len(y_res) == 150  # half pruned, past the default output gate of 0.3: the budget is deliberate
    assert set(np.unique(y_res)) == set(np.unique(y))
    cleaner = InfluenceCleaner(model="mlp", action="prune", prune_keep=200, prune_high_share=0.1,
                               gex_config=gex_cfg, fit_config=fit_cfg, random_state=0)
    cleaner.fit(X, y)
    assert (cleaner.issues_["action"] == "keep").sum() == 200
    with pytest.raises(InvalidInputError, match="action='prune' needs prune_keep"):
        InfluenceCleaner(model="mlp", action="prune", gex_config=gex_cfg, fit_config=fit_cfg).fit(X, y)

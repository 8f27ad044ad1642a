"""GEX harm of flagged rows (influence_stage.issues.harm): the closed form, a naive loop reference, the
default reference (unflagged rows), the ranks, find_data_issues' columns, and the error paths."""

from __future__ import annotations

import numpy as np
import pytest

from influence_stage.engine.influence import cross_influence, deviation
from influence_stage.errors import InvalidInputError, InvalidTypeError
from influence_stage.issues import find_data_issues, harm_scores, rank_by_harm


def naive_harm(D_train: np.ndarray, D_ref: np.ndarray) -> np.ndarray:
    n, m = D_train.shape
    out = np.zeros(n)
    for i in range(n):
        total = 0.0
        for j in range(D_ref.shape[0]):
            total += sum(D_train[i, k] * D_ref[j, k] for k in range(m)) / m
        out[i] = -total / D_ref.shape[0]
    return out


def test_closed_form_on_a_hand_built_matrix():
    # two members; the reference loss rises in member 0 and falls in member 1
    D_ref = np.array([[1.0, -1.0], [3.0, -1.0]])  # mean (2, -1)
    D = np.array([[1.0, 0.0],    # moves with the reference: a proponent, harm -(2)/2 = -1
                  [-1.0, 0.0],   # against it: harm +1
                  [0.0, 2.0]])   # harm -(-2)/2 = +1
    np.testing.assert_allclose(harm_scores(D, D_reference=D_ref), [-1.0, 1.0, 1.0])


def test_equals_a_loop_and_the_row_mean_of_the_kernel():
    rng = np.random.default_rng(0)
    L, base = rng.gamma(2.0, size=(30, 5)), rng.gamma(2.0, size=30)
    D = deviation(L, base)
    D_ref = rng.normal(size=(7, 5))
    h = harm_scores(D, D_reference=D_ref)
    np.testing.assert_allclose(h, naive_harm(D, D_ref), rtol=1e-12)
    np.testing.assert_allclose(h, -cross_influence(D, D_ref).mean(axis=1), rtol=1e-12)


def test_default_reference_is_the_unflagged_rows_and_ranks_only_flagged():
    rng = np.random.default_rng(1)
    D = rng.normal(size=(20, 4))
    flagged = np.zeros(20, dtype=bool)
    flagged[[2, 5, 7, 11]] = True
    ranked = rank_by_harm(D, flagged)
    expected = naive_harm(D, D[~flagged])
    np.testing.assert_allclose(ranked["harm"], expected, rtol=1e-12)
    order = np.array([2, 5, 7, 11])[np.argsort(-expected[[2, 5, 7, 11]])]
    assert ranked["harm_rank"].to_numpy()[order].tolist() == [1, 2, 3, 4]
    assert (ranked["harm_rank"].to_numpy()[~flagged] == 0).all()
    held_out = rank_by_harm(D, flagged, D_reference=D[:3])
    np.testing.assert_allclose(held_out["harm"], naive_harm(D, D[:3]), rtol=1e-12)


def test_harm_is_the_same_for_a_repeated_member():
    rng = np.random.default_rng(2)
    D, D_ref = rng.normal(size=(10, 3)), rng.normal(size=(4, 3))
    np.testing.assert_allclose(harm_scores(np.c_[D, D], D_reference=np.c_[D_ref, D_ref]),
                               harm_scores(D, D_reference=D_ref), rtol=1e-12)


def test_find_data_issues_adds_harm_of_the_flagged_rows():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 3)).astype(np.float32)
    X[7] = X[3]
    y = np.arange(60) % 2
    D = rng.normal(size=(60, 6))
    r = find_data_issues(X, y, types=["exact_duplicate"], deviations=D)
    flagged = r.table["is_any_issue"].to_numpy()
    assert flagged.sum() == 2
    np.testing.assert_allclose(r.table["harm"], naive_harm(D, D[~flagged]), rtol=1e-12)
    assert sorted(r.table.loc[flagged, "harm_rank"]) == [1, 2]
    assert r.summary["harm"]["reference"] == "unflagged rows" and r.summary["harm"]["n_ranked"] == 2
    top = int(r.table.index[r.table["harm_rank"] == 1][0])
    assert r.summary["harm"]["top_row_ids"][0] == top
    held = find_data_issues(X, y, types=["exact_duplicate"], deviations=D, reference_deviations=D[:5])
    assert held.summary["harm"]["reference"] == "held-out rows"


def test_errors():
    D = np.ones((4, 2))
    with pytest.raises(InvalidInputError, match="not both"):
        harm_scores(D, D_reference=D, reference=np.ones(4, dtype=bool))
    with pytest.raises(InvalidInputError, match="the reference is empty: every training row is flagged"):
        rank_by_harm(D, np.ones(4, dtype=bool))
    with pytest.raises(InvalidInputError, match=r"D_train must be 2-D \(n_train, n_members\); found shape \(4,\)"):
        harm_scores(np.ones(4))
    with pytest.raises(InvalidInputError, match=r"D_train must be 2-D"):
        rank_by_harm(np.ones(4), np.zeros(4, dtype=bool))
    with pytest.raises(InvalidInputError, match="same number of members"):
        harm_scores(D, D_reference=np.ones((3, 5)))
    with pytest.raises(InvalidInputError, match="flagged must have one entry per row: expected 4, found 3"):
        rank_by_harm(D, np.zeros(3, dtype=bool))
    with pytest.raises(InvalidTypeError, match="flagged must be boolean"):
        rank_by_harm(D, np.full(4, 0.5))
    X = np.random.default_rng(0).normal(size=(12, 2)).astype(np.float32)
    with pytest.raises(InvalidInputError, match=r"one row per row of features \(12\); found shape \(5, 2\)"):
        find_data_issues(X, np.arange(12) % 2, types=["exact_duplicate"], deviations=np.ones((5, 2)))


def test_centred_harm_is_the_covariance_over_members():
    rng = np.random.default_rng(4)
    D, D_ref = rng.normal(size=(12, 5)) + 3.0, rng.normal(size=(6, 5)) + 1.0
    ref = D_ref.mean(axis=0)
    expected = [-sum((D[i, m] - D[i].mean()) * ref[m] for m in range(5)) / 5 for i in range(12)]
    np.testing.assert_allclose(harm_scores(D, D_reference=D_ref, centre=True), expected, rtol=1e-10)
    drift_only = np.full((1, 5), 7.0)  # a row that only follows the members' common drift
    assert harm_scores(np.r_[D, drift_only], D_reference=D_ref, centre=True)[-1] == 0.0
    assert harm_scores(np.r_[D, drift_only], D_reference=D_ref)[-1] == pytest.approx(-7.0 * ref.mean())
    flagged = np.zeros(12, dtype=bool)
    flagged[:3] = True
    np.testing.assert_allclose(rank_by_harm(D, flagged, centre=True)["harm"],
                               harm_scores(D, reference=~flagged, centre=True))

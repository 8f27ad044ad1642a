"""Scores from loss matrices: closed forms, loop references and same-answer checks."""

from __future__ import annotations

import numpy as np
import pytest

from influence_stage import (
    InvalidInputError,
    cross_influence,
    cross_influence_topk,
    deviation,
    mean_test_loss_influence,
    self_influence,
)


def test_self_influence_hand_computed():
    L = np.array([[1.0, 3.0], [0.0, 0.1], [0.5, 0.5]])
    b = np.array([1.0, 0.0, 0.02])
    # row 0: D = [0, 2] → 2; row 1: ref max(0, .05) = .05, D = [-.05, .05] → .0025;
    # row 2: ref .05, D = [.45, .45] → .2025
    np.testing.assert_allclose(self_influence(L, b, tau=0.05), [2.0, 0.0025, 0.2025])
    np.testing.assert_allclose(self_influence(L, b, tau=0.0)[1], (0.0 + 0.01) / 2)


def _loop_self_influence(L, b, tau):
    out = []
    for n in range(L.shape[0]):
        ref = max(b[n], tau)
        out.append(sum((L[n, m] - ref) ** 2 for m in range(L.shape[1])) / L.shape[1])
    return np.array(out)


def _loop_kernel(Dtr, Dte):
    M = Dtr.shape[1]
    return np.array([[sum(Dtr[i, m] * Dte[j, m] for m in range(M)) / M for j in range(len(Dte))]
                     for i in range(len(Dtr))])


def test_matches_loop_reference_on_random_data():
    rng = np.random.default_rng(0)
    L = rng.gamma(1.0, 1.0, size=(40, 7))
    b = rng.gamma(0.5, 0.2, size=40)
    np.testing.assert_allclose(self_influence(L, b, 0.05), _loop_self_influence(L, b, 0.05), rtol=1e-12)
    Dtr = deviation(L, b)
    Lte, bte = rng.gamma(1.0, 1.0, size=(9, 7)), rng.gamma(0.5, 0.2, size=9)
    Dte = deviation(Lte, bte)
    np.testing.assert_allclose(cross_influence(Dtr, Dte), _loop_kernel(Dtr, Dte), rtol=1e-12)
    np.testing.assert_allclose(mean_test_loss_influence(Dtr, Dte), _loop_kernel(Dtr, Dte).mean(1), rtol=1e-10)


def test_trimmed_variant_matches_loop_and_default_is_exact():
    rng = np.random.default_rng(3)
    L, b = rng.gamma(1.0, 1.0, size=(30, 6)), rng.gamma(0.5, 0.2, size=30)
    np.testing.assert_array_equal(self_influence(L, b, trim=0), self_influence(L, b))
    ref = []
    for n in range(30):
        sq = sorted((L[n, m] - max(b[n], 0.05)) ** 2 for m in range(6))
        ref.append(sum(sq[:4]) / 4)
    np.testing.assert_allclose(self_influence(L, b, trim=2), ref, rtol=1e-12)
    with pytest.raises(InvalidInputError, match="trim must be in 0..4"):
        self_influence(L, b, trim=5)


def test_self_influence_is_kernel_diagonal_and_member_order_free():
    rng = np.random.default_rng(1)
    L, b = rng.gamma(1.0, 1.0, size=(25, 6)), rng.gamma(0.5, 0.2, size=25)
    D = deviation(L, b)
    np.testing.assert_allclose(np.diag(cross_influence(D, D)), self_influence(L, b), rtol=1e-12)
    perm = rng.permutation(6)
    np.testing.assert_allclose(self_influence(L[:, perm], b), self_influence(L, b), rtol=1e-12)
    # a duplicated member set (every member twice) leaves the mean unchanged
    np.testing.assert_allclose(self_influence(np.hstack([L, L]), b), self_influence(L, b), rtol=1e-12)


def test_topk_matches_full_kernel_for_any_chunk():
    rng = np.random.default_rng(2)
    Dtr, Dte = rng.normal(size=(50, 8)), rng.normal(size=(13, 8))
    K = cross_influence(Dtr, Dte)
    for chunk in (1, 4, 1024):
        idx, val = cross_influence_topk(Dtr, Dte, 5, test_chunk=chunk)
        np.testing.assert_array_equal(idx, np.argsort(-K.T, axis=1, kind="stable")[:, :5])
        np.testing.assert_allclose(val, np.take_along_axis(K.T, idx, axis=1))
    idx, val = cross_influence_topk(Dtr, Dte, 3, largest=False)
    np.testing.assert_array_equal(idx, np.argsort(K.T, axis=1, kind="stable")[:, :3])


def test_score_errors():
    with pytest.raises(InvalidInputError, match="at least 2 members"):
        self_influence(np.ones((4, 1)), np.zeros(4))
    with pytest.raises(InvalidInputError, match="shape \\(4,\\)"):
        self_influence(np.ones((4, 3)), np.zeros(5))
    with pytest.raises(InvalidInputError, match="same number of members"):
        cross_influence(np.ones((4, 3)), np.ones((2, 2)))
    with pytest.raises(InvalidInputError, match="exceeds"):
        cross_influence_topk(np.ones((4, 3)), np.ones((2, 3)), 9)

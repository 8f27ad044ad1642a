"""The tabular featurizer only centres a near-constant column: its std is tiny next to the other columns'."""

from __future__ import annotations

import datasets
import numpy as np
import pandas as pd
import pytest

from influence_stage.data.featurize.tabular import RELATIVE_CONSTANT_STD, TabularFeaturizer, tabular_scale


def _frame(noise_scale: float, data_scale: float = 0.05) -> datasets.Dataset:
    rng = np.random.default_rng(0)
    n = 200
    df = pd.DataFrame({f"e{j}": rng.normal(0.0, data_scale, n) for j in range(8)})  # embedding-like dimensions
    df["tiny"] = rng.normal(0.0, noise_scale, n)  # ~0 on every row: rounding noise
    df["label"] = rng.integers(0, 2, n)
    return datasets.Dataset.from_pandas(df, preserve_index=False)


@pytest.mark.parametrize("data_scale, noise_scale", [
    (1.0, 1e-12),     # 1e-12-scale noise
    (1e4, 1e-8),      # 1e-12 of the other columns' std, above any absolute cut of 1e-9
    (0.05, 5.8e-9),   # a sentence encoder's dimension that is ~0 on every sentence (float32 rounding)
])
def test_a_column_of_noise_far_below_the_others_is_only_centred(data_scale, noise_scale):
    ds = _frame(noise_scale, data_scale)
    f = TabularFeaturizer([f"e{j}" for j in range(8)] + ["tiny"])
    X = f.fit_transform(ds)
    assert f.scale_[-1] == 1.0  # constant: not divided by its tiny std
    assert np.abs(X[:, -1]).max() < 1e-6  # stays ~0 instead of unit-variance noise
    np.testing.assert_allclose(X[:, :-1].std(axis=0), 1.0, rtol=1e-4)  # the other columns are standardised


def test_a_small_but_real_column_is_still_scaled():
    # 1e-3 of the other columns' std: real data in other units, far above the relative cut
    ds = _frame(0.05 * 1e-3)
    f = TabularFeaturizer([f"e{j}" for j in range(8)] + ["tiny"])
    X = f.fit_transform(ds)
    assert f.scale_[-1] != 1.0
    assert abs(float(X[:, -1].std()) - 1.0) < 1e-3


def test_tabular_scale_rule():
    std = np.array([0.0, 1e-12, 0.5, 1.0, 2.0, 0.5 * RELATIVE_CONSTANT_STD * 1.01])
    scale = tabular_scale(std, np.zeros(std.size))
    # median non-zero std is 0.5: below 0.5 * RELATIVE_CONSTANT_STD is constant, just above it is not
    assert scale.tolist()[:5] == [1.0, 1.0, 0.5, 1.0, 2.0]
    assert scale[5] == std[5]
    # a single feature is compared with itself: never constant by the relative rule
    assert tabular_scale(np.array([1e-7]), np.zeros(1)).tolist() == [1e-7]

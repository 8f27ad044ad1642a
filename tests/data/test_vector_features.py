"""List / array feature columns (embeddings) featurized as one feature vector per row."""

from __future__ import annotations

import datasets
import numpy as np
import pyarrow as pa
import pytest

from influence_stage import InvalidInputError
from influence_stage.data.columns import ColumnRoles
from influence_stage.data.featurize import featurize
from influence_stage.data.featurize.tabular import TabularFeaturizer


def embeddings(n: int = 50, d: int = 6, seed: int = 0) -> tuple[datasets.Dataset, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    E = rng.normal(size=(n, d)).astype(np.float32)
    x = rng.normal(size=n).astype(np.float32) * 3 + 1
    features = datasets.Features({"emb": datasets.List(datasets.Value("float32")),
                                  "fixed": datasets.List(datasets.Value("float32"), length=3),
                                  "x": datasets.Value("float32"), "label": datasets.Value("int64")})
    ds = datasets.Dataset.from_dict({"emb": E.tolist(), "fixed": (E[:, :3] * 2).tolist(), "x": x.tolist(),
                                     "label": (np.arange(n) % 2).tolist()}, features=features)
    return ds, E, x


def standardized(M: np.ndarray) -> np.ndarray:
    M = M.astype(np.float64)
    return ((M - M.mean(0)) / M.std(0)).astype(np.float32)


def test_list_and_fixed_size_columns_give_one_feature_per_position():
    ds, E, x = embeddings()
    roles = ColumnRoles("label", ("emb", "fixed", "x"), "tabular")
    X, fz = featurize(ds, roles, batch_size=16)
    assert X.shape == (50, 6 + 3 + 1) and fz.widths_ == (6, 3, 1) and fz.n_features_out_ == 10
    np.testing.assert_allclose(X, standardized(np.column_stack([E, E[:, :3] * 2, x])), rtol=1e-5, atol=1e-5)
    # a fitted featurizer transforms other rows the same way, batch by batch
    again, same = featurize(ds.select(range(10, 30)), roles, fitted=fz, batch_size=7)
    assert same is fz
    np.testing.assert_array_equal(again, X[10:30])


def test_arrow_fixed_size_list_column():
    rng = np.random.default_rng(1)
    E = rng.normal(size=(20, 4)).astype(np.float32)
    arr = pa.FixedSizeListArray.from_arrays(pa.array(E.ravel()), 4)
    ds = datasets.Dataset(datasets.table.InMemoryTable(pa.table({"emb": arr, "label": pa.array(np.arange(20) % 2)})))
    X, fz = featurize(ds, ColumnRoles("label", ("emb",), "tabular"))
    assert fz.widths_ == (4,)
    np.testing.assert_allclose(X, standardized(E), rtol=1e-5, atol=1e-5)


def test_bad_vectors_name_the_column_and_the_row():
    ds, E, _ = embeddings(n=8)
    rows = ds.to_dict()
    short = dict(rows, emb=rows["emb"][:3] + [rows["emb"][3][:4]] + rows["emb"][4:])
    feats = datasets.Features({k: v for k, v in ds.features.items()})
    roles = ColumnRoles("label", ("emb",), "tabular")
    with pytest.raises(InvalidInputError, match=r"feature column 'emb' has a vector of length 4 at row 3.*length "
                                                r"fitted on \(6\)"):
        featurize(datasets.Dataset.from_dict(short, features=feats), roles)
    fz = TabularFeaturizer(["emb"]).fit(ds)
    flat = datasets.Dataset.from_dict({"emb": [1.0] * 8, "label": [0] * 8})
    with pytest.raises(InvalidInputError, match="holds single numbers; the featurizer was fitted on vectors of 6"):
        fz.transform(flat)


def test_an_embedding_column_is_chosen_as_the_features_and_cleaned_end_to_end():
    """A Hugging Face dataset whose features are one Sequence(float32) column: no feature_columns needed."""
    from influence_stage import FitConfig, GEXConfig, InfluenceCleaner
    from influence_stage.data.columns import resolve_columns

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 8)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    ds = datasets.Dataset.from_dict(
        {"emb": X.tolist(), "label": y.tolist()},
        features=datasets.Features({"emb": datasets.Sequence(datasets.Value("float32")),
                                    "label": datasets.Value("int64")}))
    roles = resolve_columns(ds, "label")
    assert roles.feature_columns == ("emb",) and roles.kind == "tabular"
    cleaner = InfluenceCleaner(gex_config=GEXConfig(chains=2, cycles=1, ft_lr=0.1), fit_config=FitConfig(epochs=5),
                               random_state=0, max_drop_fraction=1.0).fit(ds)
    assert len(cleaner.issues_) == 300 and np.isfinite(cleaner.scores_).all()

"""InfluenceCleaner.fit / transform on every source the README lists: Dataset, DatasetDict (split=),
DataFrame, a local file or folder (re-read by transform), and arrays ((X, y) or X with y)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from influence_stage.api import InfluenceCleaner  # noqa: E402
from influence_stage.config import FitConfig, GEXConfig  # noqa: E402
from influence_stage.errors import InvalidInputError  # noqa: E402
from influence_stage.data.noise import flip_labels  # noqa: E402

N = 200
SMALL_GEX = GEXConfig(chains=2, cycles=2, ft_lr=0.4)
SMALL_FIT = FitConfig(epochs=10)
NAMES = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])


def cleaner(**kwargs) -> InfluenceCleaner:
    kwargs.setdefault("random_state", 0)
    return InfluenceCleaner(gex_config=SMALL_GEX, fit_config=SMALL_FIT, **kwargs)


@pytest.fixture(scope="module")
def xy():
    """200 digits rows, pixel features (x0..x63 once in a table), string labels, 10% flipped (seed 0)."""
    X, y = load_digits(return_X_y=True)
    noisy, _ = flip_labels(y[:N], 0.1, random_state=0)
    return X[:N].astype(np.float64), NAMES[noisy]


@pytest.fixture(scope="module")
def frame(xy):
    X, y = xy
    df = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])
    df["label"] = y
    return df


@pytest.fixture(scope="module")
def reference(frame):
    """The cleaner fitted on the Dataset of ``frame``: every other source must give the same scores."""
    ds = datasets.Dataset.from_pandas(frame, preserve_index=False)
    est = cleaner(action="relabel").fit(ds)
    return est, ds, est.transform(ds)


def test_datasetdict_takes_the_named_split(reference):
    est, ds, out = reference
    dd = datasets.DatasetDict({"train": ds, "test": ds.select(range(20))})
    with pytest.raises(InvalidInputError, match=r"has several splits \['train', 'test'\]; expected split="):
        cleaner().fit(dd)
    with pytest.raises(InvalidInputError, match=r"has no split 'valid'"):
        cleaner(split="valid").fit(dd)
    fitted = cleaner(action="relabel", split="train").fit(dd)
    np.testing.assert_array_equal(fitted.scores_, est.scores_)
    again = fitted.transform(dd)
    assert isinstance(again, datasets.Dataset)
    assert again.column_names == ds.column_names and again["label"] == out["label"]
    single = datasets.DatasetDict({"only": ds})  # one split: taken without split=
    np.testing.assert_array_equal(cleaner(action="relabel").fit(single).scores_, est.scores_)


def _write(frame, target, fmt):
    if fmt == "folder":
        frame.to_parquet(target / "part-0.parquet", index=False)
    elif fmt == "parquet":
        frame.to_parquet(target, index=False)
    elif fmt == "csv":
        frame.to_csv(target, index=False)
    else:
        frame.to_json(target, orient="records", lines=True)


@pytest.mark.parametrize("fmt", ["parquet", "csv", "json", "folder"])
def test_a_path_is_read_at_fit_and_read_again_at_transform(tmp_path, frame, reference, fmt):
    est, ds, out = reference
    target = tmp_path / ("data" if fmt == "folder" else f"train.{fmt}")
    if fmt == "folder":
        target.mkdir()
    _write(frame, target, fmt)
    fitted = cleaner(action="relabel").fit(str(target))
    np.testing.assert_allclose(fitted.scores_, est.scores_, rtol=1e-6)
    cleaned = fitted.transform(target)  # a PathLike works too
    assert isinstance(cleaned, datasets.Dataset)
    assert "row_id" not in cleaned.column_names  # not in the file: not in the output
    assert cleaned["label"] == out["label"] and cleaned.num_rows == out.num_rows
    # the file is read again: a changed label is refused, the row named
    changed = frame.copy()
    changed.loc[7, "label"] = "nine" if changed.loc[7, "label"] != "nine" else "one"
    _write(changed, target, fmt)
    with pytest.raises(InvalidInputError, match=r"1 label\(s\) changed, the first at row 7 \(row_id 7\)"):
        fitted.transform(str(target))


def test_a_missing_path_is_named(tmp_path):
    with pytest.raises(InvalidInputError, match="no file or folder at"):
        cleaner().fit(str(tmp_path / "nothing.parquet"))


def test_arrays_in_arrays_out(xy, reference):
    est, _, _ = reference
    X, y = xy
    as_tuple = cleaner(action="relabel")
    X_res, y_res = as_tuple.fit_transform((X, y))
    np.testing.assert_array_equal(as_tuple.scores_, est.scores_)  # same rows, same seeds: same scores
    action = as_tuple.issues_["action"].to_numpy()
    keep = np.flatnonzero(action != "drop")
    np.testing.assert_array_equal(X_res, X[keep])
    assert y_res.dtype.kind == "U"
    relabeled = action[keep] == "relabel"
    assert relabeled.sum() > 0
    np.testing.assert_array_equal(y_res[~relabeled], y[keep][~relabeled])
    suggested = as_tuple.classes_[as_tuple.issues_["suggested_label"].to_numpy(dtype=np.int64, na_value=-1)[keep][relabeled]]
    np.testing.assert_array_equal(y_res[relabeled], suggested)
    assert (y_res[relabeled] != y[keep][relabeled]).all()
    # transform((X, y)) repeats it; X and y apart give X_res (the transformer contract: fit(X, y).transform(X))
    again = as_tuple.transform((X, y))
    np.testing.assert_array_equal(again[0], X_res)
    np.testing.assert_array_equal(again[1], y_res)
    np.testing.assert_array_equal(as_tuple.transform(X), X_res)
    np.testing.assert_array_equal(as_tuple.transform(X, y), X_res)
    apart = cleaner(action="relabel")
    np.testing.assert_array_equal(apart.fit_transform(X, y), X_res)
    assert apart.n_features_in_ == 64
    other = X.copy()
    other[3, 5] += 1
    with pytest.raises(InvalidInputError, match=r"values of column\(s\) \['x5'\] differ"):
        as_tuple.transform(other)


def test_a_frame_gives_a_frame(frame, reference):
    est, _, out = reference
    fitted = cleaner(action="relabel")
    cleaned = fitted.fit_transform(frame)
    np.testing.assert_array_equal(fitted.scores_, est.scores_)
    assert isinstance(cleaned, pd.DataFrame) and list(cleaned["label"]) == out["label"]

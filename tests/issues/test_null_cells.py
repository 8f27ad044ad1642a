"""Missing feature cells are null issues, not failures: the tabular featurizer fills them with their column's
median and records them, the estimators report their rows under ``null``; infinity, a column with no value and
missing labels stay errors."""

from __future__ import annotations

import os

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from influence_stage.api import InfluenceCleaner  # noqa: E402
from influence_stage.api.inputs import check_array_X  # noqa: E402
from influence_stage.config import FitConfig, GEXConfig  # noqa: E402
from influence_stage.data.featurize.tabular import TabularFeaturizer  # noqa: E402
from influence_stage.errors import InvalidInputError  # noqa: E402

NAN_ROWS = [4, 17, 33]


# ----------------------------------------------------------------------------------------------------
# the featurizer
# ----------------------------------------------------------------------------------------------------


def test_missing_cells_are_filled_with_the_column_median_and_recorded():
    a = np.array([1.0, np.nan, 3.0, 10.0, 2.0, np.nan])
    b = [5.0, 6.0, None, 8.0, 9.0, 7.0]  # a null cell
    ds = datasets.Dataset.from_dict({"a": a, "b": b, "flag": [True, None, False, True, True, False]})
    for batch_size in (2, 4096):  # the medians are over every row, whatever the batches
        fz = TabularFeaturizer(["a", "b", "flag"])
        X = fz.fit_transform(ds, batch_size=batch_size)
        np.testing.assert_allclose(fz.fill_[:2], [np.median([1.0, 3.0, 10.0, 2.0]), 7.0])
        assert fz.fill_[2] == np.median([1.0, 0.0, 1.0, 1.0, 0.0])
        expected = np.where(np.isnan(a), 2.5, a)
        np.testing.assert_allclose(fz.mean_[0], expected.mean())  # the stats are those of the filled values
        np.testing.assert_allclose(X[:, 0], (expected - expected.mean()) / expected.std(), rtol=1e-5)
        assert np.isfinite(X).all()
        assert fz.missing_.tolist() == [[False] * 3, [True, False, True], [False, True, False], [False] * 3,
                                        [False] * 3, [True, False, False]]
        assert fz.n_missing_fit_.tolist() == [2, 1, 1]
    # new data: a fitted column's median; a column complete at fit: its fitted mean (0 once standardised)
    complete = datasets.Dataset.from_dict({"a": [1.0, 2.0, 3.0, 4.0], "b": [1.0, 1.0, 2.0, 2.0]})
    fz2 = TabularFeaturizer(["a", "b"]).fit(complete)
    out = fz2.transform(datasets.Dataset.from_dict({"a": [np.nan, 4.0], "b": [None, 2.0]}))
    np.testing.assert_allclose(out[0], [0.0, 0.0], atol=1e-6)
    assert fz2.missing_.tolist() == [[True, True], [False, False]]
    fz2.transform(complete)
    assert fz2.missing_ is None  # the mask is of the data last transformed


def test_missing_vectors_and_entries_are_filled_per_position():
    E = np.arange(24, dtype=np.float64).reshape(6, 4)
    rows = E.tolist()
    rows[1] = None  # a missing vector
    rows[3][2] = float("nan")  # a missing entry
    ds = datasets.Dataset.from_dict({"emb": rows})
    fz = TabularFeaturizer(["emb"])
    X = fz.fit_transform(ds)
    assert fz.widths_ == (4,) and np.isfinite(X).all()
    present = np.delete(E, 1, axis=0)
    np.testing.assert_allclose(fz.fill_[[0, 1, 3]], np.median(present, axis=0)[[0, 1, 3]])
    assert fz.fill_[2] == np.median(np.delete(present[:, 2], 2))  # row 3's entry left out too
    assert np.flatnonzero(fz.missing_.any(axis=1)).tolist() == [1, 3]
    assert fz.missing_[1].all() and fz.missing_[3].tolist() == [False, False, True, False]


@pytest.mark.parametrize("data, match", [
    ({"a": [1.0, np.inf, 2.0], "b": [1.0, 2.0, 3.0]}, r"feature column 'a' has an infinite value \(inf\) at row 1"),
    ({"a": [1.0, 2.0, 3.0], "b": [np.nan, None, np.nan]}, r"feature column 'b' has no value on any row"),
    ({"emb": [[1.0, np.nan], [2.0, np.nan], [3.0, np.nan]]},
     r"feature column 'emb' \(vector position 1\) has no value on any row"),
    ({"emb": [[1.0, 2.0], [2.0, -np.inf], [3.0, 1.0]]}, r"feature column 'emb' has a vector with an infinite value "
                                                         r"at row 1"),
])
def test_infinity_and_a_column_with_no_value_stay_errors(data, match):
    ds = datasets.Dataset.from_dict(data)
    with pytest.raises(InvalidInputError, match=match):
        TabularFeaturizer(list(data)).fit(ds)


def test_the_estimator_input_check_allows_nan_in_features_only():
    X = np.array([[1.0, np.nan], [2.0, 3.0], [3.0, 4.0]])
    assert np.isnan(check_array_X(X)).sum() == 1
    with pytest.raises(InvalidInputError, match=r"infinity"):
        check_array_X(np.array([[1.0, np.inf], [2.0, 3.0]]))
    with pytest.raises(InvalidInputError, match=r"X column 'b' has no value \(every cell is NaN"):
        check_array_X(pd.DataFrame({"a": [1.0, 2.0], "b": [np.nan, np.nan]}))
    with pytest.raises(InvalidInputError, match=r"NaN"):  # images: no NaN pixel
        check_array_X(np.full((2, 3, 3), np.nan))


# ----------------------------------------------------------------------------------------------------
# the estimator: fit with NaN cells, the null issue type flags exactly their rows
# ----------------------------------------------------------------------------------------------------


def _frame(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    k = np.arange(n) % 3
    frame = pd.DataFrame(rng.normal(size=(n, 3)) + 3 * np.eye(3)[k], columns=["a", "b", "c"])
    frame["label"] = k
    frame.loc[NAN_ROWS[0], "a"] = np.nan
    frame.loc[NAN_ROWS[1], "c"] = np.nan
    frame.loc[NAN_ROWS[2], ["a", "b"]] = np.nan
    return frame


def _cleaner() -> InfluenceCleaner:
    return InfluenceCleaner(gex_config=GEXConfig(chains=2, cycles=1, ft_lr=0.1), fit_config=FitConfig(epochs=5),
                            random_state=0, issue_types=["null", "exact_duplicate", "outlier"])


@pytest.fixture(scope="module")
def fitted():
    frame = _frame()
    return _cleaner().fit(frame), frame


def test_a_frame_with_nan_cells_is_cleaned_and_its_rows_are_null_issues(fitted):
    cleaner, frame = fitted
    null = cleaner.get_issues("null")
    assert sorted(null["row_id"].tolist()) == NAN_ROWS
    assert np.flatnonzero(cleaner.issues_["is_null_issue"].to_numpy()).tolist() == NAN_ROWS
    score = cleaner.issues_["null_score"].to_numpy()
    np.testing.assert_allclose(score[NAN_ROWS], [1 / 3, 1 / 3, 2 / 3])  # the share of the row's cells missing
    assert (np.delete(score, NAN_ROWS) == 0).all()
    summary = cleaner.issue_type_summary()
    assert summary.loc["null", "n_issues"] == len(NAN_ROWS)
    assert cleaner.issue_report_summary_["types"]["null"]["n_missing_cells"] == 4
    out = cleaner.transform(frame)  # the output keeps the user's cells as they were
    assert int(out[["a", "b", "c"]].isna().sum().sum()) == 4


def test_missing_labels_stay_errors():
    frame = _frame().astype({"label": "float64"})
    frame.loc[5, "label"] = np.nan
    with pytest.raises(InvalidInputError, match=r"label"):
        _cleaner().fit(frame)


def test_numpy_x_with_nan_cells_is_cleaned_and_its_rows_are_null_issues():
    frame = _frame()
    cleaner = _cleaner().fit(frame[["a", "b", "c"]].to_numpy(), frame["label"].to_numpy())
    assert sorted(cleaner.get_issues("null")["row_id"].tolist()) == NAN_ROWS


def test_the_plan_reports_nan_rows_as_null_issues():
    """What the CLI's flow runs: the plan's own issues step (its summary and the published manifest)."""
    from influence_stage.config import CleanConfig
    from influence_stage.stage.run import run_pipeline

    config = CleanConfig.from_mapping({"model": "mlp", "issue_types": ["null", "exact_duplicate"],
                                       "fit": {"epochs": 5}, "gex": {"chains": 2, "cycles": 1, "ft_lr": 0.1}})
    result = run_pipeline(_frame(), config)
    assert len(result.decisions.table) == 60  # runs end to end
    assert np.flatnonzero(result.issues.table["is_null_issue"].to_numpy()).tolist() == NAN_ROWS
    assert result.summary["issue types"]["null"] == len(NAN_ROWS)

"""A cleanlab user's views of a fitted InfluenceCleaner: class names in issues_, get_issues,
issue_summary, report, and save / load without pickle."""

from __future__ import annotations

import os

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from influence_stage.api import HTMLReport, InfluenceCleaner, InfluenceSampler  # noqa: E402
from influence_stage.config import FitConfig, GEXConfig  # noqa: E402
from influence_stage.errors import InvalidInputError  # noqa: E402
from influence_stage.decisions import TABLE_COLUMNS  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PX = [f"px_{j}" for j in range(64)]
N = 400
SMALL_GEX = GEXConfig(chains=2, cycles=2, ft_lr=0.4)
SMALL_FIT = FitConfig(epochs=20)


def small_cleaner(**kwargs) -> InfluenceCleaner:
    return InfluenceCleaner(feature_columns=PX, gex_config=SMALL_GEX, fit_config=SMALL_FIT, random_state=0, **kwargs)


@pytest.fixture(scope="module")
def small() -> datasets.Dataset:
    """400 demo rows (ClassLabel "0".."9", 10% flipped), without their row_id column."""
    ds = datasets.Dataset.from_parquet(str(ROOT / "data" / "digits" / "train.parquet"))
    return ds.select(range(N)).remove_columns(["row_id", "image"])


@pytest.fixture(scope="module")
def fitted(small):
    cleaner = small_cleaner(action="relabel")
    return cleaner, cleaner.fit_transform(small)


def test_issues_carry_class_names_and_the_decisions_table_keeps_its_columns(fitted):
    cleaner, _ = fitted
    issues = cleaner.issues_
    head = list(TABLE_COLUMNS) + ["given_label_name", "suggested_label_name"]
    assert list(issues.columns[:len(head)]) == head  # then the issue types' columns (tests/issues/test_issue_wiring.py)
    assert list(cleaner.decisions_.table.columns) == list(TABLE_COLUMNS)
    names = np.asarray(cleaner.classes_)
    np.testing.assert_array_equal(issues["given_label_name"].to_numpy(), names[issues["given_label"].to_numpy()])
    # an empty suggestion (no confident other label) has no name
    assert issues["suggested_label_name"].tolist() == [None if pd.isna(c) else names[int(c)]
                                                       for c in issues["suggested_label"]]
    relabeled = issues["action"] == "relabel"
    assert relabeled.sum() > 0
    assert (issues.loc[relabeled, "given_label_name"] != issues.loc[relabeled, "suggested_label_name"]).all()


def test_get_issues_filters(fitted):
    cleaner, _ = fitted
    issues = cleaner.issues_
    pd.testing.assert_frame_equal(cleaner.get_issues(), issues)
    flagged = cleaner.get_issues("issues")
    assert len(flagged) == int(issues["is_issue"].sum()) > 0 and flagged["is_issue"].all()
    assert (np.diff(flagged["score"].to_numpy()) <= 0).all()  # most suspicious first
    assert set(flagged.index) == set(np.flatnonzero(issues["is_issue"].to_numpy()))
    threes = cleaner.get_issues(label="3")
    assert len(threes) == int((issues["given_label"] == 3).sum()) and (threes["given_label_name"] == "3").all()
    relabels = cleaner.get_issues("issues", action="relabel")
    assert len(relabels) == int((issues["action"] == "relabel").sum()) and (relabels["action"] == "relabel").all()
    both = cleaner.get_issues("issues", label="3", action="drop")
    expected = issues[(issues["given_label"] == 3) & (issues["action"] == "drop") & issues["is_issue"]]
    assert list(both.index) == list(expected.sort_values("score", ascending=False, kind="stable").index)
    view = cleaner.get_issues()
    view.loc[0, "score"] = -1.0  # a copy: the fitted table is untouched
    assert cleaner.issues_.loc[0, "score"] != -1.0
    with pytest.raises(InvalidInputError, match=r"kind must be None, 'all', 'issues' or an issue type, one of \['label', .*found 'flagged'"):
        cleaner.get_issues("flagged")
    with pytest.raises(InvalidInputError, match=r"label 'eleven' is not a class; classes: \['0', '1'"):
        cleaner.get_issues(label="eleven")
    with pytest.raises(InvalidInputError, match=r"action must be one of \['keep', 'drop', 'relabel', 'reweight'\]"):
        cleaner.get_issues(action="delete")


def _naive_confident_joint(y: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Confident learning's joint, one row at a time: thresholds = per-class mean self-confidence; a
    row counts at (given, j) for the most probable class j whose probability reaches its threshold."""
    K = P.shape[1]
    t = np.array([P[y == k, k].mean() for k in range(K)])
    joint = np.zeros((K, K), dtype=np.int64)
    for i in range(len(y)):
        above = [j for j in range(K) if P[i, j] >= t[j] - 1e-6]
        if above:
            joint[y[i], max(above, key=lambda j: P[i, j])] += 1
    return joint


def test_issue_summary_per_class(fitted):
    cleaner, _ = fitted
    summary = cleaner.issue_summary()
    assert list(summary.index) == [str(c) for c in cleaner.classes_] + ["all"]
    assert list(summary.columns) == ["n_rows", "n_flagged", "keep", "drop", "relabel", "reweight", "relabeled_in",
                                     "n_after", "flagged_share", "estimated_noise_share"]
    issues = cleaner.issues_
    for k, name in enumerate(cleaner.classes_):
        rows = issues["given_label"] == k
        assert summary.loc[name, "n_rows"] == rows.sum()
        assert summary.loc[name, "n_flagged"] == issues.loc[rows, "is_issue"].sum()
        assert summary.loc[name, "drop"] == (issues.loc[rows, "action"] == "drop").sum()
    assert summary.loc["all", "n_rows"] == N
    np.testing.assert_allclose(summary["flagged_share"], summary["n_flagged"] / summary["n_rows"])
    # the noise share: per class, the rows cleanlab's find_label_issues(filter_by="both") flags on the run's
    # out-of-sample probabilities (the default estimate_count), over the class's rows
    from cleanlab.filter import find_label_issues

    from influence_stage.decisions.estimate import class_noise_share

    y = issues["given_label"].to_numpy()
    P = cleaner.oos_proba_.astype(np.float64)
    wrong = find_label_issues(y, P, filter_by="both")
    np.testing.assert_allclose(summary["estimated_noise_share"].to_numpy()[:-1],
                               np.bincount(y[wrong], minlength=10) / np.bincount(y))
    # ... the per-class part of the estimated noise rate, which counts the same rows
    assert cleaner.result_.auxiliary.reliable
    assert summary.loc["all", "estimated_noise_share"] == pytest.approx(cleaner.estimated_noise_rate_, abs=1e-12)
    assert summary.loc["all", "estimated_noise_share"] == pytest.approx(wrong.sum() / N, abs=1e-12)
    # under the confident joint's count: the share against a row-by-row confident joint
    joint = _naive_confident_joint(y, P)
    np.testing.assert_allclose(class_noise_share(y, P, 10, "confident_joint"), (joint.sum(1) - np.diag(joint)) / np.bincount(y))
    with pytest.raises(InvalidInputError, match="count must be one of"):
        class_noise_share(y, P, 10, "calibrated")


def test_report_renders_in_a_notebook_or_writes_a_file(tmp_path, fitted):
    cleaner, _ = fitted
    shown = cleaner.report()
    assert isinstance(shown, HTMLReport)
    html = shown._repr_html_()
    assert html.startswith("<!DOCTYPE html>") and "issues per class" in html.lower()
    written = cleaner.report(tmp_path / "out" / "report.html", title="digits")
    assert written == (tmp_path / "out" / "report.html").resolve()
    text = written.read_text("utf-8")
    assert "<title>digits</title>" in text
    # scikit-learn's own notebook repr of the estimator is untouched
    assert "InfluenceCleaner" in cleaner._repr_html_() and "InfluenceCleaner(" in repr(cleaner)


def test_save_load_round_trip(tmp_path, small, fitted):
    cleaner, out = fitted
    folder = cleaner.save(tmp_path / "saved")
    assert sorted(p.name for p in folder.iterdir()) == ["arrays.safetensors", "config.json", "decisions.parquet",
                                                        "issues.parquet", "manifest.json", "members.safetensors",
                                                        "scores.parquet"]
    assert json.loads((folder / "config.json").read_text())["gex"]["chains"] == 2
    loaded = InfluenceCleaner.load(folder, dataset=small)
    assert loaded.learner_ is None and loaded.get_params()["action"] == "relabel"
    np.testing.assert_array_equal(loaded.scores_, cleaner.scores_)
    np.testing.assert_array_equal(loaded.gex_influence_, cleaner.gex_influence_)
    pd.testing.assert_frame_equal(loaded.issues_, cleaner.issues_)
    pd.testing.assert_frame_equal(loaded.decisions_.table, cleaner.decisions_.table)
    np.testing.assert_array_equal(loaded.decisions_.threshold.p_issue, cleaner.decisions_.threshold.p_issue)
    assert loaded.config_ == cleaner.config_ and loaded.dataset_fingerprint_ == cleaner.dataset_fingerprint_
    assert loaded.threshold_ == cleaner.threshold_ and loaded.estimated_noise_rate_ == cleaner.estimated_noise_rate_
    assert len(loaded.members_) == len(cleaner.members_) == 4
    for a, b in zip(loaded.members_, cleaner.members_):
        assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    np.testing.assert_array_equal(loaded.oos_proba_, cleaner.oos_proba_)
    pd.testing.assert_frame_equal(loaded.issue_summary(), cleaner.issue_summary())
    pd.testing.assert_frame_equal(loaded.issue_type_summary(), cleaner.issue_type_summary())
    again = loaded.transform(small)
    assert again.column_names == out.column_names and again["label"] == out["label"]
    assert again["px_9"] == out["px_9"]
    # the fingerprint is checked: another dataset is refused, at load and at transform
    other = small.select(range(300))
    with pytest.raises(InvalidInputError, match="it has 300 rows, the fitted dataset had 400"):
        loaded.transform(other)
    with pytest.raises(InvalidInputError, match="it has 300 rows, the fitted dataset had 400"):
        InfluenceCleaner.load(folder, dataset=other)
    # files are checked
    with open(folder / "scores.parquet", "ab") as fh:
        fh.write(b"x")
    with pytest.raises(InvalidInputError, match=r"scores.parquet changed since it was saved"):
        InfluenceCleaner.load(folder)
    cleaner.save(folder)  # a fresh save replaces the files
    InfluenceCleaner.load(folder)
    (folder / "members.safetensors").unlink()
    with pytest.raises(InvalidInputError, match=r"lacks members.safetensors"):
        InfluenceCleaner.load(folder)
    with pytest.raises(InvalidInputError, match=r"manifest.json is missing"):
        InfluenceCleaner.load(tmp_path / "nothing")


def test_save_load_round_trip_on_arrays(tmp_path):
    X, y = load_digits(return_X_y=True)
    X, y = X[:200], np.array(["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"])[y[:200]]
    cleaner = InfluenceCleaner(gex_config=SMALL_GEX, fit_config=FitConfig(epochs=5), random_state=1).fit(X, y)
    loaded = InfluenceCleaner.load(cleaner.save(tmp_path / "arrays"))
    np.testing.assert_array_equal(loaded.transform(X), cleaner.transform(X))
    X_res, y_res = loaded.transform((X, y))
    np.testing.assert_array_equal(y_res, cleaner.transform((X, y))[1])
    assert loaded.n_features_in_ == 64
    with pytest.raises(InvalidInputError, match="X has 3 features, but InfluenceCleaner is expecting 64"):
        loaded.transform(X[:, :3])


def test_sampler_issues_carry_class_values():
    X, y = load_digits(return_X_y=True)
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    s = InfluenceSampler(gex_config=SMALL_GEX, fit_config=FitConfig(epochs=5), random_state=0)
    s.fit_resample(X[:200], names[y[:200]])
    np.testing.assert_array_equal(s.issues_["given_label_name"].to_numpy(), names[y[:200]])
    assert s.issues_["suggested_label_name"].tolist() == [None if pd.isna(c) else s.classes_[int(c)]
                                                          for c in s.issues_["suggested_label"]]


def test_save_load_round_trip_on_a_frame_with_categorical_labels(tmp_path):
    X, y = load_digits(return_X_y=True)
    df = pd.DataFrame(X[:300], columns=[f"p{j}" for j in range(64)], index=np.arange(500, 800))
    df["label"] = pd.Categorical(np.array(list("abcdefghij"))[y[:300]])
    df.loc[[503, 510, 520, 600], "label"] = "a"  # a few wrong labels to relabel
    cleaner = InfluenceCleaner(action="relabel", gex_config=SMALL_GEX, fit_config=FitConfig(epochs=10), random_state=0)
    out = cleaner.fit_transform(df)
    loaded = InfluenceCleaner.load(cleaner.save(tmp_path / "frame"), dataset=df)
    again = loaded.transform(df)
    pd.testing.assert_frame_equal(again, out)  # index, categorical dtype and relabels kept
    assert isinstance(again["label"].dtype, pd.CategoricalDtype)
    retyped = df.assign(p3=df["p3"].astype("float32"))
    with pytest.raises(InvalidInputError, match=r"columns \['p3'\] changed feature type"):
        loaded.transform(retyped)

"""Issue types beside label issues (influence_stage.issues): planted issues found, the Datalab-backed
types equal to cleanlab's own numbers, the registry entries, the default policy, and every error path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from influence_stage.decisions import decide
from influence_stage.decisions.issues import ISSUE_REGISTRY
from influence_stage.decisions.issues import find_issues as run_issue_types
from influence_stage.errors import InvalidInputError, InvalidTypeError
from influence_stage.issues import DATA_ISSUE_TYPES, apply_issue_policy, exact_duplicate_of, find_data_issues
from influence_stage.issues.datalab import fill_missing, run_datalab

N, D, K = 240, 6, 3


def planted(seed: int = 0):
    """Three Gaussian classes, 6 features; rows 0-3 far outliers, rows 10/11 copies of row 5 (row 12 a copy
    of row 6 with another label), NaN in rows 20 (one cell) and 21 (two cells)."""
    rng = np.random.default_rng(seed)
    y = np.arange(N) % K
    centres = rng.normal(scale=4.0, size=(K, D))
    X = (centres[y] + rng.normal(size=(N, D))).astype(np.float32)
    X[:4] += 40.0
    X[10] = X[5]
    X[11] = X[5]
    y[[10, 11]] = y[5]
    X[12] = X[6]
    y[12] = (y[6] + 1) % K
    X[20, 2] = np.nan
    X[21, [0, 4]] = np.nan
    proba = np.full((N, K), 0.1)
    proba[np.arange(N), y] = 0.8
    return X, y, proba


@pytest.fixture(scope="module")
def report():
    X, y, proba = planted()
    return find_data_issues(X, y, proba)


def test_every_type_is_registered_with_its_columns(report):
    assert set(DATA_ISSUE_TYPES) <= set(ISSUE_REGISTRY.names())
    for name in DATA_ISSUE_TYPES:
        assert f"{name}_score" in report.table and f"is_{name}_issue" in report.table
        assert report.table[f"is_{name}_issue"].dtype == bool
        assert report.summary["types"][name]["n_issues"] == int(report.table[f"is_{name}_issue"].sum())
    assert report.table["row_id"].tolist() == list(range(N))


def test_exact_duplicates_all_found_and_first_copy_named(report):
    t = report.table
    assert t.index[t["is_exact_duplicate_issue"]].tolist() == [5, 6, 10, 11, 12]  # recall 1.0, no false hit
    assert t["exact_duplicate_of"].tolist()[10:13] == [5, 5, 6]
    assert (t["exact_duplicate_of"].drop([10, 11, 12]) == -1).all()
    np.testing.assert_array_equal(t.loc[[5, 6, 10, 11, 12], "exact_duplicate_score"], [0.5, 0.5, 1.0, 1.0, 1.0])
    s = report.summary["types"]["exact_duplicate"]
    assert (s["n_groups"], s["n_extra_copies"], s["n_groups_with_conflicting_labels"]) == (2, 3, 1)
    assert t.loc[[5, 10, 11, 6, 12], "is_near_duplicate_issue"].all()  # Datalab's near duplicates include them


def test_exact_duplicate_of_is_bitwise():
    X = np.array([[1.0, np.nan], [1.0, np.nan], [0.0, 1.0], [-0.0, 1.0], [0.0, 1.0]], dtype=np.float32)
    assert exact_duplicate_of(X).tolist() == [-1, 0, -1, -1, 2]


def test_planted_outliers_rank_first(report):
    planted_rows = np.zeros(N, dtype=bool)
    planted_rows[:4] = True
    assert roc_auc_score(planted_rows, report.table["outlier_score"]) == 1.0
    assert report.table.loc[:3, "is_outlier_issue"].all()


def test_nulls_reported_not_refused(report):
    t = report.table
    assert t.index[t["is_null_issue"]].tolist() == [20, 21]
    np.testing.assert_allclose(t.loc[[20, 21, 22], "null_score"], [1 / D, 2 / D, 0.0])
    s = report.summary["types"]["null"]
    assert (s["n_missing_cells"], s["n_rows_all_missing"], s["columns_with_missing"]) == (3, 0, [0, 2, 4])


def test_fill_missing_uses_the_column_median():
    X = np.array([[1.0, np.nan], [3.0, np.nan], [np.nan, np.nan], [2.0, np.nan]], dtype=np.float32)
    np.testing.assert_array_equal(fill_missing(X), [[1, 0], [3, 0], [2, 0], [2, 0]])
    clean = np.ones((2, 2), dtype=np.float32)
    assert fill_missing(clean) is clean


def test_datalab_types_equal_cleanlab_run_directly(report):
    from cleanlab import Datalab

    X, y, proba = planted()
    lab = Datalab(data={"label": y}, label_name="label", verbosity=0)
    lab.find_issues(features=fill_missing(X), pred_probs=proba,
                    issue_types={"outlier": {}, "near_duplicate": {}, "non_iid": {}})
    for name in ("outlier", "near_duplicate", "non_iid"):
        np.testing.assert_allclose(report.table[f"{name}_score"], 1.0 - lab.issues[f"{name}_score"], atol=1e-12)
        np.testing.assert_array_equal(report.table[f"is_{name}_issue"], lab.issues[f"is_{name}_issue"])


def test_each_type_alone_equals_the_shared_run(report):
    X, y, proba = planted()
    table = pd.DataFrame({"row_id": np.arange(N), "given_label": y})
    alone, summary = run_issue_types(table, ["outlier", "null", "class_imbalance", "underperforming_group"],
                                     features=X, oos_proba=proba)
    for name in ("outlier", "null", "class_imbalance", "underperforming_group"):
        np.testing.assert_allclose(alone[f"{name}_score"], report.table[f"{name}_score"], atol=1e-12)
        np.testing.assert_array_equal(alone[f"is_{name}_issue"], report.table[f"is_{name}_issue"])
    assert summary["null"]["n_issues"] == 2


def test_class_imbalance_flags_the_rare_class():
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(200, int), np.ones(200, int), np.full(4, 2)]
    X = rng.normal(size=(y.size, 4)).astype(np.float32) + y[:, None] * 3
    r = find_data_issues(X, y, types=["class_imbalance"])
    assert r.table["is_class_imbalance_issue"].tolist() == (y == 2).tolist()
    assert r.summary["types"]["class_imbalance"]["rarest_class"] == 2
    balanced = find_data_issues(X[:400], y[:400], types=["class_imbalance"])
    assert balanced.summary["types"]["class_imbalance"]["n_issues"] == 0


def test_non_iid_sees_an_ordered_drift_and_not_a_shuffle():
    rng = np.random.default_rng(2)
    n = 300
    drift = np.linspace(0, 8, n)[:, None]
    X = (rng.normal(size=(n, 4)) + drift).astype(np.float32)
    y = (np.arange(n) % 2).astype(int)
    ordered = find_data_issues(X, y, types=["non_iid"]).summary["types"]["non_iid"]
    shuffled = find_data_issues(X[rng.permutation(n)], y, types=["non_iid"]).summary["types"]["non_iid"]
    assert ordered["ordered"] is True and ordered["p_value"] < 0.05
    assert shuffled["ordered"] is False and shuffled["p_value"] > 0.05


def test_default_types_without_proba_leave_out_underperforming_group():
    X, y, _ = planted()
    r = find_data_issues(X, y, types=None)
    assert "underperforming_group" not in r.types
    assert r.types == tuple(t for t in DATA_ISSUE_TYPES if t != "underperforming_group")


def test_options_reach_the_manager():
    X, y, proba = planted()
    k3 = find_data_issues(X, y, proba, types=["outlier"], options={"outlier": {"k": 3}})
    k10 = find_data_issues(X, y, proba, types=["outlier"])
    assert not np.allclose(k3.table["outlier_score"], k10.table["outlier_score"])


def test_decisions_table_gives_row_ids_and_the_label_flag():
    X, y, proba = planted()
    scores = np.zeros(N)
    scores[100] = 10.0
    d = decide(scores, y, threshold=5.0, action="none", row_ids=np.arange(N) + 1000)
    r = find_data_issues(X, y, proba, decisions=d.table, types=["exact_duplicate", "label"])
    assert r.table["row_id"].tolist() == list(range(1000, 1000 + N))
    assert "score" not in r.table  # the label type's columns are the decisions table's own
    assert r.table["is_any_issue"].sum() == 6 and r.table.loc[100, "is_any_issue"]
    assert r.summary["types"]["label"]["n_issues"] == 1


def test_policy_drops_later_copies_and_reports_the_rest(report):
    scores = np.zeros(N)
    scores[[11, 30]] = 10.0
    d = decide(scores, planted()[1], threshold=5.0, action="drop")
    out = apply_issue_policy(d.table, report)
    assert out.index[out["action"] == "drop"].tolist() == [10, 11, 12, 30]
    assert out.loc[[10, 12], "issue_action"].tolist() == ["exact_duplicate"] * 2
    assert out.loc[11, "issue_action"] == "" and out.loc[5, "action"] == "keep"  # already dropped; first copy kept
    assert (out.loc[:3, "action"] == "keep").all()  # outliers are reported, not acted on
    assert d.table["action"].tolist().count("drop") == 2  # the input is not modified
    both = apply_issue_policy(d.table, report.table, drop=["exact_duplicate", "outlier"])
    outliers = set(np.flatnonzero(report.table["is_outlier_issue"])) - {10, 11, 12, 30}
    assert {0, 1, 2, 3} <= outliers
    assert set(both.index[both["issue_action"] == "outlier"]) == outliers


def test_policy_errors(report):
    d = decide(np.zeros(N), planted()[1], threshold=5.0, action="none")
    with pytest.raises(InvalidInputError, match="'missing_type' is not in the issues table"):
        apply_issue_policy(d.table, report, drop=["missing_type"])
    with pytest.raises(InvalidInputError, match="same rows in the same order"):
        apply_issue_policy(d.table.iloc[:10], report)
    with pytest.raises(InvalidTypeError, match="decisions must be the decisions table"):
        apply_issue_policy(report.table, report)


def test_input_errors():
    X, y, proba = planted()
    bad = X.copy()
    bad[3, 1] = np.inf
    with pytest.raises(InvalidInputError, match="infinite value at row 3, feature 1"):
        find_data_issues(bad, y)
    with pytest.raises(InvalidTypeError, match="features must be numeric"):
        find_data_issues(np.array([["a"]] * 3), y[:3])
    with pytest.raises(InvalidInputError, match="features must be"):
        find_data_issues(X[0], y)
    with pytest.raises(InvalidInputError, match="one entry per row of features: 240 rows, 239 labels"):
        find_data_issues(X, y[:-1])
    with pytest.raises(InvalidInputError, match=r"proba must have shape \(240, K\)"):
        find_data_issues(X, y, proba[:, :2])
    with pytest.raises(InvalidInputError, match="summing to 1"):
        find_data_issues(X, y, proba * 2)
    with pytest.raises(InvalidTypeError, match=r"Fix: types=\['outlier'\]"):
        find_data_issues(X, y, types="outlier")
    with pytest.raises(InvalidInputError, match="unknown issue type 'typo'; valid issue types: 'label'"):
        find_data_issues(X, y, types=["typo"])
    with pytest.raises(InvalidInputError, match=r"options given for issue type\(s\) \['null'\] that are not run"):
        find_data_issues(X, y, types=["outlier"], options={"null": {}})
    with pytest.raises(InvalidInputError, match="'outlier' does not take options"):
        find_data_issues(X, y, types=["outlier"], options={"outlier": {"kk": 3}})
    with pytest.raises(InvalidInputError, match="'exact_duplicate' takes no options"):
        find_data_issues(X, y, types=["exact_duplicate"], options={"exact_duplicate": {"k": 3}})
    with pytest.raises(InvalidInputError, match="need out-of-sample probabilities"):
        find_data_issues(X, y, types=["underperforming_group"])
    with pytest.raises(InvalidInputError, match="decisions must be the decisions table with one row per row"):
        find_data_issues(X, y, decisions=pd.DataFrame({"row_id": [1]}))


def test_a_type_alone_checks_its_options():
    X, y, _ = planted()
    table = pd.DataFrame({"row_id": np.arange(N), "given_label": y})
    with pytest.raises(InvalidInputError, match="'outlier' takes options \\['k'\\]; found \\['kk'\\]"):
        run_issue_types(table, ["outlier"], features=X, issue_options={"outlier": {"kk": 1}})
    with pytest.raises(InvalidInputError, match="needs the given labels"):
        run_issue_types(table[["row_id"]], ["exact_duplicate", "class_imbalance"], features=X)


def test_a_failing_datalab_manager_is_an_error_with_what_it_said():
    X = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    with pytest.raises(InvalidInputError, match=r"Datalab found no result for issue type\(s\) \['outlier'\]"):
        run_datalab(X, np.array([0, 1, 0, 1]), None, {"outlier": {"k": 10}})

"""The issue types against cleanlab's Datalab on the same features: planted duplicates, outliers, NaN
cells and an ordered drift.

Digits (standardised 64 pixels, 1797 rows) with, per seed: 30 exact copies of random rows appended,
30 rows replaced by far outliers (a random row plus Gaussian noise of 6 standard deviations), 20 rows
with 1-3 NaN cells, and out-of-sample probabilities from a 5-fold logistic regression. The stage's
``find_data_issues`` and ``Datalab.find_issues`` (default issue types, the same features and
probabilities) each run once per input; Datalab's kNN managers cannot take NaN, so it gets the
features with NaN filled by column medians (what the stage gives its kNN types) and, separately,
the raw features, to show what it does with them. The ordered-drift input is the same rows sorted
by their mean pixel (a drift in row order) against the same rows shuffled.

Run: ``python benchmarks/issue_types.py``. Writes ``results/issue_types.json`` and the
``issue_types`` section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict

from common import digits_features, machine, write_json, write_section
from influence_stage.issues import find_data_issues
from influence_stage.issues.datalab import fill_missing

N_COPIES, N_OUTLIERS, N_NAN = 30, 30, 20


def planted(seed: int):
    rng = np.random.default_rng(seed)
    X, y = digits_features()
    n = len(y)
    src = rng.choice(n, N_COPIES, replace=False)
    X = np.r_[X, X[src]].astype(np.float32)
    y = np.r_[y, y[src]]
    copies = np.zeros(len(y), dtype=bool)
    copies[n:] = True
    copies[src] = True  # the originals are in a duplicate group too
    out_rows = rng.choice(np.setdiff1d(np.arange(n), src), N_OUTLIERS, replace=False)
    X[out_rows] = X[rng.choice(n, N_OUTLIERS)] + rng.normal(scale=6.0, size=(N_OUTLIERS, X.shape[1]))
    outliers = np.zeros(len(y), dtype=bool)
    outliers[out_rows] = True
    nan_rows = rng.choice(np.setdiff1d(np.arange(n), np.r_[src, out_rows]), N_NAN, replace=False)
    for r in nan_rows:
        X[r, rng.choice(X.shape[1], rng.integers(1, 4), replace=False)] = np.nan
    nulls = np.zeros(len(y), dtype=bool)
    nulls[nan_rows] = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proba = cross_val_predict(LogisticRegression(max_iter=500), fill_missing(X), y, cv=5, method="predict_proba")
    return X, y, proba, {"exact_duplicate": copies, "outlier": outliers, "null": nulls}


def datalab(X: np.ndarray, y: np.ndarray, proba: np.ndarray):
    from cleanlab import Datalab

    lab = Datalab(data={"label": y}, label_name="label", verbosity=0)
    out = io.StringIO()
    t = time.perf_counter()
    with contextlib.redirect_stdout(out), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lab.find_issues(features=X, pred_probs=proba)
    return lab, time.perf_counter() - t, " ".join(out.getvalue().split())[:300]


def run_seed(seed: int) -> dict:
    X, y, proba, truth = planted(seed)
    t = time.perf_counter()
    stage = find_data_issues(X, y, proba)
    stage_s = time.perf_counter() - t
    lab, lab_s, _ = datalab(fill_missing(X), y, proba)
    raw, raw_s, raw_said = datalab(X, y, proba)
    t_issues, l_issues = stage.table, lab.get_issues()
    res = {"seed": seed, "n_rows": int(len(y)), "stage_s": stage_s, "datalab_s": lab_s,
           "stage_datalab_call_s": stage.summary["datalab_seconds"]}
    copies = truth["exact_duplicate"]
    res["exact_duplicate_recall"] = float(t_issues["is_exact_duplicate_issue"][copies].mean())
    res["exact_duplicate_false_flags"] = int(t_issues["is_exact_duplicate_issue"][~copies].sum())
    res["datalab_near_duplicate_recall_of_copies"] = float(l_issues["is_near_duplicate_issue"][copies].mean())
    res["stage_near_duplicate_recall_of_copies"] = float(t_issues["is_near_duplicate_issue"][copies].mean())
    out = truth["outlier"]
    res["outlier_auroc_stage"] = float(roc_auc_score(out, t_issues["outlier_score"]))
    res["outlier_auroc_datalab"] = float(roc_auc_score(out, 1.0 - l_issues["outlier_score"]))
    res["outlier_recall_stage"] = float(t_issues["is_outlier_issue"][out].mean())
    res["outlier_recall_datalab"] = float(l_issues["is_outlier_issue"][out].mean())
    nulls = truth["null"]
    res["null_recall_stage"] = float(t_issues["is_null_issue"][nulls].mean())
    res["null_false_flags_stage"] = int(t_issues["is_null_issue"][~nulls].sum())
    res["null_recall_datalab"] = float(l_issues["is_null_issue"][nulls].mean())
    raw_types = sorted(set(raw.issue_summary["issue_type"]))
    res["datalab_raw_nan_types_found"] = raw_types
    res["datalab_raw_nan_said"] = raw_said
    res["datalab_raw_s"] = raw_s
    # ordered drift: the rows sorted by mean pixel vs shuffled (NaN-free rows only)
    keep = ~nulls
    Xk, yk, pk = X[keep], y[keep], proba[keep]
    order = np.argsort(np.nanmean(Xk, axis=1), kind="stable")
    shuffled = np.random.default_rng(seed).permutation(len(yk))
    for name, idx in (("ordered", order), ("shuffled", shuffled)):
        t = time.perf_counter()
        s = find_data_issues(Xk[idx], yk[idx], pk[idx], types=["non_iid"]).summary["types"]["non_iid"]
        stage_t = time.perf_counter() - t
        lab_o, lab_t, _ = datalab(Xk[idx], yk[idx], pk[idx])
        res[f"non_iid_{name}"] = {"stage_p": s["p_value"], "datalab_p": float(lab_o.get_info("non_iid")["p-value"]),
                                  "stage_s": stage_t}
    res["per_type_counts"] = {k: v["n_issues"] for k, v in stage.summary["types"].items()}
    return res


def markdown(runs: list[dict]) -> str:
    def mean(key):
        return float(np.mean([r[key] for r in runs]))

    seeds = ", ".join(str(r["seed"]) for r in runs)
    lines = ["## Issue types against Datalab (`benchmarks/issue_types.py`)", "",
             f"Digits (1797 rows + {N_COPIES} exact copies, {N_OUTLIERS} rows replaced by far outliers, {N_NAN} rows "
             "with 1-3 NaN cells), 5-fold logistic-regression probabilities; the stage's `find_data_issues` and "
             "cleanlab's `Datalab.find_issues` (default types) on the same features (NaN filled by column medians "
             f"for Datalab, as the stage does for its kNN types). Seeds {seeds}; means over seeds; times after a "
             "warm-up call of each (imports excluded); Datalab's default types include `label` and the stage's "
             "`exact_duplicate`, not Datalab's.", "",
             "| measure | stage | Datalab |", "|---|---|---|",
             f"| exact-duplicate recall (copies and originals) | {mean('exact_duplicate_recall'):.3f} "
             f"({mean('exact_duplicate_false_flags'):.1f} false flags) | near_duplicate flags "
             f"{mean('datalab_near_duplicate_recall_of_copies'):.3f} of them |",
             f"| outlier AUROC | {mean('outlier_auroc_stage'):.4f} | {mean('outlier_auroc_datalab'):.4f} |",
             f"| outlier recall (flag) | {mean('outlier_recall_stage'):.3f} | {mean('outlier_recall_datalab'):.3f} |",
             f"| rows with NaN cells flagged | {mean('null_recall_stage'):.3f} "
             f"({mean('null_false_flags_stage'):.1f} false flags) | {mean('null_recall_datalab'):.3f} "
             "(flags only all-NaN rows) |",
             f"| non-iid p-value, rows sorted by mean pixel | "
             f"{np.mean([r['non_iid_ordered']['stage_p'] for r in runs]):.3f} | "
             f"{np.mean([r['non_iid_ordered']['datalab_p'] for r in runs]):.3f} |",
             f"| non-iid p-value, rows shuffled | {np.mean([r['non_iid_shuffled']['stage_p'] for r in runs]):.3f} | "
             f"{np.mean([r['non_iid_shuffled']['datalab_p'] for r in runs]):.3f} |",
             f"| seconds, every type once | {mean('stage_s'):.2f} (Datalab call {mean('stage_datalab_call_s'):.2f}) | "
             f"{mean('datalab_s'):.2f} |", "",
             "Datalab on the raw features (NaN cells kept) finds only the types "
             f"{runs[0]['datalab_raw_nan_types_found']}; its kNN managers fail on NaN and it prints: "
             f"\"{runs[0]['datalab_raw_nan_said'][:160]}...\". The stage reports those rows as null issues and runs "
             "the kNN types on the filled features.", "",
             f"Machine: {machine()}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    X, y, proba, _ = planted(0)  # warm-up: imports and first-call costs out of both timings
    find_data_issues(X[:200], y[:200], proba[:200])
    datalab(fill_missing(X[:200]), y[:200], proba[:200])
    runs = [run_seed(s) for s in args.seeds]
    text = markdown(runs)
    print(text)
    if not args.no_write:
        write_json("issue_types", {"machine": machine(), "seeds": args.seeds, "runs": runs})
        write_section("issue_types", text)
    return runs


if __name__ == "__main__":
    main()

"""Does dropping the flagged rows GEX rates most harmful help a retrained model more than dropping the same
number of rows by the label-issue score alone?

For each setting (digits with 20% uniform noise; the synthetic 10-class set with 20% uniform noise) and
seed (0, 1, 2 by default; the seed is the split, the noise draws, the stage's seeds and the retrained
models' seeds):

1. a stratified split: 25% test (clean labels, never flipped), 15% validation (the held-out reference;
   its labels flipped at the same rate, as a real held-out set would be), 60% training (flipped);
2. the stage scores the training rows (``gex`` with the MLP and the default configuration) and flags
   label issues with the default threshold (``decide``); ``c`` = the number flagged;
3. harm of every training row (``influence_stage.issues.harm``): ``-mean_test_loss_influence`` on the
   validation rows' deviations under the same members (``harm (held-out)``), or on the unflagged
   training rows (``harm (unflagged)``, no held-out set needed: ``find_data_issues``' default);
4. at budgets ``k`` = c/4, c/2 and c rows, the dropped rows are: the top ``k`` by the label-issue
   score (``label score``); the ``k`` flagged rows with the highest harm (``harm (held-out)``,
   ``harm (unflagged)``, and the same with each row's deviations centred over the members,
   ``harm_scores(..., centre=True)``); the top ``k`` of all rows by the held-out centred harm
   (``harm, all rows``); and, as the setting cross-influence is made for, harm on the validation rows
   with their true labels (``harm (trusted held-out)``, plain and centred: a small trusted set);
   ``k`` random flagged rows (``random flagged``, the control). At ``k = c`` the flagged-row methods
   all drop the flagged rows, so they equal ``label score`` by construction;
5. the stage's MLP (the downstream benchmark's training loop, ``FitConfig`` recipe) and
   ``LogisticRegression(max_iter=2000)`` are trained from scratch on the rows kept and scored on the
   clean test split; also the precision of the dropped rows (share that are truly flipped).

Run: ``python benchmarks/harm.py`` (``--quick`` for a smoke run). Writes ``results/harm.json`` and the
``harm`` section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from common import digits_features, machine, synthetic_features, write_json, write_section
from downstream import logreg_accuracy, mlp_accuracy, train_mlp
from influence_stage import FitConfig, GEXConfig
from influence_stage.data.noise import flip_labels
from influence_stage.decisions import DEFAULT_THRESHOLD, decide
from influence_stage.decisions.estimate import confident_joint_count
from influence_stage.engine.gex import gex
from influence_stage.engine.influence import deviation
from influence_stage.engine.learner import TensorData
from influence_stage.engine.losses import loss_matrix
from influence_stage.issues.harm import harm_scores

SETTINGS = {"digits uniform 20%": (digits_features, 0.2), "synthetic uniform 20%": (synthetic_features, 0.2)}
HARMS = ("harm (held-out)", "harm (unflagged)", "harm (held-out, centred)", "harm (unflagged, centred)",
         "harm (trusted held-out)", "harm (trusted held-out, centred)")
METHODS = ("label score", *HARMS, "harm, all rows", "random flagged")
BUDGETS = (0.25, 0.5, 1.0)
LEARNERS = ("mlp", "logreg")
TEST_SIZE, VAL_SIZE = 0.25, 0.15
QUICK_ROWS, QUICK_EPOCHS = 400, 3


def top(values: np.ndarray, k: int, among: np.ndarray | None = None) -> np.ndarray:
    """Indices of the ``k`` largest ``values`` (ties by position), optionally only among a mask."""
    idx = np.arange(values.size) if among is None else np.flatnonzero(among)
    return np.sort(idx[np.argsort(-values[idx], kind="stable")[:k]])


def run_setting(name: str, seed: int, *, fit: FitConfig, gex_config: GEXConfig, quick: bool) -> dict:
    t0 = time.perf_counter()
    features, rate = SETTINGS[name]
    X, y = features()
    if quick:
        X, y = X[:QUICK_ROWS], y[:QUICK_ROWS]
    k_classes = int(y.max()) + 1
    idx = np.arange(len(y))
    rest, test = train_test_split(idx, test_size=TEST_SIZE, stratify=y, random_state=seed)
    train, val = train_test_split(rest, test_size=VAL_SIZE / (1 - TEST_SIZE), stratify=y[rest], random_state=seed)
    y_train, flipped = flip_labels(y[train], rate, n_classes=k_classes, random_state=seed)
    y_val, _ = flip_labels(y[val], rate, n_classes=k_classes, random_state=seed + 1000)
    X_train, X_val, X_test, y_test = X[train], X[val], X[test], y[test]

    result = gex("mlp", X_train, y_train, config=gex_config, fit_config=fit, n_classes=k_classes)
    D_train = deviation(result.loss_matrix, result.base_loss, gex_config.tau)
    val_data = TensorData.from_arrays(X_val, y_val)
    L_val = loss_matrix(result.learner, result.members, val_data, batch_size=gex_config.eval_batch_size)
    D_val = deviation(L_val, result.learner.per_sample_loss(val_data), gex_config.tau)
    trusted = TensorData.from_arrays(X_val, y[val])  # the same rows with their true labels: a trusted set
    D_trusted = deviation(loss_matrix(result.learner, result.members, trusted, batch_size=gex_config.eval_batch_size),
                          result.learner.per_sample_loss(trusted), gex_config.tau)
    decisions = decide(result.scores, y_train, threshold=DEFAULT_THRESHOLD, proba=result.oos_proba, action="none",
                       n_estimated=confident_joint_count(y_train, result.oos_proba))
    flagged = decisions.table["is_issue"].to_numpy(dtype=bool)
    c = int(flagged.sum())
    harm = {"harm (held-out)": harm_scores(D_train, D_reference=D_val),
            "harm (unflagged)": harm_scores(D_train, reference=~flagged),
            "harm (held-out, centred)": harm_scores(D_train, D_reference=D_val, centre=True),
            "harm (unflagged, centred)": harm_scores(D_train, reference=~flagged, centre=True),
            "harm (trusted held-out)": harm_scores(D_train, D_reference=D_trusted),
            "harm (trusted held-out, centred)": harm_scores(D_train, D_reference=D_trusted, centre=True)}
    score = np.asarray(result.scores, dtype=np.float64)
    score_s = time.perf_counter() - t0

    # among the flagged rows, how well each ranking puts the truly flipped first
    ranking = {}
    if 0 < c and 0 < flipped[flagged].sum() < c:
        for label, values in (("label score", score), *harm.items()):
            ranking[label] = float(roc_auc_score(flipped[flagged], values[flagged]))

    rng = np.random.default_rng(seed)
    cache: dict[tuple[int, ...], dict[str, float]] = {}

    def evaluate(drop: np.ndarray) -> dict[str, float]:
        key = tuple(int(i) for i in drop)
        if key not in cache:
            keep = np.setdiff1d(np.arange(len(y_train)), drop)
            module = train_mlp(X_train[keep], y_train[keep], k_classes, seed=seed, fit=fit)
            cache[key] = {"mlp": mlp_accuracy(module, X_test, y_test),
                          "logreg": logreg_accuracy(X_train[keep], y_train[keep], None, X_test, y_test)}
        return cache[key]

    cells = {"noisy": {**evaluate(np.array([], dtype=np.int64)), "k": 0, "precision": None}}
    for share in BUDGETS:
        k = max(int(round(share * c)), 1)
        chosen = {"label score": top(score, k), **{m: top(h, k, flagged) for m, h in harm.items()},
                  "harm, all rows": top(harm["harm (held-out, centred)"], k),
                  "random flagged": np.sort(rng.choice(np.flatnonzero(flagged), size=min(k, c), replace=False))}
        for method, drop in chosen.items():
            cells[f"{method} @ {share:g}c"] = {**evaluate(drop), "k": int(drop.size),
                                              "precision": float(flipped[drop].mean()) if drop.size else None}
    return {"setting": name, "seed": seed, "n_train": int(len(train)), "n_val": int(len(val)),
            "n_test": int(len(test)), "n_flipped": int(flipped.sum()), "n_flagged": c,
            "flagged_precision": float(flipped[flagged].mean()) if c else None,
            "auroc_among_flagged": ranking, "cells": cells, "score_name": result.score_name,
            "score_s": score_s, "wall_s": time.perf_counter() - t0, "n_retrains": len(cache)}


def summarize(runs: list[dict]) -> dict:
    out: dict = {}
    for name in SETTINGS:
        mine = [r for r in runs if r["setting"] == name]
        if not mine:
            continue
        cells = {}
        for key in mine[0]["cells"]:
            row = {}
            for learner in LEARNERS:
                vals = np.array([r["cells"][key][learner] for r in mine])
                row[learner] = (float(vals.mean()), float(vals.std()))
            precisions = [r["cells"][key]["precision"] for r in mine if r["cells"][key]["precision"] is not None]
            row["precision"] = float(np.mean(precisions)) if precisions else None
            row["k"] = float(np.mean([r["cells"][key]["k"] for r in mine]))
            cells[key] = row
        auroc = {}
        for label in ("label score", *HARMS):
            vals = [r["auroc_among_flagged"][label] for r in mine if label in r["auroc_among_flagged"]]
            auroc[label] = float(np.mean(vals)) if vals else None
        out[name] = {"cells": cells, "auroc_among_flagged": auroc,
                     "n_flagged": float(np.mean([r["n_flagged"] for r in mine])),
                     "n_flipped": float(np.mean([r["n_flipped"] for r in mine])),
                     "flagged_precision": float(np.mean([r["flagged_precision"] or 0.0 for r in mine]))}
    return out


def markdown(summary: dict, runs: list[dict], *, seeds: list[int], quick: bool) -> str:
    lines = ["## Harm ranking downstream (`benchmarks/harm.py`)", ""]
    if quick:
        lines += [f"**Quick run** ({QUICK_ROWS} rows, {QUICK_EPOCHS} epochs): a smoke test, not a measurement.", ""]
    lines += [
        "Question: among the rows the stage flags as label issues, does dropping the ones GEX cross-influence "
        "rates most harmful to a held-out loss help a retrained model more than dropping the same number by the "
        "label-issue score alone? Split per seed: 25% clean test, 15% validation (labels flipped at the same "
        "rate: the held-out reference), 60% training (flipped). The stage (default configuration, MLP) scores "
        "the training rows and flags `c` of them with the default threshold; `harm` = "
        "`-mean_test_loss_influence(D_train, D_ref)` with `D_ref` the validation rows' deviations under the same "
        "members (held-out) or the unflagged training rows (unflagged); `centred`: each training row's "
        "deviations centred over the members first (the covariance, without the members' common drift); "
        "`harm, all rows`: the top `k` of all training rows by the held-out centred harm; `trusted held-out`: "
        "the validation rows with their true labels as the reference (a small trusted set). "
        "Budgets `k` = c/4, c/2, c rows; at `k = c` "
        "the flagged-row methods drop exactly the flagged rows. Models trained from scratch on the rows kept, "
        f"scored on the clean test split. Seeds {', '.join(map(str, seeds))}; cells: test accuracy mean ± std "
        "over seeds (precision of the dropped rows = share truly flipped).", ""]
    for name, s in summary.items():
        lines += [f"### {name}", "",
                  f"Flipped {s['n_flipped']:.0f} training rows; flagged {s['n_flagged']:.0f} "
                  f"(precision {s['flagged_precision']:.3f}). AUROC for telling the truly flipped among the flagged "
                  "rows: " + ", ".join(f"{k} {v:.3f}" for k, v in s["auroc_among_flagged"].items() if v is not None)
                  + ".", "",
                  "| dropped | k | MLP | LogisticRegression | precision |", "|---|---|---|---|---|"]
        for key, row in s["cells"].items():
            prec = "" if row["precision"] is None else f"{row['precision']:.3f}"
            lines.append(f"| {key} | {row['k']:.0f} | {row['mlp'][0]:.4f} ± {row['mlp'][1]:.4f} | "
                         f"{row['logreg'][0]:.4f} ± {row['logreg'][1]:.4f} | {prec} |")
        lines.append("")
    lines += ["### Verdict", ""]
    counts = {"better": 0, "worse": 0, "within the seed spread": 0}
    best_auroc = {name: max((v, k) for k, v in s["auroc_among_flagged"].items() if v is not None)
                  for name, s in summary.items()}
    for name, s in summary.items():
        for share in BUDGETS[:-1]:
            base = s["cells"][f"label score @ {share:g}c"]
            for method in (*HARMS, "harm, all rows"):
                for learner in LEARNERS:
                    diff = s["cells"][f"{method} @ {share:g}c"][learner][0] - base[learner][0]
                    spread = max(s["cells"][f"{method} @ {share:g}c"][learner][1], base[learner][1])
                    counts["within the seed spread" if abs(diff) <= spread else "better" if diff > 0 else "worse"] += 1
    lines += [f"Over {sum(counts.values())} comparisons (setting × budget c/4, c/2 × harm variant × learner) "
              f"against dropping the same number of rows by the label-issue score: harm is better beyond the seed "
              f"spread in {counts['better']}, worse in {counts['worse']}, within the spread in "
              f"{counts['within the seed spread']}. Among the flagged rows the best ranking of the truly flipped "
              "ones is " + "; ".join(f"{name}: {k} (AUROC {v:.3f})" for name, (v, k) in best_auroc.items()) + ".", ""]
    for name, s in summary.items():
        for share in BUDGETS[:-1]:
            base = s["cells"][f"label score @ {share:g}c"]
            for method in (*HARMS, "harm, all rows"):
                cell = s["cells"][f"{method} @ {share:g}c"]
                parts = []
                for learner in LEARNERS:
                    diff = cell[learner][0] - base[learner][0]
                    spread = max(cell[learner][1], base[learner][1])
                    tag = "within the seed spread" if abs(diff) <= spread else ("better" if diff > 0 else "worse")
                    parts.append(f"{learner} {diff:+.4f} ({tag})")
                lines.append(f"- {name}, k = {share:g}c, {method} vs label score: " + "; ".join(parts) + ".")
    total = sum(r["wall_s"] for r in runs)
    lines += ["", f"Wall time {total:.0f} s over {len(runs)} runs (one torch thread)."]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS} rows, {QUICK_EPOCHS} epochs, 2x2 members")
    p.add_argument("--no-write", action="store_true", help="print only; write neither JSON nor RESULTS.md")
    p.add_argument("--from-json", action="store_true", help="rewrite the RESULTS.md section from results/harm.json")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.from_json:
        import json

        from common import RESULTS

        payload = json.loads((RESULTS / "harm.json").read_text())
        text = markdown(payload["summary"], payload["runs"], seeds=payload["seeds"], quick=payload["quick"])
        write_section("harm", text)
        return payload["summary"]
    torch.set_num_threads(1)
    logging.getLogger("influence_stage").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    fit_base, gex_base = (FitConfig(epochs=QUICK_EPOCHS), GEXConfig(chains=2, cycles=2)) if args.quick else (
        FitConfig(), GEXConfig())
    runs = []
    for seed in args.seeds:
        for name in args.settings:
            fit = fit_base.model_copy(update={"seed": seed})
            gex_config = gex_base.model_copy(update={"seed": seed})
            r = run_setting(name, seed, fit=fit, gex_config=gex_config, quick=args.quick)
            runs.append(r)
            print(f"done: seed {seed}, {name} ({r['wall_s']:.0f} s, {r['n_retrains']} retrains), flagged "
                  f"{r['n_flagged']}, auroc among flagged {r['auroc_among_flagged']}", flush=True)
    summary = summarize(runs)
    text = markdown(summary, runs, seeds=args.seeds, quick=args.quick)
    print(text)
    if not args.no_write:
        write_json("harm", {"machine": machine(), "seeds": args.seeds, "settings": args.settings, "quick": args.quick,
                            "fit": fit_base.model_dump(), "gex": gex_base.model_dump(), "runs": runs,
                            "summary": summary})
        write_section("harm", text)
    return summary


if __name__ == "__main__":
    main()

"""Bring your own scikit-learn model: GEX through ``SklearnLearner`` against cleanlab on the same estimator.

Digits with 10% uniform label noise (seeds 0, 1, 2: the noise draw and the members). The user's
model is ``SGDClassifier(loss="log_loss")`` (and ``MLPClassifier(solver="sgd")``), trained on the
noisy labels; the stage continues SGD from it (``partial_fit``) for the members. cleanlab gets
5-fold cross-validated probabilities of a fresh copy of the same estimator (``cross_val_predict``).
Writes ``results/sklearn_model.json`` and ``results/sklearn_model.md`` (with the targets table: default AP ≥
cleanlab AP per estimator, on the seed means).

Run: ``python benchmarks/sklearn_model.py [--seeds 0 1 2]``.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import cross_val_predict
from sklearn.neural_network import MLPClassifier

from common import check, detection_metrics, digits_features, machine, targets_markdown, write_json, write_markdown
from influence_stage import FitConfig, GEXConfig, SklearnLearner, gex
from influence_stage.data.noise import flip_labels

ESTIMATORS = {
    "SGDClassifier(log_loss)": (lambda seed: SGDClassifier(loss="log_loss", alpha=1e-4, max_iter=1000, tol=None,
                                                          random_state=seed), 0.01),
    "MLPClassifier(sgd, 64)": (lambda seed: MLPClassifier(hidden_layer_sizes=(64,), solver="sgd",
                                                          learning_rate_init=0.05, momentum=0.9, max_iter=300,
                                                          random_state=seed), 1.0),
}


def run(name: str, seed: int) -> dict:
    X, y = digits_features()
    y_noisy, flipped = flip_labels(y, 0.1, random_state=seed)
    make, ft_lr = ESTIMATORS[name]
    t = time.perf_counter()
    estimator = make(seed).fit(X, y_noisy)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    result = gex(SklearnLearner(estimator, batch_size=128), X, y_noisy,
                 config=GEXConfig(chains=4, cycles=2, ft_lr=ft_lr, seed=seed), fit_config=FitConfig(epochs=20))
    gex_s = time.perf_counter() - t
    t = time.perf_counter()
    proba = cross_val_predict(clone(make(seed)), X, y_noisy, cv=5, method="predict_proba")
    cl_scores = 1.0 - get_label_quality_scores(y_noisy, proba)
    cl_flags = find_label_issues(y_noisy, proba)
    cl_s = time.perf_counter() - t
    ours = detection_metrics(flipped, result.scores)
    exact = detection_metrics(flipped, result.gex_influence)
    theirs = detection_metrics(flipped, cl_scores)
    cl_f1 = 2 * (cl_flags & flipped).sum() / max(cl_flags.sum() + flipped.sum(), 1)
    return {"estimator": name, "seed": seed, "ft_lr": ft_lr, "score": result.score_name, "members": len(result.members),
            "default": ours, "exact_gex": exact, "cleanlab": theirs, "cleanlab_f1": float(cl_f1),
            "fit_s": fit_s, "gex_s": gex_s, "cleanlab_s": cl_s}


def markdown(rows: list[dict]) -> str:
    lines = ["## Bring your own scikit-learn model (`benchmarks/sklearn_model.py`)", "",
             "Digits, 10% uniform noise; the user's estimator trained on the noisy labels; GEX through "
             "`SklearnLearner` (4 chains × 2 cycles of `partial_fit` steps from it; the stage did not train it, so "
             "the default ranking falls back to `gex+oos`); cleanlab on 5-fold cross-validated probabilities of "
             "the same estimator. AP of the scores against the planted flips, mean ± std over seeds "
             f"{sorted({r['seed'] for r in rows})}.", "",
             "| estimator | default AP (gex+oos) | exact GEX AP | cleanlab AP | GEX s | cleanlab s |", "|---|---|---|---|---|---|"]
    for name in ESTIMATORS:
        sel = [r for r in rows if r["estimator"] == name]
        if not sel:
            continue

        def ms(key: str, sub: str = "ap") -> str:
            v = np.array([r[key][sub] if sub else r[key] for r in sel])
            return f"{v.mean():.3f} ± {v.std():.3f}"

        secs = lambda k: f"{np.mean([r[k] for r in sel]):.1f}"  # noqa: E731
        lines.append(f"| {name} | {ms('default')} | {ms('exact_gex')} | {ms('cleanlab')} | {secs('gex_s')} | "
                     f"{secs('cleanlab_s')} |")
    wins = sum(r["default"]["ap"] >= r["cleanlab"]["ap"] for r in rows)
    lines += ["", f"Default AP ≥ cleanlab AP on {wins} of {len(rows)} (estimator, seed) pairs.", "",
              f"Machine: {machine()}.", ""]
    checks = []
    for name in ESTIMATORS:
        sel = [r for r in rows if r["estimator"] == name]
        if not sel:
            continue
        met = sum(r["default"]["ap"] >= r["cleanlab"]["ap"] for r in sel)
        aps = [r["default"]["ap"] - r["cleanlab"]["ap"] for r in sel]
        checks.append(check(name, "default AP ≥ cleanlab-5-fold AP (same estimator)",
                            float(np.mean([r["default"]["ap"] for r in sel])),
                            float(np.mean([r["cleanlab"]["ap"] for r in sel])),
                            note=f"met on {met} of {len(sel)} seeds; per-seed difference {min(aps):+.3f} to {max(aps):+.3f}"))
    return "\n".join(lines) + "\n" + targets_markdown(checks, "Targets (seed means)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for seed in args.seeds:
            for name in ESTIMATORS:
                rows.append(run(name, seed))
                r = rows[-1]
                print(f"{name} seed {seed}: default AP {r['default']['ap']:.3f}, exact {r['exact_gex']['ap']:.3f}, "
                      f"cleanlab {r['cleanlab']['ap']:.3f} ({r['gex_s']:.1f} s vs {r['cleanlab_s']:.1f} s)", flush=True)
    write_json("sklearn_model", {"rows": rows, "machine": machine()})
    write_markdown("sklearn_model", markdown(rows))


if __name__ == "__main__":
    main()

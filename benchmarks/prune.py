"""Pruning, the GEX paper's experiment: remove a share p of clean training rows by a score, retrain from
scratch, and measure clean test accuracy.

For each setting (digits, the synthetic 10-class set, 4000 movie-review sentences; all with their
clean labels) and seed (0, 1, 2: the split, θ*'s and the retrained models' seeds, the chains):

1. a stratified 25% test split is held out; features are standardised with the training part's
   statistics;
2. θ* is the stage's MLP trained on the training part with the benchmark's recipe (``FIT`` below,
   the loop of ``downstream.train_mlp``), recording forgetting events on the way (a row's
   in-minibatch prediction going from right to wrong between two consecutive epochs, Toneva et
   al. 2019) and a copy of the model after 10% of the epochs (for EL2N);
3. scores, each ranking the rows, low = the first to go:
   - ``gex``: the GEX self-influence of the paper, ``mean_m (L[n, m] - L*[n])²`` (``tau=0``, what
     ``CleanConfig(action="prune")`` ranks by: ``prune_tau=0``), members from the library's
     defaults (``GEXConfig(score="gex")``, ``ft_lr="auto"``); "prune the lowest self-influence first";
   - ``gex τ=0.05``: the same members with the stage's label-noise floor ``tau=0.05``
     (``D = L - max(L*, tau)``), to show what the floor does to the low end;
   - ``random``: a seeded random order;
   - ``el2n``: EL2N (‖softmax − onehot‖₂) of the early copy (Paul et al. 2021 score early in
     training, from several initialisations; here one, at 10% of training);
   - ``loss``: the loss at θ*;
   - ``forgetting``: the number of forgetting events (ties broken at random);
   - ``member-loss``: the GEX members' mean loss;
4. for p ∈ {0.1, 0.2, 0.3, 0.5}, the lowest ``p·n`` rows by each score are removed
   (``decisions.prune``, global, so no class is emptied) and an MLP is trained from scratch on the
   rest with the same recipe; its test accuracy is recorded, and the full-data accuracy next to it.

Reported: mean ± std (3 seeds) of test accuracy per (setting, p, method), and whether GEX is within
1 point of the full data at p = 0.3 and ahead of random everywhere.

Writes benchmarks/results/prune.json and the "prune" section of benchmarks/RESULTS.md.
Run: make bench, or ``.venv/bin/python benchmarks/prune.py [--seeds 0 1 2] [--settings digits]``.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split

from common import digits_features, machine, movie_review_features, synthetic_features, write_json, write_section
from downstream import mlp_accuracy, train_mlp
from influence_stage import FitConfig, GEXConfig
from influence_stage.decisions.prune import prune
from influence_stage.engine.baselines import el2n
from influence_stage.engine.gex import score_fitted
from influence_stage.engine.influence import self_influence
from influence_stage.engine.learner import CosineSchedule, TensorData, TorchLearner, batch_indices
from influence_stage.engine.models import build_model

SETTINGS = {"digits": digits_features, "synthetic": synthetic_features, "text": movie_review_features}
FRACTIONS = (0.1, 0.2, 0.3, 0.5)
METHODS = ("gex", "gex τ=0.05", "random", "el2n", "loss", "forgetting", "member-loss")
FIT = FitConfig(epochs=30)
TEST_SIZE = 0.25


def train_with_dynamics(X: np.ndarray, y: np.ndarray, n_classes: int, *, seed: int, fit: FitConfig
                        ) -> tuple[torch.nn.Module, np.ndarray, torch.nn.Module]:
    """θ*, forgetting events per row and the model after 10% of the epochs; the loop of ``train_mlp``."""
    module = build_model("mlp", X.shape[1:], n_classes, seed=seed)
    Xt, yt = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64)
    n = len(y)
    steps_per_epoch = max(n // min(fit.batch_size, n), 1)
    total = fit.epochs * steps_per_epoch
    schedule = CosineSchedule(fit.lr, total)
    opt = torch.optim.SGD(module.parameters(), lr=fit.lr, momentum=fit.momentum, weight_decay=fit.weight_decay,
                          nesterov=fit.momentum > 0)
    last = torch.full((n,), -1, dtype=torch.int8)  # -1 never seen, 0 wrong, 1 right at the last presentation
    forgets = torch.zeros(n, dtype=torch.int64)
    early = None
    early_epoch = max(1, fit.epochs // 10)
    module.train()
    for t, idx in enumerate(batch_indices(n, total, fit.batch_size, torch.Generator().manual_seed(int(seed)))):
        for group in opt.param_groups:
            group["lr"] = schedule(t)
        out = module(Xt[idx])
        loss = F.cross_entropy(out, yt[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            right = (out.argmax(1) == yt[idx]).to(torch.int8)
            forgets[idx] += ((last[idx] == 1) & (right == 0)).long()
            last[idx] = right
        if (t + 1) == early_epoch * steps_per_epoch:
            early = copy.deepcopy(module).eval()
    module.eval()
    return module, forgets.numpy(), early if early is not None else copy.deepcopy(module)


def run_setting(name: str, seed: int) -> dict:
    X, y = SETTINGS[name]()
    k = int(y.max()) + 1
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=TEST_SIZE, stratify=y, random_state=seed)
    mu, sd = X_tr.mean(0), X_tr.std(0) + 1e-6
    X_tr, X_te = ((X_tr - mu) / sd).astype(np.float32), ((X_te - mu) / sd).astype(np.float32)
    fit = FIT.model_copy(update={"seed": seed})
    t0 = time.perf_counter()
    theta, forgets, early = train_with_dynamics(X_tr, y_tr, k, seed=seed, fit=fit)
    data = TensorData.from_arrays(X_tr, y_tr)
    learner = TorchLearner(theta, batch_size=GEXConfig().batch_size)
    res = score_fitted(learner, data, config=GEXConfig(seed=seed, score="gex"), fit_config=fit)
    rng = np.random.default_rng(seed)
    scores = {
        "gex": self_influence(res.loss_matrix, res.base_loss, tau=0.0),
        "gex τ=0.05": res.gex_influence,
        "random": rng.random(len(y_tr)),
        "el2n": el2n(TorchLearner(early), data).astype(np.float64),
        "loss": res.base_loss.astype(np.float64),
        "forgetting": forgets + 1e-3 * rng.random(len(y_tr)),  # ties (many rows are never forgotten) at random
        "member-loss": res.loss_matrix.mean(1).astype(np.float64),
    }
    score_s = time.perf_counter() - t0
    full = mlp_accuracy(train_mlp(X_tr, y_tr, k, seed=seed, fit=fit), X_te, y_te)
    acc: dict[str, dict[str, float]] = {m: {} for m in METHODS}
    for p in FRACTIONS:
        n_keep = len(y_tr) - int(round(p * len(y_tr)))
        for m in METHODS:
            keep = prune(scores[m], n_keep, labels=y_tr).keep
            acc[m][str(p)] = mlp_accuracy(train_mlp(X_tr[keep], y_tr[keep], k, seed=seed, fit=fit), X_te, y_te)
    return {"setting": name, "seed": seed, "n_train": int(len(y_tr)), "full": full, "accuracy": acc,
            "ft_lr": res.ft_lr, "theta_fit": res.theta_fit, "scoring_seconds": round(score_s, 1),
            "seconds": round(time.perf_counter() - t0, 1)}


def _ms(values: list[float]) -> str:
    v = 100 * np.asarray(values)
    return f"{v.mean():.1f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.1f}"


def markdown(runs: list[dict], seeds: list[int]) -> str:
    lines = ["## Pruning (clean data, retrain from scratch)", "",
             f"Test accuracy (%) after removing a share p of the training rows, lowest score first; mean ± std over "
             f"seeds {seeds}. The stage's MLP, {FIT.epochs} epochs (SGD lr {FIT.lr}, Nesterov, cosine), for θ* and "
             "every retrained model. GEX: self-influence with tau = 0 (the paper's D = L − L*), members from the library "
             "defaults (8 chains × 4 cycles, ft_lr auto); 'gex τ=0.05' the same members with the stage's label-noise "
             "floor. "
             "EL2N from one model at 10% of training; forgetting events over θ*'s training. "
             "Written by benchmarks/prune.py.", ""]
    verdicts = []
    for name in dict.fromkeys(r["setting"] for r in runs):
        rs = [r for r in runs if r["setting"] == name]
        lines += [f"**{name}** (n_train {rs[0]['n_train']}; full data {_ms([r['full'] for r in rs])})", "",
                  "| p | " + " | ".join(METHODS) + " |", "|---|" + "---|" * len(METHODS)]
        for p in FRACTIONS:
            means = {m: np.mean([r["accuracy"][m][str(p)] for r in rs]) for m in METHODS}
            best = max(means.values())
            cells = [(f"**{_ms([r['accuracy'][m][str(p)] for r in rs])}**" if means[m] == best else
                      _ms([r["accuracy"][m][str(p)] for r in rs])) for m in METHODS]
            lines.append(f"| {p:g} | " + " | ".join(cells) + " |")
        full = np.mean([r["full"] for r in rs])
        g3 = np.mean([r["accuracy"]["gex"]["0.3"] for r in rs])
        behind = [p for p in FRACTIONS if np.mean([r["accuracy"]["gex"][str(p)] for r in rs])
                  <= np.mean([r["accuracy"]["random"][str(p)] for r in rs])]
        losers = {p: [m for m in METHODS if m != "gex" and np.mean([r["accuracy"][m][str(p)] for r in rs])
                      > np.mean([r["accuracy"]["gex"][str(p)] for r in rs])] for p in FRACTIONS}
        verdicts.append(f"- {name}: at p = 0.3 GEX is {100 * (g3 - full):+.1f} points from the full data "
                        f"({'within' if full - g3 <= 0.01 else 'NOT within'} 1 point); "
                        + ("ahead of random at every p" if not behind else
                           f"NOT ahead of random at p = {', '.join(f'{p:g}' for p in behind)}")
                        + "; methods ahead of GEX: "
                        + ("; ".join(f"p={p:g}: {', '.join(ms)}" for p, ms in losers.items() if ms) or "none") + ".")
        lines.append("")
    lines += ["Targets (GEX within 1 point of the full data at p = 0.3, ahead of random on every setting):", ""]
    lines += verdicts
    lines += ["", f"Machine: {machine()}; {sum(r['seconds'] for r in runs):.0f} s in all."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = []
    for name in args.settings:
        for seed in args.seeds:
            r = run_setting(name, seed)
            print(f"{name} seed {seed}: full {r['full']:.3f}, gex@0.3 {r['accuracy']['gex']['0.3']:.3f}, "
                  f"random@0.3 {r['accuracy']['random']['0.3']:.3f} ({r['seconds']} s)", flush=True)
            runs.append(r)
    write_json("prune", {"runs": runs, "fit": FIT.model_dump(), "fractions": FRACTIONS, "machine": machine()})
    write_section("prune", markdown(runs, args.seeds))


if __name__ == "__main__":
    main()

"""The physical floor of a default run: the same SGD steps and forward passes in a bare torch loop.

A default run of the stage on ``N`` rows of ``d`` numeric features and ``K`` classes does, besides
I/O, orchestration and checks, this much training and evaluation (``FitConfig()``, ``GEXConfig()``):

- θ*: 60 epochs of SGD at batch 64 (fewer past ``FitConfig.max_steps`` steps: ``FitConfig.epochs_for``);
- the yardstick: 2 fresh models × 8 epochs on half the rows each, then one forward pass each on
  the other half;
- the probe: 8 rates × 2 chains trained together, 1 cycle of ``max(12, N // 128)`` steps at batch
  128, then a forward pass over all rows for each of the 16 probe members and for θ*;
- the members: the 6 chains that start at θ* trained together for 1 cycle, then all 8 chains (the 2
  probe chains of the chosen rate continued) together for the remaining 3 cycles;
- the loss matrix: one forward pass over all rows for θ* and for each of the 32 members, and the
  same again for the members' mean probabilities that the decisions use.

This script runs exactly that work on random data of the same shape with the same MLP (one hidden
layer of 128): θ* and the yardstick's models one step after another as ``torch.nn`` modules, the
chains that the stage trains together as one batched MLP (parameters stacked per chain,
``torch.baddbmm``), with no data checks, caching, scoring or publishing, and reports seconds per
part and in total. ``benchmarks/step_times.py`` and ``benchmarks/scale.py`` compare a real run
with it.

Run: ``.venv/bin/python benchmarks/floor.py --rows 20000 [--features 40 --classes 10]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
import torch.nn.functional as F

from influence_stage import FitConfig, GEXConfig
from influence_stage.engine.models import mlp

HIDDEN = 128


def work(n: int, fit: FitConfig, gex: GEXConfig) -> dict[str, dict]:
    """Training runs and forward passes of each part of a default run.

    ``{part: {"runs": [(chains, steps), ...], "batch": b, "forwards": rows}}``: each run trains
    ``chains`` chains together for ``steps`` steps each.
    """
    fit_steps = fit.epochs_for(n) * max(n // fit.batch_size, 1)
    half = n // 2
    holdout = fit.model_copy(update={"epochs": gex.holdout_epochs})
    fold_steps = holdout.epochs_for(half) * max(half // fit.batch_size, 1)
    cycle = max(gex.min_cycle_steps, int(round(gex.cycle_epochs * max(n // gex.batch_size, 1))))
    probed = min(gex.probe_chains, gex.chains)
    probe_cycles = gex.probe_cycle_count
    fresh = gex.chains - probed  # chains that start at θ*; the probe's chains of the chosen rate are continued
    member_runs = [(fresh, probe_cycles * cycle), (gex.chains, (gex.cycles - probe_cycles) * cycle)]
    return {
        "theta": {"runs": [(1, fit_steps)], "batch": fit.batch_size, "forwards": 0},
        "yardstick": {"runs": [(1, fold_steps), (1, fold_steps)], "batch": fit.batch_size, "forwards": n},
        "probe": {"runs": [(len(gex.lr_grid) * probed, probe_cycles * cycle)], "batch": gex.batch_size,
                  "forwards": len(gex.lr_grid) * probed * probe_cycles * n + n},
        "members": {"runs": [r for r in member_runs if r[0] > 0 and r[1] > 0], "batch": gex.batch_size,
                    "forwards": 0},
        "loss matrix": {"runs": [], "batch": gex.batch_size, "forwards": (gex.n_members + 1) * n},
        "decisions (members' probabilities)": {"runs": [], "batch": gex.batch_size, "forwards": gex.n_members * n},
    }


def _train_one(X: torch.Tensor, y: torch.Tensor, steps: int, batch: int, k: int, gen: torch.Generator) -> None:
    """``steps`` SGD steps of one MLP module."""
    model = mlp(X.shape[1], k, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(X), (batch,), generator=gen)
        loss = F.cross_entropy(model(X[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def _train_batched(X: torch.Tensor, y: torch.Tensor, chains: int, steps: int, batch: int, k: int,
                   gen: torch.Generator) -> None:
    """``steps`` SGD steps of ``chains`` MLPs at once: stacked parameters, one batched matmul per layer."""
    d = X.shape[1]
    w1 = (torch.randn(chains, d, HIDDEN, generator=gen) / d ** 0.5).requires_grad_()
    b1 = torch.zeros(chains, 1, HIDDEN, requires_grad=True)
    w2 = (torch.randn(chains, HIDDEN, k, generator=gen) / HIDDEN ** 0.5).requires_grad_()
    b2 = torch.zeros(chains, 1, k, requires_grad=True)
    opt = torch.optim.SGD([w1, b1, w2, b2], lr=0.01, momentum=0.9, weight_decay=5e-4)
    for _ in range(steps):
        idx = torch.randint(0, len(X), (chains, batch), generator=gen)
        logits = torch.baddbmm(b2, torch.relu(torch.baddbmm(b1, X[idx], w1)), w2)
        # the sum of each chain's mean loss: every chain gets its own gradient
        loss = F.cross_entropy(logits.reshape(-1, k), y[idx].reshape(-1), reduction="sum") / batch
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def bare(n: int, d: int, k: int, runs: list[tuple[int, int]], batch: int, forwards: int, seed: int = 0) -> float:
    """Seconds for the training ``runs`` at ``batch`` and ``forwards`` eval-mode rows, on random data."""
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=gen)
    y = torch.randint(0, k, (n,), generator=gen)
    t = time.perf_counter()
    for chains, steps in runs:
        if chains == 1:
            _train_one(X, y, steps, batch, k, gen)
        else:
            _train_batched(X, y, chains, steps, batch, k, gen)
    model = mlp(d, k, seed=seed).eval()
    with torch.no_grad():
        done = 0
        while done < forwards:
            rows = min(4096, forwards - done, n)
            F.cross_entropy(model(X[:rows]), y[:rows], reduction="none")
            done += rows
    return time.perf_counter() - t


def floor(n: int, d: int, k: int, fit: FitConfig | None = None, gex: GEXConfig | None = None) -> dict:
    fit, gex = fit or FitConfig(), gex or GEXConfig()
    parts = {}
    for name, w in work(n, fit, gex).items():
        parts[name] = {**w, "steps": int(sum(c * s for c, s in w["runs"])),
                       "seconds": bare(n, d, k, w["runs"], int(w["batch"]), int(w["forwards"]))}
    epochs = {name: p["steps"] * p["batch"] / n for name, p in parts.items()}
    return {"rows": n, "features": d, "classes": k, "parts": parts, "train_epochs_over_n": epochs,
            "total_seconds": float(sum(p["seconds"] for p in parts.values()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--features", type=int, default=40)
    parser.add_argument("--classes", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = floor(args.rows, args.features, args.classes)
    for name, p in out["parts"].items():
        print(f"{name:38s} {p['steps']:>8} chain-steps  {p['forwards']:>10} rows forward  {p['seconds']:7.2f} s")
    print(f"total {out['total_seconds']:.2f} s")


if __name__ == "__main__":
    main()

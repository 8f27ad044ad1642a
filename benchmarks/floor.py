"""The physical floor of a default run: the same SGD steps and forward passes in a bare torch loop.

A default run of the stage on ``N`` rows of ``d`` numeric features and ``K`` classes does, besides
I/O, orchestration and checks, this much training and evaluation (``FitConfig()``, ``GEXConfig()``):

- θ*: 60 epochs of SGD at batch 64 (fewer past ``FitConfig.max_steps`` steps: ``FitConfig.epochs_for``);
- the yardstick: 2 fresh models × 8 epochs on half the rows each, then one forward pass each on
  the other half;
- the probe: 8 rates × 2 chains × 1 cycle of ``max(12, N // 128)`` steps at batch 128;
- the members: 8 chains × 4 cycles of the same length, less the 2 probe cycles that are continued;
- the loss matrix: one forward pass over all rows for θ* and for each of the 32 members, and the
  same again for the members' mean probabilities that the decisions use.

This script runs exactly that work on random data of the same shape with the same MLP (one hidden
layer of 128), one chain after another, with no data checks, caching, scoring or publishing, and
reports seconds per part and in total. ``benchmarks/step_times.py`` compares a real run with it.

Run: ``.venv/bin/python benchmarks/floor.py --rows 20000 [--features 40 --classes 10]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
import torch.nn.functional as F

from influence_stage import FitConfig, GEXConfig
from influence_stage.engine.models import mlp


def work(n: int, fit: FitConfig, gex: GEXConfig) -> dict[str, dict[str, float]]:
    """SGD steps and forward passes of each part of a default run: ``{part: {steps, batch, forwards}}``."""
    fit_steps = fit.epochs_for(n) * max(n // fit.batch_size, 1)
    half = n // 2
    holdout = fit.model_copy(update={"epochs": gex.holdout_epochs})
    yard_steps = 2 * holdout.epochs_for(half) * max(half // fit.batch_size, 1)
    cycle = max(gex.min_cycle_steps, int(round(gex.cycle_epochs * max(n // gex.batch_size, 1))))
    probe_chains = len(gex.lr_grid) * min(gex.probe_chains, gex.chains)
    probe_cycles = gex.probe_cycle_count
    reused = min(gex.probe_chains, gex.chains) * probe_cycles
    return {
        "theta": {"steps": fit_steps, "batch": fit.batch_size, "forwards": 0},
        "yardstick": {"steps": yard_steps, "batch": fit.batch_size, "forwards": n},
        "probe": {"steps": probe_chains * probe_cycles * cycle, "batch": gex.batch_size,
                  "forwards": probe_chains * probe_cycles * n + n},
        "members": {"steps": (gex.n_members - reused) * cycle, "batch": gex.batch_size, "forwards": 0},
        "loss matrix": {"steps": 0, "batch": gex.batch_size, "forwards": (gex.n_members + 1) * n},
        "decisions (members' probabilities)": {"steps": 0, "batch": gex.batch_size, "forwards": gex.n_members * n},
    }


def bare(n: int, d: int, k: int, steps: int, batch: int, forwards: int, seed: int = 0) -> float:
    """Seconds for ``steps`` SGD steps at ``batch`` and ``forwards`` eval-mode rows, on random data."""
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=gen)
    y = torch.randint(0, k, (n,), generator=gen)
    model = mlp(d, k, seed=seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    t = time.perf_counter()
    model.train()
    for s in range(steps):
        idx = torch.randint(0, n, (batch,), generator=gen)
        loss = F.cross_entropy(model(X[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
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
        parts[name] = {**w, "seconds": bare(n, d, k, int(w["steps"]), int(w["batch"]), int(w["forwards"]))}
    epochs = {name: w["steps"] * w["batch"] / n for name, w in parts.items()}
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
        print(f"{name:38s} {p['steps']:>8} steps  {p['forwards']:>10} rows forward  {p['seconds']:7.2f} s")
    print(f"total {out['total_seconds']:.2f} s")


if __name__ == "__main__":
    main()

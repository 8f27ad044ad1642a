"""Speed and memory of the engine's fast paths, measured side by side in one run.

1. Loss matrix ``(N, M)``: members evaluated together (``torch.func`` vmap over stacked parameters)
   vs a per-member loop (``set_state`` + forward), for the digits MLP and a larger synthetic set.
2. Member training: chains trained together (vmapped ``train_chains``) vs one chain after another
   (``train_steps``).
Each measurement runs in a fresh child process (so peak RSS is its own), best of ``--repeats``.
Writes benchmarks/results/speed.json and the "speed" section of benchmarks/RESULTS.md.
Run: .venv/bin/python benchmarks/speed.py
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, write_json, write_section


def _data(n_rows: int):
    import numpy as np
    from common import digits_features
    X, y = digits_features()
    if n_rows > len(y):
        rng = np.random.default_rng(0)
        idx = rng.integers(0, len(y), n_rows)
        X = X[idx] + rng.normal(0, 0.1, size=(n_rows, X.shape[1])).astype(np.float32)
        y = y[idx]
    return X[:n_rows], y[:n_rows]


def _job(kind: str, n_rows: int, n_members: int, queue) -> None:
    import torch
    torch.set_num_threads(1)
    from influence_stage import GEXConfig
    from influence_stage.engine.members import run_chains, cycle_steps
    from influence_stage.engine.gex import make_learner
    from influence_stage.engine.learner import TensorData
    from influence_stage.engine.losses import loss_matrix
    X, y = _data(n_rows)
    learner, _ = make_learner("mlp", X, 10, config=GEXConfig())
    data = TensorData.from_arrays(X, y)
    theta = learner.get_state()
    if kind.startswith("loss"):
        members = run_chains(learner, data.subset(range(256)), start=theta, rates=[0.1] * n_members, cycles=1,
                             steps=2, seed=0)
        members = [c[0] for c in members]
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t = time.perf_counter()
        loss_matrix(learner, members, data, method="vmap" if kind == "loss-vmap" else "loop")
    else:
        steps = cycle_steps(len(data), GEXConfig())
        if kind == "train-sequential":
            learner.can_train_batched = lambda: False
        run_chains(learner, data, start=theta, rates=[0.1], cycles=1, steps=2, seed=0)  # warm-up
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t = time.perf_counter()
        run_chains(learner, data, start=theta, rates=[0.1] * n_members, cycles=1, steps=steps, seed=0)
    queue.put((time.perf_counter() - t, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024))


def measure(kind: str, n_rows: int, n_members: int, repeats: int) -> dict:
    ctx = mp.get_context("spawn")
    runs = []
    for _ in range(repeats):
        q = ctx.Queue()
        p = ctx.Process(target=_job, args=(kind, n_rows, n_members, q))
        p.start()
        runs.append(q.get())
        p.join()
    best = min(runs)
    return {"kind": kind, "n_rows": n_rows, "n_members": n_members, "seconds": best[0],
            "peak_rss_growth_mb": max(r[1] for r in runs), "all_seconds": [r[0] for r in runs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for n_rows in (1797, 50000):
        for kind in ("loss-loop", "loss-vmap"):
            rows.append(measure(kind, n_rows, 16, args.repeats))
    for chains in (4, 16):
        for kind in ("train-sequential", "train-batched"):
            rows.append(measure(kind, 1797, chains, args.repeats))
    write_json("speed", {"machine": machine(), "repeats": args.repeats, "results": rows})
    lines = ["## Engine fast paths (`benchmarks/speed.py`)", "",
             f"Best of {args.repeats} runs, each in a fresh process, 1 torch thread; MLP 64-128-10. "
             "Loss matrix: 16 members. Training: one 2-epoch cycle per chain on the 1797 digits rows.", "",
             "| what | rows | members/chains | seconds | peak RSS growth MB | speed-up |", "|---|---|---|---|---|---|"]
    by = {(r["kind"], r["n_rows"], r["n_members"]): r for r in rows}
    for r in rows:
        ref = {"loss-vmap": "loss-loop", "train-batched": "train-sequential"}.get(r["kind"])
        speed = f"{by[(ref, r['n_rows'], r['n_members'])]['seconds'] / r['seconds']:.2f}×" if ref else "1×"
        lines.append(f"| {r['kind']} | {r['n_rows']} | {r['n_members']} | {r['seconds']:.3f} | "
                     f"{r['peak_rss_growth_mb']:.0f} | {speed} |")
    write_section("speed", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

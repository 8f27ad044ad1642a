"""Why cycles have a floor of ``min_cycle_steps`` SGD steps: GEX-auto AP on small digits subsets.

Digits subsets of 400, 800 and 1200 rows with 10% uniform noise (2 noise seeds each), θ* from the
default recipe, GEX-auto with the default 1-epoch cycles and floors of 1 (no floor), 6, 12, 18 and
24 steps. With batch 128 one epoch of 400 rows is 3 steps: without a floor the members barely move.
Writes benchmarks/results/cycle_floor.json and the "cycle_floor" section of benchmarks/RESULTS.md.
Run: .venv/bin/python benchmarks/cycle_floor.py  (about 2 minutes on 2 CPU cores)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch

from common import detection_metrics, digits_features, machine, write_json, write_section
from influence_stage import FitConfig, GEXConfig
from influence_stage.engine.members import cycle_steps
from influence_stage.engine.gex import make_learner, score_fitted
from influence_stage.engine.learner import TensorData
from influence_stage.data.noise import flip_labels

SIZES = (400, 800, 1200)
SEEDS = (0, 1)
FLOORS = (1, 6, 12, 18, 24)


def main() -> None:
    torch.set_num_threads(1)
    X, y = digits_features()
    rows = []
    for n in SIZES:
        for seed in SEEDS:
            y_noisy, flipped = flip_labels(y[:n], 0.10, random_state=seed)
            config = GEXConfig(seed=seed)
            learner, _ = make_learner("mlp", X[:n], 10, config=config)
            data = TensorData.from_arrays(X[:n], y_noisy)
            learner.fit(data, FitConfig(seed=seed))
            theta = learner.get_state()
            for floor in FLOORS:
                learner.set_state(theta)
                cfg = config.model_copy(update={"min_cycle_steps": floor})
                res = score_fitted(learner, data, config=cfg, fit_config=FitConfig(seed=seed))
                rows.append({"rows": n, "seed": seed, "min_cycle_steps": floor,
                             "cycle_steps": cycle_steps(n, cfg, learner), "ft_lr": res.ft_lr,
                             **detection_metrics(flipped, res.gex_influence)})
                print(rows[-1], flush=True)
    write_json("cycle_floor", {"machine": machine(), "results": rows})
    lines = ["## Floor on the cycle length (`benchmarks/cycle_floor.py`)", "",
             "GEX-auto AP on digits subsets with 10% uniform noise; 1-epoch cycles (batch 128) with a floor of "
             "`min_cycle_steps` steps; mean over noise seeds " + ", ".join(map(str, SEEDS)) + ".", "",
             "| rows | " + " | ".join(f"floor {f}" for f in FLOORS) + " |", "|---" * (len(FLOORS) + 1) + "|"]
    for n in SIZES:
        cells = []
        for f in FLOORS:
            sel = [r for r in rows if r["rows"] == n and r["min_cycle_steps"] == f]
            cells.append(f"{np.mean([r['ap'] for r in sel]):.3f} ({sel[0]['cycle_steps']} steps)")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    write_section("cycle_floor", "\n".join(lines))


if __name__ == "__main__":
    main()

"""Ablation of the automatic rate's two cost knobs: the yardstick's epochs and the probe's cycles.

For every detection setting (benchmarks/detect.py) and seeds 0 and 1: GEX-auto with the defaults
(yardstick models trained ``holdout_epochs=8`` epochs, probe chains run ``probe_cycles=1`` cycle)
against 15 yardstick epochs and against a probe of all 4 cycles, each next to the best fixed rate
of the grid. Reports the AP gap to the best grid rate and the CPU seconds of the whole GEX-auto
run from θ* (one run each, no warm-up: compare them within this table, not with detect.py).
Writes benchmarks/results/auto_ablation.json and the "auto_ablation" section of RESULTS.md.
Run: .venv/bin/python benchmarks/auto_ablation.py  (about 5 minutes on 2 CPU cores)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch

from common import detection_metrics, machine, write_json, write_section
from detect import SETTINGS
from influence_stage import FitConfig, GEXConfig
from influence_stage.engine.gex import make_learner, score_fitted
from influence_stage.engine.learner import TensorData
from influence_stage.data.noise import flip_labels

SEEDS = (0, 1)
VARIANTS = {"default (8 epochs, 1 probe cycle)": {},
            "yardstick 15 epochs": {"holdout_epochs": 15},
            "probe of 4 cycles": {"probe_cycles": 4}}


def main() -> None:
    torch.set_num_threads(1)
    rows = []
    for name, (features, rate, kind) in SETTINGS.items():
        X, y = features()
        for seed in SEEDS:
            y_noisy, flipped = flip_labels(y, rate, kind=kind, random_state=seed)
            config = GEXConfig(seed=seed)
            fit = FitConfig(seed=seed)
            learner, _ = make_learner("mlp", X, int(y.max()) + 1, config=config)
            data = TensorData.from_arrays(X, y_noisy)
            learner.fit(data, fit)
            theta = learner.get_state()
            grid = {}
            for lr in config.lr_grid:
                learner.set_state(theta)
                res = score_fitted(learner, data, config=config.model_copy(update={"ft_lr": lr, "score": "gex"}), fit_config=fit)
                grid[lr] = detection_metrics(flipped, res.gex_influence)["ap"]
            best = max(grid.values())
            row = {"setting": name, "seed": seed, "best_grid_ap": best, "grid": {str(k): v for k, v in grid.items()}}
            for variant, update in VARIANTS.items():
                learner.set_state(theta)
                cpu = time.process_time()
                res = score_fitted(learner, data, config=config.model_copy(update=update), fit_config=fit)
                ap = detection_metrics(flipped, res.gex_influence)["ap"]
                row[variant] = {"ft_lr": res.ft_lr, "ap": ap, "gap": ap - best, "scale_wall_s": res.timings["scale"],
                                "cpu_s": time.process_time() - cpu}
            rows.append(row)
            print(row, flush=True)
    write_json("auto_ablation", {"machine": machine(), "seeds": list(SEEDS), "results": rows})
    names = list(VARIANTS)
    lines = ["## Ablation of the automatic rate (`benchmarks/auto_ablation.py`)", "",
             "GEX-auto AP minus the best fixed grid rate's AP (rate chosen in brackets), and CPU seconds of the whole "
             "GEX-auto run (from θ*), for the default and two costlier settings of the rate choice.", "",
             "| setting | seed | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for r in rows:
        cells = [f"{r[v]['gap']:+.3f} ({r[v]['ft_lr']:g}; {r[v]['cpu_s']:.2f} s)" for v in names]
        lines.append(f"| {r['setting']} | {r['seed']} | " + " | ".join(cells) + " |")
    within = {v: sum(r[v]["gap"] >= -0.01 for r in rows) for v in names}
    lines += ["", "Within 0.01 AP of the best grid rate: " +
              "; ".join(f"{v} {within[v]} of {len(rows)}" for v in names) + "."]
    write_section("auto_ablation", "\n".join(lines))


if __name__ == "__main__":
    main()

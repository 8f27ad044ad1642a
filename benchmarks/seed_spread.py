"""How much GEX's AP moves with the seed of the members alone (θ* fixed), at fixed rates.

Digits with 10% uniform noise and the synthetic set with 30%: the same θ* as benchmarks/detect.py,
default members (8 chains × 4 cycles), 4 member seeds per rate. This is the noise floor against
which differences between rates (and the "auto within 0.01 AP" target) should be read.
Writes benchmarks/results/seed_spread.json and the "seed_spread" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch

from common import detection_metrics, digits_features, machine, synthetic_features, write_json, write_section
from influence_stage import FitConfig, GEXConfig
from influence_stage.engine.gex import make_learner, score_fitted
from influence_stage.engine.learner import TensorData
from influence_stage.data.noise import flip_labels

SETTINGS = {"digits uniform 10%": (digits_features, 0.10), "synthetic uniform 30%": (synthetic_features, 0.30)}
RATES = (0.2, 0.4, 0.8)
SEEDS = (0, 1, 2, 3)


def main() -> None:
    torch.set_num_threads(1)
    rows = []
    for name, (features, rate) in SETTINGS.items():
        X, y = features()
        y_noisy, flipped = flip_labels(y, rate, random_state=0)
        learner, _ = make_learner("mlp", X, int(y.max()) + 1, config=GEXConfig())
        data = TensorData.from_arrays(X, y_noisy)
        learner.fit(data, FitConfig())
        theta = learner.get_state()
        for lr in RATES:
            aps = []
            for seed in SEEDS:
                learner.set_state(theta)
                res = score_fitted(learner, data, config=GEXConfig(ft_lr=lr, seed=seed, score="gex"), fit_config=FitConfig())
                aps.append(detection_metrics(flipped, res.gex_influence)["ap"])
            rows.append({"setting": name, "ft_lr": lr, "ap": aps, "mean": float(np.mean(aps)),
                         "sd": float(np.std(aps)), "range": float(np.ptp(aps))})
            print(rows[-1], flush=True)
    write_json("seed_spread", {"machine": machine(), "seeds": list(SEEDS), "results": rows})
    lines = ["## Seed spread of GEX AP (`benchmarks/seed_spread.py`)", "",
             "θ* fixed (as in detect.py); only the members' seed changes; 32 members, 4 seeds per rate.", "",
             "| setting | ft_lr | AP per seed | mean | sd | max − min |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['setting']} | {r['ft_lr']:g} | {', '.join(f'{a:.3f}' for a in r['ap'])} | "
                     f"{r['mean']:.3f} | {r['sd']:.3f} | {r['range']:.3f} |")
    write_section("seed_spread", "\n".join(lines))


if __name__ == "__main__":
    main()

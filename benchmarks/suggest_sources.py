"""Relabel suggestions by evidence source on sklearn digits (1,797 rows, 64 features, the default MLP).

For the rows the default run flags: relabel coverage and accuracy when the suggestion comes from the
members' mean probabilities, the cross-fitted probabilities, or their mean (``detect_images.suggestion_sources``).
Writes benchmarks/results/suggest_sources.json.
Run: .venv/bin/python benchmarks/suggest_sources.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
from sklearn.datasets import load_digits

from common import machine, write_json
from detect_images import suggestion_sources
from influence_stage import InfluenceCleaner
from influence_stage.data.noise import flip_labels


def main() -> None:
    torch.set_num_threads(1)
    X, y = load_digits(return_X_y=True)
    results = []
    for rate in (0.1, 0.2):
        y_noisy, flipped = flip_labels(y, rate, random_state=0)
        cleaner = InfluenceCleaner(random_state=0, max_drop_fraction=1.0).fit(X.astype(np.float32), y_noisy)
        flags = cleaner.issues_["is_issue"].to_numpy()
        aux = cleaner.result_.auxiliary
        results.append({"setting": f"digits uniform {rate:.0%}", "seed": 0, "n_rows": int(len(y)),
                        "n_flagged": int(flags.sum()), "precision": float(flipped[flags].mean()),
                        "estimated_noise_rate": cleaner.estimated_noise_rate_,
                        "auxiliary_accuracy": aux.accuracy, "auxiliary_epochs": list(aux.epochs),
                        "sources": suggestion_sources(cleaner, flags, y)})
        print(results[-1])
    print(f"wrote {write_json('suggest_sources', {'machine': machine(), 'results': results})}")


if __name__ == "__main__":
    main()

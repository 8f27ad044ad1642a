"""The cross-fitted halves alone on images under other training recipes: how much of the task they learn.

The halves' probabilities decide the noise estimate (their confident joint), one rank of the default
ranking and the suggestions, so a recipe that learns more of the task in the same steps should flag
fewer correct labels. This probe runs ``engine.auxiliary.cross_fit`` alone (no θ*, no members) on one
image setting and seed of ``detect_images.py``, featurized the way the default run featurizes it, for
each recipe of ``--variants``: the halves' held-out accuracy against the given and the true labels, the
off-diagonal count of their confident joint (the default estimate) against the planted flips, the
counts cleanlab's rules give on the same probabilities (``common.cleanlab_counts``), and the seconds the
two halves took. Every variant keeps the default plan of epochs (``round_plan``). The halves are
seeded with ``GEXConfig.seed`` = the seed, not with the sub-seed a cleaner derives from
``random_state`` (``influence_stage.seeds``), so a probe's accuracy is not that of the same seed's
public-path run; the variants of one probe are compared with each other.

Variants (``GEXConfig`` fields, image rows only): ``base`` (the recipe's rate 0.05 and batch 64),
``lr2x`` / ``lr4x`` (``image_aux_lr_scale`` 2 and 4: rates 0.1 and 0.2), ``bs32``
(``image_aux_batch_size=32``: twice the steps at the same epochs).

Writes one JSON line per variant to stdout; ``--out NAME`` also appends them to
benchmarks/results/<NAME>.jsonl.
Run: .venv/bin/python benchmarks/aux_recipe_probe.py --setting "digits28 clean labels" --seed 0
     [--rows 800] [--variants base lr2x lr4x bs32]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch

from common import RESULTS, cleanlab_counts, machine, stage_learner
from detect_images import SETTINGS, make_data

VARIANTS: dict[str, dict] = {"base": {"image_aux_lr_scale": 1.0}, "lr2x": {"image_aux_lr_scale": 2.0}, "lr4x": {"image_aux_lr_scale": 4.0},
                             "bs32": {"image_aux_batch_size": 32, "image_aux_lr_scale": 1.0}}
# all four were run on the two-block CNN, so each name keeps meaning that run
VARIANTS = {name: {"cnn_blocks": 2, **fields} for name, fields in VARIANTS.items()}


def probe(setting: str, seed: int, rows: int, variants: list[str]) -> list[dict]:
    from influence_stage import InfluenceCleaner
    from influence_stage.engine.auxiliary import cross_fit
    from influence_stage.engine.learner import TensorData
    from influence_stage.stage.steps import featurize_step, prepare

    kind, _, rate, noise = SETTINGS[setting]
    data, y_true, flipped = make_data(kind, rows, rate, noise, seed)
    config, _ = InfluenceCleaner(label_column="label", random_state=seed)._config()
    features = featurize_step(prepare(data, config), config)
    X, y = np.asarray(features.X), np.asarray(features.y)
    rows_data = TensorData.from_arrays(X, y)
    out = []
    for name in variants:
        gex = config.gex.model_copy(update={"seed": seed, **VARIANTS[name]})
        learner = stage_learner(config, X.shape[1:], int(y.max()) + 1, gex)
        t = time.perf_counter()
        proba, check = cross_fit(learner, rows_data, config=gex, fit_config=config.fit)
        counts = cleanlab_counts(y, proba)
        r = {"variant": name, "fields": VARIANTS[name], "setting": setting, "seed": seed, "n_rows": rows,
             "wall_s": time.perf_counter() - t, "given_acc": check.accuracy,
             "true_acc": float((proba.argmax(1) == y_true).mean()), "epochs": list(check.epochs),
             "cj_count": counts["num_label_issues_off_diagonal"], "true_noise": int(flipped.sum()),
             "counts": counts}
        print(json.dumps(r), flush=True)
        out.append(r)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--setting", default="digits28 clean labels", choices=[s for s in SETTINGS if "digits28" in s or "shapes32" in s])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", type=int, default=800)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", default=None, help="append the lines to benchmarks/results/<out>.jsonl")
    args = parser.parse_args()
    torch.set_num_threads(1)
    lines = probe(args.setting, args.seed, args.rows, args.variants)
    if args.out:
        RESULTS.mkdir(parents=True, exist_ok=True)
        with open(RESULTS / f"{args.out}.jsonl", "a") as fh:
            for r in lines:
                fh.write(json.dumps({**r, "machine": machine()}) + "\n")


if __name__ == "__main__":
    main()

"""Candidate noise estimates from one default run's evidence, side by side.

For one setting and seed (``detect.SETTINGS``, or ``top clean`` / ``top 20``: 400 digits rows with only
their top two pixel rows, ``detect_images.weak_digits``), fits ``InfluenceCleaner(random_state=seed)`` with
every default and counts, from its saved evidence: the confident joint of the cross-fitted probabilities
(``cj_oos``), of their mean with the members' probabilities (``cj_mean``), of the members' alone
(``cj_members``), the rows θ* fitted with a negative mean margin (``neg_margin``), and the midpoint of
``cj_oos`` and ``cj_mean`` (``mid``); then the F1 of the default ranking's top k for k at each count
(``f1_*``; ``f1_true``: k = the true number of flipped rows). One JSON line on stdout.

Run: .venv/bin/python benchmarks/estimate_candidates.py "synthetic uniform 30%" 0
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch

from detect import SETTINGS, weak_features
from influence_stage import InfluenceCleaner
from influence_stage.data.noise import flip_labels
from influence_stage.decisions.estimate import confident_joint_count
from influence_stage.engine.losses import mean_member_proba
from influence_stage.stage.steps import learner_data


def main() -> None:
    torch.set_num_threads(1)
    name, seed = sys.argv[1], int(sys.argv[2])
    if name.startswith("top"):
        features, rate, kind = lambda seed: weak_features(seed, top=True), (0.2 if name.endswith("20") else 0.0), "uniform"
    else:
        features, rate, kind = SETTINGS[name]
    X, y = features(seed)
    y_noisy, flipped = flip_labels(y, rate, kind=kind, random_state=seed)
    cleaner = InfluenceCleaner(random_state=seed).fit(X, y_noisy)
    res, pipe = cleaner.result_, cleaner.pipeline_
    data = learner_data(res.learner, pipe.prepared, pipe.features)
    members = mean_member_proba(res.learner, res.members, data, batch_size=cleaner.config_.gex.eval_batch_size,
                                member_chunk=cleaner.config_.gex.member_chunk)
    given, oos, margin = np.asarray(pipe.features.y), np.asarray(res.oos_proba), np.asarray(res.train_margin)
    out = {"setting": name, "seed": seed, "n": len(given), "true": int(flipped.sum()),
           "reliable": None if res.auxiliary is None else bool(res.auxiliary.reliable),
           "cj_oos": confident_joint_count(given, oos), "cj_mean": confident_joint_count(given, (oos + members) / 2),
           "cj_members": confident_joint_count(given, members), "neg_margin": int((margin < 0).sum()),
           "neg_margin_true": int(((margin < 0) & flipped).sum()), "acc_true": float((oos.argmax(1) == y).mean()),
           "est": float(cleaner.estimated_noise_rate_) * len(given)}
    order = np.argsort(-np.asarray(cleaner.scores_), kind="stable")

    def f1(k: float) -> float | None:
        flags = np.zeros(len(order), bool)
        flags[order[:int(round(k))]] = True
        denominator = flags.sum() + flipped.sum()
        return float(2 * (flags & flipped).sum() / denominator) if denominator else None

    out["mid"] = (out["cj_oos"] + out["cj_mean"]) / 2
    out.update(f1_mean=f1(out["cj_mean"]), f1_oos=f1(out["cj_oos"]), f1_mid=f1(out["mid"]),
               f1_true=f1(flipped.sum()))
    print(json.dumps(out))


if __name__ == "__main__":
    main()

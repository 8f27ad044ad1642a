"""The ranking when the auxiliary model is weak: which components to keep, measured on the runs where it is.

When the cross-fitted (auxiliary) model fails the reliability rule (``engine.auxiliary``: kappa on
the given labels < 0.55), the default ranking leaves its out-of-sample loss out (``gex+aum``). That
choice was measured on one weak setting and seed (digits, top two pixel rows). Text trips the rule
(and so does the 30%-flip synthetic set)
too: with two classes and 20% flips a perfect model agrees with 80% of the given labels, kappa 0.6,
so any real model is "weak" there. This benchmark fits each run once and scores the same members and
evidence with every candidate:

- ``gex+aum``: the current fallback (trimmed GEX, θ*'s training margins);
- ``gex+oos+aum``: no fallback (the reliable default);
- ``oos+aum``: the out-of-sample loss and the margins, GEX left out;
- ``weighted``: the three ranks with the out-of-sample rank weighted ``min(1, kappa / 0.55)``;

and, for each, AP against the planted flips and F1 of its top rows at the run's own noise estimate
(the per-class caps of ``decide`` are not applied). cleanlab's AP and F1 on 5-fold probabilities of the
stage's own learner and recipe are computed on the same rows (``detect.py``'s code).

    python benchmarks/weak_ranking.py --seeds 0 1 2 --out weak_ranking
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from common import detection_metrics, machine, minilm_features, movie_review_features, synthetic_features  # noqa: E402
from detect import flag_stats, weak_features  # noqa: E402

from influence_stage.config import FitConfig, GEXConfig  # noqa: E402
from influence_stage.data.noise import flip_labels  # noqa: E402
from influence_stage.decisions.estimate import confident_joint_count, weak_model_count  # noqa: E402
from influence_stage.engine.auxiliary import RELIABLE_KAPPA  # noqa: E402
from influence_stage.engine.baselines import confident_learning_scores, cross_validated_proba  # noqa: E402
from influence_stage.engine.gex import make_learner, score_fitted  # noqa: E402
from influence_stage.engine.learner import TensorData  # noqa: E402
from influence_stage.engine.losses import mean_member_proba  # noqa: E402
from influence_stage.engine.scores import mean_rank, oos_loss, percentile_rank, ranking_score  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def _weak(top: bool):
    def features(seed: int):
        return weak_features(seed, top=top)
    return features


SETTINGS = {
    "text (movie reviews) uniform 20%": (lambda seed: movie_review_features(), 0.20),
    "text (movie reviews, MiniLM) uniform 20%": (lambda seed: minilm_features(), 0.20),
    "weak features (digits top 2 rows) uniform 20%": (_weak(True), 0.20),
    "weak features (digits 4x4) uniform 20%": (_weak(False), 0.20),
    "synthetic uniform 30%": (lambda seed: synthetic_features(), 0.30),
}
CANDIDATES = ("gex+aum", "gex+oos+aum", "oos+aum", "weighted")


def _f1(flipped: np.ndarray, scores: np.ndarray, k: int) -> float:
    """F1 of the ``k`` top-scoring rows (ties by row order) against the planted flips."""
    top = np.zeros(len(scores), dtype=bool)
    top[np.argsort(-scores, kind="stable")[:k]] = True
    return flag_stats(flipped, top)["f1"]


def run(name: str, seed: int) -> dict:
    features, rate = SETTINGS[name]
    X, y = features(seed)
    y_noisy, flipped = flip_labels(y, rate, kind="uniform", random_state=seed)
    k = int(y.max()) + 1
    config, fit = GEXConfig(seed=seed), FitConfig()
    data = TensorData.from_arrays(X, y_noisy)
    t = time.perf_counter()
    learner, _ = make_learner("mlp", X, k, config=config)
    learner.fit(data, fit)
    res = score_fitted(learner, data, config=config, fit_config=fit)
    stage_s = time.perf_counter() - t
    aux = res.auxiliary
    ol = oos_loss(res.oos_proba, y_noisy)
    aum = -np.asarray(res.train_margin, dtype=np.float64)

    def registered(name: str) -> np.ndarray:
        return ranking_score(name, res.loss_matrix, res.base_loss, tau=config.tau, trim=config.trim, oos_loss=ol,
                             train_margin=res.train_margin)

    trimmed = registered("gex-trimmed")
    w = min(1.0, max(aux.kappa, 0.0) / RELIABLE_KAPPA)
    g, o, a = percentile_rank(trimmed), percentile_rank(ol), percentile_rank(aum)
    scores = {"gex+aum": registered("gex+aum"), "gex+oos+aum": registered("gex+oos+aum"), "oos+aum": mean_rank(ol, aum),
              "weighted": (g + w * o + a) / (2 + w)}
    members = res.member_proba if res.member_proba is not None else mean_member_proba(res.learner, res.members, data)
    n_est = (confident_joint_count(y_noisy, res.oos_proba) if aux.reliable
             else weak_model_count(y_noisy, res.oos_proba, members))
    out = {"setting": name, "seed": seed, "rows": int(len(y)), "load_average": os.getloadavg()[0], "n_flipped": int(flipped.sum()),
           "score_used": res.score_name, "aux_accuracy": aux.accuracy, "aux_kappa": aux.kappa,
           "reliable": aux.reliable, "oos_weight": w, "n_estimated": int(n_est), "stage_s": stage_s,
           "default_ap": detection_metrics(flipped, res.scores)["ap"],
           "candidates": {c: {"ap": detection_metrics(flipped, s)["ap"], "f1": _f1(flipped, s, int(n_est))}
                          for c, s in scores.items()},
           "components": {c: detection_metrics(flipped, s)["ap"] for c, s in
                          {"gex-trimmed": trimmed, "oos": ol, "aum": aum}.items()}}
    t = time.perf_counter()
    proba = cross_validated_proba(lambda f: learner.fresh_copy(seed=seed + 100 + f), data, fit, folds=5, seed=seed)
    cl_scores, cl_issues = confident_learning_scores(y_noisy, proba)
    tp = int(flipped[cl_issues].sum())
    p = tp / max(int(cl_issues.sum()), 1)
    r = tp / int(flipped.sum())
    out["cleanlab"] = {"ap": detection_metrics(flipped, cl_scores)["ap"], "flagged": int(cl_issues.sum()),
                       "f1": 2 * p * r / (p + r) if tp else 0.0, "s": time.perf_counter() - t}
    return out


def markdown(runs: list[dict]) -> str:
    lines = ["## The ranking under a weak auxiliary model (`benchmarks/weak_ranking.py`)", "",
             "Each run fitted once (θ* = the stage's MLP, `FitConfig()`, `GEXConfig(seed)`), every candidate scored "
             "on the same members and evidence. AP against the planted flips; F1 of the candidate's top rows at "
             "the run's own estimate (no per-class caps). cleanlab: `find_label_issues` on 5-fold probabilities of "
             "fresh copies of the same learner and recipe. `weighted`: out-of-sample rank weighted "
             "min(1, kappa / 0.55).", "",
             "| setting | seed | aux kappa (reliable) | est. / true | "
             + " | ".join(f"{c} AP / F1" for c in CANDIDATES) + " | cleanlab AP / F1 | GEX / OOS / AUM AP |",
             "|---|---|---|---|" + "---|" * len(CANDIDATES) + "---|---|"]
    for r in runs:
        cells = []
        best = max(r["candidates"][c]["ap"] for c in CANDIDATES)
        for c in CANDIDATES:
            v = r["candidates"][c]
            ap = f"**{v['ap']:.3f}**" if v["ap"] == best else f"{v['ap']:.3f}"
            cells.append(f"{ap} / {v['f1']:.3f}")
        comp = r["components"]
        lines.append(f"| {r['setting']} | {r['seed']} | {r['aux_kappa']:.2f} ({'yes' if r['reliable'] else 'no'}) | "
                     f"{r['n_estimated']} / {r['n_flipped']} | " + " | ".join(cells)
                     + f" | {r['cleanlab']['ap']:.3f} / {r['cleanlab']['f1']:.3f} | "
                     f"{comp['gex-trimmed']:.3f} / {comp['oos']:.3f} / {comp['aum']:.3f} |")
    lines += ["", "Seed means:", "", "| setting | " + " | ".join(f"{c} AP / F1" for c in CANDIDATES)
              + " | cleanlab AP / F1 |", "|---|" + "---|" * (len(CANDIDATES) + 1)]
    for name in dict.fromkeys(r["setting"] for r in runs):
        rs = [r for r in runs if r["setting"] == name]
        cells = [f"{np.mean([r['candidates'][c]['ap'] for r in rs]):.3f} / "
                 f"{np.mean([r['candidates'][c]['f1'] for r in rs]):.3f}" for c in CANDIDATES]
        lines.append(f"| {name} ({len(rs)} seeds) | " + " | ".join(cells)
                     + f" | {np.mean([r['cleanlab']['ap'] for r in rs]):.3f} / "
                     f"{np.mean([r['cleanlab']['f1'] for r in rs]):.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="weak_ranking")
    parser.add_argument("--add", action="store_true", help="append to the runs already in <out>.json")
    args = parser.parse_args()
    path = RESULTS / f"{args.out}.json"
    runs = json.loads(path.read_text())["runs"] if args.add and path.exists() else []
    for seed in args.seeds:
        for name in args.settings:
            runs.append(run(name, seed))
            print(json.dumps(runs[-1]), flush=True)
            path.write_text(json.dumps({"machine": machine(), "runs": runs}, indent=1))
            (RESULTS / f"{args.out}.md").write_text(markdown(runs))


if __name__ == "__main__":
    main()

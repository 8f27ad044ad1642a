"""Restricting the default flags to rows a model contradicts: does it lower clean-label flags without costing F1?

The default flags the top ``n`` rows of the ranking, ``n`` the run's noise estimate. On clean labels
every flag is wrong, and the count comes from a two-fold auxiliary model that contradicts some
correct labels. Measured here on every ``detect.py`` setting (the engine path: the stage's MLP, its
default GEX configuration, the default count rule): the top-``n`` flags alone, and those flags kept
only where

- ``&oos``: the cross-fitted model's most probable class is not the given label;
- ``&mix``: the most probable class of the mean of the cross-fitted and the members' probabilities is
  not the given label (the members trained on every row, so they lean to the given label);
- ``rerank``: a form of ``&mix`` that keeps the threshold a cut and the count exact: the rows ``&mix``
  would unflag are ranked below every other row, and the top ``n`` of that ranking are flagged;
- ``count``: the ranking unchanged, the count lowered to the number of top-``n`` rows whose mean
  probabilities favour another label (``n'``), and the top ``n'`` rows flagged: it keeps the cut and
  the ranking (so its AP), and flags as many rows as ``&mix``;
- ``rerank-n'``: the ``rerank`` ranking cut at ``n'``, whose flags are exactly ``&mix``'s;
- ``cl-count``: the ranking cut at the number of rows cleanlab's ``find_label_issues`` flags on the same
  cross-fitted probabilities (its per-cell pruning, then the rows whose predicted label is the given one
  dropped), instead of the confident joint's off-diagonal count;
- ``cl-count-mix``: the same count on the mean of the cross-fitted and the members' probabilities.

With the ranking's AP, and that of the ``rerank`` ranking (contradicted rows first). On code where the
stage already ranks evidence first (``engine.scores.evidence_first``) the ``rerank`` columns equal the
``top-n`` ones; the before/after of that change is in ``results/flag_count.*``, measured before it.

    python benchmarks/flag_restrictions.py --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from cleanlab.filter import find_label_issues
from sklearn.metrics import average_precision_score

sys.path.insert(0, str(Path(__file__).parent))

import detect  # noqa: E402
from detect import flag_stats  # noqa: E402
from common import machine  # noqa: E402

from influence_stage.config import FitConfig, GEXConfig  # noqa: E402
from influence_stage.data.noise import flip_labels  # noqa: E402
from influence_stage.decisions.cuts import budget_cut  # noqa: E402
from influence_stage.decisions.estimate import confident_joint_count, weak_model_count  # noqa: E402
from influence_stage.engine.gex import make_learner, score_fitted  # noqa: E402
from influence_stage.engine.learner import TensorData  # noqa: E402
from influence_stage.engine.losses import mean_member_proba  # noqa: E402
from influence_stage.engine.scores import evidence_first  # noqa: E402

RESULTS = Path(__file__).parent / "results"
RULES = ("top-n", "&oos", "&mix", "rerank", "count", "rerank-n'", "cl-count", "cl-count-mix")


def _f1(flipped: np.ndarray, flags: np.ndarray) -> float | None:
    return flag_stats(flipped, flags)["f1"]


def top(scores: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` highest-scored rows, ties by row order: the ``estimate`` threshold's cut (``budget_cut``)."""
    return budget_cut(scores, k / scores.size)[0]


def forms(scores: np.ndarray, labels: np.ndarray, flipped: np.ndarray, n: int, oos_proba: np.ndarray,
          member_proba: np.ndarray, reliable: bool) -> dict:
    """Every form in the module docstring on one run: ``{"n_lowered", "ap", "rules": {name: flags}}``.

    ``scores`` a rank score in (0, 1] (the run's ranking), ``n`` the run's count; the ``cl-count`` forms
    keep ``n`` under a weak model, as the stage would.
    """
    mix = (oos_proba + member_proba) / 2
    favours_other = mix.argmax(1) != labels
    reranked = evidence_first(scores, labels, mix)  # the rows whose evidence favours their label last
    flags = top(scores, n)
    n_low = int((flags & favours_other).sum())
    n_cl = int(find_label_issues(labels, oos_proba).sum()) if reliable else n
    n_cl_mix = int(find_label_issues(labels, mix).sum()) if reliable else n
    rules = {"top-n": flags, "&oos": flags & (oos_proba.argmax(1) != labels), "&mix": flags & favours_other,
             "rerank": top(reranked, n), "count": top(scores, n_low), "rerank-n'": top(reranked, n_low),
             "cl-count": top(scores, n_cl), "cl-count-mix": top(scores, n_cl_mix)}
    ap = ({"ranking": float(average_precision_score(flipped, scores)),
           "rerank": float(average_precision_score(flipped, reranked))} if flipped.any() else None)
    return {"n_lowered": n_low, "ap": ap, "rules": rules}


def rule_stats(flipped: np.ndarray, rules: dict) -> dict:
    return {k: {"flagged_share": float(f.mean()), "f1": _f1(flipped, f)} for k, f in rules.items()}


def run(name: str, seed: int) -> dict:
    features, rate, kind = detect.SETTINGS[name]
    X, y = features(seed)
    y_noisy, flipped = flip_labels(y, rate, kind=kind, random_state=seed)
    config, fit = GEXConfig(seed=seed), FitConfig()
    data = TensorData.from_arrays(X, y_noisy)
    learner, _ = make_learner("mlp", X, int(y.max()) + 1, config=config)
    learner.fit(data, fit)
    res = score_fitted(learner, data, config=config, fit_config=fit)
    members = res.member_proba if res.member_proba is not None else mean_member_proba(res.learner, res.members, data)
    n = (confident_joint_count(y_noisy, res.oos_proba) if res.auxiliary.reliable
         else weak_model_count(y_noisy, res.oos_proba, members))
    f = forms(res.scores, y_noisy, flipped, n, res.oos_proba, members, bool(res.auxiliary.reliable))
    return {"setting": name, "seed": seed, "n_rows": int(len(y)), "true_rate": float(flipped.mean()),
            "reliable": bool(res.auxiliary.reliable), "n_estimated": int(n), "n_lowered": f["n_lowered"],
            "ap": f["ap"], "rules": rule_stats(flipped, f["rules"])}


def markdown(runs: list[dict]) -> str:
    lines = ["## Restricting the flags to contradicted rows (`benchmarks/flag_restrictions.py`)", "",
             "Engine path (the stage's MLP, default GEX configuration and count). Cells: flagged share / F1 "
             "against the planted flips (F1 — on clean labels).", "",
             "| setting | seed | aux | " + " | ".join(RULES) + " | AP ranking / rerank |",
             "|---|---|---|" + "---|" * (len(RULES) + 1)]
    for r in runs:
        cells = [f"{r['rules'][k]['flagged_share']:.3f} / "
                 + ("—" if r["rules"][k]["f1"] is None else f"{r['rules'][k]['f1']:.3f}") for k in RULES]
        lines.append(f"| {r['setting']} | {r['seed']} | {'reliable' if r['reliable'] else 'weak'} | "
                     + " | ".join(cells) + " | "
                     + ("—" if r.get("ap") is None else f"{r['ap']['ranking']:.3f} / {r['ap']['rerank']:.3f}") + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--settings", nargs="+", default=list(detect.SETTINGS), choices=list(detect.SETTINGS))
    parser.add_argument("--out", default="flag_restrictions")
    args = parser.parse_args()
    runs = []
    for seed in args.seeds:
        for name in args.settings:
            runs.append(run(name, seed))
            print(json.dumps(runs[-1]), flush=True)
            (RESULTS / f"{args.out}.json").write_text(json.dumps({"machine": machine(), "runs": runs}, indent=1))
            (RESULTS / f"{args.out}.md").write_text(markdown(runs))


if __name__ == "__main__":
    main()

"""The default ranking when the exact GEX score is inverted: which ranks to keep.

A three-block CNN memorises every row of 800 noisy digits28 images (θ* fits 100% of the given labels) and
its GEX score then ranks the flipped rows *below* the others (``engine.gex.GEXAgreement``). This script fits
the stage once per (setting, seed, CNN) through the public path and scores the run's own parts without
refitting: AP against the flipped rows of the exact GEX score, the trimmed GEX, the cross-fitted
out-of-sample loss, θ*'s negated training margin (AUM), and the rank means the default could use (all three,
without GEX, the loss alone), each also with the default's "evidence first" order
(``engine.scores.evidence_first``). Also the agreement the run measured (AP of GEX for the rows the
cross-fitted model contradicts, and their share) and whether it warned.

    python benchmarks/inverted_gex.py --settings "digits28 uniform 20%" --seeds 0 1 2 --blocks 2 3 --out inverted_gex
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.metrics import average_precision_score

from common import machine, write_json, write_markdown
from detect_images import SETTINGS, make_data


def flat_data(setting: str, seed: int):
    """A ``detect.py`` setting as arrays: features, noisy labels, the true labels and the flipped mask."""
    from detect import SETTINGS as FLAT

    from influence_stage.data.noise import flip_labels

    features, rate, kind = FLAT[setting]
    X, y = features(seed)
    y_noisy, flipped = flip_labels(y, rate, kind=kind, random_state=seed)
    return (X, y_noisy), y, flipped


def run(setting: str, seed: int, rows: int, blocks: int) -> dict:
    from influence_stage import GEXConfig, InfluenceCleaner
    from influence_stage.decisions.suggest import suggestion_proba
    from influence_stage.engine.influence import self_influence
    from influence_stage.engine.scores import evidence_first, mean_rank, oos_loss, percentile_rank
    from influence_stage.errors import ValidationFailedError

    if setting in SETTINGS:
        kind, _, rate, noise = SETTINGS[setting]
        data, y_true, flipped = make_data(kind, rows, rate, noise, seed)
        args, column = (data,), {"label_column": "label"}
    else:  # a detect.py setting: flat features, the MLP (blocks do not apply)
        args, y_true, flipped = flat_data(setting, seed)
        column = {}
    gex = GEXConfig(seed=seed, cnn_blocks=blocks)
    cleaner = InfluenceCleaner(random_state=seed, gex_config=gex, **column)
    t = time.perf_counter()
    try:
        cleaner.fit(*args)
        gate = "passed"
    except ValidationFailedError as exc:  # the fit is kept for inspection
        gate = f"refused: {str(exc)[:100]}"
    res = cleaner.result_
    y = np.asarray(cleaner.pipeline_.features.y)
    trimmed = self_influence(res.loss_matrix, res.base_loss, tau=gex.tau, trim=gex.trim)
    loss = oos_loss(res.oos_proba, y)
    aum = -np.asarray(res.train_margin, dtype=np.float64)
    P = suggestion_proba(res.member_proba, res.oos_proba, res.auxiliary)
    parts = {"gex": res.gex_influence, "gex-trimmed": trimmed, "oos loss": loss, "aum": aum,
             "gex+oos+aum": mean_rank(trimmed, loss, aum), "oos+aum": mean_rank(loss, aum), "gex+oos": mean_rank(trimmed, loss)}
    if not flipped.any():  # clean labels: the agreement is what this setting checks
        ap = {}
    else:
        ap = {k: float(average_precision_score(flipped, v)) for k, v in parts.items()}
    for k in ("gex+oos+aum", "oos+aum", "gex+oos", "oos loss") if ap else ():
        ranked = parts[k] if k != "oos loss" else percentile_rank(parts[k])  # evidence_first orders rank scores
        ap[f"{k}, evidence first"] = float(average_precision_score(flipped, evidence_first(ranked, y, P)))
    # F1 of flagging each ranking's top rows at the run's own count (the count does not depend on the ranking)
    k = int(cleaner.issues_["is_issue"].sum())
    f1 = {}
    if flipped.any() and k:
        for name, sc in (("default", cleaner.scores_), ("oos+aum, evidence first", evidence_first(parts["oos+aum"], y, P))):
            top = np.zeros(len(y), bool)
            top[np.argsort(-np.asarray(sc), kind="stable")[:k]] = True
            tp = int((top & flipped).sum())
            f1[name] = 2 * tp / (k + int(flipped.sum()))
    agreement = res.gex_agreement
    return {"n_flagged": k, "f1_at_cut": f1, "setting": setting, "seed": seed, "rows": rows, "cnn_blocks": blocks, "gate": gate,
            "wall_s": time.perf_counter() - t, "theta_fit": res.theta_fit, "ft_lr": res.ft_lr,
            "aux_reliable": bool(res.auxiliary.reliable) if res.auxiliary is not None else None,
            "evidence_first": res.evidence_first, "score": res.score_name,
            "ap_default": float(average_precision_score(flipped, cleaner.scores_)) if flipped.any() else None,
            "agreement": None if agreement is None else {"ap": agreement.ap, "chance": agreement.chance,
                                                         "inverted": agreement.inverted},
            "ap": ap}


def markdown(runs: list[dict]) -> str:
    keys = next((list(r["ap"]) for r in runs if r["ap"]), [])
    lines = ["## The ranking when GEX is inverted (`benchmarks/inverted_gex.py`)", "",
             "AP against the flipped rows of each part of one fit, and of the rank means the default could use. "
             "Agreement: AP of the exact GEX score for the rows the cross-fitted model contradicts (chance: their "
             "share); inverted = below chance, when the run warns.", "",
             "| setting | seed | blocks | θ* fit | ft_lr | agreement (chance) | default | " + " | ".join(keys) + " |",
             "|---|---|---|---|---|---|---|" + "---|" * len(keys)]
    for r in runs:
        a = r["agreement"]
        agree = "—" if a is None else f"{a['ap']:.3f} ({a['chance']:.3f}){' **inverted**' if a['inverted'] else ''}"
        cells = [f"{r['ap'][k]:.4f}" if k in r["ap"] else "—" for k in keys]
        default = "—" if r["ap_default"] is None else f"{r['ap_default']:.4f}"
        lines.append(f"| {r['setting']} | {r['seed']} | {r['cnn_blocks']} | {r['theta_fit']:.3f} | {r['ft_lr']:g} | {agree} | "
                     f"{default} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    from detect import SETTINGS as FLAT

    parser.add_argument("--settings", nargs="+", default=["digits28 uniform 20%"],
                        choices=[s for s in SETTINGS if "digits28" in s or "shapes32" in s] + list(FLAT),
                        help="image settings (detect_images.py) or flat ones (detect.py: the MLP)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--blocks", type=int, nargs="+", default=[3])
    parser.add_argument("--rows", type=int, default=800)
    parser.add_argument("--out", default="inverted_gex")
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = []
    for setting in args.settings:
        for seed in args.seeds:
            for blocks in args.blocks:
                runs.append(run(setting, seed, args.rows, blocks))
                print({k: runs[-1][k] for k in ("setting", "seed", "cnn_blocks", "theta_fit", "agreement", "ap_default")},
                      flush=True)
                write_json(args.out, {"machine": machine(), "runs": runs})
                write_markdown(args.out, markdown(runs))


if __name__ == "__main__":
    main()

"""The cross-fitted auxiliary model on more folds (``GEXConfig.aux_folds``), flat features (text as TF-IDF and as MiniLM embeddings included), public path.

Every flat setting of ``detect.py`` (its feature functions and noise, the same seeds) through
``InfluenceCleaner(random_state=seed, gex_config=GEXConfig(seed=seed, aux_folds=k))`` with every other
default, for each ``k`` of ``--folds`` (the default 2 first), in one process per call: the flagged
share, F1 and AP against the planted flips, the estimated noise rate, the auxiliary model's
out-of-sample accuracy on the given labels, relabel accuracy and coverage, and the stage's wall
seconds. cleanlab (``find_label_issues`` on 5-fold probabilities of the same learner and recipe) runs
once per setting and seed beside the first ``k`` unless ``--no-cleanlab``.

Writes benchmarks/results/<out>.json and .md.
Run: .venv/bin/python benchmarks/aux_folds.py [--settings NAME ...] [--seeds 0 1 2] [--folds 2 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch

from common import machine, public_run, write_json, write_markdown
from detect import SETTINGS

FLAT = list(SETTINGS)


def one(name: str, seed: int, folds: int, cleanlab: bool, estimate_count: str | None = None) -> dict:
    from influence_stage.config import GEXConfig
    from influence_stage.data.noise import flip_labels

    features, rate, kind = SETTINGS[name]
    X, y = features(seed)
    y_noisy, flipped = flip_labels(y, rate, kind=kind, random_state=seed)
    fields = {"seed": seed, "aux_folds": folds} | ({"estimate_count": estimate_count} if estimate_count else {})
    r = public_run(X, y, flipped, seed=seed, y=y_noisy, cleanlab=cleanlab, cleaner_kwargs={"gex_config": GEXConfig(**fields)})
    return {"setting": name, "seed": seed, "folds": folds, "n_rows": int(len(y)), "true_rate": float(flipped.mean()),
            "wall_s": r["wall_s"], "flags": r["flags"], "estimated_noise_rate": r["estimated_noise_rate"],
            "ap_default": r.get("ap_default"), "aux_accuracy": r.get("auxiliary_accuracy"),
            "aux_reliable": r.get("auxiliary_reliable"), "aux_true_accuracy": r.get("auxiliary_true_accuracy"),
            "relabel": r["relabel"], "cleanlab": r.get("cleanlab") if cleanlab else None,
            "warnings": r["summary_warnings"], "count_rules": r.get("count_rules")}


def _f(v, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def table(runs: list[dict], folds: list[int]) -> str:
    a, b = folds[0], folds[-1]
    lines = [f"| setting | seed | flagged {a} → {b} folds (cleanlab) | F1 (cleanlab) | AP (cleanlab) | estimate (true) | "
             "aux accuracy | relabel acc / coverage | stage s |", "|---|---|---|---|---|---|---|---|---|"]
    key = {(r["setting"], r["seed"], r["folds"]): r for r in runs}
    means: dict[str, list[tuple[dict, dict]]] = {}
    for name in dict.fromkeys(r["setting"] for r in runs):
        for seed in sorted({r["seed"] for r in runs if r["setting"] == name}):
            ra, rb = key.get((name, seed, a)), key.get((name, seed, b))
            if ra is None or rb is None:
                continue
            means.setdefault(name, []).append((ra, rb))
            cl = ra.get("cleanlab") or {}
            clf = cl.get("flags", {})
            cl_share = f" ({100 * clf['flagged_share']:.2f}%)" if clf else ""
            lines.append(f"| {name} | {seed} | {100 * ra['flags']['flagged_share']:.2f}% → "
                         f"{100 * rb['flags']['flagged_share']:.2f}%{cl_share} | "
                         f"{_f(ra['flags']['f1'])} → {_f(rb['flags']['f1'])} ({_f(clf.get('f1'))}) | "
                         f"{_f(ra['ap_default'], 4)} → {_f(rb['ap_default'], 4)} ({_f(cl.get('ap'), 4)}) | "
                         f"{ra['estimated_noise_rate']:.3f} → {rb['estimated_noise_rate']:.3f} ({ra['true_rate']:.3f}) | "
                         f"{_f(ra['aux_accuracy'])} → {_f(rb['aux_accuracy'])} | "
                         f"{_f(ra['relabel']['accuracy'])} / {_f(ra['relabel']['coverage'], 2)} → "
                         f"{_f(rb['relabel']['accuracy'])} / {_f(rb['relabel']['coverage'], 2)} | "
                         f"{ra['wall_s']:.1f} → {rb['wall_s']:.1f} |")
    lines += ["", "Seed means:", "", f"| setting | seeds | flagged {a} → {b} folds | F1 | AP | stage s |", "|---|---|---|---|---|---|"]
    for name, pairs in means.items():
        m = lambda i, f: float(np.mean([f(p[i]) for p in pairs]))  # noqa: E731
        f1 = lambda r: r["flags"]["f1"] if r["flags"]["f1"] is not None else np.nan  # noqa: E731
        ap = lambda r: r["ap_default"] if r["ap_default"] is not None else np.nan  # noqa: E731
        lines.append(f"| {name} | {len(pairs)} | {100 * m(0, lambda r: r['flags']['flagged_share']):.2f}% → "
                     f"{100 * m(1, lambda r: r['flags']['flagged_share']):.2f}% | {m(0, f1):.3f} → {m(1, f1):.3f} | "
                     f"{m(0, ap):.4f} → {m(1, ap):.4f} | {m(0, lambda r: r['wall_s']):.1f} → {m(1, lambda r: r['wall_s']):.1f} |")
    return "\n".join(lines).replace("nan → nan", "—") + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--settings", nargs="+", default=FLAT, choices=FLAT, metavar="NAME")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--folds", type=int, nargs="+", default=[2, 5])
    parser.add_argument("--no-cleanlab", action="store_true")
    parser.add_argument("--estimate-count", choices=["confident_joint", "both"], default=None,
                        help="GEXConfig.estimate_count of every run (default: the stage's)")
    parser.add_argument("--out", default="aux_folds")
    parser.add_argument("--merge", nargs="+", default=None, help="result names whose runs go together into --out "
                        "(runs nothing)")
    args = parser.parse_args()
    if args.merge:
        import json

        from common import RESULTS

        parts = [json.loads((RESULTS / f"{n}.json").read_text()) for n in args.merge]
        runs = [r for p in parts for r in p["runs"]]
        folds = parts[0]["folds"]
        write_json(args.out, {"machine": machine(), "folds": folds, "seeds": sorted({r["seed"] for r in runs}),
                              "merged_from": args.merge, "runs": runs})
        text = (f"## The auxiliary model on {folds[-1]} folds against {folds[0]}, flat features "
                f"(`benchmarks/aux_folds.py`)\n\nPublic path, one torch thread, merged from {', '.join(args.merge)}. "
                "cleanlab in brackets (5-fold probabilities of the same learner and recipe).\n\n" + table(runs, folds))
        write_markdown(args.out, text)
        print(text)
        return
    torch.set_num_threads(1)
    features, rate, kind = SETTINGS[args.settings[0]]
    X, y = features(args.seeds[0])
    public_run(X, y, np.zeros(len(y), bool), seed=0, y=y, cleanlab=False)  # one-time costs out of the timings
    runs: list[dict] = []
    t0 = time.perf_counter()
    for name in args.settings:
        for seed in args.seeds:
            for i, folds in enumerate(args.folds):
                runs.append(one(name, seed, folds, cleanlab=(i == 0 and not args.no_cleanlab), estimate_count=args.estimate_count))
                r = runs[-1]
                print(f"{name} seed {seed} folds {folds}: flagged {r['flags']['flagged_share']:.4f} F1 {r['flags']['f1']} "
                      f"AP {r['ap_default']} aux {r['aux_accuracy']} ({r['wall_s']:.1f} s)", flush=True)
                write_json(args.out, {"machine": machine(), "folds": args.folds, "seeds": args.seeds, "runs": runs})
    text = (f"## The auxiliary model on {args.folds[-1]} folds against {args.folds[0]}, flat features "
            f"(`benchmarks/aux_folds.py`)\n\nPublic path, seeds {args.seeds}, one torch thread "
            f"({time.perf_counter() - t0:.0f} s in all). cleanlab in brackets (5-fold probabilities of the same "
            "learner and recipe).\n\n" + table(runs, args.folds))
    write_markdown(args.out, text)
    print(text)


if __name__ == "__main__":
    main()

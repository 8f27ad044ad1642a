"""Relabel suggestions by evidence source on sklearn digits (1,797 rows, 64 features, the default MLP).

For the rows the default run flags: relabel coverage and accuracy when the suggestion comes from the
members' mean probabilities, the cross-fitted probabilities, or their mean (``detect_images.suggestion_sources``);
beside them the stage's own suggestions (the fitted run decided with ``action="relabel"``) and cleanlab's
``predicted_label`` (argmax of 5-fold probabilities of the same MLP and recipe) on the same relabeled rows.
Writes benchmarks/results/suggest_sources.json and .md.
Run: .venv/bin/python benchmarks/suggest_sources.py

``--rules``: candidate relabel rules on every setting of ``detect.py`` (and ``--images``: digits28 through the
public image path, 800 rows), seeds ``--seeds``. Each (setting, seed) is fitted once through the public path
(``common.fit_public``, every default); its evidence is kept in ``--evidence-dir`` (one ``.npz`` each: the members'
mean probabilities, the cross-fitted probabilities and their model's check, cleanlab's 5-fold probabilities of the
stage's own learner, the flagged rows, given and true labels), so the rules are compared on the very same flagged
rows and a rerun reuses it. Per rule and setting: relabel accuracy (relabeled rows given their true label; mean and
lowest over seeds), coverage (relabeled / flagged) and cleanlab's ``predicted_label`` accuracy on the same relabeled
rows. The rules are applied before the small-class rule and the caps. Among them the reverse-flip veto
(``decisions.suggest.reverse_flip_veto``) at the levels ``VETO_ALPHAS``; each run also records how many flagged rows
the veto would touch, split into rows whose given label was right and flipped rows (``veto_on_flagged_rows``).
Writes ``relabel_rules.json`` / ``.md``.
Run: .venv/bin/python benchmarks/suggest_sources.py --rules [--seeds 0 1 2] [--images]
     [--image-rows 800] [--image-chains 2]   (image settings at another size, or with GEXConfig.image_chains
     set: the evidence files are named by both, so two member settings compare on the same data and seeds)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
from sklearn.datasets import load_digits

from common import check, fit_public, machine, measure_public, targets_markdown, write_json, write_markdown
from detect_images import suggestion_sources
from influence_stage.data.noise import flip_labels

RATES = (0.1, 0.2)


def main() -> None:
    torch.set_num_threads(1)
    X, y = load_digits(return_X_y=True)
    results = []
    for rate in RATES:
        y_noisy, flipped = flip_labels(y, rate, random_state=0)
        # the cap raised so the noisier setting is measured, not refused (the planted rate is known here)
        cleaner, run = fit_public(X.astype(np.float32), seed=0, y=y_noisy, cleaner_kwargs={"max_drop_fraction": 1.0})
        flags = cleaner.issues_["is_issue"].to_numpy()
        aux = getattr(cleaner.result_, "auxiliary", None)
        results.append({"setting": f"digits uniform {rate:.0%}", "seed": 0, "n_rows": int(len(y)),
                        "n_flagged": int(flags.sum()), "precision": float(flipped[flags].mean()),
                        "estimated_noise_rate": cleaner.estimated_noise_rate_,
                        "auxiliary_accuracy": None if aux is None else aux.accuracy,
                        "auxiliary_epochs": None if aux is None else list(aux.epochs),
                        "stage": measure_public(cleaner, run, y, flipped, seed=0),
                        "sources": suggestion_sources(cleaner, flags, y)})
        print(results[-1]["setting"], results[-1]["stage"]["relabel"], flush=True)
    print(f"wrote {write_json('suggest_sources', {'machine': machine(), 'results': results})}")
    print(f"wrote {write_markdown('suggest_sources', markdown(results))}")


def markdown(results: list[dict]) -> str:
    f = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    lines = ["## Relabel suggestions by evidence source (`benchmarks/suggest_sources.py`)", "",
             "sklearn digits (1,797 rows, 64 features), uniform flips, seed 0, the default MLP through "
             "`InfluenceCleaner` (drop cap raised to 1.0). For the rows the default run flags: coverage (share of "
             "flagged rows a rule relabels) and accuracy (relabeled rows given their true label) per source and rule "
             "(`detect_images.suggestion_sources`: `argmax` relabels when the argmax differs from the given label with "
             "p ≥ 0.5; `other`: the best other label when its p ≥ 0.5; `other-conditional`: the same with the given "
             "label's probability taken out). Stage = the fitted run decided with `action=\"relabel\"`; CL pred = "
             "cleanlab's `predicted_label` accuracy on the stage's relabeled rows.", ""]
    for r in results:
        st = r["stage"]
        lines += [f"### {r['setting']} ({r['n_flagged']} flagged, precision {r['precision']:.3f}, estimated rate "
                  f"{f(r['estimated_noise_rate'])}, auxiliary accuracy {f(r['auxiliary_accuracy'])})", "",
                  "| source / rule | coverage | accuracy |", "|---|---|---|"]
        for name, v in r["sources"].items():
            lines.append(f"| {name} | {f(v['coverage'])} | {f(v['accuracy'])} |")
        rl = st["relabel"]
        lines += [f"| **stage (`action=\"relabel\"`)** | {f(rl['coverage'])} | {f(rl['accuracy'])} |",
                  f"| cleanlab `predicted_label` on the stage's relabeled rows | — | "
                  f"{f(st['cleanlab']['predicted_label_accuracy_on_relabeled'])} |", ""]
    checks = []
    for r in results:
        rl, cl = r["stage"]["relabel"], r["stage"]["cleanlab"]
        checks.append(check(r["setting"], "relabel accuracy ≥ 0.95", rl["accuracy"], 0.95))
        checks.append(check(r["setting"], "relabel accuracy ≥ cleanlab predicted_label accuracy on the same rows",
                            rl["accuracy"], cl["predicted_label_accuracy_on_relabeled"]))
        checks.append(check(r["setting"], "suggested = given on flagged rows (count) = 0",
                            float(rl["suggested_equals_given_on_flagged"]), 0.0, "<="))
    return "\n".join(lines) + "\n" + targets_markdown(checks, "Targets")


# ---------------------------------------------------------------------------------------------------------------
# --rules: candidate relabel rules on the same flagged rows
# ---------------------------------------------------------------------------------------------------------------

IMAGE_ROWS = 800
IMAGE_SETTINGS = {"digits28 uniform 20%": "uniform", "digits28 class-dependent 20%": "asymmetric"}
#: settings held to relabel accuracy >= 0.95 (the rest: >= cleanlab's predicted_label accuracy on the same rows)
HELD_95 = ("digits", "synthetic", "weak features")


def _stem(name: str, seed: int, rows: int = IMAGE_ROWS, chains: int | None = None) -> str:
    size = "" if name not in IMAGE_SETTINGS or rows == IMAGE_ROWS else f"_r{rows}"
    members = "" if name not in IMAGE_SETTINGS or chains is None else f"_ch{chains}"
    return "".join(c if c.isalnum() or c in "%-" else "_" for c in name) + f"{size}{members}_s{seed}"


def collect_evidence(name: str, seed: int, where: Path, rows: int = IMAGE_ROWS, chains: int | None = None) -> Path:
    """Fit ``name`` (a ``detect.py`` setting or an image setting) once through the public path and save the
    evidence every rule reads (module docstring); an existing file is reused. Image settings draw ``rows`` images;
    ``chains`` sets ``GEXConfig.image_chains`` (None: the default), and such a run reuses cleanlab's 5-fold
    probabilities of the default run on the same data when that run's evidence is there (the folds do not depend
    on the members)."""
    from influence_stage.engine.baselines import cross_validated_proba
    from influence_stage.engine.learner import TensorData
    from influence_stage.engine.losses import mean_member_proba
    from influence_stage.stage.steps import learner_data

    path = where / f"{_stem(name, seed, rows, chains)}.npz"
    if path.exists():
        return path
    reuse = where / f"{_stem(name, seed, rows)}.npz"
    if name in IMAGE_SETTINGS:
        from detect_images import make_data

        from influence_stage import GEXConfig

        data, y_true, _ = make_data("digits28", rows, 0.20, IMAGE_SETTINGS[name], seed)
        kwargs = {"label_column": "label"}
        if chains is not None:
            kwargs["gex_config"] = GEXConfig(image_chains=chains)
        cleaner, _ = fit_public(data, seed=seed, cleaner_kwargs=kwargs)
    else:
        from detect import SETTINGS

        features, rate, kind = SETTINGS[name]
        X, y_true = features(seed)
        y_noisy, _ = flip_labels(y_true, rate, kind=kind, random_state=seed)
        cleaner, _ = fit_public(X, seed=seed, y=y_noisy)
    pipe, res = cleaner.pipeline_, cleaner.result_
    members = mean_member_proba(res.learner, res.members, learner_data(res.learner, pipe.prepared, pipe.features))
    learner, given = cleaner.learner_, np.asarray(pipe.features.y)
    default = np.load(reuse) if chains is not None and reuse.exists() else None
    if default is not None and np.array_equal(default["given"], given):
        cl = default["CL"]
    else:
        cl = cross_validated_proba(lambda f: learner.fresh_copy(seed=seed + 100 + f),
                                   TensorData.from_arrays(pipe.features.X, given), cleaner.config_.fit, folds=5,
                                   seed=seed)
    aux = res.auxiliary
    where.mkdir(parents=True, exist_ok=True)
    np.savez(path, M=members, Q=np.asarray(res.oos_proba) if res.oos_proba is not None else np.zeros(0), CL=cl,
             given=given, y_true=np.asarray(y_true), flags=cleaner.issues_["is_issue"].to_numpy().astype(bool),
             aux_acc=np.nan if aux is None else aux.accuracy, aux_rel=True if aux is None else aux.reliable)
    return path


def _best_other(P: np.ndarray, given: np.ndarray) -> np.ndarray:
    other = P.copy()
    other[np.arange(len(given)), given] = -np.inf
    return other.argmax(1)


def rules() -> dict:
    """name -> rule(ev) -> (suggested (m,), relabeled (m,) bool) on the m flagged rows of one evidence dict.

    ``P`` is the stage's suggestion probabilities (``decisions.suggest.suggestion_proba``: the mean of the members'
    and the cross-fitted probabilities when the cross-fitted model is reliable, else the members'), ``M`` the
    members', ``Q`` the cross-fitted ones, ``s`` the best label other than the given one ``y``."""
    from influence_stage.decisions.suggest import RELABEL_MARGIN, REVERSE_FLIP_ALPHA, WEAK_AUXILIARY_MIN_PROBA

    def chosen(margin, floor):
        return lambda e: (e["s"], (e["ps"] >= (0.5 if e["rel"] else floor)) & (e["ps"] - e["py"] >= margin - 1e-12))

    def vetoed(alpha):  # margin and floor, less the moves against the run's flip pattern (reliable model only)
        floors = chosen(RELABEL_MARGIN, WEAK_AUXILIARY_MIN_PROBA)
        return lambda e: (e["s"], floors(e)[1] & ~e["veto"][alpha])  # no veto without a reliable model

    base = f"margin {RELABEL_MARGIN:g} + weak floor {WEAK_AUXILIARY_MIN_PROBA:g}"

    out = {
        "P[s] ≥ 0.5 (the former rule)": lambda e: (e["s"], e["ps"] >= 0.5),
        "P[s] ≥ 0.7": lambda e: (e["s"], e["ps"] >= 0.7),
        "P[s] ≥ 0.8": lambda e: (e["s"], e["ps"] >= 0.8),
        "cross-fitted alone: Q[s'] ≥ 0.5": lambda e: (e["sQ"], e["Q"][e["i"], e["sQ"]] >= 0.5),
        "both agree: M and Q pick s, P[s] ≥ 0.5": lambda e: (e["s"], (e["sM"] == e["s"]) & (e["sQ"] == e["s"])
                                                             & (e["ps"] >= 0.5)),
        "min(M[s], Q[s]) ≥ 0.6": lambda e: (e["s"], np.minimum(e["M"][e["i"], e["s"]], e["Q"][e["i"], e["s"]]) >= 0.6),
        "floor from the auxiliary's accuracy a: P[s] ≥ 1 − a/2": lambda e: (e["s"], e["ps"] >= 1 - e["acc"] / 2),
        "conditional: P[s] / (1 − P[y]) ≥ 0.8": lambda e: (e["s"], e["ps"] / np.maximum(1 - e["py"], 1e-12) >= 0.8),
        "margin only: P[s] ≥ 0.5, P[s] − P[y] ≥ 0.3": chosen(0.3, 0.5),
        "weak floor only: P[s] ≥ 0.5, weak model: ≥ 0.75": chosen(-1.0, 0.75),
        "margin 0.2 + weak floor 0.75": chosen(0.2, 0.75),
        "margin 0.3 + weak floor 0.7": chosen(0.3, 0.7),
        "margin 0.4 + weak floor 0.75": chosen(0.4, 0.75),
        "margin 0.5 + weak floor 0.75": chosen(0.5, 0.75),
        f"{base} (adopted before the veto)": chosen(RELABEL_MARGIN, WEAK_AUXILIARY_MIN_PROBA),
        **{f"{base} + reverse-flip veto p < {a:g}" + (" (adopted)" if a == REVERSE_FLIP_ALPHA else ""): vetoed(a)
           for a in VETO_ALPHAS},
    }
    return out


#: significance levels of the reverse-flip veto measured (``decisions.suggest.reverse_flip_veto``)
VETO_ALPHAS = (0.05, 0.2)
#: further levels at which taking the vetoed flagged rows out of the flags was measured (``flags_f1``)
UNFLAG_ALPHAS = (0.01, 0.001)


def evaluate(path: Path) -> dict:
    """Each rule's relabel figures on one (setting, seed)'s flagged rows."""
    from influence_stage.decisions.suggest import reverse_flip_veto

    d = dict(np.load(path))
    r = np.flatnonzero(d["flags"])
    M, given, y_true = d["M"][r], d["given"][r], d["y_true"][r]
    Q = d["Q"][r] if d["Q"].size else M
    rel = bool(d["aux_rel"]) and bool(d["Q"].size)
    P = (M + Q) / 2 if rel else M
    i = np.arange(r.size)
    s = _best_other(P, given)
    ev = {"i": i, "M": M, "Q": Q, "P": P, "s": s, "ps": P[i, s], "py": P[i, given], "rel": rel,
          "sM": _best_other(M, given), "sQ": _best_other(Q, given),
          "acc": float(d["aux_acc"]) if np.isfinite(d["aux_acc"]) else 1.0}
    moved = d["given"].copy()
    moved[r] = s  # every flagged row moved to its best other label; the joint is over all rows
    ev["veto"] = {a: (reverse_flip_veto(d["given"], moved, d["Q"], a)[r] if rel else np.zeros(r.size, bool))
                  for a in VETO_ALPHAS + UNFLAG_ALPHAS}
    cl = d["CL"][r].argmax(1)
    target = _flip_targets(d["given"], d["y_true"])
    out = {"n_flagged": int(r.size), "flag_precision": float((given != y_true).mean()) if r.size else None,
           "auxiliary_accuracy": float(d["aux_acc"]), "auxiliary_reliable": bool(d["aux_rel"]), "rules": {}}
    out["flags_f1"] = flags_f1(d, r, ev["veto"])
    flipped = given != y_true
    out["veto_on_flagged_rows"] = {f"p < {a:g}": {"given_was_right": int((ev["veto"][a] & ~flipped).sum()),
                                                   "flipped": int((ev["veto"][a] & flipped).sum())}
                                   for a in VETO_ALPHAS}  # what un-flagging the vetoed rows would remove
    for name, rule in rules().items():
        lab, ok = rule(ev) if r.size else (np.zeros(0, int), np.zeros(0, bool))
        wrong = ok & (lab != y_true)
        kept = wrong & (given == y_true)  # a right given label replaced
        out["rules"][name] = {"n_relabeled": int(ok.sum()), "coverage": float(ok.mean()) if r.size else None,
                              "accuracy": float((lab[ok] == y_true[ok]).mean()) if ok.any() else None,
                              "cleanlab_predicted_label_accuracy": float((cl[ok] == y_true[ok]).mean()) if ok.any()
                              else None,
                              "wrong": {"n": int(wrong.sum()), "given_was_right": int(kept.sum()),
                                        "to_flip_target": int((wrong & (lab == target[given])).sum()),
                                        "cross_fitted_proba_of_new_label_where_given_was_right":
                                            [float(v) for v in Q[i[kept], lab[kept]]]}}
    return out


def flags_f1(d: dict, rows: np.ndarray, veto: dict) -> dict | None:
    """Flagged-row F1 against the planted flips of one evidence dict: the run's flags; the flags less the
    flagged ``rows`` whose move to their best other label the reverse-flip veto rejects (``veto``: level ->
    ``(len(rows),)`` bool, as ``evaluate`` computes it; un-flagging, measured and not adopted); and
    cleanlab's ``find_label_issues`` on its 5-fold probabilities. None without flips."""
    from cleanlab.filter import find_label_issues

    flipped, flags = d["given"] != d["y_true"], d["flags"].astype(bool)
    if not flipped.any():
        return None

    def f1(mask):
        return float(2 * (mask & flipped).sum() / (mask.sum() + flipped.sum()))

    out = {"flags": f1(flags), "cleanlab find_label_issues": f1(find_label_issues(d["given"], d["CL"]))}
    for a, vetoed in veto.items():
        kept = flags.copy()
        kept[rows[vetoed]] = False
        out[f"unflag p < {a:g}"] = f1(kept)
    return out


def _flip_targets(given: np.ndarray, y_true: np.ndarray) -> np.ndarray:
    """``(K,)``: for each true class, the label its flipped rows were most often given (-1 where none was flipped):
    under class-dependent flips the class its true images are flipped into."""
    K = int(max(given.max(), y_true.max())) + 1
    flipped = given != y_true
    counts = np.zeros((K, K), dtype=np.int64)
    np.add.at(counts, (y_true[flipped], given[flipped]), 1)
    return np.where(counts.sum(1) > 0, counts.argmax(1), -1)


def compare_flags(path: Path, default: Path) -> dict:
    """The flags of ``path`` (a run with other member chains) against ``default``'s on the same data: rows flagged by
    one and not the other, and each run's flag precision."""
    a, b = np.load(path), np.load(default)
    fa, fb, flipped = a["flags"], b["flags"], a["given"] != a["y_true"]
    return {"n_flagged": [int(fb.sum()), int(fa.sum())], "swapped": int((fa & ~fb).sum()),
            "precision": [float(flipped[fb].mean()), float(flipped[fa].mean())]}


def rules_markdown(runs: list[dict], image_rows: int = IMAGE_ROWS, image_chains: int | None = None) -> str:
    names = list(dict.fromkeys(r["setting"] for r in runs))
    rule_names = list(runs[0]["rules"])
    f = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731

    def agg(name, rule, key):
        v = [r["rules"][rule][key] for r in runs if r["setting"] == name and r["rules"][rule][key] is not None]
        return v

    lines = ["## Relabel rules on the same flagged rows (`benchmarks/suggest_sources.py --rules`)", "",
             f"Every setting of `detect.py`{' and digits28 images (' + str(image_rows) + ' rows, public image path' + ('' if image_chains is None else f', {image_chains} member chains') + ')' if any(n in IMAGE_SETTINGS for n in names) else ''}, "
             f"seeds {sorted({r['seed'] for r in runs})}; each (setting, seed) fitted once with every default, and every "
             "rule applied to the same flagged rows (before the small-class rule and the caps). P = the stage's "
             "suggestion probabilities (members' and cross-fitted averaged when the cross-fitted model is reliable, else "
             "the members'), M = members', Q = cross-fitted, s = the best label other than the given one y. A cell: "
             "accuracy mean over seeds (lowest seed) / coverage mean; CL = cleanlab's `predicted_label` accuracy on the "
             "same relabeled rows (mean). Clean-label settings are left out (every relabel there is wrong, for every "
             "rule and for cleanlab).", ""]
    shown = [n for n in names if "clean labels" not in n]
    lines += ["| rule | " + " | ".join(shown) + " |", "|---" * (len(shown) + 1) + "|"]
    for rule in rule_names:
        cells = []
        for n in shown:
            acc, cov, cl = agg(n, rule, "accuracy"), agg(n, rule, "coverage"), agg(n, rule,
                                                                                "cleanlab_predicted_label_accuracy")
            if not acc:
                cells.append(f"— / {np.mean(cov):.2f}" if cov else "—")
                continue
            mark = " ✗" if n.startswith(HELD_95) and np.mean(acc) < 0.95 else ""
            mark += " <CL" if cl and np.mean(acc) < np.mean(cl) - 1e-12 else ""
            cells.append(f"{np.mean(acc):.3f} ({min(acc):.2f}) / {np.mean(cov):.2f}; CL {np.mean(cl):.2f}{mark}")
        lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    lines += ["", "✗: mean accuracy under 0.95 on a setting held to it (digits, synthetic, weak features, images); "
                  "<CL: under cleanlab's `predicted_label` accuracy on the same rows.", "",
              "Per setting: flagged rows, their precision, the auxiliary model's held-out accuracy on the given labels "
              "and whether it passed the reliability check (mean over seeds):", "",
              "| setting | flagged | flag precision | auxiliary accuracy | reliable (seeds) |", "|---|---|---|---|---|"]
    for n in names:
        rs = [r for r in runs if r["setting"] == n]
        prec = [r["flag_precision"] for r in rs if r["flag_precision"] is not None]
        lines.append(f"| {n} | {np.mean([r['n_flagged'] for r in rs]):.0f} | {f(np.mean(prec) if prec else None)} | "
                     f"{np.mean([r['auxiliary_accuracy'] for r in rs]):.3f} | "
                     f"{sum(r['auxiliary_reliable'] for r in rs)} of {len(rs)} |")
    adopted = next(r for r in rule_names if r.endswith("(adopted)"))
    checks = []
    for n in shown:
        acc = agg(n, adopted, "accuracy")
        cl = agg(n, adopted, "cleanlab_predicted_label_accuracy")
        if n.startswith(HELD_95):
            checks.append(check(n, "relabel accuracy ≥ 0.95 (adopted rule, seed mean)",
                                float(np.mean(acc)) if acc else None, 0.95))
        checks.append(check(n, "relabel accuracy ≥ cleanlab predicted_label accuracy on the same rows",
                            float(np.mean(acc)) if acc else None, float(np.mean(cl)) if cl else None))
    return "\n".join(lines) + "\n\n" + targets_markdown(checks, "Targets (the adopted rule)")


def main_rules(argv: list[str]) -> None:
    import argparse

    from detect import SETTINGS

    parser = argparse.ArgumentParser(description="candidate relabel rules on the same flagged rows")
    parser.add_argument("--rules", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS) + list(IMAGE_SETTINGS))
    parser.add_argument("--images", action="store_true", help=f"add the digits28 image settings ({IMAGE_ROWS} rows)")
    parser.add_argument("--image-seeds", type=int, nargs="+", default=None, help="seeds of the image settings "
                        "(default --seeds; an image run takes minutes)")
    parser.add_argument("--image-rows", type=int, default=IMAGE_ROWS, help="images per image setting")
    parser.add_argument("--image-chains", type=int, default=None, help="GEXConfig.image_chains of the image runs "
                        "(default: the stage's)")
    parser.add_argument("--evidence-dir", type=Path, default=Path("/tmp/relabel_evidence"))
    parser.add_argument("--cached-only", action="store_true", help="only the (setting, seed) pairs whose evidence is "
                        "already in --evidence-dir (fits nothing)")
    parser.add_argument("--out", default="relabel_rules")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    plan = [(n, s) for s in args.seeds for n in args.settings if n not in IMAGE_SETTINGS]
    if args.images:
        plan += [(n, s) for s in (args.image_seeds or args.seeds) for n in IMAGE_SETTINGS]
    else:
        plan += [(n, s) for s in (args.image_seeds or args.seeds) for n in args.settings if n in IMAGE_SETTINGS]
    runs = []
    for name, seed in plan:
        path = args.evidence_dir / f"{_stem(name, seed, args.image_rows, args.image_chains)}.npz"
        if not path.exists() and args.cached_only:
            continue
        path = collect_evidence(name, seed, args.evidence_dir, args.image_rows, args.image_chains)
        runs.append({"setting": name, "seed": seed, **evaluate(path)})
        default = args.evidence_dir / f"{_stem(name, seed, args.image_rows)}.npz"
        if default != path and default.exists():  # the same data with the default members: [default, this run]
            runs[-1]["flags_against_default_members"] = compare_flags(path, default)
        print(f"{name} seed {seed}: {runs[-1]['n_flagged']} flagged", flush=True)
    print(f"wrote {write_json(args.out, {'machine': machine(), 'seeds': args.seeds, 'image_rows': args.image_rows, 'image_chains': args.image_chains, 'runs': runs})}")
    print(f"wrote {write_markdown(args.out, rules_markdown(runs, args.image_rows, args.image_chains))}")


if __name__ == "__main__":
    if "--rules" in sys.argv[1:]:
        main_rules(sys.argv[1:])
    else:
        main()

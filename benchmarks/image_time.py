"""Where the default run's time goes on images, and cheaper variants of its scoring, beside cleanlab.

One digits28 setting (``image_data.digits28``, a ``datasets.Dataset`` with an ``Image`` column) through
``InfluenceCleaner(label_column="label")``: the image featurizer and the default batch-norm CNN. Each
variant changes only ``gex_config`` fields (the auxiliary model's cap and first round on image rows,
the probed rates, the members); everything else is the default. Every training and evaluation call of
the run is timed and attributed to its part (θ*, the auxiliary halves round by round, the scale's
probe, the members, the loss passes, the decision), and cleanlab's ``find_label_issues`` on 5-fold
probabilities of the same learner and recipe runs once in the same process, so every variant's time
ratio is measured side by side with it.

Reported per variant: whole-job seconds and the ratio to cleanlab's, the split, AP of the default
ranking and of the exact GEX score, flagged-row F1, the estimated noise rate, the auxiliary model's
out-of-sample accuracy (given labels and true labels) and epochs, the chosen rate.

Writes benchmarks/results/<out>.json and benchmarks/results/<out>.md.
Run: .venv/bin/python benchmarks/image_time.py [--setting NAME] [--seed 0] [--rows 800] [--variants NAME ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
from sklearn.metrics import average_precision_score

from common import RESULTS, count_rules, machine, stage_learner, write_json
from detect_images import SETTINGS, flag_metrics, make_data
from influence_stage import InfluenceCleaner
from influence_stage.api.persist import FIELDS_BEFORE_SAVED
from influence_stage.config import GEXConfig
from influence_stage.engine import learner as learner_mod
from influence_stage.engine import losses as losses_mod
from influence_stage.engine.baselines import confident_learning_scores, cross_validated_proba
from influence_stage.engine.learner import TensorData
from influence_stage.errors import ValidationFailedError

GRID4 = (0.0125, 0.025, 0.05, 0.1)
#: The image-only fields before the image defaults changed: the auxiliary halves up to θ*'s epochs in doubling
#: rounds from a quarter of them, the full rate grid, the flat cycle floor, no shifted halves, one view. The
#: variants built with ``_v`` state all seven (with the halves at θ*'s rate), so their names mean the same run
#: whatever the current defaults are; "default" and the "aux-shift*" / "aux-noshift" / "aux-views*" variants take the
#: current defaults for every field they do not name (each names both image_aux_shift and image_aux_views; since
#: image_aux_lr_scale=4 they run at four times θ*'s rate, where they were measured at θ*'s).
PREVIOUS_IMAGE_FIELDS = {k: v for k, v in FIELDS_BEFORE_SAVED.items() if k.startswith(("image_", "floored_aux_"))}


def _v(**fields) -> dict:
    return {**PREVIOUS_IMAGE_FIELDS, **fields}


#: name -> GEXConfig fields (applied on top of the cleaner's own seeds); "default" is the current defaults
#: (the fields of "aux-3q-1round+grid4+cycle6" with shifted halves, five views, the count ``both`` and the halves
#: at four times θ*'s rate); "chains" is global, the others image-only
VARIANTS: dict[str, dict] = {
    "default": {},
    "previous-default": _v(),
    "default-eval4096": _v(image_eval_batch_size=None),
    "aux-half": _v(floored_aux_share=0.5),
    "aux-half-1round": _v(floored_aux_share=0.5, floored_aux_first=1.0),
    "aux-quarter-1round": _v(floored_aux_share=0.25, floored_aux_first=1.0),
    "aux-half-1round+grid4+cycle6": _v(floored_aux_share=0.5, floored_aux_first=1.0, image_lr_grid=GRID4,
                                       image_min_cycle_steps=6),
    "aux-3q-1round+grid4+cycle6": _v(floored_aux_share=0.75, floored_aux_first=1.0, image_lr_grid=GRID4,
                                     image_min_cycle_steps=6),
    "aux-full-1round+grid4+cycle6": _v(floored_aux_share=1.0, floored_aux_first=1.0, image_lr_grid=GRID4,
                                       image_min_cycle_steps=6),
    "aux-quarter-1round+grid4+cycle6": _v(floored_aux_share=0.25, floored_aux_first=1.0, image_lr_grid=GRID4,
                                          image_min_cycle_steps=6),
    "aux-quarter-1round+grid4+chains4+cycle6": _v(floored_aux_share=0.25, floored_aux_first=1.0, image_lr_grid=GRID4,
                                                  chains=4, image_min_cycle_steps=6),
    # the cross-fitted halves trained on randomly shifted images (the default since it was measured: 2), each
    # scoring the other half from one view (the image itself; the default before image_aux_views=5)
    "aux-noshift": {"image_aux_shift": 0, "image_aux_views": 1},
    "aux-shift1": {"image_aux_shift": 1, "image_aux_views": 1},
    "aux-shift2": {"image_aux_shift": 2, "image_aux_views": 1},
    "aux-shift3": {"image_aux_shift": 3, "image_aux_views": 1},
    # the halves' probabilities as the mean over shifted views (the default since it was measured: 5)
    "aux-views5": {"image_aux_shift": 2, "image_aux_views": 5},
    "aux-views9": {"image_aux_shift": 2, "image_aux_views": 9},
    "aux-shift3-views5": {"image_aux_shift": 3, "image_aux_views": 5},
    # more folds for the auxiliary model: 3 folds at the same share of θ*'s epochs (twice the halves' steps), and
    # 3 or 5 folds at the share that keeps the halves' total steps, at θ*'s rate as measured
    "aux-3fold": {"aux_folds": 3, "image_aux_lr_scale": 1.0},
    "aux-3fold-samesteps": {"aux_folds": 3, "floored_aux_share": 0.375, "image_aux_lr_scale": 1.0},
    "aux-5fold-samesteps": {"aux_folds": 5, "floored_aux_share": 0.1875, "image_aux_lr_scale": 1.0},
    # the halves' own rate (a multiple of θ*'s) and batch on image rows, at the same epochs
    "aux-lr2x": {"image_aux_lr_scale": 2.0},
    "aux-lr4x": {"image_aux_lr_scale": 4.0},
    "aux-bs32": {"image_aux_batch_size": 32, "image_aux_lr_scale": 1.0},
    "aux-lr2x-bs32": {"image_aux_lr_scale": 2.0, "image_aux_batch_size": 32},
    # the "estimate" threshold's count as cleanlab's find_label_issues(filter_by="both") on the halves' probabilities
    "count-both": {"estimate_count": "both", "image_aux_lr_scale": 1.0},
    # the halves at θ*'s own rate (the default before image_aux_lr_scale=4), under the current count
    "aux-lr1x": {"image_aux_lr_scale": 1.0},
    # the halves at half θ*'s epochs on image rows (the default: three quarters), at the current rate
    "aux-lr4x-half": {"image_aux_lr_scale": 4.0, "floored_aux_share": 0.5},
    "aux-lr4x-count-both": {"image_aux_lr_scale": 4.0, "estimate_count": "both"},
}
# every variant above was run on the two-block CNN with the GEX rank in the image ranking and 8 member chains on
# image rows (image_chains=None: chains), so each name keeps meaning that run
VARIANTS = {name: fields if name == "default" else {"cnn_blocks": 2, "image_gex_rank": True, "image_chains": None,
                                                     **fields}
            for name, fields in VARIANTS.items()}
# the default with a three-block CNN (GEXConfig.cnn_blocks; the results it_cnn3_* ran it as the default of their
# commit, variant "default", with the GEX rank and 8 chains)
VARIANTS["cnn3"] = {"cnn_blocks": 3, "image_gex_rank": True, "image_chains": None}
# the image ranking of the time before image_gex_rank=False, with 8 chains as it ran
VARIANTS["gex-rank"] = {"image_gex_rank": True, "image_chains": None}
# fewer members: 2 chains (the chosen rate's two probe chains, continued) × 4 cycles = 8 members instead of 32; on
# image rows the default since image_chains=2
VARIANTS["chains2"] = {"chains": 2}
# 8 member chains on image rows: the default before image_chains=2
VARIANTS["chains8"] = {"image_chains": None}

#: innermost known function on the stack -> the part of the run it belongs to
PARTS = (("cross_fit", "auxiliary"), ("choose_ft_lr", "scale probe"), ("build_chains", "members"),
         ("result_from_members", "loss passes"), ("decide_step", "decide"), ("make_model_step", "θ*"))


def part_of_stack() -> str:
    f = sys._getframe(2)
    while f is not None:
        for fn, part in PARTS:
            if f.f_code.co_name == fn:
                return part
        f = f.f_back
    return "other"


class Recorder:
    """Times every training / evaluation call of ``TorchLearner`` and every loss matrix, by part."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self._saved: list[tuple] = []
        self._depth = 0

    def wrap(self, owner, name: str, describe) -> None:
        original = getattr(owner, name)
        rec = self

        def timed(*args, **kwargs):
            t = time.perf_counter()
            nested = rec._depth > 0  # inside another timed call, whose time already holds this one's
            rec._depth += 1
            try:
                out = original(*args, **kwargs)
            finally:
                rec._depth -= 1
            rec.events.append({"call": name, "part": part_of_stack(), "s": time.perf_counter() - t,
                               "nested": nested, **describe(args, kwargs)})
            return out

        self._saved.append((owner, name, original))
        setattr(owner, name, timed)

    def __enter__(self) -> "Recorder":
        TL = learner_mod.TorchLearner

        def fit_desc(a, k):
            data, recipe = a[1], a[2]
            return {"rows": len(data), "epochs": int(recipe.epochs_for(len(data), tuple(data.X.shape[1:]))),
                    "steps": int(recipe.epochs_for(len(data), tuple(data.X.shape[1:])) * recipe.steps_per_epoch(len(data)))}

        self.wrap(TL, "fit", fit_desc)
        self.wrap(TL, "predict_proba", lambda a, k: {"rows": len(a[1])})
        self.wrap(TL, "per_sample_loss", lambda a, k: {"rows": len(a[1])})
        self.wrap(TL, "train_chains", lambda a, k: {"chains": len(a[1]), "steps": int(a[3])})
        self.wrap(TL, "train_steps", lambda a, k: {"steps": int(a[2])})
        self.wrap(TL, "loss_and_proba", lambda a, k: {"rows": len(a[1])})
        self.wrap(losses_mod, "_member_stat", lambda a, k: {"members": len(a[1])})
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)

    def split(self) -> dict:
        out: dict = defaultdict(lambda: defaultdict(float))
        for e in self.events:
            if not e.get("nested"):  # a nested call's seconds are in its caller's
                out[e["part"]][e["call"]] += e["s"]
        return {p: dict(v) for p, v in out.items()}


def run_variant(name: str, setting: str, seed: int, rows: int, y_true, flipped, data) -> dict:
    fields = VARIANTS[name]
    gex = GEXConfig(seed=seed, **fields)
    cleaner = InfluenceCleaner(label_column="label", random_state=seed, gex_config=gex)
    with Recorder() as rec:
        t, c = time.perf_counter(), time.process_time()
        gate = "passed"
        try:
            cleaner.fit(data)
        except ValidationFailedError as exc:  # the fit is kept for inspection: measure it, and say so
            gate = f"refused: {str(exc)[:120]}"
        wall, cpu = time.perf_counter() - t, time.process_time() - c
    res, pipe = cleaner.result_, cleaner.pipeline_
    y_given = np.asarray(pipe.features.y)
    flags = cleaner.issues_["is_issue"].to_numpy()
    out = {"variant": name, "fields": {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()},
           "setting": setting, "seed": seed, "n_rows": rows, "wall_s": wall, "cpu_s": cpu, "gate": gate,
           "timings": {k: float(v) for k, v in cleaner.timings_.items()}, "split": rec.split(), "events": rec.events,
           "ap_default": float(average_precision_score(flipped, cleaner.scores_)),
           "ap_gex": float(average_precision_score(flipped, cleaner.gex_influence_)),
           "flags": flag_metrics(flipped, flags), "estimated_noise_rate": cleaner.estimated_noise_rate_,
           "score_name": cleaner.score_name_, "ft_lr": cleaner.ft_lr_, "theta_fit": float(res.theta_fit),
           "warnings": list(pipe.summary.get("warnings", []))}
    if res.auxiliary is not None:
        out["aux_given_accuracy"] = res.auxiliary.accuracy
        out["aux_reliable"] = res.auxiliary.reliable
        out["aux_majority_rate"] = res.auxiliary.majority_rate
        out["aux_epochs"] = list(res.auxiliary.epochs)
    if res.oos_proba is not None:
        out["aux_true_accuracy"] = float((res.oos_proba.argmax(1) == y_true).mean())
    if res.gex_agreement is not None:  # the exact GEX score against the cross-fitted model (engine.gex)
        out["gex_agreement"] = {"ap": res.gex_agreement.ap, "chance": res.gex_agreement.chance}
        # what the cut would be under cleanlab's other counting rules on the same probabilities
        out["count_rules"] = count_rules(y_given, res.oos_proba, cleaner.scores_, flipped)
    return out


def run_cleanlab(setting: str, seed: int, data, y_true, flipped, cnn_blocks: int | None = None) -> dict:
    """cleanlab's whole job the way ``detect_images.run_setting`` times it: featurizing + 5 fits + CL, on the
    default CNN or one of ``cnn_blocks`` blocks."""
    from influence_stage.stage.steps import featurize_step, prepare

    gex = None if cnn_blocks is None else GEXConfig(seed=seed, cnn_blocks=cnn_blocks)  # as the variants' cleaners
    cleaner = InfluenceCleaner(label_column="label", random_state=seed, gex_config=gex)
    config, _ = cleaner._config()
    t, c = time.perf_counter(), time.process_time()
    features = featurize_step(prepare(data, config), config)
    X, y_noisy = np.asarray(features.X), np.asarray(features.y)
    learner = stage_learner(config, X.shape[1:], int(y_noisy.max()) + 1)
    with Recorder() as rec:
        proba = cross_validated_proba(lambda f: learner.fresh_copy(seed=seed + 100 + f),
                                      TensorData.from_arrays(X, y_noisy), config.fit, folds=5, seed=seed)
    scores, issues = confident_learning_scores(y_noisy, proba)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    return {"wall_s": wall, "cpu_s": cpu, "ap": float(average_precision_score(flipped, scores)), "flags": flag_metrics(flipped, issues),
            "cv_true_accuracy": float((proba.argmax(1) == y_true).mean()), "events": rec.events}


def markdown(payload: dict) -> str:
    cl = payload.get("cleanlab")
    head = (f"cleanlab (5 folds, same CNN and recipe): {cl['wall_s']:.0f} s, AP {cl['ap']:.3f}, F1 "
            f"{cl['flags']['f1']:.3f}, CV accuracy vs true labels {cl['cv_true_accuracy']:.3f}" if cl else
            "cleanlab: not measured in this run (no time ratio)")
    if not cl:  # the table's comparisons need a cleanlab that never wins
        cl = {"wall_s": float("nan"), "ap": float("inf"), "flags": {"f1": float("inf")}}
    lines = [f"### {payload['setting']}, seed {payload['seed']}, {payload['n_rows']} rows", "",
             f"{head}; load average at start {payload['load_start']:.2f}, at end {payload.get('load_end', 0.0):.2f}.", "",
             "| variant | time ratio | CPU ratio | whole s | θ* s | aux s (epochs per half) | probe s | members s | loss passes s | "
             "decide s | AP default | AP GEX | F1 | est. rate (true) | aux acc given / true (kappa, reliable) | ft_lr |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in payload["variants"]:
        sp = {p: sum(v.values()) for p, v in r["split"].items()}
        ok = "**" if r["ap_default"] >= cl["ap"] and r["flags"]["f1"] >= cl["flags"]["f1"] else ""
        cpu = f"{r['cpu_s'] / cl['cpu_s']:.2f}" if "cpu_s" in r and "cpu_s" in cl else "—"
        f = r["flags"]  # true rate = true positives / recall over the rows
        true_rate = f["n_flagged"] * f["precision"] / f["recall"] / r["n_rows"] if f["recall"] else float("nan")
        acc, maj = r.get("aux_given_accuracy", float("nan")), r.get("aux_majority_rate")
        kappa = f"{(acc - maj) / (1 - maj):.2f}, " if maj is not None else ""
        reliable = {True: "yes", False: "no"}.get(r.get("aux_reliable"), "—")
        lines.append(
            f"| {r['variant']} | {r['wall_s'] / cl['wall_s']:.2f} | {cpu} | {r['wall_s']:.0f} | {sp.get('θ*', 0):.0f} | "
            f"{sp.get('auxiliary', 0):.0f} ({r.get('aux_epochs')}) | {sp.get('scale probe', 0):.0f} | "
            f"{sp.get('members', 0):.0f} | {sp.get('loss passes', 0):.0f} | {r['timings'].get('decide', 0):.0f} | "
            f"{ok}{r['ap_default']:.3f}{ok} | {r['ap_gex']:.3f} | {ok}{r['flags']['f1']:.3f}{ok} | "
            f"{r['estimated_noise_rate']:.3f} ({true_rate:.3f}) | {acc:.3f} / "
            f"{r.get('aux_true_accuracy', float('nan')):.3f} ({kappa}{reliable}) | {r['ft_lr']:.4g} |")
    return "\n".join(lines) + "\n"


def profile_table(r: dict) -> str:
    """Every timed call of one variant's run, summed by part and call (seconds, count, SGD steps, rows)."""
    agg: dict = defaultdict(lambda: {"s": 0.0, "n": 0, "steps": 0, "members": 0})
    for e in r["events"]:
        a = agg[(e["part"], e["call"])]
        a["s"] += e["s"]
        a["n"] += 1
        a["steps"] += int(e.get("steps", 0)) * int(e.get("chains", 1))
        a["members"] += int(e.get("members", 0))
    lines = ["| part | call | seconds | calls | SGD steps | members evaluated |", "|---|---|---|---|---|---|"]
    for (part, call), a in sorted(agg.items(), key=lambda kv: -kv[1]["s"]):
        lines.append(f"| {part} | {call} | {a['s']:.1f} | {a['n']} | {a['steps'] or '—'} | {a['members'] or '—'} |")
    timed = sum(e["s"] for e in r["events"] if not e.get("nested"))  # a nested call is inside its caller's time
    lines.append(f"| all timed calls (nested ones once) | | {timed:.1f} | | | |")
    steps = " · ".join(f"{k} {v:.1f}" for k, v in r["timings"].items() if v >= 0.05)
    aux = [f"{e['epochs']} epochs ({e['steps']} steps) {e['s']:.1f} s" for e in r["events"]
           if e["part"] == "auxiliary" and e["call"] == "fit"]
    return ("\n".join(lines) + f"\n\nStage steps (s): {steps}; whole job {r['wall_s']:.1f} s.\n\n"
            f"Auxiliary rounds (half 1 then half 2): {'; '.join(aux)}.\n")


def rule_row(r: dict, cl: dict) -> dict:
    """One variant's run against the adoption rule: AP and flagged-row F1 at least cleanlab's, the estimated
    noise rate within ±30% of the true rate, the auxiliary model reliable (``AuxiliaryCheck.reliable``)."""
    f = r["flags"]
    true_rate = f["n_flagged"] * f["precision"] / f["recall"] / r["n_rows"]
    rel = r["estimated_noise_rate"] / true_rate - 1.0
    maj = r.get("aux_majority_rate")
    checks = {"ap": r["ap_default"] >= cl["ap"], "f1": f["f1"] >= cl["flags"]["f1"], "estimate": abs(rel) <= 0.30,
              "aux": bool(r.get("aux_reliable"))}
    return {"wall": r["wall_s"] / cl["wall_s"], "cpu": r["cpu_s"] / cl["cpu_s"] if "cpu_s" in r and "cpu_s" in cl
            else None, "true_rate": true_rate, "rel": rel, "checks": checks, "meets": all(checks.values()),
            "kappa": (r["aux_given_accuracy"] - maj) / (1 - maj) if maj is not None else None}


def decision_table(runs: list[dict]) -> str:
    """Every variant × setting × seed against the rule (``rule_row``), then each variant's verdict over all."""
    mark = {True: "yes", False: "**no**"}
    lines = ["| variant | setting | seed | time ratio (wall) | CPU ratio | AP (cleanlab) | F1 (cleanlab) | est. rate "
             "(true, rel.) | aux acc (kappa) reliable | rule met |", "|---|---|---|---|---|---|---|---|---|---|"]
    verdict: dict = defaultdict(list)
    for run in runs:
        cl = run["cleanlab"]
        for r in run["variants"]:
            q = rule_row(r, cl)
            verdict[r["variant"]].append(q)
            c = q["checks"]
            cpu = f"{q['cpu']:.2f}" if q["cpu"] is not None else "—"
            kappa = f"{q['kappa']:.3f}" if q["kappa"] is not None else "—"
            lines.append(
                f"| {r['variant']} | {run['setting']} | {run['seed']} | {q['wall']:.2f} | {cpu} | "
                f"{r['ap_default']:.4f} ({cl['ap']:.4f}) {mark[c['ap']]} | {r['flags']['f1']:.4f} "
                f"({cl['flags']['f1']:.4f}) {mark[c['f1']]} | {r['estimated_noise_rate']:.3f} ({q['true_rate']:.3f}, "
                f"{q['rel']:+.0%}) {mark[c['estimate']]} | {r['aux_given_accuracy']:.3f} ({kappa}) {mark[c['aux']]} | "
                f"{mark[q['meets']]} |")
    lines += ["", "| variant | runs | rule met on every run | wall ratio (range) | CPU ratio (range) |", "|---|---|---|---|---|"]
    for name, qs in verdict.items():
        cpus = [q["cpu"] for q in qs if q["cpu"] is not None]
        cpu = f"{min(cpus):.2f}–{max(cpus):.2f} ({len(cpus)} runs)" if cpus else "—"
        lines.append(f"| {name} | {len(qs)} | {mark[all(q['meets'] for q in qs)]} | "
                     f"{min(q['wall'] for q in qs):.2f}–{max(q['wall'] for q in qs):.2f} | {cpu} |")
    return "\n".join(lines) + "\n"


def compare(names: list[str], a: str, b: str, out: str) -> str:
    """Variants ``a`` and ``b`` of the same runs side by side (stage only, ``--no-cleanlab`` runs allowed):
    per setting and seed, then the seed means per setting; writes ``<out>.md`` and returns it. Runs of one
    setting and seed in several files are merged (a baseline from one file, the variant from another; a
    variant found in two files is taken from the later one); a run without both variants is left out."""
    # the same setting and seed from several files (a baseline run earlier, the variant later) count as one run
    merged: dict[tuple[str, int], dict] = {}
    for n in names:
        run = json.loads((RESULTS / f"{n}.json").read_text())
        key = (run["setting"], run["seed"])
        if key in merged:
            merged[key]["variants"] = merged[key]["variants"] + run["variants"]
        else:
            merged[key] = run
    runs = [r for r in merged.values() if {a, b} <= {v["variant"] for v in r["variants"]}]
    lines = [f"| setting | seed | AP {a} → {b} | F1 | flagged | estimate error (true rate) | aux accuracy given / true "
             f"| aux reliable | aux s |", "|---|---|---|---|---|---|---|---|---|"]
    by_setting: dict[str, list[tuple[dict, dict]]] = {}
    aux_s = lambda v: sum(v["split"].get("auxiliary", {}).values())  # noqa: E731
    for run in sorted(runs, key=lambda r: (r["setting"], r["seed"])):
        vs = {v["variant"]: v for v in run["variants"]}
        va, vb = vs[a], vs[b]
        by_setting.setdefault(run["setting"], []).append((va, vb))
        fl = va["flags"]  # the flipped share, from the flags: flagged × precision / recall
        true = fl["n_flagged"] * fl["precision"] / fl["recall"] / run["n_rows"] if fl["recall"] > 0 else 0.0
        err = (lambda v: f"{100 * (v['estimated_noise_rate'] / true - 1):+.0f}%") if true else (lambda v: "—")
        lines.append(f"| {run['setting']} | {run['seed']} | {va['ap_default']:.4f} → {vb['ap_default']:.4f} | "
                     f"{va['flags']['f1']:.3f} → {vb['flags']['f1']:.3f} | {100 * va['flags']['flagged_share']:.2f}% → "
                     f"{100 * vb['flags']['flagged_share']:.2f}% | {err(va)} → {err(vb)} ({true:.3f}) | "
                     f"{va.get('aux_given_accuracy', 0):.3f} / {va.get('aux_true_accuracy', 0):.3f} → "
                     f"{vb.get('aux_given_accuracy', 0):.3f} / {vb.get('aux_true_accuracy', 0):.3f} | "
                     f"{va.get('aux_reliable')} → {vb.get('aux_reliable')} | {aux_s(va):.0f} → {aux_s(vb):.0f} |")
    lines += ["", "Seed means:", "", f"| setting | seeds | AP {a} → {b} | F1 | flagged | aux s |", "|---|---|---|---|---|---|"]
    for setting, pairs in by_setting.items():
        m = lambda i, f: float(np.mean([f(p[i]) for p in pairs]))
        lines.append(f"| {setting} | {len(pairs)} | {m(0, lambda v: v['ap_default']):.4f} → {m(1, lambda v: v['ap_default']):.4f} | "
                     f"{m(0, lambda v: v['flags']['f1']):.3f} → {m(1, lambda v: v['flags']['f1']):.3f} | "
                     f"{100 * m(0, lambda v: v['flags']['flagged_share']):.2f}% → {100 * m(1, lambda v: v['flags']['flagged_share']):.2f}% | "
                     f"{m(0, aux_s):.1f} → {m(1, aux_s):.1f} |")
    text = "\n".join(lines) + "\n"
    write_json(out, {"machine": machine(), "compare": [a, b], "runs": runs})
    (RESULTS / f"{out}.md").write_text(text)
    return text


def combine(names: list[str], out: str, notes: str | None = None) -> None:
    """One JSON and one markdown of several runs: the trade-off table per setting and the default's profile."""
    runs = [json.loads((RESULTS / f"{n}.json").read_text()) for n in names]
    write_json(out, {"machine": machine(), "runs": runs})
    text = ["## The default run on images against cleanlab's time (`benchmarks/image_time.py`)", "",
            "SGD steps of each variant from the engine's own rules (`--plan`; the auxiliary halves with every "
            "doubling round taken; a member-batch step costs about two θ*-batch steps):", "",
            plan_table(runs[0]["n_rows"] if runs else 800), ""]
    cost_file = RESULTS / f"{out}_step_cost.json"
    if cost_file.exists():
        cost = json.loads(cost_file.read_text())
        text += [f"Measured step costs (`--step-cost`, one thread, load average {cost['load_start']:.1f}): SGD step "
                 f"{1000 * cost['train_step_batch_64_s']:.0f} ms at batch 64, {1000 * cost['train_step_batch_128_s']:.0f} "
                 f"ms at batch 128; forward pass over {cost['rows']} rows "
                 + ", ".join(f"{v:.2f} s at eval batch {k.split('_')[-2]}" for k, v in cost.items()
                             if k.startswith("forward_pass")) + ". Estimated seconds per part (a model from "
                 "the plan and these costs, not a run; the runs below measure):", "", estimate_table(cost, cost["rows"]), ""]
    text += ["### Every variant against the adoption rule", "",
             "Rule: default-ranking AP ≥ cleanlab's, flagged-row F1 ≥ cleanlab's, the estimated noise rate within "
             "±30% of the true rate and the auxiliary model reliable (`AuxiliaryCheck.reliable`: kappa ≥ 0.55), on "
             "every measured setting and seed. Ratios are to cleanlab's job in the same process; the CPU ratio "
             "(process CPU seconds) is the steadier one when other work loads the machine.", "",
             decision_table(runs), ""]
    for run in runs:
        text.append(markdown(run))
        for r in run["variants"]:
            if r["variant"] in ("default", "previous-default"):
                text += [f"#### Where the {r['variant']} run's time goes ({run['setting']}, seed {run['seed']})", "",
                         profile_table(r)]
    if notes:
        text += ["", Path(notes).read_text()]
    (RESULTS / f"{out}.md").write_text("\n".join(text))


def sgd_plan(fields: dict, n: int, shape: tuple[int, ...] = (1, 28, 28)) -> dict:
    """SGD steps and member evaluations one run of ``n`` image rows takes under ``fields``, from the
    engine's own rules (no training): θ* at the recipe's batch, the auxiliary halves at theirs, the probe and
    the members at the member batch; the auxiliary models (``aux_folds`` of them) with every doubling round
    taken (an upper bound: the held-out rule may stop one earlier). Cleanlab: 5 folds of the θ* recipe on 4/5 of the rows."""
    from influence_stage.config import FitConfig
    from influence_stage.engine.auxiliary import round_plan
    from influence_stage.engine.members import cycle_steps, probe_grid

    fit, gex = FitConfig(), GEXConfig(**fields)
    half = n - n // gex.aux_folds  # rows each auxiliary model trains on (half of them for the default 2 folds)
    cap, first = round_plan(n, half, shape, config=gex, fit_config=fit)
    rounds, done, step = [], 0, first
    while done < cap:
        step = min(step, cap - done)
        rounds.append(step)
        done += step
        step = done
    aux_fit = fit if gex.image_aux_batch_size is None else fit.model_copy(update={"batch_size": gex.image_aux_batch_size})
    per_half = sum(rounds) * aux_fit.steps_per_epoch(half)
    cyc = cycle_steps(n, gex, None, shape)
    k = min(gex.probe_chains, gex.chains)
    probe_members = len(probe_grid(gex, shape)) * k * gex.probe_cycle_count
    member_cycles = gex.chains * gex.cycles - k * gex.probe_cycle_count
    fold = n - n // 5
    return {"theta_steps": fit.epochs_for(n, shape) * fit.steps_per_epoch(n), "aux_rounds_epochs": rounds,
            "aux_steps": gex.aux_folds * per_half, "cycle_steps": cyc, "probe_steps": probe_members * cyc,
            "member_steps": member_cycles * cyc, "probe_members_evaluated": probe_members,
            "members": gex.chains * gex.cycles, "theta_batch": fit.batch_size, "aux_batch": aux_fit.batch_size, "member_batch": gex.batch_size,
            "cleanlab_steps": 5 * fit.epochs_for(fold, shape) * fit.steps_per_epoch(fold)}


def step_cost(n: int = 800, steps: int = 40) -> dict:
    """Seconds of one SGD step of the default CNN at the θ* batch and at the member batch, of one
    forward pass over ``n`` rows, and of shifting one θ*-batch of images by ``GEXConfig.image_aux_shift``
    pixels (``engine.training.random_shift``, what a cross-fitted half adds per step), and of the halves'
    held-out probabilities of ``n`` rows from one view and from ``GEXConfig.image_aux_views`` (what the views
    add per round); random 28×28 rows, one thread, with the load average beside them."""
    import os

    from influence_stage.config import FitConfig
    from influence_stage.engine.learner import CosineSchedule
    from influence_stage.engine.models import build_model
    from influence_stage.engine.sources import torch_learner

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    data = TensorData.from_arrays(rng.normal(size=(n, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, n))
    learner = torch_learner(build_model("auto", (1, 28, 28), 10, seed=0), GEXConfig())
    learner.train_steps(data, 3, CosineSchedule(0.05, 3))  # warm-up
    out = {"load_start": os.getloadavg()[0], "rows": n}
    for batch in (FitConfig().batch_size, GEXConfig().batch_size):
        learner.batch_size = batch
        t = time.perf_counter()
        learner.train_steps(data, steps, CosineSchedule(0.05, steps))
        out[f"train_step_batch_{batch}_s"] = (time.perf_counter() - t) / steps
    for size in (GEXConfig().eval_batch_size, GEXConfig().image_eval_batch_size):
        learner.eval_batch_size = size
        t = time.perf_counter()
        for _ in range(5):
            learner.per_sample_loss(data)
        out[f"forward_pass_eval_batch_{size}_s"] = (time.perf_counter() - t) / 5
    from influence_stage.engine.training import random_shift

    batch, gen, reps = data.X[:FitConfig().batch_size], torch.Generator().manual_seed(0), 500
    random_shift(batch, GEXConfig().image_aux_shift, gen)  # warm-up
    t = time.perf_counter()
    for _ in range(reps):
        random_shift(batch, GEXConfig().image_aux_shift, gen)
    out[f"shift_batch_{FitConfig().batch_size}_s"] = (time.perf_counter() - t) / reps
    # what the halves' shifted views add per round: each half scores its n/2 held-out rows from every view, so
    # both halves together score all n rows once more per extra view (engine.auxiliary.held_out_proba)
    from influence_stage.engine.auxiliary import held_out_proba

    learner.eval_batch_size = GEXConfig().image_eval_batch_size
    views = GEXConfig().image_aux_views
    t = time.perf_counter()
    held_out_proba(learner, data, 1)
    one = time.perf_counter() - t
    t = time.perf_counter()
    held_out_proba(learner, data, views)
    out[f"held_out_views_{views}_s"] = time.perf_counter() - t
    out["held_out_views_1_s"] = one
    out["load_end"] = os.getloadavg()[0]
    return out


def estimate_table(cost: dict, n: int) -> str:
    """Seconds per part of each variant estimated from its SGD plan and the measured step costs: a model,
    not a run (the auxiliary halves with every round taken, a step at their batch costing the θ* step times
    their batch over 64; forward passes: one per member evaluated,
    the probe's and the members' loss matrices and the decision's mean probabilities, one at θ* each)."""
    c64, c128 = cost["train_step_batch_64_s"], cost["train_step_batch_128_s"]
    lines = [f"| variant ({n} rows, eval batch) | θ* | aux | probe | members | loss passes | decide | sum | cleanlab | "
             "ratio |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, fields in VARIANTS.items():
        p = sgd_plan(fields, n)
        eb = GEXConfig(**fields).image_eval_batch_size or GEXConfig().eval_batch_size
        fwd = cost.get(f"forward_pass_eval_batch_{eb}_s")
        if fwd is None:
            continue
        # a half's step at another batch costs in proportion to its rows (the CPU's cost is per image)
        parts = [p["theta_steps"] * c64, p["aux_steps"] * c64 * p["aux_batch"] / 64, p["probe_steps"] * c128 + (p["probe_members_evaluated"] + 1) * fwd,
                 p["member_steps"] * c128, (p["members"] + 1) * fwd, p["members"] * fwd]
        clean = p["cleanlab_steps"] * c64 + cost[f"forward_pass_eval_batch_{GEXConfig().eval_batch_size}_s"]
        lines.append(f"| {name} ({eb}) | " + " | ".join(f"{x:.0f}" for x in parts) +
                     f" | {sum(parts):.0f} | {clean:.0f} | {sum(parts) / clean:.2f} |")
    return "\n".join(lines) + "\n"


def plan_table(n: int) -> str:
    lines = [f"| variant ({n} rows) | θ* steps | aux rounds (epochs per half) | aux steps | cycle steps | probe steps | "
             "member steps | members | cleanlab steps |", "|---|---|---|---|---|---|---|---|---|"]
    for name, fields in VARIANTS.items():
        p = sgd_plan(fields, n)
        lines.append(f"| {name} | {p['theta_steps']} (batch {p['theta_batch']}) | {p['aux_rounds_epochs']} | "
                     f"{p['aux_steps']} (batch {p['aux_batch']}) | {p['cycle_steps']} | {p['probe_steps']} (batch "
                     f"{p['member_batch']}) | {p['member_steps']} (batch {p['member_batch']}) | {p['members']} | "
                     f"{p['cleanlab_steps']} (batch {p['theta_batch']}) |")
    return "\n".join(lines) + "\n"


def main() -> None:
    import os

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--notes", default=None, help="a markdown file appended by --combine")
    parser.add_argument("--combine", nargs="*", default=None, help="result names to put together into --out")
    parser.add_argument("--setting", default="digits28 uniform 20%", choices=[s for s in SETTINGS if "digits28" in s or "shapes32" in s])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", type=int, default=800)
    parser.add_argument("--variants", nargs="+", default=["default"], choices=list(VARIANTS))
    parser.add_argument("--out", default="image_time")
    parser.add_argument("--cleanlab-after", type=int, default=0, help="run cleanlab after this many variants (still "
                        "in the same process; a run stopped early keeps the variants' profiles)")
    parser.add_argument("--step-cost", action="store_true", help="time one SGD step at each batch and one forward "
                        "pass (seconds of CPU; writes <out>_step_cost.json)")
    parser.add_argument("--plan", action="store_true", help="print the SGD steps of every variant (no training)")
    parser.add_argument("--compare", nargs=2, default=None, metavar=("A", "B"), help="with --combine: variants A "
                        "and B of the named runs side by side, per run and as seed means")
    parser.add_argument("--cleanlab-blocks", type=int, default=None, help="cleanlab's CNN: GEXConfig.cnn_blocks "
                        "(default: the stage's default)")
    parser.add_argument("--no-cleanlab", action="store_true", help="the stage's variants only (cleanlab's side of the "
                        "same data and seed is in an earlier run's file)")
    args = parser.parse_args()
    if args.step_cost:
        cost = step_cost(args.rows)
        write_json(f"{args.out}_step_cost", cost)
        print(cost)
        return
    if args.plan:
        print(plan_table(args.rows))
        return
    if args.compare and args.combine is None:
        parser.error("--compare needs --combine NAME ... (the runs whose variants it puts side by side)")
    if args.combine is not None and args.compare:
        print(compare(args.combine, *args.compare, args.out))
        return
    if args.combine is not None:
        combine(args.combine, args.out, args.notes)
        return
    torch.set_num_threads(1)
    kind, _, rate, noise = SETTINGS[args.setting]
    data, y_true, flipped = make_data(kind, args.rows, rate, noise, args.seed)
    payload = {"machine": machine(), "setting": args.setting, "seed": args.seed, "n_rows": args.rows,
               "load_start": os.getloadavg()[0], "variants": []}
    payload["cleanlab"] = None

    def cleanlab() -> None:
        payload["cleanlab"] = run_cleanlab(args.setting, args.seed, data, y_true, flipped, args.cleanlab_blocks)
        payload["cleanlab"]["cnn_blocks"] = args.cleanlab_blocks or GEXConfig().cnn_blocks
        print(f"cleanlab: {payload['cleanlab']['wall_s']:.0f}s AP {payload['cleanlab']['ap']:.3f}", flush=True)
        write_json(args.out, payload)
        (RESULTS / f"{args.out}.md").write_text(markdown(payload))

    for i, name in enumerate(args.variants):
        if i == args.cleanlab_after and not args.no_cleanlab:
            cleanlab()
        r = run_variant(name, args.setting, args.seed, args.rows, y_true, flipped, data)
        payload["variants"].append(r)
        payload["load_end"] = os.getloadavg()[0]
        cl_wall = payload["cleanlab"]["wall_s"] if payload["cleanlab"] else float("nan")
        print(f"{name}: {r['wall_s']:.0f}s ratio {r['wall_s'] / cl_wall:.2f} AP {r['ap_default']:.3f} "
              f"F1 {r['flags']['f1']:.3f} aux {r.get('aux_given_accuracy')} {r.get('aux_epochs')} split "
              f"{json.dumps({p: round(sum(v.values()), 1) for p, v in r['split'].items()})}", flush=True)
        write_json(args.out, payload)
        (RESULTS / f"{args.out}.md").write_text(markdown(payload))
    if payload["cleanlab"] is None and not args.no_cleanlab:
        cleanlab()


if __name__ == "__main__":
    main()

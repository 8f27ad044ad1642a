"""Detection through the public path users take: images, weak features and clean labels.

Each setting is handed to ``InfluenceCleaner(label_column="label")`` with every default (for images
a ``datasets.Dataset`` with an ``Image`` column: the image featurizer and the default CNN), the way
a new user calls it. Beside it, cleanlab's ``find_label_issues`` on 5-fold cross-validated
probabilities of the **same** model and recipe (fresh copies of the stage's own learner, on the
stage's own features). Reported per setting: AP of the default ranking, of the exact GEX score and of
cleanlab's label quality; flagged-row F1 of the default threshold and of cleanlab; estimated vs true
noise rate; the auxiliary model's out-of-sample accuracy; relabel accuracy and coverage (the same
fitted run decided again with ``action="relabel"``) and cleanlab's ``predicted_label`` accuracy on
the same rows; whole-job seconds of both (one run each; cleanlab's time counts the featurizing too).

Settings (generators in ``image_data.py``; sizes in ``SETTINGS``):

- ``digits28``: sklearn digits upscaled to 28×28 with random rotation, scale, shift and stroke width;
- ``shapes32``: procedural 32×32 RGB shapes × textures on cluttered noisy backgrounds;
- uniform and class-dependent ("asymmetric") flips, and no flips (clean labels);
- weak features: 400 digits rows with 16 features (pooled to 4×4, or the top two pixel rows only),
  correct labels and 20% flips.

Writes benchmarks/results/<out>.json and benchmarks/results/<out>.md.
Run: .venv/bin/python benchmarks/detect_images.py [--settings NAME ...] [--seeds 0 1 2] [--out NAME]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import pandas as pd
import torch
from sklearn.datasets import load_digits
from sklearn.metrics import average_precision_score, f1_score

from common import RESULTS, machine, stage_learner, write_json
from image_data import as_dataset, digits28, shapes32
from influence_stage import InfluenceCleaner
from influence_stage.data.noise import flip_labels
from influence_stage.engine.baselines import confident_learning_scores, cross_validated_proba
from influence_stage.engine.learner import TensorData


def weak_digits(n: int, seed: int, top: bool = False) -> pd.DataFrame:
    """``n`` digits rows with 16 weak features, as a frame with a ``label`` column: the 8×8 image
    pooled to 4×4, or (``top``) only its top two pixel rows."""
    X, y = load_digits(return_X_y=True)
    idx = np.random.default_rng(seed).permutation(len(y))[:n]
    pooled = X[idx, :16] if top else X[idx].reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(len(idx), 16)
    frame = pd.DataFrame(pooled.astype(np.float32), columns=[f"f{i}" for i in range(16)])
    frame["label"] = y[idx].astype(np.int64)
    return frame


#: name -> (data kind, rows, noise rate, noise kind)
SETTINGS: dict[str, tuple[str, int, float, str]] = {
    "digits28 uniform 20%": ("digits28", 2000, 0.20, "uniform"),
    "digits28 class-dependent 20%": ("digits28", 2000, 0.20, "asymmetric"),
    "shapes32 uniform 20%": ("shapes32", 2000, 0.20, "uniform"),
    "shapes32 class-dependent 20%": ("shapes32", 2000, 0.20, "asymmetric"),
    "digits28 clean labels": ("digits28", 2000, 0.0, "uniform"),
    "weak features (digits 4x4) clean labels": ("weak", 400, 0.0, "uniform"),
    "weak features (digits 4x4) uniform 20%": ("weak", 400, 0.20, "uniform"),
    "weak features (digits top 2 rows) clean labels": ("weak-top", 400, 0.0, "uniform"),
    "weak features (digits top 2 rows) uniform 20%": ("weak-top", 400, 0.20, "uniform"),
}


class Warnings(logging.Handler):
    """Collects the stage's logger warnings of one run."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def make_data(kind: str, n: int, rate: float, noise: str, seed: int):
    """The dataset as a user holds it (noisy labels), the true labels and the flipped mask."""
    if kind.startswith("weak"):
        frame = weak_digits(n, seed, top=kind == "weak-top")
        y = frame["label"].to_numpy()
    else:
        images, y = (digits28 if kind == "digits28" else shapes32)(n, seed=seed)
    if rate > 0:
        y_noisy, flipped = flip_labels(y, rate, kind=noise, random_state=seed)
    else:
        y_noisy, flipped = y.copy(), np.zeros(len(y), dtype=bool)
    if kind.startswith("weak"):
        frame = frame.assign(label=y_noisy)
        return frame, y, flipped
    return as_dataset(images, y_noisy), y, flipped


def flag_metrics(flipped: np.ndarray, flags: np.ndarray) -> dict:
    flags = np.asarray(flags, dtype=bool)
    return {"n_flagged": int(flags.sum()), "flagged_share": float(flags.mean()),
            "precision": float(flipped[flags].mean()) if flags.any() else 0.0,
            "recall": float(flags[flipped].mean()) if flipped.any() else 0.0,
            "f1": float(f1_score(flipped, flags, zero_division=0.0)) if flipped.any() else 0.0}


def suggestion_sources(cleaner, flags: np.ndarray, y_true: np.ndarray) -> dict:
    """Relabel accuracy and coverage on the flagged rows for each evidence source and rule.

    Sources: the members' mean probabilities, the cross-fitted probabilities, their mean. Rules:
    ``argmax`` (relabel when the argmax differs from the given label with probability >= 0.5),
    ``other`` (the best label other than the given one, when its probability >= 0.5) and
    ``other-conditional`` (the same, with the probabilities renormalised without the given label).
    """
    from influence_stage.engine.losses import mean_member_proba
    from influence_stage.stage.steps import learner_data

    pipe, res = cleaner.pipeline_, cleaner.result_
    data = learner_data(res.learner, pipe.prepared, pipe.features)
    given = np.asarray(pipe.features.y)
    sources = {"members": mean_member_proba(res.learner, res.members, data)}
    if res.oos_proba is not None:
        sources["cross-fitted"] = res.oos_proba
        sources["mean of both"] = (sources["members"] + res.oos_proba) / 2
    rows = np.flatnonzero(flags)
    out = {}
    for name, P in sources.items():
        P = np.asarray(P, dtype=np.float64)[rows]
        g = given[rows]
        other = P.copy()
        other[np.arange(len(rows)), g] = -1.0
        best = other.argmax(1)
        p_best = P[np.arange(len(rows)), best]
        cond = p_best / np.maximum(1.0 - P[np.arange(len(rows)), g], 1e-12)
        am = P.argmax(1)
        rules = {"argmax": (am, (am != g) & (P.max(1) >= 0.5)), "other": (best, p_best >= 0.5),
                 "other-conditional": (best, cond >= 0.5), "other-conditional-0.8": (best, cond >= 0.8)}
        for rule, (lab, ok) in rules.items():
            out[f"{name} / {rule}"] = {"coverage": float(ok.mean()) if len(rows) else 0.0,
                                       "accuracy": float((lab[ok] == y_true[rows][ok]).mean()) if ok.any() else None,
                                       "accuracy_all_flagged": float((best == y_true[rows]).mean()) if len(rows) else None}
    return out


def write_section(name: str, text: str) -> None:
    """The markdown table beside the JSON: ``benchmarks/results/<name>.md``."""
    (RESULTS / f"{name}.md").write_text(text.rstrip() + "\n")


def fit_config_for(kind: str, min_steps: int | None):
    """The θ* recipe of a run: None (every default: image rows get ``FitConfig.min_steps``, flat
    features none). ``min_steps``: -1 the default, 0 no floor (the recipe before it), else that floor."""
    from influence_stage.config import FitConfig

    if min_steps == -1:
        return None
    if min_steps == 0:
        return FitConfig(min_steps=None)
    return FitConfig(min_steps=int(min_steps))


def save_arrays(cleaner, name: str, seed: int, y_true: np.ndarray, flipped: np.ndarray,
                extra: dict | None = None) -> None:
    """The run's evidence (cross-fitted and members' probabilities, θ*'s margins, scores) in an ``.npz``
    under ``$DETECT_IMAGES_ARRAYS`` when set, for measuring estimate and threshold variants offline."""
    import os

    where = os.environ.get("DETECT_IMAGES_ARRAYS")
    if not where:
        return
    from influence_stage.engine.losses import mean_member_proba
    from influence_stage.stage.steps import learner_data

    pipe, res = cleaner.pipeline_, cleaner.result_
    data = learner_data(res.learner, pipe.prepared, pipe.features)
    arrays = {"given": np.asarray(pipe.features.y), "true": y_true, "flipped": flipped,
              "scores": np.asarray(cleaner.scores_), "gex": np.asarray(cleaner.gex_influence_),
              "members": mean_member_proba(res.learner, res.members, data), **(extra or {})}
    for key in ("oos_proba", "train_margin"):
        if getattr(res, key, None) is not None:
            arrays[key] = np.asarray(getattr(res, key))
    Path(where).mkdir(parents=True, exist_ok=True)
    np.savez(array_path(where, name, seed), **arrays)


def array_path(where, name: str, seed: int, suffix: str = "") -> Path:
    return Path(where) / f"{name.replace(' ', '_').replace('%', 'pct')}_{seed}{suffix}.npz"


def cleanlab_side(name: str, seed: int, rows: int | None, min_steps: int, where: str) -> None:
    """cleanlab's half of ``run_setting`` in a process of its own (the same data, featurizer, model and
    recipe; fresh copies seeded as there): its 5-fold probabilities and seconds, saved beside the
    stage's arrays for ``merge``. Two processes finish sooner than one on a shared machine."""
    from influence_stage.stage.steps import featurize_step, prepare

    kind, n, rate, noise = SETTINGS[name]
    if rows is not None and not kind.startswith("weak"):
        n = rows
    data, y_true, flipped = make_data(kind, n, rate, noise, seed)
    cleaner = InfluenceCleaner(label_column="label", random_state=seed, fit_config=fit_config_for(kind, min_steps))
    config, _ = cleaner._config()
    t = time.perf_counter()
    features = featurize_step(prepare(data, config), config)
    X, y_noisy = np.asarray(features.X), np.asarray(features.y)
    learner = stage_learner(config, X.shape[1:], int(y_noisy.max()) + 1)
    proba = cross_validated_proba(lambda f: learner.fresh_copy(seed=seed + 100 + f), TensorData.from_arrays(X, y_noisy),
                                  config.fit, folds=5, seed=seed)
    wall = time.perf_counter() - t
    Path(where).mkdir(parents=True, exist_ok=True)
    np.savez(array_path(where, name, seed, "_cleanlab"), proba=proba, wall_s=wall, given=y_noisy)
    print(f"cleanlab side done: {name} seed {seed}: {wall:.0f}s", flush=True)


def merge(result: dict, where: str) -> dict:
    """A stage-only result (``--no-cleanlab``) completed with ``cleanlab_side``'s saved probabilities,
    the same figures ``run_setting`` computes in one process."""
    name, seed = result["setting"], result["seed"]
    ours = np.load(array_path(where, name, seed))
    cl = np.load(array_path(where, name, seed, "_cleanlab"))
    y_noisy, proba = ours["given"], cl["proba"]
    if not np.array_equal(y_noisy, cl["given"]):
        raise SystemExit(f"{name} seed {seed}: the two sides saw different labels")
    flipped, y_true = ours["flipped"].astype(bool), ours["true"]
    rel, rflags = ours["relabeled"].astype(bool), ours["relabel_flagged"].astype(bool)
    cl_scores, cl_issues = confident_learning_scores(y_noisy, proba)
    cl_wall = float(cl["wall_s"])
    out = dict(result)
    out["cleanlab"] = {"wall_s": cl_wall, "flags": flag_metrics(flipped, cl_issues), "separate_process": True,
                       "cv_true_accuracy": float((proba.argmax(1) == y_true).mean())}
    if flipped.any():
        out["cleanlab"]["ap"] = float(average_precision_score(flipped, cl_scores))
    pred = proba.argmax(1)
    out["cleanlab"]["predicted_label_accuracy_on_relabeled"] = float((pred[rel] == y_true[rel]).mean()) if rel.any() else None
    out["cleanlab"]["predicted_label_accuracy_on_flagged"] = (float((pred[rflags] == y_true[rflags]).mean())
                                                             if rflags.any() else None)
    out["time_ratio"] = result["wall_s"] / cl_wall
    return out


def run_setting(name: str, seed: int, rows: int | None = None, with_cleanlab: bool = True,
                min_steps: int = -1) -> dict:
    kind, n, rate, noise = SETTINGS[name]
    if rows is not None and not kind.startswith("weak"):
        n = rows
    data, y_true, flipped = make_data(kind, n, rate, noise, seed)
    logger = logging.getLogger("influence_stage")
    handler = Warnings()
    logger.addHandler(handler)
    t = time.perf_counter()
    fit_config = fit_config_for(kind, min_steps)
    cleaner = InfluenceCleaner(label_column="label", random_state=seed, fit_config=fit_config)
    gate = "passed"
    try:
        cleaner.fit(data)
    except Exception as exc:  # a refused output gate: measure the scores anyway, and say so
        from influence_stage.errors import ValidationFailedError

        if not isinstance(exc, ValidationFailedError):
            raise
        gate = f"refused: {str(exc)[:160]}"
        cleaner = InfluenceCleaner(label_column="label", random_state=seed, max_drop_fraction=1.0,
                                   fit_config=fit_config)
        t = time.perf_counter()
        cleaner.fit(data)
    wall = time.perf_counter() - t
    logger.removeHandler(handler)
    pipe = cleaner.pipeline_
    X, y_noisy = pipe.features.X, np.asarray(pipe.features.y)
    res = cleaner.result_
    table = cleaner.issues_
    flags = table["is_issue"].to_numpy()
    out: dict = {"setting": name, "seed": seed, "n_rows": n, "noise_rate": rate, "noise_kind": noise,
                 "n_flipped": int(flipped.sum()), "true_rate": float(flipped.mean()), "gate": gate,
                 "score_name": cleaner.score_name_, "ft_lr": cleaner.ft_lr_, "wall_s": wall,
                 "timings": {k: float(v) for k, v in cleaner.timings_.items()},
                 "estimated_noise_rate": cleaner.estimated_noise_rate_,
                 "default_flags": flag_metrics(flipped, flags), "warnings": sorted(set(handler.lines)),
                 "summary_warnings": list(pipe.summary.get("warnings", [])),
                 "theta_fit": float(res.theta_fit)}
    for key in ("auxiliary accuracy", "auxiliary reliable", "estimate source"):
        if key in pipe.summary:
            out[key.replace(" ", "_")] = pipe.summary[key]
    if res.auxiliary is not None:
        out["auxiliary_epochs"] = list(res.auxiliary.epochs)
    if res.oos_proba is not None:
        out["yardstick_true_accuracy"] = float((res.oos_proba.argmax(1) == y_true).mean())
        out["yardstick_given_accuracy"] = float((res.oos_proba.argmax(1) == y_noisy).mean())
    if flipped.any():
        out["ap_default"] = float(average_precision_score(flipped, cleaner.scores_))
        out["ap_gex"] = float(average_precision_score(flipped, cleaner.gex_influence_))
    # relabel: the same fitted run decided again with action="relabel"
    from influence_stage.stage.steps import decide_step

    relabel = decide_step(res, pipe.features, cleaner.config_.model_copy(update={"action": "relabel"}),
                          prepared=pipe.prepared).table
    rel = relabel["action"].to_numpy() == "relabel"
    sugg = relabel["suggested_label"].to_numpy(dtype=np.float64, na_value=np.nan)  # empty: NaN, never a label
    given = relabel["given_label"].to_numpy()
    rflags = relabel["is_issue"].to_numpy()
    out["relabel"] = {"n_flagged": int(rflags.sum()), "n_relabeled": int(rel.sum()),
                      "coverage": float(rel.sum() / max(rflags.sum(), 1)),
                      "accuracy": float((sugg[rel] == y_true[rel]).mean()) if rel.any() else None,
                      "suggested_equals_given_on_flagged": int(np.sum((sugg == given)[rflags]))}
    out["suggestion_sources"] = suggestion_sources(cleaner, flags, y_true)
    save_arrays(cleaner, name, seed, y_true, flipped, extra={"relabeled": rel, "relabel_flagged": rflags})
    recipe = cleaner.config_.fit
    n_fit = len(y_noisy)
    out["fit_config"] = recipe.model_dump(mode="json")
    out["fit_epochs"] = recipe.epochs_for(n_fit, tuple(np.shape(X)[1:]))
    out["fit_steps"] = out["fit_epochs"] * recipe.steps_per_epoch(n_fit)
    if not with_cleanlab:  # a before-run beside an after-run of the same data: cleanlab's side is the same
        out["cleanlab"], out["time_ratio"] = None, None
        return out
    # cleanlab: 5-fold CV probabilities of fresh copies of the stage's own learner, same recipe
    learner = cleaner.learner_
    tdata = TensorData.from_arrays(X, y_noisy)
    t = time.perf_counter()
    proba = cross_validated_proba(lambda f: learner.fresh_copy(seed=seed + 100 + f), tdata,
                                  cleaner.config_.fit, folds=5, seed=seed)
    cl_scores, cl_issues = confident_learning_scores(y_noisy, proba)
    cl_wall = time.perf_counter() - t + float(cleaner.timings_.get("featurize", 0.0))
    out["cleanlab"] = {"wall_s": cl_wall, "flags": flag_metrics(flipped, cl_issues),
                       "cv_true_accuracy": float((proba.argmax(1) == y_true).mean())}
    if flipped.any():
        out["cleanlab"]["ap"] = float(average_precision_score(flipped, cl_scores))
    pred = proba.argmax(1)
    out["cleanlab"]["predicted_label_accuracy_on_relabeled"] = float((pred[rel] == y_true[rel]).mean()) if rel.any() else None
    out["cleanlab"]["predicted_label_accuracy_on_flagged"] = (float((pred[rflags] == y_true[rflags]).mean())
                                                             if rflags.any() else None)
    out["time_ratio"] = wall / cl_wall
    return out


def markdown(results: list[dict], title: str) -> str:
    lines = [f"## {title} (`benchmarks/detect_images.py`)", "",
             "Each setting through `InfluenceCleaner(label_column=\"label\")` with every default (images: a "
             "`datasets.Dataset` with an `Image` column, the image featurizer and the default batch-norm CNN, "
             "θ*'s epochs and SGD steps per run in the targets table); cleanlab = `find_label_issues` on 5-fold probabilities of fresh "
             "copies of the stage's own learner with the same recipe. One run each; time = whole job (cleanlab: "
             "featurizing + 5 fits + confident learning). Aux acc = the auxiliary model's out-of-sample accuracy "
             "against the true labels. Relabel: the same fitted run decided with `action=\"relabel\"`; accuracy = "
             "relabeled rows given their true label; CL pred = cleanlab's `predicted_label` accuracy on those rows.", "",
             "| setting | seed | rows | default AP | GEX AP | cleanlab AP | default F1 | cleanlab F1 | flagged (CL) | "
             "est. rate | true rate | aux acc | relabel acc / coverage | CL pred acc | sugg = given | time ratio | warnings |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    f = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    for r in results:
        cl, d, rl = r["cleanlab"], r["default_flags"], r["relabel"]
        lines.append(
            f"| {r['setting']} | {r['seed']} | {r['n_rows']} | {f(r.get('ap_default'))} | {f(r.get('ap_gex'))} | "
            f"{f(cl.get('ap'))} | {f(d['f1'] if r['n_flipped'] else None)} | {f(cl['flags']['f1'] if r['n_flipped'] else None)} | "
            f"{d['n_flagged']} ({cl['flags']['n_flagged']}) | {f(r['estimated_noise_rate'])} | {r['true_rate']:.3f} | "
            f"{f(r.get('yardstick_true_accuracy'))} | {f(rl['accuracy'])} / {rl['coverage']:.2f} | "
            f"{f(cl['predicted_label_accuracy_on_relabeled'])} | {rl['suggested_equals_given_on_flagged']} | "
            f"{r['time_ratio']:.2f} | {len(r['summary_warnings'])} |")
    return "\n".join(lines) + "\n"


def _verdict(ok: bool, gap: str) -> str:
    return "met" if ok else f"missed by {gap}"


def targets(results: list[dict]) -> str:
    """Every measured figure against the targets of the image/weak/clean settings, one row per run.

    AP and F1 ≥ cleanlab's on the same model and recipe; estimated noise rate within ±30% (relative)
    of the true rate when that is ≥ 10%; clean labels: flagged share ≤ 2% and ≤ cleanlab's; weak
    features: no run flags more than 2× the true rate without a reliability warning; relabel accuracy
    ≥ 0.95 and ≥ cleanlab's ``predicted_label`` on the same rows; suggested = given on 0 flagged rows;
    whole job ≤ 0.5× cleanlab's.
    """
    lines = ["| setting | seed | rows | θ* epochs / steps | AP ≥ CL | F1 ≥ CL | estimate ±30% | clean: flagged ≤ 2% and ≤ CL | "
             "weak: > 2× true only with a warning | relabel ≥ 0.95 and ≥ CL pred | sugg = given 0 | time ≤ 0.5× CL |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        cl, d, rl = r["cleanlab"], r["default_flags"], r["relabel"]
        noisy = r["n_flipped"] > 0
        ap = (_verdict(r["ap_default"] >= cl["ap"], f"{cl['ap'] - r['ap_default']:.3f}") +
              f" ({r['ap_default']:.3f} vs {cl['ap']:.3f})") if noisy and cl else "—"
        f1 = (_verdict(d["f1"] >= cl["flags"]["f1"], f"{cl['flags']['f1'] - d['f1']:.3f}") +
              f" ({d['f1']:.3f} vs {cl['flags']['f1']:.3f})") if noisy and cl else "—"
        est = r["estimated_noise_rate"]
        if r["true_rate"] >= 0.10 and est is not None:
            rel = est / r["true_rate"] - 1.0
            estv = _verdict(abs(rel) <= 0.30, f"{abs(rel) - 0.30:.2f} relative") + f" ({est:.3f} vs {r['true_rate']:.3f})"
        else:
            estv = "—"
        if not noisy and cl:
            share, cls = d["flagged_share"], cl["flags"]["flagged_share"]
            clean = _verdict(share <= 0.02 and share <= cls,
                             f"{max(share - 0.02, share - cls):.3f}") + f" ({share:.1%} vs CL {cls:.1%})"
        else:
            clean = "—"
        if r["setting"].startswith("weak"):
            over = d["flagged_share"] > 2 * r["true_rate"]
            weak = "met" if not over or r["summary_warnings"] else "missed"
            weak += f" ({d['flagged_share']:.1%} flagged, {'a' if r['summary_warnings'] else 'no'} warning)"
        else:
            weak = "—"
        if rl["accuracy"] is not None and cl:
            clp = cl["predicted_label_accuracy_on_relabeled"]
            relv = _verdict(rl["accuracy"] >= 0.95 and rl["accuracy"] >= clp,
                            f"{max(0.95 - rl['accuracy'], clp - rl['accuracy']):.3f}") + f" ({rl['accuracy']:.3f} vs {clp:.3f}, coverage {rl['coverage']:.2f})"
        else:
            relv = "— (nothing relabeled)"
        sg = rl["suggested_equals_given_on_flagged"]
        tr = r["time_ratio"]
        timev = (_verdict(tr <= 0.5, f"{tr - 0.5:.2f}×") + f" ({tr:.2f}×: {r['wall_s']:.0f} s vs {cl['wall_s']:.0f} s)") if cl else "—"
        lines.append(f"| {r['setting']} | {r['seed']} | {r['n_rows']} | {r.get('fit_epochs')} / {r.get('fit_steps')} | {ap} | {f1} | "
                     f"{estv} | {clean} | {weak} | {relv} | {'met' if sg == 0 else f'missed ({sg})'} | {timev} |")
    return "\n".join(lines) + "\n"


def compare(before: list[dict], after: list[dict]) -> str:
    """Before/after rows of the same (setting, seed): the issue's targets side by side."""
    f = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    by = {(r["setting"], r["seed"]): r for r in before}
    lines = ["| setting | seed | rows | default AP before → after | cleanlab AP | GEX AP after | F1 before → after | "
             "cleanlab F1 | flagged before → after (CL) | est. rate before → after | true rate | aux acc before → after | "
             "relabel acc / coverage before → after | CL pred acc (after's rows) | sugg = given before → after | "
             "time ratio before → after | weak-aux warning after |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for a in after:
        b = by.get((a["setting"], a["seed"]))
        if b is None:
            continue
        noisy = a["n_flipped"] > 0
        lines.append(
            f"| {a['setting']} | {a['seed']} | {a['n_rows']} | {f(b.get('ap_default'))} → {f(a.get('ap_default'))} | "
            f"{f(a['cleanlab'].get('ap'))} | {f(a.get('ap_gex'))} | "
            f"{f(b['default_flags']['f1'] if noisy else None)} → {f(a['default_flags']['f1'] if noisy else None)} | "
            f"{f(a['cleanlab']['flags']['f1'] if noisy else None)} | {b['default_flags']['n_flagged']} → "
            f"{a['default_flags']['n_flagged']} ({a['cleanlab']['flags']['n_flagged']}) | "
            f"{f(b['estimated_noise_rate'])} → {f(a['estimated_noise_rate'])} | {a['true_rate']:.3f} | "
            f"{f(b.get('yardstick_true_accuracy'))} → {f(a.get('yardstick_true_accuracy'))} | "
            f"{f(b['relabel']['accuracy'])} / {b['relabel']['coverage']:.2f} → {f(a['relabel']['accuracy'])} / "
            f"{a['relabel']['coverage']:.2f} | {f(a['cleanlab']['predicted_label_accuracy_on_relabeled'])} | "
            f"{b['relabel']['suggested_equals_given_on_flagged']} → {a['relabel']['suggested_equals_given_on_flagged']} | "
            f"{b['wall_s'] / (b['cleanlab'] or a['cleanlab'])['wall_s']:.2f} → {a['time_ratio']:.2f} | "
            f"{'yes' if a.get('auxiliary_reliable') is False else 'no'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", default="detect_images")
    parser.add_argument("--no-cleanlab", action="store_true", help="skip cleanlab (same data, same learner: "
                        "a before-run whose after-run measures it)")
    parser.add_argument("--min-steps", type=int, default=-1, help="floor on θ*'s SGD steps for the image settings: "
                        "-1 the default (FitConfig.min_steps), 0 none (the recipe before the floor), N that floor")
    parser.add_argument("--cleanlab-only", action="store_true", help="only cleanlab's side, saved under "
                        "$DETECT_IMAGES_ARRAYS for --merge")
    parser.add_argument("--merge", nargs="+", default=None, help="--no-cleanlab result JSONs to complete with the "
                        "saved cleanlab side; writes --out")
    parser.add_argument("--rows", type=int, default=None, help="rows of every image setting (default: SETTINGS)")
    parser.add_argument("--title", default="Detection on images, weak features and clean labels")
    parser.add_argument("--before", nargs="+", default=None, help="result JSONs of the code before a change: with "
                        "--after, write the before/after section instead of running")
    parser.add_argument("--after", nargs="+", default=None)
    parser.add_argument("--notes", default=None, help="a markdown file appended to the before/after section")
    args = parser.parse_args()
    where = __import__("os").environ.get("DETECT_IMAGES_ARRAYS")
    if args.cleanlab_only:
        torch.set_num_threads(1)
        for seed in args.seeds:
            for name in args.settings:
                cleanlab_side(name, seed, args.rows, args.min_steps, where)
        return
    if args.merge:
        results = [merge(r, where) for n in args.merge for r in json.loads((RESULTS / f"{n}.json").read_text())["results"]]
        write_json(args.out, {"machine": machine(), "seeds": sorted({r["seed"] for r in results}), "results": results,
                              "note": "stage and cleanlab measured in two processes side by side (merge)"})
        text = markdown(results, args.title) + "\n### Against the targets\n\n" + targets(results)
        write_section(args.out, text)
        print(text)
        return
    if args.before and args.after:
        load = lambda names: [r for n in names for r in json.loads((RESULTS / f"{n}.json").read_text())["results"]]  # noqa: E731
        after = load(args.after)
        text = (f"## {args.title} (`benchmarks/detect_images.py`)\n\n"
                f"Before = main at 718566a ({', '.join(args.before)}.json), after = this code ({', '.join(args.after)}.json); "
                "seed 0, one run each, sizes in the table. Time ratio = whole job / cleanlab's whole job measured in the "
                "same run (a before-run without cleanlab is divided by the after-run's cleanlab time); the machine's "
                "load changed between runs, so ratios of a few seconds are noise.\n\n" + compare(load(args.before), after) + "\n"
                + markdown(after, "After: every measured column").split("\n", 2)[2])
        if args.notes:
            text += "\n" + Path(args.notes).read_text()
        write_section(args.out, text)
        print(text)
        return
    torch.set_num_threads(1)
    results = []
    for seed in args.seeds:
        for name in args.settings:
            results.append(run_setting(name, seed, rows=args.rows, with_cleanlab=not args.no_cleanlab,
                                       min_steps=args.min_steps))
            r = results[-1]
            print(f"done: {name} seed {seed}: AP {r.get('ap_default')}, F1 {r['default_flags']['f1']:.3f}, "
                  f"est {r['estimated_noise_rate']}, wall {r['wall_s']:.0f}s", flush=True)
            write_json(args.out, {"machine": machine(), "seeds": args.seeds, "results": results})
    if args.no_cleanlab:
        return
    text = markdown(results, args.title) + "\n### Against the targets\n\n" + targets(results)
    write_section(args.out, text)
    print(text)


if __name__ == "__main__":
    main()

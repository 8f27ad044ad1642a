"""Scale: whole-job time, time per step and peak memory as N grows, the floor ratio, and Dask 1 vs 2 workers.

Tabular part: ``make_classification`` data (40 features, 10 classes, 10% of labels flipped), written
to a Parquet file by one child process and read by the next (so making the data does not count in the
job's memory), the stage's own steps with default settings one after another as ``benchmarks/step_times.py`` runs
them (prepare, input suite, featurize, θ*, scale, members, loss matrix, decide, apply, output
suite, publish), each N (``--rows``) in its own process so that its peak RSS
(``resource.getrusage``, ``ru_maxrss``) is its own; beside it, ``benchmarks/floor.py``'s bare loop of
the same SGD steps and forward passes, in the same process. A size that does not finish within
``--max-minutes`` is recorded as such. The whole-job time and peak RSS are fitted linearly in N over
the sizes measured, and the fit is extrapolated to 1M rows (stated as an extrapolation).

Image part (``--image-rows``, default 100000): ``benchmarks/scale_images.image_run``, the whole job on
synthetic 32×32×3 images read from a ``save_to_disk`` folder, time per step and peak RSS.

Dask part (``--dask-rows``, default 100000): the member step (8 chains × 4 cycles,
``--dask-chains-per-task`` chains per task, a fixed fine-tuning rate) and the loss matrix in row shards
(``stage.shards.DEFAULT_SHARD_ROWS`` each), as the flow's tasks
(``orchestration.prefect_executor.score_on_tasks``) on a local cluster of 1 and then 2 worker processes
(one thread each), workers started and warmed before timing; speed-up and whether the scores are
equal.

Writes benchmarks/results/scale.json and the "scale" section of benchmarks/RESULTS.md.
Run: ``.venv/bin/python benchmarks/scale.py [--rows 10000 100000] [--dask-rows 100000] [--max-minutes 12]``
(``--add``: measure more sizes into an existing results/scale.json).

Wide part (``--wide``, alone): ``step_times.wide_arrays`` rows (``--wide-rows`` × ``--wide-features``,
``--wide-layouts``: separate float32 columns or one ``Sequence(float32)`` column) written to Parquet by
one child process and read by the next, which runs a 300-row warm-up of the same width and then the
library's plan with default settings and publishing (``step_times.wide_profile``): seconds per step,
"loading plus both gates" (load + input gate + output gate) as a share of the whole job, peak RSS. A
case that does not finish within ``--max-minutes`` is recorded as such.
Writes benchmarks/results/scale_wide.json and .md.
Run: ``.venv/bin/python benchmarks/scale.py --wide [--wide-rows 10000 100000] [--wide-features 784 1024]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

from common import RESULTS, machine, write_json, write_section

FEATURES, CLASSES = 40, 10


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB (Linux reports ``ru_maxrss`` in KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_data(n: int, folder: str) -> None:
    """``n`` rows of the benchmark data as ``folder/data.parquet`` and the flipped rows as ``folder/flipped.npy``.

    Run in its own process, so that making the data (``make_classification`` works in float64)
    does not count in the job's peak memory: the job reads the file, as a scheduled run would.
    """
    from step_times import frame

    df, flipped = frame(n, FEATURES, CLASSES)
    df.to_parquet(Path(folder) / "data.parquet", index=False)
    np.save(Path(folder) / "flipped.npy", flipped)


def profile(n: int, folder: str) -> dict:
    """The library's plan on the ``n`` rows of ``folder/data.parquet``, seconds per step, then ``floor.py``'s bare loop.

    Like ``step_times.profile`` (the scoring in its three steps: the automatic scale, yardstick +
    probe; the members; the loss matrix + scores), with the peak RSS of the job itself, read before
    the floor runs. ``prepare`` includes reading the Parquet file.
    """
    from floor import floor
    from step_times import plan_seconds, run_plan
    from influence_stage.publish.versions import publish
    from influence_stage.stage import steps

    flipped = np.load(Path(folder) / "flipped.npy")
    config = steps.CleanConfig(label_column="label", model="mlp")
    t0 = time.perf_counter()
    context = run_plan(str(Path(folder) / "data.parquet"), config)
    assert context["prepared"].dataset.num_rows == n
    seconds = plan_seconds(context)
    decisions = context["decisions"]
    with tempfile.TemporaryDirectory() as root:
        t = time.perf_counter()
        publish(context["cleaned"], decisions.table, root=root, name="scale",
                validation_reports=[context["output_report"]])
        seconds["publish"] = time.perf_counter() - t
    total = time.perf_counter() - t0
    rss = peak_rss_mb()
    flagged = decisions.table["is_issue"].to_numpy()
    del decisions, context
    base = floor(n, FEATURES, CLASSES)
    return {"rows": n, "features": FEATURES, "classes": CLASSES, "seconds": seconds, "total_seconds": total,
            "peak_rss_mb": rss, "floor": base, "ratio_to_floor": total / base["total_seconds"],
            "train_epochs_over_n": base["train_epochs_over_n"],
            "precision": float(flipped[flagged].mean()) if flagged.any() else 0.0,
            "recall": float(flagged[flipped].mean())}


def one_size(n: int, folder: str) -> dict:
    """:func:`profile` at ``n`` rows, one torch thread."""
    import torch

    torch.set_num_threads(1)
    return profile(n, folder)


def run_size(n: int, max_minutes: float) -> dict:
    """:func:`write_data` then :func:`one_size` in child processes, the second killed after ``max_minutes``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as folder:
        out_path = Path(folder) / "result.json"
        subprocess.run([sys.executable, __file__, "--write-data", str(n), "--folder", folder], check=True, env=env)
        cmd = [sys.executable, __file__, "--one", str(n), "--folder", folder, "--out", str(out_path)]
        t = time.perf_counter()
        try:
            subprocess.run(cmd, check=True, timeout=max_minutes * 60, env=env)
        except subprocess.TimeoutExpired:
            return {"rows": n, "finished": False, "limit_minutes": max_minutes, "seconds": time.perf_counter() - t}
        out = json.loads(out_path.read_text())
    out["finished"] = True
    return out


def cli_run(n: int, max_minutes: float) -> dict:
    """``influence-stage clean`` (the Prefect flow, its report, a temporary Prefect server) on ``n`` rows.

    The data file is written by :func:`write_data` first; the run's wall seconds and the peak RSS
    of its largest process (``RUSAGE_CHILDREN``, read after the run; this process has no other
    children by then).
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, __file__, "--write-data", str(n), "--folder", folder], check=True, env=env)
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        cli = str(Path(sys.executable).with_name("influence-stage"))
        cmd = [cli, "clean", "--source", str(Path(folder) / "data.parquet"), "--name", "scale",
               "--publish-root", str(Path(folder) / "published"), "--cache-dir", str(Path(folder) / "cache")]
        t = time.perf_counter()
        try:
            done = subprocess.run(cmd, env=env, timeout=max_minutes * 60, capture_output=True, text=True)
        except subprocess.TimeoutExpired:
            return {"rows": n, "finished": False, "limit_minutes": max_minutes}
        seconds = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"rows": n, "finished": done.returncode == 0, "returncode": done.returncode, "seconds": seconds,
            "peak_rss_mb": peak / 1024, "peak_is_this_run": peak > before,
            "stderr_tail": done.stderr[-2000:] if done.returncode else ""}


# -- Dask: the member step and the loss shards on 1 vs 2 worker processes ---------------------------

_RUN: dict = {}
"""The data of the Dask part, in this module (importable on the workers, so never pickled into a task)."""


def members_and_losses(folder: str, key: str, chains_per_task: int) -> dict:
    """The member step and the loss shards as the flow's tasks (the ``SCORE`` plan on the Prefect executor).

    On ``_RUN``'s rows; ``folder`` is a fresh cache dir, so nothing is cached (``key`` names the run).
    """
    from influence_stage.orchestration.prefect_executor import score_on_tasks

    context = score_on_tasks(_RUN["learner"], _RUN["prepared"], _RUN["features"], _RUN["config"], cache_dir=folder,
                             chains_per_task=chains_per_task)
    return {"timings": dict(context.step_seconds), "scores": context["result"].scores}


def dask_part(n: int, workers: list[int], chains_per_task: int = 4) -> dict:
    """Member step and loss shards as tasks on local clusters of ``workers`` processes; seconds and scores."""
    import torch
    from distributed import Client, LocalCluster
    from prefect import flow
    from prefect.testing.utilities import prefect_test_harness
    from prefect_dask import DaskTaskRunner

    from step_times import frame
    from influence_stage.stage import steps

    torch.set_num_threads(1)
    df, _ = frame(n, FEATURES, CLASSES)
    config = steps.CleanConfig.from_mapping({"label_column": "label", "model": "mlp",
                                             "gex": {"chains": 8, "cycles": 4, "ft_lr": 0.1}})
    prepared = steps.prepare(df, config)
    features = steps.featurize_step(prepared, config)
    t = time.perf_counter()
    learner = steps.make_model_step(features, config, prepared=prepared)
    theta_seconds = time.perf_counter() - t
    _RUN.update(prepared=prepared, features=features, learner=learner, config=config)
    scoring = flow(name="scale-members")(members_and_losses)

    from influence_stage.stage.shards import row_shards

    out: dict = {"rows": n, "members": 32, "chains_per_task": chains_per_task, "loss_shards": len(row_shards(n)),
                 "theta_seconds": theta_seconds, "runs": {}}
    scores = {}
    with prefect_test_harness(server_startup_timeout=180):
        for w in workers:
            with LocalCluster(n_workers=w, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
                with Client(cluster) as client:  # warm the workers: imports before the clock starts
                    client.run(lambda: __import__("influence_stage.orchestration.dask_runner"))
                with tempfile.TemporaryDirectory() as folder:  # a fresh key and folder: nothing cached
                    t = time.perf_counter()
                    runner = DaskTaskRunner(address=cluster.scheduler_address)
                    got = scoring.with_options(task_runner=runner)(folder, f"scale-{w}-{time.time()}", chains_per_task)
                    total = time.perf_counter() - t
            scores[w] = got["scores"]
            out["runs"][str(w)] = {"members_seconds": got["timings"]["members"],
                                   "losses_seconds": got["timings"]["losses"],
                                   "scores_seconds": got["timings"]["losses: gather"], "flow_seconds": total}
    first, *rest = workers
    for w in rest:
        out["runs"][str(w)]["members_speedup"] = out["runs"][str(first)]["members_seconds"] / out["runs"][str(w)][
            "members_seconds"]
        out["runs"][str(w)]["losses_speedup"] = out["runs"][str(first)]["losses_seconds"] / out["runs"][str(w)][
            "losses_seconds"]
        out["runs"][str(w)]["scores_equal"] = bool(np.array_equal(scores[first], scores[w]))
        out["runs"][str(w)]["max_abs_score_difference"] = float(np.abs(scores[first] - scores[w]).max())
    return out


# -- wide data: 784 / 1,024 float columns or one embedding column, read from Parquet -------------------


def write_wide_data(n: int, d: int, layout: str, folder: str) -> None:
    """``step_times.wide_arrays`` as ``folder/data.parquet`` (``layout`` columns) and the flipped rows."""
    import pyarrow.parquet as pq

    from step_times import wide_arrays, wide_table

    X, y, flipped = wide_arrays(n, d)
    pq.write_table(wide_table(X, y, layout), Path(folder) / "data.parquet")
    np.save(Path(folder) / "flipped.npy", flipped)


def wide_one(folder: str, d: int, layout: str) -> dict:
    """A 300-row warm-up of the same width and layout, then ``step_times.wide_profile`` on the Parquet file."""
    import torch

    from step_times import warm_up, wide_profile

    torch.set_num_threads(1)
    warm_up(d, layout)
    out = wide_profile(str(Path(folder) / "data.parquet"), np.load(Path(folder) / "flipped.npy"))
    del out["_context"]
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def wide_run(n: int, d: int, layout: str, max_minutes: float) -> dict:
    """:func:`write_wide_data` then :func:`wide_one` in child processes, the second stopped after ``max_minutes``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    case = {"rows": n, "columns": d, "layout": layout}
    with tempfile.TemporaryDirectory() as folder:
        out_path = Path(folder) / "result.json"
        subprocess.run([sys.executable, __file__, "--write-wide", str(n), str(d), layout, "--folder", folder],
                       check=True, env=env)
        cmd = [sys.executable, __file__, "--wide-one", str(d), layout, "--folder", folder, "--out", str(out_path)]
        t = time.perf_counter()
        try:
            subprocess.run(cmd, check=True, timeout=max_minutes * 60, env=env, stderr=subprocess.PIPE, text=True)
        except subprocess.TimeoutExpired:
            return {**case, "finished": False, "limit_minutes": max_minutes, "seconds_run": time.perf_counter() - t}
        except subprocess.CalledProcessError as exc:
            lines = [line for line in (exc.stderr or "").splitlines() if line.strip()]
            return {**case, "finished": False, "returncode": exc.returncode, "error": lines[-1] if lines else "",
                    "where": next((line.strip() for line in reversed(lines) if "influence_stage/" in line), "")}
        out = json.loads(out_path.read_text())
    return {**case, **out, "finished": True}


def wide_markdown(cases: list[dict]) -> str:
    done = [c for c in cases if c.get("finished")]
    lines = ["## Scale on wide data (`benchmarks/scale.py --wide`)", "",
             "`step_times.wide_arrays` rows (`make_classification`, 20 informative of the columns, 10 classes, 10% "
             "of labels flipped, seed 0) as separate float32 columns or one `Sequence(float32)` column, written to "
             "Parquet by one process and read by the next; there, a 300-row warm-up of the same width, then the "
             "library's plan with default settings and publishing, one torch thread. \"Load + gates\" = "
             "load (reading the Parquet file included) + input gate + output gate. Each column's code is its commit; "
             "columns of other commits were measured in earlier runs and kept, so compare only columns of one "
             "commit.", ""]
    if done:
        lines.append("| step, s | " + " | ".join(f"{c['rows']:,} × {c['columns']:,} {c['layout']}" for c in done)
                     + " |")
        lines.append("|---|" + "---|" * len(done))
        for key in dict.fromkeys(k for c in done for k in c["seconds"]):
            lines.append(f"| {key} | " + " | ".join(f"{c['seconds'][key]:.2f}" if key in c["seconds"] else "–"
                                                   for c in done) + " |")
        lines.append("| **whole job** | " + " | ".join(f"**{c['whole_job_seconds']:.1f}**" for c in done) + " |")
        lines.append("| load + gates, s | " + " | ".join(f"{c['load_and_gates_seconds']:.2f}" for c in done) + " |")
        lines.append("| **load + gates share** (target ≤ 10%) | " + " | ".join(
            f"**{100 * c['load_and_gates_share']:.1f}%**" for c in done) + " |")
        lines.append("| peak RSS, MB | " + " | ".join(f"{c['peak_rss_mb']:.0f}" for c in done) + " |")
        lines.append("| code (commit) | " + " | ".join(str(c.get("commit") or "–") for c in done) + " |")
        lines.append("| load average at the end (1 / 5 / 15 min, 2 cores) | " + " | ".join(
            " / ".join(f"{v:.1f}" for v in c["load_average"]) if c.get("load_average") else "–" for c in done) + " |")
        lines.append("| precision / recall | " + " | ".join(f"{c['precision']:.3f} / {c['recall']:.3f}"
                                                          for c in done) + " |")
    for c in cases:
        if not c.get("finished"):
            why = (f"did not finish within {c['limit_minutes']:g} minutes (stopped)" if "limit_minutes" in c
                   else f"failed (exit {c.get('returncode')}: {c.get('error', '')} in {c.get('where', '?')})"
                   if "returncode" in c else "was not run")
            lines += ["", f"{c['rows']:,} × {c['columns']:,} {c['layout']}: {why}."]
    return "\n".join(lines) + "\n"


def commit() -> str:
    """The checkout's commit (the measured code; the working tree may hold more)."""
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=RESULTS)
    return done.stdout.strip()


def wide_main(args) -> None:
    stored = RESULTS / "scale_wide.json"
    cases = []
    if args.add and stored.is_file():
        kept = json.loads(stored.read_text())
        cases = [{"commit": kept.get("commit"), **c} for c in kept["cases"]]  # a kept case keeps the code it measured
    for n in args.wide_rows:
        for d in args.wide_features:
            for layout in args.wide_layouts:
                case = {**wide_run(n, d, layout, args.max_minutes), "commit": commit(),
                        "load_average": list(os.getloadavg())}  # 1, 5, 15 min, when the case ended
                cases = [c for c in cases if (c["rows"], c["columns"], c["layout"]) != (n, d, layout)] + [case]
                print(json.dumps({k: v for k, v in case.items() if k != "seconds"}), flush=True)
                write_json("scale_wide", {"machine": machine(), "commit": commit(), "cases": cases})
    cases.sort(key=lambda c: (c["rows"], c["columns"], c["layout"] != "columns"))
    write_json("scale_wide", {"machine": machine(), "commit": commit(), "cases": cases})
    text = wide_markdown(cases)
    (RESULTS / "scale_wide.md").write_text(text)
    print(text)


# -- the report -------------------------------------------------------------------------------------


def linear_fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """``(intercept, slope)`` of the least-squares line (exact through two points)."""
    slope, intercept = np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)
    return float(intercept), float(slope)


def image_markdown(images: list[dict]) -> list[str]:
    """The image runs' table (``scale_images.image_run`` results)."""
    done = [r for r in images if r.get("finished")]
    lines = []
    if done:
        first = done[0]
        store = first["settings"].get("feature_store_dtype")
        lines += ["", f"Images ({'×'.join(map(str, first['image_shape']))} uint8, {first['classes']} classes, 10% "
                  "flipped; `benchmarks/scale_images.py`: written with `save_to_disk` by one process and read back, "
                  "memory-mapped, by the next; one torch thread): model " + first["model"] + ", θ* "
                  f"{first['settings']['fit']['epochs']} epochs, GEX at its defaults; features "
                  + ("on disk (`featurize.on_disk='auto'`, stored as " + str(store) + ")" if store else "in memory")
                  + ".", "",
                  "| step | " + " | ".join(f"{r['rows']:,} images, s" for r in done) + " |",
                  "|---|" + "---|" * len(done)]
        for key in first["seconds"]:
            lines.append(f"| {key} | " + " | ".join(f"{r['seconds'].get(key, float('nan')):.2f}" for r in done) + " |")
        lines.append("| **whole job** | " + " | ".join(f"**{r['total_seconds']:.1f}**" for r in done) + " |")
        lines.append("| peak RSS, MB | " + " | ".join(f"{r['peak_rss_mb']:.0f}" for r in done) + " |")
        lines.append("| features on disk | " + " | ".join("yes" if r["settings"].get("features_on_disk") else "no"
                                                       for r in done) + " |")
        lines.append("| precision / recall | " + " | ".join(f"{r['precision']:.3f} / {r['recall']:.3f}"
                                                          for r in done) + " |")
    for r in images:
        if not r.get("finished"):
            lines += ["", f"{r['rows']:,} images did not finish within {r['limit_minutes']:g} minutes (stopped)."]
    return lines


def markdown(sizes: list[dict], dask: dict | None, extrapolation: dict | None, images: list[dict] | None = None,
             cli: list[dict] | None = None) -> str:
    done = [s for s in sizes if s.get("finished")]
    work = (f"Training work in epochs over N at {done[0]['rows']:,} rows: "
            + ", ".join(f"{k} {v:.0f}" for k, v in done[0]["train_epochs_over_n"].items() if v)
            + " (θ*'s epochs at each size are in the table)." if done else "")
    lines = ["## Scale (`benchmarks/scale.py`)", "",
             f"Default settings, `make_classification` with {FEATURES} features, {CLASSES} classes, 10% flipped, read "
             "from a Parquet file; the stage's steps called in order without Prefect (as `step_times.py`), each size "
             "in its own process, one torch thread; peak RSS is that process's `ru_maxrss` at the end of the job "
             "(before the floor runs); `floor` is `floor.py`'s bare loop of the same work in the same process. " + work,
             ""]
    if done:
        keys = list(done[0]["seconds"])
        lines.append("| step | " + " | ".join(f"{s['rows']:,} rows, s" for s in done) + " |")
        lines.append("|---|" + "---|" * len(done))
        for key in keys:
            lines.append(f"| {key} | " + " | ".join(f"{s['seconds'].get(key, float('nan')):.2f}" for s in done) + " |")
        lines.append("| **whole job** | " + " | ".join(f"**{s['total_seconds']:.1f}**" for s in done) + " |")
        lines.append("| θ* epochs (`fit.max_steps`) | " + " | ".join(f"{s['train_epochs_over_n']['theta']:.0f}"
                                                                   for s in done) + " |")
        lines.append("| floor (bare loop) | " + " | ".join(f"{s['floor']['total_seconds']:.1f}" for s in done) + " |")
        lines.append("| whole job / floor | " + " | ".join(f"{s['ratio_to_floor']:.2f}×" for s in done) + " |")
        lines.append("| peak RSS, MB | " + " | ".join(f"{s['peak_rss_mb']:.0f}" for s in done) + " |")
        lines.append("| precision / recall | " + " | ".join(f"{s['precision']:.3f} / {s['recall']:.3f}"
                                                          for s in done) + " |")
    for s in sizes:
        if not s.get("finished"):
            lines += ["", f"{s['rows']:,} rows did not finish within {s['limit_minutes']:g} minutes (stopped)."]
    if extrapolation:
        e = extrapolation
        lines += ["", f"Extrapolation, not a measurement: a line through the measured sizes "
                  f"({', '.join(f'{r:,}' for r in e['from_rows'])} rows) gives {e['seconds']:.0f} s "
                  f"({e['seconds'] / 60:.1f} min) whole job and {e['peak_rss_mb']:.0f} MB peak RSS at "
                  f"{e['rows']:,} rows on this machine."]
    lines += image_markdown(images or [])
    for r in cli or []:
        if r.get("finished") and r.get("peak_is_this_run"):
            lines += ["", f"CLI (`influence-stage clean` with defaults: the Prefect flow with its report and a "
                      f"temporary Prefect server, one torch thread), {r['rows']:,} rows of the same data: "
                      f"{r['seconds']:.0f} s wall, peak RSS {r['peak_rss_mb']:.0f} MB (its largest process)."]
        else:
            lines += ["", f"CLI, {r['rows']:,} rows: did not finish ({r.get('returncode', 'timeout')})."]
    if dask:
        runs = dask["runs"]
        lines += ["", f"Dask, {dask['rows']:,} rows, {dask['members']} members (8 chains × 4 cycles, "
                  f"{dask['chains_per_task']} chains per task, fixed rate) and the loss matrix in "
                  f"{dask['loss_shards']} "
                  "row shards, tasks reading their own rows, local cluster of worker processes with one thread each "
                  "(started and warmed before timing; the same tasks for 1 and 2 workers, so the same scores):", "",
                  "| workers | member step, s | loss shards, s | member speed-up | loss speed-up | scores equal |",
                  "|---|---|---|---|---|---|"]
        for w, r in runs.items():
            equal = "yes" if r.get("scores_equal", True) else f"no (max diff {r['max_abs_score_difference']:.2g})"
            lines.append(f"| {w} | {r['members_seconds']:.2f} | {r['losses_seconds']:.2f} | "
                         f"{r.get('members_speedup', 1.0):.2f}× | {r.get('losses_speedup', 1.0):.2f}× | {equal} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="*", default=[10000, 100000])
    parser.add_argument("--dask-rows", type=int, default=100000, help="0: skip the Dask part")
    parser.add_argument("--dask-chains-per-task", type=int, default=4)
    parser.add_argument("--max-minutes", type=float, default=12.0)
    parser.add_argument("--cli-rows", type=int, nargs="*", default=[1000000],
                        help="CLI runs (influence-stage clean); none: keep those of results/scale.json")
    parser.add_argument("--image-rows", type=int, nargs="*", default=[100000],
                        help="image runs (benchmarks/scale_images.py); none: keep those of results/scale.json")
    parser.add_argument("--extrapolate-to", type=int, default=1_000_000)
    parser.add_argument("--dry-run", action="store_true", help="print the section, write no results")
    parser.add_argument("--add", action="store_true", help="keep the sizes (and, with --dask-rows 0, the Dask part) "
                        "of results/scale.json that this run does not measure")
    parser.add_argument("--wide", action="store_true", help="only the wide-data cases (scale_wide.json / .md)")
    parser.add_argument("--wide-rows", type=int, nargs="+", default=[10000, 100000])
    parser.add_argument("--wide-features", type=int, nargs="+", default=[784, 1024])
    parser.add_argument("--wide-layouts", nargs="+", default=["columns", "sequence"])
    parser.add_argument("--write-wide", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--wide-one", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--write-data", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_data:
        write_data(args.write_data, args.folder)
        return
    if args.write_wide:
        write_wide_data(int(args.write_wide[0]), int(args.write_wide[1]), args.write_wide[2], args.folder)
        return
    if args.wide_one:
        Path(args.out).write_text(json.dumps(wide_one(args.folder, int(args.wide_one[0]), args.wide_one[1])))
        return
    if args.wide:
        wide_main(args)
        return
    if args.one:
        Path(args.out).write_text(json.dumps(one_size(args.one, args.folder)))
        return
    sizes = [run_size(n, args.max_minutes) for n in args.rows]
    stored = RESULTS / "scale.json"
    previous = json.loads(stored.read_text()) if args.add and stored.is_file() else {}
    kept = [s for s in previous.get("sizes", []) if s["rows"] not in args.rows]
    sizes = sorted(sizes + kept, key=lambda s: s["rows"])
    done = [s for s in sizes if s.get("finished")]
    extrapolation = None
    if len(done) >= 2 and args.extrapolate_to > max(s["rows"] for s in done):
        rows = [s["rows"] for s in done]
        a, b = linear_fit(rows, [s["total_seconds"] for s in done])
        c, d = linear_fit(rows, [s["peak_rss_mb"] for s in done])
        extrapolation = {"rows": args.extrapolate_to, "from_rows": rows, "seconds": a + b * args.extrapolate_to,
                         "peak_rss_mb": c + d * args.extrapolate_to}
    # the Dask part runs from the importable module: as __main__, this module's globals (the data) would be
    # pickled into every task with the flow instead of by name
    import scale

    dask = previous.get("dask")
    if args.dask_rows:
        dask = scale.dask_part(args.dask_rows, [1, 2], args.dask_chains_per_task)
    images = previous.get("images", []) if not args.image_rows else []
    if args.image_rows:
        from scale_images import image_run

        images = [image_run(n, args.max_minutes) for n in args.image_rows]
    cli = [cli_run(n, args.max_minutes) for n in args.cli_rows] if args.cli_rows else previous.get("cli", [])
    text = markdown(sizes, dask, extrapolation, images, cli)
    if not args.dry_run:
        write_json("scale", {"machine": machine(), "sizes": sizes, "extrapolation": extrapolation, "dask": dask,
                             "images": images, "cli": cli})
        write_section("scale", text)
    print(text)


if __name__ == "__main__":
    main()

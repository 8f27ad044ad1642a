"""Scoring work units on a Dask LocalCluster of 1 and of 2 workers, side by side in one run.

The curation flow sends its scoring units (document range × pass, ``pipeline.curate_scores.score_pass``) to
Dask workers as plain functions (``orchestration.dask_runner.run_units``). This measures that part alone:
the same ``--units`` units of ``--docs`` documents each (θ* passes over consecutive ranges of a size run's
token cache under ``--workdir``), run on a fresh 1-worker and a fresh 2-worker cluster, alternated
``--repeats`` times so both see the same load. Each cluster first runs one unit per worker untimed (the
workers import torch and receive the model); the clock then covers ``run_units`` over all units. The
process's own in-process time for the same units (``score_pass`` in a loop, 1 torch thread) is measured too.

Run: ``.venv/bin/python benchmarks/curation_dask_scoring.py --size 20000``; writes
benchmarks/results/curation_dask_scoring.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np

from common import machine

RESULTS = HERE / "results"


def load() -> str:
    return "load average %.2f, %.2f, %.2f" % os.getloadavg()


def units_for(learner, tokens, n_units: int, docs: int, folder: Path):
    from influence_stage.pipeline.curate_scores import score_pass
    from influence_stage.pipeline.step import WorkUnits

    n = min(n_units * docs, len(tokens))
    ranges = [(s, min(s + docs, n)) for s in range(0, n, docs)]
    folder.mkdir(parents=True, exist_ok=True)
    items = [{"member": None, "start": s, "stop": e, "out": str(folder / f"theta-{s}-{e}.npy")} for s, e in ranges]
    return WorkUnits(fn=score_pass, shared={"learner": learner, "tokens": tokens}, items=items,
                     names=[f"score-pass theta docs {s}-{e}" for s, e in ranges], bounded=True)


def on_cluster(workers: int, learner, tokens, args, scratch: Path, tag: str) -> dict:
    from influence_stage.orchestration.dask_runner import dask_client, run_units

    with dask_client(None, n_workers=workers) as client:
        warm = units_for(learner, tokens, workers, 64, scratch / f"warm-{tag}")
        run_units(client, warm)  # one small unit per worker: imports and the model's transfer, untimed
        units = units_for(learner, tokens, args.units, args.docs, scratch / tag)
        before = load()
        t = time.perf_counter()
        results = run_units(client, units)
        seconds = time.perf_counter() - t
    assert all(results), "a unit found a done-flag: the scratch folder was not fresh"
    losses = np.concatenate([np.load(it["out"]) for it in units.items])
    return {"workers": workers, "seconds": seconds, "load_before": before, "load_after": load(), "losses": losses}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20000, help="the size run whose model and token cache are used")
    parser.add_argument("--workdir", default="/tmp/curation_scale")
    parser.add_argument("--units", type=int, default=8)
    parser.add_argument("--docs", type=int, default=2048, help="documents per unit")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    from influence_stage.data.tokens import TokenCache
    from influence_stage.engine.causal_lm import CausalLMLearner
    from influence_stage.pipeline.curate_scores import score_pass

    folder = Path(args.workdir) / f"n{args.size}"
    (cache,) = sorted((folder / "cache" / "tokens").glob("*.arrow"))
    learner = CausalLMLearner.from_pretrained(folder / "model", max_length=64, batch_tokens=8192)
    tokens = TokenCache(cache)
    scratch = Path(tempfile.mkdtemp(prefix="dask-scoring-"))
    runs: list[dict] = []
    try:
        torch.set_num_threads(1)
        units = units_for(learner, tokens, args.units, args.docs, scratch / "in-process")
        t = time.perf_counter()
        for it in units.items:
            score_pass(**units.shared, **it)
        in_process = time.perf_counter() - t
        reference = np.concatenate([np.load(it["out"]) for it in units.items])
        for r in range(args.repeats):
            for w in (1, 2):
                out = on_cluster(w, learner, tokens, args, scratch, f"w{w}-r{r}")
                out["max_abs_loss_diff_vs_in_process"] = float(np.max(np.abs(out.pop("losses") - reference)))
                runs.append(out)
                print(json.dumps(out), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    one = [r["seconds"] for r in runs if r["workers"] == 1]
    two = [r["seconds"] for r in runs if r["workers"] == 2]
    result = {"size_run": args.size, "units": len(units.items), "docs_per_unit": args.docs,
              "in_process_1_thread_seconds": in_process, "runs": runs,
              "speedup_of_medians": float(np.median(one) / np.median(two)),
              "speedup_of_minima": float(np.min(one) / np.min(two)), "machine": machine()}
    (RESULTS / "curation_dask_scoring.json").write_text(json.dumps(result, indent=1))
    lines = ["## Scoring units on Dask, 1 vs 2 workers (`benchmarks/curation_dask_scoring.py`)", "",
             f"{result['units']} θ* scoring units of {args.docs:,} documents each (the {args.size:,}-document run's "
             "token cache and model), run as plain functions on a fresh LocalCluster of 1 and of 2 worker processes "
             "(one thread each), alternated; each cluster warmed up with one small unit per worker first. "
             f"The same units in this process, 1 torch thread: {in_process:.1f} s.", "",
             "| workers | seconds | load before → after | max abs loss diff vs in process |", "|---|---|---|---|"]
    lines += [f"| {r['workers']} | {r['seconds']:.1f} | {r['load_before']} → {r['load_after']} | "
              f"{r['max_abs_loss_diff_vs_in_process']:.2g} |" for r in runs]
    lines += ["", f"2 workers vs 1: {result['speedup_of_medians']:.2f}× on the medians, "
                  f"{result['speedup_of_minima']:.2f}× on the minima (target ≥ 1.7×).", "",
              f"Machine: {result['machine']}."]
    (RESULTS / "curation_dask_scoring.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

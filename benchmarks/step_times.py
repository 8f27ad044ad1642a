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
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import pandas as pd
import torch
from sklearn.datasets import make_classification

from common import machine, write_json, write_section
from floor import floor, work
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[20000])
    parser.add_argument("--features", type=int, default=40)
    parser.add_argument("--classes", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = [profile(n, args.features, args.classes) for n in args.rows]
    write_json("step_times", {"machine": machine(), "runs": runs, "work": work(args.rows[0], FitConfig(), GEXConfig())})
    text = markdown(runs)
    write_section("step_times", text)
    print(text)


if __name__ == "__main__":
    main()

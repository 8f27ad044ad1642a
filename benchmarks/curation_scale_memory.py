"""Peak resident memory of a ``curate`` job by step, in its own process (what grows with the corpus size).

``python benchmarks/curation_scale_memory.py SUMMARY.json -- <curate flags>`` runs the job as
``curation_scale_run`` does (in process, Prefect tasks) with a thread that samples this process's
RSS (psutil, every 0.2 s) and the RSS of its children (the temporary Prefect API), and labels each
sample with the plan step running (``PrefectExecutor.run_step`` wrapped). SUMMARY.json is the job's
summary, as ``curation_scale_run`` writes it, plus ``rss_by_step``: per step the RSS when it started,
its peak and when it ended (MB). Run it at two corpus sizes to see which step's memory grows with N
(``curation_scale.py --rss-by-step`` runs the benchmark's job with it).

``python benchmarks/curation_scale_memory.py --compare BEFORE AFTER`` compares two published versions of
one corpus (manifests and curated shards): the check that a change left the job's output as it was.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time


class StepSampler:
    """RSS samples of this process (and its children) labelled with the step running."""

    def __init__(self, every: float) -> None:
        import psutil

        self.proc, self.every, self.label = psutil.Process(), every, "start"
        self.steps: dict[str, dict[str, float]] = {}
        self.children_peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def rss(self) -> float:
        return self.proc.memory_info().rss / 2 ** 20

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            mb = self.rss()
            entry = self.steps.setdefault(self.label, {"start_mb": mb, "peak_mb": mb, "end_mb": mb})
            entry["peak_mb"] = max(entry["peak_mb"], mb)
            kids = 0.0
            for p in self.proc.children(recursive=True):
                try:
                    kids += p.memory_info().rss / 2 ** 20
                except psutil.Error:
                    pass
            self.children_peak = max(self.children_peak, kids)
            self._stop.wait(self.every)

    def enter(self, label: str) -> None:
        mb = self.rss()
        self.label = label
        self.steps.setdefault(label, {"start_mb": mb, "peak_mb": mb, "end_mb": mb})

    def leave(self, label: str) -> None:
        entry = self.steps[label]
        mb = self.rss()
        entry["end_mb"] = mb
        entry["peak_mb"] = max(entry["peak_mb"], mb)

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        return {"steps": {k: {kk: round(vv, 1) for kk, vv in v.items()} for k, v in self.steps.items()},
                "children_peak_mb": round(self.children_peak, 1)}


def compare_outputs(before: str, after: str) -> dict:
    """Whether two published versions of one corpus hold the same result: the manifests (statuses, scores,
    every column) and the curated shards (every row and column), with the largest score difference."""
    from pathlib import Path

    import numpy as np
    import pandas as pd

    a, b = pd.read_parquet(Path(before) / "manifest.parquet"), pd.read_parquet(Path(after) / "manifest.parquet")
    out: dict = {"before": before, "after": after, "rows": [len(a), len(b)],
                 "manifest_columns_equal": list(a.columns) == list(b.columns)}
    if len(a) == len(b) and out["manifest_columns_equal"]:
        out["status_equal"] = bool((a["status"] == b["status"]).all())
        out["action_equal"] = bool((a["action"] == b["action"]).all())
        out["duplicate_of_equal"] = bool((a["duplicate_of"] == b["duplicate_of"]).all())
        for col in ("score", "base_loss"):
            x, y = a[col].to_numpy(), b[col].to_numpy()
            out[f"{col}_nan_equal"] = bool((np.isnan(x) == np.isnan(y)).all())
            both = ~np.isnan(x) & ~np.isnan(y)
            out[f"{col}_max_abs_diff"] = float(np.max(np.abs(x[both] - y[both]))) if both.any() else 0.0
        try:
            pd.testing.assert_frame_equal(a, b, check_exact=True)
            out["manifest_identical"] = True
        except AssertionError as exc:
            out["manifest_identical"], out["manifest_difference"] = False, str(exc)[:500]
    sa = sorted((Path(before) / "shards").glob("*.parquet"))
    sb = sorted((Path(after) / "shards").glob("*.parquet"))
    out["shards"] = [len(sa), len(sb)]
    if sa and len(sa) == len(sb):
        ta = pd.concat([pd.read_parquet(f) for f in sa], ignore_index=True)
        tb = pd.concat([pd.read_parquet(f) for f in sb], ignore_index=True)
        try:
            pd.testing.assert_frame_equal(ta, tb, check_exact=True)
            out["shards_identical"] = True
        except AssertionError as exc:
            out["shards_identical"], out["shards_difference"] = False, str(exc)[:500]
    return out


def main() -> None:
    if sys.argv[1] == "--compare":  # --compare BEFORE AFTER: two published versions' manifests and shards
        print(json.dumps(compare_outputs(sys.argv[2], sys.argv[3]), indent=1))
        return
    out, flags = sys.argv[1], sys.argv[sys.argv.index("--") + 1:]
    sampler = StepSampler(0.2)
    from influence_stage.orchestration import prefect_executor
    from influence_stage.orchestration.curate import add_curate_parser, curate_config, curate_corpus, preflight

    original = prefect_executor.PrefectExecutor.run_step

    def labelled(self, step, context):
        sampler.enter(step.name)
        try:
            return original(self, step, context)
        finally:
            sampler.leave(step.name)

    prefect_executor.PrefectExecutor.run_step = labelled
    top = argparse.ArgumentParser()
    args = top.parse_args(["curate", *flags]) if add_curate_parser(top.add_subparsers()) else None
    t0 = time.perf_counter()
    config = curate_config(args)
    sampler.enter("preflight (outside the flow)")
    preflight(config)
    summary = curate_corpus(config)
    sampler.enter("end")
    summary = {k: v for k, v in summary.items() if k != "markdown"}
    summary["wall_seconds_in_process"] = time.perf_counter() - t0
    summary["rss_by_step"] = sampler.stop()
    with open(out, "w") as f:
        json.dump(summary, f, default=str, indent=1)


if __name__ == "__main__":
    main()

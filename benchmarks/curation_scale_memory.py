"""Peak resident memory of a ``curate`` job by step, in its own process (what grows with the corpus size).

``python benchmarks/curation_scale_memory.py SUMMARY.json -- <curate flags>`` runs the job as
``curation_scale_run`` does (in process, Prefect tasks) with a thread that samples this process's
RSS (psutil, every 0.2 s) and the RSS of its children (the temporary Prefect API), and labels each
sample with the plan step running (``PrefectExecutor.run_step`` wrapped). SUMMARY.json is the job's
summary, as ``curation_scale_run`` writes it, plus ``rss_by_step``: per step the RSS when it started,
its peak and when it ended (MB). Run it at two corpus sizes to see which step's memory grows with N
(``curation_scale.py --rss-by-step`` runs the benchmark's job with it).

``python benchmarks/curation_scale_memory.py --compare BEFORE AFTER`` compares two published versions of
one corpus (manifests and curated shards): the check that a change left the job's output as it was;
``--render NAME`` writes ``results/NAME.md`` (the memory table) from ``results/NAME.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path


class PeakRSS:
    """Peak resident memory of a process and its descendants, sampled by psutil every ``every`` seconds."""

    def __init__(self, pid: int, every: float = 0.5, path: Path | None = None) -> None:
        import psutil

        self.proc, self.every, self.tree, self.single = psutil.Process(pid), every, 0, 0
        self.tree_anon = self.single_anon = 0  # the same without file-backed pages (memory maps, shared)
        self.path, self._written = path, 0.0  # the peaks so far, rewritten every 10 s (for --partial --rss-json)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                procs = [self.proc, *self.proc.children(recursive=True)]
            except psutil.Error:
                return
            rss, anon = [], []
            for p in procs:
                try:
                    info = p.memory_info()
                except psutil.Error:
                    continue
                rss.append(info.rss)
                anon.append(info.rss - info.shared)
            if rss:
                self.tree, self.single = max(self.tree, sum(rss)), max(self.single, max(rss))
                self.tree_anon, self.single_anon = max(self.tree_anon, sum(anon)), max(self.single_anon, max(anon))
            if self.path is not None and time.time() - self._written > 10:
                self.path.write_text(json.dumps({**self.peaks(), "at": time.strftime("%H:%M:%S")}))
                self._written = time.time()
            self._stop.wait(self.every)

    def peaks(self) -> dict:
        """Peak RSS (MB) of the tree and of its largest process; ``anon_*``: the same less file-backed and
        shared pages (``rss - shared``: memory-mapped files such as the token cache or the curated Arrow)."""
        mb = lambda x: round(x / 2 ** 20, 1)  # noqa: E731
        return {"tree_mb": mb(self.tree), "largest_process_mb": mb(self.single), "anon_tree_mb": mb(self.tree_anon),
                "anon_largest_process_mb": mb(self.single_anon)}

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        return self.peaks()


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
            info = self.proc.memory_info()
            mb, anon = info.rss / 2 ** 20, (info.rss - info.shared) / 2 ** 20  # anon: less file-backed pages
            entry = self.steps.setdefault(self.label, {"start_mb": mb, "peak_mb": mb, "end_mb": mb})
            entry["peak_mb"] = max(entry["peak_mb"], mb)
            entry["peak_anon_mb"] = max(entry.get("peak_anon_mb", 0.0), anon)
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


def render(data: dict) -> str:
    """The markdown of ``results/curation_memory.json``: peak RSS by corpus size, by step, and the output check."""
    runs = sorted((v for v in data["runs"].values() if v.get("curate")), key=lambda v: v["documents"])
    partials = [v for v in data["runs"].values() if v.get("partial")]
    lines = ["## Curation job memory at corpus scale (`benchmarks/curation_scale.py --rss-by-step`)", "",
             "Peak RSS of `influence-stage curate` (the job in its own process, sampled every 0.5 s with psutil by "
             "the benchmark: the process tree, i.e. the job plus the temporary Prefect API it starts, and the "
             "largest single process), on the benchmark's corpus (IMDB sentences, 10% planted junk, 8 Parquet "
             "shards, seed 0) with the demo's settings. Target: ≤ 1.5 GB at 1M documents, flat in N.", ""]
    for note in data.get("notes", []):
        lines += [note, ""]
    lines += ["| documents | chains × cycles (scoring passes) | job wall s | docs/s | peak RSS MB tree / largest | "
              "inventory s | tokens s | members s | scores s | write + validate s | report + publish s | load |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        c, t = r["curate"], r["curate"]["summary"]["timings"]
        ch, cy = r["settings"].get("chains", 4), r["settings"].get("cycles", 2)
        anon = (f" (anon {c['peak_rss']['anon_tree_mb']:.0f} / {c['peak_rss']['anon_largest_process_mb']:.0f})"
                if "anon_tree_mb" in c["peak_rss"] else "")
        lines.append(f"| {r['documents']:,} | {ch} × {cy} ({ch * cy + 1}) | {c['wall_seconds']:.0f} | "
                     f"{r['docs_per_s']:.1f} | {c['peak_rss']['tree_mb']:.0f} / {c['peak_rss']['largest_process_mb']:.0f}"
                     f"{anon} | {t.get('inventory', 0):.0f} | {t.get('tokens', 0):.0f} | {t.get('members', 0):.0f} | "
                     f"{t.get('scores', 0):.0f} | {t.get('write + validate', 0):.0f} | {t.get('report + publish', 0):.0f}"
                     f" | {c['load_before']} → {c['load_after']} |")
    for b in data.get("before", []):
        lines.append(f"| {b['documents']:,} (before: in-memory MinHash LSH) | 4 × 2 (9) | {b['wall_seconds']:.0f} | "
                     f"{b['documents'] / b['wall_seconds']:.1f} | {b['tree_mb']:.0f} / {b['largest_process_mb']:.0f} |"
                     " | | | | | | |")
    for pr in partials:
        rss = pr.get("peak_rss") or {}
        peak = (f"peak RSS so far {rss.get('tree_mb', '?')} / {rss.get('largest_process_mb', '?')} MB (tree / "
                f"largest process; without file-backed pages {rss.get('anon_tree_mb', '?')} / "
                f"{rss.get('anon_largest_process_mb', '?')})")
        if "units_done" in pr:
            lines += ["", f"Unfinished job at {pr['documents']:,}: {pr['units_done']} of {pr['units']} scoring units "
                      f"done after {pr['scoring_seconds_so_far']:.0f} s of scoring; {peak}."]
        else:
            lines += ["", f"Unfinished job at {pr['documents']:,} ({pr.get('label', '')}): {pr['note']}; {peak}."]
        steps_so_far = (pr.get("rss_by_step") or {}).get("steps")
        if steps_so_far:
            lines.append("Its peak RSS by step, MB (largest process, in brackets without file-backed pages): " + "; ".join(
                f"{k} {v['peak_mb']:.0f}" + (f" ({v['peak_anon_mb']:.0f})" if "peak_anon_mb" in v else "")
                for k, v in steps_so_far.items()) + ".")
    steps = [r for r in runs if r["curate"]["summary"].get("rss_by_step")]
    if steps:
        names: list[str] = []
        for r in steps:
            names += [k for k in r["curate"]["summary"]["rss_by_step"]["steps"] if k not in names]
        lines += ["", "Peak RSS of the job's own process during each step, MB (`curation_scale_memory`, sampled every "
                  "0.2 s; in brackets without file-backed pages, `rss - shared`: memory-mapped files such as the "
                  "token cache and the curated Arrow dataset; the temporary Prefect API is a separate process, its "
                  "peak in the last row):", "",
                  "| step | " + " | ".join(f"{r['documents']:,}" for r in steps) + " |",
                  "|---|" + "---|" * len(steps)]
        for name in names:
            cells = []
            for r in steps:
                e = r["curate"]["summary"]["rss_by_step"]["steps"].get(name)
                cells.append("" if e is None else f"{e['peak_mb']:.0f}" + (
                    f" ({e['peak_anon_mb']:.0f})" if "peak_anon_mb" in e else ""))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("| Prefect API process (peak) | " + " | ".join(
            f"{r['curate']['summary']['rss_by_step']['children_peak_mb']:.0f}" for r in steps) + " |")
    if data.get("components"):
        lines += ["", "Parts of the job measured on their own (in process, psutil RSS less file-backed pages sampled "
                  "every 10 ms, or tracemalloc where stated; one run each, seed 0):", "",
                  "| part | documents | before | after | how |", "|---|---|---|---|---|"]
        for c in data["components"]:
            lines.append(f"| {c['part']} | {c['documents']:,} | {c['before']} | {c['after']} | {c['how']} |")
    for chk in data.get("output_checks", []):
        lines += ["", f"Output check at {chk['documents']:,} documents against the run before these changes "
                  f"(`curation_scale_memory --compare`): manifest identical {chk.get('manifest_identical')}, "
                  f"statuses equal {chk.get('status_equal')}, largest score difference "
                  f"{chk.get('score_max_abs_diff')}, curated shards identical {chk.get('shards_identical')}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    if sys.argv[1] == "--render":  # --render NAME: results/NAME.md from results/NAME.json
        from pathlib import Path

        results = Path(__file__).resolve().parent / "results"
        (results / f"{sys.argv[2]}.md").write_text(render(json.loads((results / f"{sys.argv[2]}.json").read_text())))
        return
    if sys.argv[1] == "--compare":  # --compare BEFORE AFTER: two published versions' manifests and shards
        print(json.dumps(compare_outputs(sys.argv[2], sys.argv[3]), indent=1))
        return
    out, flags = sys.argv[1], sys.argv[sys.argv.index("--") + 1:]
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a job stopped with kill still writes its steps
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
    try:
        preflight(config)
        summary = curate_corpus(config)
    except BaseException as exc:  # the steps it got through are kept beside the summary's path, then it fails
        with open(out + ".failed.json", "w") as f:
            json.dump({"error": f"{type(exc).__name__}: {exc}"[-2000:], "rss_by_step": sampler.stop(),
                       "seconds": round(time.perf_counter() - t0, 1)}, f, indent=1)
        raise
    sampler.enter("end")
    summary = {k: v for k, v in summary.items() if k != "markdown"}
    summary["wall_seconds_in_process"] = time.perf_counter() - t0
    summary["rss_by_step"] = sampler.stop()
    with open(out, "w") as f:
        json.dump(summary, f, default=str, indent=1)


if __name__ == "__main__":
    main()

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
``--render NAME`` writes ``results/NAME.md`` (the memory table) from ``results/NAME.json``;
``--parts BEFORE N [NAME ...]`` measures the output steps' parts (corpus gate, its document frame, near-duplicate
groups, the report; named only: ``validate_corpus_runner``, the gate with GE's validation code at BEFORE, and
``publish``, the curated shards published) on synthetic inputs of N rows, at commit BEFORE and in the working tree, each call in
its own process, and checks that both give the same output.
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


def _run_label(run: dict) -> str:
    """A run's name in the tables: its size, and its code where the results hold runs of several commits."""
    return f"{run['documents']:,}" + (f" ({run['code']})" if run.get("code") else "")


def render(data: dict) -> str:
    """The markdown of ``results/curation_memory.json``: peak RSS by corpus size, by step, and the output check."""
    runs = sorted((v for v in data["runs"].values() if v.get("curate")), key=lambda v: (v["documents"], v.get("order", 0)))
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
        lines.append(f"| {_run_label(r)} | {ch} × {cy} ({ch * cy + 1}) | {c['wall_seconds']:.0f} | "
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
                  "| step | " + " | ".join(_run_label(r) for r in steps) + " |",
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


# ---- parts: the output steps' pieces at corpus scale, the code of two commits side by side ------------------

#: What ``--parts`` measures: each a function of (the module versions to use, N) run in a fresh process.
PART_NAMES = ("validate_corpus", "document_frame", "near_duplicate_groups", "report")
MORE_PART_NAMES = ("validate_corpus_runner", "publish")
"""Parts run only when named: the corpus gate with only ``quality/runner.py`` at the commit (Great Expectations'
batch fingerprint), and ``publish`` of the curated shards (bytes read in before, file paths copied now)."""


def _module_at(commit: str | None, path: str, name: str):
    """The module at ``path`` as committed in ``commit`` (``None``: the working tree's, imported normally)."""
    import importlib
    import importlib.util
    import subprocess
    import tempfile

    if commit is None:
        return importlib.import_module(path[:-3].replace("/", "."))
    source = subprocess.run(["git", "show", f"{commit}:{path}"], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parent.parent).stdout
    file = Path(tempfile.mkdtemp()) / f"{name}.py"
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _synthetic_manifest(n: int, seed: int = 0):
    """A curation manifest of ``n`` rows as ``build_manifest`` makes it (Arrow-backed strings), 69% kept, 10%
    unscored, and the curated documents' frame (``document_frame``'s columns) of its kept rows."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    status = np.where(rng.random(n) < 0.69, "kept", "junk")
    score = rng.random(n)
    score[rng.random(n) < 0.1] = np.nan
    man = pd.DataFrame({"row_id": np.arange(n), "doc_id": pd.Series(np.arange(n).astype(str), dtype="str"),
                        "status": pd.Series(status, dtype="str"),
                        "action": pd.Series(np.where(status == "kept", "keep", "drop"), dtype="str"),
                        "score": score, "base_loss": rng.random(n), "n_chars": rng.integers(10, 500, n),
                        "content_hash": pd.Series([f"{i:032x}" for i in range(n)], dtype="str"),
                        "duplicate_of": np.full(n, -1)})
    kept = np.flatnonzero(status == "kept")
    docs = pd.DataFrame({"row_id": kept, "n_chars": man["n_chars"].to_numpy()[kept].astype(float),
                         "content_hash": pd.Series([f"{i:032x}" for i in kept], dtype="str")})
    return man, docs


def _part_setup(part: str, commit: str | None, n: int):
    """``(call, check)``: the part's call on its synthetic input at the code of ``commit``, and a function of its
    output that two versions must agree on."""
    import json as _json

    import numpy as np
    import pandas as pd

    if part == "validate_corpus":
        q = _module_at(commit, "influence_stage/quality/corpus.py", "corpus_gate_under_test")
        man, docs = _synthetic_manifest(n)
        if commit is not None:  # the code before held the hashes as Python objects
            docs["content_hash"] = docs["content_hash"].astype(object)
        kw = dict(n_input=n, n_scored=int(man["score"].notna().sum()), budget_fraction=0.5, max_chars=2000)
        kw["budget_fraction"] = len(docs) / kw["n_scored"]
        return (lambda: q.validate_corpus(docs, man, **kw),
                lambda r: _json.dumps([x for x in r.results], default=str, sort_keys=True))
    if part == "validate_corpus_runner":  # the gate's code now; only the runner (GE's validation) at the commit
        q = _module_at(None, "influence_stage/quality/corpus.py", "")
        if commit is not None:
            runner = _module_at(commit, "influence_stage/quality/runner.py", "runner_under_test")
            q.validate_batches, q.Batch = runner.validate_batches, runner.Batch
        man, docs = _synthetic_manifest(n)
        kw = dict(n_input=n, n_scored=int(man["score"].notna().sum()), max_chars=2000)
        kw["budget_fraction"] = len(docs) / kw["n_scored"]
        return (lambda: q.validate_corpus(docs, man, **kw),
                lambda r: _json.dumps([x for x in r.results], default=str, sort_keys=True))
    if part == "publish":
        return _publish_setup(commit, n)
    if part == "document_frame":
        import datasets

        q = _module_at(commit, "influence_stage/quality/corpus.py", "corpus_gate_under_test")
        rng = np.random.default_rng(0)
        words = np.array(["the", "film", "was", "a", "quiet", "long", "story", "of", "two", "friends"])
        texts = [" ".join(words[rng.integers(0, 10, 12)]) + f" {i}" for i in range(n)]
        ds = datasets.Dataset.from_dict({"row_id": np.arange(n), "text": texts})
        del texts
        return (lambda: q.document_frame(ds, "text"),
                lambda f: (f["row_id"].tolist(), f["n_chars"].tolist(), f["content_hash"].astype(object).tolist()))
    if part == "near_duplicate_groups":
        d = _module_at(commit, "influence_stage/data/corpus.py", "corpus_data_under_test")
        rng = np.random.default_rng(0)  # 1% of rows share one of 5,000 keys, half of those with their own text
        key = np.where(rng.random(n) < 0.01, rng.integers(0, 5000, n), np.arange(n) + 10 ** 6)
        text = np.where(rng.random(n) < 0.5, key, rng.integers(0, 10 ** 9, n))
        inv = pd.DataFrame({"row": np.arange(n), "near_key": pd.Series([f"{x:032x}" for x in key], dtype="str"),
                            "content_hash": pd.Series([f"{x:032x}" for x in text], dtype="str")})
        return lambda: d.near_duplicate_groups(inv), lambda g: g
    if part == "report":
        from influence_stage.report.corpus import build_corpus_report, sample_rows

        man, _ = _synthetic_manifest(n)
        columns = (None if commit is not None
                   else list(_module_at(None, "influence_stage/pipeline/curate_output.py", "").REPORT_COLUMNS))

        def call():  # CorpusReport.run's use of the manifest (before: the whole manifest; after: its columns)
            m = man if columns is None else man[columns]
            return sample_rows(m), build_corpus_report(m, texts={}, summary={"documents in": len(m)}, low_cut=0.1,
                                                       high_cut=0.9, near_duplicates=[[1, 2]])

        return call, lambda out: out
    raise ValueError(part)


def _publish_setup(commit: str | None, n: int):
    """``PublishCorpus``'s call on synthetic inputs: the curated rows (69% of ``n``, ~140 random characters each) as
    two uncompressed Parquet shards (~100 MB at 1M), the Dataset memory-mapped from them, the manifest. Before:
    ``publish`` at ``commit`` given the shards' bytes; now: the working tree's given their paths. The check is every
    published file's sha256 but ``meta.json`` and ``README.md`` (both hold the publish time) and the Dataset's
    ``state.json`` (its fingerprint follows the temporary folder's name)."""
    import hashlib
    import tempfile

    import datasets
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    man, docs = _synthetic_manifest(n)
    work = Path(tempfile.mkdtemp(prefix="publish_part_"))
    rng = np.random.default_rng(0)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz     ", dtype=np.uint8)
    rows = docs["row_id"].to_numpy()
    shards = []
    for i, part_rows in enumerate(np.array_split(rows, 2)):
        chars = letters[rng.integers(0, len(letters), (len(part_rows), 140))]
        texts = pa.array([c.tobytes().decode() for c in chars])
        table = pa.table({"row_id": pa.array(part_rows), "text": texts})
        shards.append(work / f"part-{i:05d}.parquet")
        pq.write_table(table, shards[-1], compression="none")
        del chars, texts, table
    curated = datasets.Dataset.from_parquet([str(x) for x in shards], cache_dir=str(work / "hf"))
    if commit is None:
        from influence_stage.publish.versions import publish

        extra = {f"shards/{x.name}": x for x in shards}
    else:
        publish = _module_at(commit, "influence_stage/publish/versions.py", "versions_under_test").publish
        extra = None

    def call():
        files = extra if extra is not None else {f"shards/{x.name}": x.read_bytes() for x in shards}
        return publish(curated, man, root=work / "pub", name="corpus", extra_files=files, fingerprint="f")

    def check(published):
        return sorted((f, hashlib.sha256((published.path / f).read_bytes()).hexdigest()) for f in published.files
                      if f not in ("meta.json", "README.md", "dataset/state.json"))

    return call, check


def measure_part(part: str, commit: str | None, n: int) -> dict:
    """One part at one commit in this process: its peak and held RSS over the process before the call (MB; a
    thread samples every 5 ms), the call made once first so one-time imports and caches are not counted, and the
    free memory handed back before the measured call."""
    import gc
    import hashlib

    import psutil

    proc = psutil.Process()
    call, check = _part_setup(part, commit, n)
    call()
    gc.collect()
    # both versions start from a process that has handed its free pages back (Arrow's pool, glibc's heap):
    # otherwise a version that keeps the first call's freed pages would look smaller on the second call
    from influence_stage.memory import release_free_memory

    release_free_memory()
    peak = {"rss": 0.0, "anon": 0.0}
    stop = threading.Event()

    def mb():
        info = proc.memory_info()
        return info.rss / 2 ** 20, (info.rss - info.shared) / 2 ** 20

    def sample():
        while not stop.is_set():
            r, a = mb()
            peak["rss"], peak["anon"] = max(peak["rss"], r), max(peak["anon"], a)
            stop.wait(0.005)

    base = mb()
    peak["rss"], peak["anon"] = base
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    t = time.perf_counter()
    out = call()
    seconds = time.perf_counter() - t
    stop.set()
    thread.join()
    gc.collect()
    end = mb()
    digest = hashlib.sha256(repr(check(out)).encode()).hexdigest()[:16]
    return {"part": part, "code": commit or "working tree", "documents": n, "seconds": round(seconds, 2),
            "peak_mb": round(peak["rss"] - base[0], 1), "held_mb": round(end[0] - base[0], 1),
            "peak_anon_mb": round(peak["anon"] - base[1], 1), "held_anon_mb": round(end[1] - base[1], 1),
            "output_digest": digest}


def parts(before: str, n: int, names: tuple[str, ...] = PART_NAMES) -> list[dict]:
    """Every part at ``before`` and at the working tree, each call in its own process (one at a time)."""
    import subprocess

    rows = []
    for part in names:
        for commit in (before, None):
            cmd = [sys.executable, __file__, "--part", part, str(n)] + ([commit] if commit else [])
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"{part} at {commit or 'working tree'} failed:\n{done.stderr[-2000:]}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
        rows[-1]["same_output_as_before"] = rows[-1]["output_digest"] == rows[-2]["output_digest"]
    return rows


def main() -> None:
    if sys.argv[1] == "--render":  # --render NAME: results/NAME.md from results/NAME.json
        from pathlib import Path

        results = Path(__file__).resolve().parent / "results"
        (results / f"{sys.argv[2]}.md").write_text(render(json.loads((results / f"{sys.argv[2]}.json").read_text())))
        return
    if sys.argv[1] == "--part":  # --part NAME N [COMMIT]: one part in this process (parts() runs it)
        print(json.dumps(measure_part(sys.argv[2], sys.argv[4] if len(sys.argv) > 4 else None, int(sys.argv[3]))))
        return
    if sys.argv[1] == "--parts":  # --parts BEFORE N [NAME ...]: the parts at commit BEFORE and now, as JSON lines
        parts(sys.argv[2], int(sys.argv[3]), tuple(sys.argv[4:]) or PART_NAMES)
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

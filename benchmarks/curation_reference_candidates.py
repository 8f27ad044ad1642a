"""Candidate ``score: reference`` rankings compared on a ``curation_scale.py`` run folder, before one is wired in.

Reads what ``curation_reference_probe.py`` wrote under ``--work`` (the pool's, the reference's and its held-out
split's losses under reference members of one setting ``--tag``) and the run folder's corpus members' loss matrix,
and for each candidate prints the topic AUROC (clean documents), the junk AUROC and the topic and junk
shares of the subset at half the tokens; ``--train STEPS`` also trains a fresh GPT-2 on the chosen candidates'
subsets (``curation_scale_select._train``) for ``--seeds`` and prints the reference's held-out perplexity.

Candidates: ``current`` (cross-influence under the corpus members), ``refm_influence`` (under the
reference members: what ``score: reference`` does), ``refm_drop+ppl`` (the smaller of its rank fraction and
the low θ* loss's), ``perplexity`` (lowest θ* loss first), ``random``.
"""

from __future__ import annotations

import argparse
import glob
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))


def candidates(folder: Path, work: Path, tag: str) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """The candidate scores ``(n,)`` of the scored documents, and their topic and junk truth and rows."""
    from scipy.stats import rankdata

    from influence_stage.engine.influence import mean_test_loss_influence

    key = next((folder / "cache" / "curate").glob("*/loss_matrix.npy")).parent
    Lc = np.load(key / "loss_matrix.npy").astype(np.float64)
    base = np.empty(Lc.shape[0])
    for f in (key / "passes").glob("theta-*.npy"):
        s, e = map(int, f.name[:-4].split("-")[1:])
        base[s:e] = np.load(f)
    k = len(glob.glob(str(work / f"{tag}_m*_pool.npy")))
    Lr = np.stack([np.load(work / f"{tag}_m{m}_pool.npy") for m in range(k)], 1).astype(np.float64)
    bref = np.load(work / "base_ref.npy")
    Rr = np.stack([np.load(work / f"{tag}_m{m}_ref.npy") for m in range(k)], 1)
    Rc = np.stack([np.load(work / f"corpus_{m}_ref.npy") for m in range(Lc.shape[1])], 1)
    man = pd.read_parquet(next((folder / "published").glob("scale-*/v*")) / "manifest.parquet")
    rows = np.flatnonzero(man["score"].notna().to_numpy())
    truth = pd.read_parquet(folder / "truth.parquet")
    junk = truth["kind"].to_numpy(object)[rows] != "clean"
    topic = truth["topic"].to_numpy(bool)[rows]
    refm = mean_test_loss_influence(Lr - base[:, None], Rr - bref[:, None])
    r = lambda x: rankdata(x) / len(x)  # noqa: E731
    out = {"current": mean_test_loss_influence(Lc - base[:, None], Rc - bref[:, None]), "refm_influence": refm,
           "refm_drop+ppl": np.minimum(r(refm), r(-base)), "perplexity": -base}
    return out, topic, junk, rows


def main() -> None:
    from sklearn.metrics import roc_auc_score

    from curation_scale_select import _train, _up_to, stage_token_counts

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", default="/tmp/curation_scale/n20000")
    p.add_argument("--work", default="/tmp/crp")
    p.add_argument("--tag", default="c4y1s300lr0.2")
    p.add_argument("--train", type=int, help="downstream steps (none: statistics only)")
    p.add_argument("--names", nargs="+", default=["refm_influence", "perplexity", "random"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--jobs", type=int, default=2)
    a = p.parse_args()
    folder = Path(a.folder)
    scores, topic, junk, rows = candidates(folder, Path(a.work), a.tag)
    n_tok = stage_token_counts(folder)
    budget = int(0.5 * n_tok.sum())
    print(f"{'score':16s} topic AUROC (clean)  junk AUROC  topic share  junk share  documents")
    for name, s in scores.items():
        idx = _up_to(np.argsort(-s, kind="stable"), n_tok, budget)
        print(f"{name:16s} {roc_auc_score(topic[~junk], s[~junk]):.3f}  {roc_auc_score(junk, -s):.3f}  "
              f"{topic[idx].mean():.3f}  {junk[idx].mean():.3f}  {len(idx)}")
    if not a.train:
        return
    texts = pd.concat([pd.read_parquet(f, columns=["text"]) for f in sorted((folder / "shards").glob("*.parquet"))]
                      )["text"].tolist()
    held = pd.read_parquet(folder / "reference_heldout.parquet")["text"].tolist()
    jobs = []
    for seed in a.seeds:
        for name in a.names:
            order = (np.random.default_rng([seed, 99]).permutation(len(rows)) if name == "random"
                     else np.argsort(-scores[name], kind="stable"))
            jobs.append((seed, name, _up_to(order, n_tok, budget)))
    with ProcessPoolExecutor(a.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_train, str(folder / "model"), [texts[i] for i in rows[idx]], held, a.train, seed)
                   for seed, _, idx in jobs]
        for (seed, name, _), fut in zip(jobs, futures):
            print(f"{a.train} steps, seed {seed}, {name}: reference held-out perplexity {fut.result()[0]:.2f}",
                  flush=True)


if __name__ == "__main__":
    main()

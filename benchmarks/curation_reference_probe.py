"""Candidate reference scores on an existing ``curation_scale.py`` run folder, measured before one is wired in.

Reads the 20k run folder (θ*, the token cache, the corpus members' loss matrix), trains *reference members*
(cycles of SGD from θ* on the reference corpus), scores the pool under them, and writes each candidate
score's subset statistics (topic and junk share at the token budget) to ``--out``. Not part of the benchmark.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--folder", default="/tmp/curation_scale/n20000")
    p.add_argument("--work", default="/tmp/crp")
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--cycles", type=int, default=1)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--lr", type=float, default=0.05)
    a = p.parse_args()
    import torch

    torch.set_num_threads(2)
    from influence_stage.data.tokens import TokenCache
    from influence_stage.engine.causal_lm import lm_members
    from influence_stage.orchestration.curate_config import CurateConfig
    from influence_stage.pipeline.curate_inputs import load_learner, reference_texts

    folder, work = Path(a.folder), Path(a.work)
    tag = f"c{a.chains}y{a.cycles}s{a.steps}lr{a.lr}"
    work.mkdir(parents=True, exist_ok=True)
    cfg = CurateConfig(**yaml.safe_load((folder / "curate-reference.yaml").read_text()))
    learner = load_learner(cfg)
    (cache,) = sorted((folder / "cache" / "tokens").glob("*.arrow"))
    tokens = TokenCache(cache)
    ref = reference_texts(cfg)
    held = pd.read_parquet(folder / "reference_heldout.parquet")["text"].tolist()
    t = time.perf_counter()
    for name, data in (("ref", ref), ("held", held)):
        f = work / f"base_{name}.npy"
        if not f.exists():
            np.save(f, learner.per_sample_loss(data))
    members = lm_members(learner, ref, chains=a.chains, cycles=a.cycles, steps=a.steps, ft_lr=a.lr, seed=0)
    print(f"members {time.perf_counter() - t:.0f} s", flush=True)
    start = learner.get_state()
    for m, st in enumerate(members):
        f = work / f"{tag}_m{m}_pool.npy"
        learner.set_state(st)
        for name, data in (("ref", ref), ("held", held)):
            g = work / f"{tag}_m{m}_{name}.npy"
            if not g.exists():
                np.save(g, learner.per_sample_loss(data))
        if not f.exists():
            t = time.perf_counter()
            np.save(f, learner.per_sample_loss(tokens))
            print(f"pass {m}: {time.perf_counter() - t:.0f} s", flush=True)
    learner.set_state(start)
    # the corpus members' reference losses
    corpus_members = sorted((folder / "cache" / "curate").glob("*/members/*.pt"))
    for f in corpus_members:
        g = work / f"corpus_{f.stem}_ref.npy"
        if not g.exists():
            learner.set_state(torch.load(f, map_location="cpu", weights_only=True))
            np.save(g, learner.per_sample_loss(ref))
            np.save(work / f"corpus_{f.stem}_held.npy", learner.per_sample_loss(held))
    learner.set_state(start)
    print(json.dumps({"tag": tag, "members": len(members)}))


if __name__ == "__main__":
    main()

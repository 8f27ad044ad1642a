"""CausalLMLearner on a tiny GPT-2 built and saved here, and corpora streamed from local shards.

Nothing is downloaded: the tokenizer is a byte-level BPE trained on the test's own sentences and the
model is a randomly initialised two-block GPT-2, pre-trained for a few steps on those sentences.
"""

from __future__ import annotations

import json
import logging
import os

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_var] = "1"

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from influence_stage.data.corpus import Corpus, content_hash, inventory, near_duplicate_groups
from influence_stage.engine import causal_lm
from fixtures.lm import small_gpt2, train_tokenizer
from influence_stage.engine.causal_lm import CausalLMLearner, chunk_ids, corpus_gex, lm_members, pack_batches
from influence_stage.engine.learner import CosineSchedule, Learner
from influence_stage.errors import CheckpointError, InvalidInputError, InvalidTypeError

SUBJECTS = ["the cat", "a dog", "the bird", "my friend", "the teacher", "a child"]
VERBS = ["sat on", "looked at", "walked to", "jumped over", "played with"]
OBJECTS = ["the mat", "a red ball", "the old tree", "the garden", "a small box"]


def sentences(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}."
                     for _ in range(int(rng.integers(1, 4)))) for _ in range(n)]


def junk(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("qxzj#%@!^~0123456789"), int(rng.integers(30, 60)))) for _ in range(n)]


@pytest.fixture(scope="module")
def lm_folder(tmp_path_factory):
    """A tiny GPT-2 and its tokenizer (no pad token, as GPT-2), pre-trained briefly, saved to a folder."""
    torch.set_num_threads(1)
    clean = sentences(300, 0)
    tok = train_tokenizer(clean, vocab_size=300)
    model = small_gpt2(tok, n_layer=2, n_embd=32, n_positions=64, seed=0)
    learner = CausalLMLearner(model, _with_pad(tok), max_length=48, batch_size=16)
    learner.fit(clean, steps=120, lr=5e-3, warmup=10, seed=0)
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _with_pad(tok):
    import copy

    tok = copy.deepcopy(tok)
    tok.pad_token = tok.eos_token
    return tok


@pytest.fixture()
def learner(lm_folder):
    return CausalLMLearner.from_pretrained(lm_folder, max_length=16, batch_size=8, batch_tokens=256)


# -- chunking and batching --------------------------------------------------------------------------


def test_chunking_rule_predicts_every_token_once():
    ids = list(range(40))
    windows = chunk_ids(ids, 8)
    assert all(len(w) <= 8 for w in windows)
    targets = [t for w in windows for t in w[1:]]
    assert targets == ids[1:]  # every token after the first, once, in order
    assert chunk_ids(ids, 8, max_chunks=2) == windows[:2]
    assert chunk_ids([5, 6], 8) == [[5, 6]]


def test_pack_batches_respects_the_token_budget():
    lengths = [3, 10, 7, 7, 2, 10, 1]
    batches = pack_batches(lengths, 20)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(len(b) * max(lengths[i] for i in b) <= 20 for b in batches)
    assert pack_batches([50], 20) == [[0]]  # a window over budget gets a batch of its own


# -- the learner -------------------------------------------------------------------------------------


def test_loads_gpt2_without_pad_token_and_pads_with_eos(learner):
    assert isinstance(learner, Learner)
    assert learner.tokenizer.pad_token == learner.tokenizer.eos_token


def test_document_loss_is_the_mean_token_cross_entropy_and_ignores_padding(learner):
    docs = ["the cat sat on the mat.", "a dog looked at a red ball. the bird walked to the garden."]
    losses = learner.per_sample_loss(docs)
    alone = np.array([learner.per_sample_loss([d])[0] for d in docs])
    np.testing.assert_allclose(losses, alone, rtol=1e-5)
    # the first document fits in one window: compare with the model's own mean loss
    ids = [learner.tokenizer.bos_token_id] + learner.tokenizer(docs[0], add_special_tokens=False)["input_ids"]
    assert len(ids) <= learner.max_length
    x = torch.tensor([ids])
    with torch.no_grad():
        ref = learner.model(input_ids=x, labels=x).loss
    assert losses[0] == pytest.approx(float(ref), rel=1e-5)


def test_long_documents_are_chunked_by_the_rule(learner):
    doc = " ".join(sentences(8, 3))
    ids = [learner.tokenizer.bos_token_id] + learner.tokenizer(doc, add_special_tokens=False)["input_ids"]
    assert len(ids) > 3 * learner.max_length
    total, count = 0.0, 0
    with torch.no_grad():
        for w in chunk_ids(ids, learner.max_length):
            x = torch.tensor([w])
            logits = learner.model(input_ids=x).logits[0, :-1]
            total += float(F.cross_entropy(logits, x[0, 1:], reduction="sum"))
            count += len(w) - 1
    assert learner.per_sample_loss([doc])[0] == pytest.approx(total / count, rel=1e-5)
    assert np.exp(-learner.per_sample_loss([doc]))[0] == pytest.approx(learner.predict_proba([doc])[0, 0], rel=1e-5)


def test_last_blocks_only_move_and_state_is_small(lm_folder):
    learner = CausalLMLearner.from_pretrained(lm_folder, trainable="last:1", max_length=16, batch_size=8)
    state = learner.get_state()
    assert all(k.startswith(("transformer.h.1.", "transformer.ln_f.")) for k in state)
    frozen = {n: p.detach().clone() for n, p in learner.model.named_parameters() if n not in state}
    learner.train_steps(sentences(40, 1), 5, CosineSchedule(0.1, 5), seed=0)
    after = dict(learner.model.named_parameters())
    assert all(torch.equal(after[n], v) for n, v in frozen.items())
    assert any(not torch.equal(after[n], v) for n, v in state.items())
    learner.set_state(state)
    assert all(torch.equal(after[n], v) for n, v in state.items())


def test_members_are_deterministic_and_gex_finds_planted_junk(learner):
    data = sentences(120, 5) + junk(12, 0)
    is_junk = np.r_[np.zeros(120), np.ones(12)]
    theta = learner.get_state()
    a = lm_members(learner, data, chains=2, cycles=2, steps=8, ft_lr=0.05, seed=0)
    assert all(torch.equal(theta[k], v) for k, v in learner.get_state().items())  # left at θ*
    b = lm_members(learner, data, chains=2, cycles=2, steps=8, ft_lr=0.05, seed=0)
    assert all(torch.equal(x[k], y[k]) for x, y in zip(a, b) for k in x)
    res = corpus_gex(learner, data, members=a, ft_lr=0.05)
    assert res.loss_matrix.shape == (132, 4) and res.n_members == 4
    assert roc_auc_score(is_junk, res.self_influence) > 0.9


# -- streaming corpora ------------------------------------------------------------------------------


def _write_shards(folder, texts, kind):
    folder.mkdir()
    half = len(texts) // 2
    for i, part in enumerate((texts[:half], texts[half:])):
        if kind == "parquet":
            pd.DataFrame({"text": part, "n": range(len(part))}).to_parquet(folder / f"part-{i}.parquet")
        elif kind == "jsonl":
            (folder / f"part-{i}.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in part) + "\n")
        else:
            import datasets

            datasets.Dataset.from_dict({"text": part}).save_to_disk(str(folder / f"saved-{i}"))
    return folder


@pytest.mark.parametrize("kind", ["parquet", "jsonl", "arrow"])
def test_streamed_corpus_scores_as_the_list_does(learner, tmp_path, kind, caplog, monkeypatch):
    texts = sentences(60, 7) + junk(6, 1)
    corpus = Corpus(_write_shards(tmp_path / kind, texts, kind))
    assert len(corpus) == len(texts)
    assert list(corpus.iter_texts()) == texts
    shuffled = list(corpus.iter_texts(shuffle_seed=3))
    assert sorted(shuffled) == sorted(texts) and shuffled == list(corpus.iter_texts(shuffle_seed=3))
    members = lm_members(learner, texts, chains=1, cycles=2, steps=4, ft_lr=0.05, seed=0)
    monkeypatch.setattr(causal_lm, "LOG_EVERY_S", 0.0)
    with caplog.at_level(logging.INFO, logger="influence_stage.engine.causal_lm"):
        streamed = corpus_gex(learner, corpus, members=members, loss_path=tmp_path / "L.npy")
    in_memory = corpus_gex(learner, texts, members=members)
    np.testing.assert_allclose(streamed.self_influence, in_memory.self_influence, rtol=1e-4, atol=1e-8)
    assert isinstance(streamed.loss_matrix, np.memmap)
    assert np.load(tmp_path / "L.npy").shape == (len(texts), 2)
    assert any("ETA" in r.getMessage() for r in caplog.records)


def test_members_train_on_a_stream(learner, tmp_path):
    corpus = Corpus(_write_shards(tmp_path / "p", sentences(30, 2), "parquet"))
    before = learner.per_sample_loss(corpus).mean()
    members = lm_members(learner, corpus, chains=1, cycles=2, steps=10, ft_lr=0.05, seed=0)
    learner.set_state(members[-1])
    assert learner.per_sample_loss(corpus).mean() < before  # continued training on the corpus fits it better


def test_filtered_view_streams_only_the_flagged_rows(tmp_path):
    texts = ["a b", "c d", "e f", "g h"]
    corpus = Corpus(_write_shards(tmp_path / "p", texts, "parquet"))
    view = corpus.where(np.array([True, False, True, False]))
    assert len(view) == 2 and list(view.iter_texts()) == ["a b", "e f"]


def test_inventory_statuses_and_near_duplicates(tmp_path):
    texts = ["Hello world.", "hello   WORLD!", "", "  ", "Hello world.", "x", "a" * 50, "fine text"]
    corpus = Corpus(_write_shards(tmp_path / "p", texts, "parquet"))
    inv = inventory(corpus, min_chars=2, max_chars=40)
    assert list(inv["status"]) == ["ok", "ok", "empty", "empty", "duplicate", "too short", "too long", "ok"]
    assert inv.loc[4, "duplicate_of"] == 0
    assert inv.loc[0, "content_hash"] == content_hash("Hello world.")
    assert near_duplicate_groups(inv) == [[0, 1, 4]]
    assert (inventory(corpus, dedup=False)["status"] == "duplicate").sum() == 0


# -- bad input --------------------------------------------------------------------------------------


def test_missing_text_column_lists_the_columns(tmp_path):
    folder = _write_shards(tmp_path / "p", ["a b", "c d"], "parquet")
    with pytest.raises(InvalidInputError, match=r"no text column 'body'; its columns are \['text', 'n'\]"):
        Corpus(folder, text_column="body")
    with pytest.raises(InvalidInputError, match="text column 'n' holds int64, not strings"):
        Corpus(folder, text_column="n")
    with pytest.raises(InvalidInputError, match="no id column 'doc'"):
        Corpus(folder, id_column="doc")


def test_bad_shards_are_refused(tmp_path):
    with pytest.raises(InvalidInputError, match="no corpus shards found"):
        Corpus(tmp_path)
    (tmp_path / "a.parquet").write_bytes(b"")
    (tmp_path / "b.jsonl").write_text("{}\n")
    with pytest.raises(InvalidInputError, match="mix formats"):
        Corpus(tmp_path)
    with pytest.raises(InvalidInputError, match="unsupported suffix '.csv'"):
        (tmp_path / "c.csv").write_text("text\n")
        Corpus(tmp_path / "c.csv")


def test_non_string_documents(tmp_path, learner):
    folder = tmp_path / "j"
    folder.mkdir()
    (folder / "a.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in ["fine", 42, "ok"]) + "\n")
    corpus = Corpus(folder)
    with pytest.raises(InvalidTypeError, match="document 1 of column 'text' is int, not a string"):
        inventory(corpus)
    assert list(inventory(corpus, skip_invalid=True)["status"]) == ["ok", "not text", "ok"]
    with pytest.raises(InvalidTypeError, match="document 1 is int, not a string"):
        learner.per_sample_loss(["fine", 42])
    with pytest.raises(InvalidInputError, match="document 1 is empty"):
        learner.per_sample_loss(["fine", "   "])
    with pytest.raises(InvalidInputError, match="min_chars must be an int >= 1"):
        inventory(corpus, min_chars=0)


def test_tokenizer_without_pad_or_eos_is_refused(tmp_path, lm_folder):
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(str(lm_folder))
    model = transformers.AutoModelForCausalLM.from_pretrained(str(lm_folder))
    with pytest.raises(InvalidInputError, match="the tokenizer has no pad token"):
        CausalLMLearner(model, tok)
    tok.eos_token = None
    tok.bos_token = None
    folder = tmp_path / "no-eos"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    with pytest.raises(CheckpointError, match="neither a pad nor an eos token"):
        CausalLMLearner.from_pretrained(folder)


def test_folder_that_is_not_a_causal_lm_is_refused(tmp_path):
    import transformers

    cfg = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=32, num_labels=2)
    folder = tmp_path / "bert"
    transformers.BertForSequenceClassification(cfg).save_pretrained(folder)
    with pytest.raises(CheckpointError, match="is not a causal language model"):
        CausalLMLearner.from_pretrained(folder)
    with pytest.raises(CheckpointError, match="language model folder not found"):
        CausalLMLearner.from_pretrained(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="could not read a model config"):
        CausalLMLearner.from_pretrained(tmp_path / "empty")


def test_bad_settings(lm_folder, learner):
    with pytest.raises(InvalidInputError, match="trainable must be 'all' or 'last:N'"):
        CausalLMLearner.from_pretrained(lm_folder, trainable="head")
    with pytest.raises(InvalidInputError, match="asks for the last 5 blocks"):
        CausalLMLearner.from_pretrained(lm_folder, trainable="last:5")
    with pytest.raises(InvalidInputError, match="max_length must be an int in 2..64"):
        CausalLMLearner.from_pretrained(lm_folder, max_length=100)
    with pytest.raises(InvalidInputError, match="at least 2 members"):
        lm_members(learner, ["a b c"], chains=1, cycles=1, steps=1, ft_lr=0.1)
    with pytest.raises(InvalidInputError, match="ft_lr must be a positive number"):
        lm_members(learner, ["a b c"], chains=2, cycles=1, steps=1, ft_lr="auto")
    with pytest.raises(InvalidTypeError, match="takes a list of strings or a corpus stream"):
        learner.per_sample_loss("just one string")

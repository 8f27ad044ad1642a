"""Scoring passes with the output layer on the predicted positions only give the full forward's losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from fixtures.lm import small_gpt2, train_tokenizer
from influence_stage.engine.causal_lm import CausalLMLearner
from influence_stage.engine.lm_eval import eval_token_losses, split_head

TEXTS = [f"the {a} was {b} and the {c} felt {d}." for a in ("film", "plot", "cast") for b in ("long", "short", "odd")
         for c in ("ending", "music") for d in ("flat", "warm", "loud", "new")]


@pytest.fixture(scope="module")
def learner():
    torch.set_num_threads(1)
    tok = train_tokenizer(TEXTS, vocab_size=150)
    padded = tok.__class__(tokenizer_object=tok.backend_tokenizer, bos_token=tok.bos_token, eos_token=tok.eos_token,
                           unk_token=tok.unk_token, pad_token=tok.eos_token)
    # max_length 8: documents span several windows, batches mix lengths (padding at the end of short rows)
    return CausalLMLearner(small_gpt2(tok, n_layer=1, n_embd=16, n_positions=16, seed=0), padded, max_length=8,
                           batch_tokens=64)


def test_losses_on_predicted_positions_equal_the_full_forward(learner):
    windows = learner.encode(TEXTS[:9] + ["the film."])
    with torch.inference_mode():
        full_s, full_c = learner._token_losses(windows)
        ids, mask = learner._pad(windows)
        for block in (1, 5, 1024):  # the logits a block of rows at a time, whatever the block
            s, c = eval_token_losses(*split_head(learner.model), ids, mask, block_rows=block)
            torch.testing.assert_close(s, full_s, rtol=1e-6, atol=1e-6)
            assert torch.equal(c, full_c)
    assert bool((mask.sum(1) < mask.shape[1]).any())  # the batch had padding to leave out


def test_per_sample_loss_is_unchanged_and_other_heads_keep_the_full_forward(learner, monkeypatch):
    fast = learner.per_sample_loss(TEXTS)
    monkeypatch.setattr(learner, "_eval_losses", learner._token_losses)
    np.testing.assert_allclose(fast, learner.per_sample_loss(TEXTS), rtol=1e-6)
    monkeypatch.setattr(learner.model.config, "model_type", "unknown-head")
    assert split_head(learner.model) is None
    monkeypatch.setattr(learner.model.config, "model_type", "gpt2")
    monkeypatch.setattr(learner.model.config, "final_logit_softcapping", 30.0, raising=False)
    assert split_head(learner.model) is None

"""Resuming the curation's scoring: a rerun deletes the half-written files a killed run of the stage left, and
nothing else; token counts follow one convention (the tokenizer's tokens of a document, no bos)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from fixtures.lm import small_gpt2, train_tokenizer
from influence_stage.data.tokens import TokenCache
from influence_stage.engine.causal_lm import CausalLMLearner, lm_members
from influence_stage.orchestration.curate_config import CurateConfig
from influence_stage.pipeline.context import RunContext
from influence_stage.pipeline.curate import LossMatrix, document_tokens

TEXTS = [f"the {w} {v} the {u}." for w in ("film", "plot", "cast", "story") for v in ("is", "was", "seems")
         for u in ("best", "worst")]


def _learner(add_bos: bool = True) -> CausalLMLearner:
    tok = train_tokenizer(TEXTS, vocab_size=100)
    padded = tok.__class__(tokenizer_object=tok.backend_tokenizer, bos_token=tok.bos_token, eos_token=tok.eos_token,
                           unk_token=tok.unk_token, pad_token=tok.eos_token)
    return CausalLMLearner(small_gpt2(tok, n_layer=1, n_embd=16, n_positions=32, seed=0), padded, max_length=16,
                           batch_size=8, add_bos=add_bos)


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("resume")
    learner = _learner()
    tokens = TokenCache.build(learner, TEXTS, root / "tokens.arrow")
    members = lm_members(learner, tokens, chains=1, cycles=2, steps=2, ft_lr=0.05, seed=0)
    return root, learner, tokens, members


def test_a_rerun_deletes_the_stages_half_written_files_and_nothing_else(parts):
    root, learner, tokens, members = parts
    config = CurateConfig(source="s", name="n", model="m", budget=0.5, chains=1, cycles=2, shard_docs=10,
                          cache_dir=str(root / "cache"))
    context = RunContext(config=config, values={"learner": learner, "tokens": tokens, "members": members,
                                                "data_key": "resume-test"})
    step = LossMatrix()
    expected = np.asarray(step.run(context)["loss_matrix"]).copy()
    folder = Path(context.values["pass_folder"])
    out = Path(step.units(context).items[1]["out"])
    # a unit killed while saving: its done-flag and pass file gone, its temporary file left
    Path(f"{out}.done").unlink()
    out.unlink()
    torn = [out.with_name(f"{out.name}.4242.tmp.npy"), folder / "members" / ".0.4242.tmp"]
    for path in torn:
        path.write_bytes(b"\x93NUMPY\x01\x00")
    # files the stage did not write: never touched
    foreign = [folder / "passes" / "notes.txt", folder / "passes" / "other.npy.4242.tmp.npy",
               out.with_name(f"{out.name}.backup"), folder / "members" / ".keep.tmp", folder / "members" / "x.pt"]
    for path in foreign:
        path.write_text("not the stage's")

    rerun = step.run(context)
    assert context.values["torn_files_removed"] == 2
    assert not any(p.exists() for p in torn)
    assert all(p.read_text() == "not the stage's" for p in foreign)
    assert context.values["passes_evaluated"] == 1  # the killed unit alone
    np.testing.assert_array_equal(np.asarray(rerun["loss_matrix"]), expected)


@pytest.mark.parametrize("add_bos", [True, False])
def test_token_counts_are_the_tokenizers_tokens_of_each_document_whatever_the_bos(tmp_path, add_bos):
    learner = _learner(add_bos)
    tokens = TokenCache.build(learner, TEXTS, tmp_path / "tokens.arrow")
    counted = [len(learner.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in TEXTS]
    np.testing.assert_array_equal(document_tokens(learner, tokens), counted)
    # the cache holds the bos when the learner adds one; the stage's count never includes it
    np.testing.assert_array_equal(tokens.n_tokens() - np.asarray(counted), int(add_bos))

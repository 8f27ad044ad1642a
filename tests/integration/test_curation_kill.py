"""A scoring work unit killed mid-pass (SIGKILL, in a forked process) leaves no done-flag; the re-run evaluates
that unit alone and the loss matrix and scores equal an uninterrupted run's bit for bit."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
if sys.platform == "win32":  # pragma: no cover - fork and SIGKILL
    pytest.skip("needs fork and SIGKILL", allow_module_level=True)

from fixtures.lm import small_gpt2, train_tokenizer
from influence_stage.data.tokens import TokenCache
from influence_stage.engine.causal_lm import CausalLMLearner, lm_members
from influence_stage.orchestration.curate_config import CurateConfig
from influence_stage.pipeline.context import RunContext
from influence_stage.pipeline.curate import LossMatrix

TEXTS = [f"the {w} {v} the {u}." for w in ("film", "plot", "cast", "story", "score")
         for v in ("is", "was", "feels", "seems") for u in ("best", "worst", "longest")]


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """A tiny GPT-2 at θ*, the corpus tokenized once, two members."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("kill")
    tok = train_tokenizer(TEXTS, vocab_size=120)
    padded = tok.__class__(tokenizer_object=tok.backend_tokenizer, bos_token=tok.bos_token, eos_token=tok.eos_token,
                           unk_token=tok.unk_token, pad_token=tok.eos_token)
    learner = CausalLMLearner(small_gpt2(tok, n_layer=1, n_embd=16, n_positions=32, seed=0), padded, max_length=16,
                              batch_size=8)
    tokens = TokenCache.build(learner, TEXTS, root / "tokens.arrow")
    members = lm_members(learner, tokens, chains=1, cycles=2, steps=3, ft_lr=0.05, seed=0)
    return root, learner, tokens, members


def _context(root: Path, folder: str, learner, tokens, members) -> RunContext:
    config = CurateConfig(source="s", name="n", model="m", budget=0.5, chains=1, cycles=2, shard_docs=20,
                          cache_dir=str(root / folder))
    return RunContext(config=config, values={"learner": learner, "tokens": tokens, "members": members,
                                             "data_key": "kill-test"})


def _torn_unit(fn, shared, item, ready: str) -> None:
    """Run a unit whose pass file is half written when the process is killed (``np.save`` writes a torn
    header, then waits to be killed)."""
    def torn_save(path, array) -> None:
        with open(path, "wb") as fh:
            fh.write(b"\x93NUMPY\x01\x00")
        Path(ready).touch()
        time.sleep(120)

    np.save = torn_save  # this forked process only
    fn(**shared, **item)


def test_a_unit_killed_mid_pass_is_rerun_and_the_scores_are_unchanged(parts):
    root, learner, tokens, members = parts
    whole = _context(root, "whole", learner, tokens, members)
    expected = LossMatrix().run(whole)
    n_units = whole.values["passes_evaluated"]
    assert n_units == 3 * 3  # (θ* + 2 members) × 3 document ranges of 20

    killed = _context(root, "killed", learner, tokens, members)
    step = LossMatrix()
    units = step.units(killed)
    victim = 4  # a member's pass over the middle range
    for i, item in enumerate(units.items):
        if i != victim:
            assert units.fn(**units.shared, **item)
    ready = str(root / "ready")
    proc = multiprocessing.get_context("fork").Process(target=_torn_unit,
                                                       args=(units.fn, units.shared, units.items[victim], ready))
    proc.start()
    deadline = time.monotonic() + 60
    while not os.path.exists(ready) and proc.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.path.exists(ready), "the unit never reached its write"
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    out = Path(units.items[victim]["out"])
    assert not Path(f"{out}.done").exists() and not out.exists()  # no done-flag, no pass file: only a torn temp
    assert list(out.parent.glob(f"{out.name}.*.tmp.npy"))

    rerun = step.run(killed)
    assert killed.values["passes_evaluated"] == 1  # the killed unit alone
    np.testing.assert_array_equal(np.asarray(rerun["loss_matrix"]), np.asarray(expected["loss_matrix"]))
    np.testing.assert_array_equal(rerun["base_loss"], expected["base_loss"])
    np.testing.assert_array_equal(rerun["self_influence"], expected["self_influence"])

"""``score: reference``: the reference members, the documents' losses under them as resumable work units, and the
cross-influence that ranks the documents of the reference's kind first; on a tiny two-topic corpus."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("transformers")

from fixtures.lm import small_gpt2, train_tokenizer
from influence_stage.data.tokens import TokenCache
from influence_stage.engine.causal_lm import CausalLMLearner
from influence_stage.errors import InvalidInputError
from influence_stage.orchestration.curate_config import CurateConfig
from influence_stage.pipeline.context import RunContext
from influence_stage.pipeline.curate import CURATE, ReferenceLosses, ReferenceMembers, reference_influence
from influence_stage.pipeline.curate_inputs import preflight

HORROR = ["the monster", "a ghost", "the killer", "the zombie", "a vampire", "the demon"]
SCARY = ["screams at night", "haunts the house", "hides in the dark", "bites the victim", "stalks the woods"]
COOK = ["the recipe", "a soup", "the bread", "the sauce", "a salad", "the cake"]
TASTY = ["needs more salt", "bakes for an hour", "tastes of lemon", "uses fresh herbs", "cools on the rack"]


def _docs(subjects: list[str], verbs: list[str], n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"{rng.choice(subjects)} {rng.choice(verbs)}." for _ in range(n)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A pool of 24 horror and 24 cooking sentences, θ* a tiny GPT-2 trained briefly on both, and a reference
    corpus of other horror sentences as one Parquet shard."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("reference")
    pool = _docs(HORROR, SCARY, 24, 0) + _docs(COOK, TASTY, 24, 1)
    horror = np.array([True] * 24 + [False] * 24)
    ref = root / "reference"
    ref.mkdir()
    pd.DataFrame({"text": _docs(HORROR, SCARY, 30, 2)}).to_parquet(ref / "r.parquet")
    tok = train_tokenizer(pool, vocab_size=200)
    padded = tok.__class__(tokenizer_object=tok.backend_tokenizer, bos_token=tok.bos_token, eos_token=tok.eos_token,
                           unk_token=tok.unk_token, pad_token=tok.eos_token)
    learner = CausalLMLearner(small_gpt2(tok, n_layer=1, n_embd=16, n_positions=32, seed=0), padded, max_length=16,
                              batch_size=8)
    learner.fit(pool, steps=30, lr=1e-2, warmup=3, seed=0)
    tokens = TokenCache.build(learner, pool, root / "tokens.arrow")
    return root, learner, tokens, horror


def _context(root: Path, learner, tokens, **overrides) -> RunContext:
    fields = dict(source="s", name="n", model="m", budget=0.5, score="reference", reference=str(root / "reference"),
                  reference_members=3, reference_steps=10, reference_lr=0.1, shard_docs=20,
                  cache_dir=str(root / "cache"))
    config = CurateConfig(**{**fields, **overrides})
    base = learner.per_sample_loss(tokens)
    return RunContext(config=config, values={"learner": learner, "tokens": tokens, "data_key": "reference-test",
                                             "scores": {"base_loss": base, "loss_matrix": None}})


def _score(context: RunContext) -> np.ndarray:
    context.values["reference_members"] = ReferenceMembers().run(context)
    context.values["reference"] = ReferenceLosses().run(context)
    return reference_influence(context["scores"], context["reference"])


def test_documents_of_the_references_kind_get_the_higher_reference_score(setup):
    root, learner, tokens, horror = setup
    context = _context(root, learner, tokens)
    start = {k: v.clone() for k, v in learner.get_state().items()}
    score = _score(context)
    from sklearn.metrics import roc_auc_score

    assert score.shape == (len(tokens),)
    assert roc_auc_score(horror, score) >= 0.9, score
    # the learner is left at θ*
    assert all(torch.equal(start[k], v) for k, v in learner.get_state().items())
    # the reference's own losses fall under the members trained on it
    ref = context["reference"]
    assert ref["loss_matrix"].shape == (30, 3) and (ref["loss_matrix"].mean(axis=0) < ref["base_loss"].mean()).all()


def test_a_rerun_evaluates_only_the_reference_units_without_a_done_flag(setup):
    root, learner, tokens, _ = setup
    context = _context(root, learner, tokens, cache_dir=str(root / "resume-cache"))
    first = _score(context)
    step = ReferenceLosses()
    units = step.units(context)
    assert len(units.items) == 3 * 3  # 3 members × documents 0-20, 20-40, 40-48
    out = Path(units.items[4]["out"])
    Path(f"{out}.done").unlink()
    out.unlink()
    results = [units.fn(**units.shared, **item) for item in units.items]
    assert sum(results) == 1
    np.testing.assert_array_equal(reference_influence(context["scores"], step.gather(context, units, results)),
                                  first)


def test_reference_influence_is_the_mean_test_loss_influence_under_the_reference_members():
    base = np.array([1.0, 2.0])
    pool = np.array([[0.5, 0.7], [2.5, 2.1]])  # documents under 2 reference members
    ref = {"base_loss": np.array([3.0]), "loss_matrix": np.array([[2.0, 2.6]]), "pool_loss_matrix": pool}
    out = reference_influence({"base_loss": base, "loss_matrix": np.zeros((2, 8))}, ref)
    D, r = pool - base[:, None], np.array([-1.0, -0.4])
    np.testing.assert_allclose(out, D @ r / 2)
    assert out[0] > 0 > out[1]  # the document whose loss falls with the reference's helps it


def test_the_reference_steps_apply_to_score_reference_alone(setup):
    root, learner, tokens, _ = setup
    for score in ("self", "self_or_perplexity"):
        context = RunContext(config=CurateConfig(source="s", name="n", model="m", budget=0.5, score=score),
                             values={})
        assert not ReferenceMembers().applies(context) and not ReferenceLosses().applies(context)
    names = CURATE.names
    assert names.index("loss-matrix") < names.index("reference-members") < names.index("reference-losses") \
        < names.index("prune")


def test_reference_members_settings_are_checked_and_an_empty_reference_is_refused(tmp_path):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="reference_members"):
        CurateConfig(source="s", name="n", model="m", budget=0.5, score="reference", reference="r",
                     reference_members=1)
    shards, empty = tmp_path / "shards", tmp_path / "empty"
    shards.mkdir()
    empty.mkdir()
    pd.DataFrame({"text": ["a line", "another"]}).to_parquet(shards / "a.parquet")
    pd.DataFrame({"text": ["  ", ""]}).to_parquet(empty / "e.parquet")
    config = CurateConfig(source=str(shards), name="n", model=str(tmp_path), budget=0.5, score="reference",
                          reference=str(empty))
    with pytest.raises(InvalidInputError, match="holds no non-empty document"):
        preflight(config)

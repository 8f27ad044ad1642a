"""The curation flow's token budget, its θ* adaptation step, and its refusals of bad input (one line, exit 2,
nothing published), on a tiny corpus and the tiny GPT-2 of ``tests/fixtures``."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("prefect")
pytest.importorskip("transformers")

from fixtures.lm import small_gpt2, train_tokenizer
from influence_stage.cli.main import main
from influence_stage.engine.causal_lm import CausalLMLearner
from influence_stage.errors import InvalidInputError
from influence_stage.orchestration.curate import CurateConfig, curate_corpus
from influence_stage.pipeline.curate import prune_to_tokens
from influence_stage.publish.versions import load_published

WORDS = ["the film", "a story", "the cast", "this plot", "the ending", "every scene"]
ADJ = ["is charming", "feels long", "works well", "falls flat", "is a delight", "drags on"]


def docs(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(f"{rng.choice(WORDS)} {rng.choice(ADJ)}." for _ in range(int(rng.integers(1, 4))))
            for _ in range(n)]


@pytest.fixture(scope="module", autouse=True)
def harness(prefect_api):
    import transformers

    transformers.utils.logging.disable_progress_bar()  # as the console script's quiet mode: stderr holds the error
    yield prefect_api  # the test process's one Prefect API (tests/conftest.py)
    transformers.utils.logging.enable_progress_bar()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Two Parquet shards of short sentences (lengths 1-3 sentences, so tokens differ per document) and a tiny
    GPT-2 trained briefly on them, saved with its tokenizer."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("curation-budget")
    texts = list(dict.fromkeys(docs(90, 1)))  # unique: every document is scored
    shards = root / "shards"
    shards.mkdir()
    half = len(texts) // 2
    for i, part in enumerate((texts[:half], texts[half:])):
        pd.DataFrame({"text": part}).to_parquet(shards / f"part-{i}.parquet")
    tok = train_tokenizer(texts, vocab_size=300)
    model = small_gpt2(tok, n_layer=2, n_embd=32, n_positions=64, seed=0)
    padded = tok.__class__(tokenizer_object=tok.backend_tokenizer, bos_token=tok.bos_token, eos_token=tok.eos_token,
                           unk_token=tok.unk_token, pad_token=tok.eos_token)
    CausalLMLearner(model, padded, max_length=32, batch_size=16).fit(texts, steps=30, lr=5e-3, warmup=3)
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    return root, texts, tok


def config(root, **overrides) -> CurateConfig:
    base = dict(source=str(root / "shards"), name="tiny", model=str(root / "model"), budget=0.6, min_chars=3,
                max_length=32, chains=2, cycles=2, cycle_steps=3, ft_lr=0.05, publish_root=str(root / "pub"),
                cache_dir=str(root / "cache"))
    return CurateConfig(**{**base, **overrides})


def n_tokens(tok, text: str) -> int:
    return len(tok(text, add_special_tokens=False)["input_ids"])


# -- budget_tokens -----------------------------------------------------------------------------------


def test_token_budget_keeps_the_best_scored_prefix_that_fits(setup):
    root, texts, tok = setup
    total = sum(n_tokens(tok, t) for t in texts)
    budget = total // 3
    summary = curate_corpus(config(root, name="tiny-tokens", budget=None, budget_tokens=budget, high_share=0.0))
    ds, manifest, meta = load_published(summary["published"])
    kept_tokens = [n_tokens(tok, t) for t in ds["text"]]
    assert list(ds["n_tokens"]) == kept_tokens  # the output's token column is the tokenizer's count
    assert sum(kept_tokens) <= budget and summary["tokens kept"] == sum(kept_tokens)
    ranked = manifest[manifest["score"].notna()].sort_values("score", ascending=False, kind="stable")
    k = int((manifest["status"] == "kept").sum())
    assert k == ds.num_rows and 0 < k < len(ranked)
    assert set(ranked["row_id"][:k]) == set(ds["row_id"])  # the best-scored prefix
    next_row = int(ranked["row_id"].iloc[k])
    assert sum(kept_tokens) + n_tokens(tok, texts[next_row]) > budget  # the next document would not fit
    assert meta["validation"]["corpus"]["success"] is True


def test_token_budget_beside_a_document_budget(setup):
    root, _, _ = setup
    summary = curate_corpus(config(root, name="tiny-both", budget=10, budget_tokens=10**9, high_share=0.25))
    assert summary["documents kept"] == 10  # the count binds, the token budget does not
    with pytest.raises(InvalidInputError, match="budget_tokens 1 keeps no document"):
        curate_corpus(config(root, name="tiny-none-fits", budget=None, budget_tokens=1))
    assert not (root / "pub" / "tiny-none-fits").exists()
    with pytest.raises(Exception, match="give budget .*budget_tokens"):
        config(root, budget=None)


def test_prune_to_tokens_with_both_ends():
    rng = np.random.default_rng(0)
    score, tokens = rng.normal(size=200), rng.integers(5, 50, size=200)
    result = prune_to_tokens(score, tokens, 150, 2000, high_share=0.3)
    kept = result.reason == "kept"
    assert tokens[kept].sum() <= 2000
    grown = prune_to_tokens(score, tokens, result.n_keep + 1, 10**9, high_share=0.3)  # one more document
    assert tokens[grown.reason == "kept"].sum() > 2000 and (kept <= (grown.reason == "kept")).all()


# -- θ* adaptation inside the plan ---------------------------------------------------------------------


def test_adaptation_lowers_the_corpus_loss_and_a_rerun_reuses_it(setup):
    root, _, _ = setup
    plain = curate_corpus(config(root, name="tiny-plain", cache_dir=str(root / "cache-adapt")))
    adapted_cfg = config(root, name="tiny-adapted", cache_dir=str(root / "cache-adapt"), adapt_steps=40,
                         adapt_lr=3e-3)
    adapted = curate_corpus(adapted_cfg)
    assert (plain["θ* adaptation steps run"], adapted["θ* adaptation steps run"]) == (0, 40)
    _, m0, _ = load_published(plain["published"])
    _, m1, _ = load_published(adapted["published"])
    loss0, loss1 = m0["base_loss"].mean(), m1["base_loss"].mean()  # the corpus's mean loss at θ*
    assert loss1 < loss0 - 0.05, (loss0, loss1)
    saved = list((root / "cache-adapt" / "curate" / "adapted").glob("*.pt"))
    assert len(saved) == 1
    again = curate_corpus(adapted_cfg)
    assert again["θ* adaptation steps run"] == 0  # reused from its cache entry
    _, m2, _ = load_published(again["published"])
    np.testing.assert_array_equal(m2["base_loss"].to_numpy(), m1["base_loss"].to_numpy())
    np.testing.assert_array_equal(m2["score"].to_numpy(), m1["score"].to_numpy())


# -- bad input: one line on stderr, exit 2, nothing published ------------------------------------------


def _cli(root, capsys, name: str, *flags: str) -> tuple[int, list[str]]:
    argv = ["curate", "--source", str(root / "shards"), "--name", name, "--model", str(root / "model"),
            "--budget", "0.6", "--publish-root", str(root / "pub"), "--cache-dir", str(root / "cache"),
            "--max-length", "32", "--chains", "2", "--cycles", "2", "--cycle-steps", "3", *flags]
    code = main(argv)
    return code, capsys.readouterr().err.strip().splitlines()


def _shards(root, folder: str, second: pd.DataFrame):
    path = root / folder
    path.mkdir(exist_ok=True)
    pd.read_parquet(root / "shards" / "part-0.parquet").to_parquet(path / "a.parquet")
    second.to_parquet(path / "b.parquet")
    return path


@pytest.mark.parametrize("case, message", [
    ("other column", r"corpus shard '.*b.parquet' has no text column 'text'; its columns are \['body'\]"),
    ("numbers", r"corpus shard '.*b.parquet': text column 'text' holds int64, not strings"),
    ("empty shard", r"b.parquet'\] hold 0 rows"),
])
def test_bad_shards_exit_2_with_one_line_and_publish_nothing(setup, capsys, case, message):
    import re

    root, _, _ = setup
    second = {"other column": pd.DataFrame({"body": ["a line", "another"]}),
              "numbers": pd.DataFrame({"text": [1, 2]}),
              "empty shard": pd.DataFrame({"text": pd.Series([], dtype=str)})}[case]
    folder = _shards(root, f"bad-{case.replace(' ', '-')}", second)
    name = f"tiny-bad-{case.replace(' ', '-')}"
    code, err = _cli(root, capsys, name, "--source", str(folder))
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and re.search(message, err[0]), err
    with pytest.raises(InvalidInputError, match=message):
        curate_corpus(config(root, source=str(folder), name=name))
    assert not (root / "pub" / name).exists()


def test_an_empty_reference_corpus_exits_2(setup, capsys):
    root, _, _ = setup
    ref = root / "empty-ref"
    ref.mkdir(exist_ok=True)
    pd.DataFrame({"text": ["   ", ""]}).to_parquet(ref / "r.parquet")
    code, err = _cli(root, capsys, "tiny-empty-ref", "--score", "reference", "--reference", str(ref))
    assert code == 2 and len(err) == 1 and "holds no non-empty document" in err[0], err
    assert not (root / "pub" / "tiny-empty-ref").exists()


def test_a_shard_that_disappears_mid_run_exits_2_and_publishes_nothing(setup, capsys, monkeypatch):
    import shutil

    from influence_stage.pipeline import curate_model

    root, _, _ = setup
    run = curate_model.Tokenize.run

    def vanish_then_tokenize(self, context):  # the inventory has read the shard; then it is removed
        os.remove(os.path.join(context.config.source, "b.parquet"))
        return run(self, context)

    monkeypatch.setattr(curate_model.Tokenize, "run", vanish_then_tokenize)
    for attempt in ("cli", "python"):
        folder = root / f"vanishing-{attempt}"
        shutil.rmtree(folder, ignore_errors=True)
        _shards(root, folder.name, pd.read_parquet(root / "shards" / "part-1.parquet"))
        name = f"tiny-vanish-{attempt}"
        if attempt == "cli":
            code, err = _cli(root, capsys, name, "--source", str(folder))
            assert code == 2 and len(err) == 1, err
            assert "b.parquet' disappeared since the run began" in err[0] and "nothing is published" in err[0]
        else:
            with pytest.raises(InvalidInputError, match="b.parquet' disappeared since the run began"):
                curate_corpus(config(root, source=str(folder), name=name))
        assert not (root / "pub" / name).exists()

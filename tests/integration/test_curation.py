"""The curation flow end to end on a tiny corpus and a tiny GPT-2 built here, and the corpus suite."""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("prefect")
pytest.importorskip("transformers")

from fixtures.lm import small_gpt2, train_tokenizer
from fixtures.manifests import corpus_manifest as _manifest
from influence_stage.engine.causal_lm import CausalLMLearner
from influence_stage.errors import InvalidInputError, ValidationFailedError
from influence_stage.orchestration.curate import (CurateConfig, add_curate_parser, curate_config, curate_corpus,
                                                  run_curate)
from influence_stage.publish.versions import load_published
from influence_stage.quality.corpus import (MANIFEST_COLUMNS, stored_suite, suite_document, validate_corpus,
                                            write_corpus_suite_file)
from influence_stage.report.corpus import build_corpus_report, sample_rows

WORDS = ["the film", "a story", "the cast", "this plot", "the ending"]
ADJ = ["is charming", "feels long", "works well", "falls flat", "is a delight"]


def clean_docs(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(f"{rng.choice(WORDS)} {rng.choice(ADJ)}." for _ in range(int(rng.integers(1, 3))))
            for _ in range(n)]


@pytest.fixture(scope="module", autouse=True)
def harness(prefect_api):
    """The test process's one Prefect API (tests/conftest.py), instead of a server of this module's own."""
    yield prefect_api


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Two Parquet shards (clean sentences, random-character junk, an exact duplicate, an empty
    document and a near-duplicate pair) and a tiny GPT-2 trained on them, saved to a folder."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("curation")
    rng = np.random.default_rng(0)
    texts = clean_docs(80, 0)
    texts += ["".join(rng.choice(list("xqz#%@0123456789"), 40)) for _ in range(8)]
    texts += [texts[3], "   ", "A wholly unique remark, here!", "a WHOLLY unique remark  here."]
    shards = root / "shards"
    shards.mkdir()
    half = len(texts) // 2
    for i, part in enumerate((texts[:half], texts[half:])):
        pd.DataFrame({"text": part, "source": "test"}).to_parquet(shards / f"part-{i}.parquet")
    tok = train_tokenizer(texts, vocab_size=300)
    model = small_gpt2(tok, n_layer=2, n_embd=32, n_positions=64, seed=0)
    padded = tok.__class__(tokenizer_object=tok.backend_tokenizer, bos_token=tok.bos_token, eos_token=tok.eos_token,
                           unk_token=tok.unk_token, pad_token=tok.eos_token)
    CausalLMLearner(model, padded, max_length=32, batch_size=16).fit([t for t in texts if t.strip()], steps=60,
                                                                    lr=5e-3, warmup=5)
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    return root, texts


def config(root, **overrides) -> CurateConfig:
    base = dict(source=str(root / "shards"), name="tiny-corpus", model=str(root / "model"), budget=0.6,
                high_share=0.25, min_chars=3, max_length=32, chains=2, cycles=2, cycle_steps=4, ft_lr=0.05,
                publish_root=str(root / "pub"), cache_dir=str(root / "cache"))
    return CurateConfig(**{**base, **overrides})


def test_flow_curates_validates_and_publishes(setup):
    root, texts = setup
    summary = curate_corpus(config(root))
    ds, manifest, meta = load_published(summary["published"])
    n_scored = len({t for t in texts if t.strip()})  # exact duplicates and the empty document are not scored
    assert list(manifest.columns) == list(MANIFEST_COLUMNS)
    assert sorted(manifest["row_id"]) == list(range(len(texts)))  # every input document accounted for
    status = manifest.set_index("row_id")["status"]
    assert status[len(texts) - 4] == "duplicate" and status[len(texts) - 3] == "empty"
    assert ds.num_rows == round(0.6 * n_scored) == int((status == "kept").sum())
    kept = manifest[manifest["status"] == "kept"]
    assert sorted(ds["row_id"]) == sorted(kept["row_id"])
    assert ds.column_names[:2] == ["text", "source"] and "self_influence" in ds.column_names
    # the budget's cuts: every kept score lies between the redundant and the junk ones
    red, junk = manifest[manifest["status"] == "redundant"], manifest[manifest["status"] == "junk"]
    assert red["score"].max() <= kept["score"].min() and kept["score"].max() <= junk["score"].min()
    assert len(junk) == round(0.25 * (n_scored - ds.num_rows))
    assert meta["validation"]["corpus"]["success"] is True
    version = summary["published"]
    report = open(os.path.join(version, "report.html"), encoding="utf-8").read()
    assert "data:image/png;base64" in report and "Samples: top of the ranking" in report
    assert "Samples: bottom of the ranking" in report and "Samples: middle of the ranking" in report
    near = json.load(open(os.path.join(version, "near_duplicates.json")))
    assert near == [[len(texts) - 2, len(texts) - 1]]  # reported, both left in the scored set
    assert status[len(texts) - 2] != "duplicate" and status[len(texts) - 1] != "duplicate"
    # the same inputs again: members and losses come from the cache, the scores are identical
    again = curate_corpus(config(root))
    _, manifest2, _ = load_published(again["published"])
    np.testing.assert_array_equal(manifest2["score"].to_numpy(), manifest["score"].to_numpy())
    assert any((root / "cache").iterdir())  # θ*-dependent results are persisted by content key


def test_count_budget_and_no_dedup(setup):
    root, texts = setup
    summary = curate_corpus(config(root, budget=20, dedup=False, high_share=0.0, name="tiny-count"))
    ds, manifest, _ = load_published(summary["published"])
    assert ds.num_rows == 20
    assert "duplicate" not in set(manifest["status"])
    assert manifest["status"].isin(["kept", "redundant"]).sum() == len(texts) - 1  # all but the empty one scored
    assert set(manifest["status"]) <= {"kept", "redundant", "empty"}


def test_bad_configuration(setup):
    root, _ = setup
    from pydantic import ValidationError

    for budget, match in ((0, "count >= 1"), (1.5, r"fraction must be in \(0, 1\]"), (True, "budget must be")):
        with pytest.raises(ValidationError, match=match):
            config(root, budget=budget)
    with pytest.raises(InvalidInputError, match="curation config: .*budget"):
        CurateConfig.from_mapping({"source": "x", "name": "n", "model": "m", "budget": -1})
    with pytest.raises(InvalidInputError, match="keeps 500 rows, but there are 92"):
        curate_corpus(config(root, budget=500))
    with pytest.raises(InvalidInputError, match=r"no text column 'body'; its columns are \['text', 'source'\]"):
        curate_corpus(config(root, text_column="body"))
    with pytest.raises(ValidationError, match="trainable must be 'all' or 'last:N'"):
        config(root, trainable="head")
    empty = root / "with-empty"
    empty.mkdir(exist_ok=True)
    pd.read_parquet(root / "shards" / "part-0.parquet").to_parquet(empty / "a.parquet")
    pd.read_parquet(root / "shards" / "part-0.parquet").iloc[:0].to_parquet(empty / "b.parquet")
    with pytest.raises(InvalidInputError, match=r"b.parquet'\] hold 0 rows"):
        curate_corpus(config(root, source=str(empty), name="tiny-empty"))
    assert not (root / "pub" / "tiny-empty").exists()


def test_cli_functions(setup, capsys):
    root, _ = setup
    parser = argparse.ArgumentParser()
    add_curate_parser(parser.add_subparsers(dest="command"))
    yaml_path = root / "corpus.yaml"
    cfg = config(root, name="tiny-cli").model_dump()
    import yaml

    yaml_path.write_text(yaml.safe_dump(cfg))
    args = parser.parse_args(["curate", "--config", str(yaml_path), "--budget", "30", "--no-dedup"])
    built = curate_config(args)
    assert built.budget == 30 and isinstance(built.budget, int) and built.dedup is False
    assert run_curate(args) == 0
    assert "published:" in capsys.readouterr().out
    with pytest.raises(InvalidInputError, match="curate needs"):
        curate_config(parser.parse_args(["curate", "--name", "x"]))
    with pytest.raises(InvalidInputError, match="--budget 'lots' is not a number"):
        curate_config(parser.parse_args(["curate", "--config", str(yaml_path), "--budget", "lots"]))
    with pytest.raises(InvalidInputError, match="does not exist"):
        CurateConfig.from_yaml(root / "missing.yaml")


# -- the suite --------------------------------------------------------------------------------------


def test_stored_suite_matches_the_code(tmp_path):
    assert stored_suite() == suite_document()
    path = write_corpus_suite_file(tmp_path)
    assert json.loads(path.read_text()) == suite_document()
    doc = suite_document()
    doc["batches"]["budget"]["expectations"] = []
    path.write_text(json.dumps(doc))
    with pytest.raises(InvalidInputError, match="changed but its version is still 1"):
        write_corpus_suite_file(tmp_path)


def _docs(rows, n_chars=None, hashes=None) -> pd.DataFrame:
    return pd.DataFrame({"row_id": np.asarray(rows, dtype=np.int64),
                         "n_chars": np.asarray(n_chars if n_chars is not None else [10.0] * len(rows), dtype=float),
                         "content_hash": pd.Series(hashes if hashes is not None else [f"h{r}" for r in rows],
                                                   dtype=object)})


def test_suite_passes_a_consistent_curation():
    man = _manifest(["kept", "redundant", "kept", "junk", "kept"])
    report = validate_corpus(_docs([0, 2, 4]), man, n_input=5, n_scored=5, budget_fraction=0.6)
    assert report.success, report.failures()


@pytest.mark.parametrize("case, key", [
    ("empty", "no_empty_documents"), ("long", "length_bounds"), ("duplicate", "no_exact_duplicates"),
    ("missing_input", "manifest_covers_input"), ("extra_output", "output_matches_manifest"),
    ("budget", "kept_fraction_equals_budget"), ("status", "manifest_status_valid"),
])
def test_suite_catches(case, key):
    man = _manifest(["kept", "redundant", "kept", "junk", "kept"])
    docs, n_input, budget = _docs([0, 2, 4]), 5, 0.6
    if case == "empty":
        docs = _docs([0, 2, 4], n_chars=[10, 0, 10])
    elif case == "long":
        docs = _docs([0, 2, 4], n_chars=[10, 5000, 10])
    elif case == "duplicate":
        docs = _docs([0, 2, 4], hashes=["h0", "h0", "h4"])
    elif case == "missing_input":
        n_input = 6
    elif case == "extra_output":
        docs = _docs([0, 1, 2, 4])
        budget = 0.8
    elif case == "budget":
        budget = 0.4
    elif case == "status":
        man.loc[1, "status"] = "lost"
    report = validate_corpus(docs, man, n_input=n_input, n_scored=5, budget_fraction=budget, max_chars=100)
    assert not report.success
    assert key in {r["key"] for r in report.results if not r["success"]}
    with pytest.raises(ValidationFailedError, match=f"(?s)suite 'corpus'.*{key}"):
        report.raise_if_failed()


def test_suite_bad_arguments():
    with pytest.raises(InvalidInputError, match="the manifest has no 'status' column"):
        validate_corpus(_docs([0]), pd.DataFrame({"row_id": [0]}), n_input=1, n_scored=1, budget_fraction=1.0)


def test_report_samples_and_histogram():
    man = _manifest(["kept"] * 6 + ["redundant"] * 3 + ["junk"] * 2 + ["empty"])
    man.loc[11, "score"] = np.nan
    samples = sample_rows(man, k=2)
    assert samples["top"] == [10, 9] and samples["bottom"] == [0, 1] and len(samples["middle"]) == 2
    html = build_corpus_report(man, texts={10: "<b>junk</b>"}, summary={"documents in": 12}, low_cut=0.2,
                               high_cut=0.9, near_duplicates=[[1, 2]])
    assert "&lt;b&gt;junk&lt;/b&gt;" in html and "data:image/png;base64" in html and "1 group(s)" in html
    with pytest.raises(InvalidInputError, match="needs 'score' and 'status' columns"):
        sample_rows(pd.DataFrame({"row_id": [0]}))


# -- corpus scale: work units with done-flags, tokens once, sharded output, near duplicates -----------


def test_scoring_passes_resume_from_their_done_flags(setup):
    root, _ = setup
    cfg = config(root, name="tiny-resume", cache_dir=str(root / "cache-resume"), shard_docs=30)
    first = curate_corpus(cfg)
    n_scored = first["documents scored"]
    ranges = -(-n_scored // 30)
    assert first["scoring passes evaluated"] == ranges * (1 + 2 * 2)  # (θ* + 4 members) × ranges
    flags = sorted((root / "cache-resume" / "curate").glob("*/passes/*.done"))
    assert len(flags) == ranges * 5
    for flag in flags[:3]:  # a kill after some passes: their flags (and files) never written
        flag.unlink()
    tokens = list((root / "cache-resume" / "tokens").glob("*.arrow"))
    assert len(tokens) == 1
    mtime = tokens[0].stat().st_mtime_ns
    again = curate_corpus(cfg)
    assert again["scoring passes evaluated"] == 3  # only the passes without a done-flag
    assert tokens[0].stat().st_mtime_ns == mtime  # tokenized once, reused by the re-run
    _, a, _ = load_published(first["published"])
    _, b, _ = load_published(again["published"])
    np.testing.assert_array_equal(a["score"].to_numpy(), b["score"].to_numpy())
    third = curate_corpus(cfg)
    assert third["scoring passes evaluated"] == 0


def test_sharded_output_loads_with_datasets(setup):
    import datasets

    root, _ = setup
    summary = curate_corpus(config(root, name="tiny-shards", output_shard_rows=10))
    ds, manifest, _ = load_published(summary["published"])
    shards = sorted((root / "pub" / "tiny-shards").glob("*/shards/part-*.parquet"))
    n_kept = int((manifest["status"] == "kept").sum())
    assert len(shards) == summary["output shards"] == -(-n_kept // 10)
    rows = [pd.read_parquet(p).shape[0] for p in shards]
    assert max(rows) == 10 and sum(rows) == n_kept
    loaded = datasets.load_dataset("parquet", data_files=[str(p) for p in shards], split="train")
    assert sorted(loaded["row_id"]) == sorted(ds["row_id"])
    assert {"self_influence", "base_loss"} <= set(loaded.column_names)
    by_bytes = curate_corpus(config(root, name="tiny-bytes", output_shard_bytes=1500))
    parts = sorted((root / "pub" / "tiny-bytes").glob("*/shards/part-*.parquet"))
    assert by_bytes["output shards"] == len(parts) > 1
    assert sum(pd.read_parquet(p).shape[0] for p in parts) == n_kept


def test_near_duplicates_are_removed_before_scoring(setup):
    root, texts = setup
    summary = curate_corpus(config(root, name="tiny-near", near_dedup=0.5))
    _, manifest, _ = load_published(summary["published"])
    status = manifest.set_index("row_id")
    a, b = len(texts) - 2, len(texts) - 1  # "A wholly unique remark, here!" / "a WHOLLY unique remark  here."
    assert status.loc[b, "status"] == "duplicate" and status.loc[b, "duplicate_of"] == a
    assert status.loc[a, "status"] in ("kept", "redundant", "junk")
    assert status.loc[b, "content_hash"] != status.loc[a, "content_hash"]  # a near, not an exact, duplicate
    exact = status.loc[len(texts) - 4]
    assert exact["status"] == "duplicate" and exact["duplicate_of"] == 3  # exact dedup stays
    assert summary["documents scored"] < len({t for t in texts if t.strip()})
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="near_dedup"):
        config(root, near_dedup=1.5)


def test_cycle_steps_grow_with_the_corpus(setup):
    from influence_stage.pipeline.curate import cycle_steps

    root, _ = setup
    assert cycle_steps(config(root), 10_000) == 4  # cycle_steps as given
    cfg = config(root, cycle_epochs=0.5, batch_size=16)
    assert cycle_steps(cfg, 1_000) == 32 and cycle_steps(cfg, 100_000) == 3125 and cycle_steps(cfg, 1) == 1


def test_curate_on_dask_gives_the_same_scores(setup):
    pytest.importorskip("prefect_dask")
    from influence_stage.orchestration.curate import curate_on_dask

    root, _ = setup
    local = curate_corpus(config(root, name="tiny-threads", cache_dir=str(root / "cache-a"), shard_docs=40))
    on_dask = curate_on_dask(config(root, name="tiny-dask", cache_dir=str(root / "cache-b"), shard_docs=40),
                             n_workers=2, processes=False)
    ranges = -(-local["documents scored"] // 40)
    assert on_dask["scoring passes evaluated"] == local["scoring passes evaluated"] == ranges * 5 > 5
    _, a, _ = load_published(local["published"])
    _, b, _ = load_published(on_dask["published"])
    np.testing.assert_allclose(a["score"].to_numpy(), b["score"].to_numpy(), rtol=1e-5)
    assert list(a["status"]) == list(b["status"])
    args = argparse.Namespace(dask="tcp://h:1", dask_workers=2, config=None, source=str(root / "shards"),
                              name="x", model=str(root / "model"), text_column=None, publish_root=None,
                              cache_dir=None, budget="0.5", high_share=None, no_dedup=False, progress=False)
    with pytest.raises(InvalidInputError, match="--dask tcp://h:1 names an existing cluster"):
        run_curate(args)


def test_self_or_perplexity_ranks_by_the_larger_of_the_two_rank_fractions(setup):
    from influence_stage.engine.lm_scores import loss_per_char, self_or_perplexity

    root, texts = setup
    plain = curate_corpus(config(root, name="tiny-self-all", budget=1.0, high_share=0.0))
    both = curate_corpus(config(root, name="tiny-union", score="self_or_perplexity"))
    ds, _, _ = load_published(plain["published"])  # every scored document kept: its tokens and losses
    _, manifest, _ = load_published(both["published"])
    assert both["score"] == "self_or_perplexity"
    rows = np.asarray(ds["row_id"])
    scored = manifest.set_index("row_id").loc[rows]
    n_chars = scored["n_chars"].to_numpy()
    expected = self_or_perplexity(np.asarray(ds["self_influence"]),
                                  loss_per_char(np.asarray(ds["base_loss"]), np.asarray(ds["n_tokens"]), n_chars))
    np.testing.assert_allclose(scored["score"].to_numpy(), expected)
    # the curated rows carry the self-influence itself beside the run's score
    out, _, _ = load_published(both["published"])
    assert {"self_influence", "score"} <= set(out.column_names)
    by_row = dict(zip(rows.tolist(), np.asarray(ds["self_influence"]).tolist()))
    np.testing.assert_allclose(out["self_influence"], [by_row[r] for r in out["row_id"]])
    # the budget's cuts follow the union score
    kept, red, junk = (manifest[manifest["status"] == s]["score"] for s in ("kept", "redundant", "junk"))
    assert red.max() <= kept.min() and kept.max() <= junk.min()
    # random-character junk (rows 80..87) is unpredictable text: it ranks above the clean sentences
    junk_rows = [r for r in range(80, 88) if r in scored.index]
    assert scored.loc[junk_rows, "score"].mean() > scored.loc[[r for r in range(80) if r in scored.index],
                                                               "score"].quantile(0.75)


def test_selection_toward_a_reference_corpus(setup):
    from pydantic import ValidationError

    from influence_stage.pipeline.curate import reference_influence

    root, texts = setup
    ref = root / "reference"
    ref.mkdir(exist_ok=True)
    pd.DataFrame({"text": clean_docs(20, 7)}).to_parquet(ref / "ref.parquet")
    summary = curate_corpus(config(root, name="tiny-ref", score="reference", reference=str(ref), high_share=0.0))
    _, manifest, _ = load_published(summary["published"])
    assert summary["score"] == "reference"
    kept, red = manifest[manifest["status"] == "kept"], manifest[manifest["status"] == "redundant"]
    assert "junk" not in set(manifest["status"]) and red["score"].max() <= kept["score"].min()
    # random-character junk does not move with clean movie sentences: it is removed first
    scored = manifest[manifest["score"].notna()].set_index("row_id")
    junk_rows = [r for r in range(80, 88) if r in scored.index]
    assert scored.loc[junk_rows, "status"].eq("redundant").all()
    # the score is the mean-test-loss influence of the loss deviations: D @ mean(R) / M
    D = np.array([[1.0, -1.0], [2.0, 0.0]])
    out = reference_influence({"loss_matrix": D + 1, "base_loss": np.ones(2)},
                              {"loss_matrix": np.array([[3.0, 1.0]]), "base_loss": np.array([1.0])})
    np.testing.assert_allclose(out, [(2 - 0) / 2, 4 / 2])
    with pytest.raises(ValidationError, match="score: reference needs reference"):
        config(root, score="reference")
    with pytest.raises(ValidationError, match="high_share must be 0"):
        config(root, score="reference", reference=str(ref), high_share=0.25)
    empty = root / "empty-reference"
    empty.mkdir(exist_ok=True)
    pd.DataFrame({"text": ["  ", ""]}).to_parquet(empty / "e.parquet")
    with pytest.raises(InvalidInputError, match="holds no non-empty document"):
        curate_corpus(config(root, name="tiny-ref-empty", score="reference", reference=str(empty), high_share=0.0))
    assert not (root / "pub" / "tiny-ref-empty").exists()


def test_a_failed_curation_posts_the_failure_notice(setup):
    import http.server
    import threading

    root, _ = setup
    received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            received.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0)))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/hook"
        with pytest.raises(InvalidInputError, match="no text column 'body'"):
            curate_corpus(config(root, name="tiny-fails", text_column="body", notify_webhook=url))
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert len(received) == 1
    body = received[0]
    assert body["event"] == "influence_stage.run.failed" and body["dataset"] == "tiny-fails"
    assert "no text column 'body'" in body["reason"] and body["source"] == str(root / "shards")

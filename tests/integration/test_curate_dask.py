"""The curation flow's scoring units on a Dask cluster of 2 worker processes, as plain functions.

Prefect orchestrates on the driver; the workers run ``score_pass`` without Prefect (no Prefect task,
so no Prefect API, on a worker). The scores equal the in-process run's; a corpus shard that changes
while units run on Dask stops the step with the shard error and cancels the units still queued.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("prefect")
pytest.importorskip("transformers")
pytest.importorskip("distributed")
if sys.platform == "win32":  # pragma: no cover - worker processes
    pytest.skip("LocalCluster processes", allow_module_level=True)

from fixtures.lm import small_gpt2, train_tokenizer
from influence_stage.data.corpus import Corpus
from influence_stage.data.tokens import TokenCache
from influence_stage.engine.causal_lm import CausalLMLearner, lm_members
from influence_stage.errors import InvalidInputError
from influence_stage.orchestration.curate import CurateConfig, curate_corpus, curate_on_dask
from influence_stage.orchestration.dask_runner import run_units
from influence_stage.pipeline.context import RunContext
from influence_stage.pipeline.curate import LossMatrix
from influence_stage.pipeline.curate_scores import score_pass
from influence_stage.publish.versions import load_published

WORDS = ["the film", "a story", "the cast", "this plot", "the ending"]
ADJ = ["is charming", "feels long", "works well", "falls flat", "is a delight"]


@pytest.fixture(scope="module")
def harness(prefect_api):
    """The test process's one Prefect API (tests/conftest.py), instead of a server of this module's own."""
    yield prefect_api


@pytest.fixture(scope="module")
def cluster(harness):
    """A local Dask cluster of 2 worker processes, one thread each, and a client of it."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c, \
            Client(c, set_as_default=False) as client:
        yield c, client


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Two Parquet shards of short sentences with some random-character junk, and a tiny GPT-2 saved to a folder."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("curate-dask")
    rng = np.random.default_rng(0)
    texts = [" ".join(f"{rng.choice(WORDS)} {rng.choice(ADJ)}." for _ in range(int(rng.integers(1, 3))))
             for _ in range(70)]
    texts += ["".join(rng.choice(list("xqz#%@0123456789"), 30)) for _ in range(6)]
    shards = root / "shards"
    shards.mkdir()
    half = len(texts) // 2
    for i, part in enumerate((texts[:half], texts[half:])):
        pd.DataFrame({"text": part}).to_parquet(shards / f"part-{i}.parquet")
    tok = train_tokenizer(texts, vocab_size=200)
    model = small_gpt2(tok, n_layer=1, n_embd=16, n_positions=32, seed=0)
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    return root, texts


def config(root: Path, **overrides) -> CurateConfig:
    base = dict(source=str(root / "shards"), name="tiny-dask", model=str(root / "model"), budget=0.6, min_chars=3,
                max_length=16, chains=1, cycles=2, cycle_steps=3, ft_lr=0.05, shard_docs=20, near_dedup=None,
                publish_root=str(root / "pub"), cache_dir=str(root / "cache"))
    return CurateConfig(**{**base, **overrides})


@pytest.mark.slow  # in make test: test_dask.py's two worker processes (clean), test_curation.py's curate on Dask
def test_units_on_two_worker_processes_give_the_in_process_scores(setup, cluster):
    root, _ = setup
    c, client = cluster
    local = curate_corpus(config(root, cache_dir=str(root / "cache-local")))
    on_dask = curate_on_dask(config(root, cache_dir=str(root / "cache-dask")), address=c.scheduler_address)
    ranges = -(-local["documents scored"] // 20)
    assert on_dask["scoring passes evaluated"] == local["scoring passes evaluated"] == ranges * 3 > 3
    _, a, _ = load_published(local["published"])
    _, b, _ = load_published(on_dask["published"])
    np.testing.assert_allclose(a["score"].to_numpy(), b["score"].to_numpy(), rtol=1e-5, atol=1e-7)
    assert list(a["status"]) == list(b["status"])
    # the workers ran the units as plain functions: none of them imported Prefect
    imported = client.run(lambda: "prefect" in sys.modules)
    assert len(imported) == 2 and not any(imported.values())


def test_local_workers_run_one_torch_thread_without_dasks_malloc_trim_setting():
    from influence_stage.orchestration.dask_runner import dask_client

    with dask_client(None, n_workers=1) as client:
        env = client.run(lambda: (os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("OMP_NUM_THREADS")))
    assert list(env.values()) == [(None, "1")]


def _touch_first_shard_then_score(shard: str, **unit):
    """A scoring unit that first rewrites a corpus shard's modification time (a shard changed under the run)."""
    st = os.stat(shard)
    os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    return score_pass(**unit)


def test_a_shard_changed_while_units_run_on_dask_stops_the_step(setup, cluster):
    root, texts = setup
    _, client = cluster
    work = root / "changed"
    shards = work / "shards"
    shards.mkdir(parents=True)
    for f in (root / "shards").glob("*.parquet"):
        (shards / f.name).write_bytes(f.read_bytes())
    corpus = Corpus(str(shards), text_column="text")
    learner = CausalLMLearner.from_pretrained(root / "model", max_length=16, batch_size=8)
    tokens = TokenCache.build(learner, texts, work / "tokens.arrow")
    members = lm_members(learner, tokens, chains=1, cycles=2, steps=2, ft_lr=0.05, seed=0)
    context = RunContext(config=config(root, source=str(shards), cache_dir=str(work / "cache")),
                         values={"learner": learner, "tokens": tokens, "members": members, "corpus": corpus,
                                 "data_key": "changed"})
    units = LossMatrix().units(context)
    touched = type(units)(fn=_touch_first_shard_then_score, shared={**units.shared, "shard": str(corpus.files[0])},
                          items=units.items[:1], names=units.names[:1], bounded=True, check=units.check)
    with pytest.raises(InvalidInputError, match="changed since the run began"):
        run_units(client, touched)
    # the same check stops the in-process run between its units
    with pytest.raises(InvalidInputError, match="changed since the run began"):
        LossMatrix().run(context)
    done = list((Path(context.values["pass_folder"]) / "passes").glob("*.done"))
    assert len(done) == 1  # the touching unit finished; the in-process run stopped after its first unit

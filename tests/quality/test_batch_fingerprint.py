"""Great Expectations' pandas batch fingerprint is off only while the stage validates, and results are unchanged."""

from __future__ import annotations

import great_expectations.execution_engine.pandas_execution_engine as engine
import numpy as np
import pandas as pd
import pytest

from influence_stage.quality import runner
from influence_stage.quality.corpus import build_corpus_suites
from influence_stage.quality.runner import Batch, no_batch_fingerprint, validate_batches


def test_threshold_is_zero_inside_and_restored_after_and_on_error():
    before = engine.HASH_THRESHOLD
    with no_batch_fingerprint():
        assert engine.HASH_THRESHOLD == 0
    assert engine.HASH_THRESHOLD == before
    with pytest.raises(RuntimeError, match="boom"), no_batch_fingerprint():
        raise RuntimeError("boom")
    assert engine.HASH_THRESHOLD == before


def _manifest_batch() -> Batch:
    n = 6
    status = ["kept", "junk", "kept", "duplicate", "kept", "kept"]
    frame = pd.DataFrame({"row_id": np.arange(n), "doc_id": [str(i) for i in range(n)], "status": status,
                          "action": ["keep" if s == "kept" else "drop" for s in status],
                          "score": np.linspace(0, 1, n), "base_loss": np.ones(n), "n_chars": np.full(n, 10),
                          "content_hash": [f"h{i}" for i in range(n)], "duplicate_of": np.full(n, -1)})
    return Batch("manifest", frame, ("row_id",))


def test_validation_leaves_the_fingerprint_out_and_keeps_every_result(monkeypatch):
    suites = build_corpus_suites(dedup=True)
    params = {"min_chars": 1, "max_chars": 10**9, "budget_min": 0.0, "budget_max": 1.0}
    results, ge_results = validate_batches("corpus", suites, [_manifest_batch()], params)
    assert "pandas_data_fingerprint" not in ge_results["manifest"].meta["batch_markers"]
    # the same validation with GE's fingerprint left on: same results, and the marker there
    monkeypatch.setattr(runner, "no_batch_fingerprint", lambda: runner.contextlib.nullcontext())
    fingerprinted, ge_fingerprinted = validate_batches("corpus", suites, [_manifest_batch()], params)
    assert "pandas_data_fingerprint" in ge_fingerprinted["manifest"].meta["batch_markers"]
    assert results == fingerprinted and len(results) > 0

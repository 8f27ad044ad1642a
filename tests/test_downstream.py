"""Smoke test of benchmarks/downstream.py: the quick run completes and reports every method and learner."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "downstream.py"
METHODS = ("noisy", "drop", "relabel", "soft relabel", "reweight", "cleanlab", "oracle")
LEARNERS = ("mlp", "logreg")


@pytest.mark.slow  # a benchmark's smoke run: make test-slow
def test_downstream_quick_run(tmp_path):
    committed = ROOT / "benchmarks" / "results" / "downstream_quick.json"
    existed_before = committed.exists()
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
           "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--results-dir", str(tmp_path)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    payload = json.loads((tmp_path / "downstream_quick.json").read_text())
    assert (tmp_path / "downstream_quick.md").read_text().startswith("## Downstream accuracy")
    assert committed.exists() == existed_before  # the quick run never writes into benchmarks/results
    assert payload["quick"] and payload["seeds"] == [0]
    assert payload["runs"], "no (setting, seed) was run"
    for run in payload["runs"]:
        assert set(run["methods"]) == set(METHODS)
        for method in METHODS:
            for learner in LEARNERS:
                acc = run["methods"][method]["accuracy"][learner]
                assert math.isfinite(acc) and 0.0 <= acc <= 1.0, (run["setting"], method, learner, acc)
        n_train = run["n_train"]
        assert n_train == 225  # 300 rows, 25% held out
        assert run["methods"]["oracle"]["n_kept"] == n_train
        assert run["methods"]["noisy"]["n_kept"] == n_train
        assert run["methods"]["reweight"]["n_kept"] == n_train
        for method in ("drop", "relabel", "soft relabel", "cleanlab"):
            assert 0 < run["methods"][method]["n_kept"] <= n_train
        assert run["methods"]["oracle"]["wrong_labels_kept"] == 0
        assert run["methods"]["noisy"]["wrong_labels_kept"] == run["n_flipped"]
    summary = payload["summary"]["settings"]
    for setting in summary.values():
        for learner in LEARNERS:
            assert set(setting["accuracy"][learner]) == set(METHODS)

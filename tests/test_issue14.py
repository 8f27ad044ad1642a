"""Issue 14: nothing wrong published, nothing left behind.

Stale sources, silent column-role switches, label codes in manifests, writes into published
versions, bad configuration exit codes, late checks, publish debris.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from influence_stage.data import load_source
from influence_stage.exceptions import InvalidInputError
from influence_stage.pipeline import dataset_fingerprint


# --------------------------------------------------------------------------------------------------
# 1. stale source
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_a_file_rewritten_in_place_is_read_again(tmp_path, suffix):
    path = tmp_path / f"src{suffix}"
    n = 40
    old = pd.DataFrame({"x": np.arange(n, dtype=np.float64), "label": np.arange(n) % 2})
    new = old.assign(label=(np.arange(n) + 1) % 2)

    def write(frame):
        if suffix == ".parquet":
            frame.to_parquet(path, index=False)
        elif suffix == ".csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_json(path, orient="records", lines=True)

    write(old)
    stat = os.stat(path)
    first = load_source(str(path))
    assert list(first["label"]) == old["label"].tolist()
    write(new)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the same modification time, other content
    assert os.stat(path).st_size == stat.st_size
    second = load_source(str(path))
    assert list(second["label"]) == new["label"].tolist()
    assert sum(a != b for a, b in zip(first["label"], second["label"])) == n
    assert dataset_fingerprint(first) != dataset_fingerprint(second)


def test_local_files_are_not_copied_into_the_hf_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    path = tmp_path / "src.parquet"
    pd.DataFrame({"x": [1.0, 2.0, 3.0], "label": [0, 1, 0]}).to_parquet(path, index=False)
    ds = load_source(str(path))
    assert ds.num_rows == 3
    assert not cache.exists() or not any(cache.rglob("*.arrow"))
    assert ds.cache_files == []

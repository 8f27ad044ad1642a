"""The README's five-line example runs as written, on the bundled demo data, and finds the planted flips."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def readme_example() -> str:
    """The first ``python`` block after the README's "Five lines" heading."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Five lines"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_is_five_lines():
    code = [line for line in readme_example().splitlines() if line.strip()]
    assert len(code) == 5, code


def test_readme_example_runs_and_finds_the_flips(monkeypatch):
    monkeypatch.chdir(ROOT)  # the example names data/digits/train.parquet relative to the checkout
    namespace: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), namespace)
    ds, cleaned, cleaner = namespace["ds"], namespace["cleaned"], namespace["cleaner"]
    assert cleaner._roles_.kind == "image"  # the image column, through the default CNN
    truth = pd.read_parquet(ROOT / "data/digits/noise_mask.parquet").set_index("row_id")["is_flipped"]
    flagged = cleaner.issues_.set_index("row_id")["is_issue"].astype(bool)
    flipped = truth.reindex(flagged.index).to_numpy(dtype=bool)
    precision = flipped[flagged.to_numpy()].mean()
    recall = flagged.to_numpy()[flipped].mean()
    assert len(cleaned) == len(ds) - int((cleaner.issues_["action"] == "drop").sum())
    # 10% of the demo's labels are flipped: chance precision is 0.10
    assert precision > 0.6 and recall > 0.6, (precision, recall)

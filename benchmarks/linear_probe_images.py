"""Whether a linear model on the pixels solves the generated image sets, beside a CNN on the same rows.

The image settings are meant to need a CNN: ``image_data.shapes32`` draws its classes (5 shapes × 2
textures) at random positions, sizes and colours on cluttered backgrounds, so no pixel carries the
label by itself; ``image_data.digits28`` is sklearn's digits upscaled with random rotation, scale,
shift and stroke width. This measures it on clean labels: a multinomial logistic regression on the
standardised pixels (scikit-learn, the regularisation chosen by 3-fold cross-validation on the
training rows) against the stage's default CNN trained with the default recipe (``FitConfig()``,
the 1,500-step floor), both on the rows as the stage's image featurizer gives them and scored on
the same held-out rows, plus the majority class for chance.

Writes benchmarks/results/<out>.json and <out>.md.
Run: .venv/bin/python benchmarks/linear_probe_images.py [--rows 2000] [--seeds 0 1] [--no-cnn]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from common import RESULTS, machine, stage_learner, write_json
from image_data import as_dataset, digits28, shapes32

SETS = {"digits28": digits28, "shapes32": shapes32}


def featurize(images: np.ndarray, labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, object]:
    """The rows as the stage sees them: ``image_data.as_dataset`` through the default image featurizer,
    ``(n, c, h, w)`` float32 and ``(n,)`` codes, with the run's configuration."""
    from influence_stage import InfluenceCleaner
    from influence_stage.stage.steps import featurize_step, prepare

    config, _ = InfluenceCleaner(label_column="label", random_state=seed)._config()
    features = featurize_step(prepare(as_dataset(images, labels), config), config)
    return np.asarray(features.X), np.asarray(features.y), config


def cnn_accuracy(X_tr: np.ndarray, y_tr: np.ndarray, X_te: np.ndarray, y_te: np.ndarray, config, seed: int) -> float:
    """Held-out accuracy of the stage's default CNN trained on ``X_tr`` with the run's recipe."""
    from influence_stage.engine.learner import TensorData

    learner = stage_learner(config, X_tr.shape[1:], int(max(y_tr.max(), y_te.max())) + 1)
    learner.fit(TensorData.from_arrays(X_tr, y_tr), config.fit)
    proba = learner.predict_proba(TensorData.from_arrays(X_te, y_te))
    return float((proba.argmax(1) == y_te).mean())


def run(name: str, rows: int, seed: int, with_cnn: bool) -> dict:
    images, labels = SETS[name](rows, seed=seed)
    X, y, config = featurize(images, labels, seed)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=seed, stratify=y)
    t = time.perf_counter()
    linear = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=[0.001, 0.01, 0.1, 1.0], cv=3, max_iter=500,
                                                                scoring="accuracy"))
    linear.fit(X_tr.reshape(len(X_tr), -1), y_tr)
    out = {"set": name, "rows": rows, "seed": seed, "train_rows": len(y_tr), "test_rows": len(y_te),
           "majority": float(np.bincount(y_te).max() / len(y_te)),
           "linear_accuracy": float(linear.score(X_te.reshape(len(X_te), -1), y_te)),
           "linear_C": float(np.ravel(linear[-1].C_)[0]), "linear_s": time.perf_counter() - t}
    if with_cnn:
        t = time.perf_counter()
        out["cnn_accuracy"] = cnn_accuracy(X_tr, y_tr, X_te, y_te, config, seed)
        out["cnn_s"] = time.perf_counter() - t
    return out


def markdown(payload: dict) -> str:
    lines = ["## A linear model on the generated image sets (`benchmarks/linear_probe_images.py`)", "",
             "Clean labels; 75% of the rows train, 25% (stratified) are held out. Linear: multinomial logistic "
             "regression on the standardised pixels, C chosen by 3-fold cross-validation from 0.001–1. CNN: the "
             "stage's default CNN with the default recipe (`FitConfig()`, 1,500-step floor). Majority: the "
             "largest class's share of the held-out rows.", "",
             "| set | rows | seed | majority | linear accuracy (C) | CNN accuracy |", "|---|---|---|---|---|---|"]
    for r in payload["runs"]:
        cnn = f"{r['cnn_accuracy']:.3f}" if "cnn_accuracy" in r else "—"
        lines.append(f"| {r['set']} | {r['rows']} | {r['seed']} | {r['majority']:.3f} | "
                     f"{r['linear_accuracy']:.3f} ({r['linear_C']:g}) | {cnn} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--no-cnn", action="store_true", help="the linear model only")
    parser.add_argument("--out", default="linear_probe_images")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    payload = {"machine": machine(), "runs": []}
    for name in args.sets:
        for seed in args.seeds:
            payload["runs"].append(run(name, args.rows, seed, not args.no_cnn))
            print(json.dumps(payload["runs"][-1]), flush=True)
            write_json(args.out, payload)
    (RESULTS / f"{args.out}.md").write_text(markdown(payload))
    print(markdown(payload))


if __name__ == "__main__":
    main()

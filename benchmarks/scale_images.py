"""Scale of an image run: the whole default job on N synthetic 32×32×3 images, time per step and peak RSS.

Data: scikit-learn's digits (1797 8×8 images), each row one of them at random, upscaled to 32×32
(bilinear), shifted by up to 3 pixels, drawn in a random colour on a random dark background with
pixel noise, as uint8 ``datasets.Array3D`` of shape (3, 32, 32) (channels first: Arrow stores an
ArrayXD as nested lists with one offset per innermost list, so (32, 32, 3) would add 4 bytes of
offsets per pixel to the 3 bytes of values, on disk and in every step that reads the column); 10
classes, 10% of labels flipped uniformly (``influence_stage.data.noise.flip_labels``). The dataset is built and written with
``save_to_disk`` in one child process; the run reads it back from that folder in another (one torch
thread, ``OMP_NUM_THREADS=1``), so the run's peak RSS (``ru_maxrss``) is its own.

The run is the library's plan (``influence_stage.pipeline.CLEAN_LIBRARY``) in process, as
``benchmarks/scale.py`` and ``benchmarks/step_times.py`` run it: prepare, the input suite, featurize,
θ*, the automatic scale (yardstick + probe), the members, the loss matrix + scores, decide, the issue
types, apply, the output suite; then publish (into a temporary folder). Its steps run one at a time
(each a one-step plan on the same run context) so that the peak RSS is read after each. Image
features use the default ``featurize.on_disk="auto"``: past ``on_disk_above`` (1 GiB of float32) they
are written to an on-disk feature store and read back in batches (``data.feature_store``).

Model and settings (``MODEL``, ``settings()``), chosen so that 100k images finish in about ten
minutes on one CPU thread: the images flattened into an MLP 3072 → 128 → 10 (the stage's ``mlp``
builder behind ``nn.Flatten``; the builder itself takes 1-D features only), trained as θ* with
``fit_loaded`` and ``FitConfig(epochs=FIT_EPOCHS)`` instead of 60 epochs; GEX at its defaults.

Called from ``benchmarks/scale.py``: ``image_run(n, max_minutes) -> dict``. By hand:
``.venv/bin/python benchmarks/scale_images.py --rows 20000 100000 [--max-minutes 15]`` prints one
JSON line per size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZE, CHANNELS, CLASSES = 32, 3, 10
NOISE_RATE = 0.1
FIT_EPOCHS = 8
MODEL = "flatten + mlp 3072-128-10 (fit_loaded)"
BLOCK = 10_000
"""Rows generated and converted to Arrow at a time while the data set is built."""


def settings() -> dict:
    """The run's configuration: ``CleanConfig`` as a JSON mapping (every other field at its default)."""
    return {"label_column": "label", "feature_columns": ["image"], "fit_loaded": True,
            "fit": {"epochs": FIT_EPOCHS}}


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB (Linux reports ``ru_maxrss`` in KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_images(n: int, folder: str, seed: int = 0) -> None:
    """Write ``n`` synthetic images (module docstring) with ``save_to_disk`` to ``folder``; the flipped rows
    go to ``folder/flipped.npy``."""
    import datasets
    from PIL import Image
    from sklearn.datasets import load_digits

    from influence_stage.data.noise import flip_labels

    digits = load_digits()
    big = np.stack([np.asarray(Image.fromarray((img * 255 / 16).astype(np.uint8)).resize(
        (SIZE, SIZE), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0 for img in digits.images])
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(big), size=n)
    noisy, flipped = flip_labels(digits.target[pick], NOISE_RATE, random_state=seed)
    features = datasets.Features({"image": datasets.Array3D(shape=(CHANNELS, SIZE, SIZE), dtype="uint8"),
                                  "label": datasets.ClassLabel(num_classes=CLASSES)})
    parts = []
    for start in range(0, n, BLOCK):
        rows = pick[start:start + BLOCK]
        m = len(rows)
        shift = rng.integers(-3, 4, size=(m, 2))
        glyph = np.stack([np.roll(big[r], tuple(s), axis=(0, 1)) for r, s in zip(rows, shift)])
        colour = rng.uniform(0.5, 1.0, size=(m, 1, 1, CHANNELS))
        background = rng.uniform(0.0, 0.3, size=(m, 1, 1, CHANNELS))
        pixels = background + glyph[..., None] * (colour - background) + rng.normal(0, 0.05, (m, SIZE, SIZE, CHANNELS))
        pixels = np.clip(np.rint(pixels * 255), 0, 255).astype(np.uint8).transpose(0, 3, 1, 2)
        parts.append(datasets.Dataset.from_dict({"image": pixels, "label": noisy[start:start + BLOCK]},
                                                features=features))
    datasets.concatenate_datasets(parts).save_to_disk(folder)
    np.save(Path(folder) / "flipped.npy", flipped)


def profile(path: str) -> dict:
    """The library's plan on the images saved at ``path``, seconds per step, and the peak RSS after each."""
    import datasets
    from torch import nn

    from step_times import STEP_LABELS
    from influence_stage.config import CleanConfig
    from influence_stage.engine.models import mlp
    from influence_stage.pipeline import CLEAN_LIBRARY, LocalExecutor, Plan, RunContext
    from influence_stage.publish.versions import publish

    flipped = np.load(Path(path) / "flipped.npy")
    config = CleanConfig.from_mapping(settings())
    module = nn.Sequential(nn.Flatten(), mlp(SIZE * SIZE * CHANNELS, CLASSES, seed=config.gex.seed))
    rss_after: dict[str, float] = {}  # peak RSS so far, MB, after each step: where memory grows
    t0 = time.perf_counter()
    context = RunContext(config=config, source=datasets.load_from_disk(path), model=module, max_drop_fraction=0.5)
    for step in CLEAN_LIBRARY:
        LocalExecutor().run(Plan(step.name, (step,)), context)
        rss_after[STEP_LABELS.get(step.name, step.name)] = peak_rss_mb()
    seconds = {STEP_LABELS.get(name, name): s for name, s in context.step_seconds.items()}
    decisions, features, result = context["decisions"], context["features"], context["result"]
    with tempfile.TemporaryDirectory() as root:
        t = time.perf_counter()
        publish(context["cleaned"], decisions.table, root=root, name="scale-images",
                validation_reports=[context["output_report"]])
        seconds["publish"] = time.perf_counter() - t
        rss_after["publish"] = peak_rss_mb()
    total = time.perf_counter() - t0
    rss = peak_rss_mb()
    on_disk = features.store is not None
    flagged = decisions.table["is_issue"].to_numpy()
    return {"rows": len(flagged), "image_shape": [CHANNELS, SIZE, SIZE], "classes": CLASSES, "seconds": seconds,
            "total_seconds": total, "peak_rss_mb": rss, "peak_rss_mb_after": rss_after,
            "precision": float(flipped[flagged].mean()) if flagged.any() else 0.0,
            "recall": float(flagged[flipped].mean()), "flagged": int(flagged.sum()),
            "theta_fit": result.theta_fit, "ft_lr": result.ft_lr, "model": MODEL,
            "settings": {**settings(), "features_on_disk": on_disk,
                         "feature_store_dtype": features.store.raw_dtype if on_disk else None}}


def _child(args: list[str], timeout: float) -> None:
    subprocess.run([sys.executable, __file__, *args], check=True, timeout=timeout,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})


def image_run(n: int, max_minutes: float) -> dict:
    """Build ``n`` images in a child process, run the whole job on them in another; seconds, peak RSS, quality.

    Returns
    -------
    dict
        ``rows, seconds {step: s}, total_seconds, peak_rss_mb, precision, recall, model, settings,
        finished`` (and the data build's seconds, ``make_seconds``). A run past ``max_minutes``
        (the job alone, not the data build) is killed and returned with ``finished: False``.
    """
    folder = tempfile.mkdtemp(prefix="scale-images-")
    out_path = Path(folder) / "result.json"
    data = str(Path(folder) / "data")
    try:
        t = time.perf_counter()
        _child(["--make", str(n), "--data", data], timeout=3600)
        made = time.perf_counter() - t
        t = time.perf_counter()
        try:
            _child(["--one", "--data", data, "--out", str(out_path)], timeout=max_minutes * 60)
        except subprocess.TimeoutExpired:
            return {"rows": n, "finished": False, "limit_minutes": max_minutes, "seconds": {},
                    "total_seconds": time.perf_counter() - t, "make_seconds": made, "model": MODEL,
                    "settings": settings()}
        out = json.loads(out_path.read_text())
        out.update(finished=True, make_seconds=made)
        return out
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[20000, 100000])
    parser.add_argument("--max-minutes", type=float, default=15.0)
    parser.add_argument("--make", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make is not None:
        make_images(args.make, args.data)
        return
    if args.one:
        import torch

        torch.set_num_threads(1)
        Path(args.out).write_text(json.dumps(profile(args.data)))
        return
    for n in args.rows:
        print(json.dumps(image_run(n, args.max_minutes)), flush=True)


if __name__ == "__main__":
    main()

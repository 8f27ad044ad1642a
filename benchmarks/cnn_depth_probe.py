"""The default CNN at two and three conv blocks in a bare training loop, outside the stage.

What the recipe alone learns on clean labels: ``engine.models.cnn`` trained with the CNN recipe's SGD
(``FitConfig`` defaults: rate 0.05 with cosine decay, Nesterov momentum 0.9, weight decay 5e-4, batch 64) for
``--steps`` steps (whole epochs) on ``n`` generated images, then scored on 1,000 held-out images of the same
generator. Pixels are scaled to [0, 1] and standardised per channel on the training rows, as the image
featurizer does. One torch thread; seed 0 draws the images, the initialisation and the batch order.

    python benchmarks/cnn_depth_probe.py --out cnn_depth_probe
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from common import machine, write_json, write_markdown
from image_data import digits28, shapes32

TEST_ROWS = 1000


def run(data: str, blocks: int, n: int, steps: int, seed: int = 0) -> dict:
    from influence_stage.config import FitConfig
    from influence_stage.engine.models import cnn

    X, y = {"shapes32": shapes32, "digits28": digits28}[data](n + TEST_ROWS, seed=seed)
    X = X.astype(np.float32) / 255
    X = X[:, None] if X.ndim == 3 else X.transpose(0, 3, 1, 2)
    mean, sd = X[:n].mean(axis=(0, 2, 3), keepdims=True), X[:n].std(axis=(0, 2, 3), keepdims=True)
    X = (X - mean) / sd
    Xt, yt, Xv, yv = (torch.tensor(X[:n]), torch.tensor(y[:n]), torch.tensor(X[n:]), torch.tensor(y[n:]))
    fit = FitConfig()
    model = cnn(X.shape[1], 10, blocks=blocks, seed=seed)
    opt = torch.optim.SGD(model.parameters(), lr=fit.lr, momentum=fit.momentum, nesterov=True,
                          weight_decay=fit.weight_decay)
    per_epoch = n // fit.batch_size
    epochs = -(-steps // per_epoch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * per_epoch)
    g = torch.Generator().manual_seed(seed)
    t = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(n, generator=g)
        for b in range(per_epoch):
            idx = order[b * fit.batch_size:(b + 1) * fit.batch_size]
            loss = nn.functional.cross_entropy(model(Xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        train = float((model(Xt).argmax(1) == yt).float().mean())
        test = float((model(Xv).argmax(1) == yv).float().mean())
    return {"data": data, "blocks": blocks, "rows": n, "steps": epochs * per_epoch, "train_accuracy": train,
            "test_accuracy": test, "wall_s": time.perf_counter() - t}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=["shapes32:800", "shapes32:2000", "digits28:800"],
                        help="data:rows pairs, each run at two and three blocks")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--out", default="cnn_depth_probe")
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = []
    for spec in args.runs:
        data, rows = spec.split(":")
        for blocks in (2, 3):
            runs.append(run(data, blocks, int(rows), args.steps))
            print(runs[-1], flush=True)
    write_json(args.out, {"machine": machine(), "test_rows": TEST_ROWS, "runs": runs})
    lines = ["## The default CNN at two and three blocks, bare training loop (`benchmarks/cnn_depth_probe.py`)", "",
             f"Clean labels, the CNN recipe's SGD for about {args.steps} steps, {TEST_ROWS} held-out images, seed 0.", "",
             "| data | rows | blocks | steps | train accuracy | held-out accuracy |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['data']} | {r['rows']} | {r['blocks']} | {r['steps']} | {r['train_accuracy']:.3f} | "
              f"{r['test_accuracy']:.3f} |" for r in runs]
    write_markdown(args.out, "\n".join(lines))


if __name__ == "__main__":
    main()

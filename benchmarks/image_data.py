"""Generated image datasets for the benchmarks (the hub cannot be reached from the benchmark machine).

Both generators return ``(images, labels)``: ``images`` ``(n, h, w)`` or ``(n, h, w, 3)`` uint8 and
``labels`` ``(n,)`` int64, deterministic in ``seed``; :func:`as_dataset` turns them into a
``datasets.Dataset`` with an ``Image`` column, the form users hand to ``InfluenceCleaner``.

- :func:`digits28`: sklearn's 8×8 digits upscaled to 28×28 grayscale, each drawn with a random
  rotation (±15°), scale (0.85–1.15), shift (±3 px) and stroke width (thinner, as is, thicker).
- :func:`shapes32`: a procedural 32×32 RGB set of 10 classes, 5 shapes × 2 textures (solid,
  striped), each drawn at a random position, size and colour on a cluttered, noisy background.
  Colour and position carry no label, so a linear model on the pixels cannot solve it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from sklearn.datasets import load_digits


def digits28(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 28×28 grayscale digits, ``(n, 28, 28) uint8`` and ``(n,) int64`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    X, y = load_digits(return_X_y=True)
    src = rng.integers(0, len(y), size=n)
    out = np.zeros((n, 28, 28), dtype=np.uint8)
    for i, j in enumerate(src):
        img = X[j].reshape(8, 8) / 16.0
        img = ndimage.zoom(img, 20 / 8 * rng.uniform(0.85, 1.15), order=1)
        img = ndimage.rotate(img, rng.uniform(-15, 15), reshape=False, order=1)
        stroke = rng.integers(-1, 2)
        if stroke > 0:
            img = ndimage.grey_dilation(img, size=(2, 2))
        elif stroke < 0:
            img = ndimage.grey_erosion(img, size=(2, 2)) * 0.5 + img * 0.5
        h, w = img.shape
        canvas = np.zeros((34, 34))
        top, left = (34 - h) // 2 + rng.integers(-3, 4), (34 - w) // 2 + rng.integers(-3, 4)
        top, left = int(np.clip(top, 0, 34 - h)), int(np.clip(left, 0, 34 - w))
        canvas[top:top + h, left:left + w] = img
        canvas = canvas[3:31, 3:31]
        out[i] = np.clip(canvas * 255, 0, 255).astype(np.uint8)
    return out, y[src].astype(np.int64)


def _shape_mask(kind: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A ``(size, size)`` bool mask: 0 disc, 1 square, 2 triangle, 3 cross, 4 ring."""
    yy, xx = np.mgrid[:size, :size] + 0.5
    c = size / 2
    r = np.hypot(yy - c, xx - c)
    if kind == 0:
        return r <= c * 0.95
    if kind == 1:
        m = max(1, int(size * 0.1))
        mask = np.zeros((size, size), bool)
        mask[m:size - m, m:size - m] = True
        return mask
    if kind == 2:
        return (yy >= size * 0.1) & (np.abs(xx - c) <= (yy - size * 0.05) * 0.55)
    if kind == 3:
        t = size * 0.18
        return (np.abs(yy - c) <= t) | (np.abs(xx - c) <= t)
    return (r <= c * 0.95) & (r >= c * 0.5)


def shapes32(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 32×32 RGB images of 10 classes, ``(n, 32, 32, 3) uint8`` and ``(n,) int64``.

    Class ``k`` is shape ``k % 5`` with texture ``k // 5`` (0 solid, 1 striped at a random angle).
    Each image: a random background colour, 3 small random blobs of clutter, the shape in a random
    colour far enough from the background, then Gaussian pixel noise (sd 20 of 255).
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=n).astype(np.int64)
    out = np.empty((n, 32, 32, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:32, :32]
    for i, k in enumerate(labels):
        bg = rng.uniform(0, 255, 3)
        img = np.broadcast_to(bg, (32, 32, 3)).copy()
        for _ in range(3):  # clutter: small blobs of random colour
            cy, cx, rr = rng.uniform(0, 32), rng.uniform(0, 32), rng.uniform(1.5, 3.0)
            img[np.hypot(yy - cy, xx - cx) <= rr] = rng.uniform(0, 255, 3)
        fg = rng.uniform(0, 255, 3)
        while np.abs(fg - bg).sum() < 200:
            fg = rng.uniform(0, 255, 3)
        size = int(rng.integers(14, 23))
        mask = _shape_mask(int(k % 5), size, rng)
        if k >= 5:  # striped texture: stripes of period 4 at a random angle
            a = rng.uniform(0, np.pi)
            sy, sx = np.mgrid[:size, :size]
            mask &= ((np.cos(a) * sx + np.sin(a) * sy) % 4) < 2
        top, left = int(rng.integers(0, 33 - size)), int(rng.integers(0, 33 - size))
        region = img[top:top + size, left:left + size]
        region[mask] = fg
        img += rng.normal(0, 20, img.shape)
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out, labels


def as_dataset(images: np.ndarray, labels: np.ndarray):
    """A ``datasets.Dataset`` with columns ``image`` (``Image``) and ``label`` (int), one row per image."""
    import datasets
    from PIL import Image

    mode = "L" if images.ndim == 3 else "RGB"
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    return datasets.Dataset.from_dict({"image": [Image.fromarray(im, mode=mode) for im in images],
                                       "label": [int(v) for v in labels]}, features=feats)

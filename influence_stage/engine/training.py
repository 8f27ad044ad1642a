"""What every learner's training shares: ``TensorData`` (features and labels as tensors), the
minibatch indices (``batch_indices``, ``epoch_batches``), evaluation batches, the cosine learning-rate
schedule, and ``TrainHistory`` (a fit's per-epoch loss and accuracy, and each row's margin).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np
import torch

State = dict[str, torch.Tensor]
LRSchedule = Callable[[int], float]


class TensorData(NamedTuple):
    """Features and labels as tensors: ``X`` ``(n, ...)`` float32, ``y`` ``(n,)`` int64."""

    X: torch.Tensor
    y: torch.Tensor

    @classmethod
    def from_arrays(cls, X: np.ndarray, y: np.ndarray, device: str | torch.device = "cpu") -> "TensorData":
        return cls(torch.as_tensor(X, dtype=torch.float32, device=device),
                   torch.as_tensor(y, dtype=torch.int64, device=device))

    def to(self, device: str | torch.device) -> "TensorData":
        """The same rows on ``device`` (no copy when they are there already)."""
        return TensorData(self.X.to(device), self.y.to(device))

    def subset(self, index: np.ndarray | torch.Tensor) -> "TensorData":
        index = torch.as_tensor(index, dtype=torch.int64, device=self.X.device)
        return TensorData(self.X[index], self.y[index])

    def __len__(self) -> int:  # NamedTuple's own len would be 2
        return int(self.y.shape[0])


def random_shift(X: torch.Tensor, pixels: int, gen: torch.Generator) -> torch.Tensor:
    """Each image of ``X`` ``(b, c, h, w)`` moved by its own random whole-pixel offset of at most
    ``pixels`` in each direction, the edge rows and columns repeated into the space left.

    A small translation keeps the label of almost any image, and it lets a model trained on a few
    hundred images generalise to the rows it has not seen (the cross-fitted halves' augmentation,
    ``FitConfig.shift_pixels``). Offsets come from ``gen`` (on the CPU), so runs repeat.
    """
    if pixels <= 0:
        return X
    b, c, h, w = X.shape
    padded = torch.nn.functional.pad(X, (pixels, pixels, pixels, pixels), mode="replicate")
    dy = torch.randint(0, 2 * pixels + 1, (b,), generator=gen).to(X.device)
    dx = torch.randint(0, 2 * pixels + 1, (b,), generator=gen).to(X.device)
    rows = (torch.arange(h, device=X.device)[None, :] + dy[:, None])[:, None, :, None]
    cols = (torch.arange(w, device=X.device)[None, :] + dx[:, None])[:, None, None, :]
    return padded[torch.arange(b, device=X.device)[:, None, None, None], torch.arange(c, device=X.device)[None, :, None, None],
                  rows, cols]


def shift_image(X: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Every image of ``X`` ``(b, c, h, w)`` moved by the same whole-pixel offset: content moves ``dy``
    rows down and ``dx`` columns right (negative: up, left), the edge rows and columns repeated into
    the space left (``random_shift``'s padding, one offset for all)."""
    if dy == 0 and dx == 0:
        return X
    b, c, h, w = X.shape
    py, px = abs(dy), abs(dx)
    padded = torch.nn.functional.pad(X, (px, px, py, py), mode="replicate")
    return padded[:, :, py - dy:py - dy + h, px - dx:px - dx + w]


#: Offsets ``(dy, dx)`` of the views ``GEXConfig.image_aux_views`` averages: the image itself, then its
#: four one-pixel neighbours, then the four diagonal ones.
VIEW_OFFSETS: tuple[tuple[int, int], ...] = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1),
                                             (-1, -1), (-1, 1), (1, -1), (1, 1))


class ShiftedRows:
    """``data``'s rows with every image moved by one fixed offset (``shift_image``) as they are read,
    for evaluation passes: ``y`` and ``len`` are the rows' own, ``eval_batches`` the rows' batches
    shifted one at a time (tensors and rows on disk, ``data.feature_store.StreamData``, alike), so a
    view never holds more than one batch beyond the rows themselves. A learner that reads ``X``
    whole instead (a scikit-learn model) gets every row, shifted."""

    def __init__(self, data: Any, dy: int, dx: int) -> None:
        self.data, self.dy, self.dx = data, int(dy), int(dx)
        self.y = data.y

    def __len__(self) -> int:
        return len(self.data)

    @property
    def X(self) -> torch.Tensor:
        """Every row's image, shifted (read whole, as ``np.asarray(data.X)`` would)."""
        X = self.data.X
        return shift_image(X if isinstance(X, torch.Tensor) else torch.as_tensor(np.asarray(X)), self.dy, self.dx)

    def eval_batches(self, batch_size: int) -> Iterator[tuple[int, torch.Tensor]]:
        for start, xb in eval_batches(self.data, batch_size):
            yield start, shift_image(xb, self.dy, self.dx)


def eval_batches(data: Any, batch_size: int) -> Iterator[tuple[int, torch.Tensor]]:
    """``(start, data.X[start:start + batch_size])`` over every row in order, for evaluation passes.

    Tensors are sliced; data that reads its rows from disk (``data.feature_store.StreamData``)
    gives its own batches (``eval_batches``: a DataLoader over the on-disk dataset), so a pass never
    holds more than one batch of features.
    """
    own = getattr(data, "eval_batches", None)
    if callable(own):
        yield from own(batch_size)
        return
    for s in range(0, len(data), batch_size):
        yield s, data.X[s:s + batch_size]


@dataclass(frozen=True)
class CosineSchedule:
    """Cosine decay from ``peak`` to 0 over ``steps`` steps: ``lr(t) = peak * (1 + cos(pi t / steps)) / 2``."""

    peak: float
    steps: int

    def __call__(self, step: int) -> float:
        return 0.5 * self.peak * (1.0 + math.cos(math.pi * step / max(self.steps, 1)))


@dataclass(frozen=True)
class TrainHistory:
    """Per-epoch training loss and accuracy (on the given labels) of a fit, and each row's margin.

    ``mean_margin`` ``(n_samples,) float32`` (or None when the learner does not record it): the
    in-sample logit margin of the given label (its logit minus the largest other logit), taken on
    the minibatch that held the row and averaged over the epochs that saw it, the training-dynamics
    signal of "area under the margin" (AUM). It costs no extra forward pass. Low = suspicious.
    """

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    mean_margin: np.ndarray | None = None
    labels_digest: str | None = None


def labels_digest(y: Any) -> str:
    """Digest of a label vector (count and values), to tell whether a fit saw exactly these labels."""
    arr = np.ascontiguousarray(np.asarray(y.cpu().numpy() if hasattr(y, "cpu") else y, dtype=np.int64))
    return hashlib.sha256(arr.tobytes()).hexdigest()[:16]


def batch_indices(n: int, steps: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Indices of ``steps`` minibatches: epoch-wise random permutations, cut into batches.

    One function for the sequential and the batched training paths, so both see the same batches
    for the same seed.
    """
    out: list[torch.Tensor] = []
    while len(out) < steps:
        for batch in epoch_batches(n, batch_size, generator):
            out.append(batch)
            if len(out) == steps:
                break
    return out


def epoch_batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """One epoch of ``batch_indices``: a random permutation cut into ``n // batch_size`` batches.

    ``TorchLearner.fit`` draws its batches one epoch at a time with it (the same batches as
    ``batch_indices`` for the same generator), so the index tensors of all epochs never sit in memory
    together.
    """
    batch_size = min(batch_size, n)
    perm = torch.randperm(n, generator=generator)
    # the ragged tail is dropped
    return [perm[start:start + batch_size] for start in range(0, n - batch_size + 1, batch_size)]


__all__ = ["CosineSchedule", "LRSchedule", "ShiftedRows", "State", "TensorData", "TrainHistory", "VIEW_OFFSETS",
           "batch_indices", "epoch_batches", "eval_batches", "labels_digest", "random_shift", "shift_image"]

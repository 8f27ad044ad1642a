"""The rows an ``HFLearner`` reads: ``TextData`` (texts), ``ImageData`` (images) and
``DatasetImages`` (a lazy view of a dataset's image column), each with its given labels.

Rows stay raw here; the learner tokenizes them / runs them through its image processor in batches.
"""

from __future__ import annotations

from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from influence_stage.errors import InvalidInputError, InvalidTypeError


def as_labels(y: Any, n: int, what: str) -> torch.Tensor:
    if hasattr(y, "detach"):
        y = y.detach().cpu()
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise InvalidInputError(f"{what} labels must be 1-D (n_samples,); found shape {arr.shape}.")
    if not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
        raise InvalidTypeError(f"{what} labels must be integer class indices 0..K-1; found dtype {arr.dtype}.")
    if arr.shape[0] != n:
        raise InvalidInputError(f"{what} has {n} rows but {arr.shape[0]} labels.")
    return torch.as_tensor(arr.astype(np.int64), dtype=torch.int64)


def index_list(index: Any) -> list[int]:
    if isinstance(index, slice):
        raise InvalidTypeError("subset takes an array of row indices, not a slice.")
    return [int(i) for i in torch.as_tensor(np.asarray(index) if not torch.is_tensor(index) else index,
                                            dtype=torch.int64).reshape(-1).tolist()]


@dataclass(frozen=True, eq=False)
class TextData:
    """Texts and their given labels, for ``HFLearner(task="text")``.

    Parameters
    ----------
    texts : sequence of str, length ``n``
        Raw texts; tokenized in batches by the learner's tokenizer.
    y : array-like of int, shape ``(n,)``
        Given (possibly wrong) labels ``0..K-1``; stored as an int64 CPU tensor.
    """

    texts: list[str]
    y: torch.Tensor

    def __post_init__(self) -> None:
        texts = self.texts
        if isinstance(texts, str) or not hasattr(texts, "__len__"):
            raise InvalidTypeError(f"texts must be a list of strings; found {type(texts).__name__}.")
        texts = [t for t in texts]
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise InvalidTypeError(
                f"texts must all be strings; row {bad[0]} is {type(texts[bad[0]]).__name__} "
                f"({len(bad)} such rows). Fill or drop missing texts first."
            )
        object.__setattr__(self, "texts", texts)
        object.__setattr__(self, "y", as_labels(self.y, len(texts), "TextData"))

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index: np.ndarray | torch.Tensor | Sequence[int]) -> "TextData":
        """The rows at ``index`` (an array of row indices), in that order."""
        idx = index_list(index)
        return TextData([self.texts[i] for i in idx], self.y[idx])

    def batch(self, index: Sequence[int]) -> list[str]:
        """Raw inputs of the rows at ``index``, as the tokenizer takes them."""
        return [self.texts[i] for i in index]


@dataclass(frozen=True, eq=False)
class ImageData:
    """Images and their given labels, for ``HFLearner(task="image")``.

    Parameters
    ----------
    images : sequence of images, length ``n``
        PIL images, or ``(h, w, c)`` / ``(h, w)`` uint8 arrays, or one array/tensor ``(n, ...)``:
        whatever the model's image processor takes (it resizes, rescales and normalises them, so
        give raw pixels, not already normalised tensors).
    y : array-like of int, shape ``(n,)``
        Given (possibly wrong) labels ``0..K-1``; stored as an int64 CPU tensor.
    """

    images: Any
    y: torch.Tensor

    def __post_init__(self) -> None:
        if not hasattr(self.images, "__len__") or not hasattr(self.images, "__getitem__"):
            raise InvalidTypeError(
                f"images must be a sequence or an array of images; found {type(self.images).__name__}."
            )
        object.__setattr__(self, "y", as_labels(self.y, len(self.images), "ImageData"))

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, index: np.ndarray | torch.Tensor | Sequence[int]) -> "ImageData":
        """The rows at ``index`` (an array of row indices), in that order."""
        idx = index_list(index)
        if isinstance(self.images, (np.ndarray, torch.Tensor)):
            images = self.images[idx]
        else:
            images = [self.images[i] for i in idx]
        return ImageData(images, self.y[idx])

    def batch(self, index: Sequence[int]) -> list[Any]:
        """Raw inputs of the rows at ``index``, as a list the image processor takes."""
        return [self.images[i] for i in index]


class DatasetImages(SequenceABC):
    """Lazy, read-only view of one image column of a ``datasets.Dataset``, for ``ImageData``.

    Row ``i`` is read and decoded when asked for, so a large image dataset is never held decoded
    in memory (members re-read rows instead; decoding is cheap next to a forward pass).

    Parameters
    ----------
    dataset : datasets.Dataset
        ``n`` rows.
    column : str
        An image column (``datasets.Image``), or a column of 2-D / 3-D pixel arrays ``(h, w)`` /
        ``(h, w, c)``.
    channels : {1, 3} or None
        Channels the model takes (``config.num_channels``): PIL images are converted to ``"L"``
        or ``"RGB"``, grey arrays repeated to 3 channels; None keeps them as stored.

    Raises
    ------
    InvalidInputError
        On access: a missing image, naming its row.
    """

    def __init__(self, dataset: Any, column: str, *, channels: int | None = None) -> None:
        if column not in getattr(dataset, "column_names", ()):
            raise InvalidInputError(
                f"image column {column!r} not found; available columns: {list(getattr(dataset, 'column_names', []))}."
            )
        self._dataset = dataset.select_columns([column])
        self.column = column
        self.channels = channels

    def __len__(self) -> int:
        return int(self._dataset.num_rows)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        i = int(index)
        item = self._dataset[i][self.column]
        if item is None:
            raise InvalidInputError(
                f"image column {self.column!r} has no image at row {i}; expected an image on every row. "
                "Fix: drop those rows."
            )
        if hasattr(item, "convert") and hasattr(item, "mode"):  # a PIL image
            mode = {1: "L", 3: "RGB"}.get(self.channels or 0)
            return item.convert(mode) if mode is not None and item.mode != mode else item
        arr = np.asarray(item)
        if self.channels == 3 and arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        return arr


__all__ = ["DatasetImages", "ImageData", "TextData", "as_labels", "index_list"]

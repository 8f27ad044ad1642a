"""Image features on disk: an Arrow dataset written block by block and read back in batches.

The in-memory image path holds the whole ``(n, c, h, w)`` float32 matrix; past a few hundred
thousand images that no longer fits. A ``FeatureStore`` keeps the featurizer's output on disk
instead, as one memory-mapped ``datasets.Dataset`` with one fixed-size list column (``pixels``, a
row's ``c*h*w`` values), written in row blocks as the featurizer produces them, so neither writing
nor reading ever holds the whole matrix.

What is stored is the image *before* the per-channel normalisation: raw 8-bit pixels (``uint8``)
when every image is 8-bit and needs no resizing (its float value is exactly ``pixel / 255``), else
the float32 values in [0, 1] after resizing. Each batch read back is normalised with the
featurizer's fitted mean and scale by the same float32 operations, in the same order, as the
in-memory path, so the values are bit-identical and a run on the store sees exactly the numbers of
the in-memory run; ``uint8`` takes a quarter of the disk and page cache.

``FeatureStore.data`` gives ``StreamData``, which stands in for
``engine.learner.TensorData`` wherever a ``TorchLearner`` trains or evaluates: ``X`` indexed by the
learner's minibatch index tensors (``engine.learner.batch_indices``) gathers exactly those rows, and
sequential passes (``StreamData.eval_batches``) go through a ``torch.utils.data.DataLoader``
over the dataset, whose batches are gathered Arrow tables by default (the torch format is one
option away, but datasets' torch formatter converts row by row). Peak memory grows with N only through the O(N) label and index
vectors and the memory-mapped file.

A fixed-size list (rather than ``datasets.Array3D``, whose Arrow storage is three levels of
variable lists) makes gathering a minibatch one contiguous copy per row.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import torch
from datasets.arrow_writer import ArrowWriter

from influence_stage.errors import InvalidInputError

logger = logging.getLogger(__name__)

COLUMN = "pixels"
"""Name of the store's one column: a row's ``c*h*w`` values, channel-major (``(c, h, w)`` flattened)."""

DATA_FILE = "features.arrow"
META_FILE = "store.json"
RAW_DTYPES = ("uint8", "float32")
NORMALIZE_BLOCK = 1 << 18
"""Values normalised at a time (1 MB of float32): a block stays in the CPU cache through its four steps."""

_Index = slice | int | np.ndarray | torch.Tensor | Sequence[int]


class FeatureStoreWriter:
    """Writes row blocks ``(b, c, h, w)`` of ``raw_dtype`` to ``folder``; ``finish`` opens the store.

    Parameters
    ----------
    folder : path or None
        Where the store's files go (created when missing; it must not hold a store already). None: a
        new temporary folder, removed when the finished store is garbage-collected.
    shape : (c, h, w)
        Shape of one row.
    raw_dtype : {"uint8", "float32"}
        ``uint8``: 8-bit pixels, read back as ``pixel / 255``; ``float32``: values as given.
    """

    def __init__(self, folder: str | Path | None, shape: Sequence[int], raw_dtype: str) -> None:
        if raw_dtype not in RAW_DTYPES:
            raise InvalidInputError(f"raw_dtype must be one of {RAW_DTYPES}; found {raw_dtype!r}.")
        self.owns_folder = folder is None
        self.folder = Path(tempfile.mkdtemp(prefix="influence-features-")) if folder is None else Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        if (self.folder / DATA_FILE).exists():
            raise InvalidInputError(
                f"feature store folder {self.folder} already holds a store ({DATA_FILE}); expected an empty or new "
                "folder. Fix: give another folder, or remove the old store first."
            )
        self.shape = tuple(int(s) for s in shape)
        self.raw_dtype = raw_dtype
        self.width = int(np.prod(self.shape))
        features = datasets.Features({COLUMN: datasets.List(datasets.Value(raw_dtype), length=self.width)})
        self._writer = ArrowWriter(features=features, path=str(self.folder / DATA_FILE))
        self.n_rows = 0

    def write(self, block: np.ndarray) -> None:
        """Append ``block`` ``(b, c, h, w)`` (rows in dataset order)."""
        if block.shape[1:] != self.shape or block.dtype != np.dtype(self.raw_dtype):
            raise InvalidInputError(f"a feature block must be {self.raw_dtype} of shape (b, {self.shape}); "
                                    f"found {block.dtype} {block.shape}.")
        flat = pa.array(np.ascontiguousarray(block).reshape(-1))
        self._writer.write_table(pa.table({COLUMN: pa.FixedSizeListArray.from_arrays(flat, self.width)}))
        self.n_rows += len(block)

    def abort(self) -> None:
        """Close the file and remove what this writer created (an error stopped the featurizer)."""
        try:
            self._writer.close()
        finally:
            if self.owns_folder:
                shutil.rmtree(self.folder, ignore_errors=True)
            else:
                (self.folder / DATA_FILE).unlink(missing_ok=True)

    def finish(self, mean: np.ndarray, scale: np.ndarray) -> "FeatureStore":
        """Close the file, record the per-channel ``mean`` and ``scale`` and open the store."""
        self._writer.finalize()
        self._writer.close()
        meta = {"shape": list(self.shape), "raw_dtype": self.raw_dtype, "n_rows": self.n_rows,
                "mean": [float(v) for v in mean], "scale": [float(v) for v in scale]}
        (self.folder / META_FILE).write_text(json.dumps(meta))
        return FeatureStore.open(self.folder, owns_folder=self.owns_folder)


class FeatureStore:
    """Normalised image features ``(n, c, h, w)`` float32 held on disk (see the module docstring).

    Array-like where the stage needs it: ``shape``, ``ndim``, ``dtype``, ``len``, and ``store[i]``
    with a slice or row indices gives the normalised rows as a float32 ndarray. ``np.asarray(store)``
    reads the whole matrix into memory (meant for small stores only).

    Attributes
    ----------
    folder : Path
        Where the files are; removed when the store is garbage-collected if the store made it
        (a temporary folder), kept otherwise.
    raw_dtype : {"uint8", "float32"}
        What the file holds per value.
    mean, scale : numpy.ndarray ``(c,)`` float64
        The featurizer's per-channel normalisation.
    dataset : datasets.Dataset
        The memory-mapped Arrow dataset, one column ``pixels``.
    """

    def __init__(self, dataset: datasets.Dataset, *, folder: Path, shape: Sequence[int], raw_dtype: str,
                 mean: Sequence[float], scale: Sequence[float], owns_folder: bool = False) -> None:
        self.dataset = dataset
        self.folder = Path(folder)
        self.row_shape = tuple(int(s) for s in shape)
        self.raw_dtype = raw_dtype
        self.mean = np.asarray(mean, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self._arrow = dataset.with_format("arrow")
        self._torch = dataset.with_format("torch")
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.folder), True) if owns_folder else None

    @classmethod
    def open(cls, folder: str | Path, *, owns_folder: bool = False) -> "FeatureStore":
        """The store written to ``folder`` by ``FeatureStoreWriter`` (memory-mapped, not read)."""
        folder = Path(folder)
        meta_path = folder / META_FILE
        if not meta_path.is_file() or not (folder / DATA_FILE).is_file():
            raise InvalidInputError(f"{folder} holds no finished feature store ({META_FILE} and {DATA_FILE}).")
        meta = json.loads(meta_path.read_text())
        dataset = datasets.Dataset.from_file(str(folder / DATA_FILE))
        if dataset.num_rows != meta["n_rows"]:
            raise InvalidInputError(f"feature store {folder}: {dataset.num_rows} rows in {DATA_FILE}, "
                                    f"{meta['n_rows']} in {META_FILE}; the store is incomplete.")
        return cls(dataset, folder=folder, shape=meta["shape"], raw_dtype=meta["raw_dtype"], mean=meta["mean"],
                   scale=meta["scale"], owns_folder=owns_folder)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # a copy in another process reopens the files and never removes them: the original owns them
        return FeatureStore.open, (str(self.folder),)

    # -- array-like ------------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return (self.dataset.num_rows, *self.row_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.row_shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    @property
    def nbytes(self) -> int:
        """Bytes of the normalised float32 matrix (what the in-memory path would hold)."""
        return int(np.prod(self.shape)) * 4

    def __len__(self) -> int:
        return self.dataset.num_rows

    def __repr__(self) -> str:
        return f"FeatureStore(shape={self.shape}, raw_dtype={self.raw_dtype!r}, folder={str(self.folder)!r})"

    def __getitem__(self, key: _Index) -> np.ndarray:
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1:
                return self.read(start, stop)
            return self.rows(np.arange(start, stop, step))
        if isinstance(key, (int, np.integer)):
            return self.rows(np.array([int(key)]))[0]
        return self.rows(key)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        logger.warning("reading the whole on-disk feature matrix %s into memory (%.1f MB)", self.shape,
                       self.nbytes / 2**20)
        out = self.read(0, len(self))
        return out if dtype is None else out.astype(dtype, copy=False)

    # -- reading ---------------------------------------------------------------------------------------
    def normalize(self, raw: np.ndarray) -> np.ndarray:
        """Raw rows ``(b, c*h*w)`` or ``(b, c, h, w)`` → normalised float32 ``(b, c, h, w)``.

        The in-memory featurizer's arithmetic, step by step: float32 conversion, ``/ 255.0`` for
        8-bit pixels, then per channel ``-= mean`` and ``/= scale`` in float32 (elementwise, so the
        same values whatever the batch). Done in cache-sized row blocks, which runs about twice as
        fast as whole-batch passes.
        """
        raw = np.asarray(raw).reshape(-1, *self.row_shape)
        out = np.empty(raw.shape, dtype=np.float32)
        mean = [np.float32(m) for m in self.mean]
        scale = [np.float32(v) for v in self.scale]
        step = max(1, NORMALIZE_BLOCK // max(int(np.prod(self.row_shape)), 1))
        for s in range(0, len(raw), step):
            block = raw[s:s + step].astype(np.float32)
            if self.raw_dtype == "uint8":
                block /= np.float32(255.0)
            for c in range(self.row_shape[0]):
                block[:, c] -= mean[c]
                block[:, c] /= scale[c]
            out[s:s + step] = block
        return out

    def _raw(self, table: pa.Table) -> np.ndarray:
        column = table.column(COLUMN).combine_chunks()
        return column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), -1)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Normalised rows ``start:stop`` (contiguous), float32 ``(stop - start, c, h, w)``."""
        start, stop = max(int(start), 0), min(int(stop), len(self))
        if stop <= start:
            return np.empty((0, *self.row_shape), dtype=np.float32)
        return self.normalize(self._raw(self._arrow[start:stop]))

    def rows(self, index: Any) -> np.ndarray:
        """Normalised rows at ``index`` (any integer shape; bool masks allowed), float32 ``(*index.shape, c, h, w)``."""
        idx = index.cpu().numpy() if isinstance(index, torch.Tensor) else np.asarray(index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise InvalidInputError(f"feature store rows are indexed by integers; found dtype {idx.dtype}.")
        flat = idx.reshape(-1).astype(np.int64, copy=False)
        if flat.size == 0:
            return np.empty((*idx.shape, *self.row_shape), dtype=np.float32)
        flat = np.where(flat < 0, flat + len(self), flat)
        if flat.min() < 0 or flat.max() >= len(self):
            raise InvalidInputError(f"feature store index out of range: rows 0..{len(self) - 1}; found "
                                    f"{int(flat.min())}..{int(flat.max())}.")
        return self.normalize(self._raw(self._arrow[flat.tolist()])).reshape(*idx.shape, *self.row_shape)

    def loader(self, batch_size: int, rows: np.ndarray | None = None, *, num_workers: int = 0,
               format: str = "arrow") -> torch.utils.data.DataLoader:
        """A DataLoader of raw batches over the dataset, one gather of ``batch_size`` rows per batch.

        ``rows``: the row numbers to read, in this order (default every row). ``format``: the
        dataset's format, ``"arrow"`` (batches are ``pyarrow.Table``; ``batch_rows`` turns them
        into normalised rows without a per-row step) or ``"torch"`` (``{"pixels": tensor}``;
        datasets' torch formatter converts row by row, about twenty times slower per row).
        """
        from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

        if format not in ("arrow", "torch"):
            raise InvalidInputError(f"format must be 'arrow' or 'torch'; found {format!r}.")
        order = SequentialSampler(range(len(self))) if rows is None else np.asarray(rows, dtype=np.int64).tolist()
        dataset = self._arrow if format == "arrow" else self._torch
        return DataLoader(dataset, sampler=BatchSampler(order, int(batch_size), drop_last=False),
                          batch_size=None, num_workers=num_workers, collate_fn=_as_is)

    def batch_rows(self, batch: Any) -> np.ndarray:
        """Normalised float32 rows ``(b, c, h, w)`` of one ``loader`` batch (either format)."""
        if isinstance(batch, pa.Table):
            return self.normalize(self._raw(batch))
        return self.normalize(batch[COLUMN].numpy())

    def data(self, y: Any, device: str | torch.device = "cpu") -> "StreamData":
        """The store with labels ``y`` as a learner's data (``StreamData``) on ``device``."""
        return StreamData(self, torch.as_tensor(np.asarray(y), dtype=torch.int64, device=device), device=device)


def _as_is(batch: Any) -> Any:
    """The DataLoader's collate: a batch is already one gathered table (or dict of tensors)."""
    return batch


class StreamX:
    """``StreamData.X``: rows of a store (or of a subset of its rows) as float32 tensors on ``device``.

    ``X[idx]`` with a 1-D or 2-D integer tensor / array gathers those rows (shape ``(*idx.shape,
    c, h, w)``); ``X[s:e]`` reads a contiguous range; ``shape``, ``ndim``, ``dtype``, ``device`` as a
    tensor's.
    """

    def __init__(self, store: FeatureStore, rows: np.ndarray | None, device: str | torch.device) -> None:
        self.store = store
        self.rows = rows  # row numbers in the store, or None for every row in order
        self.device = torch.device(device)

    def __len__(self) -> int:
        return len(self.store) if self.rows is None else len(self.rows)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), *self.store.row_shape))

    @property
    def ndim(self) -> int:
        return self.store.ndim

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def _tensor(self, arr: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(arr).to(self.device)

    def __getitem__(self, key: _Index) -> torch.Tensor:
        if isinstance(key, slice) and self.rows is None:
            return self._tensor(self.store[key])
        if isinstance(key, slice):
            return self._tensor(self.store.rows(self.rows[key]))
        if isinstance(key, (int, np.integer)):
            return self[np.array([int(key)])][0]
        idx = key.cpu().numpy() if isinstance(key, torch.Tensor) else np.asarray(key)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return self._tensor(self.store.rows(idx if self.rows is None else self.rows[idx]))

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        out = self.store.rows(np.arange(len(self)) if self.rows is None else self.rows)
        return out if dtype is None else out.astype(dtype, copy=False)


class StreamData:
    """``engine.learner.TensorData``'s on-disk twin: ``X`` read from a ``FeatureStore``, ``y`` a tensor.

    ``y`` ``(n,) int64`` on ``device``; ``len``; ``subset`` (a row view, nothing copied but the
    row numbers); ``to``; ``eval_batches`` for sequential passes through a DataLoader over
    the dataset in ``format`` (see ``FeatureStore.loader``; ``num_workers`` its worker processes).
    """

    def __init__(self, store: FeatureStore, y: torch.Tensor, *, rows: np.ndarray | None = None,
                 device: str | torch.device = "cpu", num_workers: int = 0, format: str = "arrow") -> None:
        n = len(store) if rows is None else len(rows)
        if len(y) != n:
            raise InvalidInputError(f"the feature store has {n} rows and y {len(y)} labels; expected one per row.")
        self.store = store
        self.rows = rows
        self.num_workers = int(num_workers)
        self.format = format
        self.X = StreamX(store, rows, device)
        self.y = y.to(self.X.device)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def __repr__(self) -> str:
        return f"StreamData(rows={len(self)}, store={self.store!r}, device={str(self.X.device)!r})"

    def to(self, device: str | torch.device) -> "StreamData":
        """The same rows on ``device`` (batches are moved there as they are read)."""
        if torch.device(device) == self.X.device:
            return self
        return StreamData(self.store, self.y.to(device), rows=self.rows, device=device, num_workers=self.num_workers,
                          format=self.format)

    def subset(self, index: np.ndarray | torch.Tensor) -> "StreamData":
        """The rows at ``index`` (positions in this data), as a view of the same store."""
        idx = index.cpu().numpy() if isinstance(index, torch.Tensor) else np.asarray(index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64, copy=False).reshape(-1)
        rows = idx if self.rows is None else self.rows[idx]
        return StreamData(self.store, self.y[torch.as_tensor(idx, device=self.y.device)], rows=rows,
                          device=self.X.device, num_workers=self.num_workers, format=self.format)

    def eval_batches(self, batch_size: int) -> Iterator[tuple[int, torch.Tensor]]:
        """``(start, X[start:start + batch_size])`` over every row in order, read through a DataLoader."""
        start = 0
        for batch in self.store.loader(batch_size, self.rows, num_workers=self.num_workers, format=self.format):
            xb = torch.from_numpy(self.store.batch_rows(batch)).to(self.X.device)
            yield start, xb
            start += len(xb)


__all__ = ["COLUMN", "FeatureStore", "FeatureStoreWriter", "StreamData", "StreamX"]

"""Image columns (PIL images or pixel arrays) → ``(n, c, h, w)`` float32."""

from __future__ import annotations

import io
import logging
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from influence_stage.data.arrow import Kind, batch_row_ids, iter_batches, where
from influence_stage.data.feature_store import FeatureStore, FeatureStoreWriter
from influence_stage.data.featurize.config import ON_DISK_ABOVE_BYTES, FeaturizeConfig, Welford, safe_scale
from influence_stage.errors import (
    InvalidInputError,
)

logger = logging.getLogger(__name__)


DEFAULT_IMAGE_SIZE: tuple[int, int] = (32, 32)
"""(height, width) images are resized to when they do not all share one size."""


_GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_WIDE_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
"""PIL modes with more than 8 bits per channel (every other mode is read as 8-bit L or RGB)."""


def list_row_to_array(arr: pa.Array, i: int) -> np.ndarray:
    """Row ``i`` of a nested list column as a rectangular ndarray (errors on ragged rows)."""
    scalar = arr[i]
    if not scalar.is_valid:
        raise ValueError("the value is null")
    cur = scalar.values
    shape = [len(cur)]
    while pa.types.is_list(cur.type) or pa.types.is_large_list(cur.type) or pa.types.is_fixed_size_list(cur.type):
        if cur.null_count:
            raise ValueError("a nested row is null")
        lengths = np.unique(pc.list_value_length(cur).to_numpy(zero_copy_only=False))
        if lengths.size > 1:
            raise ValueError(f"ragged array: inner lengths {lengths.tolist()} at depth {len(shape)}")
        shape.append(int(lengths[0]) if lengths.size else 0)
        cur = cur.flatten()
    if cur.null_count:
        raise ValueError("missing pixel values")
    return cur.to_numpy(zero_copy_only=False).reshape(shape)


def _array_layout(shape: tuple[int, ...]) -> tuple[str, int]:
    """``("hw" | "hwc" | "chw", channels)`` of an image array shape, or ValueError."""
    if len(shape) == 2:
        return "hw", 1
    if len(shape) == 3:
        if shape[-1] in (1, 2, 3, 4):
            return "hwc", shape[-1]
        if shape[0] in (1, 3, 4):
            return "chw", shape[0]
    raise ValueError(f"an image array must be (h, w), (h, w, c) or (c, h, w) with c in 1..4; found shape {shape}")


def _out_channels(channels: int) -> int:
    """1 for grey (+alpha), 3 for colour (+alpha)."""
    return 1 if channels <= 2 else 3


class ImageFeaturizer:
    """Images or 2-D / 3-D arrays → normalized ``(n, c, h, w)`` float32.

    Every image is converted to float32 in [0, 1] (uint8 / PIL 8-bit modes ÷ 255, 16-bit ÷ 65535,
    bool as 0/1; numeric arrays by one column-wide factor fixed at fit: 255 for ints up to 255,
    65535 for ints up to 65535, else the column's maximum, and 1 for floats already within [0, 1]);
    alpha is dropped; if any image has colour, grey images are repeated to 3 channels (RGB), else
    all are 1 channel. Then each image is resized with PIL (bilinear, antialiased) to
    ``config.image_size``, or — when that is None — to the images' own size if they all share one,
    else to 32×32 (``DEFAULT_IMAGE_SIZE``). Finally each channel is centred and scaled by its fitted
    mean and std. An image that cannot be decoded, read or resized raises an error naming its row.

    With ``config.on_disk`` (``"auto"``: when the float32 matrix would exceed
    ``config.on_disk_above`` bytes) the output is a
    ``FeatureStore`` instead of an array: the images are
    decoded in blocks of ``batch_size`` rows and each block is appended to an on-disk Arrow file
    before the next is read, so the matrix is never in memory; the statistics come from the same
    blocks, and the values read back equal the in-memory ones bit for bit.

    Attributes
    ----------
    size_ : tuple of int
        ``(height, width)`` of the output.
    channels_ : int
        1 or 3.
    value_scale_ : float
        Divisor of numeric arrays (PIL images use their mode's range).
    mean_, scale_ : numpy.ndarray, shape ``(channels_,)`` float64
        Per-channel normalization.
    """

    kind: Kind = "image"

    def __init__(self, columns: Sequence[str], config: FeaturizeConfig | None = None) -> None:
        if len(columns) != 1:
            raise InvalidInputError(f"the image featurizer takes one column; found {list(columns)}.")
        self.columns = tuple(columns)
        self.config = config or FeaturizeConfig()

    # -- reading ----------------------------------------------------------------------------------

    def _iter_raw(self, ds: datasets.Dataset, batch_size: int) -> Iterator[tuple[int, Any, Any]]:
        """Yield ``(row, row_id, item)`` with item a lazily-opened PIL image or an ndarray."""
        from PIL import Image

        (name,) = self.columns
        feature = ds.features[name]
        forced_mode = feature.mode if isinstance(feature, datasets.Image) else None
        for start, table in iter_batches(ds, self.columns, batch_size):
            ids = batch_row_ids(table)
            col = table.column(name).combine_chunks()
            dense = None
            if isinstance(col.type, pa.ExtensionType):  # datasets Array2D / Array3D: one fixed shape
                dense = col.to_numpy(zero_copy_only=False)
            for i in range(table.num_rows):
                row, rid = start + i, None if ids is None else ids[i]
                try:
                    if dense is not None:
                        item = dense[i]
                    elif pa.types.is_struct(col.type):  # datasets Image: {bytes, path}
                        value = col[i].as_py()
                        if value is None:
                            raise ValueError("the value is null")
                        if value.get("bytes") is not None:
                            item = Image.open(io.BytesIO(value["bytes"]))
                        elif value.get("path"):
                            item = Image.open(value["path"])
                        else:
                            raise ValueError("neither bytes nor a path")
                        if forced_mode and item.mode != forced_mode:  # datasets.Image(mode=...) converts too
                            item = item.convert(forced_mode)
                    else:
                        item = list_row_to_array(col, i)
                        _array_layout(item.shape)
                except Exception as exc:
                    raise InvalidInputError(
                        f"image column {name!r}: could not read the image at {where(row, rid)} "
                        f"({type(exc).__name__}: {exc}). Fix: repair or drop that row."
                    ) from exc
                yield row, rid, item

    @staticmethod
    def _geometry(item: Any) -> tuple[int, int, int]:
        """``(height, width, out_channels)`` without decoding pixels."""
        if isinstance(item, np.ndarray):
            layout, c = _array_layout(item.shape)
            h, w = (item.shape[1:] if layout == "chw" else item.shape[:2])
            return int(h), int(w), _out_channels(c)
        w, h = item.size
        return int(h), int(w), 1 if item.mode in _GREY_MODES else 3

    def _to_float(self, item: Any, channels: int) -> np.ndarray:
        """``(c, h, w)`` float32 in [0, 1] with ``channels`` channels, before resizing."""
        if isinstance(item, np.ndarray):
            layout, c = _array_layout(item.shape)
            arr = item if layout == "hw" else (item.transpose(1, 2, 0) if layout == "chw" else item)
            if arr.dtype == bool:
                arr = arr.astype(np.float32)
            elif arr.dtype == np.uint8:
                arr = arr.astype(np.float32) / 255.0
            elif arr.dtype == np.uint16:
                arr = arr.astype(np.float32) / 65535.0
            else:
                arr = arr.astype(np.float32) / np.float32(self.value_scale_)
            if arr.ndim == 2:
                arr = arr[None]
            else:
                arr = arr.transpose(2, 0, 1)
                arr = arr[:1] if c <= 2 else arr[:3]  # drop alpha
        else:
            item.load()
            mode = item.mode
            if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
                arr = np.asarray(item, dtype=np.float32)[None] / 65535.0
            elif mode == "I":
                arr = np.asarray(item, dtype=np.float32)[None] / 65535.0
            elif mode == "F":
                arr = np.asarray(item, dtype=np.float32)[None]
            elif mode in _GREY_MODES:
                arr = np.asarray(item.convert("L"), dtype=np.float32)[None] / 255.0
            else:
                arr = np.asarray(item.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255.0
        if arr.shape[0] == 3 and channels == 1:  # colour image, grey featurizer (fitted on grey data)
            arr = np.tensordot(np.array([0.299, 0.587, 0.114], dtype=np.float32), arr, axes=1)[None]
        elif arr.shape[0] != channels:
            arr = np.repeat(arr, channels, axis=0)  # grey → RGB
        return arr

    def _resize(self, arr: np.ndarray) -> np.ndarray:
        from PIL import Image

        h, w = self.size_
        if arr.shape[1:] == (h, w):
            return arr
        return np.stack([
            np.asarray(Image.fromarray(np.ascontiguousarray(ch)).resize((w, h), Image.Resampling.BILINEAR))
            for ch in arr
        ])

    def _decode(self, row: int, rid: Any, item: Any) -> np.ndarray:
        """One image as ``(channels_, h, w)`` float32 in [0, 1] at the output size, or an error naming its row."""
        try:
            return self._resize(self._to_float(item, self.channels_))
        except Exception as exc:
            shape = item.shape if isinstance(item, np.ndarray) else f"{item.size} mode {item.mode}"
            raise InvalidInputError(
                f"image column {self.columns[0]!r}: could not decode or resize the image at "
                f"{where(row, rid)} (found {shape}; target {self.channels_}x{self.size_[0]}x{self.size_[1]}; "
                f"{type(exc).__name__}: {exc}). Fix: repair or drop that row."
            ) from exc

    def _fill(self, ds: datasets.Dataset, batch_size: int) -> np.ndarray:
        out = np.empty((ds.num_rows, self.channels_, *self.size_), dtype=np.float32)
        for row, rid, item in self._iter_raw(ds, batch_size):
            out[row] = self._decode(row, rid, item)
        return out

    # -- on disk ----------------------------------------------------------------------------------

    def _is_eight_bit(self, item: Any) -> bool:
        """Whether ``item``'s float value is exactly ``uint8 pixel / 255`` at the output size (no resizing,
        no colour-to-grey mix), so the store can keep the raw pixels."""
        h, w, c = self._geometry(item)
        if (h, w) != tuple(self.size_) or (c == 3 and self.channels_ == 1):
            return False
        if isinstance(item, np.ndarray):
            return item.dtype == np.uint8
        return item.mode not in _WIDE_MODES

    def _on_disk(self, n_rows: int) -> bool:
        """``config.on_disk``, with ``"auto"`` resolved by the float32 matrix's size."""
        choice = getattr(self.config, "on_disk", "auto")  # a featurizer pickled before the option: "auto"
        if choice == "auto":
            limit = getattr(self.config, "on_disk_above", ON_DISK_ABOVE_BYTES)
            nbytes = n_rows * self.channels_ * self.size_[0] * self.size_[1] * 4
            choice = nbytes > limit
            if choice:
                logger.info("image features of %d rows (%.0f MB as float32) exceed on_disk_above (%.0f MB): "
                            "written to disk", n_rows, nbytes / 2**20, limit / 2**20)
        return bool(choice)

    def _write_store(self, ds: datasets.Dataset, batch_size: int, store_dir: str | os.PathLike | None, *,
                     eight_bit: bool, fit: bool) -> FeatureStore:
        """Decode every image in blocks of ``batch_size`` rows into a ``FeatureStore``.

        ``fit``: also learn the per-channel statistics, from the same blocks (and so the same
        float64 sums) as ``fit_transform`` in memory.
        """
        raw_dtype = "uint8" if eight_bit else "float32"
        writer = FeatureStoreWriter(store_dir, (self.channels_, *self.size_), raw_dtype)
        stats = Welford(self.channels_)
        block = np.empty((min(batch_size, ds.num_rows), self.channels_, *self.size_), dtype=np.float32)
        filled = 0

        def flush(first_row: int) -> None:
            part = block[:filled]
            if fit:
                stats.update(part.transpose(0, 2, 3, 1).reshape(-1, self.channels_).astype(np.float64))
            finite = np.isfinite(part.reshape(filled, -1)).all(axis=1)
            if not finite.all():
                bad = first_row + int(np.flatnonzero(~finite)[0])
                raise InvalidInputError(
                    f"image column {self.columns[0]!r}: the image at row {bad} has NaN or infinite values. "
                    "Fix: repair or drop that row.")
            if eight_bit:
                pixels = np.rint(part * 255.0).astype(np.uint8)
                if not np.array_equal(pixels.astype(np.float32) / 255.0, part):
                    raise InvalidInputError(f"image column {self.columns[0]!r}: rows {first_row}.."
                                            f"{first_row + filled - 1} are not 8-bit pixels; cannot store them as uint8.")
                writer.write(pixels)
            else:
                writer.write(part)

        try:
            for row, rid, item in self._iter_raw(ds, batch_size):
                block[filled] = self._decode(row, rid, item)
                filled += 1
                if filled == len(block):
                    flush(row - filled + 1)
                    filled = 0
            if filled:
                flush(ds.num_rows - filled)
            if fit:
                self.mean_ = stats.mean
                self.scale_ = safe_scale(stats.std, stats.mean)
            return writer.finish(self.mean_, self.scale_)
        except BaseException:
            writer.abort()
            raise

    # -- public -----------------------------------------------------------------------------------

    def fit(self, ds: datasets.Dataset, *, batch_size: int = 256) -> ImageFeaturizer:
        """Learn the output size, channel count, value scale and per-channel statistics."""
        self.fit_transform(ds, batch_size=batch_size)
        return self

    def fit_transform(self, ds: datasets.Dataset, *, batch_size: int = 256,
                      store_dir: str | os.PathLike | None = None) -> np.ndarray | FeatureStore:
        """Fit and return the features ``(n, c, h, w)`` float32 (two passes over the column).

        A ``FeatureStore`` instead of an array when
        ``config.on_disk`` says so (``"auto"``: by the matrix's size), written into ``store_dir``
        (default a temporary folder removed with the store).
        """
        sizes: Counter[tuple[int, int]] = Counter()
        channels = 1
        int_max, float_max, has_int, has_float = 0.0, 0.0, False, False
        narrow = True  # every image 8-bit (uint8 arrays, PIL modes of 8 bits per channel)
        for row, rid, item in self._iter_raw(ds, batch_size):
            try:
                h, w, c = self._geometry(item)
            except Exception as exc:
                raise InvalidInputError(
                    f"image column {self.columns[0]!r}: unusable image at {where(row, rid)} "
                    f"({type(exc).__name__}: {exc}). Fix: repair or drop that row."
                ) from exc
            if not isinstance(item, np.ndarray):
                item.close()  # only the header was read; pass 2 reopens it
            sizes[(h, w)] += 1
            channels = max(channels, c)
            narrow = narrow and (item.dtype == np.uint8 if isinstance(item, np.ndarray) else item.mode not in _WIDE_MODES)
            if isinstance(item, np.ndarray) and item.dtype not in (np.uint8, np.uint16, bool) and item.size:
                peak = float(np.max(item))
                if np.issubdtype(item.dtype, np.integer):
                    has_int, int_max = True, max(int_max, peak)
                else:
                    has_float, float_max = True, max(float_max, peak)
        if self.config.image_size is not None:
            self.size_ = tuple(int(v) for v in self.config.image_size)
        elif len(sizes) == 1:
            self.size_ = next(iter(sizes))
        else:
            self.size_ = DEFAULT_IMAGE_SIZE
            logger.info("Images have %d different sizes; resizing all to %s.", len(sizes), self.size_)
        self.channels_ = channels
        scale = 1.0
        if has_int:
            scale = 255.0 if int_max <= 255 else 65535.0 if int_max <= 65535 else int_max
        if has_float and float_max > 1.0:
            scale = max(scale, float_max)
        self.value_scale_ = float(scale)
        if self._on_disk(ds.num_rows):
            eight_bit = narrow and set(sizes) == {tuple(self.size_)}  # grey into RGB only repeats 8-bit values
            store = self._write_store(ds, batch_size, store_dir, eight_bit=eight_bit, fit=True)
            self.n_features_out_ = int(np.prod(store.shape[1:]))
            return store
        out = self._fill(ds, batch_size)
        stats = Welford(channels)
        for start in range(0, len(out), batch_size):
            block = out[start:start + batch_size]
            stats.update(block.transpose(0, 2, 3, 1).reshape(-1, channels).astype(np.float64))
        self.mean_ = stats.mean
        self.scale_ = safe_scale(stats.std, stats.mean)
        self._normalize(out)
        self.n_features_out_ = int(np.prod(out.shape[1:]))
        return out

    def _normalize(self, out: np.ndarray) -> None:
        for c in range(self.channels_):
            out[:, c] -= np.float32(self.mean_[c])
            out[:, c] /= np.float32(self.scale_[c])

    def transform(self, ds: datasets.Dataset, *, batch_size: int = 256,
                  store_dir: str | os.PathLike | None = None) -> np.ndarray | FeatureStore:
        """Features ``(n, c, h, w)`` float32 with the fitted size, channels and statistics.

        On disk (a ``FeatureStore`` in ``store_dir``) when
        ``config.on_disk`` says so, as in ``fit_transform``.
        """
        if self._on_disk(ds.num_rows):
            eight_bit = all(self._is_eight_bit(item) for _, _, item in self._iter_raw(ds, batch_size))
            return self._write_store(ds, batch_size, store_dir, eight_bit=eight_bit, fit=False)
        out = self._fill(ds, batch_size)
        self._normalize(out)
        return out

"""Label values ↔ int codes ``0..K-1``: the encoding every step shares (ClassLabel names kept)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from influence_stage.data.arrow import ROW_ID, arrow_column, preview, where
from influence_stage.data.columns import check_label_values, missing_mask
from influence_stage.errors import (
    InvalidInputError,
    InvalidTypeError,
)


@dataclass(frozen=True, eq=False)
class LabelEncoding:
    """Label values ↔ int codes ``0..K-1``, plus the codes of the dataset it was built on.

    Attributes
    ----------
    label_column : str
        The label column the codes come from.
    names : tuple of str, length K
        Class names: a ``ClassLabel``'s own names, else the sorted unique label values as strings.
    values : tuple, length K
        The original label value of each code (``ClassLabel``: the stored ints ``0..K-1``).
    value_dtype : str
        numpy dtype of decoded values (``"object"`` for strings).
    source : {"class_label", "integer", "float", "bool", "string"}
        What the label column held.
    codes : numpy.ndarray, shape ``(n,)`` int64
        Codes of the dataset's rows, in dataset order.
    """

    label_column: str
    names: tuple[str, ...]
    values: tuple[Any, ...]
    value_dtype: str
    source: Literal["class_label", "integer", "float", "bool", "string"]
    codes: np.ndarray

    @property
    def n_classes(self) -> int:
        """Number of classes ``K``."""
        return len(self.names)

    def encode(self, labels: Any, *, row_ids: Sequence[Any] | None = None) -> np.ndarray:
        """Codes ``(n,) int64`` of label values with this (fitted) encoding.

        Parameters
        ----------
        labels : array-like or pyarrow.Array, shape ``(n,)``
            Label values of the same type as the fitted ones (``ClassLabel``: stored ints or names).
        row_ids : sequence, optional
            Row ids named in error messages.

        Raises
        ------
        InvalidInputError
            A label that is not one of the fitted classes (the message names it and its row), or a
            missing label.
        """
        arr = labels.combine_chunks() if isinstance(labels, pa.ChunkedArray) else labels
        if not isinstance(arr, pa.Array):
            arr = pa.array(np.asarray(arr).tolist())
        missing_np = missing_mask(arr, self.source == "class_label")
        if missing_np.any():
            row = int(np.flatnonzero(missing_np)[0])
            rid = None if row_ids is None else row_ids[row]
            raise InvalidInputError(
                f"label column {self.label_column!r} has a missing label at {where(row, rid)}; "
                "expected a label on every row. Fix: drop or label those rows first."
            )
        if self.source == "class_label" and pa.types.is_integer(arr.type):
            value_set = pa.array(list(range(self.n_classes)), type=arr.type)
        elif self.source == "class_label" or self.source == "string":
            if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
                raise InvalidTypeError(
                    f"labels must be strings to match the fitted classes {preview(self.names)}; found {arr.type}."
                )
            value_set = pa.array(list(self.names if self.source == "class_label" else self.values), type=arr.type)
        else:
            try:
                value_set = pa.array(list(self.values)).cast(arr.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                raise InvalidTypeError(
                    f"labels of type {arr.type} cannot be matched to the fitted {self.source} labels "
                    f"{preview(self.values)}. Fix: give labels of the fitted type."
                ) from exc
        idx = pc.index_in(arr, value_set=value_set)
        if idx.null_count:
            row = int(np.flatnonzero(idx.is_null().to_numpy(zero_copy_only=False))[0])
            rid = None if row_ids is None else row_ids[row]
            raise InvalidInputError(
                f"unknown label {arr[row].as_py()!r} at {where(row, rid)} ({idx.null_count} row(s) in all); "
                f"expected one of the {self.n_classes} fitted classes {preview(self.names)}. "
                "Fix: drop those rows or fit the encoding on data that includes that class."
            )
        return idx.to_numpy(zero_copy_only=False).astype(np.int64)

    def decode(self, codes: Any) -> np.ndarray:
        """Original label values of codes.

        Parameters
        ----------
        codes : array-like of int, shape ``(m,)``
            Values in ``0..K-1``.

        Returns
        -------
        numpy.ndarray, shape ``(m,)``
            dtype ``value_dtype`` (the label column's own: ints for ClassLabel / int labels, Python
            ``str`` objects for string labels).
        """
        codes = np.asarray(codes)
        if codes.size and not np.issubdtype(codes.dtype, np.integer):
            raise InvalidTypeError(f"codes must be integers in 0..{self.n_classes - 1}; found dtype {codes.dtype}.")
        bad = (codes < 0) | (codes >= self.n_classes)
        if bad.any():
            raise InvalidInputError(
                f"codes must be integers in 0..{self.n_classes - 1}; found {codes[bad].ravel()[0].item()!r}. "
                "Fix: pass class codes of this encoding."
            )
        table = np.empty(self.n_classes, dtype=self.value_dtype)
        table[:] = list(self.values)
        return table[codes.astype(np.int64)]


def encode_labels(ds: datasets.Dataset, label_column: str, *, fitted: LabelEncoding | None = None) -> LabelEncoding:
    """Encode the label column as int codes ``0..K-1``.

    ``ClassLabel`` columns keep their names and stored codes. Integer, bool and integral-float
    labels get the sorted unique values as classes (names are their string forms; decoding returns
    the original dtype). String labels get the sorted unique strings.

    Parameters
    ----------
    ds : datasets.Dataset
        ``n`` rows.
    label_column : str
        Must exist and have no missing labels.
    fitted : LabelEncoding, optional
        Reuse these classes (for new data); a label outside them raises an error naming the label
        and its row.

    Returns
    -------
    LabelEncoding
        Classes plus ``codes`` ``(n,) int64`` of ``ds``'s rows.
    """
    col = check_label_values(ds, label_column)
    ids = arrow_column(ds, ROW_ID).to_numpy(zero_copy_only=False) if ROW_ID in ds.column_names else None
    if fitted is not None:
        labels: Any = col
        feature = ds.features[label_column]
        if fitted.source == "class_label" and isinstance(feature, datasets.ClassLabel) \
                and list(feature.names) != list(fitted.names):
            labels = pa.array(np.asarray(feature.names, dtype=object)[col.to_numpy(zero_copy_only=False)].tolist())
        codes = fitted.encode(labels, row_ids=ids)
        return dataclasses.replace(fitted, label_column=label_column, codes=codes)

    feature = ds.features[label_column]
    if isinstance(feature, datasets.ClassLabel):
        codes = col.to_numpy(zero_copy_only=False).astype(np.int64)
        k = len(feature.names)
        bad = np.flatnonzero((codes < 0) | (codes >= k))
        if bad.size:
            row = int(bad[0])
            raise InvalidInputError(
                f"label column {label_column!r} is a ClassLabel with {k} names but "
                f"{where(row, None if ids is None else ids[row])} holds {int(codes[row])}. Fix: repair the codes."
            )
        return LabelEncoding(label_column, tuple(str(n) for n in feature.names), tuple(range(k)), "int64",
                             "class_label", codes)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        source, value_dtype = "string", "object"
    elif pa.types.is_boolean(col.type):
        source, value_dtype = "bool", "bool"
    elif pa.types.is_integer(col.type):
        source, value_dtype = "integer", np.dtype(col.type.to_pandas_dtype()).name
    elif pa.types.is_floating(col.type):
        source, value_dtype = "float", np.dtype(col.type.to_pandas_dtype()).name
        values_np = col.to_numpy(zero_copy_only=False)
        frac = np.flatnonzero(values_np != np.round(values_np))
        if frac.size:
            row = int(frac[0])
            raise InvalidInputError(
                f"label column {label_column!r} holds non-integral numbers (e.g. {float(values_np[row])!r} at "
                f"{where(row, None if ids is None else ids[row])}); expected class labels. "
                "Fix: this stage cleans classification data; bin or encode the target first."
            )
    else:
        raise InvalidTypeError(
            f"label column {label_column!r} has dtype {feature!r}; expected ClassLabel, integer, bool "
            "or string labels. Fix: convert the labels."
        )
    uniques = pc.unique(col)
    values = sorted(uniques.to_pylist())
    if source == "float":
        names = tuple(f"{v:g}" for v in values)
    else:
        names = tuple(str(v) for v in values)
    enc = LabelEncoding(label_column, names, tuple(values), value_dtype, source,  # type: ignore[arg-type]
                        np.empty(0, dtype=np.int64))
    return dataclasses.replace(enc, codes=enc.encode(col, row_ids=ids))

"""Label values ↔ int codes ``0..K-1``: the encoding every step shares (ClassLabel names kept)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from influence_stage.data.arrow import ROW_ID, arrow_column, in_memory_dataset, preview, where
from influence_stage.data.columns import check_label_values, missing_mask
from influence_stage.data.spelling import (  # noqa: F401  (re-exported: the label API in one place)
    LABEL_NORMALIZATIONS,
    check_label_spellings,
    check_normalization,
    label_collisions,
    normalize_label,
)
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
    normalization : tuple of str
        The label normalisations applied (``LABEL_NORMALIZATIONS``, in that order), empty when
        none: what a summary or manifest records.
    merged : tuple of (str, tuple of str)
        For each class whose rows held several raw spellings that the normalisation merged: the
        class value and those spellings, sorted. Empty when nothing was merged.
    """

    label_column: str
    names: tuple[str, ...]
    values: tuple[Any, ...]
    value_dtype: str
    source: Literal["class_label", "integer", "float", "bool", "string"]
    codes: np.ndarray
    normalization: tuple[str, ...] = ()
    merged: tuple[tuple[str, tuple[str, ...]], ...] = ()

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


def normalize_label_column(ds: datasets.Dataset, label_column: str,
                           normalize: Iterable[str] | None = ()) -> tuple[datasets.Dataset, LabelEncoding]:
    """Refuse or merge string labels that collide under normalisation; then encode the labels.

    The stage's one call for the labels of a prepared dataset: with ``normalize`` empty, labels
    that differ only in surrounding whitespace, case or Unicode normal form (NFC vs NFD) are refused;
    with normalisations listed, those are applied to the label column (the dataset then holds the
    normalised values, so the published data and the gates see one spelling per class) and any
    collision left under a normalisation not listed is refused. Non-string labels pass unchanged.

    Parameters
    ----------
    ds : datasets.Dataset
        ``n`` rows.
    label_column : str
    normalize : iterable of str, optional
        Any of ``LABEL_NORMALIZATIONS`` (``CleanConfig.normalize_labels``).

    Returns
    -------
    dataset : datasets.Dataset
        ``ds`` itself when no label changed, else a copy with the label column normalised.
    encoding : LabelEncoding
        As ``encode_labels`` gives, with ``normalization`` and ``merged`` filled in.

    Raises
    ------
    InvalidInputError
        Colliding labels, in one line naming them (``'cat' and 'cat '``) and the option that merges them.
    """
    steps = check_normalization(normalize)
    col = check_label_values(ds, label_column)
    if not steps or not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        return ds, encode_labels(ds, label_column)
    uniques = pc.unique(col).to_pylist()
    normalized = [normalize_label(v, steps) for v in uniques]
    check_label_spellings(uniques, label_column, steps)  # no collision left under a normalisation not asked for
    if normalized == uniques:
        enc = encode_labels(ds, label_column)
        return ds, dataclasses.replace(enc, normalization=steps)
    groups: dict[str, list[str]] = {}
    for raw, norm in zip(uniques, normalized):
        groups.setdefault(norm, []).append(raw)
    merged = tuple((norm, tuple(sorted(raws))) for norm, raws in sorted(groups.items()) if len(raws) > 1)
    # one take over the K distinct values: the rows are never visited in Python
    new = pc.take(pa.array(normalized, type=col.type), pc.index_in(col, value_set=pa.array(uniques, type=col.type)))
    table = ds.with_format("arrow")[:] if getattr(ds, "_indices", None) is not None else ds.data.table
    table = table.set_column(table.column_names.index(label_column), label_column, new)
    out = in_memory_dataset(table, ds.features, like=ds)
    enc = encode_labels(out, label_column)
    return out, dataclasses.replace(enc, normalization=steps, merged=merged)


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
        if fitted.normalization and (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
            # new data is read with the fitted normalisation: one mapping over its distinct values
            uniques = pc.unique(col)
            mapped = pa.array([normalize_label(v, fitted.normalization) for v in uniques.to_pylist()], type=col.type)
            labels = pc.take(mapped, pc.index_in(col, value_set=uniques))
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
    if source == "string":
        check_label_spellings(values, label_column)
    if source == "float":
        names = tuple(f"{v:g}" for v in values)
    else:
        names = tuple(str(v) for v in values)
    enc = LabelEncoding(label_column, names, tuple(values), value_dtype, source,  # type: ignore[arg-type]
                        np.empty(0, dtype=np.int64))
    return dataclasses.replace(enc, codes=enc.encode(col, row_ids=ids))

"""What the estimators take: the input forms of ``fit`` / ``transform``, told apart once.

``InfluenceCleaner`` takes a ``datasets.Dataset``, a ``DatasetDict``, a ``pandas.DataFrame``, a local
path, a tuple ``(X, y)`` or an array ``X`` with ``y``. ``check_input`` says which form it is and
whether the user's data carried its own ``row_id`` column; loading a Dataset from a path or a
DatasetDict is ``influence_stage.data.sources.load_source``'s job, done there and only there.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import datasets
import numpy as np
import pandas as pd
from scipy import sparse

from influence_stage.data.arrow import ROW_ID, row_id_was_added
from influence_stage.data.sources import data_source, load_source
from influence_stage.errors import InvalidInputError, InvalidTypeError

InputKind = Literal["dataset", "frame", "arrays"]
"""``"dataset"``: a Dataset (a DatasetDict's split or a local path, loaded); ``"frame"``: a
DataFrame with its label column; ``"arrays"``: ``(X, y)`` numpy arrays."""


def check_input(dataset: Any, y: Any, method: str, *, label_column: str, split: str | None,
                estimator: str = "InfluenceCleaner") -> tuple[InputKind, Any, bool]:
    """The source as the pipeline takes it: ``(kind, source, had_row_id)``.

    Parameters
    ----------
    dataset : Dataset, DatasetDict, DataFrame, path, (X, y) or array X
        What the user passed to ``method``.
    y : array-like of shape (n_samples,) or None
        The labels of an array ``X``, or of a DataFrame of features (scikit-learn's ``fit(X, y)``:
        the frame is then numeric features only, taken as ``X``).
    method : str
        The calling method's name, for messages.
    label_column, split : str, str or None
        The estimator's parameters: the label column of a Dataset / DataFrame, the split of a
        multi-split source.
    estimator : str
        The estimator's name, for messages.

    Returns
    -------
    kind : {"dataset", "frame", "arrays"}
    source : Dataset, DataFrame or tuple (X, y)
        A Dataset for every Dataset-like input (a DatasetDict's split and a local path are loaded
        by ``load_source``, so a file is read by its content now); the frame itself; or ``(X, y)``
        checked numpy arrays, ``X`` ``(n_samples, n_features)`` (or images ``(n, h, w[, c])``).
    had_row_id : bool
        Whether the user's data had a ``row_id`` column (one added by ``load_source`` is not
        returned by ``transform``).
    """
    if isinstance(dataset, pd.DataFrame) and y is not None:  # a frame of features, its labels apart
        if label_column in dataset.columns:
            raise InvalidInputError(
                f"{method}(X, y) with a DataFrame X takes its numeric features only, the labels in y; found the "
                f"label column {label_column!r} in X too. Fix: {method}(df) (the labels are its column "
                f"{label_column!r}) or {method}(df.drop(columns={label_column!r}), y)."
            )
        return "arrays", (check_array_X(dataset), check_array_y(y)), False
    if y is not None and isinstance(dataset, (datasets.Dataset, datasets.DatasetDict, str, os.PathLike, tuple)):
        raise InvalidInputError(
            f"{method}(X, y) takes y only with an array or a DataFrame of features X; found y next to a "
            f"{type(dataset).__name__}, whose labels are its column {label_column!r}. Fix: {method}(data) without "
            f"y (or {method}(X, y) with X a numeric array)."
        )
    if isinstance(dataset, datasets.Dataset):
        return "dataset", dataset, ROW_ID in dataset.column_names
    if isinstance(dataset, pd.DataFrame):
        return "frame", dataset, ROW_ID in dataset.columns
    if isinstance(dataset, (datasets.DatasetDict, str, os.PathLike)):
        # load_source picks the split or reads the path (by content: a file changed since fit is seen);
        # a row_id it had to add carries its mark, so the user's own row_id is told apart.
        ds = load_source(dataset, split=split, label_column=label_column)
        return "dataset", ds, not row_id_was_added(ds)
    entry = data_source(dataset) if y is None else None
    if entry is not None and entry.name != "arrays":  # another source registered in DATA_SOURCE_REGISTRY
        ds = load_source(dataset, split=split, label_column=label_column)
        return "dataset", ds, not row_id_was_added(ds)
    if isinstance(dataset, tuple) and len(dataset) == 2:
        dataset, y = dataset
    if sparse.issparse(dataset) or (dataset is not None and not isinstance(dataset, (str, bytes, dict)) and (
            y is not None or hasattr(dataset, "__array__") or hasattr(dataset, "shape")
            or isinstance(dataset, list))):
        if y is None:
            raise InvalidInputError(
                f"{estimator} requires y to be passed, but the target y is None: {method} got an array X "
                f"without labels. Fix: {method}(X, y) or {method}((X, y)) (or a Dataset / DataFrame with a "
                f"{label_column!r} column)."
            )
        return "arrays", (check_array_X(dataset), check_array_y(y)), False
    raise InvalidTypeError(
        f"{method} expects a datasets.Dataset, a datasets.DatasetDict (with split=), a pandas.DataFrame, a local "
        f"parquet / csv / json file or folder, or arrays as {method}(X, y) or {method}((X, y)); found "
        f"{type(dataset).__name__}{' without y' if isinstance(dataset, np.ndarray) else ''}. Fix: pass one of "
        "those (the labels of an array X go in y)."
    )


def check_array_X(X: Any) -> np.ndarray:
    """A numeric array ``X`` (2-D, or images ``(n, h, w[, c])``), with scikit-learn's messages.

    A 2-D ``X`` (a numpy array or a DataFrame of features) may hold NaN: a missing cell, which the
    tabular featurizer fills with its column's median and the ``null`` issue type reports. Infinity,
    a column with no value at all, and NaN in images are errors.
    """
    from sklearn.utils import check_array

    if hasattr(X, "detach"):  # a torch tensor
        X = X.detach().cpu().numpy()
    ndim = 2 if sparse.issparse(X) else X.ndim if hasattr(X, "ndim") else np.asarray(X).ndim
    try:
        arr = check_array(X, accept_sparse=False, dtype="numeric", ensure_2d=ndim <= 2, allow_nd=True,
                          ensure_all_finite="allow-nan" if ndim == 2 else True, input_name="X")
    except TypeError as exc:  # sparse input
        raise InvalidTypeError(f"{exc} Fix: pass X.toarray(), or a Dataset / DataFrame.") from exc
    except ValueError as exc:  # complex, empty, NaN / inf, strings, 1-D
        raise InvalidInputError(str(exc)) from exc
    if arr.ndim == 2 and arr.dtype.kind == "f":
        empty = np.flatnonzero(np.isnan(arr).all(axis=0))
        if empty.size:
            names = list(X.columns) if isinstance(X, pd.DataFrame) else None
            which = repr(str(names[empty[0]])) if names is not None else str(int(empty[0]))
            raise InvalidInputError(
                f"X column {which} has no value (every cell is NaN; {empty.size} such column(s)); a missing cell is "
                "filled with its column's median, which needs some values. Fix: drop that column."
            )
    return arr


def check_array_y(y: Any) -> np.ndarray:
    """``y`` as a 1-D numpy array (labels of any type: ints, strings...)."""
    y = np.asarray(y.detach().cpu().numpy() if hasattr(y, "detach") else y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()
    return y

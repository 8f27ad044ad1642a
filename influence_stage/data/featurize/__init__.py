"""Featurizing: tabular | image | text columns → ``X`` float32, with a reusable fitted featurizer."""

from __future__ import annotations


import os

import datasets
import numpy as np

from influence_stage._checks import check_features, check_positive_int
from influence_stage.data.columns import ColumnRoles
from influence_stage.data.feature_store import FeatureStore
from influence_stage.data.featurize.config import FeaturizeConfig
from influence_stage.data.featurize.image import ImageFeaturizer
from influence_stage.data.featurize.tabular import TabularFeaturizer
from influence_stage.data.featurize.text import TextFeaturizer
from influence_stage.errors import (
    InvalidInputError,
    InvalidTypeError,
)



Featurizer = TabularFeaturizer | ImageFeaturizer | TextFeaturizer


_FEATURIZERS: dict[str, type] = {"tabular": TabularFeaturizer, "image": ImageFeaturizer, "text": TextFeaturizer}


def featurize(
    ds: datasets.Dataset,
    roles: ColumnRoles,
    *,
    fitted: Featurizer | None = None,
    batch_size: int = 1024,
    config: FeaturizeConfig | None = None,
    store_dir: str | os.PathLike | None = None,
) -> tuple[np.ndarray | FeatureStore, Featurizer]:
    """Turn the feature columns into a float32 array; fit a featurizer or reuse a fitted one.

    Deterministic: the same data and config give the same array. Rows are read in batches of
    ``batch_size``; memory is bounded by the output (and, for TF-IDF, its sparse matrix). Image
    features go to disk instead (a ``FeatureStore``) when
    the featurizer's ``config.on_disk`` says so; memory then does not grow with the matrix.

    Parameters
    ----------
    ds : datasets.Dataset
        ``n`` rows.
    roles : ColumnRoles
        From ``resolve_columns``.
    fitted : TabularFeaturizer, ImageFeaturizer or TextFeaturizer, optional
        A featurizer fitted on other data (e.g. the training split); it must be of ``roles.kind``
        and use the same columns. Not refitted.
    batch_size : int, default 1024
        Rows read per batch.
    config : FeaturizeConfig, optional
        Settings for a new featurizer; not allowed together with ``fitted`` (it carries its own).
    store_dir : path, optional
        Folder of on-disk image features (see ``FeaturizeConfig.on_disk``); default a temporary
        folder, removed when the returned store is garbage-collected.

    Returns
    -------
    X : numpy.ndarray, float32, or FeatureStore
        ``(n, d)`` for tabular and text, ``(n, c, h, w)`` for images; rows in dataset order. A
        ``FeatureStore`` of the same shape when image features are on disk.
    featurizer : TabularFeaturizer, ImageFeaturizer or TextFeaturizer
        The fitted featurizer.
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    if not isinstance(roles, ColumnRoles):
        raise InvalidTypeError(f"roles must be a ColumnRoles (from resolve_columns); found {type(roles).__name__}.")
    for c in roles.feature_columns:
        if c not in ds.column_names:
            raise InvalidInputError(f"feature column {c!r} not found; available columns: {ds.column_names}.")
    if ds.num_rows == 0:
        raise InvalidInputError("the dataset has 0 rows; nothing to featurize.")
    on_disk = getattr(config or getattr(fitted, "config", None) or FeaturizeConfig(), "on_disk", "auto")
    if on_disk is True and roles.kind != "image":
        raise InvalidInputError(
            f"featurize.on_disk=True keeps image features on disk; the feature columns "
            f"{list(roles.feature_columns)[:5]} are {roles.kind}, whose features are always in memory. "
            "Fix: set on_disk to 'auto' or False, or choose an image column."
        )
    disk = {"store_dir": store_dir} if roles.kind == "image" else {}
    if fitted is None:
        featurizer = _FEATURIZERS[roles.kind](roles.feature_columns, config)
        X = featurizer.fit_transform(ds, batch_size=batch_size, **disk)
    else:
        if config is not None:
            raise InvalidInputError("pass either fitted= or config=, not both: a fitted featurizer keeps its config.")
        if fitted.kind != roles.kind or tuple(fitted.columns) != tuple(roles.feature_columns):
            raise InvalidInputError(
                f"the fitted featurizer is {fitted.kind} on {list(fitted.columns)}; the roles ask for "
                f"{roles.kind} on {list(roles.feature_columns)}. Fix: resolve the same columns as at fit time."
            )
        featurizer = fitted
        X = featurizer.transform(ds, batch_size=batch_size, **disk)
    if isinstance(X, FeatureStore):  # its values were checked block by block as they were written
        return X, featurizer
    return check_features(X, name="featurized X"), featurizer

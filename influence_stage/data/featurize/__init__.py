"""Featurizing: tabular | image | text columns → ``X`` float32, with a reusable fitted featurizer.

Each featurizer is one class in ``FEATURIZER_REGISTRY``, registered by name: ``tabular``, ``image``
and ``text``, the defaults for the column kind ``resolve_columns`` found, and any class registered
later (``docs/extending.md`` registers one), chosen by name with ``featurize(..., featurizer=name)``.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import datasets
import numpy as np

from influence_stage._checks import check_features, check_positive_int
from influence_stage.data.columns import ColumnRoles
from influence_stage.data.feature_store import FeatureStore
from influence_stage.data.featurize.config import FeaturizeConfig
from influence_stage.data.featurize.image import ImageFeaturizer
from influence_stage.data.featurize.tabular import TabularFeaturizer
from influence_stage.data.featurize.text import TextFeaturizer
from influence_stage.errors import InvalidInputError, InvalidTypeError
from influence_stage.registry import Registry

Featurizer = TabularFeaturizer | ImageFeaturizer | TextFeaturizer


class BaseFeaturizer(ABC):
    """One way to turn feature columns of one kind into ``X`` float32; registered in ``FEATURIZER_REGISTRY``.

    Built with ``(columns, config)`` (the feature columns, a ``FeaturizeConfig`` or None), it learns
    what it needs in ``fit_transform`` and reuses it in ``transform`` (on other rows with the same
    columns). The built-in ``TabularFeaturizer``, ``ImageFeaturizer`` and ``TextFeaturizer`` are
    registered as virtual subclasses.

    Attributes
    ----------
    name : str
        Set by the registry.
    help : str
        One line for the docs.
    kind : {"tabular", "image", "text"}
        The column kind it reads (``influence_stage.data.columns.ColumnRoles.kind``).
    columns : tuple of str
        The feature columns, set by ``__init__``.
    """

    name: ClassVar[str] = ""
    help: ClassVar[str] = ""
    kind: ClassVar[str] = ""

    def __init__(self, columns: Sequence[str], config: FeaturizeConfig | None = None) -> None:
        self.columns = tuple(columns)
        self.config = config or FeaturizeConfig()

    @abstractmethod
    def fit_transform(self, ds: datasets.Dataset, *, batch_size: int = 1024) -> np.ndarray:
        """Learn from ``ds`` and return its features, ``(n, ...)`` float32 in row order."""

    @abstractmethod
    def transform(self, ds: datasets.Dataset, *, batch_size: int = 1024) -> np.ndarray:
        """The features of ``ds`` with what ``fit_transform`` learned, ``(n, ...)`` float32."""


FEATURIZER_REGISTRY: Registry[type] = Registry(
    "featurizer", base=BaseFeaturizer, fix="Fix: pass one of those names, or register a featurizer (docs/extending.md).")
for _name, _cls in (("tabular", TabularFeaturizer), ("image", ImageFeaturizer), ("text", TextFeaturizer)):
    BaseFeaturizer.register(_cls)  # a virtual subclass: the class itself is unchanged
    FEATURIZER_REGISTRY.register(_name)(_cls)
del _name, _cls


def featurizer_class(kind: str, name: str | None = None) -> type:
    """The featurizer class for feature columns of ``kind``: the one registered as ``name``, or the
    default for the kind (the entry named after it).

    Raises
    ------
    InvalidInputError
        An unknown name (the message lists the registered ones), or a featurizer of another column kind.
    """
    cls = FEATURIZER_REGISTRY.get(kind if name is None else name)
    if cls.kind != kind:
        raise InvalidInputError(
            f"featurizer {cls.name!r} reads {cls.kind} columns; the feature columns are {kind}. Fix: choose one of "
            f"the {kind} featurizers: {[n for n, c in FEATURIZER_REGISTRY.items() if c.kind == kind]}."
        )
    return cls


def featurize(
    ds: datasets.Dataset,
    roles: ColumnRoles,
    *,
    fitted: Featurizer | None = None,
    batch_size: int = 1024,
    config: FeaturizeConfig | None = None,
    store_dir: str | os.PathLike | None = None,
    featurizer: str | None = None,
) -> tuple[np.ndarray | FeatureStore, Any]:
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
    featurizer : str, optional
        A name in ``FEATURIZER_REGISTRY`` for a new featurizer; default ``config.featurizer``, else the one
        named after ``roles.kind`` (``"tabular"``, ``"image"``, ``"text"``). It must read columns of ``roles.kind``.

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
        name = featurizer if featurizer is not None else getattr(config, "featurizer", None)
        featurizer = featurizer_class(roles.kind, name)(roles.feature_columns, config)
        X = featurizer.fit_transform(ds, batch_size=batch_size, **disk)
    else:
        if config is not None:
            raise InvalidInputError("pass either fitted= or config=, not both: a fitted featurizer keeps its config.")
        if featurizer is not None:
            raise InvalidInputError("pass either fitted= or featurizer=, not both: a fitted featurizer is used as it is.")
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


__all__ = ["BaseFeaturizer", "FEATURIZER_REGISTRY", "Featurizer", "FeaturizeConfig", "ImageFeaturizer", "TabularFeaturizer",
           "TextFeaturizer", "featurize", "featurizer_class"]

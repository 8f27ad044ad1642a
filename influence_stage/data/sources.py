"""Sources: any supported input (Dataset, DatasetDict, DataFrame, arrays, local files, a hub id) →
a ``datasets.Dataset`` with a stable ``row_id`` column.

Each kind of input is one ``DataSource`` class in ``DATA_SOURCE_REGISTRY`` (``dataset``,
``dataset-dict``, ``dataframe``, ``arrays``, ``saved``, ``folder``, ``file``, ``hub``);
``load_source`` loads with the first that claims the input, and its error for an unsupported input
lists the registered forms. A new kind of input is one class (``docs/extending.md`` registers one).

The data layer, one module per job: ``sources`` (this one: which kind of source it is, and
``load_source``), ``local_files`` (files and folders on disk), ``in_memory`` (a ``DatasetDict``'s
split, a DataFrame, arrays), ``hub`` (a Hugging Face Hub dataset), ``row_id`` (the ``row_id``
column), ``columns`` (which
column is the label, which are features, of what kind), ``labels`` (label values ↔ codes),
``featurize`` (tabular | image | text → ``X`` float32, read in Arrow batches so memory stays bounded
by the output array), ``fingerprint`` (content hashes), ``noise`` (label-noise injection). The way
back, decisions → a cleaned dataset, is ``influence_stage.decisions.apply``.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import datasets
import pandas as pd

from influence_stage.data.columns import check_label_present, label_not_found
from influence_stage.data.hub import load_hub
from influence_stage.data.in_memory import from_arrays, from_pandas, pick_split
from influence_stage.data.local_files import (
    FILE_FORMATS,
    check_local_source,
    is_saved_dataset,
    load_file,
    load_folder,
    load_saved,
    looks_like_path,
    read_local_files,
    source_fingerprint,
)
from influence_stage.data.row_id import ensure_row_id, row_ids
from influence_stage.errors import InvalidInputError, InvalidTypeError
from influence_stage.registry import Registry

logger = logging.getLogger(__name__)



# --------------------------------------------------------------------------------------------------
# the data-source registry
# --------------------------------------------------------------------------------------------------


class DataSource(ABC):
    """One kind of input the stage reads; registered by name in ``DATA_SOURCE_REGISTRY``.

    ``load_source`` asks the registered sources in order: first those whose ``prefix`` starts a
    string source (``"hf:user/name"``), then each source's ``claims``; the first that claims the
    input loads it. ``load_source`` then checks the result (rows, the label column) and adds
    ``row_id``, so ``load`` returns the rows as they are.

    Attributes
    ----------
    name : str
        Set by the registry.
    help : str
        One line for the docs.
    form : str
        How the source is given, for the error that lists the accepted forms.
    prefix : str
        A string ``"<prefix><value>"`` is this source's, whatever else it looks like (empty: none).
    """

    name: ClassVar[str] = ""
    help: ClassVar[str] = ""
    form: ClassVar[str] = ""
    prefix: ClassVar[str] = ""

    @classmethod
    def claims(cls, source: Any) -> bool:
        """Whether ``source`` is one of this source's inputs (beyond a ``prefix``)."""
        return False

    def check(self, source: Any) -> None:
        """Cheap checks before any work (a few ms; nothing read in full); none by default."""

    @abstractmethod
    def load(self, source: Any, *, split: str | None, label_column: str, cache_dir: str | None) -> datasets.Dataset:
        """The rows of ``source`` as a ``datasets.Dataset`` (``split``: the split of a multi-split source)."""


DATA_SOURCE_REGISTRY: Registry[type[DataSource]] = Registry(
    "data source", base=DataSource, fix="Fix: pass one of those forms, or register a DataSource (docs/extending.md).")


def _local_path(source: Any) -> Path | None:
    """``source`` as an existing local path, or None."""
    if not isinstance(source, (str, os.PathLike)):
        return None
    path = Path(os.fspath(source)).expanduser()
    return path if path.exists() else None


@DATA_SOURCE_REGISTRY.register("dataset")
class DatasetSource(DataSource):
    help = "a datasets.Dataset, used as it is"
    form = "datasets.Dataset"

    @classmethod
    def claims(cls, source: Any) -> bool:
        return isinstance(source, datasets.Dataset)

    def load(self, source, *, split, label_column, cache_dir):
        return source


@DATA_SOURCE_REGISTRY.register("dataset-dict")
class DatasetDictSource(DataSource):
    help = "a datasets.DatasetDict: the split named by split=, or its only split"
    form = "datasets.DatasetDict"

    @classmethod
    def claims(cls, source: Any) -> bool:
        return isinstance(source, datasets.DatasetDict)

    def load(self, source, *, split, label_column, cache_dir):
        return pick_split(source, split, "the DatasetDict")


@DATA_SOURCE_REGISTRY.register("dataframe")
class DataFrameSource(DataSource):
    help = "a pandas.DataFrame (object columns of PIL images or numpy arrays allowed)"
    form = "pandas.DataFrame"

    @classmethod
    def claims(cls, source: Any) -> bool:
        return isinstance(source, pd.DataFrame)

    def load(self, source, *, split, label_column, cache_dir):
        if label_column not in [str(c) for c in source.columns]:  # named before a row_id is added
            raise label_not_found(label_column, [str(c) for c in source.columns])
        return from_pandas(source)


@DATA_SOURCE_REGISTRY.register("arrays")
class ArraysSource(DataSource):
    help = "a tuple (X, y): X (n, d) numeric features or (n, h, w[, c]) images, y (n,) labels"
    form = "a tuple (X, y) of arrays"

    @classmethod
    def claims(cls, source: Any) -> bool:
        return isinstance(source, tuple) and len(source) == 2

    def load(self, source, *, split, label_column, cache_dir):
        return from_arrays(source[0], source[1], label_column)


@DATA_SOURCE_REGISTRY.register("saved")
class SavedSource(DataSource):
    help = "a folder written by Dataset.save_to_disk or DatasetDict.save_to_disk"
    form = "a save_to_disk folder"

    @classmethod
    def claims(cls, source: Any) -> bool:
        path = _local_path(source)
        return path is not None and is_saved_dataset(path)

    def load(self, source, *, split, label_column, cache_dir):
        return load_saved(_local_path(source), split)


@DATA_SOURCE_REGISTRY.register("folder")
class FolderSource(DataSource):
    help = "a folder of parquet / csv / json files of one format (train* / test* files form splits)"
    form = "a folder of parquet / csv / json files"

    @classmethod
    def claims(cls, source: Any) -> bool:
        path = _local_path(source)
        return path is not None and path.is_dir()

    def check(self, source: Any) -> None:
        check_local_source(source)

    def load(self, source, *, split, label_column, cache_dir):
        return load_folder(_local_path(source), split, cache_dir)


@DATA_SOURCE_REGISTRY.register("file")
class FileSource(DataSource):
    help = f"one local file, its format read off its suffix ({', '.join(FILE_FORMATS)}; optionally compressed)"
    form = "a parquet / csv / tsv / json file"

    @classmethod
    def claims(cls, source: Any) -> bool:
        return _local_path(source) is not None

    def check(self, source: Any) -> None:
        check_local_source(source)

    def load(self, source, *, split, label_column, cache_dir):
        return load_file(_local_path(source), split, cache_dir)


@DATA_SOURCE_REGISTRY.register("hub")
class HubSource(DataSource):
    help = "a dataset on the Hugging Face Hub: 'hf:user/name', or 'user/name' when no local path has that name"
    form = "a hub id ('hf:user/name')"
    prefix = "hf:"

    @classmethod
    def claims(cls, source: Any) -> bool:
        return isinstance(source, str) and _local_path(source) is None and not looks_like_path(source)

    def load(self, source, *, split, label_column, cache_dir):
        text = source[len(self.prefix):] if source.startswith(self.prefix) else source
        return load_hub(text, split, cache_dir)


def data_source(source: Any) -> DataSource | None:
    """The registered source that claims ``source`` (an instance), or None when none does."""
    if isinstance(source, str):
        for _, cls in DATA_SOURCE_REGISTRY.items():
            if cls.prefix and source.startswith(cls.prefix):
                return cls()
    for _, cls in DATA_SOURCE_REGISTRY.items():
        if cls.claims(source):
            return cls()
    return None


def _unclaimed(source: Any) -> Exception:
    """The error for a source no registered source claims: a missing path, or an unsupported type."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(os.fspath(source)).expanduser()
        return InvalidInputError(
            f"no file or folder at {path.absolute()}; expected a parquet / csv / json file, a folder of "
            "them, or a save_to_disk folder. Fix: check the path."
        )
    forms = "; ".join(f"{cls.form} ({name!r})" for name, cls in DATA_SOURCE_REGISTRY.items())
    return InvalidTypeError(f"source of type {type(source).__name__} is not supported; expected one of the data "
                            f"sources: {forms}. {DATA_SOURCE_REGISTRY.fix}")


def check_source(source: Any) -> None:
    """Cheap checks that ``source`` can be read, before any work: the claiming source's ``check``
    (a local file or folder: ``check_local_source``); a path that names nothing is an error.

    Raises
    ------
    InvalidInputError
        A missing path; see ``check_local_source``.
    """
    entry = data_source(source)
    if entry is None:
        if isinstance(source, (str, os.PathLike)):
            raise _unclaimed(source)
        return  # an unsupported type: load_source names it
    entry.check(source)


def load_source(
    source: Any,
    *,
    split: str | None = None,
    label_column: str = "label",
    cache_dir: str | os.PathLike | None = None,
) -> datasets.Dataset:
    """Load any supported source as a ``datasets.Dataset`` with a stable ``row_id`` column.

    Parameters
    ----------
    source : str, os.PathLike, datasets.Dataset, datasets.DatasetDict, pandas.DataFrame or tuple
        One of:

        - a local ``.parquet`` / ``.csv`` / ``.tsv`` / ``.json`` / ``.jsonl`` file (optionally
          compressed), or a folder of such files (one format; files named ``train*`` / ``test*``...
          form splits by the ``datasets`` naming rules, any other names form one ``"train"`` split);
        - a folder written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``;
        - a Hugging Face Hub id such as ``"user/name"`` (through ``datasets.load_dataset``);
        - a ``datasets.Dataset`` or ``datasets.DatasetDict``;
        - a ``pandas.DataFrame`` (object columns of PIL images or numpy arrays are allowed);
        - a tuple ``(X, y)``: ``X`` ``(n, d)`` numeric gives feature columns ``x0..x{d-1}``;
          ``X`` ``(n, h, w)``, ``(n, h, w, c)`` or ``(n, c, h, w)`` gives one array column ``"image"``
          (channels-first input is stored channels-last); ``y`` ``(n,)`` becomes ``label_column``.
    split : str, optional
        Split to take from a multi-split source. Required when the source has several splits;
        a single-split source is taken whole.
    label_column : str, default "label"
        The label column; it must exist in the loaded data.
    cache_dir : path, optional
        Cache folder for ``datasets.load_dataset`` of hub ids; default: the HF cache. Local files are
        read by content into memory (``read_local_files``), never through a cache, so a file
        rewritten in place is never served stale.

    Returns
    -------
    datasets.Dataset
        ``n`` rows, the source's columns in source order, plus ``row_id`` ``(n,) int64`` (``0..n-1``
        in source order) when the source has none; an existing ``row_id`` is validated and kept.

    Raises
    ------
    InvalidInputError
        Missing path, unreachable hub, unknown or missing split, empty data, missing label column,
        bad ``row_id`` column.
    InvalidTypeError
        Unsupported source type.
    """
    if isinstance(source, (datasets.IterableDataset, datasets.IterableDatasetDict)):
        raise InvalidTypeError(
            "streaming (Iterable) datasets are not supported: every row is scored, so the data must be "
            "materialised. Fix: load without streaming=True."
        )
    entry = data_source(source)
    if entry is None:
        raise _unclaimed(source)
    ds = entry.load(source, split=split, label_column=label_column,
                    cache_dir=None if cache_dir is None else str(cache_dir))
    if ds.num_rows == 0:
        where = f" (split {split!r})" if split is not None else ""
        raise InvalidInputError(f"the source{where} has 0 rows; expected at least one labelled row.")
    check_label_present(ds, label_column)
    return ensure_row_id(ds)


__all__ = [
    "DATA_SOURCE_REGISTRY", "DataSource", "check_local_source", "check_source", "data_source", "ensure_row_id", "load_source",
    "read_local_files", "row_ids", "source_fingerprint",
]

"""Sources: any supported input (Dataset, DatasetDict, DataFrame, arrays, local files, a hub id) →
a ``datasets.Dataset`` with a stable ``row_id`` column.

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
from pathlib import Path
from typing import Any

import datasets
import pandas as pd

from influence_stage.data.columns import check_label_present, label_not_found
from influence_stage.data.hub import load_hub
from influence_stage.data.in_memory import from_arrays, from_pandas, pick_split, with_row_id
from influence_stage.data.local_files import (
    COMPRESSION_SUFFIXES,
    FILE_FORMATS,
    SAVED_DATASET_FILES,
    SAVED_DATASETDICT_FILE,
    check_local_source,
    file_format,
    folder_data_files,
    load_files,
    load_path,
    looks_like_path,
    read_local_files,
    source_fingerprint,
)
from influence_stage.data.row_id import ensure_row_id, row_ids
from influence_stage.errors import InvalidInputError, InvalidTypeError

logger = logging.getLogger(__name__)

# The former private names of the helpers, now public in their modules.
_FILE_FORMATS, _COMPRESSION_SUFFIXES = FILE_FORMATS, COMPRESSION_SUFFIXES
_SAVED_DATASET_FILES, _SAVED_DATASETDICT_FILE = SAVED_DATASET_FILES, SAVED_DATASETDICT_FILE
_file_format, _looks_like_path, _folder_data_files, _load_files = file_format, looks_like_path, folder_data_files, load_files
_load_path, _load_hub, _pick_split = load_path, load_hub, pick_split
_from_arrays, _from_pandas, _with_row_id = from_arrays, from_pandas, with_row_id


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
    cache = None if cache_dir is None else str(cache_dir)
    if isinstance(source, datasets.Dataset):
        ds = source
    elif isinstance(source, datasets.DatasetDict):
        ds = pick_split(source, split, "the DatasetDict")
    elif isinstance(source, (datasets.IterableDataset, datasets.IterableDatasetDict)):
        raise InvalidTypeError(
            "streaming (Iterable) datasets are not supported: every row is scored, so the data must be "
            "materialised. Fix: load without streaming=True."
        )
    elif isinstance(source, pd.DataFrame):
        if label_column not in [str(c) for c in source.columns]:  # named before a row_id is added
            raise label_not_found(label_column, [str(c) for c in source.columns])
        ds = from_pandas(source)
    elif isinstance(source, tuple) and len(source) == 2:
        ds = from_arrays(source[0], source[1], label_column)
    elif isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        path = Path(text).expanduser()
        if path.exists():
            ds = load_path(path, split, cache)
        elif isinstance(source, os.PathLike) or looks_like_path(text):
            raise InvalidInputError(
                f"no file or folder at {path.absolute()}; expected a parquet / csv / json file, a folder of "
                "them, or a save_to_disk folder. Fix: check the path."
            )
        else:
            ds = load_hub(text, split, cache)
    else:
        raise InvalidTypeError(
            f"source of type {type(source).__name__} is not supported; expected a path or hub id (str), "
            "datasets.Dataset, datasets.DatasetDict, pandas.DataFrame or a tuple (X, y) of arrays."
        )
    if ds.num_rows == 0:
        where = f" (split {split!r})" if split is not None else ""
        raise InvalidInputError(f"the source{where} has 0 rows; expected at least one labelled row.")
    check_label_present(ds, label_column)
    return ensure_row_id(ds)


__all__ = ["check_local_source", "ensure_row_id", "load_source", "read_local_files", "row_ids", "source_fingerprint"]

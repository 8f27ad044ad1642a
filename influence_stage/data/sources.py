"""Data into the stage: loading a labelled dataset, stable row ids, column roles, label encoding and
featurizing to float32 arrays.

This module owns everything between "a source the user names" and "arrays the engine scores"
(the way back, decisions → a cleaned dataset, is :mod:`influence_stage.decisions.apply`):

``load_source``      any supported source → ``datasets.Dataset`` with a ``row_id`` column
``resolve_columns``  which column is the label, which are features, and of what kind
``encode_labels``    label values ↔ int codes ``0..K-1`` (ClassLabel names kept)
``featurize``        tabular | image | text columns → ``X`` float32, with a reusable featurizer

Features are read in batches through ``Dataset.iter`` in Arrow format, never through a whole-table
``to_pandas()``: memory stays bounded by the output array (plus the sparse TF-IDF matrix for text).
Label-noise injection lives in :mod:`influence_stage.data.noise`; array checks in
:mod:`influence_stage._checks`.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import io
import logging
import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import datasets
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from influence_stage._checks import check_features, check_positive_int
from influence_stage.errors import InfluenceStageError, InvalidInputError, InvalidTypeError

logger = logging.getLogger(__name__)

ROW_ID = "row_id"
"""Name of the column that identifies every input row, stable through every step."""

DEFAULT_IMAGE_SIZE: tuple[int, int] = (32, 32)
"""(height, width) images are resized to when they do not all share one size."""


# File suffix → (datasets packaged builder, its extra keyword arguments).
_FILE_FORMATS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    ".parquet": ("parquet", ()),
    ".pq": ("parquet", ()),
    ".csv": ("csv", ()),
    ".tsv": ("csv", (("sep", "\t"),)),
    ".json": ("json", ()),
    ".jsonl": ("json", ()),
    ".ndjson": ("json", ()),
}
_COMPRESSION_SUFFIXES = {".gz", ".bz2", ".xz", ".zst"}
_SAVED_DATASET_FILES = ("dataset_info.json", "state.json")
_SAVED_DATASETDICT_FILE = "dataset_dict.json"

_NUMERIC_DTYPE_PREFIXES = ("int", "uint", "float", "bool")
_STRING_DTYPES = {"string", "large_string"}
# PIL modes read as one grey channel; every other mode is converted to RGB.
_GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}

Kind = Literal["tabular", "image", "text"]


# --------------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------------


def preview(items: Sequence[Any], limit: int = 10) -> str:
    """``[a, b, ...]`` with at most ``limit`` items and the total when cut."""
    items = list(items)
    shown = ", ".join(repr(x) for x in items[:limit])
    more = f", ... ({len(items)} in all)" if len(items) > limit else ""
    return f"[{shown}{more}]"


def gathered(ds: datasets.Dataset, columns: Sequence[str], start: int, stop: int) -> pa.Table | None:
    """Rows ``start:stop`` of a dataset with an indices mapping (after select / filter / shuffle).

    datasets gathers such rows one slice per row (about 1 s per 100k rows); one Arrow ``take`` is
    ~100x faster. Returns None when the dataset has no indices mapping or its internals differ.
    """
    indices = getattr(ds, "_indices", None)
    if indices is None:
        return None
    try:
        table = ds.data.table.select(list(columns))
        return table.take(indices.column(0).slice(start, stop - start))
    except Exception:  # pragma: no cover - a datasets version with other internals: use the public path
        return None


def arrow_column(ds: datasets.Dataset, name: str) -> pa.Array:
    """One column as a contiguous Arrow array, in dataset order (indices mapping applied)."""
    table = gathered(ds, [name], 0, ds.num_rows)
    col = (table if table is not None else ds.with_format("arrow", columns=[name])[:])[name]
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def _where(row: int, row_id: Any) -> str:
    """``"row 5 (row_id 12)"`` for messages (numpy scalars shown as plain numbers)."""
    if hasattr(row_id, "item"):
        row_id = row_id.item()
    return f"row {row}" if row_id is None else f"row {row} (row_id {row_id})"


def _iter_batches(ds: datasets.Dataset, columns: Sequence[str], batch_size: int) -> Iterator[tuple[int, pa.Table]]:
    """Yield ``(first_row, arrow_table)`` batches of ``columns`` (plus ``row_id`` when present).

    Arrow format means no decoding: image columns come as ``{bytes, path}`` structs.
    """
    cols = list(columns)
    if ROW_ID in ds.column_names and ROW_ID not in cols:
        cols.append(ROW_ID)
    if gathered(ds, cols, 0, 0) is not None:
        for start in range(0, ds.num_rows, batch_size):
            yield start, gathered(ds, cols, start, min(start + batch_size, ds.num_rows))
        return
    start = 0
    for table in ds.with_format("arrow", columns=cols).iter(batch_size=batch_size):
        yield start, table
        start += table.num_rows


def _batch_row_ids(table: pa.Table) -> list[Any] | None:
    return table.column(ROW_ID).to_pylist() if ROW_ID in table.column_names else None


def _value_dtype(feature: Any) -> str | None:
    return feature.dtype if isinstance(feature, datasets.Value) else None


def _is_numeric_value(feature: Any) -> bool:
    dtype = _value_dtype(feature)
    return dtype is not None and dtype.startswith(_NUMERIC_DTYPE_PREFIXES)


def _is_string_value(feature: Any) -> bool:
    return _value_dtype(feature) in _STRING_DTYPES


def _list_depth_and_leaf(feature: Any) -> tuple[int, Any]:
    depth = 0
    while isinstance(feature, (datasets.List, datasets.LargeList)):
        depth += 1
        feature = feature.feature
    return depth, feature


def _column_kind(feature: Any) -> str | None:
    """``"image"``, ``"text"``, ``"numeric"``, ``"categorical"`` (a ClassLabel) or ``None`` (unusable)."""
    if isinstance(feature, datasets.Image):
        return "image"
    if isinstance(feature, (datasets.Array2D, datasets.Array3D)):
        return "image"
    depth, leaf = _list_depth_and_leaf(feature)
    if depth in (2, 3) and _is_numeric_value(leaf):
        return "image"  # a 2-D or 3-D numeric array per row
    if depth:
        return None
    if isinstance(feature, datasets.ClassLabel):
        return "categorical"
    if _is_string_value(feature):
        return "text"
    if _is_numeric_value(feature):
        return "numeric"
    return None


# --------------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------------


def _file_format(path: Path) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION_SUFFIXES:
        suffixes = suffixes[:-1]
    return _FILE_FORMATS.get(suffixes[-1]) if suffixes else None


def _looks_like_path(source: str) -> bool:
    """True when a string that names nothing on disk was meant as a path, not a hub id."""
    path = Path(source).expanduser()
    if source.startswith((".", "/", "~")) or "\\" in source or source.count("/") > 1:
        return True
    if _file_format(path) is not None:
        return True
    return str(path.parent) not in ("", ".") and path.parent.exists()


def _pick_split(dd: datasets.DatasetDict, split: str | None, what: str) -> datasets.Dataset:
    names = list(dd.keys())
    if split is None:
        if len(names) == 1:
            logger.info("%s has one split, %r; using it.", what, names[0])
            return dd[names[0]]
        raise InvalidInputError(
            f"{what} has several splits {names}; expected split= to name one. "
            f"Fix: pass e.g. split={names[0]!r}."
        )
    if split not in dd:
        raise InvalidInputError(
            f"{what} has no split {split!r}; available splits: {names}. Fix: pass one of them as split=."
        )
    return dd[split]


def _from_arrays(X: Any, y: Any, label_column: str) -> datasets.Dataset:
    check_features(X, name="X")  # numeric, at least 2-D, non-empty, finite
    X = np.asarray(X.detach().cpu().numpy() if hasattr(X, "detach") else X)
    y = np.asarray(y.detach().cpu().numpy() if hasattr(y, "detach") else y)
    if y.ndim != 1:
        raise InvalidInputError(f"y must be 1-D (n_samples,); found shape {y.shape}. Fix: pass y.ravel().")
    if len(y) != len(X):
        raise InvalidInputError(f"X and y have different lengths: X has {len(X)} rows, y has {len(y)}.")
    if y.dtype.kind in "OUS":
        y = np.asarray(y.tolist(), dtype=object)
    label_type = pa.array(y.tolist() if y.dtype == object else y).type
    label_feature = datasets.Features.from_arrow_schema(pa.schema([(label_column, label_type)]))[label_column]
    if X.ndim == 2:
        names = [f"x{j}" for j in range(X.shape[1])]
        if label_column in names:
            raise InvalidInputError(
                f"label_column={label_column!r} clashes with a generated feature column name x0..x{X.shape[1] - 1}. "
                "Fix: use another label_column."
            )
        columns = {name: X[:, j] for j, name in enumerate(names)}
        features = {name: datasets.Value(X.dtype.name) for name in names}
    else:
        if X.ndim == 4 and X.shape[-1] not in (1, 2, 3, 4) and X.shape[1] in (1, 3, 4):
            X = np.ascontiguousarray(X.transpose(0, 2, 3, 1))  # (n, c, h, w) → (n, h, w, c)
        if X.ndim not in (3, 4) or (X.ndim == 4 and X.shape[-1] not in (1, 2, 3, 4)):
            raise InvalidInputError(
                f"X with {X.ndim} dimensions must be images: (n, h, w), (n, h, w, c) or (n, c, h, w) "
                f"with c in 1..4; found shape {X.shape}. Fix: reshape X to (n, features) for tabular data."
            )
        name = "image" if label_column != "image" else "pixels"
        array_type = datasets.Array2D if X.ndim == 3 else datasets.Array3D
        columns = {name: X}
        features = {name: array_type(shape=X.shape[1:], dtype=str(X.dtype))}
    columns[label_column] = y.tolist() if y.dtype == object else y
    features[label_column] = label_feature
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


def _from_pandas(df: pd.DataFrame) -> datasets.Dataset:
    try:
        return datasets.Dataset.from_pandas(df, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        # Object columns of PIL images or numpy arrays: let datasets infer Image / nested lists.
        logger.debug("Dataset.from_pandas failed (%s); building the dataset column by column.", exc)
        try:
            return datasets.Dataset.from_dict({str(c): df[c].tolist() for c in df.columns})
        except Exception as exc2:
            raise InvalidTypeError(
                f"the DataFrame could not be converted to a datasets.Dataset: {exc2}. Expected columns of "
                "numbers, strings, PIL images or equally-ranked numpy arrays. Fix: convert or drop that column."
            ) from exc2


def _folder_data_files(folder: Path) -> dict[str, list[str]]:
    """Data files of a folder per split (datasets' split naming rules: ``train*``, ``test*``...)."""
    from datasets.data_files import DataFilesDict, get_data_patterns

    try:
        files = DataFilesDict.from_patterns(get_data_patterns(str(folder)), str(folder))
    except Exception as exc:  # datasets raises EmptyDatasetError when nothing matches
        raise InvalidInputError(
            f"folder {folder} holds no parquet / csv / json files ({exc}). "
            "Fix: point to a folder of such files, a single file, or a save_to_disk folder."
        ) from exc
    by_split = {
        str(split): sorted(f for f in paths if _file_format(Path(f)) is not None) for split, paths in files.items()
    }
    by_split = {k: v for k, v in by_split.items() if v}
    if not by_split:
        raise InvalidInputError(
            f"folder {folder} holds no parquet / csv / json files. "
            "Fix: point to a folder of such files, a single file, or a save_to_disk folder."
        )
    return by_split


def _load_files(files_by_split: dict[str, list[str]], split: str | None, where: str,
                cache_dir: str | None) -> datasets.Dataset:
    names = list(files_by_split)
    if split is None:
        if len(names) > 1:
            raise InvalidInputError(
                f"{where} has several splits {names}; expected split= to name one. Fix: pass e.g. split={names[0]!r}."
            )
        split = names[0]
    elif split not in files_by_split:
        raise InvalidInputError(f"{where} has no split {split!r}; available splits: {names}. "
                                "Fix: pass one of them as split=.")
    files = files_by_split[split]
    formats = {_file_format(Path(f)) for f in files}
    if len(formats) != 1:
        by_format = sorted({Path(f).suffix for f in files})
        raise InvalidInputError(
            f"{where} mixes file formats {by_format} in split {split!r}; expected one format. "
            "Fix: keep one format per folder or pass a single file."
        )
    builder, extra = formats.pop()
    try:
        return read_local_files(files, builder, dict(extra))
    except InfluenceStageError:
        raise
    except Exception as exc:
        raise InvalidInputError(
            f"could not read {where} as {builder} ({type(exc).__name__}: {exc}). "
            "Fix: check the file(s) are valid and share one schema."
        ) from exc


def source_fingerprint(files: Sequence[str | os.PathLike]) -> str:
    """``sha256`` hex of local files by content: each file's size and bytes, in the given order.

    Paths and modification times are not part of it: a file rewritten in place (even with its old
    modification time) gets a new fingerprint, the same bytes elsewhere the same one.
    """
    import hashlib

    total = hashlib.sha256()
    for f in files:
        h = hashlib.sha256()
        with open(f, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                h.update(chunk)
        total.update(f"{os.path.getsize(f)}:{h.hexdigest()};".encode())
    return total.hexdigest()


def _read_json_file(path: str) -> pa.Table:
    """JSON lines (pyarrow), or one JSON array of records / a mapping of columns (like ``datasets``' json)."""
    import json

    import pyarrow.json as paj

    with pa.input_stream(path, compression="detect") as stream:
        raw = stream.read()
    try:
        return paj.read_json(io.BytesIO(raw))
    except pa.ArrowInvalid:
        data = json.loads(raw.decode("utf-8"))
        if isinstance(data, list):
            return pa.Table.from_pylist(data)
        if isinstance(data, dict):
            return pa.Table.from_pydict(data)
        raise


def _read_one_file(path: str, builder: str, extra: dict[str, str]) -> pa.Table:
    if builder == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path)
    if builder == "csv":  # pandas' inference, as datasets' csv builder does
        return pa.Table.from_pandas(pd.read_csv(path, **extra), preserve_index=False)
    return _read_json_file(path)


def read_local_files(files: Sequence[str], builder: str, extra: Mapping[str, str] | None = None) -> datasets.Dataset:
    """Local parquet / csv / json files read by content into one in-memory ``datasets.Dataset``.

    Not through ``datasets.load_dataset``: its cache keys local files by path and modification
    time, so a file rewritten in place would be served from the old copy. Nothing is written to
    the Hugging Face cache. The dataset's ``_fingerprint`` is :func:`source_fingerprint` of the
    files (their bytes and sizes). Hugging Face feature metadata in a parquet schema (``ClassLabel``
    names...) is kept.

    Parameters
    ----------
    files : sequence of str
        One format; rows concatenated in this order (schemas must agree).
    builder : {"parquet", "csv", "json"}
    extra : mapping, optional
        Reader options (``sep`` for tsv).
    """
    tables = [_read_one_file(str(f), builder, dict(extra or {})) for f in files]
    if len(tables) == 1:
        table = tables[0]
    else:
        table = pa.concat_tables(tables, promote_options="default")
    from datasets.table import InMemoryTable

    return datasets.Dataset(InMemoryTable(table), fingerprint=source_fingerprint(files))


def _load_path(path: Path, split: str | None, cache_dir: str | None) -> datasets.Dataset:
    if path.is_dir():
        is_dataset = all((path / f).is_file() for f in _SAVED_DATASET_FILES)
        if is_dataset or (path / _SAVED_DATASETDICT_FILE).is_file():
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                return _pick_split(loaded, split, f"the DatasetDict saved at {path}")
            return loaded
        return _load_files(_folder_data_files(path), split, f"folder {path}", cache_dir)
    if _file_format(path) is None:
        raise InvalidInputError(
            f"file {path} has an unsupported suffix {''.join(path.suffixes)!r}; expected one of "
            f"{sorted(_FILE_FORMATS)} (optionally compressed). Fix: convert it to parquet, csv or json."
        )
    return _load_files({"train": [str(path)]}, split, f"file {path}", cache_dir)


def _load_hub(source: str, split: str | None, cache_dir: str | None) -> datasets.Dataset:
    transport_errors: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)
    try:  # httpx errors can escape datasets' own wrapping during downloads
        import httpx

        transport_errors += (httpx.TransportError,)
    except ImportError:  # pragma: no cover - httpx ships with huggingface_hub
        pass
    try:
        loaded = datasets.load_dataset(source, split=split, cache_dir=cache_dir)
    except FileNotFoundError as exc:
        raise InvalidInputError(
            f"source {source!r} is neither a local path (nothing at {Path(source).absolute()}) nor a dataset "
            f"on the Hugging Face Hub ({exc}). Fix: check the spelling or pass a local file or folder."
        ) from exc
    except transport_errors as exc:
        raise InvalidInputError(
            f"could not reach the Hugging Face Hub to load {source!r} ({type(exc).__name__}: {exc}); offline "
            "mode (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE) or no network. Fix: pass a local path instead "
            "(a parquet / csv / json file or folder, or a folder written by Dataset.save_to_disk where the hub "
            "is reachable)."
        ) from exc
    except ValueError as exc:  # e.g. 'Unknown split "x". Should be one of [...]'
        raise InvalidInputError(f"could not load {source!r} from the hub: {exc}") from exc
    if isinstance(loaded, datasets.DatasetDict):
        return _pick_split(loaded, split, f"hub dataset {source!r}")
    return loaded


def check_local_source(source: Any) -> None:
    """Cheap checks that a local source can be read and is not empty, before any work.

    Reads no more than a parquet footer or a CSV's first row. Sources that are not paths
    (datasets, frames, arrays) and hub ids are left to :func:`load_source`.

    Raises
    ------
    InvalidInputError
        Missing path, unreadable or empty (0 bytes) file, a parquet / csv file with 0 rows, an
        unsupported suffix, or a folder without data files.
    """
    if not isinstance(source, (str, os.PathLike)):
        return
    text = os.fspath(source)
    path = Path(text).expanduser()
    if not path.exists():
        if isinstance(source, os.PathLike) or _looks_like_path(text):
            raise InvalidInputError(
                f"no file or folder at {path.absolute()}; expected a parquet / csv / json file, a folder of "
                "them, or a save_to_disk folder. Fix: check the path."
            )
        return  # a hub id
    if path.is_dir():
        if all((path / f).is_file() for f in _SAVED_DATASET_FILES) or (path / _SAVED_DATASETDICT_FILE).is_file():
            return
        files = [Path(f) for fs in _folder_data_files(path).values() for f in fs]
    else:
        if _file_format(path) is None:
            raise InvalidInputError(
                f"file {path} has an unsupported suffix {''.join(path.suffixes)!r}; expected one of "
                f"{sorted(_FILE_FORMATS)} (optionally compressed). Fix: convert it to parquet, csv or json."
            )
        files = [path]
    rows = 0
    for f in files:
        if not os.access(f, os.R_OK):
            raise InvalidInputError(f"source file {f} is not readable (permissions). Fix: chmod it or copy it.")
        if f.stat().st_size == 0:
            raise InvalidInputError(
                f"source file {f} is empty (0 bytes); expected a parquet / csv / json file with labelled rows. "
                "Fix: point to the right file or rewrite it."
            )
        builder, extra = _file_format(f) or ("", ())
        try:
            if builder == "parquet":
                import pyarrow.parquet as pq

                rows += pq.read_metadata(f).num_rows
            elif builder == "csv":
                rows += len(pd.read_csv(f, nrows=1, **dict(extra)))
            else:
                rows += 1  # json: read in full by load_source
        except (pa.ArrowInvalid, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise InvalidInputError(
                f"could not read {f} as {builder} ({type(exc).__name__}: {exc}). Fix: check the file is valid."
            ) from exc
        if rows:
            return
    where = files[0] if len(files) == 1 else path
    raise InvalidInputError(f"the source {where} has 0 rows; expected at least one labelled row.")


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
        read by content into memory (:func:`read_local_files`), never through a cache, so a file
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
        ds = _pick_split(source, split, "the DatasetDict")
    elif isinstance(source, (datasets.IterableDataset, datasets.IterableDatasetDict)):
        raise InvalidTypeError(
            "streaming (Iterable) datasets are not supported: every row is scored, so the data must be "
            "materialised. Fix: load without streaming=True."
        )
    elif isinstance(source, pd.DataFrame):
        ds = _from_pandas(source)
    elif isinstance(source, tuple) and len(source) == 2:
        ds = _from_arrays(source[0], source[1], label_column)
    elif isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        path = Path(text).expanduser()
        if path.exists():
            ds = _load_path(path, split, cache)
        elif isinstance(source, os.PathLike) or _looks_like_path(text):
            raise InvalidInputError(
                f"no file or folder at {path.absolute()}; expected a parquet / csv / json file, a folder of "
                "them, or a save_to_disk folder. Fix: check the path."
            )
        else:
            ds = _load_hub(text, split, cache)
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


# --------------------------------------------------------------------------------------------------
# row ids
# --------------------------------------------------------------------------------------------------


def ensure_row_id(ds: datasets.Dataset) -> datasets.Dataset:
    """Add ``row_id`` ``(n,) int64`` = ``0..n-1`` in row order if absent; else check it.

    An existing ``row_id`` must be an integer column without nulls and without duplicates.
    """
    if ROW_ID not in ds.column_names:
        return ds.add_column(ROW_ID, np.arange(ds.num_rows, dtype=np.int64), feature=datasets.Value("int64"))
    feature = ds.features[ROW_ID]
    dtype = _value_dtype(feature)
    if dtype is None or not dtype.startswith(("int", "uint")):
        raise InvalidTypeError(
            f"column {ROW_ID!r} must hold integer ids; found {feature!r}. "
            f"Fix: rename that column so a fresh {ROW_ID} is added."
        )
    col = arrow_column(ds, ROW_ID)
    if col.null_count:
        first = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
        raise InvalidInputError(
            f"column {ROW_ID!r} must have no nulls; found {col.null_count}, the first at row {first}. "
            f"Fix: fill them or drop the column so fresh ids are added."
        )
    ids = col.to_numpy(zero_copy_only=False)
    ordered = np.sort(ids, kind="stable")
    dup = np.flatnonzero(ordered[1:] == ordered[:-1])
    if dup.size:
        value = ordered[dup[0]]
        rows = np.flatnonzero(ids == value)[:5].tolist()
        n_dup = np.unique(ordered[dup]).size
        raise InvalidInputError(
            f"column {ROW_ID!r} must be unique; id {int(value)} appears at rows {rows} "
            f"({n_dup} duplicated id(s) in all). Fix: deduplicate or drop the column so fresh ids are added."
        )
    return ds


def row_ids(ds: datasets.Dataset) -> np.ndarray:
    """The ``row_id`` column as ``(n,) int64``, in dataset order."""
    if ROW_ID not in ds.column_names:
        raise InvalidInputError(
            f"the dataset has no {ROW_ID!r} column; found columns {ds.column_names}. "
            "Fix: load it with load_source (or ensure_row_id)."
        )
    return arrow_column(ds, ROW_ID).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


# --------------------------------------------------------------------------------------------------
# column roles
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnRoles:
    """Which column is the label and which columns are features.

    Attributes
    ----------
    label_column : str
        The label column.
    feature_columns : tuple of str
        Feature columns: one image column, one or more text columns (joined with a space), or one
        or more numeric / bool columns.
    kind : {"tabular", "image", "text"}
        How the feature columns are featurized.
    """

    label_column: str
    feature_columns: tuple[str, ...]
    kind: Kind


def check_label_present(ds: datasets.Dataset, label_column: str) -> None:
    if label_column not in ds.column_names:
        raise InvalidInputError(
            f"label column {label_column!r} not found; available columns: {ds.column_names}. "
            "Fix: pass label_column= with one of them."
        )


def _missing_mask(col: pa.Array, class_label: bool) -> np.ndarray:
    """``(n,) bool``: null, NaN, or — for a ClassLabel — ``-1`` (datasets' "no label")."""
    missing = col.is_null(nan_is_null=True) if pa.types.is_floating(col.type) else col.is_null()
    if class_label and pa.types.is_integer(col.type):
        missing = pc.or_(missing, pc.fill_null(pc.equal(col, -1), False))
    return missing.to_numpy(zero_copy_only=False)


def _check_label_values(ds: datasets.Dataset, label_column: str) -> pa.Array:
    """The label column as an Arrow array; errors when absent or when a label is missing."""
    check_label_present(ds, label_column)
    col = arrow_column(ds, label_column)
    missing = _missing_mask(col, isinstance(ds.features[label_column], datasets.ClassLabel))
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        rid = arrow_column(ds, ROW_ID)[row].as_py() if ROW_ID in ds.column_names else None
        raise InvalidInputError(
            f"label column {label_column!r} has {int(missing.sum())} missing label(s) (null, NaN or ClassLabel "
            f"-1); the first at {_where(row, rid)}. Expected a label on every row. "
            "Fix: drop or label those rows first."
        )
    return col


def _mean_text_length(ds: datasets.Dataset, column: str, rows: int = 1000) -> float:
    sample = ds.with_format("arrow", columns=[column])[: min(rows, ds.num_rows)][column]
    lengths = pc.utf8_length(sample)
    return float(pc.mean(lengths).as_py() or 0.0)


def _expand_patterns(names: list[str], columns: Sequence[str]) -> list[str]:
    """Expand shell-style patterns among ``names`` against ``columns`` (plain names pass through)."""
    out: list[str] = []
    for name in names:
        if isinstance(name, str) and any(ch in name for ch in "*?[") and name not in columns:
            hits = fnmatch.filter(columns, name)
            if not hits:
                raise InvalidInputError(
                    f"feature column pattern {name!r} matches no column; available columns: {list(columns)}."
                )
            out += [h for h in hits if h not in out]
        else:
            out.append(name)
    return out


MOSTLY_NUMERIC_FRACTION = 0.5
"""A string column is "numeric except for a few cells" when more than this share of its present
cells parse as numbers and at least one does not (see :func:`check_numeric_columns`)."""

_MISSING_TEXT = {"", "nan", "na", "n/a", "null", "none"}


def _non_numeric_cells(col: pa.Array) -> np.ndarray | None:
    """Positions of the cells of a string column that are not numbers, when most cells are; else None."""
    values = pd.Series(col.to_pylist(), dtype=object)
    text = values.where(values.isna(), values.astype(str).str.strip())
    present = text.notna() & ~text.str.lower().isin(_MISSING_TEXT)
    numeric = pd.to_numeric(text.where(present), errors="coerce").notna() & present
    bad = present & ~numeric
    if not bad.any() or int(numeric.sum()) <= MOSTLY_NUMERIC_FRACTION * int(present.sum()):
        return None
    return np.flatnonzero(bad.to_numpy())


def check_numeric_columns(
    ds: datasets.Dataset,
    label_column: str,
    feature_columns: Sequence[str] | str | None = None,
    *,
    coerce: bool = False,
) -> datasets.Dataset:
    """Refuse (or, with ``coerce``, repair) string columns that are numbers except for a few cells.

    One stray ``"?"`` in a CSV's numeric column makes the whole column strings, and the automatic
    column choice (:func:`resolve_columns`) would then featurize the table as text on that column
    alone. A string column (among ``feature_columns``, or every column but the label and
    ``row_id`` when None) of which more than :data:`MOSTLY_NUMERIC_FRACTION` of the present cells
    parse as numbers and at least one does not is such a column.

    Parameters
    ----------
    ds : datasets.Dataset
    label_column : str
    feature_columns : sequence of str or str, optional
        Explicit feature columns (patterns allowed); None checks every candidate column.
    coerce : bool, default False
        Read the cells that are not numbers as missing (null) and the column as float64; the input
        suite then reports the nulls as it does for any missing feature value.

    Returns
    -------
    datasets.Dataset
        ``ds`` itself when nothing is coerced, else a copy with those columns as float64.

    Raises
    ------
    InvalidInputError
        (``coerce=False``) naming the column, how many cells are not numbers, and the first rows
        and values.
    """
    if feature_columns is None:
        columns = [c for c in ds.column_names if c not in (label_column, ROW_ID)]
    else:
        names = [feature_columns] if isinstance(feature_columns, str) else list(feature_columns)
        columns = [c for c in _expand_patterns(names, ds.column_names) if c in ds.column_names]
    fixed: dict[str, pa.Array] = {}
    for c in columns:
        if not _is_string_value(ds.features[c]):
            continue
        col = arrow_column(ds, c)
        bad = _non_numeric_cells(col)
        if bad is None:
            continue
        if not coerce:
            ids = arrow_column(ds, ROW_ID).to_pylist() if ROW_ID in ds.column_names else None
            shown = ", ".join(f"{_where(int(r), None if ids is None else ids[int(r)])}: {col[int(r)].as_py()!r}"
                              for r in bad[:5])
            more = f", ... ({bad.size} in all)" if bad.size > 5 else ""
            cells = "cell that is not a number" if bad.size == 1 else "cells that are not numbers"
            raise InvalidInputError(
                f"column {c!r} is numeric except for {bad.size} {cells} ({shown}{more}); "
                "read as strings it would silently make the features text (or be left out). Expected a number "
                f"in every cell of a numeric column. Fix: repair or drop those rows, or set coerce_numeric: true "
                "to read those cells as missing (the input suite then reports them)."
            )
        values = pd.Series(col.to_pylist(), dtype=object)
        text = values.where(values.isna(), values.astype(str).str.strip())
        fixed[c] = pa.array(pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64), type=pa.float64(),
                            from_pandas=True)
        logger.warning("column %r: %d cell(s) that are not numbers read as missing (coerce_numeric); first at %s",
                       c, bad.size, _where(int(bad[0]), None))
    if not fixed:
        return ds
    from datasets.table import InMemoryTable

    table = ds.with_format("arrow")[:]
    features = ds.features.copy()
    for c, array in fixed.items():
        table = table.set_column(table.column_names.index(c), c, array)
        features[c] = datasets.Value("float64")
    return datasets.Dataset(InMemoryTable(table), info=datasets.DatasetInfo(features=features))


def resolve_columns(
    ds: datasets.Dataset,
    label_column: str,
    feature_columns: Sequence[str] | str | None = None,
) -> ColumnRoles:
    """Choose the label and feature columns and the featurizer kind.

    Automatic choice (``feature_columns=None``), among columns other than the label and ``row_id``:
    an image column (``datasets.Image``, ``Array2D`` / ``Array3D``, or nested numeric lists of
    2 or 3 levels; the first one if several) gives ``"image"``; else a string column (the one with
    the longest mean length over the first 1000 rows if several) gives ``"text"``; else all numeric
    and bool columns give ``"tabular"``. Columns left out are logged. ``ClassLabel`` columns other
    than the label are left out automatically (they often encode a coarser label) but may be
    named explicitly.

    Parameters
    ----------
    ds : datasets.Dataset
        ``n`` rows.
    label_column : str
        Must exist and have no missing values (null, NaN, ClassLabel ``-1``).
    feature_columns : sequence of str or str, optional
        Explicit feature columns; all must exist and be of one kind. Names may be shell-style
        patterns (``"px_*"``), expanded in column order; a pattern that matches nothing is an error.

    Returns
    -------
    ColumnRoles
    """
    _check_label_values(ds, label_column)
    kinds = {c: _column_kind(ds.features[c]) for c in ds.column_names}
    if feature_columns is not None:
        cols = [feature_columns] if isinstance(feature_columns, str) else list(feature_columns)
        cols = _expand_patterns(cols, ds.column_names)
        if not cols:
            raise InvalidInputError("feature_columns is empty; expected at least one column, or None for automatic.")
        for c in cols:
            if c not in ds.column_names:
                raise InvalidInputError(
                    f"feature column {c!r} not found; available columns: {ds.column_names}. "
                    "Fix: correct feature_columns."
                )
            if c in (label_column, ROW_ID):
                raise InvalidInputError(
                    f"feature column {c!r} is the label or the row id; expected other columns. "
                    "Fix: remove it from feature_columns."
                )
            if kinds[c] is None:
                raise InvalidTypeError(
                    f"feature column {c!r} has dtype {ds.features[c]!r}, which cannot be featurized; "
                    "expected numbers / bools (tabular), strings (text), or images / 2-D or 3-D arrays (image). "
                    "Fix: convert the column or leave it out."
                )
        found = {"numeric" if kinds[c] == "categorical" else kinds[c] for c in cols}
        if len(found) > 1:
            detail = ", ".join(f"{c}: {kinds[c]}" for c in cols)
            raise InvalidInputError(
                f"feature columns mix kinds ({detail}); expected all numeric, all text, or one image column. "
                "Fix: featurize them separately or choose one kind."
            )
        (kind,) = found
        if kind == "image" and len(cols) > 1:
            raise InvalidInputError(f"expected one image column; found {cols}. Fix: name one of them.")
        return ColumnRoles(label_column, tuple(cols), {"numeric": "tabular"}.get(kind, kind))  # type: ignore[arg-type]

    candidates = [c for c in ds.column_names if c not in (label_column, ROW_ID)]
    images = [c for c in candidates if kinds[c] == "image"]
    texts = [c for c in candidates if kinds[c] == "text"]
    numeric = [c for c in candidates if kinds[c] == "numeric"]
    if images:
        chosen, kind = [images[0]], "image"
    elif texts:
        best = max(texts, key=lambda c: _mean_text_length(ds, c)) if len(texts) > 1 else texts[0]
        chosen, kind = [best], "text"
    elif numeric:
        chosen, kind = numeric, "tabular"
    else:
        detail = ", ".join(f"{c}: {ds.features[c]!r}" for c in candidates) or "none"
        raise InvalidInputError(
            f"no usable feature column besides the label {label_column!r}; columns found: {detail}. "
            "Expected numeric, string or image columns. Fix: pass feature_columns= or featurize the data yourself."
        )
    ignored = [c for c in candidates if c not in chosen]
    if ignored:
        logger.info("Featurizing %s column(s) %s as %r; ignoring %s.", len(chosen), chosen, kind, ignored)
    return ColumnRoles(label_column, tuple(chosen), kind)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# labels
# --------------------------------------------------------------------------------------------------


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
        missing_np = _missing_mask(arr, self.source == "class_label")
        if missing_np.any():
            row = int(np.flatnonzero(missing_np)[0])
            rid = None if row_ids is None else row_ids[row]
            raise InvalidInputError(
                f"label column {self.label_column!r} has a missing label at {_where(row, rid)}; "
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
                f"unknown label {arr[row].as_py()!r} at {_where(row, rid)} ({idx.null_count} row(s) in all); "
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
    col = _check_label_values(ds, label_column)
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
                f"{_where(row, None if ids is None else ids[row])} holds {int(codes[row])}. Fix: repair the codes."
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
                f"{_where(row, None if ids is None else ids[row])}); expected class labels. "
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


# --------------------------------------------------------------------------------------------------
# featurizers
# --------------------------------------------------------------------------------------------------


class FeaturizeConfig(BaseModel):
    """Settings of the featurizers (the parts that are not learned from the data)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    image_size: tuple[PositiveInt, PositiveInt] | None = Field(
        None, description="(height, width) every image is resized to. None: the images' own size when they "
        "all share one, else 32x32 (DEFAULT_IMAGE_SIZE).")
    text_max_features: int = Field(2048, ge=1, description="Vocabulary size of the TF-IDF text featurizer.")
    text_components: int = Field(
        128, ge=1, description="Output width of the text featurizer's TruncatedSVD (capped at vocabulary - 1 "
        "and rows - 1).")
    text_model: str | None = Field(
        None, description="Local folder of a sentence-transformers model used instead of TF-IDF + SVD "
        "(needs the optional package sentence-transformers).")
    seed: int = Field(0, description="Seed of the randomized SVD of the text featurizer.")


def _safe_scale(std: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``std`` with 1.0 where a column is constant (std at rounding level of its mean)."""
    # A constant column is only centred: dividing by its ~1e-17 rounding std would blow noise up.
    return np.where(std > 1e-9 * np.maximum(1.0, np.abs(mean)), std, 1.0)


class _Welford:
    """Column means and population standard deviations over batches (Chan's merge; stable)."""

    def __init__(self, width: int) -> None:
        self.n = 0
        self.mean = np.zeros(width)
        self.m2 = np.zeros(width)

    def update(self, block: np.ndarray) -> None:
        m = block.shape[0]
        if m == 0:
            return
        b_mean = block.mean(axis=0)
        b_m2 = ((block - b_mean) ** 2).sum(axis=0)
        delta = b_mean - self.mean
        total = self.n + m
        self.mean = self.mean + delta * (m / total)
        self.m2 = self.m2 + b_m2 + delta**2 * (self.n * m / total)
        self.n = total

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / max(self.n, 1))


class TabularFeaturizer:
    """Numeric and bool columns → standardized ``(n, d)`` float32.

    Each column is centred by its fitted mean and divided by its fitted population std; a column
    with zero std is only centred; bools count as 0/1. A null, NaN or infinite value raises an
    error naming the column and the row.

    Attributes
    ----------
    mean_ : numpy.ndarray, shape ``(d,)`` float64
    scale_ : numpy.ndarray, shape ``(d,)`` float64
        Fitted std, 1.0 where the std is 0.
    n_features_out_ : int
    """

    kind: Kind = "tabular"

    def __init__(self, columns: Sequence[str], config: FeaturizeConfig | None = None) -> None:
        self.columns = tuple(columns)
        self.config = config or FeaturizeConfig()

    def _read(self, table: pa.Table, start: int) -> np.ndarray:
        ids = None
        block = np.empty((table.num_rows, len(self.columns)), dtype=np.float64)
        for j, name in enumerate(self.columns):
            col = table.column(name).combine_chunks()
            null = col.is_null().to_numpy(zero_copy_only=False)
            values = pc.fill_null(col, False if pa.types.is_boolean(col.type) else 0).to_numpy(
                zero_copy_only=False).astype(np.float64)
            bad = null | ~np.isfinite(values)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                ids = _batch_row_ids(table) if ids is None else ids
                found = "null" if null[i] else repr(float(values[i]))
                raise InvalidInputError(
                    f"feature column {name!r} has a missing or non-finite value ({found}) at "
                    f"{_where(start + i, None if ids is None else ids[i])} ({int(bad.sum())} in this batch). "
                    "Expected finite numbers. Fix: impute or drop those rows, or leave the column out with "
                    "feature_columns=."
                )
            block[:, j] = values
        return block

    def fit(self, ds: datasets.Dataset, *, batch_size: int = 4096) -> TabularFeaturizer:
        """Learn column means and stds from ``ds`` (one pass)."""
        stats = _Welford(len(self.columns))
        for start, table in _iter_batches(ds, self.columns, batch_size):
            stats.update(self._read(table, start))
        self.mean_ = stats.mean
        self.scale_ = _safe_scale(stats.std, stats.mean)
        self.n_features_out_ = len(self.columns)
        return self

    def transform(self, ds: datasets.Dataset, *, batch_size: int = 4096) -> np.ndarray:
        """Standardized features ``(n, d)`` float32."""
        out = np.empty((ds.num_rows, len(self.columns)), dtype=np.float32)
        for start, table in _iter_batches(ds, self.columns, batch_size):
            out[start:start + table.num_rows] = (self._read(table, start) - self.mean_) / self.scale_
        return out

    def fit_transform(self, ds: datasets.Dataset, *, batch_size: int = 4096) -> np.ndarray:
        return self.fit(ds, batch_size=batch_size).transform(ds, batch_size=batch_size)


def _list_row_to_array(arr: pa.Array, i: int) -> np.ndarray:
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
        for start, table in _iter_batches(ds, self.columns, batch_size):
            ids = _batch_row_ids(table)
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
                        item = _list_row_to_array(col, i)
                        _array_layout(item.shape)
                except Exception as exc:
                    raise InvalidInputError(
                        f"image column {name!r}: could not read the image at {_where(row, rid)} "
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

    def _fill(self, ds: datasets.Dataset, batch_size: int) -> np.ndarray:
        out = np.empty((ds.num_rows, self.channels_, *self.size_), dtype=np.float32)
        for row, rid, item in self._iter_raw(ds, batch_size):
            try:
                out[row] = self._resize(self._to_float(item, self.channels_))
            except Exception as exc:
                shape = item.shape if isinstance(item, np.ndarray) else f"{item.size} mode {item.mode}"
                raise InvalidInputError(
                    f"image column {self.columns[0]!r}: could not decode or resize the image at "
                    f"{_where(row, rid)} (found {shape}; target {self.channels_}x{self.size_[0]}x{self.size_[1]}; "
                    f"{type(exc).__name__}: {exc}). Fix: repair or drop that row."
                ) from exc
        return out

    # -- public -----------------------------------------------------------------------------------

    def fit(self, ds: datasets.Dataset, *, batch_size: int = 256) -> ImageFeaturizer:
        """Learn the output size, channel count, value scale and per-channel statistics."""
        self.fit_transform(ds, batch_size=batch_size)
        return self

    def fit_transform(self, ds: datasets.Dataset, *, batch_size: int = 256) -> np.ndarray:
        """Fit and return the features ``(n, c, h, w)`` float32 (two passes over the column)."""
        sizes: Counter[tuple[int, int]] = Counter()
        channels = 1
        int_max, float_max, has_int, has_float = 0.0, 0.0, False, False
        for row, rid, item in self._iter_raw(ds, batch_size):
            try:
                h, w, c = self._geometry(item)
            except Exception as exc:
                raise InvalidInputError(
                    f"image column {self.columns[0]!r}: unusable image at {_where(row, rid)} "
                    f"({type(exc).__name__}: {exc}). Fix: repair or drop that row."
                ) from exc
            if not isinstance(item, np.ndarray):
                item.close()  # only the header was read; pass 2 reopens it
            sizes[(h, w)] += 1
            channels = max(channels, c)
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
        out = self._fill(ds, batch_size)
        stats = _Welford(channels)
        for start in range(0, len(out), batch_size):
            block = out[start:start + batch_size]
            stats.update(block.transpose(0, 2, 3, 1).reshape(-1, channels).astype(np.float64))
        self.mean_ = stats.mean
        self.scale_ = _safe_scale(stats.std, stats.mean)
        self._normalize(out)
        self.n_features_out_ = int(np.prod(out.shape[1:]))
        return out

    def _normalize(self, out: np.ndarray) -> None:
        for c in range(self.channels_):
            out[:, c] -= np.float32(self.mean_[c])
            out[:, c] /= np.float32(self.scale_[c])

    def transform(self, ds: datasets.Dataset, *, batch_size: int = 256) -> np.ndarray:
        """Features ``(n, c, h, w)`` float32 with the fitted size, channels and statistics."""
        out = self._fill(ds, batch_size)
        self._normalize(out)
        return out


class TextFeaturizer:
    """Text columns → dense ``(n, d)`` float32.

    Default (offline, no model): scikit-learn ``TfidfVectorizer`` (``config.text_max_features``
    terms, sublinear tf), then ``TruncatedSVD`` to ``d = min(config.text_components, vocabulary - 1,
    rows - 1)`` dimensions (randomized, seeded with ``config.seed``), then standardization. With
    ``config.text_model`` set: embeddings of a local sentence-transformers model, standardized.
    Several text columns are joined with a space. A null text raises an error naming its row.

    Attributes
    ----------
    vectorizer_ : sklearn.feature_extraction.text.TfidfVectorizer or None
    svd_ : sklearn.decomposition.TruncatedSVD or None
    mean_, scale_ : numpy.ndarray, shape ``(d,)`` float64
    n_features_out_ : int
    """

    kind: Kind = "text"

    def __init__(self, columns: Sequence[str], config: FeaturizeConfig | None = None) -> None:
        self.columns = tuple(columns)
        self.config = config or FeaturizeConfig()
        self._model = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_model"] = None  # reloaded lazily from config.text_model
        return state

    def _iter_text(self, ds: datasets.Dataset, batch_size: int) -> Iterator[list[str]]:
        for start, table in _iter_batches(ds, self.columns, batch_size):
            parts = []
            for name in self.columns:
                col = table.column(name).combine_chunks()
                if col.null_count:
                    i = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
                    ids = _batch_row_ids(table)
                    raise InvalidInputError(
                        f"text column {name!r} has a null at {_where(start + i, None if ids is None else ids[i])}; "
                        "expected a string on every row. Fix: fill with '' or drop those rows."
                    )
                parts.append(col.to_pylist())
            yield parts[0] if len(parts) == 1 else [" ".join(p) for p in zip(*parts)]

    def _embedder(self):
        if self._model is None:
            path = Path(str(self.config.text_model)).expanduser()
            if not path.exists():
                raise InvalidInputError(
                    f"text_model must be a local folder of a sentence-transformers model; nothing at {path}. "
                    "Fix: download the model once and pass its folder, or text_model=None for TF-IDF."
                )
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise InvalidInputError(
                    f"text_model={str(path)!r} needs the optional package sentence-transformers, which is not "
                    "installed. Fix: pip install sentence-transformers, or text_model=None for the TF-IDF "
                    "featurizer."
                ) from exc
            self._model = SentenceTransformer(str(path), device="cpu")
        return self._model

    def _embed(self, docs: list[str], batch_size: int) -> np.ndarray:
        return np.asarray(self._embedder().encode(docs, batch_size=min(batch_size, 256), convert_to_numpy=True,
                                                  show_progress_bar=False), dtype=np.float64)

    def fit_transform(self, ds: datasets.Dataset, *, batch_size: int = 1024) -> np.ndarray:
        """Fit and return the features ``(n, d)`` float32."""
        if self.config.text_model is not None:
            self.vectorizer_, self.svd_ = None, None
            Z = np.concatenate([self._embed(docs, batch_size) for docs in self._iter_text(ds, batch_size)])
        else:
            from sklearn.decomposition import TruncatedSVD
            from sklearn.feature_extraction.text import TfidfVectorizer

            self.vectorizer_ = TfidfVectorizer(max_features=self.config.text_max_features, sublinear_tf=True,
                                               dtype=np.float32)
            docs = (doc for batch in self._iter_text(ds, batch_size) for doc in batch)
            try:
                S = self.vectorizer_.fit_transform(docs)
            except ValueError as exc:  # empty vocabulary
                raise InvalidInputError(
                    f"text columns {list(self.columns)} gave no terms ({exc}). Fix: check the column holds text."
                ) from exc
            d = min(self.config.text_components, S.shape[1] - 1, S.shape[0] - 1)
            if d < 1:
                raise InvalidInputError(
                    f"text featurizer needs at least 2 rows and 2 distinct terms; found {S.shape[0]} row(s), "
                    f"{S.shape[1]} term(s). Fix: give more text."
                )
            self.svd_ = TruncatedSVD(n_components=d, algorithm="randomized", random_state=self.config.seed)
            Z = self.svd_.fit_transform(S).astype(np.float64)
        stats = _Welford(Z.shape[1])
        stats.update(Z)
        self.mean_, self.scale_ = stats.mean, _safe_scale(stats.std, stats.mean)
        self.n_features_out_ = Z.shape[1]
        return ((Z - self.mean_) / self.scale_).astype(np.float32)

    def fit(self, ds: datasets.Dataset, *, batch_size: int = 1024) -> TextFeaturizer:
        self.fit_transform(ds, batch_size=batch_size)
        return self

    def transform(self, ds: datasets.Dataset, *, batch_size: int = 1024) -> np.ndarray:
        """Features ``(n, d)`` float32 with the fitted vocabulary, SVD and statistics."""
        out = np.empty((ds.num_rows, self.n_features_out_), dtype=np.float32)
        start = 0
        for docs in self._iter_text(ds, batch_size):
            if self.svd_ is None:
                Z = self._embed(docs, batch_size)
            else:
                Z = self.svd_.transform(self.vectorizer_.transform(docs))
            out[start:start + len(docs)] = (Z - self.mean_) / self.scale_
            start += len(docs)
        return out


Featurizer = TabularFeaturizer | ImageFeaturizer | TextFeaturizer
_FEATURIZERS: dict[str, type] = {"tabular": TabularFeaturizer, "image": ImageFeaturizer, "text": TextFeaturizer}


def featurize(
    ds: datasets.Dataset,
    roles: ColumnRoles,
    *,
    fitted: Featurizer | None = None,
    batch_size: int = 1024,
    config: FeaturizeConfig | None = None,
) -> tuple[np.ndarray, Featurizer]:
    """Turn the feature columns into a float32 array; fit a featurizer or reuse a fitted one.

    Deterministic: the same data and config give the same array. Rows are read in batches of
    ``batch_size``; memory is bounded by the output (and, for TF-IDF, its sparse matrix).

    Parameters
    ----------
    ds : datasets.Dataset
        ``n`` rows.
    roles : ColumnRoles
        From :func:`resolve_columns`.
    fitted : TabularFeaturizer, ImageFeaturizer or TextFeaturizer, optional
        A featurizer fitted on other data (e.g. the training split); it must be of ``roles.kind``
        and use the same columns. Not refitted.
    batch_size : int, default 1024
        Rows read per batch.
    config : FeaturizeConfig, optional
        Settings for a new featurizer; not allowed together with ``fitted`` (it carries its own).

    Returns
    -------
    X : numpy.ndarray, float32
        ``(n, d)`` for tabular and text, ``(n, c, h, w)`` for images; rows in dataset order.
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
    if fitted is None:
        featurizer = _FEATURIZERS[roles.kind](roles.feature_columns, config)
        X = featurizer.fit_transform(ds, batch_size=batch_size)
    else:
        if config is not None:
            raise InvalidInputError("pass either fitted= or config=, not both: a fitted featurizer keeps its config.")
        if fitted.kind != roles.kind or tuple(fitted.columns) != tuple(roles.feature_columns):
            raise InvalidInputError(
                f"the fitted featurizer is {fitted.kind} on {list(fitted.columns)}; the roles ask for "
                f"{roles.kind} on {list(roles.feature_columns)}. Fix: resolve the same columns as at fit time."
            )
        featurizer = fitted
        X = featurizer.transform(ds, batch_size=batch_size)
    return check_features(X, name="featurized X"), featurizer


# --------------------------------------------------------------------------------------------------
# decisions → dataset
# --------------------------------------------------------------------------------------------------



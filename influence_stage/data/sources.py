"""Sources: any supported input (Dataset, DatasetDict, DataFrame, arrays, local files, a hub id) →
a ``datasets.Dataset`` with a stable ``row_id`` column.

The data layer, one module per job: ``sources`` (this one: loading, row ids), ``columns`` (which
column is the label, which are features, of what kind), ``labels`` (label values ↔ codes),
``featurize`` (tabular | image | text → ``X`` float32, read in Arrow batches so memory stays bounded
by the output array), ``fingerprint`` (content hashes), ``noise`` (label-noise injection). The way
back, decisions → a cleaned dataset, is ``influence_stage.decisions.apply``.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pandas as pd
import pyarrow as pa

from influence_stage._checks import check_features
from influence_stage.data.arrow import ADDED_ROW_ID, ROW_ID, arrow_column, in_memory_dataset, value_dtype
from influence_stage.data.columns import check_label_present, label_not_found
from influence_stage.errors import (
    InfluenceStageError,
    InvalidInputError,
    InvalidTypeError,
)

logger = logging.getLogger(__name__)


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

# PIL modes read as one grey channel; every other mode is converted to RGB.


# --------------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------------


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
        # One Arrow array per row of X transposed (zero-copy views), one table, no per-column conversion.
        by_column = np.ascontiguousarray(X.T)
        arrays = [pa.array(by_column[j]) for j in range(X.shape[1])]
        labels = pa.array(y.tolist() if y.dtype == object else y, type=label_type)
        features = datasets.Features({**{name: datasets.Value(X.dtype.name) for name in names},
                                      label_column: label_feature})
        table = pa.Table.from_arrays([*arrays, labels], names=[*names, label_column])
        return in_memory_dataset(*_with_row_id(table.cast(features.arrow_schema), features))
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


def _with_row_id(table: pa.Table, features: datasets.Features) -> tuple[pa.Table, datasets.Features]:
    """``table`` and ``features`` with the stage's ``row_id`` (``0..n-1``) appended when absent.

    Built data gets its row ids before it becomes a Dataset: one Dataset construction instead of
    two (each re-serialises every feature of a wide table). ``ensure_row_id`` then checks them.
    """
    if ROW_ID in table.column_names:
        return table, features
    features = datasets.Features({**features, ROW_ID: datasets.Value("int64", id=ADDED_ROW_ID)})
    return table.append_column(ROW_ID, pa.array(np.arange(table.num_rows, dtype=np.int64))), features


def _from_pandas(df: pd.DataFrame) -> datasets.Dataset:
    try:
        # What Dataset.from_pandas does, without hashing the whole table for datasets' fingerprint.
        table = pa.Table.from_pandas(df, preserve_index=False)
        return in_memory_dataset(*_with_row_id(table, datasets.Features.from_arrow_schema(table.schema)))
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
    the Hugging Face cache. The dataset's ``_fingerprint`` is ``source_fingerprint`` of the
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
    (datasets, frames, arrays) and hub ids are left to ``load_source``.

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
        ds = _pick_split(source, split, "the DatasetDict")
    elif isinstance(source, (datasets.IterableDataset, datasets.IterableDatasetDict)):
        raise InvalidTypeError(
            "streaming (Iterable) datasets are not supported: every row is scored, so the data must be "
            "materialised. Fix: load without streaming=True."
        )
    elif isinstance(source, pd.DataFrame):
        if label_column not in [str(c) for c in source.columns]:  # named before a row_id is added
            raise label_not_found(label_column, [str(c) for c in source.columns])
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
        from datasets.table import InMemoryTable

        if isinstance(ds.data, InMemoryTable) and ds._indices is None:
            # Dataset.add_column, without re-hashing a wide table for datasets' fingerprint. Memory-mapped
            # data keeps add_column, which pickles as references to its files rather than as the rows.
            features = ds.features
            features[ROW_ID] = datasets.Value("int64", id=ADDED_ROW_ID)
            table = ds.data.table.append_column(ROW_ID, pa.array(np.arange(ds.num_rows, dtype=np.int64)))
            return in_memory_dataset(table, features, like=ds)
        return ds.add_column(ROW_ID, np.arange(ds.num_rows, dtype=np.int64),
                             feature=datasets.Value("int64", id=ADDED_ROW_ID))
    feature = ds.features[ROW_ID]
    dtype = value_dtype(feature)
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


# --------------------------------------------------------------------------------------------------
# labels
# --------------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------------
# featurizers
# --------------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------------
# decisions → dataset
# --------------------------------------------------------------------------------------------------



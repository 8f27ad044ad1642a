"""Local files as a ``datasets.Dataset``: parquet / csv / tsv / json (optionally compressed) by suffix,
folders of them (split by ``datasets``' naming rules) and ``save_to_disk`` folders, read by content
(never through a cache), plus the cheap checks before any work (``check_local_source``).
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import pandas as pd
import pyarrow as pa

from influence_stage.data.in_memory import pick_split
from influence_stage.errors import InfluenceStageError, InvalidInputError

logger = logging.getLogger(__name__)


# File suffix → (datasets packaged builder, its extra keyword arguments).
FILE_FORMATS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    ".parquet": ("parquet", ()),
    ".pq": ("parquet", ()),
    ".csv": ("csv", ()),
    ".tsv": ("csv", (("sep", "\t"),)),
    ".json": ("json", ()),
    ".jsonl": ("json", ()),
    ".ndjson": ("json", ()),
}
COMPRESSION_SUFFIXES = {".gz", ".bz2", ".xz", ".zst"}
SAVED_DATASET_FILES = ("dataset_info.json", "state.json")
SAVED_DATASETDICT_FILE = "dataset_dict.json"


def file_format(path: Path) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSION_SUFFIXES:
        suffixes = suffixes[:-1]
    return FILE_FORMATS.get(suffixes[-1]) if suffixes else None


def looks_like_path(source: str) -> bool:
    """True when a string that names nothing on disk was meant as a path, not a hub id."""
    path = Path(source).expanduser()
    if source.startswith((".", "/", "~")) or "\\" in source or source.count("/") > 1:
        return True
    if file_format(path) is not None:
        return True
    return str(path.parent) not in ("", ".") and path.parent.exists()


def folder_data_files(folder: Path) -> dict[str, list[str]]:
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
        str(split): sorted(f for f in paths if file_format(Path(f)) is not None) for split, paths in files.items()
    }
    by_split = {k: v for k, v in by_split.items() if v}
    if not by_split:
        raise InvalidInputError(
            f"folder {folder} holds no parquet / csv / json files. "
            "Fix: point to a folder of such files, a single file, or a save_to_disk folder."
        )
    return by_split


def load_files(files_by_split: dict[str, list[str]], split: str | None, where: str,
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
    formats = {file_format(Path(f)) for f in files}
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


def read_json_file(path: str) -> pa.Table:
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


def read_one_file(path: str, builder: str, extra: dict[str, str]) -> pa.Table:
    if builder == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path)
    if builder == "csv":  # pandas' inference, as datasets' csv builder does
        return pa.Table.from_pandas(pd.read_csv(path, **extra), preserve_index=False)
    return read_json_file(path)


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
    tables = [read_one_file(str(f), builder, dict(extra or {})) for f in files]
    if len(tables) == 1:
        table = tables[0]
    else:
        table = pa.concat_tables(tables, promote_options="default")
    from datasets.table import InMemoryTable

    return datasets.Dataset(InMemoryTable(table), fingerprint=source_fingerprint(files))


def is_saved_dataset(path: Path) -> bool:
    """``path`` is a folder written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``."""
    return path.is_dir() and (all((path / f).is_file() for f in SAVED_DATASET_FILES)
                              or (path / SAVED_DATASETDICT_FILE).is_file())


def load_saved(path: Path, split: str | None) -> datasets.Dataset:
    """A ``save_to_disk`` folder (memory-mapped); a ``DatasetDict``'s split by ``pick_split``."""
    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        return pick_split(loaded, split, f"the DatasetDict saved at {path}")
    return loaded


def load_folder(path: Path, split: str | None, cache_dir: str | None) -> datasets.Dataset:
    """A folder of parquet / csv / json files of one format (splits by ``datasets``' naming rules)."""
    return load_files(folder_data_files(path), split, f"folder {path}", cache_dir)


def load_file(path: Path, split: str | None, cache_dir: str | None) -> datasets.Dataset:
    """One parquet / csv / tsv / json file, its format read off its suffix."""
    if file_format(path) is None:
        raise InvalidInputError(
            f"file {path} has an unsupported suffix {''.join(path.suffixes)!r}; expected one of "
            f"{sorted(FILE_FORMATS)} (optionally compressed). Fix: convert it to parquet, csv or json."
        )
    return load_files({"train": [str(path)]}, split, f"file {path}", cache_dir)


def load_path(path: Path, split: str | None, cache_dir: str | None) -> datasets.Dataset:
    """A local file or folder: a ``save_to_disk`` folder, a folder of data files, or one file."""
    if is_saved_dataset(path):
        return load_saved(path, split)
    if path.is_dir():
        return load_folder(path, split, cache_dir)
    return load_file(path, split, cache_dir)


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
        if isinstance(source, os.PathLike) or looks_like_path(text):
            raise InvalidInputError(
                f"no file or folder at {path.absolute()}; expected a parquet / csv / json file, a folder of "
                "them, or a save_to_disk folder. Fix: check the path."
            )
        return  # a hub id
    if path.is_dir():
        if all((path / f).is_file() for f in SAVED_DATASET_FILES) or (path / SAVED_DATASETDICT_FILE).is_file():
            return
        files = [Path(f) for fs in folder_data_files(path).values() for f in fs]
    else:
        if file_format(path) is None:
            raise InvalidInputError(
                f"file {path} has an unsupported suffix {''.join(path.suffixes)!r}; expected one of "
                f"{sorted(FILE_FORMATS)} (optionally compressed). Fix: convert it to parquet, csv or json."
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
        builder, extra = file_format(f) or ("", ())
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


__all__ = [
    "COMPRESSION_SUFFIXES", "FILE_FORMATS", "SAVED_DATASETDICT_FILE", "SAVED_DATASET_FILES", "check_local_source",
    "file_format", "folder_data_files", "is_saved_dataset", "load_file", "load_files", "load_folder", "load_path",
    "load_saved", "looks_like_path", "read_local_files",
    "source_fingerprint",
]

"""The shards of a text corpus: finding them, counting their rows, checking their columns, noticing changes.

``find_shards`` resolves a file, a folder or a glob to shard paths of one format; ``count_rows``
counts a shard's rows from its metadata (or its lines); ``shard_columns`` reads a shard's column
names and the text column's Arrow type without reading its rows, so ``check_shard_columns`` can
refuse a corpus whose shards disagree (a shard with another text column, or a text column of
numbers that a streaming reader would silently cast to strings) before anything is scored.
``parquet_batches`` reads Parquet shards in batches with pyarrow.
``stamps`` records each shard's size and modification time when a corpus is opened; a pass that
finds them changed (a shard removed or rewritten mid-run) stops with ``InvalidInputError`` instead
of scoring or publishing rows that no longer match the inventory.
"""

from __future__ import annotations

import glob as globlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from influence_stage.errors import InvalidInputError

#: Shard suffixes and the ``datasets`` builder that reads them.
FORMATS: dict[str, str] = {".parquet": "parquet", ".arrow": "arrow", ".jsonl": "json", ".json": "json"}
#: JSON files ``Dataset.save_to_disk`` writes next to its Arrow shards: metadata, not documents.
SAVE_TO_DISK_METADATA = frozenset({"dataset_info.json", "state.json", "dataset_dict.json"})
#: Arrow types a text column may have.
TEXT_TYPES = (pa.string(), pa.large_string())


def find_shards(source: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """The shard files of ``source`` (a file, a folder searched recursively, a glob, or a list), of one format."""
    if isinstance(source, (list, tuple)):
        files = [Path(p) for p in source]
    else:
        text = str(source)
        if any(ch in text for ch in "*?["):
            files = [Path(p) for p in sorted(globlib.glob(text))]
        elif Path(text).is_dir():
            files = sorted(p for p in Path(text).rglob("*") if p.is_file() and p.suffix in FORMATS
                           and p.name not in SAVE_TO_DISK_METADATA
                           and not any(part.startswith(".") for part in p.relative_to(text).parts))
        else:
            files = [Path(text)]
    if not files:
        raise InvalidInputError(f"no corpus shards found at {source!r}; expected files ending in "
                                f"{sorted(FORMATS)} (a file, a folder or a glob).")
    for f in files:
        if not f.is_file():
            raise InvalidInputError(f"corpus shard {str(f)!r} does not exist.")
        if f.suffix not in FORMATS:
            raise InvalidInputError(f"corpus shard {str(f)!r} has an unsupported suffix {f.suffix!r}; expected one of "
                                    f"{sorted(FORMATS)}.")
    kinds = {FORMATS[f.suffix] for f in files}
    if len(kinds) > 1:
        raise InvalidInputError(f"corpus shards mix formats {sorted(kinds)}; give shards of one format.")
    return files


def _arrow_schema(path: Path) -> pa.Schema:
    with pa.memory_map(str(path)) as source:
        try:
            return pa.ipc.open_stream(source).schema
        except pa.ArrowInvalid:
            source.seek(0)
            return pa.ipc.open_file(source).schema


def count_rows(path: Path, builder: str) -> int:
    """Rows of one shard: Parquet metadata, the record batches of an Arrow file, non-blank JSON lines."""
    if builder == "parquet":
        return int(pq.ParquetFile(path).metadata.num_rows)
    if builder == "arrow":
        with pa.memory_map(str(path)) as source:
            try:
                reader = pa.ipc.open_stream(source)
            except pa.ArrowInvalid:
                source.seek(0)
                return int(pa.ipc.open_file(source).read_all().num_rows)
            return sum(batch.num_rows for batch in reader)
    count = 0
    with open(path, "rb") as fh:
        for line in fh:
            count += bool(line.strip())
    return count


def shard_columns(path: Path, builder: str, text_column: str) -> tuple[list[str], pa.DataType | None]:
    """A shard's column names and its text column's Arrow type (None: JSON, or no such column), rows unread.

    A JSON Lines shard's columns are the keys of its first non-blank line; an empty one has none.
    """
    if builder in ("parquet", "arrow"):
        schema = pq.read_schema(path) if builder == "parquet" else _arrow_schema(path)
        names = [n for n in schema.names if n != "__index_level_0__"]
        return names, schema.field(text_column).type if text_column in schema.names else None
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    raise InvalidInputError(f"corpus shard {str(path)!r} is not JSON Lines: {exc}") from exc
                return (list(row) if isinstance(row, dict) else []), None
    return [], None


def check_shard_columns(files: Sequence[Path], builder: str, text_column: str, id_column: str | None) -> None:
    """Every shard holds the text (and id) column, a text column of strings, and the first shard's columns.

    Raises
    ------
    InvalidInputError
        Naming the first shard that differs, its columns and what was expected.
    """
    first: list[str] | None = None
    for f in files:
        columns, text_type = shard_columns(f, builder, text_column)
        if not columns and builder == "json":
            continue  # an empty JSON Lines shard: no rows, nothing to compare (its row count tells)
        for col, what in ((text_column, "text"), (id_column, "id")):
            if col is not None and col not in columns:
                raise InvalidInputError(f"corpus shard {str(f)!r} has no {what} column {col!r}; its columns are "
                                        f"{columns}. Every shard must hold the same columns. Fix: rename the column "
                                        "in that shard, or leave the shard out.")
        if text_type is not None and text_type not in TEXT_TYPES:
            raise InvalidInputError(f"corpus shard {str(f)!r}: text column {text_column!r} holds {text_type}, not "
                                    "strings. Fix: give a shard whose text column holds the documents.")
        if first is None:
            first = columns
        elif sorted(columns) != sorted(first):
            raise InvalidInputError(f"corpus shard {str(f)!r} has the columns {columns}, but {str(files[0])!r} has "
                                    f"{first}; every shard must hold the same columns.")


def parquet_batches(files: Sequence[Path], columns: list[str] | None, batch_size: int
                    ) -> Iterator[dict[str, list[Any]]]:
    """Parquet shards read batch by batch with pyarrow (what ``datasets``' Parquet builder uses
    underneath), as ``{column: values}`` dicts like ``datasets``' ``iter``. ``datasets``' streaming
    reader turns each whole row group into one table first and kept several times a row group's
    size resident (about 230 MB for 125k-row groups of short documents, against 70 MB here); the
    rows and values are the same, a batch ends at the end of a shard."""
    for f in files:
        with pq.ParquetFile(str(f)) as shard:
            for batch in shard.iter_batches(batch_size=batch_size, columns=columns):
                yield batch.to_pydict()


def stamps(files: Sequence[Path]) -> list[tuple[int, int]]:
    """``(size, mtime_ns)`` of each shard."""
    out = []
    for f in files:
        st = os.stat(f)
        out.append((int(st.st_size), int(st.st_mtime_ns)))
    return out


def changed_shards(files: Sequence[Path], recorded: Sequence[tuple[int, int]]) -> list[str]:
    """The shards that are gone or whose size or modification time differs from ``recorded``, described."""
    out = []
    for f, (size, mtime) in zip(files, recorded):
        try:
            st = os.stat(f)
        except FileNotFoundError:
            out.append(f"{str(f)!r} disappeared")
            continue
        if (int(st.st_size), int(st.st_mtime_ns)) != (size, mtime):
            out.append(f"{str(f)!r} changed")
    return out


def shards_changed_error(files: Sequence[Path], recorded: Sequence[tuple[int, int]]) -> InvalidInputError | None:
    """The error a pass raises when a shard disappeared or changed since the corpus was opened (else None)."""
    changed = changed_shards(files, recorded)
    if not changed:
        return None
    return InvalidInputError(f"corpus shard {changed[0]} since the run began"
                             f"{f' (and {len(changed) - 1} more)' if len(changed) > 1 else ''}; the inventory no "
                             "longer matches the corpus and nothing is published. Fix: keep the shards in place "
                             "until the run ends, then run again.")


__all__ = ["FORMATS", "SAVE_TO_DISK_METADATA", "TEXT_TYPES", "changed_shards", "check_shard_columns", "count_rows",
           "find_shards", "parquet_batches", "shard_columns", "shards_changed_error", "stamps"]

"""Unlabeled text corpora read as streams from local shards, and the cheap checks before scoring.

``Corpus`` is a set of local shards (Parquet, Arrow stream files as ``Dataset.save_to_disk``
writes them, or JSON Lines) read as streams: Parquet shards batch by batch with pyarrow (what
``datasets``' Parquet builder uses underneath, without its copy of each whole row group), the
others with ``datasets``' iterable datasets (``streaming=True``). Rows arrive in batches and
nothing is held whole, so a corpus larger than memory can be scored (one
pass per member, see ``influence_stage.engine.causal_lm``). Row ``i`` is the ``i``-th row of the
shards in the order given (a folder: sorted by name).

``inventory`` is the cheap pass before scoring: per document its length, an exact-content hash
(sha256 of the UTF-8 text) and a near-duplicate key, and a status:

- ``"ok"``: scored;
- ``"empty"``: no text after stripping whitespace;
- ``"too short"`` / ``"too long"``: fewer than ``min_chars`` / more than ``max_chars`` characters;
- ``"duplicate"``: the same bytes as an earlier document (its row in ``duplicate_of``), when
  deduplication is asked for;
- ``"not text"``: not a string (only with ``skip_invalid``; else an error names the row).

Near-duplicate keys are reported here, never acted on: two documents share a key when their
normalised text (lower case, every run of non-alphanumeric characters turned into one space) is
equal but their bytes are not (whitespace, case or punctuation variants of one text);
``near_duplicate_groups`` lists them. Removing near duplicates before scoring is MinHash LSH
(``influence_stage.data.dedup``, the curation flow's ``near_dedup``).

Finding the shards, checking that they hold the same columns and noticing a shard that disappears
mid-run live in ``influence_stage.data.corpus_shards``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from influence_stage.data.corpus_shards import (FORMATS, check_shard_columns, count_rows, find_shards,
                                               parquet_batches, shards_changed_error, stamps)
from influence_stage.errors import InvalidInputError, InvalidTypeError
from influence_stage.memory import release_free_memory

logger = logging.getLogger(__name__)

#: Statuses of ``inventory``.
STATUSES: tuple[str, ...] = ("ok", "empty", "too short", "too long", "duplicate", "not text")
#: Rows per batch read from the shards.
READ_BATCH = 1024
#: Rows taken from one shard at a time when a shuffled pass mixes the shards.
MIX_ROWS = 16
#: Documents held by the seeded shuffle buffer of ``iter_texts(shuffle_seed=...)``.
SHUFFLE_BUFFER = 4096
_NON_ALNUM = re.compile(r"[^0-9a-z]+")
# inventory's status codes (indices of _CODE_STATUS); _OK: of acceptable length, a duplicate or not
_OK, _EMPTY, _TOO_SHORT, _TOO_LONG, _DUPLICATE, _NOT_TEXT = range(6)
_CODE_STATUS = ("ok", "empty", "too short", "too long", "duplicate", "not text")


def content_hash(text: str) -> str:
    """Exact-duplicate key: sha256 of the UTF-8 bytes, 32 hex digits."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def near_key(text: str) -> str:
    """Near-duplicate key: hash of the text lower-cased with non-alphanumeric runs as one space."""
    return content_hash(_NON_ALNUM.sub(" ", text.lower()).strip())


class Corpus:
    """A text corpus in local shards, read as a stream (``datasets`` iterable dataset).

    Parameters
    ----------
    source : path, glob or list of paths
        One shard, a folder of shards (all files with a suffix of ``FORMATS``, sorted, searched
        recursively, without ``save_to_disk``'s metadata JSON), a glob,
        or a list of shards, all of one format.
    text_column : str
        The column holding the documents.
    id_column : str, optional
        A column of document ids (default: the row number).

    Raises
    ------
    InvalidInputError
        No shards, mixed formats, or a text / id column that is not there (the message lists the
        columns), or a text column that is not a string column.
    """

    def __init__(self, source: Any, *, text_column: str = "text", id_column: str | None = None) -> None:
        self.files = find_shards(source)
        self._stamps = stamps(self.files)
        self.builder = FORMATS[self.files[0].suffix]
        self.text_column = text_column
        self.id_column = id_column
        self._n_rows: int | None = None
        columns, text_type = self._schema()
        self.columns = columns
        for col, what in ((text_column, "text"), (id_column, "id")):
            if col is not None and col not in columns:
                raise InvalidInputError(f"the corpus has no {what} column {col!r}; its columns are {columns}. Fix: "
                                        f"pass {what}_column= with one of them.")
        if text_type is not None and text_type not in ("string", "large_string"):
            raise InvalidInputError(f"text column {text_column!r} holds {text_type}, not strings; choose a column "
                                    "of documents.")
        check_shard_columns(self.files, self.builder, text_column, id_column)

    def _guarded(self, batches: Iterator[Any]) -> Iterator[Any]:
        """``batches`` of one pass, checked against the shards' stamps before, after and on a read error:
        a shard that disappeared or changed since the corpus was opened raises InvalidInputError."""
        try:
            yield from batches
        except Exception as exc:
            err = shards_changed_error(self.files, self._stamps)
            if err is not None:
                raise err from exc
            raise
        self._check_unchanged()

    def _check_unchanged(self) -> None:
        """InvalidInputError when a shard disappeared or changed since the corpus was opened."""
        err = shards_changed_error(self.files, self._stamps)
        if err is not None:
            raise err

    def _stream(self) -> Any:
        import datasets

        ds = datasets.load_dataset(self.builder, data_files=[str(f) for f in self.files], split="train",
                                   streaming=True)
        return ds

    def _schema(self) -> tuple[list[str], str | None]:
        ds = self._stream()
        features = getattr(ds, "features", None)
        if features is not None:
            text = features.get(self.text_column)
            if text is None or type(text).__name__ == "Json":  # mixed JSON values: checked row by row
                return list(features), None
            dtype = getattr(text, "dtype", None)
            return list(features), dtype if isinstance(dtype, str) else type(text).__name__
        try:  # JSON Lines: the schema comes with the first rows
            first = next(iter(ds))
        except StopIteration:
            return [], None
        return list(first), None

    def __len__(self) -> int:
        """Rows in all shards (counted from metadata, or the lines of JSON Lines shards, once)."""
        if self._n_rows is None:
            self._n_rows = sum(count_rows(f, self.builder) for f in self.files)
        return self._n_rows

    def fingerprint(self) -> str:
        """``sha256`` of the shards' bytes (``sources.source_fingerprint``), plus the column names used."""
        from influence_stage.data.sources import source_fingerprint

        self._check_unchanged()
        return hashlib.sha256(f"{source_fingerprint(self.files)}|{self.text_column}|{self.id_column}".encode()
                              ).hexdigest()

    def iter_batches(self, columns: Sequence[str] | None = None, batch_size: int = READ_BATCH
                     ) -> Iterator[dict[str, list[Any]]]:
        """Batches of rows as ``{column: values}``, in shard order (one streaming pass)."""
        self._check_unchanged()
        cols = list(columns) if columns is not None else None
        if self.builder == "parquet":
            yield from self._guarded(parquet_batches(self.files, cols, batch_size))
            return
        ds = self._stream()
        if cols is not None:
            ds = ds.select_columns(cols)
        yield from self._guarded(ds.iter(batch_size=batch_size))

    def shard_rows(self) -> list[int]:
        """Rows of each shard, in ``files`` order (counted once)."""
        if getattr(self, "_shard_rows", None) is None:
            self._shard_rows = [count_rows(f, self.builder) for f in self.files]
            self._n_rows = sum(self._shard_rows)
        return list(self._shard_rows)

    def _shard_batches(self, k: int, first: int, last: int) -> Iterator[list[Any]]:
        """Text batches of shard ``k``'s rows ``first .. last - 1`` (one streaming read of that shard)."""
        import datasets

        self._check_unchanged()
        if self.builder == "parquet":
            batches = parquet_batches([self.files[k]], [self.text_column], READ_BATCH)
        else:
            ds = datasets.load_dataset(self.builder, data_files=[str(self.files[k])], split="train", streaming=True)
            batches = ds.select_columns([self.text_column]).iter(batch_size=READ_BATCH)
        i = 0
        for batch in self._guarded(batches):
            texts = batch[self.text_column]
            lo, hi = max(first - i, 0), min(last - i, len(texts))
            if lo < hi:
                yield texts[lo:hi]
            i += len(texts)
            if i >= last:
                return

    def _mixed_batches(self, rng: np.random.Generator, rows: np.ndarray | None) -> Iterator[list[Any]]:
        """Every row once, in batches drawn from all shards: each shard is read from a seeded random
        offset round to it, and each next ``MIX_ROWS`` rows come from a shard picked at random (weighted by
        the rows it has left), so the first documents come from every shard and every offset."""
        sizes = self.shard_rows()
        starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

        def rotated(k: int) -> Iterator[tuple[int, list[Any]]]:
            off = int(rng.integers(sizes[k])) if sizes[k] else 0
            for first, last in ((off, sizes[k]), (0, off)):
                pos = first
                for texts in self._shard_batches(k, first, last):
                    for s in range(0, len(texts), MIX_ROWS):
                        yield int(starts[k]) + pos, texts[s:s + MIX_ROWS]
                        pos += len(texts[s:s + MIX_ROWS])

        its = {k: rotated(k) for k in rng.permutation(len(sizes)).tolist() if sizes[k]}
        left = {k: sizes[k] for k in its}
        while its:
            keys = list(its)
            weights = np.asarray([left[k] for k in keys], dtype=np.float64)
            k = keys[int(rng.choice(len(keys), p=weights / weights.sum()))]
            item = next(its[k], None)
            if item is None:
                del its[k]
                continue
            at, texts = item
            left[k] = max(left[k] - len(texts), 1)
            yield texts if rows is None else [t for j, t in enumerate(texts) if rows[at + j]]

    def iter_texts(self, shuffle_seed: int | None = None, *, rows: np.ndarray | None = None) -> Iterator[Any]:
        """The documents, one streaming pass; ``rows`` (``(n,) bool``) keeps only those rows.

        With ``shuffle_seed``: every document once, in an order drawn from all shards (each
        shard read from a seeded random offset round to it, each next batch of rows from a shard
        picked at random), then reordered by a seeded shuffle buffer of ``SHUFFLE_BUFFER``
        documents (the same seed, the same order). A training cycle that reads only the first
        documents of such a pass sees rows of every shard and every offset, not a prefix of the
        first shard.
        """
        def ordered() -> Iterator[Any]:
            i = 0
            for batch in self.iter_batches([self.text_column]):
                for text in batch[self.text_column]:
                    if rows is None or rows[i]:
                        yield text
                    i += 1

        if shuffle_seed is None:
            yield from ordered()
            return
        rng = np.random.default_rng(int(shuffle_seed))
        buffer: list[Any] = []
        mixed = (text for texts in self._mixed_batches(rng, rows) for text in texts)
        for text in mixed:
            if len(buffer) < SHUFFLE_BUFFER:
                buffer.append(text)
                continue
            j = int(rng.integers(len(buffer)))
            yield buffer[j]
            buffer[j] = text
        rng.shuffle(buffer)
        yield from buffer

    def write_parquet_shards(self, folder: str | os.PathLike, rows: np.ndarray, *,
                             extra: dict[str, np.ndarray] | None = None, max_rows: int | None = None,
                             max_bytes: int | None = None, prefix: str = "part") -> list[Path]:
        """Stream the rows flagged in ``rows`` (every column, plus ``extra`` columns indexed by row) into
        Parquet shards ``<prefix>-00000.parquet``, ... under ``folder``, each of at most ``max_rows``
        rows and about ``max_bytes`` bytes of Arrow data (a shard holds at least one row); None: no
        limit. Returns the shard paths in order (one, possibly of 0 rows, when nothing is kept)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths: list[Path] = []
        writer = None
        cur_rows = cur_bytes = 0
        schema = None

        def open_next() -> None:
            nonlocal writer, cur_rows, cur_bytes
            if writer is not None:
                writer.close()
            paths.append(folder / f"{prefix}-{len(paths):05d}.parquet")
            writer = pq.ParquetWriter(str(paths[-1]), schema)
            cur_rows = cur_bytes = 0

        start = 0
        try:
            for batch in self.iter_batches(None):
                n = len(next(iter(batch.values()))) if batch else 0
                table = pa.Table.from_pydict(batch)
                for name, values in (extra or {}).items():
                    table = table.append_column(name, pa.array(np.asarray(values)[start:start + n]))
                table = table.filter(pa.array(np.asarray(rows[start:start + n], dtype=bool)))
                start += n
                if schema is None:
                    schema = table.schema
                    open_next()
                while table.num_rows:
                    per_row = max(table.nbytes / table.num_rows, 1.0)
                    room = table.num_rows
                    if max_rows is not None:
                        room = min(room, max_rows - cur_rows)
                    if max_bytes is not None:
                        room = min(room, int((max_bytes - cur_bytes) // per_row))
                    if room <= 0:
                        if cur_rows == 0:
                            room = 1  # one row larger than the byte limit gets a shard of its own
                        else:
                            open_next()
                            continue
                    piece, table = table.slice(0, room), table.slice(room)
                    writer.write_table(piece)
                    cur_rows += piece.num_rows
                    cur_bytes += piece.nbytes
        finally:
            if writer is not None:
                writer.close()
        if schema is None:
            raise InvalidInputError("the corpus has 0 rows; nothing to write.")
        return paths

    def where(self, rows: np.ndarray) -> "CorpusView":
        """The documents whose ``rows`` flag is True, as a stream with the same interface."""
        return CorpusView(self, rows)

    def write_parquet(self, path: str | os.PathLike, rows: np.ndarray, *, extra: dict[str, np.ndarray] | None = None
                      ) -> int:
        """Stream the rows flagged in ``rows`` (every column, plus ``extra`` columns indexed by row)
        into one Parquet file; returns the rows written."""
        writer = None
        start = written = 0
        try:
            for batch in self.iter_batches(None):
                n = len(next(iter(batch.values()))) if batch else 0
                keep = np.asarray(rows[start:start + n], dtype=bool)
                table = pa.Table.from_pydict(batch)
                for name, values in (extra or {}).items():
                    table = table.append_column(name, pa.array(np.asarray(values)[start:start + n]))
                table = table.filter(pa.array(keep))
                if writer is None:
                    writer = pq.ParquetWriter(str(path), table.schema)
                writer.write_table(table)
                written += table.num_rows
                start += n
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            raise InvalidInputError("the corpus has 0 rows; nothing to write.")
        return written


@dataclass(frozen=True)
class CorpusView:
    """The documents of a ``Corpus`` whose flag in ``rows`` is True (what the scorer reads)."""

    corpus: Corpus
    rows: np.ndarray

    def __len__(self) -> int:
        return int(np.asarray(self.rows, dtype=bool).sum())

    def iter_texts(self, shuffle_seed: int | None = None) -> Iterator[Any]:
        return self.corpus.iter_texts(shuffle_seed, rows=np.asarray(self.rows, dtype=bool))


def inventory(corpus: Corpus, *, min_chars: int = 1, max_chars: int | None = None, dedup: bool = True,
              skip_invalid: bool = False, progress: bool = False) -> pd.DataFrame:
    """One streaming pass: each document's length, hashes and status (module docstring).

    Parameters
    ----------
    corpus : Corpus
    min_chars, max_chars : int
        Length bounds in characters after stripping surrounding whitespace (``max_chars`` None: no
        upper bound). Documents outside them get ``"too short"`` / ``"too long"``.
    dedup : bool
        Mark exact duplicates of an earlier document ``"duplicate"``.
    skip_invalid : bool
        Mark non-string documents ``"not text"`` instead of raising.

    Returns
    -------
    pandas.DataFrame
        One row per document, in corpus order: ``row`` (0..n-1), ``doc_id``, ``n_chars``,
        ``n_words``, ``content_hash``, ``near_key``, ``status``, ``duplicate_of`` (row of the first
        copy, -1 when none).

    Raises
    ------
    InvalidTypeError
        A document is not a string (``skip_invalid=False``); the message names its row.
    InvalidInputError
        Bad bounds, or an empty corpus.
    """
    if not isinstance(min_chars, int) or min_chars < 1:
        raise InvalidInputError(f"min_chars must be an int >= 1 (empty documents are never kept); found {min_chars!r}.")
    if max_chars is not None and (not isinstance(max_chars, int) or max_chars < min_chars):
        raise InvalidInputError(f"max_chars must be None or an int >= min_chars ({min_chars}); found {max_chars!r}.")
    cols = [corpus.text_column] + ([corpus.id_column] if corpus.id_column else [])
    # per document only numbers and bytes (no Python object lives past its batch): the hashes as Arrow
    # strings, the first 16 bytes of each sha256 for the exact-duplicate pass after the read
    ids: list[Any] = []
    n_chars, n_words, kind = array("q"), array("q"), bytearray()
    digests = bytearray()
    hash_parts: list[pa.Array] = []
    near_parts: list[pa.Array] = []
    bar = tqdm(total=len(corpus), desc="inventory", unit="doc", disable=not progress, leave=False)
    row = 0
    for batch in corpus.iter_batches(cols):
        texts = batch[corpus.text_column]
        if corpus.id_column:
            ids.extend(batch[corpus.id_column])
        hashes, nears = [], []
        for text in texts:
            if not isinstance(text, str):
                if not skip_invalid:
                    raise InvalidTypeError(f"document {row} of column {corpus.text_column!r} is "
                                           f"{type(text).__name__}, not a string. Fix: drop or fill it, or set "
                                           "skip_invalid to leave such rows out.")
                n_chars.append(0), n_words.append(0), hashes.append(""), nears.append("")
                kind.append(_NOT_TEXT), digests.extend(bytes(16))
                row += 1
                continue
            stripped = text.strip()
            digest = hashlib.sha256(text.encode("utf-8")).digest()[:16]
            digests.extend(digest)
            hashes.append(digest.hex())  # content_hash(text)
            n_chars.append(len(stripped))
            n_words.append(len(stripped.split()))
            nears.append(near_key(text) if stripped else "")
            if not stripped:
                kind.append(_EMPTY)
            elif len(stripped) < min_chars:
                kind.append(_TOO_SHORT)
            elif max_chars is not None and len(stripped) > max_chars:
                kind.append(_TOO_LONG)
            else:
                kind.append(_OK)
            row += 1
        hash_parts.append(pa.array(hashes, type=pa.string()))
        near_parts.append(pa.array(nears, type=pa.string()))
        bar.update(len(texts))
    bar.close()
    if row == 0:
        raise InvalidInputError(f"the corpus at {[str(f) for f in corpus.files][:3]} has 0 documents.")
    codes = np.frombuffer(bytes(kind), dtype=np.int8)
    dup_of = _first_copies(np.frombuffer(bytes(digests), dtype=np.dtype((np.void, 16))), codes)
    del digests
    codes = codes.copy()
    if dedup:
        codes[(codes == _OK) & (dup_of >= 0)] = _DUPLICATE
    frame = pd.DataFrame({"row": np.arange(row, dtype=np.int64),
                          "doc_id": ids if corpus.id_column else np.arange(row, dtype=np.int64),
                          "n_chars": np.frombuffer(n_chars, dtype=np.int64).copy(),
                          "n_words": np.frombuffer(n_words, dtype=np.int64).copy(),
                          "content_hash": pa.chunked_array(hash_parts, type=pa.string()).to_pandas(),
                          "near_key": pa.chunked_array(near_parts, type=pa.string()).to_pandas(),
                          "status": np.asarray(_CODE_STATUS, dtype=object)[codes],
                          "duplicate_of": dup_of})
    counts = frame["status"].value_counts().to_dict()
    logger.info("inventory: %d documents, %s", row, counts)
    return frame


def _first_copies(digests: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Exact duplicates after the read: for each text document, the row of the first document of
    acceptable length (code ``_OK``) with the same content hash when that row is earlier, else -1
    (also for non-text rows). The answer of one pass in order that remembers, per hash, the first
    such row; here by grouping the 16-byte digests with ``numpy.unique``, ``(n,) int64``."""
    n = len(codes)
    out = np.full(n, -1, dtype=np.int64)
    text = np.flatnonzero(codes != _NOT_TEXT)
    if len(text) == 0:
        return out
    _, group = np.unique(digests[text], return_inverse=True)
    first = np.full(int(group.max()) + 1, n, dtype=np.int64)
    ok = codes[text] == _OK
    np.minimum.at(first, group[ok], text[ok])
    earlier = first[group]
    hit = earlier < text
    out[text[hit]] = earlier[hit]
    return out


def near_duplicate_groups(frame: pd.DataFrame, *, limit: int | None = None) -> list[list[int]]:
    """Groups of rows that are near-duplicates of each other (same ``near_key``, more than one
    distinct ``content_hash``), largest first; reported, never removed.

    The rows whose key another row shares are found on the keys sorted by Arrow (a permutation and
    one sorted copy of the key column; no hash table or pandas group per key of a million-document
    corpus); only those few rows are grouped in pandas."""
    import pyarrow.compute as pc

    keys = _arrow_column(frame["near_key"])
    order = pc.array_sort_indices(keys, null_placement="at_end")
    ranked = keys.take(order)
    n_keys = len(ranked) - ranked.null_count  # missing keys sort last and never group
    ranked = ranked.slice(0, n_keys)
    same = pc.equal(ranked.slice(1), ranked.slice(0, max(n_keys - 1, 0))).to_numpy(zero_copy_only=False)
    shared_key = np.zeros(n_keys, dtype=bool)
    shared_key[1:] |= same
    shared_key[:-1] |= same
    shared_key &= pc.not_equal(ranked, "").to_numpy(zero_copy_only=False)  # no text, no key
    rows = np.sort(order.to_numpy()[:n_keys][shared_key])
    del keys, order, ranked, same, shared_key
    text = frame.iloc[rows][["near_key", "content_hash", "row"]]
    distinct = text.groupby("near_key", sort=False)["content_hash"].nunique()
    shared = text[text["near_key"].isin(distinct.index[distinct.to_numpy() > 1])]
    groups = [sorted(int(r) for r in rows) for _, rows in shared.groupby("near_key", sort=False)["row"]]
    groups.sort(key=lambda g: (-len(g), g[0]))
    release_free_memory()  # the sort's Arrow buffers, kept by Arrow's allocator otherwise
    return groups[:limit] if limit is not None else groups


def _arrow_column(column: pd.Series) -> Any:
    """A text column as one Arrow string array (its own buffers when it is already Arrow-backed)."""
    arr = pa.array(column.astype("str").array)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr

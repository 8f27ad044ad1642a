"""Token ids of a corpus, tokenized once per run and kept in one memory-mapped Arrow file.

The curation flow tokenizes its scored documents once (``TokenCache.build``) and every pass reads
the ids from here: the members' training draws documents at random across the whole file (every
shard, every offset), the scoring passes read contiguous document ranges. A re-run with the same
data, model and chunking finds the file and reuses it (it is written under a temporary name and
renamed when complete, so a file that exists is whole).

The file has one row per document in corpus order and one column ``ids`` (``list<int32>``: the
document's token ids with the ``bos`` token in front when the learner adds one).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from influence_stage.errors import InvalidInputError

#: Documents tokenized and written per Arrow record batch.
TOKENIZE_BATCH = 1024


class TokenCache:
    """The token ids of ``n`` documents in an Arrow IPC file, memory-mapped on first use.

    Parameters
    ----------
    path : path
        The ``.arrow`` file written by ``build``.

    Notes
    -----
    Pickles as its path (Dask workers open the file themselves, it must be on a shared filesystem).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InvalidInputError(f"token cache {str(self.path)!r} does not exist; build it with TokenCache.build.")
        self._rows: int | None = None  # the row count, once read

    @classmethod
    def build(cls, learner: Any, data: Any, path: str | os.PathLike[str], *, progress: bool = False
              ) -> "TokenCache":
        """Tokenize ``data`` (a list of strings or a stream with ``iter_texts``) with ``learner.tokenize``, once.

        An existing complete file is reused as it is (the caller's path carries the cache key).
        """
        from influence_stage.engine.lm_windows import _iter_documents

        path = Path(path)
        if path.is_file():
            return cls(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        schema = pa.schema([("ids", pa.list_(pa.int32()))])
        n = 0
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
            texts: list[str] = []

            def flush() -> None:
                nonlocal n
                ids = learner.tokenize(texts, n)
                writer.write_batch(pa.record_batch([pa.array(ids, type=pa.list_(pa.int32()))], schema=schema))
                n += len(texts)
                texts.clear()

            for text in _iter_documents(data):
                texts.append(text)
                if len(texts) == TOKENIZE_BATCH:
                    flush()
            if texts:
                flush()
        if n == 0:
            tmp.unlink(missing_ok=True)
            raise InvalidInputError("the corpus has 0 documents; nothing to tokenize.")
        os.replace(tmp, path)
        return cls(path)

    @property
    def table(self) -> pa.Table:
        """The file as a table on a fresh memory map (zero copy). Not kept: each read maps the file and the
        map is released with the table, so the pages a pass touched do not stay in the process's
        resident memory for the rest of the run (they would add the whole file, a few bytes per token)."""
        table = pa.ipc.open_file(pa.memory_map(str(self.path))).read_all()
        if self._rows is None:
            self._rows = int(table.num_rows)
        return table

    def __len__(self) -> int:
        if self._rows is None:
            return int(self.table.num_rows)
        return self._rows

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path, self._rows = state["path"], None

    def token_ids(self, start: int = 0, stop: int | None = None) -> list[list[int]]:
        """The ids of documents ``start .. stop - 1``."""
        stop = len(self) if stop is None else stop
        return self.table.column("ids").slice(start, stop - start).to_pylist()

    def take(self, indices: Sequence[int] | np.ndarray) -> list[list[int]]:
        """The ids of the documents at ``indices`` (any order, repeats allowed)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        column = self.table.column("ids")
        if len(idx) and (idx.min() < 0 or idx.max() >= len(column)):
            raise IndexError(f"token cache index out of bounds: the cache holds {len(column)} documents.")
        # chunk by chunk: a take on the whole chunked column would first concatenate every chunk (a copy of
        # the file per call)
        bounds = np.cumsum([0] + [len(chunk) for chunk in column.chunks])
        chunk_of = np.searchsorted(bounds, idx, side="right") - 1
        out: list[Any] = [None] * len(idx)
        for c in np.unique(chunk_of):
            where = np.flatnonzero(chunk_of == c)
            values = column.chunk(int(c)).take(pa.array(idx[where] - bounds[c])).to_pylist()
            for w, v in zip(where.tolist(), values):
                out[w] = v
        return out

    def n_tokens(self) -> np.ndarray:
        """Tokens of each document, ``(n,) int64`` (with its ``bos``)."""
        import pyarrow.compute as pc

        return np.asarray(pc.list_value_length(self.table.column("ids")), dtype=np.int64)

    def slice(self, start: int, stop: int) -> "TokenSlice":
        """Documents ``start .. stop - 1`` as token data of their own (a scoring work unit's rows)."""
        return TokenSlice(self, int(start), int(stop))


class TokenSlice:
    """A contiguous range of a ``TokenCache``'s documents, with the same reading interface."""

    def __init__(self, cache: TokenCache, start: int, stop: int) -> None:
        if not 0 <= start <= stop <= len(cache):
            raise InvalidInputError(f"token slice {start}..{stop} is outside the cache's {len(cache)} documents.")
        self.cache, self.start, self.stop = cache, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def token_ids(self, start: int = 0, stop: int | None = None) -> list[list[int]]:
        stop = len(self) if stop is None else stop
        return self.cache.token_ids(self.start + start, self.start + stop)

    def take(self, indices: Sequence[int] | np.ndarray) -> list[list[int]]:
        return self.cache.take(np.asarray(indices, dtype=np.int64) + self.start)


__all__ = ["TOKENIZE_BATCH", "TokenCache", "TokenSlice"]

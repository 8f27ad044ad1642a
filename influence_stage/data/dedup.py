"""Near-duplicate removal with MinHash LSH (``datasketch``), before scoring, in memory flat in the corpus size.

Each document is a set of word n-grams (``shingle_words`` words, lower-cased, punctuation dropped;
a document shorter than that is one shingle of all its words); its MinHash signature
(``datasketch.MinHash``, ``num_perm`` permutations) estimates the Jaccard similarity of two such
sets. Documents are visited in corpus order; one whose estimated similarity to an earlier *kept*
document reaches ``threshold`` is a near duplicate of it (the earliest such document in the
corpus), otherwise it is kept. Candidates are found as ``datasketch.MinHashLSH`` finds them: the
signature is cut into the bands the index chooses for ``min(threshold, 0.9)`` (its ``b`` bands of
``r`` values, ``hashranges``), and two documents are candidates when one band of theirs is equal
value for value; a candidate is then kept when the share of equal signature values (what
``MinHash.jaccard`` returns) reaches ``threshold``. The first copy of each group is kept, as exact
deduplication keeps the first of identical documents.

Why not ``MinHashLSH`` itself: its in-memory index holds, per document, a key in each of its ``b``
band tables plus the band bytes, and the verification needs every kept ``MinHash`` object beside
it, several kilobytes of Python objects per document, so a million documents need gigabytes. Its
other storage backends (Redis, Cassandra) need a database server. Here the signatures go to a
temporary folder the function creates and removes (one binary file per band, written as the
documents stream by); the band buckets are found with ``numpy.unique`` on a 64-bit key of each
band, one band at a time; only documents sharing a key with another one (usually a small share of
the corpus) go through the sequential pass, whose state is a few integer arrays and which compares
the band values themselves (a key shared by two different bands adds no candidate). Memory: a few
tens of bytes per document in RAM while a band's keys are sorted, 8 bytes per document for the
result; the signatures (``4 * num_perm`` bytes per document) are on disk, and only those of the documents
that share a key are read back for the sequential pass (with their bucket ids, about
``4 * num_perm + 16 * b`` bytes each). The output equals that of the in-memory index queried
document by document (``tests/data/test_dedup.py`` checks it).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from influence_stage.errors import InvalidInputError, MissingDependencyError

_WORD = re.compile(r"[0-9a-z]+")
#: Permutations of each MinHash signature.
DEFAULT_NUM_PERM = 128
#: Highest threshold given to the LSH band layout itself (candidates); the estimated similarity then decides.
LSH_MAX_THRESHOLD = 0.9
#: Words per shingle.
DEFAULT_SHINGLE_WORDS = 3
#: Documents whose signatures are held before they are appended to the band files.
SIGNATURE_BATCH = 4096
#: Documents whose band values are read at a time to compute their band keys.
KEY_CHUNK = 65536


def shingles(text: str, words: int = DEFAULT_SHINGLE_WORDS) -> set[bytes]:
    """The document's word ``words``-grams (lower-cased alphanumeric words), as UTF-8 bytes."""
    tokens = _WORD.findall(text.lower())
    if len(tokens) <= words:
        return {" ".join(tokens).encode()}
    return {" ".join(tokens[i:i + words]).encode() for i in range(len(tokens) - words + 1)}


def check_threshold(threshold: Any) -> float:
    """``threshold`` if it is a Jaccard similarity in (0, 1], else InvalidInputError."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < float(threshold) <= 1:
        raise InvalidInputError(f"the near-duplicate threshold must be a Jaccard similarity in (0, 1] (e.g. 0.8); "
                                f"found {threshold!r}.")
    return float(threshold)


def band_layout(threshold: float, num_perm: int) -> list[tuple[int, int]]:
    """The ``(start, end)`` column ranges of the LSH bands, as ``datasketch.MinHashLSH`` sets them for
    ``min(threshold, LSH_MAX_THRESHOLD)`` and ``num_perm`` (its ``hashranges``: ``b`` bands of ``r``)."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=min(threshold, LSH_MAX_THRESHOLD), num_perm=int(num_perm))
    return [(int(a), int(b)) for a, b in lsh.hashranges]


def _write_signatures(texts: Iterable[str], folder: Path, ranges: list[tuple[int, int]], *, num_perm: int,
                      shingle_words: int, seed: int) -> int:
    """Each document's ``datasketch.MinHash`` values appended to one file per band (plus one for the
    columns past the last band), as uint32; the number of documents."""
    from datasketch import MinHash

    spans = list(ranges) + ([(ranges[-1][1], num_perm)] if ranges[-1][1] < num_perm else [])
    files = [open(folder / f"cols-{a}-{b}.u32", "wb") for a, b in spans]
    # one set of permutations for every signature (the ones the seed gives each MinHash), derived once
    template = MinHash(num_perm=num_perm, seed=seed)
    buf = np.empty((SIGNATURE_BATCH, num_perm), dtype=np.uint64)
    n = k = 0

    def flush() -> None:
        if int(buf[:k].max(initial=0)) > np.iinfo(np.uint32).max:  # MinHash values are 32-bit; refuse otherwise
            raise RuntimeError("a MinHash value does not fit 32 bits; this datasketch version is not supported.")
        for (a, b), f in zip(spans, files):
            f.write(np.ascontiguousarray(buf[:k, a:b], dtype=np.uint32).tobytes())

    try:
        for text in texts:
            m = MinHash(num_perm=num_perm, seed=seed, permutations=template.permutations, scheme=template.scheme)
            m.update_batch(list(shingles(text, shingle_words)))
            buf[k] = m.hashvalues
            k += 1
            n += 1
            if k == SIGNATURE_BATCH:
                flush()
                k = 0
        flush()
    finally:
        for f in files:
            f.close()
    return n


def _read_columns(folder: Path, a: int, b: int, n: int) -> np.ndarray:
    """Columns ``a:b`` of every signature, ``(n, b - a)`` uint32."""
    return np.fromfile(folder / f"cols-{a}-{b}.u32", dtype=np.uint32).reshape(n, b - a)


def band_keys(band: np.ndarray) -> np.ndarray:
    """A 64-bit key per row of one band's values ``(n, r)`` uint32, ``(n,)`` uint64: equal bands give equal
    keys; two different bands may rarely share one, which costs a candidate and no more, since the
    sequential pass compares the band values themselves before it counts a candidate."""
    key = np.full(len(band), 0x243F6A8885A308D3, dtype=np.uint64)
    for j in range(band.shape[1]):
        key ^= band[:, j].astype(np.uint64)
        key *= np.uint64(0x9E3779B97F4A7C15)  # wraps modulo 2**64
        key ^= key >> np.uint64(29)
    return key


def _shared_buckets(folder: Path, ranges: list[tuple[int, int]], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Documents whose band key (``band_keys``) equals another document's in some band, and their bucket ids.

    Returns ``rows`` (sorted, ``(m,)`` int64) and ``bucket`` (``(m, b)`` int64, a number unique over all
    bands, -1 where the document's key is its own in that band). Per band the keys are computed from the
    band file in chunks: 8 bytes per document, plus ``numpy.unique``'s sort."""
    per_band = []
    offset = 0
    for a, b in ranges:
        keys = np.empty(n, dtype=np.uint64)
        with open(folder / f"cols-{a}-{b}.u32", "rb") as f:
            for start in range(0, n, KEY_CHUNK):
                rows = min(KEY_CHUNK, n - start)
                keys[start:start + rows] = band_keys(np.fromfile(f, dtype=np.uint32, count=rows * (b - a))
                                                     .reshape(rows, b - a))
        _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        del keys
        shared = np.flatnonzero(counts[inverse] >= 2)
        # bucket ids renumbered 0..k-1 over the shared buckets of this band, then offset past the earlier bands
        ids, local = np.unique(inverse[shared], return_inverse=True)
        per_band.append((shared, local.astype(np.int64) + offset))
        offset += len(ids)
        del inverse, counts
    rows = np.unique(np.concatenate([s for s, _ in per_band])) if per_band else np.empty(0, np.int64)
    bucket = np.full((len(rows), len(ranges)), -1, dtype=np.int64)
    for j, (shared, ids) in enumerate(per_band):
        bucket[np.searchsorted(rows, shared), j] = ids
    return rows, bucket


def _signatures_of(folder: Path, spans: list[tuple[int, int]], rows: np.ndarray, n: int,
                   num_perm: int) -> np.ndarray:
    """The whole signatures of ``rows``, ``(len(rows), num_perm)`` uint32, read one band file at a time."""
    out = np.empty((len(rows), num_perm), dtype=np.uint32)
    for a, b in spans:
        out[:, a:b] = _read_columns(folder, a, b, n)[rows]
    return out


def near_duplicate_of(texts: Iterable[str], *, threshold: float, num_perm: int = DEFAULT_NUM_PERM,
                      shingle_words: int = DEFAULT_SHINGLE_WORDS, seed: int = 1) -> np.ndarray:
    """For each document, the position of the earlier kept document it nearly duplicates, or -1.

    Parameters
    ----------
    texts : iterable of str
        The documents, in corpus order (read once).
    threshold : float
        Estimated Jaccard similarity of the shingle sets from which two documents are near duplicates.
    num_perm, shingle_words, seed
        MinHash permutations, words per shingle, the hash seed.

    Returns
    -------
    ndarray of int64, ``(n,)``
        ``-1`` for kept documents; else the position (in ``texts``) of the kept document matched.
    """
    try:
        import datasketch  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("near-duplicate removal needs datasketch: pip install datasketch.") from exc
    threshold = check_threshold(threshold)
    num_perm = int(num_perm)
    ranges = band_layout(threshold, num_perm)
    spans = ranges + ([(ranges[-1][1], num_perm)] if ranges[-1][1] < num_perm else [])
    with tempfile.TemporaryDirectory(prefix="influence-stage-minhash-") as tmp:
        folder = Path(tmp)
        n = _write_signatures(texts, folder, ranges, num_perm=num_perm, shingle_words=int(shingle_words),
                              seed=int(seed))
        out = np.full(n, -1, dtype=np.int64)
        if n < 2:
            return out
        rows, bucket = _shared_buckets(folder, ranges, n)
        if len(rows) == 0:
            return out
        sig = _signatures_of(folder, spans, rows, n, num_perm)
    # the sequential pass over the documents that share a bucket, in corpus order: each bucket's kept
    # documents are a linked list (newest first) through `previous`; positions are indices into `rows`
    head = np.full(int(bucket.max()) + 1, -1, dtype=np.int64)
    previous = np.full(bucket.shape, -1, dtype=np.int64)
    width = np.float64(num_perm)
    for f in range(len(rows)):
        buckets = bucket[f]
        candidates: set[int] = set()
        for j in np.flatnonzero(buckets >= 0):
            a, b = ranges[j]
            c = head[buckets[j]]
            while c >= 0:
                if np.array_equal(sig[c, a:b], sig[f, a:b]):  # the band itself, not only its key, is shared
                    candidates.add(int(c))
                c = previous[c, j]
        if candidates:
            cand = np.fromiter(sorted(candidates), dtype=np.int64, count=len(candidates))
            # MinHash.jaccard: the share of equal values; the earliest kept document that reaches the threshold
            share = np.count_nonzero(sig[cand] == sig[f], axis=1).astype(np.float64) / width
            hit = cand[share >= threshold]
            if len(hit):
                out[rows[f]] = rows[hit[0]]
                continue
        for j in np.flatnonzero(buckets >= 0):
            previous[f, j] = head[buckets[j]]
            head[buckets[j]] = f
    return out


__all__ = ["DEFAULT_NUM_PERM", "DEFAULT_SHINGLE_WORDS", "band_layout", "check_threshold", "near_duplicate_of",
           "shingles"]

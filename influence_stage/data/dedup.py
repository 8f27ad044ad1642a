"""Near-duplicate removal with MinHash LSH (``datasketch``), before scoring.

Each document is a set of word n-grams (``shingle_words`` words, lower-cased, punctuation dropped;
a document shorter than that is one shingle of all its words); its MinHash signature
(``num_perm`` permutations) estimates the Jaccard similarity of two such sets. Documents are
visited in corpus order and queried against the LSH index of the documents kept before them: one
whose estimated similarity to an earlier kept document reaches ``threshold`` is a near duplicate of
it (the earliest such document in the corpus); otherwise it enters the index. The index's bands
are set for ``min(threshold, 0.9)`` and its candidates are kept when their estimated similarity
reaches ``threshold``. The first copy of
each group is kept, as exact deduplication keeps the first of identical documents.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from influence_stage.errors import InvalidInputError, MissingDependencyError

_WORD = re.compile(r"[0-9a-z]+")
#: Permutations of each MinHash signature.
DEFAULT_NUM_PERM = 128
#: Highest threshold given to the LSH index itself (candidates); the estimated similarity then decides.
LSH_MAX_THRESHOLD = 0.9
#: Words per shingle.
DEFAULT_SHINGLE_WORDS = 3


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
        from datasketch import MinHash, MinHashLSH
    except ImportError as exc:
        raise MissingDependencyError("near-duplicate removal needs datasketch: pip install datasketch.") from exc
    threshold = check_threshold(threshold)
    # the index finds candidates at a looser threshold (high ones leave it too few bands), the signatures decide
    lsh = MinHashLSH(threshold=min(threshold, LSH_MAX_THRESHOLD), num_perm=int(num_perm))
    signatures: dict[int, Any] = {}
    out: list[int] = []
    # one set of permutations for every signature (the same ones the seed gives each MinHash): they are
    # derived once, not per document, and the kept signatures share them instead of holding a copy each
    template = MinHash(num_perm=int(num_perm), seed=int(seed))
    for i, text in enumerate(texts):
        m = MinHash(num_perm=int(num_perm), seed=int(seed), permutations=template.permutations,
                    scheme=template.scheme)
        m.update_batch(list(shingles(text, shingle_words)))
        # LSH candidates are filtered by the estimated similarity, the earliest match wins
        matches = [int(k) for k in lsh.query(m) if m.jaccard(signatures[int(k)]) >= threshold]
        if matches:
            out.append(min(matches))
            continue
        lsh.insert(str(i), m)
        signatures[i] = m
        out.append(-1)
    return np.asarray(out, dtype=np.int64)


__all__ = ["DEFAULT_NUM_PERM", "DEFAULT_SHINGLE_WORDS", "check_threshold", "near_duplicate_of", "shingles"]

"""Documents as token windows for ``CausalLMLearner``: reading the data, the chunking rule, token batches.

The data a causal language model reads is a list of strings, a *stream* (an object with
``iter_texts(shuffle_seed=None)``, e.g. ``influence_stage.data.corpus.Corpus``) or *token data*
(``influence_stage.data.tokens.TokenCache``); ``chunk_ids`` cuts a document's ids into windows
overlapping by one token and ``pack_batches`` groups windows under a padded-token budget (the
rules are described in ``influence_stage.engine.causal_lm``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from influence_stage.errors import InvalidInputError, InvalidTypeError


def _is_stream(data: Any) -> bool:
    return hasattr(data, "iter_texts") and callable(data.iter_texts)


def _is_tokens(data: Any) -> bool:
    """Token data (``data.tokens.TokenCache`` / ``TokenSlice``): documents already tokenized."""
    return hasattr(data, "token_ids") and callable(data.token_ids) and hasattr(data, "take")


def _check_text(text: Any, row: int) -> str:
    if not isinstance(text, str):
        raise InvalidTypeError(f"document {row} is {type(text).__name__}, not a string; every document must be text. "
                               "Fix: drop or fill missing documents first.")
    if not text.strip():
        raise InvalidInputError(f"document {row} is empty; a causal language model cannot score it. Fix: drop empty "
                                "documents first (the curation flow does).")
    return text


def _iter_documents(data: Any, *, shuffle_seed: int | None = None) -> Iterator[str]:
    if _is_stream(data):
        it = data.iter_texts(shuffle_seed=shuffle_seed)
    elif isinstance(data, (list, tuple)):
        if shuffle_seed is None:
            it = iter(data)
        else:
            order = np.random.default_rng(shuffle_seed).permutation(len(data))
            it = (data[int(i)] for i in order)
    else:
        raise InvalidTypeError("CausalLMLearner takes a list of strings or a corpus stream (an object with "
                               f"iter_texts()); found {type(data).__name__}.")
    for row, text in enumerate(it):
        yield _check_text(text, row)


def _n_documents(data: Any) -> int | None:
    try:
        return int(len(data))
    except TypeError:
        return None


@dataclass
class _Window:
    doc: int
    ids: list[int]


def chunk_ids(ids: Sequence[int], max_length: int, max_chunks: int | None = None) -> list[list[int]]:
    """Windows of ``max_length`` tokens overlapping by one token (the module's chunking rule).

    Parameters
    ----------
    ids : sequence of int
        A document's token ids (with its ``bos`` in front, if any).
    max_length : int
        Tokens per window, at least 2.
    max_chunks : int, optional
        Keep only the first windows.

    Returns
    -------
    list of list of int
        Every token after the first is a prediction target in exactly one window.
    """
    step = max_length - 1
    out = [list(ids[s:s + max_length]) for s in range(0, max(len(ids) - 1, 1), step)]
    return out[:max_chunks] if max_chunks is not None else out


def pack_batches(lengths: Sequence[int], batch_tokens: int) -> list[list[int]]:
    """Indices of windows grouped into batches of at most ``batch_tokens`` padded tokens, longest first.

    A batch of ``r`` windows whose longest has ``m`` tokens costs ``r * m`` tokens; a single window
    longer than the budget gets a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        m = max(longest, lengths[i])
        if current and m * (len(current) + 1) > batch_tokens:
            batches.append(current)
            current, m = [], lengths[i]
        current.append(i)
        longest = m
    if current:
        batches.append(current)
    return batches


__all__ = ["chunk_ids", "pack_batches"]

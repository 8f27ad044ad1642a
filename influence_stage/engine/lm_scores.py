"""Document scores of a curation run built from its per-document evidence: loss per character and the
union of the GEX and perplexity rankings.

GEX self-influence finds documents whose loss swings across the members (boilerplate, foreign text,
atypical documents) but not text that is uniformly unpredictable (random strings, shuffled words):
such text is hard for every member alike, so its loss moves little. A perplexity filter finds exactly
that text. ``self_or_perplexity`` puts a document at the high end when either ranking does; the loss
per character (total nats over characters) makes the perplexity comparable across documents of
different lengths and tokenizations.
"""

from __future__ import annotations

import numpy as np

from influence_stage.engine.scores import percentile_rank
from influence_stage.errors import InvalidInputError


def loss_per_char(base_loss: np.ndarray, n_tokens: np.ndarray, n_chars: np.ndarray) -> np.ndarray:
    """Each document's total loss at θ* over its characters, ``(n,) float64`` (nats per character).

    Parameters
    ----------
    base_loss : ``(n,)`` mean loss of the document's predicted tokens at θ*
    n_tokens : ``(n,)`` predicted tokens of each document (its tokens, the bos not counted)
    n_chars : ``(n,)`` characters of each document (at least 1 is used)
    """
    base_loss, n_tokens, n_chars = (np.asarray(a, dtype=np.float64) for a in (base_loss, n_tokens, n_chars))
    if not base_loss.shape == n_tokens.shape == n_chars.shape or base_loss.ndim != 1:
        raise InvalidInputError(f"base_loss, n_tokens and n_chars must be (n,) arrays of one length; found shapes "
                                f"{base_loss.shape}, {n_tokens.shape}, {n_chars.shape}.")
    return base_loss * n_tokens / np.maximum(n_chars, 1.0)


def self_or_perplexity(self_influence: np.ndarray, per_char: np.ndarray) -> np.ndarray:
    """The larger of a document's two rank fractions (``engine.scores.percentile_rank``): GEX self-influence
    and loss per character, ``(n,) float64``.

    Higher = at the high end of either ranking. Ties and the scale of either score do not matter, only
    the order within each.

    Examples
    --------
    Row 0 is high on self-influence, row 2 on loss per character, row 1 on neither:

    >>> import numpy as np
    >>> from influence_stage.engine.lm_scores import self_or_perplexity
    >>> self_or_perplexity(np.array([0.9, 0.1, 0.2]), np.array([1.0, 1.5, 4.0])).round(3)
    array([1.   , 0.667, 1.   ])
    """
    a, b = np.asarray(self_influence), np.asarray(per_char)
    if a.shape != b.shape or a.ndim != 1:
        raise InvalidInputError(f"self_influence and per_char must be (n,) arrays of one length; found shapes "
                                f"{a.shape}, {b.shape}.")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise InvalidInputError("self_influence and per_char must be finite: a NaN or infinite score cannot be "
                                "ranked.")
    return np.maximum(percentile_rank(a), percentile_rank(b))


__all__ = ["loss_per_char", "self_or_perplexity"]

"""The curation scores built from per-document evidence: loss per character and the GEX / perplexity rank union."""

from __future__ import annotations

import numpy as np
import pytest

from influence_stage.engine.lm_scores import loss_per_char, self_or_perplexity
from influence_stage.errors import InvalidInputError


def test_loss_per_char_is_total_loss_over_characters():
    out = loss_per_char(np.array([2.0, 1.0]), np.array([10, 4]), np.array([40, 0]))
    assert out.tolist() == [0.5, 4.0]  # 20 nats / 40 chars; an empty document counts one character


def test_a_document_extreme_on_either_ranking_is_at_the_high_end():
    rng = np.random.default_rng(0)
    gex, per_char = rng.random(100), rng.random(100)
    gex[7], per_char[42] = 10.0, 10.0  # row 7 swings across members, row 42 is unpredictable text
    out = self_or_perplexity(gex, per_char)
    assert out[7] == out[42] == 1.0 and np.sort(out)[-3] < 1.0
    # only the order of each score matters, not its scale
    np.testing.assert_array_equal(out, self_or_perplexity(gex * 1e6, np.exp(per_char)))
    # ties share their mean rank
    assert self_or_perplexity(np.array([3.0, 1.0, 1.0]), np.zeros(3)).tolist() == [1.0, 2 / 3, 2 / 3]


def test_bad_shapes_and_nan_scores_are_refused():
    with pytest.raises(InvalidInputError, match="one length"):
        self_or_perplexity(np.zeros(3), np.zeros(4))
    with pytest.raises(InvalidInputError, match="cannot be ranked"):
        self_or_perplexity(np.array([0.1, np.nan]), np.zeros(2))
    with pytest.raises(InvalidInputError, match="one length"):
        loss_per_char(np.zeros(3), np.zeros(3), np.zeros(2))

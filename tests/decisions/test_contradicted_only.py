"""The ``estimate`` threshold's flags kept only where the suggestion probabilities favour another label."""

from __future__ import annotations

import numpy as np
import pytest

from influence_stage.config import CleanConfig, FitConfig, GEXConfig
from influence_stage.decisions import decide
from influence_stage.engine.auxiliary import AuxiliaryCheck
from influence_stage.errors import InvalidInputError
from influence_stage.stage.steps import contradicted_only


def _case(seed: int = 0, n: int = 200, k: int = 3):
    rng = np.random.default_rng(seed)
    return rng.random(n), rng.integers(0, k, n), rng.dirichlet(np.ones(k), size=n)


def test_only_flagged_rows_whose_probabilities_favour_another_label_stay_flagged():
    scores, labels, proba = _case()
    kw = dict(threshold="estimate", n_estimated=60, proba=proba, max_fraction_per_class=None)
    top = decide(scores, labels, **kw).table["is_issue"].to_numpy()
    kept = decide(scores, labels, contradicted_only=True, **kw).table
    flagged = kept["is_issue"].to_numpy()
    favours_other = proba.argmax(axis=1) != labels
    np.testing.assert_array_equal(flagged, top & favours_other)
    assert 0 < flagged.sum() < top.sum() == 60
    # rows no longer flagged are kept, whatever the action
    assert (kept["action"].to_numpy()[top & ~favours_other] == "keep").all()


def test_contradicted_only_without_probabilities_is_a_clear_error():
    scores, labels, _ = _case()
    with pytest.raises(InvalidInputError, match="contradicted_only=True needs proba"):
        decide(scores, labels, threshold="estimate", n_estimated=10, contradicted_only=True)


class _Result:
    def __init__(self, reliable: bool):
        acc = 0.9 if reliable else 0.3
        self.auxiliary = AuxiliaryCheck(accuracy=acc, majority_rate=0.1, epochs=(8,), n_rows=500)


@pytest.mark.parametrize("threshold, reliable, has_proba, expected", [
    ("estimate", True, True, True),
    ("estimate", False, True, False),  # a weak cross-fitted model: the members' probabilities alone lean to the labels
    ("estimate", True, False, False),
    ("quantile:0.9", True, True, False),  # a threshold the user chose keeps its own rows
    ("budget:0.1", True, True, False),
])
def test_the_stage_restricts_only_the_estimate_threshold_under_a_reliable_model(threshold, reliable, has_proba,
                                                                                  expected):
    config = CleanConfig(threshold=threshold, gex=GEXConfig(score="gex+oos"), fit=FitConfig(epochs=3))
    proba = np.full((4, 2), 0.5) if has_proba else None
    assert _Result(reliable).auxiliary.reliable is reliable
    assert contradicted_only(config, _Result(reliable), proba) is expected

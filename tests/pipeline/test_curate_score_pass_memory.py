"""A scoring unit hands the memory it freed back at its end, and only when it evaluated its pass."""

from __future__ import annotations

import numpy as np

from influence_stage.pipeline import curate_scores


class _Tokens:
    def slice(self, start, stop):
        return np.arange(start, stop)


class _Learner:
    model = None
    device = "cpu"

    def per_sample_loss(self, rows):
        return rows.astype(np.float32) / 2


def test_score_pass_releases_memory_after_its_work(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(curate_scores, "release_free_memory", lambda: calls.append(True))
    out = str(tmp_path / "pass.npy")
    assert curate_scores.score_pass(_Learner(), _Tokens(), None, 2, 6, out) is True
    assert np.load(out).tolist() == [1.0, 1.5, 2.0, 2.5] and calls == [True]
    assert curate_scores.score_pass(_Learner(), _Tokens(), None, 2, 6, out) is False  # done-flag: no work
    assert calls == [True]

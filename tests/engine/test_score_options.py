"""The score and threshold options reach every front end: the sampler, the cleaner and the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

from influence_stage import FitConfig, GEXConfig, InfluenceCleaner, InvalidInputError
from influence_stage.api import InfluenceSampler
from influence_stage.cli import main
from influence_stage.engine.influence import self_influence

ROOT = Path(__file__).resolve().parents[2]
SMALL = GEXConfig(chains=2, cycles=2, ft_lr=0.4)
FIT = FitConfig(epochs=10)


@pytest.fixture(scope="module")
def xy():
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    y = y[:300].copy()
    flip = rng.random(300) < 0.1
    y[flip] = (y[flip] + 1) % 10
    return X[:300].astype(np.float32), y


@pytest.mark.parametrize("score", ["gex", "gex-trimmed", "member-loss", "gex+oos", "gex+oos+aum"])
def test_each_score_reaches_the_sampler_and_its_table(xy, score):
    X, y = xy
    s = InfluenceSampler(score=score, threshold="budget:0.1", gex_config=SMALL, fit_config=FIT)
    s.fit_resample(X, y)
    res = s.result_
    assert res.score_name == score
    table = s.issues_
    np.testing.assert_array_equal(table["score"].to_numpy(), s.scores_)
    np.testing.assert_allclose(s.gex_influence_, self_influence(res.loss_matrix, res.base_loss))
    np.testing.assert_array_equal(table["gex_influence"].to_numpy(), s.gex_influence_)
    order = np.argsort(s.scores_, kind="stable")
    assert np.all(np.diff(table["label_quality"].to_numpy()[order]) <= 0)
    assert int(table["is_issue"].sum()) == 30
    if score == "gex":
        np.testing.assert_array_equal(s.scores_, s.gex_influence_)


def test_default_threshold_flags_the_estimate(xy):
    X, y = xy
    s = InfluenceSampler(gex_config=SMALL, fit_config=FIT)
    s.fit_resample(X, y)
    flagged = int(s.issues_["is_issue"].sum())
    assert s.estimated_noise_rate_ is not None and flagged > 0
    assert flagged == round(s.estimated_noise_rate_ * len(y))
    assert s.config_.threshold == "estimate" and s.result_.score_name == "gex+oos+aum"


def test_unknown_score_is_an_error_listing_the_valid_ones(xy):
    X, y = xy
    with pytest.raises(InvalidInputError, match="unknown score 'bogus'; valid scores: 'gex', 'gex-trimmed', "
                                                "'member-loss', 'gex\\+oos', 'gex\\+oos\\+aum'"):
        InfluenceSampler(score="bogus", gex_config=SMALL, fit_config=FIT).fit_resample(X, y)
    with pytest.raises(InvalidInputError, match="unknown score 'bogus'"):
        InfluenceCleaner(score="bogus").fit(pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "label": [0, 1, 0, 1]}))


def test_cli_score_flag(tmp_path, capsys):
    common = ["--source", str(ROOT / "data" / "digits" / "train.parquet"), "--name", "d",
              "--publish-root", str(tmp_path / "pub"), "--cache-dir", str(tmp_path / "cache")]
    assert main(["clean", *common, "--score", "bogus"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown score 'bogus'; valid scores:" in err and "\n" not in err
    assert main(["clean", *common, "--threshold", "otsu"]) == 2  # the default rank score has no valley
    err = capsys.readouterr().err.strip()
    assert "no valley" in err and "\n" not in err
    assert not (tmp_path / "pub").exists()

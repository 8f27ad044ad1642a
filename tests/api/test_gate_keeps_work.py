"""A refused output gate keeps the work: after ValidationFailedError the estimators' fitted views stay available."""

from __future__ import annotations

import os

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from influence_stage.api import HTMLReport, InfluenceCleaner, InfluenceSampler  # noqa: E402
from influence_stage.config import FitConfig, GEXConfig  # noqa: E402
from influence_stage.errors import InvalidInputError, ValidationFailedError  # noqa: E402

N = 200
TINY = {"gex_config": GEXConfig(chains=2, cycles=2, ft_lr=0.4), "fit_config": FitConfig(epochs=5), "random_state": 0}
# budget:0.45 flags 45% of the rows; without the per-class cap nearly all of them are dropped (measured: 89 of 200)
MASS_DROP = {"threshold": "budget:0.45"}


@pytest.fixture(scope="module")
def xy():
    X, y = load_digits(return_X_y=True)
    return X[:N] / 16.0, y[:N]


def test_a_refused_cleaner_fit_keeps_scores_issues_and_views(xy):
    X, y = xy
    cleaner = InfluenceCleaner(max_fraction_per_class=None, **MASS_DROP, **TINY)
    with pytest.raises(ValidationFailedError) as info:
        cleaner.fit(X, y)
    message = str(info.value)
    assert "InfluenceCleaner: 89 of 200 rows (44.5%) would be dropped, more than max_drop_fraction=0.3" in message
    assert "InfluenceCleaner(max_drop_fraction=0.45)" in message and "max_fraction_per_class=" in message
    assert "clean.max_drop_fraction" not in message and "--max-drop-fraction" not in message  # no YAML / CLI names
    assert cleaner.scores_.shape == (N,) and np.isfinite(cleaner.scores_).all()
    assert len(cleaner.issues_) == N and int((cleaner.issues_["action"] == "drop").sum()) == 89
    flagged = cleaner.get_issues("issues")
    assert len(flagged) == int(cleaner.issues_["is_issue"].sum()) >= 89 and flagged["score"].is_monotonic_decreasing
    assert cleaner.issue_summary().loc["all", "drop"] == 89
    assert isinstance(cleaner.report(), HTMLReport)
    # the refused result is not delivered: transform and save say why
    with pytest.raises(ValidationFailedError, match=r"transform applies only a result the output gate accepted; "
                                                    r"the last fit was refused: the output gate refused"):
        cleaner.transform(X, y)
    with pytest.raises(ValidationFailedError, match=r"save applies only a result the output gate accepted"):
        cleaner.save("never-written")
    assert not os.path.exists("never-written")
    # the suggested limit passes, and a passing fit clears the refusal
    cleaner.set_params(max_drop_fraction=0.45).fit(X, y)
    assert cleaner.transform(X).shape == (N - 89, 64)


def test_a_refused_fit_transform_keeps_the_work_on_a_frame(xy):
    X, y = xy
    df = pd.DataFrame(X, columns=[f"p{j}" for j in range(64)]).assign(label=y)
    cleaner = InfluenceCleaner(max_fraction_per_class=None, **MASS_DROP, **TINY)
    with pytest.raises(ValidationFailedError, match=r"more than max_drop_fraction=0\.3"):
        cleaner.fit_transform(df)
    assert len(cleaner.get_issues()) == N and cleaner.scores_.shape == (N,)
    assert "<title>influence_stage report</title>" in cleaner.report().html


def test_a_refused_sampler_keeps_scores_issues_and_views(xy):
    X, y = xy
    # the sampler keeps the per-class cap (0.5): budget:0.6 drops 74 of 200 rows (measured)
    sampler = InfluenceSampler(sampling_strategy="all", threshold="budget:0.6", **TINY)
    with pytest.raises(ValidationFailedError) as info:
        sampler.fit_resample(X, y)
    message = str(info.value)
    assert "InfluenceSampler: " in message and "more than max_drop_fraction=0.3" in message
    assert "InfluenceSampler(max_drop_fraction=" in message and "sampling_strategy=" in message
    dropped = int((sampler.issues_["action"] == "drop").sum())
    assert dropped == 74 and "74 of 200 rows (37.0%)" in message
    assert sampler.scores_.shape == (N,) and len(sampler.get_issues()) == N
    assert len(sampler.get_issues("issues")) == int(sampler.issues_["is_issue"].sum()) >= dropped
    assert sampler.issue_summary().loc["all", "drop"] == dropped
    assert isinstance(sampler.report(), HTMLReport)


def test_the_limit_is_checked_before_any_work(xy):
    X, y = xy
    cleaner = InfluenceCleaner(max_drop_fraction=0, **TINY)
    with pytest.raises(InvalidInputError, match=r"max_drop_fraction must be in \(0, 1\]; found 0"):
        cleaner.fit(X, y)
    assert not hasattr(cleaner, "scores_")

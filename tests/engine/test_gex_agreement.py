"""The exact GEX score checked against the reliable cross-fitted model: the numbers, and what a run says."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from influence_stage import FitConfig, GEXConfig, InfluenceCleaner
from influence_stage.engine import gex as gex_mod
from influence_stage.engine.gex import MIN_AGREEMENT_ROWS, GEXAgreement, gex_agreement

FAST_GEX = GEXConfig(chains=2, cycles=2, lr_grid=(0.05, 0.2), holdout_epochs=4)


def _proba(y: np.ndarray, contradicted: np.ndarray, k: int = 3) -> np.ndarray:
    """Probabilities giving the given label 0.8, or 0.1 on the contradicted rows."""
    p = np.full((len(y), k), 0.1)
    p[np.arange(len(y)), y] = np.where(contradicted, 0.1, 0.8)
    p[contradicted, (y[contradicted] + 1) % k] = 0.8
    return p / p.sum(1, keepdims=True)


def test_agreement_is_the_ap_for_the_contradicted_rows_against_their_share():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 100)
    contradicted = np.zeros(100, bool)
    contradicted[:20] = True
    proba = _proba(y, contradicted)
    aligned = np.where(contradicted, 2.0, 1.0) + rng.normal(0, 0.1, 100)
    good = gex_agreement(aligned, proba, y)
    assert good == GEXAgreement(ap=pytest.approx(average_precision_score(contradicted, aligned)), chance=0.2,
                                contradicted=20)
    assert good.ap > 0.9 and not good.inverted
    bad = gex_agreement(-aligned, proba, y)  # the contradicted rows ranked last
    assert bad.ap < bad.chance == 0.2 and bad.inverted
    assert "below the 0.200 of a random order" in bad.message(1.0) and "fits 100%" in bad.message(1.0)


def test_no_agreement_with_too_few_rows_on_one_side():
    y = np.zeros(50, dtype=int)
    few = np.zeros(50, bool)
    few[:MIN_AGREEMENT_ROWS - 1] = True
    assert gex_agreement(np.arange(50.0), _proba(y, few), y) is None
    assert gex_agreement(np.arange(50.0), _proba(y, ~few), y) is None


def _separable():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 60)
    X = (np.eye(3)[y] * 3 + rng.normal(size=(180, 3))).astype(np.float32)
    y[:12] = (y[:12] + 1) % 3
    return X, y


def test_a_run_records_the_agreement_and_says_nothing_when_gex_agrees():
    X, y = _separable()
    cleaner = InfluenceCleaner(gex_config=FAST_GEX, fit_config=FitConfig(epochs=20), random_state=0,
                               max_drop_fraction=1.0).fit(X, y)
    agreement = cleaner.result_.gex_agreement
    assert agreement is not None and not agreement.inverted
    summary = cleaner.pipeline_.summary
    assert summary["gex agreement"] == {"ap": round(agreement.ap, 4), "chance": round(agreement.chance, 4)}
    assert not any("disagrees" in w for w in summary.get("warnings", []))


def test_an_inverted_gex_score_is_said_in_the_log_the_summary_and_the_report(monkeypatch, caplog):
    X, y = _separable()
    inverted = GEXAgreement(ap=0.05, chance=0.1, contradicted=18)
    monkeypatch.setattr(gex_mod, "gex_agreement", lambda *a, **k: inverted)
    with caplog.at_level(logging.WARNING, logger="influence_stage"):
        cleaner = InfluenceCleaner(gex_config=FAST_GEX, fit_config=FitConfig(epochs=20), random_state=0,
                                   max_drop_fraction=1.0).fit(X, y)
    said = inverted.message(cleaner.result_.theta_fit)
    assert said in caplog.text
    assert said in cleaner.pipeline_.summary["warnings"]
    from influence_stage.report.estimator import estimator_summary

    entries = estimator_summary(cleaner)
    assert entries["gex warning"] == said and entries["gex agreement"].startswith("AP 0.050")
    assert cleaner.scores_.shape == (len(y),)  # the run still returns its scores

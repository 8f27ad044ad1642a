"""The exact GEX score checked against the reliable cross-fitted model: the numbers, and what a run says."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from influence_stage import FitConfig, GEXConfig, InfluenceCleaner
from influence_stage.engine import gex as gex_mod
from influence_stage.decisions.suggest import suggestion_proba
from influence_stage.engine.gex import MIN_AGREEMENT_ROWS, GEXAgreement, gex_agreement
from influence_stage.engine.scores import evidence_first, mean_rank, oos_loss

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
    said = bad.message(1.0, "gex")
    assert "below the 0.200 of a random order" in said and "fits 100%" in said and "score 'gex' ranks by it" in said
    left = GEXAgreement(ap=0.1, chance=0.2, contradicted=20, left_out="gex+oos+aum").message(1.0, "oos+aum")
    assert "leaves the GEX rank out: score 'oos+aum' instead of 'gex+oos+aum'" in left


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


def test_an_inverted_gex_score_leaves_the_gex_rank_out_and_says_so(monkeypatch, caplog):
    X, y = _separable()
    inverted = GEXAgreement(ap=0.05, chance=0.1, contradicted=18)
    monkeypatch.setattr(gex_mod, "gex_agreement", lambda *a, **k: inverted)
    with caplog.at_level(logging.WARNING, logger="influence_stage"):
        cleaner = InfluenceCleaner(gex_config=FAST_GEX, fit_config=FitConfig(epochs=20), random_state=0,
                                   max_drop_fraction=1.0).fit(X, y)
    res = cleaner.result_
    assert res.gex_agreement.left_out == "gex+oos+aum" and res.score_name == "oos+aum" == cleaner.score_name_
    assert cleaner.pipeline_.summary["score"] == "oos+aum"
    # the same ranks without GEX's, then evidence first as in the default
    P = suggestion_proba(res.member_proba, res.oos_proba, res.auxiliary)
    np.testing.assert_allclose(cleaner.scores_, evidence_first(
        mean_rank(oos_loss(res.oos_proba, y), -res.train_margin.astype(np.float64)), y, P))
    said = res.gex_agreement.message(res.theta_fit, "oos+aum")
    assert said in caplog.text and said in cleaner.pipeline_.summary["warnings"]
    from influence_stage.report.estimator import estimator_summary

    entries = estimator_summary(cleaner)
    assert entries["gex warning"] == said and entries["gex agreement"].startswith("AP 0.050")
    assert np.isfinite(res.gex_influence).all()  # still published


def test_an_inverted_gex_score_asked_for_by_name_is_kept_and_said(monkeypatch, caplog):
    X, y = _separable()
    monkeypatch.setattr(gex_mod, "gex_agreement", lambda *a, **k: GEXAgreement(ap=0.05, chance=0.1, contradicted=18))
    with caplog.at_level(logging.WARNING, logger="influence_stage"):
        cleaner = InfluenceCleaner(gex_config=FAST_GEX.model_copy(update={"score": "gex"}),
                                   fit_config=FitConfig(epochs=20), random_state=0, max_drop_fraction=1.0).fit(X, y)
    assert cleaner.score_name_ == "gex" and cleaner.result_.gex_agreement.left_out is None
    np.testing.assert_allclose(cleaner.scores_, cleaner.result_.gex_influence)
    assert "score 'gex' ranks by it" in caplog.text


def test_the_scores_without_gex_can_be_asked_for():
    X, y = _separable()
    for name in ("oos", "oos+aum"):
        cleaner = InfluenceCleaner(gex_config=FAST_GEX.model_copy(update={"score": name}),
                                   fit_config=FitConfig(epochs=20), random_state=0, max_drop_fraction=1.0).fit(X, y)
        res = cleaner.result_
        parts = [oos_loss(res.oos_proba, y)] + ([-res.train_margin.astype(np.float64)] if name == "oos+aum" else [])
        P = suggestion_proba(res.member_proba, res.oos_proba, res.auxiliary)
        assert cleaner.score_name_ == name
        np.testing.assert_allclose(cleaner.scores_, evidence_first(mean_rank(*parts), y, P))


def _images():
    """120 separable 8×8 one-channel images (horizontal stripes, vertical stripes or both: classes that the
    cross-fitted halves' pixel shifts keep), 12 labels flipped."""
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(3), 40)
    X = rng.normal(0, 0.3, size=(120, 1, 8, 8)).astype(np.float32)
    X[y != 1, 0, ::2, :] += 1.5  # rows: classes 0 and 2
    X[y != 0, 0, :, ::2] += 1.5  # columns: classes 1 and 2
    y[::10] = (y[::10] + 1) % 3
    return X, y


IMAGE_FIT = FitConfig(epochs=20, min_steps=60)


def test_image_rows_rank_without_the_gex_rank_by_default_and_keep_it_when_asked():
    X, y = _images()
    kept = InfluenceCleaner(gex_config=FAST_GEX.model_copy(update={"image_gex_rank": True}), fit_config=IMAGE_FIT,
                            random_state=0, max_drop_fraction=1.0).fit(X, y)
    assert kept.result_.auxiliary.reliable and kept.score_name_ == "gex+oos+aum"
    left = InfluenceCleaner(gex_config=FAST_GEX, fit_config=IMAGE_FIT, random_state=0, max_drop_fraction=1.0).fit(X, y)
    res = left.result_
    assert left.score_name_ == "oos+aum" == left.pipeline_.summary["score"] and res.gex_agreement.left_out is None
    P = suggestion_proba(res.member_proba, res.oos_proba, res.auxiliary)
    np.testing.assert_allclose(left.scores_, evidence_first(
        mean_rank(oos_loss(res.oos_proba, y), -res.train_margin.astype(np.float64)), y, P))
    np.testing.assert_array_equal(left.result_.gex_influence, kept.result_.gex_influence)  # the same fit otherwise


def test_flat_rows_keep_the_gex_rank_whatever_the_image_field():
    X, y = _separable()
    cleaner = InfluenceCleaner(gex_config=FAST_GEX.model_copy(update={"image_gex_rank": False}),
                               fit_config=FitConfig(epochs=20), random_state=0, max_drop_fraction=1.0).fit(X, y)
    assert cleaner.result_.auxiliary.reliable and cleaner.score_name_ == "gex+oos+aum"

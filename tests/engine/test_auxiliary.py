"""The auxiliary (cross-fitted) model's check, the relabel suggestions, and a tiny image Dataset end to end."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from influence_stage import FitConfig, GEXConfig, InfluenceCleaner
from influence_stage.decisions import decide
from influence_stage.decisions.estimate import both_count
from influence_stage.decisions.suggest import suggest_labels, suggestion_proba
from influence_stage.engine.auxiliary import MIN_OTHER_ROWS, RELIABLE_KAPPA, AuxiliaryCheck, check_auxiliary
from influence_stage.engine.influence import self_influence
from influence_stage.engine.scores import evidence_first, mean_rank, oos_loss

FAST_GEX = GEXConfig(chains=2, cycles=2, lr_grid=(0.05, 0.2), holdout_epochs=4)


def test_check_closed_form():
    y = np.tile([0, 0, 0, 0, 1, 1, 2, 2, 2, 2], 2)  # majority 0.4: 12 rows outside the largest class
    proba = np.eye(3)[np.tile([0, 0, 0, 1, 1, 1, 2, 2, 0, 0], 2)]  # 14 of 20 agree
    check = check_auxiliary(proba, y, (8, 16))
    assert check.accuracy == pytest.approx(0.7)
    assert check.majority_rate == pytest.approx(0.4)
    assert check.kappa == pytest.approx(0.5)
    assert check.reliable is (0.5 >= RELIABLE_KAPPA)
    assert check.epochs == (8, 16)
    assert AuxiliaryCheck(accuracy=1.0, majority_rate=1.0).kappa == 0.0


def test_check_makes_no_call_on_a_handful_of_minority_rows():
    # 178 rows of one class, 2 of another: a model that predicts the largest class has kappa 0, but
    # kappa over 2 rows says nothing about whether the model learned the task
    y = np.r_[np.zeros(178, dtype=int), np.ones(2, dtype=int)]
    check = check_auxiliary(np.eye(2)[np.zeros(180, dtype=int)], y)
    assert check.kappa == pytest.approx(0.0)
    assert check.n_rows == 180 and check.reliable is True
    # from MIN_OTHER_ROWS rows outside the largest class on, the kappa rule judges
    y = np.r_[np.zeros(170, dtype=int), np.ones(MIN_OTHER_ROWS, dtype=int)]
    assert check_auxiliary(np.eye(2)[np.zeros(180, dtype=int)], y).reliable is False


def test_unlearnable_auxiliary_warns_and_still_scores(caplog, tmp_path):
    # shuffled features: nothing in X predicts y, so the cross-fitted model cannot learn the task
    rng = np.random.default_rng(0)
    X = rng.normal(size=(160, 6)).astype(np.float32)
    y = np.repeat(np.arange(4), 40)
    X = X[rng.permutation(len(y))]
    cleaner = InfluenceCleaner(gex_config=FAST_GEX, fit_config=FitConfig(epochs=20), random_state=0,
                               max_drop_fraction=1.0)
    with caplog.at_level(logging.WARNING, logger="influence_stage"):
        cleaner.fit(X, y)
    summary = cleaner.pipeline_.summary
    assert summary["auxiliary reliable"] is False
    assert summary["auxiliary accuracy"] < 0.45  # four balanced classes: chance is 0.25
    assert any("auxiliary cross-fitted model is weak" in w for w in summary["warnings"])
    assert any("auxiliary cross-fitted model is weak" in r.getMessage() for r in caplog.records)
    # the ranking keeps the weak model's out-of-sample loss as one rank of three, and the run returns its scores
    assert cleaner.score_name_ == "gex+oos+aum"
    assert cleaner.result_.auxiliary.reliable is False
    assert cleaner.scores_.shape == (160,) and np.isfinite(cleaner.scores_).all()
    res = cleaner.result_
    three = mean_rank(self_influence(res.loss_matrix, res.base_loss, tau=FAST_GEX.tau, trim=FAST_GEX.trim),
                      oos_loss(res.oos_proba, y), -res.train_margin.astype(np.float64))
    np.testing.assert_allclose(cleaner.scores_, three)
    # a weak model's suggestion probabilities are the members' alone: the rank mean is published as it is
    assert res.evidence_first is False and summary["evidence first"] is False
    # the report says it too, with the model's accuracy
    html = cleaner.report(tmp_path / "report.html").read_text("utf-8")
    assert "auxiliary cross-fitted model is weak" in html
    assert f"{summary['auxiliary accuracy']:.4g}" in html or f"{round(summary['auxiliary accuracy'], 4)}" in html


def test_learnable_auxiliary_is_reliable():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 60)
    X = (np.eye(3)[y] * 3 + rng.normal(size=(180, 3))).astype(np.float32)
    y[:12] = (y[:12] + 1) % 3  # 12 flipped rows, which the models place in their true class
    cleaner = InfluenceCleaner(gex_config=FAST_GEX, fit_config=FitConfig(epochs=20), random_state=0,
                               max_drop_fraction=1.0).fit(X, y)
    assert cleaner.pipeline_.summary["auxiliary reliable"] is True
    assert cleaner.pipeline_.summary["auxiliary accuracy"] > 0.8
    assert cleaner.score_name_ == "gex+oos+aum"
    # evidence first: the rank mean, with the rows whose suggestion probabilities favour their given label
    # ranked after the others
    res = cleaner.result_
    assert res.evidence_first is True and cleaner.pipeline_.summary["evidence first"] is True
    three = mean_rank(self_influence(res.loss_matrix, res.base_loss, tau=FAST_GEX.tau, trim=FAST_GEX.trim),
                      oos_loss(res.oos_proba, y), -res.train_margin.astype(np.float64))
    P = suggestion_proba(res.member_proba, res.oos_proba, res.auxiliary)
    np.testing.assert_allclose(cleaner.scores_, evidence_first(three, y, P))
    favours_other = P.argmax(1) != y
    assert favours_other[:12].sum() >= 10  # measured: 10 of the 12 (the members remember 2 given labels)
    # the default count of the cross-fitted probabilities, that many top-ranked rows flagged (ties at the
    # cut by row order)
    flagged = cleaner.issues_["is_issue"].to_numpy()
    assert flagged.sum() == both_count(y, res.oos_proba) > 0
    assert cleaner.scores_[flagged].min() >= cleaner.threshold_ >= cleaner.scores_[~flagged].max()
    assert "warnings" not in cleaner.pipeline_.summary or not any(
        "auxiliary" in w for w in cleaner.pipeline_.summary["warnings"])


def test_suggestion_is_never_the_given_label():
    rng = np.random.default_rng(2)
    P = rng.dirichlet(np.ones(4), size=200)
    y = P.argmax(1)  # the given label is every row's most probable one: the hardest case
    flagged = rng.random(200) < 0.5
    s = suggest_labels(P, y, flagged)
    assert not np.any(s[flagged] == y[flagged])
    np.testing.assert_array_equal(s[~flagged], y[~flagged])
    # the second most probable label
    np.testing.assert_array_equal(s[flagged], np.argsort(P[flagged], axis=1)[:, -2])
    scores = np.where(flagged, 1.0, 0.0) + rng.random(200) * 0.1
    d = decide(scores, y, threshold=float(0.5), action="relabel", proba=P, max_fraction_per_class=None)
    t = d.table
    assert not np.any((t["suggested_label"] == t["given_label"])[t["is_issue"]])
    relabeled = t["action"] == "relabel"
    assert not np.any((t["suggested_label"] == t["given_label"])[relabeled])


def test_suggestion_proba_sources():
    members = np.array([[0.9, 0.1], [0.2, 0.8]])
    oos = np.array([[0.1, 0.9], [0.4, 0.6]])
    np.testing.assert_allclose(suggestion_proba(members, oos), [[0.5, 0.5], [0.3, 0.7]])
    weak = AuxiliaryCheck(accuracy=0.5, majority_rate=0.5)
    np.testing.assert_allclose(suggestion_proba(members, oos, weak), members)
    np.testing.assert_allclose(suggestion_proba(members, None), members)


def _tiny_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 12×12 grayscale images of 3 classes: a horizontal bar, a vertical bar, a square, at random places."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    out = rng.integers(0, 40, size=(n, 12, 12)).astype(np.uint8)
    for i, k in enumerate(y):
        r, c = rng.integers(1, 8, size=2)
        if k == 0:
            out[i, r + 1:r + 3, 1:11] = 255
        elif k == 1:
            out[i, 1:11, c + 1:c + 3] = 255
        else:
            out[i, r:r + 4, c:c + 4] = 255
    return out, y


def test_tiny_image_dataset_end_to_end_with_the_default_cnn():
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    from influence_stage.data.noise import flip_labels

    images, y = _tiny_images(150, 0)
    y_noisy, flipped = flip_labels(y, 0.15, random_state=0)
    ds = datasets.Dataset.from_dict(
        {"image": [Image.fromarray(im, mode="L") for im in images], "label": [int(v) for v in y_noisy]},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")}))
    cleaner = InfluenceCleaner(label_column="label", gex_config=FAST_GEX, fit_config=FitConfig(epochs=15),
                               random_state=0, max_drop_fraction=1.0).fit(ds)
    assert type(cleaner.learner_.module).__name__ != "Sequential" or any(
        "Conv" in type(m).__name__ for m in cleaner.learner_.module.modules())
    flags = cleaner.issues_["is_issue"].to_numpy()
    precision = flipped[flags].mean()
    recall = flags[flipped].mean()
    # chance: precision = the noise rate (0.15), recall = the flagged share
    assert precision > 0.5, precision
    assert recall > 0.5, recall
    assert recall > flags.mean() + 0.2


def test_cnn_blocks_shape_the_fitted_cnn_and_two_is_the_default():
    datasets = pytest.importorskip("datasets")
    from PIL import Image
    import torch

    images, y = _tiny_images(60, 1)
    ds = datasets.Dataset.from_dict(
        {"image": [Image.fromarray(im, mode="L") for im in images], "label": [int(v) for v in y]},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")}))
    convs = {}
    for blocks in (2, 3):
        gex = FAST_GEX.model_copy(update={"cnn_blocks": blocks})
        cleaner = InfluenceCleaner(label_column="label", gex_config=gex, fit_config=FitConfig(epochs=2),
                                   random_state=0, max_drop_fraction=1.0).fit(ds)
        convs[blocks] = sum(isinstance(m, torch.nn.Conv2d) for m in cleaner.learner_.module.modules())
    assert convs == {2: 2, 3: 3}
    assert GEXConfig().cnn_blocks == 2

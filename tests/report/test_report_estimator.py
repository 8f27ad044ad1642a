"""Tests of the notebook report (influence_stage.report.estimator): a fitted estimator's report has the
published report's gallery (image thumbnails, texts as text) and its column roles in one line."""

from __future__ import annotations

import os

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import re  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from influence_stage import InfluenceCleaner  # noqa: E402
from influence_stage.config import FitConfig, GEXConfig  # noqa: E402
from influence_stage.data.columns import ColumnRoles  # noqa: E402
from influence_stage.data.noise import flip_labels  # noqa: E402
from influence_stage.report import GALLERY_K, estimator_report_html  # noqa: E402
from influence_stage.report.estimator import estimator_gallery, estimator_summary  # noqa: E402

N = 160


@pytest.fixture(scope="module")
def image_fit():
    """An InfluenceCleaner fitted on 160 sklearn digits as a Dataset with an Image column, 10% flipped."""
    X, y = load_digits(return_X_y=True)
    noisy, flipped = flip_labels(y[:N], 0.1, random_state=0)
    images = [Image.fromarray((X[i].reshape(8, 8) * 15).astype(np.uint8)) for i in range(N)]
    ds = datasets.Dataset.from_dict(
        {"image": images, "label": noisy.tolist()},
        features=datasets.Features({"image": datasets.Image(),
                                    "label": datasets.ClassLabel(names=[str(k) for k in range(10)])}))
    cleaner = InfluenceCleaner(gex_config=GEXConfig(chains=2, cycles=2, ft_lr=0.4), fit_config=FitConfig(epochs=10),
                               max_drop_fraction=0.9, random_state=0)
    cleaner.fit(ds)
    return cleaner, images, flipped


def _thumbs(doc: str) -> list[str]:
    return re.findall(r'<img class="thumb" src="data:image/png;base64,[A-Za-z0-9+/=]+" alt="row (\d+):', doc)


def test_image_fit_report_has_a_thumbnail_per_row_and_compact_roles(image_fit):
    cleaner, _, flipped = image_fit
    doc = estimator_report_html(cleaner, truth=flipped, title="digits")
    top = np.argsort(-cleaner.scores_, kind="stable")[:GALLERY_K]
    assert [int(r) for r in _thumbs(doc)] == [int(cleaner.row_ids_[i]) for i in top]
    assert "<th>columns</th><td>label: label · 1 image column: image</td>" in doc
    assert f"<th>score</th><td>{cleaner.score_name_}</td>" in doc
    assert f"average precision ({cleaner.score_name_})" in doc
    summary = estimator_summary(cleaner)
    assert summary["columns"] == {"label": "label", "kind": "image", "features": ["image"]}
    assert summary["members"] == 4 and summary["ft_lr"] == pytest.approx(0.4)


def test_image_gallery_reads_the_fitted_rows(image_fit):
    cleaner, images, _ = image_fit
    source = estimator_gallery(cleaner)
    assert np.array_equal(np.asarray(source(7)), np.asarray(images[7]))


def test_cleaner_report_is_the_estimator_report(image_fit):
    cleaner, _, _ = image_fit
    assert cleaner.report().html == estimator_report_html(cleaner)


def test_cleaner_report_file_follows_the_umask(image_fit, tmp_path):
    cleaner, _, _ = image_fit
    old = os.umask(0o022)
    try:
        out = cleaner.report(tmp_path / "x.html")
    finally:
        os.umask(old)
    assert os.stat(out).st_mode & 0o777 == 0o644


def _fake_text_fit(texts: list[str], dataset: datasets.Dataset | None = None) -> SimpleNamespace:
    """The fitted attributes the report reads, for 30 text rows (no model is trained)."""
    from influence_stage.decisions.schema import TABLE_COLUMNS
    import pandas as pd

    n = len(texts)
    scores = np.linspace(1.0, 0.0, n)
    table = pd.DataFrame({
        "row_id": np.arange(n), "score": scores, "gex_influence": scores, "label_quality": 1 - scores,
        "is_issue": scores > 0.8, "action": np.where(scores > 0.8, "drop", "keep"),
        "given_label": np.arange(n) % 2, "suggested_label": (np.arange(n) + 1) % 2, "weight": np.ones(n),
    })[list(TABLE_COLUMNS)]
    roles = ColumnRoles("label", ("sentence",), "text")
    ds = dataset if dataset is not None else datasets.Dataset.from_dict({"sentence": texts, "label": [0] * n})
    return SimpleNamespace(
        decisions_=SimpleNamespace(table=table, threshold=SimpleNamespace(method="estimate")),
        classes_=np.array(["neg", "pos"]), threshold_=0.8, score_name_="gex+oos+aum", members_=[1, 2],
        ft_lr_=0.1, estimated_noise_rate_=0.2, _roles_=roles,
        pipeline_=SimpleNamespace(prepared=SimpleNamespace(roles=roles, dataset=ds)))


def test_text_fit_report_shows_the_sentences_as_text():
    texts = [f"sentence number {i} <em>is</em> fine" for i in range(30)]
    doc = estimator_report_html(_fake_text_fit(texts))
    assert "data:image/png;base64" not in doc.split('<section id="gallery">')[1].split("</section>")[0]
    for i in range(GALLERY_K):  # the 24 highest scores are the first 24 rows
        assert f"<blockquote>sentence number {i} &lt;em&gt;is&lt;/em&gt; fine</blockquote>" in doc
    assert "sentence number 24 " not in doc
    assert "<th>columns</th><td>label: label · 1 text column: sentence</td>" in doc


def test_a_loaded_estimator_has_no_gallery_and_unreadable_rows_are_skipped(caplog):
    fit = _fake_text_fit(["a"] * 30)
    fit.pipeline_ = None  # InfluenceCleaner.load: the data is not saved with the estimator
    assert estimator_gallery(fit) is None
    assert 'id="gallery"' not in estimator_report_html(fit)
    broken = _fake_text_fit(["a"] * 30, dataset=datasets.Dataset.from_dict({"other": [1] * 30}))
    assert estimator_gallery(broken) is None
    assert "no gallery in the report" in caplog.text


def test_image_fit_report_has_the_issue_types_of_the_fit(image_fit):
    from influence_stage.report.common import SECTION_TITLES
    from influence_stage.report.estimator import estimator_issue_types

    cleaner, _, flipped = image_fit
    types, harm = estimator_issue_types(cleaner)
    assert len(types) >= 1
    for name, count in types.items():
        assert count == int(cleaner.issues_[f"is_{name}_issue"].sum())
    doc = estimator_report_html(cleaner, truth=flipped)
    assert f"<h2>{SECTION_TITLES['issue_types']}</h2>" in doc
    section = doc.split('<section id="issue_types">')[1].split("</section>")[0]
    for name, count in types.items():
        assert f'<td>{name}</td><td class="num">{count}</td><td class="num">{100.0 * count / N:.1f}%</td>' in section
    if harm is not None:
        ranked = int((harm["harm_rank"] > 0).sum())
        assert harm.shape == (N, 2)
        assert ("flagged rows by harm rank" in section) == (ranked > 0)
    # no issue types: no section
    bare = SimpleNamespace(issue_report_summary_=None)
    assert estimator_issue_types(bare) == (None, None)

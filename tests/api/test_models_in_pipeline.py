"""Bring your own model through the stage: torch checkpoints and local Hugging Face folders.

``CleanConfig.model`` takes a checkpoint (``"checkpoint:<path>"`` or a ``.pt`` / ``.pth`` / ``.bin``
/ ``.safetensors`` path) or ``"hf:<folder>"``; these tests run them through ``run_pipeline`` and
``InfluenceCleaner`` and check the numbers against the same model given in memory, the errors of
mismatched or corrupt files, and the raw data an HF model reads (``learner_data``).

Nothing is downloaded: the Hugging Face models are random-initialised from tiny configs and the
tokenizer is built from a word list (the approach of ``tests/engine/test_hf.py``, copied in small).
"""

from __future__ import annotations

import os

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_var] = "1"

import copy  # noqa: E402
from pathlib import Path  # noqa: E402

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import influence_stage.stage.run as stage_run  # noqa: E402
from influence_stage.engine.checkpoint import meta_path, save_checkpoint  # noqa: E402
from influence_stage.api import InfluenceCleaner  # noqa: E402
from influence_stage.config import FitConfig, GEXConfig  # noqa: E402
from influence_stage.errors import CheckpointError, InvalidInputError  # noqa: E402
from influence_stage.engine.hf import HFLearner, ImageData, TextData  # noqa: E402
from influence_stage.engine.learner import TensorData, TorchLearner  # noqa: E402
from influence_stage.engine.models import mlp  # noqa: E402
from influence_stage.stage.run import run_pipeline
from influence_stage.stage.steps import (  # noqa: E402
    CleanConfig,
    config_fingerprint,
    featurize_step,
    learner_data,
    make_model_step,
    parse_model_spec,
    preflight,
    prepare,
)

DIGITS = Path(__file__).resolve().parents[2] / "data" / "digits" / "train.parquet"
GEX = GEXConfig(chains=2, cycles=2, ft_lr=0.4)
PX = ("px_*",)


def _needs_safetensors(suffix: str) -> None:
    if suffix == ".safetensors":
        pytest.importorskip("safetensors")


@pytest.fixture(scope="module")
def source() -> datasets.Dataset:
    """The first 500 demo rows: row_id, image (8×8 grey PNG), px_0..px_63, label (ClassLabel, 10 classes)."""
    return datasets.Dataset.from_parquet(str(DIGITS)).select(range(500))


@pytest.fixture(scope="module")
def trained(source):
    """An MLP (hidden 32) trained on the stage's own features of ``source``: ``(module, features)``."""
    config = CleanConfig(feature_columns=PX, gex=GEX)
    features = featurize_step(prepare(source, config), config)
    learner = TorchLearner(mlp(64, 10, hidden=(32,), seed=0), batch_size=GEX.batch_size)
    learner.fit(features.tensor_data(), FitConfig(epochs=10))
    return learner.module, features


@pytest.fixture(scope="module")
def in_memory_run(source, trained):
    """The reference: the same module given in memory (deep copy: GEX leaves its learner at θ*)."""
    module, _ = trained
    return run_pipeline(source, CleanConfig(feature_columns=PX, gex=GEX), model=copy.deepcopy(module))


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# -- (a) a checkpoint through the stage equals the in-memory module ------------------------------


@pytest.mark.parametrize("suffix, form, meta, builder", [
    (".pt", "plain", {"builder": "mlp", "input_shape": [64], "n_classes": 10, "builder_kwargs": {"hidden": [32]}},
     None),
    # no sidecar: the builder comes from the config, the hidden width from the weights
    pytest.param(".safetensors", "prefixed", None, "mlp", id="safetensors-prefixed-builder-from-config"),
    (".pth", "plain", {"builder": "mlp"}, None),
])
def test_checkpoint_round_trip_gives_the_in_memory_scores(tmp_path, source, trained, in_memory_run, suffix, form,
                                                          meta, builder):
    _needs_safetensors(suffix)
    module, _ = trained
    path = save_checkpoint(module, tmp_path / f"theta{suffix}", meta=meta)
    spec = str(path) if form == "plain" else f"checkpoint:{path}"
    config = CleanConfig(model=spec, model_builder=builder, feature_columns=PX, gex=GEX)
    run = run_pipeline(source, config)

    assert isinstance(run.learner, TorchLearner)
    # θ* is the checkpoint, not retrained (GEX leaves the learner at θ*)
    theta = _state(module)
    assert all(torch.equal(theta[k], v) for k, v in run.learner.get_state().items())
    np.testing.assert_array_equal(run.gex_result.base_loss, in_memory_run.gex_result.base_loss)
    np.testing.assert_array_equal(run.gex_result.scores, in_memory_run.gex_result.scores)
    pd.testing.assert_frame_equal(run.decisions.table, in_memory_run.decisions.table)
    assert run.features.X.shape == (500, 64)


def test_fit_loaded_trains_the_checkpoint_first(tmp_path, source, trained):
    module, _ = trained
    path = save_checkpoint(module, tmp_path / "theta.pt", meta={"builder": "mlp"})
    config = CleanConfig(model=str(path), fit_loaded=True, fit=FitConfig(epochs=2), feature_columns=PX, gex=GEX)
    learner = make_model_step(featurize_step(prepare(source, config), config), config)
    theta = _state(module)
    assert any(not torch.equal(theta[k], v) for k, v in learner.get_state().items())


def test_cleaner_takes_a_checkpoint_string(tmp_path, source, trained, in_memory_run):
    module, _ = trained
    path = save_checkpoint(module, tmp_path / "theta.bin", meta={"builder": "mlp"})
    fit = FitConfig(epochs=10)  # the cross-fitted auxiliary model's recipe: the same for both, and short
    cleaner = InfluenceCleaner(model=f"checkpoint:{path}", feature_columns=PX, gex_config=GEX, fit_config=fit,
                               random_state=0).fit(source)
    # the same seeds (random_state=0; None would draw fresh ones) with the module given in memory
    by_module = InfluenceCleaner(model=copy.deepcopy(module), feature_columns=PX, gex_config=GEX, fit_config=fit,
                                 random_state=0).fit(source)
    np.testing.assert_array_equal(cleaner.scores_, by_module.scores_)
    assert cleaner.config_.model == f"checkpoint:{path}"


# -- (b) a checkpoint made for other data: both numbers named, nothing computed or written -------


@pytest.mark.parametrize("n_features, n_classes, meta, match", [
    (64, 5, {"builder": "mlp", "input_shape": [64], "n_classes": 5}, "model outputs 5 classes, the data has 10"),
    # sidecar without sizes: read off the weights, so the error names 32 and 64 rather than a tensor shape
    (32, 10, {"builder": "mlp"}, "expects 32 input features; the data has 64"),
])
def test_mismatched_checkpoint_names_both_numbers(tmp_path, source, monkeypatch, n_features, n_classes, meta,
                                                  match):
    path = save_checkpoint(mlp(n_features, n_classes, hidden=(16,), seed=0), tmp_path / "other.pt", meta=meta)
    before = sorted(p.name for p in tmp_path.iterdir())

    def must_not_score(*args, **kwargs):
        raise AssertionError("scoring started with a mismatched model")

    monkeypatch.setattr(stage_run, "score_step", must_not_score)
    with pytest.raises(InvalidInputError, match=match):
        run_pipeline(source, CleanConfig(model=str(path), feature_columns=PX, gex=GEX))
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written next to the checkpoint


# -- (c) unreadable checkpoints ---------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".pt", pytest.param(".safetensors", id="safetensors")])
def test_corrupt_checkpoint_through_the_cleaner(tmp_path, source, suffix):
    _needs_safetensors(suffix)
    path = tmp_path / f"corrupt{suffix}"
    path.write_bytes(np.random.default_rng(0).bytes(300))
    with pytest.raises(CheckpointError, match=f"corrupt{suffix}"):
        InfluenceCleaner(model=str(path), model_builder="mlp", feature_columns=PX, gex_config=GEX).fit(source)


def test_missing_checkpoint_is_a_config_error_naming_the_path(tmp_path, source):
    missing = tmp_path / "nope.pt"
    with pytest.raises(InvalidInputError, match=r"no checkpoint file at .*nope\.pt"):
        InfluenceCleaner(model=str(missing), feature_columns=PX, gex_config=GEX).fit(source)


# -- CleanConfig: the model forms -------------------------------------------------------------------


def test_config_validates_model_strings(tmp_path):
    """CleanConfig checks the form without I/O; the paths are checked before any work (preflight)."""
    folder = tmp_path / "folder"
    folder.mkdir()
    cases = [(str(tmp_path / "missing.safetensors"), r"no checkpoint file at .*missing\.safetensors"),
             (f"checkpoint:{folder}", r"is a folder; expected a weights file"),
             (f"hf:{tmp_path / 'nowhere'}", r"Hugging Face model folder .*nowhere is not found"),
             (f"hf:{folder}", "has no config.json")]
    for model, match in cases:
        config = CleanConfig.from_mapping({"model": model})  # the form is valid
        with pytest.raises(InvalidInputError, match=match):
            preflight(None, config)
    (folder / "config.json").write_text("{}")
    with pytest.raises(InvalidInputError, match=r"unknown model name .*write 'hf:"):
        parse_model_spec(str(folder))
    with pytest.raises(InvalidInputError, match=r"unknown model name"):
        CleanConfig.from_mapping({"model": str(folder)})
    with pytest.raises(InvalidInputError, match=r"unknown model name 'resnet'; expected 'auto', 'mlp', 'cnn'"):
        CleanConfig.from_mapping({"model": "resnet"})
    with pytest.raises(InvalidInputError, match="model_builder='mlp' names the architecture of a checkpoint"):
        CleanConfig.from_mapping({"model_builder": "mlp"})
    with pytest.raises(InvalidInputError, match="trainable must be 'all', 'head' or 'last:N'"):
        CleanConfig.from_mapping({"hf_trainable": "top"})
    for name in ("auto", "mlp", "cnn"):
        assert parse_model_spec(CleanConfig(model=name).model).kind == "name"
    assert parse_model_spec(f"hf:{folder}").kind == "hf"


def test_config_with_a_checkpoint_round_trips_and_fingerprints_its_content(tmp_path):
    path = save_checkpoint(mlp(8, 3, seed=0), tmp_path / "m.pt", meta={"builder": "mlp"})
    config = CleanConfig(model=str(path), fit_loaded=True)
    config.to_yaml(tmp_path / "c.yaml")
    assert CleanConfig.from_yaml(tmp_path / "c.yaml") == config
    fp = config_fingerprint(config)
    assert fp != config_fingerprint(CleanConfig(fit_loaded=True))
    assert fp != config_fingerprint(config.model_copy(update={"fit_loaded": False}))
    save_checkpoint(mlp(8, 3, seed=1), path, meta={"builder": "mlp"})  # same path, other weights
    fp_weights = config_fingerprint(config)
    assert fp_weights != fp
    meta_path(path).write_text('{"builder": "mlp", "note": "edited"}')  # the sidecar counts too
    assert config_fingerprint(config) not in (fp, fp_weights)


def test_learner_data_for_torch_learners_is_the_feature_tensors(trained):
    module, features = trained
    data = learner_data(TorchLearner(module), None, features)
    assert isinstance(data, TensorData)
    assert np.shares_memory(data.X.numpy(), features.X)
    np.testing.assert_array_equal(data.y.numpy(), features.y)


# -- (d) a local Hugging Face model through the stage ---------------------------------------------

WORDS = [["good", "great", "fine", "lovely"], ["bad", "awful", "poor", "dull"]]
NOUNS = ["movie", "film", "plot", "cast"]
VOCAB = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "was", "and"]
                                    + sorted({w for ws in WORDS for w in ws} | set(NOUNS)))}


def _text_source(n: int = 40, classes: tuple[str, ...] = ("neg", "pos"), seed: int = 0) -> datasets.Dataset:
    """``n`` short reviews; the label column holds strings (codes follow the sorted names: 'neg' 0, 'pos' 1)."""
    rng = np.random.default_rng(seed)
    codes = np.arange(n) % len(classes)
    texts = [f"the {rng.choice(NOUNS)} was {rng.choice(WORDS[c % 2])} and {rng.choice(WORDS[c % 2])}" for c in codes]
    return datasets.Dataset.from_dict({"text": texts, "label": [classes[c] for c in codes]})


def _save_bert(path: Path, n_labels: int = 2, id2label: dict[int, str] | None = None) -> Path:
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(VOCAB, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.post_processor = tokenizers.processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", VOCAB["[CLS]"]), ("[SEP]", VOCAB["[SEP]"])])
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                                     cls_token="[CLS]", sep_token="[SEP]")
    extra = {} if id2label is None else {"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}
    cfg = transformers.BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=64, num_labels=n_labels, max_position_embeddings=32, **extra)
    with torch.random.fork_rng(devices=[]):  # the model's init draws from the global RNG
        torch.manual_seed(0)
        model = transformers.BertForSequenceClassification(cfg)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> Path:
    return _save_bert(tmp_path_factory.mktemp("tiny_bert"))


HF_GEX = GEXConfig(chains=2, cycles=2, ft_lr=0.05, batch_size=8)


def test_hf_text_model_through_run_pipeline(bert_dir):
    ds = _text_source()
    config = CleanConfig(model=f"hf:{bert_dir}", feature_columns=("text",), gex=HF_GEX, threshold="quantile:0.9")
    run = run_pipeline(ds, config)

    table = run.decisions.table
    assert len(table) == ds.num_rows and table["row_id"].tolist() == list(range(ds.num_rows))
    assert np.isfinite(table["score"].to_numpy()).all() and np.isfinite(run.gex_result.loss_matrix).all()
    assert run.gex_result.loss_matrix.shape == (ds.num_rows, 4)
    assert run.features.X.shape == (ds.num_rows, 0) and run.features.featurizer is None  # read raw, not featurized
    assert isinstance(run.learner, HFLearner) and run.learner.trainable == "head"
    assert set(run.gex_result.members[0]) == {"classifier.weight", "classifier.bias"}
    assert run.cleaned.num_rows == ds.num_rows - int((table["action"] == "drop").sum())
    # the learner reads the raw texts; without the prepared dataset it cannot
    data = learner_data(run.learner, run.prepared, run.features)
    assert isinstance(data, TextData) and data.texts == ds["text"][:]
    np.testing.assert_array_equal(data.y.numpy(), run.features.y)
    with pytest.raises(InvalidInputError, match="needs prepared="):
        learner_data(run.learner, None, run.features)


def test_hf_model_errors_name_what_differs(bert_dir, tmp_path, source):
    with pytest.raises(InvalidInputError, match=r"has 2 labels .* the data has 3 classes"):
        run_pipeline(_text_source(classes=("a", "b", "c")),
                     CleanConfig(model=f"hf:{bert_dir}", feature_columns=("text",), gex=HF_GEX))
    with pytest.raises(InvalidInputError, match="reads raw text or image columns; .* are tabular"):
        run_pipeline(source, CleanConfig(model=f"hf:{bert_dir}", feature_columns=PX, gex=HF_GEX))
    swapped = _save_bert(tmp_path / "swapped", id2label={0: "pos", 1: "neg"})
    with pytest.raises(InvalidInputError, match=r"another order: model outputs \['pos', 'neg'\], data codes "
                                                r"\['neg', 'pos'\]"):
        run_pipeline(_text_source(), CleanConfig(model=f"hf:{swapped}", feature_columns=("text",), gex=HF_GEX))


def test_hf_image_model_through_the_cleaner(tmp_path, source):
    transformers = pytest.importorskip("transformers")
    folder = tmp_path / "tiny_vit"
    cfg = transformers.ViTConfig(image_size=16, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=64, num_labels=10)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        transformers.ViTForImageClassification(cfg).save_pretrained(folder)
    transformers.ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(folder)
    ds = source.select(range(60))
    cleaner = InfluenceCleaner(model=f"hf:{folder}", feature_columns="image", gex_config=HF_GEX,
                               threshold="quantile:0.9").fit(ds)
    assert cleaner.scores_.shape == (60,) and np.isfinite(cleaner.scores_).all()
    data = learner_data(cleaner.learner_, cleaner.pipeline_.prepared, cleaner.pipeline_.features)
    assert isinstance(data, ImageData) and len(data) == 60
    assert data.images[0].mode == "RGB"  # the grey digits, converted to the model's 3 channels

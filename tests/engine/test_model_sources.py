"""The model-source registry: strings claimed by name, prefix or form, objects claimed by type; the
errors list the registry's names and forms."""

from __future__ import annotations

import pytest

from influence_stage.config import MODEL_NAMES, CleanConfig
from influence_stage.config.model_spec import model_digest
from influence_stage.engine.sources import (
    MODEL_SOURCE_REGISTRY,
    NamedModel,
    model_forms,
    parse_model_spec,
    source_of,
)
from influence_stage.errors import InvalidInputError, InvalidTypeError


def test_the_registry_holds_names_prefixes_and_in_memory_sources():
    assert MODEL_SOURCE_REGISTRY.names() == ("auto", "mlp", "cnn", "checkpoint", "hf", "module", "learner", "sklearn")
    assert list(MODEL_NAMES) == ["auto", "mlp", "cnn"]
    assert model_forms() == ("'auto', 'mlp', 'cnn', a torch checkpoint ('checkpoint:<path>' or a path ending in .pt, "
                             ".pth, .bin, .safetensors) or a local Hugging Face model folder ('hf:<folder>')")


@pytest.mark.parametrize("model, kind, value, source", [
    ("mlp", "name", "mlp", "mlp"),
    ("checkpoint:w/model", "checkpoint", "w/model", "checkpoint"),
    ("w/model.safetensors", "checkpoint", "w/model.safetensors", "checkpoint"),
    ("hf:folder", "hf", "folder", "hf"),
])
def test_strings_are_claimed_by_name_prefix_or_form(model, kind, value, source):
    spec = parse_model_spec(model, check_paths=False)
    assert (spec.kind, spec.value, spec.source) == (kind, value, source)
    assert spec.model_source.name == source


def test_a_name_has_no_content_digest_and_an_empty_prefix_is_refused():
    assert model_digest(parse_model_spec("auto")) is None
    with pytest.raises(InvalidInputError, match=r"model 'hf:' names nothing after 'hf:'; expected 'hf:<path>'"):
        parse_model_spec("hf:")


def test_objects_are_claimed_by_type():
    from sklearn.linear_model import SGDClassifier

    from influence_stage.engine.learner import TorchLearner
    from influence_stage.engine.models import mlp

    module = mlp(3, 2)
    assert source_of(module)[0].name == "module"
    assert source_of(TorchLearner(module))[0].name == "learner"
    assert source_of(SGDClassifier(loss="log_loss"))[0].name == "sklearn"
    with pytest.raises(InvalidTypeError, match=r"model must be a model name \('auto', 'mlp', 'cnn'\), a model string "
                       r"\('auto'.*or an object in memory: a trained torch.nn.Module, an object with the Learner "
                       r"protocol, a scikit-learn classifier with partial_fit and predict_proba; found int"):
        source_of(42)


def test_a_registered_name_is_valid_everywhere_and_listed_in_errors():
    @MODEL_SOURCE_REGISTRY.register("tiny")
    class Tiny(NamedModel):
        help = "an MLP with 4 hidden units"

        def build(self, input_shape, n_classes, *, seed):
            from influence_stage.engine.models import mlp

            return mlp(input_shape[0], n_classes, hidden=(4,), seed=seed)

    try:
        assert CleanConfig(model="tiny").model == "tiny" and "tiny" in MODEL_NAMES
        with pytest.raises(InvalidInputError, match=r"unknown model name 'resnet'; expected 'auto', 'mlp', 'cnn', "
                           r"'tiny', a torch checkpoint"):
            CleanConfig.from_mapping({"model": "resnet"})
        from influence_stage.config import GEXConfig
        from influence_stage.engine.sources import LearnerRequest, learner_from_source

        learner, needs_fit = learner_from_source("tiny", LearnerRequest((5,), 3, GEXConfig()))
        assert needs_fit and learner.module[0].out_features == 4 and learner.module[-1].out_features == 3
    finally:
        MODEL_SOURCE_REGISTRY.unregister("tiny")
    with pytest.raises(InvalidInputError, match="unknown model name 'tiny'"):
        CleanConfig.from_mapping({"model": "tiny"})

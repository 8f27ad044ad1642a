"""Which model a ``CleanConfig.model`` string names: ``parse_model_spec`` and the content digest of the cache keys.

The strings are the model-source registry's
(``influence_stage.engine.sources.MODEL_SOURCE_REGISTRY``): a builder name (``"auto"``,
``"mlp"``, ``"cnn"``: trained on the given labels), a torch checkpoint (``"checkpoint:<path>"`` or a
path ending in ``.pt``, ``.pth``, ``.bin``, ``.safetensors``; loaded with
``influence_stage.engine.checkpoint.load_model``), a local Hugging Face classifier
(``"hf:<folder>"``; ``influence_stage.engine.hf.HFLearner``), or a registered source's form.
"""

from __future__ import annotations

from influence_stage.engine.sources import MODEL_SOURCE_REGISTRY, ModelSpec, parse_model_spec

#: Model names built by a named source and trained on the given labels (a live view of the registry).
MODEL_NAMES = MODEL_SOURCE_REGISTRY.where("builds")


def model_digest(spec: ModelSpec) -> str | None:
    """Content hash of the checkpoint or folder ``spec`` names (None for a builder name)."""
    return spec.model_source.digest(spec)


__all__ = ["MODEL_NAMES", "ModelSpec", "model_digest", "parse_model_spec"]

"""The stage configuration: its sections, validated once, frozen, serialisable next to every artifact.

The same objects are the parameters of the Prefect flows, the CLI and the estimators.

``fit``          ``FitConfig`` (training of ``θ*``) and ``GEXConfig`` (members, scale, scores):
                 the engine's sections, importable from the lowest layer
``featurize``    ``FeaturizeConfig`` (the featurizers' settings, e.g. a local sentence encoder)
``model_spec``   ``parse_model_spec``: which model a ``model`` string names
``clean``        ``CleanConfig`` (every setting of one run), its YAML reader, ``config_fingerprint``

``CleanConfig`` and the names of ``clean`` and ``model_spec`` are loaded on first use: the engine
imports the sections from here, and ``CleanConfig`` validates against registries of the engine and
the decisions.
"""

from __future__ import annotations

from typing import Any

from influence_stage.config.featurize import FeaturizeConfig
from influence_stage.config.fit import DEFAULT_LR_GRID, FitConfig, GEXConfig

_LAZY = {
    "CleanConfig": "influence_stage.config.clean",
    "SCORE_KEYS": "influence_stage.config.clean",
    "check_rates": "influence_stage.config.clean",
    "config_fingerprint": "influence_stage.config.clean",
    "ModelSpec": "influence_stage.config.model_spec",
    "MODEL_NAMES": "influence_stage.config.model_spec",
    "parse_model_spec": "influence_stage.config.model_spec",
    "model_digest": "influence_stage.config.model_spec",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'influence_stage.config' has no attribute {name!r}")


__all__ = ["DEFAULT_LR_GRID", "FeaturizeConfig", "FitConfig", "GEXConfig", *_LAZY]

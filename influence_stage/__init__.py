"""influence_stage: find mislabeled and harmful rows with geometric-ensemble influence (GEX).

The public API: ``gex_self_influence`` / ``gex`` (arrays in, scores out), ``InfluenceCleaner``
(dataset in, cleaned dataset out), ``InfluenceSampler`` (imbalanced-learn sampler; needs the
``dev`` extra), ``run_pipeline`` / ``CleanConfig`` (the stage's steps), ``HFLearner`` (needs the
``hf`` extra), ``SklearnLearner`` (scikit-learn classifiers with ``partial_fit``).

Every name but the error classes and ``__version__`` is imported on first use, so
``import influence_stage`` (and the command line's ``--help``) does not pay for torch, scipy,
Prefect or Great Expectations.
"""

from typing import Any

from influence_stage._version import __version__
from influence_stage.errors import (
    CheckpointError,
    InfluenceStageError,
    InvalidInputError,
    InvalidTypeError,
    MissingDependencyError,
    ValidationFailedError,
)

_LAZY = {
    "FeaturizeConfig": "influence_stage.config",
    "FitConfig": "influence_stage.config",
    "GEXConfig": "influence_stage.config",
    "CleanConfig": "influence_stage.config",
    "GEXResult": "influence_stage.engine.gex",
    "gex": "influence_stage.engine.gex",
    "gex_self_influence": "influence_stage.engine.gex",
    "cross_influence": "influence_stage.engine.influence",
    "cross_influence_topk": "influence_stage.engine.influence",
    "deviation": "influence_stage.engine.influence",
    "mean_test_loss_influence": "influence_stage.engine.influence",
    "self_influence": "influence_stage.engine.influence",
    "Learner": "influence_stage.engine.learner",
    "TensorData": "influence_stage.engine.learner",
    "TorchLearner": "influence_stage.engine.learner",
    "InfluenceCleaner": "influence_stage.api",
    "InfluenceSampler": "influence_stage.api",
    "run_pipeline": "influence_stage.stage.run",
    "HFLearner": "influence_stage.engine.hf",
    "SklearnLearner": "influence_stage.engine.sklearn_learner",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # the next access skips __getattr__
        return value
    raise AttributeError(f"module 'influence_stage' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "CheckpointError", "CleanConfig", "FeaturizeConfig", "FitConfig", "GEXConfig", "GEXResult", "HFLearner", "InfluenceCleaner",
    "InfluenceSampler", "InfluenceStageError", "InvalidInputError", "InvalidTypeError", "Learner",
    "MissingDependencyError", "SklearnLearner", "TensorData", "TorchLearner", "ValidationFailedError", "__version__",
    "cross_influence", "cross_influence_topk", "deviation", "gex", "gex_self_influence",
    "mean_test_loss_influence", "run_pipeline", "self_influence",
]

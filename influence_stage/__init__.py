"""influence_stage: find mislabeled and harmful rows with geometric-ensemble influence (GEX).

The public API: ``gex_self_influence`` / ``gex`` (arrays in, scores out), ``InfluenceCleaner``
(dataset in, cleaned dataset out), ``InfluenceSampler`` (imbalanced-learn sampler; needs the
``dev`` extra), ``run_pipeline`` / ``CleanConfig`` (the stage's steps), ``HFLearner`` (needs the
``hf`` extra), ``SklearnLearner`` (scikit-learn classifiers with ``partial_fit``). Optional pieces
are imported on first use.
"""

from typing import Any

from influence_stage.config import FitConfig, GEXConfig
from influence_stage.errors import (
    CheckpointError,
    InfluenceStageError,
    InvalidInputError,
    InvalidTypeError,
    MissingDependencyError,
    ValidationFailedError,
)
from influence_stage.engine.gex import GEXResult, gex, gex_self_influence
from influence_stage.engine.influence import (
    cross_influence,
    cross_influence_topk,
    deviation,
    mean_test_loss_influence,
    self_influence,
)
from influence_stage.engine.learner import Learner, TensorData, TorchLearner

__version__ = "0.1.0"

_LAZY = {
    "InfluenceCleaner": "influence_stage.api",
    "InfluenceSampler": "influence_stage.api",
    "CleanConfig": "influence_stage.stage.steps",
    "run_pipeline": "influence_stage.stage.run",
    "HFLearner": "influence_stage.engine.hf",
    "SklearnLearner": "influence_stage.engine.sklearn_learner",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'influence_stage' has no attribute {name!r}")


__all__ = [
    "CheckpointError", "CleanConfig", "FitConfig", "GEXConfig", "GEXResult", "HFLearner", "InfluenceCleaner",
    "InfluenceSampler", "InfluenceStageError", "InvalidInputError", "InvalidTypeError", "Learner",
    "MissingDependencyError", "SklearnLearner", "TensorData", "TorchLearner", "ValidationFailedError", "__version__",
    "cross_influence", "cross_influence_topk", "deviation", "gex", "gex_self_influence",
    "mean_test_loss_influence", "run_pipeline", "self_influence",
]

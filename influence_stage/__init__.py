"""influence_stage: find mislabeled and harmful rows with geometric-ensemble influence (GEX)."""

from influence_stage.config import FitConfig, GEXConfig
from influence_stage.exceptions import (
    CheckpointError,
    InfluenceStageError,
    InvalidInputError,
    InvalidTypeError,
    ValidationFailedError,
)
from influence_stage.gex import GEXResult, gex, gex_self_influence
from influence_stage.influence import (
    cross_influence,
    cross_influence_topk,
    deviation,
    mean_test_loss_influence,
    self_influence,
)
from influence_stage.learner import Learner, TensorData, TorchLearner

__version__ = "0.1.0"

__all__ = [
    "CheckpointError", "FitConfig", "GEXConfig", "GEXResult", "InfluenceStageError", "InvalidInputError",
    "InvalidTypeError", "Learner", "TensorData", "TorchLearner", "ValidationFailedError", "__version__",
    "cross_influence", "cross_influence_topk", "deviation", "gex", "gex_self_influence",
    "mean_test_loss_influence", "self_influence",
]

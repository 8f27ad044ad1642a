"""The estimators' parameters as one stage configuration: the model argument checked, the configs merged.

``InfluenceCleaner`` and ``InfluenceSampler`` store their keyword arguments untouched (the scikit-learn
contract); at fit time ``build_config`` turns them into one
``CleanConfig``, the one the flows and the CLI run, and the model
object to hand to the steps.
"""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from influence_stage.config import FitConfig, GEXConfig
from influence_stage.config.featurize import FeaturizeConfig
from influence_stage.engine.learner import Learner
from influence_stage.engine.scores import check_score_name
from influence_stage.errors import InvalidTypeError
from influence_stage.seeds import seeded_sections
from influence_stage.config import CleanConfig

def check_model(model: Any) -> Any:
    """``model`` if it is a string, a torch module or a Learner; else a clear InvalidTypeError.

    Strings are checked by ``CleanConfig`` (see ``pipeline.parse_model_spec``).
    """
    if isinstance(model, (str, nn.Module)) or isinstance(model, Learner) or is_sklearn_classifier(model):
        return model
    raise InvalidTypeError(
        "model must be a model name ('auto', 'mlp', 'cnn'), a torch checkpoint path ('checkpoint:<path>' or a "
        "path ending in .pt, .pth, .bin, .safetensors), a Hugging Face model folder ('hf:<folder>'), a "
        "torch.nn.Module (trained), a Learner (trained) or a scikit-learn classifier with partial_fit and "
        f"predict_proba (e.g. SGDClassifier(loss='log_loss'), MLPClassifier(solver='sgd')); found "
        f"{type(model).__name__} {model!r}."
    )


def is_sklearn_classifier(model: Any) -> bool:
    """A scikit-learn estimator that ``SklearnLearner`` can drive."""
    return hasattr(model, "get_params") and hasattr(model, "partial_fit") and hasattr(model, "predict_proba")


def sklearn_learner(model: Any, gex: GEXConfig) -> tuple[Any, bool]:
    """A scikit-learn classifier as a ``SklearnLearner`` on a copy (the caller's estimator, its
    hyperparameters included, is never changed), and whether it must be trained first (unfitted)."""
    from influence_stage.engine.sklearn_learner import SklearnLearner

    fitted = hasattr(model, "coef_") or hasattr(model, "coefs_")
    return SklearnLearner(copy.deepcopy(model), batch_size=gex.batch_size), not fitted


def check_config_arg(value: Any, cls: type, name: str) -> Any:
    if value is None or isinstance(value, cls):
        return value
    raise InvalidTypeError(
        f"{name} must be a {cls.__name__} or None; found {type(value).__name__}. Fix: {name}={cls.__name__}(...)."
    )


def build_config(*, model: Any, gex_config: GEXConfig | None, fit_config: FitConfig | None, random_state: Any,
                  score: str | None = None, featurize_config: FeaturizeConfig | None = None,
                  **fields: Any) -> tuple[CleanConfig, Any]:
    """The estimator's parameters as one CleanConfig, and the model object to pass to the steps.

    ``score`` (when not None) replaces ``gex_config.score``. ``featurize_config`` is the
    ``featurize`` section (``text_model``, image size, TF-IDF widths...); default ``FeaturizeConfig()``.

    Every seed (``θ*`` initialisation and chains ``gex.seed``, batch order ``fit.seed``, text SVD
    ``featurize.seed``, the gmm threshold ``seed``) is derived from ``random_state`` by
    ``influence_stage.seeds.derive_seeds`` (the rule the CLI's ``--seed`` follows too), replacing
    the seeds of the given configs: an int gives the same seeds (and scores) every time, None draws
    them from numpy's global random state (fresh randomness, as in scikit-learn).
    """
    model = check_model(model)
    gex = check_config_arg(gex_config, GEXConfig, "gex_config") or GEXConfig()
    fit = check_config_arg(fit_config, FitConfig, "fit_config") or FitConfig()
    featurize = check_config_arg(featurize_config, FeaturizeConfig, "featurize_config") or FeaturizeConfig()
    if score is not None:
        gex = GEXConfig.model_validate({**gex.model_dump(), "score": check_score_name(score)})
    data: dict[str, Any] = dict(fields, gex=gex, fit=fit, featurize=featurize)
    if is_sklearn_classifier(model) and not isinstance(model, Learner):
        model, needs_fit = sklearn_learner(model, gex)
        if needs_fit:  # an unfitted estimator is trained on the data with fit_config, like a model name
            data["fit_loaded"] = True
    if isinstance(model, str):
        data["model"] = model
    data.update(seeded_sections(data, random_state))  # the one rule of influence_stage.seeds
    config = CleanConfig.from_mapping(data, where="estimator parameters")
    return config, (None if isinstance(model, str) else model)



"""Checks of a model the user passes in: its sizes against the data, and whether it looks trained.

A passed ``torch.nn.Module`` is checked against numeric arrays before any work
(``check_given_module``, through ``influence_stage.engine.checkpoint.check_model``), and a
given model used as θ* as it is (not trained by the stage) draws a warning when it predicts the
given labels no better than a uniform guess (``warn_if_untrained``).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from torch import nn

from influence_stage.engine.checkpoint import check_model
from influence_stage.errors import InvalidInputError

UNTRAINED_LOSS_SHARE = 0.9
"""The untrained rule: a given ``θ*`` whose mean training loss (cross-entropy on the given labels) is at
least this share of ``log(K)``, the loss of a uniform guess over the K classes, is taken as untrained.
A randomly initialised network scores about ``log(K)``; measured on 200 digits rows (10 classes, log 10 =
2.30): 2.37 for a fresh 64-32-10 MLP, 1.15 for the stage's MLP after only 5 epochs."""


def check_given_module(model: Any, X: np.ndarray, y: np.ndarray, *, estimator: str) -> None:
    """Raise ``InvalidInputError`` when ``model`` is a torch module that does not fit ``(X, y)``.

    Parameters
    ----------
    model : any
        Checked only when it is a ``torch.nn.Module`` and ``X`` is 2-D (tabular rows are
        standardised, not reshaped, before ``θ*`` sees them, so the input size is ``X.shape[1]``).
    X : ndarray, shape ``(n_samples, n_features)``
    y : ndarray, shape ``(n_samples,)``
        Labels of any type; their distinct values are the classes.
    estimator : str
        The estimator's name, for the message.
    """
    if not isinstance(model, nn.Module) or X.ndim != 2:
        return
    n_features, n_classes = int(X.shape[1]), int(np.unique(y).size)
    try:
        check_model(model, (n_features,), n_classes)
    except InvalidInputError as exc:
        raise InvalidInputError(
            f"{estimator}(model=...) got a {type(model).__name__} that does not fit the data: {exc} Fix: pass a "
            f"module built for {n_features} input features and {n_classes} output classes, trained on these rows "
            "(or a model name such as 'mlp')."
        ) from exc


def warn_if_untrained(model: Any, fit_loaded: bool, base_loss: np.ndarray, n_classes: int, *, fix: str,
                      stacklevel: int = 4) -> None:
    """Warn (``UserWarning``) when a given model used as ``θ*`` looks untrained (``UNTRAINED_LOSS_SHARE``).

    Parameters
    ----------
    model : any
        Only a model object (a module, a learner, a fitted scikit-learn classifier) is checked; a
        model name is trained by the stage.
    fit_loaded : bool
        The stage trained the given model first: nothing to check.
    base_loss : ndarray, shape ``(n_samples,)``
        Per-row loss at ``θ*`` on the given labels (``GEXResult.base_loss``).
    n_classes : int
    fix : str
        What the user can do, in the estimator's own arguments.
    stacklevel : int
        ``warnings.warn``'s, so the warning points at the user's call.
    """
    if isinstance(model, str) or model is None or fit_loaded or n_classes < 2 or base_loss.size == 0:
        return
    mean, chance = float(np.mean(base_loss)), math.log(n_classes)
    if mean >= UNTRAINED_LOSS_SHARE * chance:
        warnings.warn(
            f"the given model looks untrained: its mean training loss at θ* is {mean:.3f}, and a uniform guess over "
            f"{n_classes} classes scores log({n_classes}) = {chance:.3f} (the rule: a warning at "
            f"{UNTRAINED_LOSS_SHARE:g} of it or more). GEX scores of an untrained θ* do not single out wrong labels. "
            f"Fix: {fix}",
            UserWarning, stacklevel=stacklevel)

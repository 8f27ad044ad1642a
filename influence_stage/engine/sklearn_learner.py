"""``SklearnLearner``: the ``Learner`` protocol for scikit-learn classifiers that learn by SGD.

Any estimator with ``partial_fit`` and ``predict_proba`` can be ``θ*`` for GEX: ``SGDClassifier``
with ``loss="log_loss"`` (or ``"modified_huber"``) and ``MLPClassifier`` with ``solver="sgd"`` or
``"adam"``. This module owns the translation:

- the state is a copy of the fitted parameter arrays as tensors of their own dtype (``coef_`` /
  ``intercept_`` for linear models; ``coefs_.<i>`` / ``intercepts_.<i>`` for an MLP), and the
  features are given to the estimator in that dtype (its Cython / numpy code keeps one dtype);
- ``train_steps`` takes SGD steps by calling ``partial_fit`` on minibatches, with the schedule's
  learning rate set before every step (``SGDClassifier``: ``learning_rate="constant"`` and
  ``eta0``; ``MLPClassifier``: ``learning_rate_init`` and the optimizer's own rate), and a fresh
  optimizer per call (an MLP's momentum buffers restart, as ``TorchLearner``'s do);
- ``per_sample_loss`` is the cross-entropy of ``predict_proba`` on the given label.

``SGDClassifier.partial_fit`` updates per sample, so one "step" on a minibatch of ``B`` rows is
``B`` sample updates at rate ``eta0``: its useful ``ft_lr`` is far smaller than a torch model's
(see tests/engine/test_sklearn_learner.py for measured values).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from sklearn.base import clone

from influence_stage.config import FitConfig
from influence_stage.errors import InvalidInputError, InvalidTypeError
from influence_stage.engine.learner import CosineSchedule, LRSchedule, State, TrainHistory, batch_indices, labels_digest

logger = logging.getLogger(__name__)

#: Rows of probability below which the cross-entropy is clipped (``-log(1e-12)`` ≈ 27.6).
PROBA_FLOOR = 1e-12


def _as_numpy(data: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` of a ``TensorData`` (or any pair with ``X`` / ``y``) as numpy float64 / int64."""
    X, y = data.X, data.y
    X = X.detach().cpu().numpy() if hasattr(X, "detach") else np.asarray(X)
    y = y.detach().cpu().numpy() if hasattr(y, "detach") else np.asarray(y)
    return np.asarray(X, dtype=np.float64).reshape(len(X), -1), np.asarray(y, dtype=np.int64)


def _is_mlp(estimator: Any) -> bool:
    return hasattr(estimator, "hidden_layer_sizes") and hasattr(estimator, "learning_rate_init")


class SklearnLearner:
    """``Learner`` for a scikit-learn classifier with ``partial_fit`` and ``predict_proba``.

    Parameters
    ----------
    estimator : classifier
        ``SGDClassifier(loss="log_loss")``, ``MLPClassifier(solver="sgd")`` or any classifier with
        ``partial_fit`` and ``predict_proba`` whose parameters are ``coef_`` / ``intercept_`` or
        ``coefs_`` / ``intercepts_``. Fitted (``θ*``, with ``classes_`` equal to the codes
        ``0..K-1``) or not (then ``fit`` trains it). The learner owns it: GEX moves its
        parameters and leaves it at ``θ*``.
    batch_size : int, default 128
        Rows per ``partial_fit`` call (one SGD step).
    n_classes : int, optional
        ``K``; default: ``len(estimator.classes_)`` when fitted, else ``max(y) + 1`` of the first
        data it is trained on.

    Raises
    ------
    InvalidTypeError
        An estimator without ``partial_fit`` or ``predict_proba`` (e.g. ``SGDClassifier(loss="hinge")``,
        ``MLPClassifier(solver="lbfgs")``); the message says which setting gives them.
    """

    def __init__(self, estimator: Any, *, batch_size: int = 128, n_classes: int | None = None) -> None:
        missing = [m for m in ("partial_fit", "predict_proba") if not hasattr(estimator, m)]
        if missing:
            raise InvalidTypeError(
                f"SklearnLearner needs an estimator with partial_fit and predict_proba; {type(estimator).__name__} "
                f"has no {' and no '.join(missing)}. Fix: SGDClassifier(loss='log_loss') or "
                "MLPClassifier(solver='sgd') (solver 'lbfgs' and losses without probabilities have neither)."
            )
        if getattr(estimator, "early_stopping", False):
            raise InvalidInputError(
                f"{type(estimator).__name__}(early_stopping=True) cannot take partial_fit steps. Fix: "
                "early_stopping=False."
            )
        self.estimator = estimator
        self.batch_size = int(batch_size)
        self.n_classes = n_classes
        if hasattr(estimator, "classes_"):
            self._check_classes(len(estimator.classes_) if n_classes is None else n_classes)
        self.last_fit: TrainHistory | None = None
        if _is_mlp(estimator):
            estimator.set_params(batch_size=self.batch_size)

    # -- helpers ---------------------------------------------------------------------------------
    def _check_classes(self, k: int) -> None:
        classes = np.asarray(self.estimator.classes_)
        if classes.shape != (k,) or not np.array_equal(classes, np.arange(k)):
            raise InvalidInputError(
                f"the fitted {type(self.estimator).__name__} has classes_ {classes.tolist()[:10]}; GEX gives labels as "
                f"codes 0..{k - 1}, so column k of predict_proba must be class k. Fix: fit it on the codes "
                "(e.g. LabelEncoder().fit_transform(y)), or pass it unfitted and let SklearnLearner.fit train it."
            )
        self.n_classes = k

    def _classes(self, y: np.ndarray) -> np.ndarray:
        if self.n_classes is None:
            self.n_classes = int(y.max()) + 1
        return np.arange(self.n_classes)

    def _dtype(self) -> np.dtype:
        """The dtype of the fitted parameters (float64 before the first fit)."""
        est = self.estimator
        first = est.coefs_[0] if hasattr(est, "coefs_") else getattr(est, "coef_", None)
        return np.dtype(np.float64) if first is None else first.dtype

    def _X(self, X: np.ndarray) -> np.ndarray:
        return X.astype(self._dtype(), copy=False)

    def _step(self, X: np.ndarray, y: np.ndarray, lr: float) -> None:
        """One ``partial_fit`` call on a minibatch at learning rate ``lr``."""
        est = self.estimator
        X = self._X(X)
        kwargs = {} if hasattr(est, "classes_") else {"classes": self._classes(y)}
        if _is_mlp(est):
            optimizer = getattr(est, "_optimizer", None)
            if optimizer is None:
                est.set_params(learning_rate_init=float(lr))  # the optimizer is built from it
            else:
                optimizer.learning_rate_init = float(lr)  # adam derives its rate from this one
                optimizer.learning_rate = float(lr)  # sgd steps with this one
        else:
            est.set_params(learning_rate="constant", eta0=max(float(lr), 1e-12))  # eta0 must be > 0
        est.partial_fit(X, y, **kwargs)

    def _fresh_optimizer(self) -> None:
        if hasattr(self.estimator, "_optimizer"):
            del self.estimator._optimizer  # MLP: momentum / adam moments restart, as for TorchLearner

    # -- Learner protocol ------------------------------------------------------------------------
    def _param_names(self) -> list[str]:
        est = self.estimator
        if hasattr(est, "coefs_"):
            return [f"coefs_.{i}" for i in range(len(est.coefs_))] + \
                   [f"intercepts_.{i}" for i in range(len(est.intercepts_))]
        if hasattr(est, "coef_"):
            return ["coef_", "intercept_"]
        raise InvalidInputError(
            f"{type(est).__name__} is not fitted (no coef_ / coefs_): there is no θ* to copy. Fix: fit it first, "
            "or call SklearnLearner.fit."
        )

    def get_state(self) -> State:
        """Copies of the parameter arrays as tensors of their dtype (``coef_``, ``intercept_`` or
        ``coefs_.<i>``, ``intercepts_.<i>``)."""
        est = self.estimator
        out: State = {}
        for name in self._param_names():
            attr, _, index = name.partition(".")
            value = getattr(est, attr) if not index else getattr(est, attr)[int(index)]
            out[name] = torch.from_numpy(np.array(value, copy=True))
        return out

    def set_state(self, state: State) -> None:
        est = self.estimator
        expected = self._param_names()
        if sorted(state) != sorted(expected):
            raise InvalidInputError(f"state keys {sorted(state)} do not match the estimator's {sorted(expected)}.")
        dtype = self._dtype()
        for name in expected:
            value = np.array(state[name].detach().cpu().numpy() if hasattr(state[name], "detach") else state[name],
                             dtype=dtype, copy=True)
            attr, _, index = name.partition(".")
            if index:
                getattr(est, attr)[int(index)] = value
            else:
                setattr(est, attr, value)

    def train_steps(self, data: Any, steps: int, lr_schedule: LRSchedule, *, seed: int = 0) -> None:
        """``steps`` ``partial_fit`` calls on minibatches of ``batch_size`` rows (epoch-wise
        permutations from ``seed``), the rate ``lr_schedule(t)`` set before step ``t``; fresh
        optimizer state."""
        X, y = _as_numpy(data)
        self._fresh_optimizer()
        gen = torch.Generator().manual_seed(int(seed))
        for t, idx in enumerate(batch_indices(len(y), steps, self.batch_size, gen)):
            idx = idx.numpy()
            self._step(X[idx], y[idx], lr_schedule(t))

    def _proba(self, data: Any) -> np.ndarray:
        X, _ = _as_numpy(data)
        proba = np.asarray(self.estimator.predict_proba(self._X(X)), dtype=np.float64)
        k = self.n_classes or proba.shape[1]
        if proba.shape[1] != k:
            raise InvalidInputError(f"predict_proba gives {proba.shape[1]} columns; expected {k} classes.")
        return proba

    def predict_proba(self, data: Any) -> np.ndarray:
        """``(n_samples, n_classes) float32``; column k is class k."""
        return self._proba(data).astype(np.float32)

    def per_sample_loss(self, data: Any) -> np.ndarray:
        """Cross-entropy on the given labels, ``-log p(y)`` (clipped at ``PROBA_FLOOR``), ``(n,) float32``."""
        _, y = _as_numpy(data)
        p = self._proba(data)[np.arange(len(y)), y]
        return (-np.log(np.clip(p, PROBA_FLOOR, None))).astype(np.float32)

    # -- training θ* (for the automatic scale and the default score) ------------------------------
    def fit(self, data: Any, recipe: FitConfig, *, progress: bool = False) -> TrainHistory:
        """Train from the current parameters: ``recipe.epochs_for(n)`` epochs of ``partial_fit`` steps on
        minibatches of ``recipe.batch_size``, cosine decay from ``recipe.lr`` to 0, batch order from
        ``recipe.seed``. (Momentum and weight decay are the estimator's own: ``momentum`` /
        ``alpha``.) Returns per-epoch loss and accuracy on the given labels; no margins."""
        X, y = _as_numpy(data)
        n = len(y)
        batch = min(recipe.batch_size, n)
        per_epoch = max(n // batch, 1)
        epochs = recipe.epochs_for(n)
        schedule = CosineSchedule(recipe.lr, epochs * per_epoch)
        gen = torch.Generator().manual_seed(int(recipe.seed))
        batches = batch_indices(n, epochs * per_epoch, batch, gen)
        self._fresh_optimizer()
        if _is_mlp(self.estimator):
            self.estimator.set_params(batch_size=batch)
        history = TrainHistory()
        for epoch in range(epochs):
            for t in range(epoch * per_epoch, (epoch + 1) * per_epoch):
                idx = batches[t].numpy()
                self._step(X[idx], y[idx], schedule(t))
            loss = self.per_sample_loss(data)
            history.loss.append(float(loss.mean()))
            history.accuracy.append(float((self.predict_proba(data).argmax(1) == y).mean()))
        if _is_mlp(self.estimator):
            self.estimator.set_params(batch_size=self.batch_size)
        self.last_fit = TrainHistory(loss=history.loss, accuracy=history.accuracy, mean_margin=None,
                                     labels_digest=labels_digest(y))
        logger.info("SklearnLearner fit: %d epochs, final train loss %.4f, accuracy %.4f", epochs,
                    history.loss[-1], history.accuracy[-1])
        return self.last_fit

    def fresh_copy(self, seed: int) -> "SklearnLearner":
        """An unfitted clone of the estimator (``random_state=seed`` when it has one), same settings."""
        est = clone(self.estimator)
        if "random_state" in est.get_params():
            est.set_params(random_state=int(seed))
        return SklearnLearner(est, batch_size=self.batch_size, n_classes=self.n_classes)


__all__ = ["SklearnLearner"]

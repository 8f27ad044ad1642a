"""Reference baselines beside GEX, for benchmarks and for users who want them.

- ``loss_at_theta``: per-sample loss at θ*.
- ``el2n``: L2 norm of the error vector ``softmax(f(x)) - onehot(y)`` at θ*.
- ``gradient_norm_influence``: identity-curvature self-influence ``||g_n||²`` (TracIn at one
  checkpoint), per-sample gradients with ``torch.func``.
- ``linearized_influence``: damped ``g_nᵀ (H + λI)⁻¹ g_n`` with the exact Gauss-Newton matrix of the
  cross-entropy, for small models or the last layer of a larger one.
- ``confident_learning_scores``: cleanlab's label-quality on out-of-sample probabilities
  (``cross_validated_proba`` gives them).
- ``area_under_margin``: the negated in-sample margin of the given label averaged over θ*'s training
  epochs (AUM, a training-dynamics signal recorded by ``TorchLearner.fit``).
- ``knn_disagreement``: the share of a row's nearest neighbours in feature space whose label differs
  from its own (embedding-kNN label disagreement, SimiFeat style).

All return ``(n_samples,)`` arrays, higher = more suspicious. The model-based ones need a ``TorchLearner``.
"""

from __future__ import annotations

from typing import Callable, Literal

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import StratifiedKFold
from sklearn.neighbors import NearestNeighbors
from torch import nn

from influence_stage.config import FitConfig
from influence_stage.errors import InvalidInputError
from influence_stage.engine.learner import TensorData, TorchLearner


def loss_at_theta(learner: TorchLearner, data: TensorData) -> np.ndarray:
    """Cross-entropy at θ* on the given labels, ``(n_samples,) float32``."""
    return learner.per_sample_loss(data)


def el2n(learner: TorchLearner, data: TensorData) -> np.ndarray:
    """EL2N score ``||softmax(f(x)) - onehot(y)||₂`` at θ*, ``(n_samples,) float32``."""
    p = learner.predict_proba(data)
    p[np.arange(len(p)), data.y.cpu().numpy()] -= 1.0
    return np.linalg.norm(p, axis=1).astype(np.float32)


def _param_subset(module: nn.Module, which: Literal["all", "last"]) -> tuple[dict, dict]:
    """Split parameters into (scored, fixed). ``"last"``: the last ``nn.Linear`` layer only."""
    named = dict(module.named_parameters())
    if which == "all":
        return {k: v.detach() for k, v in named.items()}, {}
    linears = [name for name, m in module.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise InvalidInputError("params='last' needs a model whose last layer is torch.nn.Linear.")
    prefix = linears[-1] + "."
    scored = {k: v.detach() for k, v in named.items() if k.startswith(prefix)}
    fixed = {k: v.detach() for k, v in named.items() if not k.startswith(prefix)}
    return scored, fixed


def _jacobians(module: nn.Module, scored: dict, fixed: dict, buffers: dict, xb: torch.Tensor) -> torch.Tensor:
    """Jacobian of the logits w.r.t. the scored parameters, ``(b, K, P)``."""

    def logits(p: dict, x: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(module, ({**fixed, **p}, buffers), (x.unsqueeze(0),)).squeeze(0)

    jac = torch.func.vmap(torch.func.jacrev(logits), in_dims=(None, 0))(scored, xb)
    return torch.cat([jac[k].reshape(xb.shape[0], jac[k].shape[1], -1) for k in scored], dim=2)


def gradient_norm_influence(learner: TorchLearner, data: TensorData, *, chunk: int = 512) -> np.ndarray:
    """Squared norm of the per-sample loss gradient over all parameters, ``(n_samples,) float64``."""
    module = learner.module.eval()
    params = {k: v.detach() for k, v in module.named_parameters()}
    buffers = {k: v.detach() for k, v in module.named_buffers()}

    def loss(p: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = torch.func.functional_call(module, (p, buffers), (x.unsqueeze(0),))
        return F.cross_entropy(out, y.unsqueeze(0))

    grad = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))
    out = np.empty(len(data), dtype=np.float64)
    for s in range(0, len(data), chunk):
        g = grad(params, data.X[s:s + chunk], data.y[s:s + chunk])
        out[s:s + chunk] = sum((v.reshape(v.shape[0], -1).double() ** 2).sum(1) for v in g.values()).cpu().numpy()
    return out


def linearized_influence(learner: TorchLearner, data: TensorData, *, damping: float = 0.01,
                         params: Literal["auto", "all", "last"] = "auto", max_params: int = 5000,
                         chunk: int = 256) -> np.ndarray:
    """Damped linearized self-influence ``g_nᵀ (H + λI)⁻¹ g_n``, ``(n_samples,) float64``.

    ``H`` is the exact Gauss-Newton matrix of the mean cross-entropy,
    ``H = (1/N) Σ_n J_nᵀ (diag(p_n) - p_n p_nᵀ) J_n`` with ``J_n`` the logit Jacobian, and
    ``λ = damping · trace(H) / P``. ``params="auto"`` uses all parameters when there are at most
    ``max_params`` of them, else the last linear layer (the usual last-layer influence).
    """
    module = learner.module.eval()
    n_all = sum(p.numel() for p in module.parameters())
    which = ("all" if n_all <= max_params else "last") if params == "auto" else params
    scored, fixed = _param_subset(module, which)
    n_params = sum(v.numel() for v in scored.values())
    if n_params > 4 * max_params:
        raise InvalidInputError(
            f"linearized_influence would form a {n_params}×{n_params} matrix; use params='last' "
            "or a smaller model."
        )
    buffers = {k: v.detach() for k, v in module.named_buffers()}
    H = torch.zeros(n_params, n_params, dtype=torch.float64)
    grads = torch.empty(len(data), n_params, dtype=torch.float64)
    for s in range(0, len(data), chunk):
        xb, yb = data.X[s:s + chunk], data.y[s:s + chunk]
        J = _jacobians(module, scored, fixed, buffers, xb).double()  # (b, K, P)
        with torch.no_grad():
            p = torch.softmax(torch.func.functional_call(module, ({**fixed, **scored}, buffers), (xb,)), 1).double()
        err = p - F.one_hot(yb, p.shape[1]).double()
        grads[s:s + chunk] = torch.einsum("bkp,bk->bp", J, err)
        Jbar = torch.einsum("bk,bkp->bp", p, J)
        A = (p.sqrt().unsqueeze(2) * (J - Jbar.unsqueeze(1))).reshape(-1, n_params)
        H += A.T @ A
    H /= len(data)
    lam = damping * float(torch.trace(H)) / n_params
    chol = torch.linalg.cholesky(H + lam * torch.eye(n_params, dtype=torch.float64))
    solved = torch.cholesky_solve(grads.T, chol)  # (P, n)
    return (grads.T * solved).sum(0).numpy()


def cross_validated_proba(make: Callable[[int], TorchLearner], data: TensorData, recipe: FitConfig, *,
                          folds: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-sample class probabilities ``(n_samples, n_classes)`` by stratified k-fold training.

    ``make(fold)`` returns a fresh, untrained learner; each is trained with the given recipe.
    """
    y = data.y.cpu().numpy()
    out: np.ndarray | None = None
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (tr, te) in enumerate(skf.split(np.zeros(len(y)), y)):
        learner = make(fold)
        learner.fit(data.subset(tr), recipe.model_copy(update={"seed": seed + fold}))
        p = learner.predict_proba(data.subset(te))
        if out is None:
            out = np.zeros((len(y), p.shape[1]), dtype=np.float32)
        out[te] = p
    return out


def confident_learning_scores(labels: np.ndarray, pred_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cleanlab on out-of-sample probabilities: ``(1 - label quality) (n,)``, issue mask ``(n,) bool``."""
    try:
        from cleanlab.rank import get_label_quality_scores
    except ImportError as exc:  # optional dependency
        raise InvalidInputError("confident learning needs cleanlab: pip install 'influence_stage[bench]'.") from exc
    quality = get_label_quality_scores(labels, pred_probs)
    from influence_stage.decisions.estimate import label_issue_flags

    issues = label_issue_flags(labels, pred_probs)  # in process, like the one-thread torch runs
    return 1.0 - quality, issues


def area_under_margin(learner: TorchLearner, data: TensorData) -> np.ndarray:
    """Negated mean in-sample margin of θ*'s training on ``data`` (AUM), ``(n_samples,) float64``.

    Needs ``learner.fit`` to have run on exactly these labels (its ``last_fit``).
    """
    from influence_stage.engine.gex import train_margin_of

    margin = train_margin_of(learner, data)
    if margin is None:
        raise InvalidInputError("area_under_margin needs the learner's own fit on these rows (learner.fit(data, ...) "
                                "records the margins); this learner was not trained on them.")
    return -np.asarray(margin, dtype=np.float64)


def knn_disagreement(X: np.ndarray, labels: np.ndarray, *, k: int = 10) -> np.ndarray:
    """Share of each row's ``k`` nearest neighbours (Euclidean, itself excluded) with another label.

    Parameters
    ----------
    X : ``(n_samples, n_features)`` features (or embeddings)
    labels : ``(n_samples,)`` given labels

    Returns
    -------
    ``(n_samples,) float64`` in [0, 1].
    """
    X = np.asarray(X, dtype=np.float32).reshape(len(X), -1)
    y = np.asarray(labels)
    if len(X) != len(y) or len(y) < 2:
        raise InvalidInputError(f"knn_disagreement needs one label per row and at least 2 rows; found {len(X)} rows "
                                f"and {len(y)} labels.")
    k = min(int(k), len(y) - 1)
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X)
    neighbours = idx[:, 1:]  # the first neighbour is the row itself (distance 0)
    return (y[neighbours] != y[:, None]).mean(axis=1)

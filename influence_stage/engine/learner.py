"""The one abstraction for "the model": the ``Learner`` protocol and ``TorchLearner``.

The ensemble, loss and influence code talk to a model only through ``Learner``: copy and restore
parameters, take SGD steps on the training loss, and give per-sample losses and class
probabilities in eval mode. ``TorchLearner`` implements it for any ``torch.nn.Module`` classifier
trained with cross-entropy on the given labels. It also offers two optional fast paths that the
engine uses when present: training several chains at once and evaluating several members at once,
both with ``torch.func`` (``functional_call`` + ``vmap`` over stacked parameters).

The devices (``resolve_device``) are in ``influence_stage.engine.devices``; the training data, batches,
schedule and history (``TensorData``, ``batch_indices``, ``CosineSchedule``, ``TrainHistory``) in
``influence_stage.engine.training``. Every one of those names still imports from here.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from influence_stage.config import FitConfig
from influence_stage.engine.devices import DEVICES, resolve_device
from influence_stage.engine.training import (
    CosineSchedule,
    LRSchedule,
    State,
    TensorData,
    TrainHistory,
    batch_indices,
    epoch_batches,
    eval_batches,
    labels_digest,
    random_shift,
)
from influence_stage.errors import InvalidInputError, InvalidTypeError

logger = logging.getLogger(__name__)

#: Added to a fit's seed for the generator of its random shifts (FitConfig.shift_pixels).
SHIFT_SEED_OFFSET = 7919


@runtime_checkable
class Learner(Protocol):
    """What GEX needs from a model: nothing more.

    ``data`` is whatever the learner understands; ``TorchLearner`` takes ``TensorData`` (or its
    on-disk twin ``data.feature_store.StreamData``).
    """

    def get_state(self) -> State:
        """A copy of the parameters (and buffers)."""

    def set_state(self, state: State) -> None:
        """Load parameters previously returned by ``get_state``."""

    def train_steps(self, data, steps: int, lr_schedule: LRSchedule, *, seed: int = 0) -> None:
        """Take ``steps`` SGD steps on the training loss with a fresh optimizer."""

    def per_sample_loss(self, data) -> np.ndarray:
        """Cross-entropy on the given labels in eval mode, ``(n_samples,) float32``."""

    def predict_proba(self, data) -> np.ndarray:
        """Class probabilities in eval mode, ``(n_samples, n_classes) float32``."""


# -- optional capabilities ----------------------------------------------------------------------
# A learner may offer more than ``Learner``; the engine asks with ``isinstance(learner, <capability>)``
# and falls back when it is absent. Each is a runtime-checkable protocol (attributes are checked by
# name, as ``hasattr`` would; a method set to None does not count).


@runtime_checkable
class OnDevice(Protocol):
    """Runs on a torch device; the stage builds its tensors there (else on the CPU)."""

    device: str


@runtime_checkable
class Minibatched(Protocol):
    """Trains on minibatches of ``batch_size`` rows (the automatic scale counts rows seen by it)."""

    batch_size: int


@runtime_checkable
class EvalBatched(Protocol):
    """Evaluates ``eval_batch_size`` rows per forward pass (the loss shards use it)."""

    eval_batch_size: int


@runtime_checkable
class Fittable(Protocol):
    """Trains θ* itself with a fit recipe (``fit_loaded``, models named by the stage)."""

    def fit(self, data, recipe: FitConfig, *, progress: bool = False) -> TrainHistory | None:
        """Train from the current parameters with ``recipe``; the history of the fit."""


@runtime_checkable
class FreshCopies(Protocol):
    """Makes an untrained copy of itself (the cross-fitted models of the automatic scale)."""

    def fresh_copy(self, seed: int) -> Any:
        """A new learner with the same architecture and settings, parameters re-initialised from ``seed``."""


@runtime_checkable
class CrossFittable(Fittable, FreshCopies, Protocol):
    """Both ``Fittable`` and ``FreshCopies``: it can train held-out copies of itself (out-of-sample
    probabilities, ``ft_lr="auto"``, the ``"estimate"`` threshold)."""


@runtime_checkable
class RecordsFit(Protocol):
    """Keeps the history of its last ``fit`` (``None`` before one): the training margins (AUM)."""

    last_fit: TrainHistory | None


@runtime_checkable
class MemberLogits(Protocol):
    """Evaluates several members at once (the ``"vmap"`` loss path)."""

    def member_logits(self, states: Sequence[State], X: torch.Tensor) -> torch.Tensor:
        """Eval-mode logits of every member, ``(n_members, b, n_classes)``."""


@runtime_checkable
class LossAndProba(Protocol):
    """Gives the per-sample loss and the class probabilities of one forward pass (the loss passes
    collect the members' mean probabilities for the decision on the way, instead of a second pass)."""

    def loss_and_proba(self, data) -> tuple[np.ndarray, np.ndarray]:
        """``(per_sample_loss(data), predict_proba(data))``, equal to the two calls, from one pass."""


@runtime_checkable
class BatchedChains(Protocol):
    """Trains several chains at once (``train_chains``) when ``can_train_batched()`` says it can."""

    def can_train_batched(self) -> bool:
        """Whether ``train_chains`` can be used for this model."""

    def train_chains(self, states: Sequence[State], data, steps: int, schedules: Sequence[LRSchedule],
                     seeds: Sequence[int]) -> list[State]:
        """Train ``len(states)`` chains at once; the same result as ``train_steps`` per chain."""


#: The optional capabilities, in the order docs/extending.md lists them.
CAPABILITIES: tuple[type, ...] = (OnDevice, Minibatched, EvalBatched, Fittable, FreshCopies, CrossFittable, RecordsFit,
                                  MemberLogits, LossAndProba, BatchedChains)


def capabilities(learner: Any) -> tuple[str, ...]:
    """The names of the optional capabilities ``learner`` offers (see ``CAPABILITIES``)."""
    return tuple(c.__name__ for c in CAPABILITIES if isinstance(learner, c))


def _margins(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Logit of the given label minus the largest other logit, ``(b,)``."""
    given = logits.gather(1, y[:, None])[:, 0]
    other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    return given - other


FIT_LOGITS_BLOCK = 1 << 22
"""Most logits (floats) ``TorchLearner.fit`` keeps aside before it computes their margins: a block of
steps of at most this many ``batch × classes`` values (16 MB), whatever the number of rows."""


def reinitialize(module: nn.Module, seed: int) -> nn.Module:
    """Re-initialise every submodule with ``reset_parameters`` from ``seed``; global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        for m in module.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
    return module


def _has_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def place(learner: Any, device: str | None) -> Any:
    """Put ``learner`` on ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"auto"``); returns it.

    A ``TorchLearner`` moves its module. Other learners (scikit-learn, Hugging Face) choose their
    device when they are built: ``"auto"`` leaves them where they are, and an explicit device they
    are not on is an error rather than a silent CPU run.

    Raises
    ------
    InvalidInputError
        CUDA asked for and absent (``resolve_device``), or a learner that cannot move there.
    """
    if device is None:
        return learner
    if isinstance(learner, TorchLearner):
        return learner.to(device)
    target = resolve_device(device)
    current = str(learner.device) if isinstance(learner, OnDevice) else "cpu"
    if device == "auto" or target == current:
        return learner
    raise InvalidInputError(
        f"device {device!r}: a {type(learner).__name__} runs on {current} and cannot be moved. Fix: use "
        "device='auto' or a torch model (a name, a module or a checkpoint)."
    )


class TorchLearner:
    """``Learner`` for any ``torch.nn.Module`` that maps a batch of inputs to class logits.

    Parameters
    ----------
    module : torch.nn.Module
        Maps ``X`` ``(b, ...)`` to logits ``(b, n_classes)``.
    batch_size : int
        Minibatch size of SGD steps.
    momentum, weight_decay : float
        SGD settings; every call of ``train_steps`` starts a fresh optimizer (momentum buffers 0).
    eval_batch_size : int
        Rows per forward pass when computing losses and probabilities.
    device : str
        Torch device, or ``"auto"`` (see ``resolve_device``).
    """

    def __init__(self, module: nn.Module, *, batch_size: int = 128, momentum: float = 0.9,
                 weight_decay: float = 5e-4, eval_batch_size: int = 4096, device: str = "cpu") -> None:
        if not isinstance(module, nn.Module):
            raise InvalidTypeError(f"TorchLearner needs a torch.nn.Module; found {type(module).__name__}.")
        device = resolve_device(device)
        self.module = module.to(device)
        self.batch_size = int(batch_size)
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.eval_batch_size = int(eval_batch_size)
        self.device = device
        self.last_fit: TrainHistory | None = None  # the history of the last fit(), with its labels' digest

    def to(self, device: str | torch.device) -> "TorchLearner":
        """Move the module to ``device`` (``"auto"`` allowed, see ``resolve_device``); returns self.

        Data built afterwards with ``stage.steps.learner_data`` follows ``self.device``.
        """
        self.device = resolve_device(device)
        self.module.to(self.device)
        return self

    # -- Learner protocol -------------------------------------------------------------------
    def get_state(self) -> State:
        return {k: v.detach().clone() for k, v in self.module.state_dict().items()}

    def set_state(self, state: State) -> None:
        self.module.load_state_dict(state)  # copies into the module's own device

    @property
    def has_batchnorm(self) -> bool:
        return _has_batchnorm(self.module)

    def train_steps(self, data: TensorData, steps: int, lr_schedule: LRSchedule, *, seed: int = 0) -> None:
        """``steps`` SGD steps (momentum, weight decay, fresh optimizer) on mean cross-entropy.

        Models with batch-norm get their running statistics re-estimated on ``data`` afterwards,
        so eval-mode losses reflect the new weights.
        """
        gen = torch.Generator().manual_seed(int(seed))
        opt = torch.optim.SGD(self.module.parameters(), lr=lr_schedule(0), momentum=self.momentum,
                              weight_decay=self.weight_decay)
        self.module.train()
        for t, idx in enumerate(batch_indices(len(data), steps, self.batch_size, gen)):
            for group in opt.param_groups:
                group["lr"] = lr_schedule(t)
            idx = idx.to(data.X.device)
            loss = F.cross_entropy(self.module(data.X[idx]), data.y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        self.module.eval()
        if self.has_batchnorm:
            self.recalibrate_batchnorm(data)

    @torch.no_grad()
    def logits(self, data: TensorData) -> torch.Tensor:
        """Eval-mode logits ``(n, n_classes)``."""
        self.module.eval()
        outs = [self.module(xb) for _, xb in eval_batches(data, self.eval_batch_size)]
        return torch.cat(outs)

    def per_sample_loss(self, data: TensorData) -> np.ndarray:
        return F.cross_entropy(self.logits(data), data.y, reduction="none").cpu().numpy().astype(np.float32)

    def predict_proba(self, data: TensorData) -> np.ndarray:
        return torch.softmax(self.logits(data), dim=1).cpu().numpy().astype(np.float32)

    def loss_and_proba(self, data: TensorData) -> tuple[np.ndarray, np.ndarray]:
        logits = self.logits(data)
        return (F.cross_entropy(logits, data.y, reduction="none").cpu().numpy().astype(np.float32),
                torch.softmax(logits, dim=1).cpu().numpy().astype(np.float32))

    # -- training θ* ------------------------------------------------------------------------
    def fit(self, data: TensorData, recipe: "FitConfig", *, progress: bool = False) -> TrainHistory:
        """Train from the current parameters with ``recipe`` (``FitConfig``): SGD with Nesterov
        momentum and weight decay, cosine decay from ``recipe.lr`` to 0 over
        ``recipe.epochs_for(n, row_shape)`` epochs (``recipe.epochs``, raised to ``recipe.min_steps``
        steps for image rows, fewer past ``recipe.max_steps`` steps).

        Returns the per-epoch mean training loss and accuracy on the given labels and each row's
        mean in-sample margin; the same history is kept as ``last_fit``.
        """
        batch_size = recipe.batch_size
        # image rows (c, h, w) get the recipe's step floor (FitConfig.min_steps); flat rows keep its epochs
        epochs = recipe.epochs_for(len(data), tuple(data.X.shape[1:]))
        steps_per_epoch = max(len(data) // min(batch_size, len(data)), 1)
        total = epochs * steps_per_epoch
        schedule = CosineSchedule(recipe.lr, total)
        gen = torch.Generator().manual_seed(int(recipe.seed))
        # image minibatches moved by a few pixels (FitConfig.shift_pixels), from a generator of their own so
        # the batch order is the unshifted fit's
        shift = int(recipe.shift_pixels) if len(data.X.shape) == 4 else 0
        shift_gen = torch.Generator().manual_seed(int(recipe.seed) + SHIFT_SEED_OFFSET)
        opt = torch.optim.SGD(self.module.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                              weight_decay=recipe.weight_decay, nesterov=recipe.momentum > 0)
        history = TrainHistory()
        # rows per second on the bar: epochs of different sizes compare by rows, not by steps
        bar = tqdm(total=total * min(batch_size, len(data)), desc="fit θ*", unit="rows", unit_scale=True,
                   disable=not progress, leave=False)
        margin_sum = torch.zeros(len(data), dtype=torch.float64, device=data.X.device)
        margin_count = torch.zeros(len(data), dtype=torch.float64, device=data.X.device)  # epochs that saw each row
        self.module.train()
        logits_buf: torch.Tensor | None = None
        for epoch in range(epochs):
            # each step only copies its logits and loss aside; the margins, the accuracy and the loss are
            # computed per block of steps (a row is in at most one minibatch per epoch, so the margins add
            # up in the same order as step by step), with one host sync per epoch
            first = epoch * steps_per_epoch
            batches = epoch_batches(len(data), batch_size, gen)
            loss_sum = torch.zeros((), dtype=torch.float64, device=data.X.device)
            correct = torch.zeros((), dtype=torch.int64, device=data.X.device)
            seen = 0
            for t in range(first, first + steps_per_epoch):
                for group in opt.param_groups:
                    group["lr"] = schedule(t)
                idx = batches[t - first].to(data.X.device)
                xb = data.X[idx]
                if shift:
                    xb = random_shift(xb, shift, shift_gen)
                out = self.module(xb)
                loss = F.cross_entropy(out, data.y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():
                    if logits_buf is None:  # a block of steps holds at most FIT_LOGITS_BLOCK logits
                        block = max(1, min(steps_per_epoch, FIT_LOGITS_BLOCK // max(out.numel(), 1)))
                        logits_buf = torch.empty((block, *out.shape), dtype=out.dtype, device=out.device)
                        loss_buf = torch.empty(block, dtype=torch.float32, device=out.device)
                    i = (t - first) % len(logits_buf)
                    logits_buf[i].copy_(out.detach())
                    loss_buf[i] = loss.detach()
                    if i == len(logits_buf) - 1 or t == first + steps_per_epoch - 1:
                        steps = range(t - i, t + 1)
                        rows = torch.cat([batches[u - first] for u in steps]).to(data.X.device)
                        margin = _margins(logits_buf[:i + 1].reshape(len(rows), -1), data.y[rows])
                        margin_sum.index_add_(0, rows, margin.double())
                        margin_count.index_add_(0, rows, torch.ones_like(margin_sum[:len(rows)]))
                        loss_sum += (loss_buf[:i + 1].double() * len(idx)).sum()
                        correct += (margin > 0).sum()  # the given label's logit beats every other one
                        seen += len(rows)
            loss_sum, correct = float(loss_sum), int(correct)
            history.loss.append(loss_sum / seen)
            history.accuracy.append(correct / seen)
            bar.update(seen)
            bar.set_postfix(epoch=epoch + 1, loss=f"{history.loss[-1]:.3f}", acc=f"{history.accuracy[-1]:.3f}")
        bar.close()
        self.module.eval()
        if self.has_batchnorm:
            self.recalibrate_batchnorm(data)
        logger.info("fit θ*: %d epochs, final train loss %.4f, accuracy %.4f", epochs,
                    history.loss[-1], history.accuracy[-1])
        # rows in no minibatch (only possible in the ragged tail) get 0
        mean = torch.where(margin_count > 0, margin_sum / margin_count.clamp_min(1), torch.zeros_like(margin_sum))
        self.last_fit = TrainHistory(loss=history.loss, accuracy=history.accuracy,
                                     mean_margin=mean.cpu().numpy().astype(np.float32),
                                     labels_digest=labels_digest(data.y))
        return self.last_fit

    def fresh_copy(self, seed: int) -> "TorchLearner":
        """A new learner with the same architecture and settings, parameters re-initialised."""
        module = reinitialize(copy.deepcopy(self.module), seed)
        return TorchLearner(module, batch_size=self.batch_size, momentum=self.momentum,
                            weight_decay=self.weight_decay, eval_batch_size=self.eval_batch_size,
                            device=self.device)

    @torch.no_grad()
    def recalibrate_batchnorm(self, data: TensorData) -> None:
        """Re-estimate batch-norm running statistics over ``data``, each batch weighted by its rows.

        A plain cumulative average would weigh a ragged last batch as much as a full one. With rows as
        weights the first batch-norm layer's running means are its inputs' means over all rows whatever
        the evaluation batch; deeper layers see inputs normalised with each batch's own statistics, so
        theirs still depend on it a little. The running variances are the row-weighted mean of the
        batches' variances.
        """
        bns = [m for m in self.module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        momenta = [bn.momentum for bn in bns]
        for bn in bns:
            bn.reset_running_stats()
        self.module.train()
        seen = 0
        for _, xb in eval_batches(data, self.eval_batch_size):
            for bn in bns:  # new = (1 - m) * old + m * batch, m = this batch's share of the rows so far
                bn.momentum = len(xb) / (seen + len(xb))
            self.module(xb)
            seen += len(xb)
        for bn, mom in zip(bns, momenta):
            bn.momentum = mom
        self.module.eval()

    # -- fast paths over several parameter sets -------------------------------------------------
    def _stack(self, states: Sequence[State]) -> dict[str, torch.Tensor]:
        return {k: torch.stack([s[k] for s in states]) for k in states[0]}

    @torch.no_grad()
    def member_logits(self, states: Sequence[State], X: torch.Tensor) -> torch.Tensor:
        """Eval-mode logits of several members at once, ``(n_members, b, n_classes)``."""
        self.module.eval()
        stacked = self._stack(states)

        def one(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(self.module, params, (x,))

        return torch.func.vmap(one, in_dims=(0, None))(stacked, X)

    def can_train_batched(self) -> bool:
        """Batched chain training needs a model without batch-norm (running stats are state)."""
        return not self.has_batchnorm

    def train_chains(self, states: Sequence[State], data: TensorData, steps: int,
                     schedules: Sequence[LRSchedule], seeds: Sequence[int]) -> list[State]:
        """Train ``len(states)`` independent chains at once; same result as ``train_steps`` per chain.

        Each chain c starts from ``states[c]``, uses its own batches (``seeds[c]``) and learning
        rate (``schedules[c]``), with a fresh SGD momentum buffer. Parameters are stacked and the
        forward/backward pass is vmapped, so C small models cost about as much as a few.
        """
        if not self.can_train_batched():
            raise InvalidInputError("train_chains needs a model without batch-norm; use train_steps.")
        n_chains = len(states)
        param_names = [k for k, _ in self.module.named_parameters()]
        stacked = self._stack(states)
        params = {k: stacked[k].clone() for k in param_names}
        buffers = {k: v for k, v in stacked.items() if k not in params}
        momentum_buf = {k: torch.zeros_like(v) for k, v in params.items()}
        batches = [batch_indices(len(data), steps, self.batch_size, torch.Generator().manual_seed(int(s)))
                   for s in seeds]
        module = self.module
        module.train()

        def chain_loss(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor,
                       y: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(torch.func.functional_call(module, (p, b), (x,)), y)

        grad_fn = torch.func.vmap(torch.func.grad(chain_loss), in_dims=(0, 0, 0, 0), randomness="different")
        for t in range(steps):
            idx = torch.stack([batches[c][t] for c in range(n_chains)]).to(data.X.device)  # (C, B)
            grads = grad_fn(params, buffers, data.X[idx], data.y[idx])
            lrs = torch.tensor([sch(t) for sch in schedules], dtype=torch.float32, device=data.X.device)
            with torch.no_grad():
                for k, p in params.items():
                    g = grads[k] + self.weight_decay * p
                    # torch.optim.SGD: the first step sets the buffer to the gradient itself
                    buf = momentum_buf[k]
                    if t == 0:
                        buf.copy_(g)
                    else:
                        buf.mul_(self.momentum).add_(g)
                    p.sub_(lrs.view(-1, *([1] * (p.dim() - 1))) * buf)
        module.eval()
        out = []
        for c in range(n_chains):
            st = {k: params[k][c].clone() for k in param_names}
            st.update({k: buffers[k][c].clone() for k in buffers})
            out.append({k: st[k] for k in states[0]})
        return out


# The devices (engine.devices) and the training data, batches, schedule and history (engine.training)
# live in their own modules; their names stay importable from here.
__all__ = [
    "BatchedChains", "CAPABILITIES", "CrossFittable", "EvalBatched", "Fittable", "FreshCopies", "MemberLogits",
    "Minibatched", "OnDevice", "RecordsFit", "capabilities",
    "DEVICES", "CosineSchedule", "FIT_LOGITS_BLOCK", "LRSchedule", "Learner", "State", "TensorData", "TorchLearner",
    "TrainHistory", "batch_indices", "epoch_batches", "eval_batches", "labels_digest", "place", "reinitialize",
    "resolve_device",
]

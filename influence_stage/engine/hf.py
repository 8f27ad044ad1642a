"""Hugging Face models behind the ``Learner`` protocol: ``HFLearner``, ``TextData``, ``ImageData``.

``transformers`` is an optional dependency (the ``hf`` extra): this module imports it only inside
the functions that need it, so ``import influence_stage`` (and this module) works without it, and
using it without the package raises ``MissingDependencyError`` with the pip command.

What ``HFLearner`` does, in Learner terms
-----------------------------------------
- Data are raw rows: ``TextData`` (strings) or ``ImageData`` (images); they are tokenized / run
  through the image processor in batches, inside training and evaluation, with fixed settings, so
  the same rows always give the same tensors.
- ``trainable`` fixes which parameters SGD moves: ``"all"``, ``"head"`` (the classification head:
  every parameter outside the backbone ``model.base_model_prefix``) or ``"last:N"`` (the head, the
  last N blocks of the backbone's layer list, and the backbone parameters after it, such as a
  pooler or final layer norm). Frozen parts run in eval mode while training (no dropout noise,
  batch-norm statistics untouched), so they are bit-identical in every member, and ``get_state`` /
  ``set_state`` copy only the trainable parameters (and buffers inside the trainable part): with
  ``"head"`` a member costs a few kilobytes, not a whole transformer.
- ``train_steps``: SGD with momentum and weight decay on the trainable parameters, a fresh optimizer
  per call, batch order from ``influence_stage.engine.learner.batch_indices`` with a generator seeded by
  ``seed``, dropout masks from ``seed`` as well (the global RNG is forked, never reseeded).
  ``per_sample_loss`` and ``predict_proba``: eval mode, cross-entropy on the given labels.
- ``fit`` (the θ* recipe) and ``fresh_copy`` make ``ft_lr="auto"`` work; ``fresh_copy``
  re-initialises only the trainable part (see there for why, and what that means for ``"all"``).

For the stage (``CleanConfig.model = "hf:<folder>"``): ``DatasetImages`` is a lazy view of a
dataset's image column (decoded row by row, in the model's channel count), ``check_trainable``
validates a ``trainable`` setting without loading anything, ``pretrained_digest`` hashes a model
folder for cache keys, and ``model_label_names`` reads the model's ``id2label``.

One job per module: the data classes are in ``influence_stage.engine.hf_data``, the choice of
trainable parameters in ``influence_stage.engine.hf_trainable``, the folder helpers (``require``,
``pretrained_digest``, ``model_label_names``) in ``influence_stage.engine.hf_folder``; this module
holds ``HFLearner`` and keeps every one of those names importable from here.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from influence_stage.config import FitConfig
from influence_stage.errors import CheckpointError, InvalidInputError, InvalidTypeError, MissingDependencyError
from influence_stage.engine.learner import CosineSchedule, LRSchedule, State, TrainHistory, batch_indices
from influence_stage.engine.hf_data import DatasetImages, ImageData, TextData
from influence_stage.engine.hf_data import as_labels as _as_labels, index_list as _index_list  # noqa: F401
from influence_stage.engine.hf_folder import PIP_HINT, model_label_names, pretrained_digest, require
from influence_stage.engine.hf_trainable import _LAST_N  # noqa: F401  (former private name)
from influence_stage.engine.hf_trainable import ancestors as _ancestors
from influence_stage.engine.hf_trainable import check_trainable, trainable_parameter_names
from influence_stage.engine.hf_trainable import layer_list as _layer_list  # noqa: F401  (former private name)
from influence_stage.engine.hf_trainable import parse_trainable as _parse_trainable

logger = logging.getLogger(__name__)

Task = Literal["text", "image"]


@contextlib.contextmanager
def seeded_rng(seed: int, device: str) -> Iterator[None]:
    """Seed torch's global RNG for dropout inside the block; the caller's RNG state is restored.

    Dropout draws from the global generator; forking it keeps training a function of ``seed`` alone
    (library code never seeds the global state for good).
    """
    dev = torch.device(device)
    cuda = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    dropout_seed = int(np.random.SeedSequence([int(seed), 1]).generate_state(1)[0])
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(dropout_seed)
        for index in cuda:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(dropout_seed)
        yield


_seeded_rng = seeded_rng  # the former private name


# -- the learner ------------------------------------------------------------------------------------


class HFLearner:
    """``Learner`` for a Hugging Face sequence- or image-classification model.

    Build it with ``HFLearner.from_pretrained(path, ...)`` from a local folder, or pass an already
    loaded model and its tokenizer / image processor.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        An ``AutoModelForSequenceClassification`` (``task="text"``) or
        ``AutoModelForImageClassification`` (``task="image"``) model; returns ``.logits``
        ``(b, num_labels)``.
    processor : tokenizer or image processor
        Called on a batch of raw rows with ``return_tensors="pt"``.
    task : {"text", "image"}
    trainable : str
        ``"all"``, ``"head"`` or ``"last:N"`` (module docstring).
    max_length : int
        Texts are truncated to this many tokens.
    batch_size : int
        Minibatch size of ``train_steps`` (``fit`` uses its recipe's).
    eval_batch_size : int
        Rows per forward pass in ``per_sample_loss`` / ``predict_proba``.
    momentum, weight_decay : float
        SGD settings of ``train_steps`` (GEX members); the engine does not override them.
    device : str
        Torch device.
    """

    def __init__(self, model: nn.Module, processor: Any, *, task: Task = "text", trainable: str = "all",
                 max_length: int = 128, batch_size: int = 16, eval_batch_size: int = 64,
                 momentum: float = 0.9, weight_decay: float = 5e-4, device: str = "cpu") -> None:
        if not isinstance(model, nn.Module):
            raise InvalidTypeError(f"HFLearner needs a torch.nn.Module model; found {type(model).__name__}.")
        if task not in ("text", "image"):
            raise InvalidInputError(f"task must be 'text' or 'image'; found {task!r}.")
        if not callable(processor):
            raise InvalidTypeError(
                f"processor must be the model's tokenizer or image processor; found {type(processor).__name__}."
            )
        num_labels = getattr(getattr(model, "config", None), "num_labels", None)
        if not isinstance(num_labels, int) or num_labels < 2:
            raise InvalidInputError(
                f"the model must be a classifier with config.num_labels >= 2; found {num_labels!r}."
            )
        for name, value in (("max_length", max_length), ("batch_size", batch_size),
                            ("eval_batch_size", eval_batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name} must be a positive integer; found {value!r}.")
        self.model = model.to(device)
        self.processor = processor
        self.task: Task = task
        self.trainable = trainable
        self.max_length = int(max_length)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size)
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.device = device
        self._names = trainable_parameter_names(self.model, trainable)
        names = set(self._names)
        for name, p in self.model.named_parameters():
            p.requires_grad_(name in names)
        self._frozen_roots = self._find_frozen_roots(names)
        self._buffer_names = [n for n, _ in self.model.named_buffers() if not self._is_frozen(n)]
        self.model.eval()
        n_total = sum(p.numel() for p in self.model.parameters())
        n_train = sum(p.numel() for n, p in self.model.named_parameters() if n in names)
        logger.info("HFLearner(%s, trainable=%r): %d of %d parameters trainable", type(model).__name__,
                    trainable, n_train, n_total)

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, task: Task = "text", num_labels: int | None = None,
                        trainable: str = "all", max_length: int = 128, batch_size: int = 16,
                        eval_batch_size: int = 64, momentum: float = 0.9, weight_decay: float = 5e-4,
                        device: str = "cpu") -> "HFLearner":
        """Load a classifier and its tokenizer / image processor from a local folder.

        Parameters
        ----------
        path : path-like
            A folder written by ``save_pretrained`` (model and tokenizer or image processor). Only
            local files are read; nothing is downloaded.
        task : {"text", "image"}
            ``"text"``: ``AutoModelForSequenceClassification`` + ``AutoTokenizer``; ``"image"``:
            ``AutoModelForImageClassification`` + ``AutoImageProcessor``.
        num_labels : int, optional
            Number of classes of the data; checked against the model's ``config.num_labels``.
        Others : see the class docstring.

        Raises
        ------
        MissingDependencyError
            ``transformers`` is not installed.
        CheckpointError
            The folder is missing or does not hold a loadable model / processor.
        InvalidInputError
            ``num_labels`` differs from the model's (both numbers named), or a bad setting.
        """
        transformers = require("transformers", purpose="HFLearner (Hugging Face models)")
        if task not in ("text", "image"):
            raise InvalidInputError(f"task must be 'text' or 'image'; found {task!r}.")
        _parse_trainable(trainable)  # fail before the (possibly slow) load
        folder = Path(path)
        if not folder.is_dir():
            raise CheckpointError(
                f"Hugging Face model folder not found: {folder}. Give a local folder written by "
                "save_pretrained (hub ids are not downloaded here; download them first)."
            )
        if task == "text":
            model_cls, proc_cls, proc_kind = (transformers.AutoModelForSequenceClassification,
                                              transformers.AutoTokenizer, "tokenizer")
        else:
            model_cls, proc_cls, proc_kind = (transformers.AutoModelForImageClassification,
                                              transformers.AutoImageProcessor, "image processor")
        try:
            model = model_cls.from_pretrained(str(folder), local_files_only=True)
        except Exception as exc:  # OSError (missing files), ValueError (wrong architecture), ...
            raise CheckpointError(
                f"could not load a {task} classification model from {folder}: {type(exc).__name__}: {exc}"
            ) from exc
        try:
            processor = proc_cls.from_pretrained(str(folder), local_files_only=True)
        except Exception as exc:
            raise CheckpointError(
                f"could not load the {proc_kind} from {folder}: {type(exc).__name__}: {exc}. Save it "
                f"next to the model with {proc_kind}.save_pretrained(folder)."
            ) from exc
        model = model.float()  # SGD steps in half precision would lose small updates
        if num_labels is not None and int(model.config.num_labels) != int(num_labels):
            raise InvalidInputError(
                f"the model in {folder} has {model.config.num_labels} labels (config.num_labels), the data "
                f"has {num_labels} classes. Use a model fine-tuned for {num_labels} classes."
            )
        if task == "text" and getattr(processor, "pad_token", "") is None:
            # decoder models (GPT-2 style) have no pad token; batches need one, and the model must
            # know it to find each row's last real token
            eos = getattr(processor, "eos_token", None)
            if eos is None:
                raise CheckpointError(f"the tokenizer in {folder} has neither a pad nor an eos token; "
                                      "set tokenizer.pad_token and save it again.")
            processor.pad_token = eos
            model.config.pad_token_id = processor.pad_token_id
            logger.info("tokenizer has no pad token; using eos %r", eos)
        return cls(model, processor, task=task, trainable=trainable, max_length=max_length,
                   batch_size=batch_size, eval_batch_size=eval_batch_size, momentum=momentum,
                   weight_decay=weight_decay, device=device)

    def _settings(self) -> dict[str, Any]:
        return dict(task=self.task, trainable=self.trainable, max_length=self.max_length,
                    batch_size=self.batch_size, eval_batch_size=self.eval_batch_size,
                    momentum=self.momentum, weight_decay=self.weight_decay, device=self.device)

    # -- bookkeeping of the trainable part -------------------------------------------------------
    def _find_frozen_roots(self, trainable: set[str]) -> list[str]:
        """Top-most submodules whose parameters are all frozen (they run in eval mode)."""
        has_params: set[str] = set()
        has_trainable: set[str] = set()
        for name, _ in self.model.named_parameters():
            for anc in _ancestors(name):
                has_params.add(anc)
                if name in trainable:
                    has_trainable.add(anc)
        frozen = has_params - has_trainable
        return sorted(m for m in frozen if m and not any(a in frozen for a in _ancestors(m) if a != m))

    def _is_frozen(self, name: str) -> bool:
        return any(name == r or name.startswith(r + ".") for r in self._frozen_roots)

    @property
    def n_classes(self) -> int:
        """Number of outputs of the model (``config.num_labels``)."""
        return int(self.model.config.num_labels)

    @property
    def trainable_names(self) -> list[str]:
        """Names of the trainable parameters (the keys of ``get_state`` besides buffers)."""
        return list(self._names)

    def _train_mode(self) -> None:
        self.model.train()
        modules = dict(self.model.named_modules())
        for root in self._frozen_roots:
            modules[root].eval()

    # -- Learner protocol ------------------------------------------------------------------------
    def get_state(self) -> State:
        """Copies of the trainable parameters (and buffers in the trainable part), by name."""
        params = dict(self.model.named_parameters())
        buffers = dict(self.model.named_buffers())
        state = {n: params[n].detach().clone() for n in self._names}
        state.update({n: buffers[n].detach().clone() for n in self._buffer_names})
        return state

    def set_state(self, state: State) -> None:
        """Load a state from ``get_state`` (same trainable setting); frozen parameters are untouched."""
        expected = set(self._names) | set(self._buffer_names)
        if set(state) != expected:
            missing = sorted(expected - set(state))[:5]
            extra = sorted(set(state) - expected)[:5]
            raise InvalidInputError(
                f"state does not match the trainable part (trainable={self.trainable!r}): missing "
                f"{missing}, unexpected {extra}. Use states from get_state of a learner with the same "
                "trainable setting."
            )
        tensors = dict(self.model.named_parameters())
        tensors.update(dict(self.model.named_buffers()))
        with torch.no_grad():
            for name, value in state.items():
                tensors[name].copy_(value)

    def train_steps(self, data: TextData | ImageData, steps: int, lr_schedule: LRSchedule, *,
                    seed: int = 0) -> None:
        """``steps`` SGD steps (momentum, weight decay, fresh optimizer) on mean cross-entropy.

        Only the trainable parameters move; batch order from ``batch_indices`` seeded by ``seed``,
        dropout masks from ``seed`` too (the global RNG is forked, not reseeded).
        Batch-norm layers in the trainable part get their statistics re-estimated afterwards.
        """
        self._check_data(data)
        gen = torch.Generator().manual_seed(int(seed))
        batches = batch_indices(len(data), int(steps), self.batch_size, gen)
        with seeded_rng(seed, self.device):
            for _ in self._sgd(data, batches, lr_schedule, momentum=self.momentum,
                               weight_decay=self.weight_decay, nesterov=False):
                pass
            self._recalibrate_batchnorm(data)

    def per_sample_loss(self, data: TextData | ImageData) -> np.ndarray:
        """Cross-entropy on the given labels in eval mode, ``(n_samples,) float32``."""
        logits = self.logits(data)
        return F.cross_entropy(logits, data.y, reduction="none").numpy().astype(np.float32)

    def predict_proba(self, data: TextData | ImageData) -> np.ndarray:
        """Class probabilities in eval mode, ``(n_samples, n_classes) float32``."""
        return torch.softmax(self.logits(data), dim=1).numpy().astype(np.float32)

    def loss_and_proba(self, data: TextData | ImageData) -> tuple[np.ndarray, np.ndarray]:
        """``per_sample_loss`` and ``predict_proba`` from one forward pass."""
        logits = self.logits(data)
        return (F.cross_entropy(logits, data.y, reduction="none").numpy().astype(np.float32),
                torch.softmax(logits, dim=1).numpy().astype(np.float32))

    @torch.no_grad()
    def logits(self, data: TextData | ImageData) -> torch.Tensor:
        """Eval-mode logits ``(n_samples, n_classes)`` float32 on the CPU."""
        self._check_data(data)
        self.model.eval()
        outs = []
        for start in range(0, len(data), self.eval_batch_size):
            index = list(range(start, min(start + self.eval_batch_size, len(data))))
            outs.append(self._forward(data, index).float().cpu())
        return torch.cat(outs)

    # -- training θ* ----------------------------------------------------------------------------
    def fit(self, data: TextData | ImageData, recipe: FitConfig, *, progress: bool = False) -> TrainHistory:
        """Train the trainable part from its current values with ``recipe`` (``FitConfig``).

        SGD with Nesterov momentum and weight decay, cosine decay from ``recipe.lr`` to 0 over
        ``recipe.epochs_for(n)`` epochs of ``recipe.batch_size`` rows (ragged tail dropped), as
        ``TorchLearner.fit``; batch order and dropout masks from ``recipe.seed``. Returns per-epoch
        mean training loss and accuracy on the given labels.
        """
        self._check_data(data)
        steps_per_epoch = max(len(data) // min(recipe.batch_size, len(data)), 1)
        epochs = recipe.epochs_for(len(data))
        total = epochs * steps_per_epoch
        gen = torch.Generator().manual_seed(int(recipe.seed))
        batches = batch_indices(len(data), total, recipe.batch_size, gen)
        history = TrainHistory()
        bar = tqdm(total=epochs, desc="fit θ*", disable=not progress, leave=False)
        loss_sum, correct, seen = 0.0, 0, 0
        with seeded_rng(recipe.seed, self.device):
            steps = self._sgd(data, batches, CosineSchedule(recipe.lr, total), momentum=recipe.momentum,
                              weight_decay=recipe.weight_decay, nesterov=recipe.momentum > 0)
            for t, (loss, n_correct, n_rows) in enumerate(steps):
                loss_sum += loss * n_rows
                correct += n_correct
                seen += n_rows
                if (t + 1) % steps_per_epoch == 0:
                    history.loss.append(loss_sum / seen)
                    history.accuracy.append(correct / seen)
                    bar.update(1)
                    bar.set_postfix(loss=f"{history.loss[-1]:.3f}", acc=f"{history.accuracy[-1]:.3f}")
                    loss_sum, correct, seen = 0.0, 0, 0
            self._recalibrate_batchnorm(data)
        bar.close()
        logger.info("fit θ*: %d epochs, final train loss %.4f, accuracy %.4f", epochs,
                    history.loss[-1], history.accuracy[-1])
        return history

    def fresh_copy(self, seed: int) -> "HFLearner":
        """A new learner with the same model and settings, the trainable part re-initialised.

        Only the trainable part is re-initialised (every submodule inside it with
        ``reset_parameters``, from ``seed``; the global RNG is untouched): the frozen backbone is
        the pretrained one, which is what a held-out model should start from (the auto scale's
        cross-fitted models must not have seen the rows, and a pretrained backbone has not —
        unless it was itself fine-tuned on them, which this class cannot undo). With
        ``trainable="all"`` this means the whole network starts from scratch, a poor yardstick
        for a pretrained transformer: prefer ``"head"`` / ``"last:N"``, or give ``ft_lr`` a number.
        Parameters of the trainable part that no ``reset_parameters`` covers (e.g. a ViT's
        position embeddings) keep their values.
        """
        if self.trainable == "all":
            logger.warning("fresh_copy with trainable='all' re-initialises the whole network; the held-out "
                           "models of ft_lr='auto' then train from scratch")
        model = copy.deepcopy(self.model)
        frozen = self._frozen_roots
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            for name, m in model.named_modules():
                if any(name == r or name.startswith(r + ".") for r in frozen):
                    continue
                own = list(m.parameters(recurse=False))
                if own and hasattr(m, "reset_parameters"):
                    m.reset_parameters()
        return HFLearner(model, self.processor, **self._settings())

    # -- internals -------------------------------------------------------------------------------
    def _check_data(self, data: Any) -> None:
        want = TextData if self.task == "text" else ImageData
        if not isinstance(data, want):
            raise InvalidTypeError(
                f"HFLearner(task={self.task!r}) takes {want.__name__}; found {type(data).__name__}."
            )
        if len(data) == 0:
            raise InvalidInputError("the data has 0 rows.")
        lo, hi = int(data.y.min()), int(data.y.max())
        if lo < 0 or hi >= self.n_classes:
            bad = lo if lo < 0 else hi
            raise InvalidInputError(
                f"the data has label {bad}, but the model has {self.n_classes} labels "
                f"(config.num_labels; classes 0..{self.n_classes - 1}). Use a model fine-tuned for the "
                "data's classes."
            )

    def _encode(self, data: TextData | ImageData, index: Sequence[int]) -> dict[str, torch.Tensor]:
        rows = data.batch(index)
        try:
            if self.task == "text":
                enc = self.processor(rows, padding=True, truncation=True, max_length=self.max_length,
                                     return_tensors="pt")
            else:
                enc = self.processor(images=rows, return_tensors="pt")
        except Exception as exc:  # tokenizer / image processor errors are about the rows' content
            raise InvalidInputError(
                f"the {'tokenizer' if self.task == 'text' else 'image processor'} rejected rows "
                f"{index[0]}..{index[-1]}: {type(exc).__name__}: {str(exc)[:300]}"
            ) from exc
        return {k: v.to(self.device) for k, v in enc.items() if torch.is_tensor(v)}

    def _forward(self, data: TextData | ImageData, index: Sequence[int]) -> torch.Tensor:
        return self.model(**self._encode(data, index)).logits

    def _sgd(self, data: TextData | ImageData, batches: Sequence[torch.Tensor], schedule: LRSchedule, *,
             momentum: float, weight_decay: float, nesterov: bool) -> Iterator[tuple[float, int, int]]:
        """SGD over ``batches`` on the trainable parameters; yields ``(loss, n_correct, n_rows)`` per step."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=schedule(0), momentum=momentum, weight_decay=weight_decay,
                              nesterov=nesterov)
        self._train_mode()
        try:
            for t, idx in enumerate(batches):
                for group in opt.param_groups:
                    group["lr"] = schedule(t)
                index = idx.tolist()
                logits = self._forward(data, index)
                y = data.y[idx].to(self.device)
                loss = F.cross_entropy(logits.float(), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                yield float(loss.detach()), int((logits.argmax(1) == y).sum()), len(index)
        finally:
            self.model.eval()

    @torch.no_grad()
    def _recalibrate_batchnorm(self, data: TextData | ImageData) -> None:
        """Re-estimate running statistics of batch-norm layers in the trainable part (cumulative average)."""
        bns = [m for name, m in self.model.named_modules()
               if isinstance(m, nn.modules.batchnorm._BatchNorm) and not self._is_frozen(name)]
        if not bns:
            return
        momenta = [bn.momentum for bn in bns]
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative moving average: every batch counts equally
        self._train_mode()
        try:
            for start in range(0, len(data), self.eval_batch_size):
                self._forward(data, list(range(start, min(start + self.eval_batch_size, len(data)))))
        finally:
            for bn, mom in zip(bns, momenta):
                bn.momentum = mom
            self.model.eval()



# The data classes, the trainable-parameter helpers and the folder helpers live in hf_data,
# hf_trainable and hf_folder; their names stay importable from here.
__all__ = [
    "DatasetImages", "HFLearner", "ImageData", "MissingDependencyError", "PIP_HINT", "Task", "TextData",
    "check_trainable", "model_label_names", "pretrained_digest", "require", "seeded_rng",
    "trainable_parameter_names",
]

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
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib
import logging
import os
import re
from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from influence_stage.config import FitConfig
from influence_stage.errors import CheckpointError, InfluenceStageError, InvalidInputError, InvalidTypeError
from influence_stage.engine.learner import CosineSchedule, LRSchedule, State, TrainHistory, batch_indices

try:  # one exceptions module is the rule; this fallback only covers the time before it gains the class
    from influence_stage.errors import MissingDependencyError
except ImportError:  # pragma: no cover - depends on the version of exceptions.py

    class MissingDependencyError(InfluenceStageError, ImportError):  # type: ignore[no-redef]
        """An optional dependency needed for the requested feature is not installed."""


logger = logging.getLogger(__name__)

Task = Literal["text", "image"]
PIP_HINT = "pip install 'influence_stage[hf]'  (or: pip install transformers safetensors)"
_LAST_N = re.compile(r"^last:(\d+)$")


def require(module: str, *, purpose: str) -> ModuleType:
    """Import optional ``module`` or raise ``MissingDependencyError`` naming the pip command.

    Parameters
    ----------
    module : str
        Dotted module name, e.g. ``"transformers"`` or ``"safetensors.torch"``.
    purpose : str
        What needs it, for the message ("loading Hugging Face models").
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = module.split(".")[0]
        raise MissingDependencyError(
            f"{purpose} needs the optional package {package!r}, which is not installed "
            f"({exc}). Install it with: {PIP_HINT}"
        ) from exc


# -- data ----------------------------------------------------------------------------------------


def _as_labels(y: Any, n: int, what: str) -> torch.Tensor:
    if hasattr(y, "detach"):
        y = y.detach().cpu()
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise InvalidInputError(f"{what} labels must be 1-D (n_samples,); found shape {arr.shape}.")
    if not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
        raise InvalidTypeError(f"{what} labels must be integer class indices 0..K-1; found dtype {arr.dtype}.")
    if arr.shape[0] != n:
        raise InvalidInputError(f"{what} has {n} rows but {arr.shape[0]} labels.")
    return torch.as_tensor(arr.astype(np.int64), dtype=torch.int64)


def _index_list(index: Any) -> list[int]:
    if isinstance(index, slice):
        raise InvalidTypeError("subset takes an array of row indices, not a slice.")
    return [int(i) for i in torch.as_tensor(np.asarray(index) if not torch.is_tensor(index) else index,
                                            dtype=torch.int64).reshape(-1).tolist()]


@dataclass(frozen=True, eq=False)
class TextData:
    """Texts and their given labels, for ``HFLearner(task="text")``.

    Parameters
    ----------
    texts : sequence of str, length ``n``
        Raw texts; tokenized in batches by the learner's tokenizer.
    y : array-like of int, shape ``(n,)``
        Given (possibly wrong) labels ``0..K-1``; stored as an int64 CPU tensor.
    """

    texts: list[str]
    y: torch.Tensor

    def __post_init__(self) -> None:
        texts = self.texts
        if isinstance(texts, str) or not hasattr(texts, "__len__"):
            raise InvalidTypeError(f"texts must be a list of strings; found {type(texts).__name__}.")
        texts = [t for t in texts]
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise InvalidTypeError(
                f"texts must all be strings; row {bad[0]} is {type(texts[bad[0]]).__name__} "
                f"({len(bad)} such rows). Fill or drop missing texts first."
            )
        object.__setattr__(self, "texts", texts)
        object.__setattr__(self, "y", _as_labels(self.y, len(texts), "TextData"))

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index: np.ndarray | torch.Tensor | Sequence[int]) -> "TextData":
        """The rows at ``index`` (an array of row indices), in that order."""
        idx = _index_list(index)
        return TextData([self.texts[i] for i in idx], self.y[idx])

    def batch(self, index: Sequence[int]) -> list[str]:
        """Raw inputs of the rows at ``index``, as the tokenizer takes them."""
        return [self.texts[i] for i in index]


@dataclass(frozen=True, eq=False)
class ImageData:
    """Images and their given labels, for ``HFLearner(task="image")``.

    Parameters
    ----------
    images : sequence of images, length ``n``
        PIL images, or ``(h, w, c)`` / ``(h, w)`` uint8 arrays, or one array/tensor ``(n, ...)``:
        whatever the model's image processor takes (it resizes, rescales and normalises them, so
        give raw pixels, not already normalised tensors).
    y : array-like of int, shape ``(n,)``
        Given (possibly wrong) labels ``0..K-1``; stored as an int64 CPU tensor.
    """

    images: Any
    y: torch.Tensor

    def __post_init__(self) -> None:
        if not hasattr(self.images, "__len__") or not hasattr(self.images, "__getitem__"):
            raise InvalidTypeError(
                f"images must be a sequence or an array of images; found {type(self.images).__name__}."
            )
        object.__setattr__(self, "y", _as_labels(self.y, len(self.images), "ImageData"))

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, index: np.ndarray | torch.Tensor | Sequence[int]) -> "ImageData":
        """The rows at ``index`` (an array of row indices), in that order."""
        idx = _index_list(index)
        if isinstance(self.images, (np.ndarray, torch.Tensor)):
            images = self.images[idx]
        else:
            images = [self.images[i] for i in idx]
        return ImageData(images, self.y[idx])

    def batch(self, index: Sequence[int]) -> list[Any]:
        """Raw inputs of the rows at ``index``, as a list the image processor takes."""
        return [self.images[i] for i in index]


class DatasetImages(SequenceABC):
    """Lazy, read-only view of one image column of a ``datasets.Dataset``, for ``ImageData``.

    Row ``i`` is read and decoded when asked for, so a large image dataset is never held decoded
    in memory (members re-read rows instead; decoding is cheap next to a forward pass).

    Parameters
    ----------
    dataset : datasets.Dataset
        ``n`` rows.
    column : str
        An image column (``datasets.Image``), or a column of 2-D / 3-D pixel arrays ``(h, w)`` /
        ``(h, w, c)``.
    channels : {1, 3} or None
        Channels the model takes (``config.num_channels``): PIL images are converted to ``"L"``
        or ``"RGB"``, grey arrays repeated to 3 channels; None keeps them as stored.

    Raises
    ------
    InvalidInputError
        On access: a missing image, naming its row.
    """

    def __init__(self, dataset: Any, column: str, *, channels: int | None = None) -> None:
        if column not in getattr(dataset, "column_names", ()):
            raise InvalidInputError(
                f"image column {column!r} not found; available columns: {list(getattr(dataset, 'column_names', []))}."
            )
        self._dataset = dataset.select_columns([column])
        self.column = column
        self.channels = channels

    def __len__(self) -> int:
        return int(self._dataset.num_rows)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        i = int(index)
        item = self._dataset[i][self.column]
        if item is None:
            raise InvalidInputError(
                f"image column {self.column!r} has no image at row {i}; expected an image on every row. "
                "Fix: drop those rows."
            )
        if hasattr(item, "convert") and hasattr(item, "mode"):  # a PIL image
            mode = {1: "L", 3: "RGB"}.get(self.channels or 0)
            return item.convert(mode) if mode is not None and item.mode != mode else item
        arr = np.asarray(item)
        if self.channels == 3 and arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        return arr


# -- which parameters train ------------------------------------------------------------------------


def _parse_trainable(spec: str) -> tuple[str, int]:
    if spec in ("all", "head"):
        return spec, 0
    match = _LAST_N.match(spec) if isinstance(spec, str) else None
    if match is None or int(match.group(1)) < 1:
        raise InvalidInputError(
            f"trainable must be 'all', 'head' or 'last:N' with N >= 1 (e.g. 'last:2'); found {spec!r}."
        )
    return "last", int(match.group(1))


def check_trainable(spec: Any) -> str:
    """``spec`` if it is a valid ``trainable`` setting (``"all"``, ``"head"``, ``"last:N"``), else InvalidInputError."""
    if not isinstance(spec, str):
        raise InvalidInputError(
            f"trainable must be 'all', 'head' or 'last:N' with N >= 1 (e.g. 'last:2'); found {spec!r}."
        )
    _parse_trainable(spec)
    return spec


def pretrained_digest(path: str | os.PathLike, *, chunk_bytes: int = 1 << 20) -> str:
    """``sha256`` hex of every file in a ``save_pretrained`` folder (relative names, sizes, bytes).

    Stands for the model in a cache key: an overwritten folder gets a new digest.

    Raises
    ------
    CheckpointError
        The folder does not exist.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointError(f"Hugging Face model folder not found: {folder}.")
    h = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = file.relative_to(folder).as_posix()
        h.update(f"\0{rel}\0{file.stat().st_size}\0".encode())
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(chunk_bytes), b""):
                h.update(block)
    return h.hexdigest()


def model_label_names(model: nn.Module) -> list[str] | None:
    """The model's class names from ``config.id2label`` in output order, or None when they are
    the defaults (``LABEL_0``, ``LABEL_1``, ...) or missing."""
    config = getattr(model, "config", None)
    id2label = getattr(config, "id2label", None) or {}
    k = getattr(config, "num_labels", None)
    if not isinstance(k, int):
        return None
    try:
        names = [str(id2label[i] if i in id2label else id2label[str(i)]) for i in range(k)]
    except (KeyError, TypeError):
        return None
    if all(n == f"LABEL_{i}" for i, n in enumerate(names)):
        return None
    return names


def _layer_list(base: nn.Module) -> tuple[str, nn.ModuleList]:
    """The backbone's list of repeated blocks: its ``nn.ModuleList`` holding the most parameters."""
    best: tuple[str, nn.ModuleList] | None = None
    best_size = -1
    for name, m in base.named_modules():
        if isinstance(m, nn.ModuleList) and len(m) > 0:
            size = sum(p.numel() for p in m.parameters())
            if size > best_size:  # strict: an outer list wins over the lists nested in it
                best, best_size = (name, m), size
    if best is None:
        raise InvalidInputError(
            f"trainable='last:N' needs a backbone with a list of layers (nn.ModuleList); "
            f"{type(base).__name__} has none. Use trainable='head' or 'all'."
        )
    return best


def trainable_parameter_names(model: nn.Module, trainable: str) -> list[str]:
    """Names of the parameters that ``trainable`` leaves trainable, in the model's order.

    ``"head"``: parameters outside ``model.base_model_prefix`` (the backbone). ``"last:N"``: those,
    plus the last N blocks of the backbone's layer list and the backbone parameters registered after
    that list (pooler, final norm).
    """
    kind, n_layers = _parse_trainable(trainable)
    names = [n for n, _ in model.named_parameters()]
    if kind == "all":
        return names
    prefix = getattr(model, "base_model_prefix", "") or ""
    base = getattr(model, prefix, None) if prefix else None
    if not isinstance(base, nn.Module) or base is model:
        raise InvalidInputError(
            f"trainable={trainable!r} needs a model with a separate backbone (base_model_prefix); "
            f"{type(model).__name__} has none. Use trainable='all'."
        )
    head = {n for n in names if not n.startswith(prefix + ".")}
    if not head:
        raise InvalidInputError(f"{type(model).__name__} has no parameters outside its backbone {prefix!r}; "
                                "no classification head to train.")
    chosen = set(head)
    if kind == "last":
        list_name, layers = _layer_list(base)
        if n_layers > len(layers):
            raise InvalidInputError(
                f"trainable={trainable!r} asks for the last {n_layers} layers, but the backbone has "
                f"{len(layers)} ({prefix}.{list_name})."
            )
        list_prefix = f"{prefix}.{list_name}." if list_name else f"{prefix}."
        block_prefixes = tuple(f"{list_prefix}{i}." for i in range(len(layers) - n_layers, len(layers)))
        chosen |= {n for n in names if n.startswith(block_prefixes)}
        in_list = [i for i, n in enumerate(names) if n.startswith(list_prefix)]
        # backbone parameters after the layer list (pooler, final layer norm) sit between the
        # trained blocks and the head; freezing them would cut the trained blocks off
        chosen |= {n for n in names[in_list[-1] + 1:] if n.startswith(prefix + ".")}
    return [n for n in names if n in chosen]


@contextlib.contextmanager
def _seeded_rng(seed: int, device: str) -> Iterator[None]:
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


def _ancestors(name: str) -> Iterator[str]:
    parts = name.split(".")
    for i in range(len(parts)):
        yield ".".join(parts[:i])


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
        with _seeded_rng(seed, self.device):
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
        with _seeded_rng(recipe.seed, self.device):
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

"""Model sources: where ``θ*`` comes from, one class per entry in ``MODEL_SOURCE_REGISTRY``.

A ``model`` is either a string or an object in memory. Strings are claimed by name (``"auto"``,
``"mlp"``, ``"cnn"``: a model built here and trained on the given labels), by prefix
(``"checkpoint:<path>"``, ``"hf:<folder>"``) or by form (a path ending in a checkpoint suffix).
Objects are claimed by type: a ``torch.nn.Module``, a ``Learner``,
a scikit-learn estimator with ``partial_fit`` and ``predict_proba``. ``parse_model_spec`` reads a
string into a ``ModelSpec``; ``learner_from_source`` turns a spec or an object into a
learner. Config validation, the error messages and ``docs/extending.md`` list the registry's names;
a new source is one class (``docs/extending.md`` registers one).

torch, the checkpoint reader and the Hugging Face helpers are imported when a source is used, so
reading a configuration imports none of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from influence_stage.config.fit import GEXConfig, is_image
from influence_stage.errors import InvalidInputError, InvalidTypeError
from influence_stage.registry import Registry

CHECKPOINT_PREFIX = "checkpoint:"
HF_PREFIX = "hf:"


@dataclass(frozen=True)
class ModelSpec:
    """What a ``model`` string names.

    Attributes
    ----------
    kind : str
        The source's family: ``"name"`` (built and trained on the given labels), ``"checkpoint"``
        (a torch weights file), ``"hf"`` (a local Hugging Face model folder), or the ``kind`` of a
        registered source.
    value : str
        The name, or the path as written (without its prefix).
    source : str
        The registry name of the source that claimed the string.
    """

    kind: str
    value: str
    source: str = ""

    @property
    def path(self) -> Path:
        """``value`` as a path (``~`` expanded); relative paths are read from the working directory."""
        return Path(self.value).expanduser()

    @property
    def model_source(self) -> "ModelSource":
        """The source that claimed the string (an instance of its registered class)."""
        return MODEL_SOURCE_REGISTRY.get(self.source or self.kind)()


@dataclass(frozen=True)
class LearnerRequest:
    """What a source needs to make a learner for the run's rows.

    Attributes
    ----------
    input_shape : tuple of int
        One row's feature shape: ``(d,)`` or ``(c, h, w)``; ``(0,)`` when nothing was featurized.
    n_classes : int
    gex : GEXConfig
        Learner settings (batch sizes, momentum, weight decay, device) and the initialisation seed.
    model_builder : str or None
        A checkpoint's architecture when its sidecar names none.
    hf_trainable : str
        Parameters of an ``hf:`` model that SGD moves.
    task : {"text", "image"} or None
        The raw column kind, for a source that reads raw columns.
    eval_batch_cap : int or None
        Most rows per forward pass for a source whose models are large (Hugging Face).
    """

    input_shape: tuple[int, ...]
    n_classes: int
    gex: GEXConfig
    model_builder: str | None = None
    hf_trainable: str = "head"
    task: str | None = None
    eval_batch_cap: int | None = None


class ModelSource(ABC):
    """One way to name or give ``θ*``; registered in ``MODEL_SOURCE_REGISTRY``.

    A string source claims a ``model`` string by its registered name (``builds``), its ``prefix``
    or ``claims``; an in-memory source claims an object with ``claims_object``.

    Attributes
    ----------
    name : str
        Set by the registry.
    help : str
        One line for the docs and the error messages.
    form : str
        How the source is written in a ``model`` string, for the error listing the accepted forms
        (empty: an in-memory source).
    kind : str
        ``ModelSpec.kind`` of the strings it claims.
    prefix : str
        A string ``"<prefix><value>"`` is this source's (empty: none).
    builds : bool
        The name itself is the source: a model built by ``build`` and trained on the given labels.
    reads_raw : bool
        Its models read the raw text or image columns: the stage featurizes nothing.
    """

    name: ClassVar[str] = ""
    help: ClassVar[str] = ""
    form: ClassVar[str] = ""
    kind: ClassVar[str] = "name"
    prefix: ClassVar[str] = ""
    builds: ClassVar[bool] = False
    reads_raw: ClassVar[bool] = False

    def claims(self, model: str) -> str | None:
        """The value of ``model`` when this source claims it by its form (beyond names and prefixes)."""
        return None

    @classmethod
    def claims_object(cls, model: Any) -> bool:
        """An in-memory source: whether ``model`` is one of its objects."""
        return False

    def check(self, spec: ModelSpec, model: str) -> None:
        """Look at the filesystem for the file or folder ``spec`` names (nothing to check by default)."""

    @abstractmethod
    def learner(self, model: Any, request: LearnerRequest) -> tuple[Any, bool]:
        """A learner for ``model`` (a ``ModelSpec`` or the claimed object), and whether it still
        needs training on the given labels."""

    def digest(self, spec: ModelSpec) -> str | None:
        """Content hash of what ``spec`` names, for the cache keys (None: the string says it all)."""
        return None

    def class_names(self, learner: Any) -> list[str] | None:
        """The class names a loaded model carries, in output order (None: none to check)."""
        return None


#: Every model source, by name: names, prefixes and in-memory objects.
MODEL_SOURCE_REGISTRY: Registry[type[ModelSource]] = Registry(
    "model source", base=ModelSource, fix="Fix: register one in influence_stage.engine.sources.MODEL_SOURCE_REGISTRY.")


def eval_batch_size_for(gex: GEXConfig, input_shape: tuple[int, ...] | None, device: str) -> int:
    """Rows per forward pass of a torch model on rows of shape ``input_shape`` on ``device``:
    ``gex.image_eval_batch_size`` for image rows ``(c, h, w)`` on the CPU when set, else
    ``gex.eval_batch_size``.

    Losses and probabilities do not depend on how rows are batched in eval mode (up to float
    rounding); the time does: a CNN's forward pass over thousands of images at once is several times
    slower per row on a CPU than over a hundred. Chosen once, where the learner is built, so fresh
    copies (the auxiliary halves) inherit it and a learner the caller built keeps its own setting.
    """
    size = gex.image_eval_batch_size
    if size is None or not is_image(input_shape) or str(device).split(":")[0] != "cpu":
        return int(gex.eval_batch_size)
    return int(size)


def torch_learner(module: Any, gex: GEXConfig, input_shape: tuple[int, ...] | None = None) -> Any:
    """A ``TorchLearner`` of ``module`` with the learner settings of ``gex``, evaluating rows of shape
    ``input_shape`` in ``eval_batch_size_for`` rows per pass (``None``: unknown, ``gex.eval_batch_size``)."""
    from influence_stage.engine.learner import TorchLearner, resolve_device

    device = resolve_device(gex.device)
    return TorchLearner(module, batch_size=gex.batch_size, momentum=gex.momentum, weight_decay=gex.weight_decay,
                        eval_batch_size=eval_batch_size_for(gex, input_shape, device), device=device)


class NamedModel(ModelSource):
    """A model built by name and trained on the given labels; ``build`` makes the module."""

    builds = True

    @property
    def form(self) -> str:  # type: ignore[override]
        return repr(self.name)

    def build(self, input_shape: tuple[int, ...], n_classes: int, *, seed: int, cnn_blocks: int = 2) -> Any:
        """The untrained ``torch.nn.Module`` (default: ``engine.models.build_model`` by this name, the CNN
        with ``cnn_blocks`` conv blocks). A registered source overrides it as ``build(input_shape,
        n_classes, *, seed)``."""
        from influence_stage.engine.models import build_model

        return build_model(self.name, input_shape, n_classes, seed=seed, cnn_blocks=cnn_blocks)

    def learner(self, model: Any, request: LearnerRequest) -> tuple[Any, bool]:
        # GEXConfig.cnn_blocks shapes the built-in CNN only; an overridden build keeps its documented signature
        own = type(self).build is NamedModel.build
        module = self.build(tuple(request.input_shape), request.n_classes, seed=request.gex.seed,
                            **({"cnn_blocks": request.gex.cnn_blocks} if own else {}))
        return torch_learner(module, request.gex, tuple(request.input_shape)), True


@MODEL_SOURCE_REGISTRY.register("auto")
class AutoModel(NamedModel):
    help = "a CNN for image rows (c, h, w), an MLP otherwise, trained on the given labels"


@MODEL_SOURCE_REGISTRY.register("mlp")
class MLPModel(NamedModel):
    help = "a fully connected network for 1-D features, trained on the given labels"


@MODEL_SOURCE_REGISTRY.register("cnn")
class CNNModel(NamedModel):
    help = "a small CNN for image rows (c, h, w), trained on the given labels"


def _where_path(path: Path) -> str:
    where = str(path.absolute())
    return where if path.is_absolute() else f"{where} (relative paths are read from the working directory)"


@MODEL_SOURCE_REGISTRY.register("checkpoint")
class CheckpointModel(ModelSource):
    """A torch weights file: ``"checkpoint:<path>"``, or a path ending in a checkpoint suffix."""

    help = "a torch state dict (engine.checkpoint.load_model; builder from its sidecar or model_builder)"
    kind = "checkpoint"
    prefix = CHECKPOINT_PREFIX

    @property
    def form(self) -> str:  # type: ignore[override]
        from influence_stage.engine.checkpoint import CHECKPOINT_SUFFIXES

        return f"a torch checkpoint ('checkpoint:<path>' or a path ending in {', '.join(CHECKPOINT_SUFFIXES)})"

    def claims(self, model: str) -> str | None:
        from influence_stage.engine.checkpoint import is_checkpoint_path

        return model if is_checkpoint_path(model) else None

    def check(self, spec: ModelSpec, model: str) -> None:
        path = spec.path
        if path.is_dir():
            hint = " For a Hugging Face model folder write 'hf:<folder>'." if (path / "config.json").is_file() else ""
            raise InvalidInputError(
                f"model {model!r}: {_where_path(path)} is a folder; expected a weights file (a state dict saved "
                f"with influence_stage.engine.checkpoint.save_checkpoint or torch.save(model.state_dict(), path)).{hint}"
            )
        if not path.is_file():
            raise InvalidInputError(
                f"model {model!r}: no checkpoint file at {_where_path(path)}. Fix: check the path, or save one "
                "with influence_stage.engine.checkpoint.save_checkpoint(module, path, meta={'builder': 'mlp'})."
            )

    def learner(self, model: Any, request: LearnerRequest) -> tuple[Any, bool]:
        from influence_stage.engine.checkpoint import load_model

        module = load_model(model.path, builder=request.model_builder, input_shape=request.input_shape,
                            n_classes=request.n_classes)
        return torch_learner(module, request.gex, tuple(request.input_shape)), False

    def digest(self, spec: ModelSpec) -> str | None:
        from influence_stage.engine.checkpoint import checkpoint_digest

        return checkpoint_digest(spec.path)


@MODEL_SOURCE_REGISTRY.register("hf")
class HFModel(ModelSource):
    """A local Hugging Face sequence- or image-classification folder: ``"hf:<folder>"``."""

    help = "a local Hugging Face classifier folder with its tokenizer / image processor (raw text or images)"
    form = "a local Hugging Face model folder ('hf:<folder>')"
    kind = "hf"
    prefix = HF_PREFIX
    reads_raw = True

    def check(self, spec: ModelSpec, model: str) -> None:
        folder = spec.path
        if not folder.is_dir():
            what = "a file, not a folder" if folder.exists() else "not found"
            raise InvalidInputError(
                f"model {model!r}: the Hugging Face model folder {_where_path(folder)} is {what}. Expected a local "
                "folder written by model.save_pretrained(folder) and tokenizer.save_pretrained(folder) (or "
                "image_processor.save_pretrained(folder)); hub ids are not downloaded here. Fix: check the path, "
                "or download the model first."
            )
        if not (folder / "config.json").is_file():
            raise InvalidInputError(
                f"model {model!r}: the folder {_where_path(folder)} has no config.json; expected a folder written "
                "by model.save_pretrained(folder). Fix: point hf: at that folder."
            )

    def learner(self, model: Any, request: LearnerRequest) -> tuple[Any, bool]:
        from influence_stage.engine.hf import HFLearner
        from influence_stage.engine.learner import resolve_device

        gex = request.gex
        eval_batch = gex.eval_batch_size if request.eval_batch_cap is None else min(gex.eval_batch_size,
                                                                                     request.eval_batch_cap)
        learner = HFLearner.from_pretrained(
            model.path, task=request.task or "text", num_labels=request.n_classes, trainable=request.hf_trainable,
            batch_size=gex.batch_size, eval_batch_size=eval_batch, momentum=gex.momentum,
            weight_decay=gex.weight_decay, device=resolve_device(gex.device))
        return learner, False

    def digest(self, spec: ModelSpec) -> str | None:
        from influence_stage.engine.hf import pretrained_digest

        return pretrained_digest(spec.path)

    def class_names(self, learner: Any) -> list[str] | None:
        from influence_stage.engine.hf import model_label_names

        return model_label_names(learner.model)


@MODEL_SOURCE_REGISTRY.register("module")
class ModuleModel(ModelSource):
    """A ``torch.nn.Module`` in memory, ``θ*`` as it is."""

    help = "a trained torch.nn.Module, used as θ*"
    kind = "memory"

    @classmethod
    def claims_object(cls, model: Any) -> bool:
        import sys

        torch_nn = sys.modules.get("torch.nn")  # no module can exist before torch was imported
        return torch_nn is not None and isinstance(model, torch_nn.Module)

    def learner(self, model: Any, request: LearnerRequest) -> tuple[Any, bool]:
        return torch_learner(model, request.gex, tuple(request.input_shape)), False


@MODEL_SOURCE_REGISTRY.register("learner")
class LearnerModel(ModelSource):
    """Any object that implements the ``Learner`` protocol, ``θ*`` as it is."""

    help = "an object with the Learner protocol (get_state, set_state, train_steps, per_sample_loss, predict_proba)"
    kind = "memory"

    @classmethod
    def claims_object(cls, model: Any) -> bool:
        from influence_stage.engine.learner import Learner

        return isinstance(model, Learner)

    def learner(self, model: Any, request: LearnerRequest) -> tuple[Any, bool]:
        return model, False


@MODEL_SOURCE_REGISTRY.register("sklearn")
class SklearnModel(ModelSource):
    """A scikit-learn classifier that takes SGD steps (``partial_fit``), copied; trained first unless fitted."""

    help = "a scikit-learn classifier with partial_fit and predict_proba (a copy; trained first unless fitted)"
    kind = "memory"

    @classmethod
    def claims_object(cls, model: Any) -> bool:
        return all(hasattr(model, a) for a in ("partial_fit", "predict_proba", "get_params"))

    def learner(self, model: Any, request: LearnerRequest) -> tuple[Any, bool]:
        from influence_stage.engine.sklearn_learner import SklearnLearner

        fitted = hasattr(model, "coef_") or hasattr(model, "coefs_")
        # a copy: the caller's estimator and its settings stay as they are
        return SklearnLearner(copy.deepcopy(model), batch_size=request.gex.batch_size,
                              n_classes=request.n_classes), not fitted


def model_names() -> tuple[str, ...]:
    """The names built and trained on the given labels (``"auto"``, ``"mlp"``, ``"cnn"`` and registered ones)."""
    return tuple(n for n, cls in MODEL_SOURCE_REGISTRY.items() if cls.builds)


def model_forms() -> str:
    """The accepted ``model`` strings, from the registry, for error messages."""
    forms = [cls().form for _, cls in MODEL_SOURCE_REGISTRY.items() if cls().form]
    names = [f for f in forms if f.startswith("'")]
    other = [f for f in forms if not f.startswith("'")]
    return ", ".join(names + other[:-1]) + (f" or {other[-1]}" if other else "")


def _object_forms() -> str:
    return ", ".join(cls.help.split(",")[0].split(" (")[0] for _, cls in MODEL_SOURCE_REGISTRY.items()
                     if cls.kind == "memory")


def parse_model_spec(model: Any, *, check_paths: bool = True) -> ModelSpec:
    """Read a ``model`` string: the source that claims it (prefix, then name, then form) and its value.

    Parameters
    ----------
    model : str
        A registered name (``"auto"``, ``"mlp"``, ``"cnn"``), ``"checkpoint:<path>"`` or a path
        ending in a checkpoint suffix, ``"hf:<folder>"``, or the form of a registered source.
    check_paths : bool, default True
        Look at the filesystem (the file or folder exists; a hint for an unknown name that is a
        path). False: the form only, so a configuration validates without I/O.

    Returns
    -------
    ModelSpec

    Raises
    ------
    InvalidTypeError
        ``model`` is not a string.
    InvalidInputError
        An unknown name (the accepted forms listed), an empty path after a prefix, or a file or
        folder that does not exist.
    """
    if not isinstance(model, str):
        raise InvalidTypeError(f"model must be a string: {model_forms()}; found {type(model).__name__}.")
    entries = [(name, cls()) for name, cls in MODEL_SOURCE_REGISTRY.items()]
    claimed = next(((n, s, model[len(s.prefix):]) for n, s in entries if s.prefix and model.startswith(s.prefix)),
                   None)
    if claimed is None and model in MODEL_SOURCE_REGISTRY and MODEL_SOURCE_REGISTRY.get(model).builds:
        claimed = (model, MODEL_SOURCE_REGISTRY.get(model)(), model)
    if claimed is None:
        claimed = next(((n, s, v) for n, s in entries if (v := s.claims(model)) is not None), None)
    if claimed is None:
        hint = ""
        candidate = Path(model).expanduser()
        if check_paths and candidate.is_dir():
            hint = f" {model!r} is a folder: for a Hugging Face model write 'hf:{model}'."
        elif check_paths and candidate.is_file():
            hint = f" {model!r} is a file: for a torch checkpoint write 'checkpoint:{model}'."
        raise InvalidInputError(f"unknown model name {model!r}; expected {model_forms()}.{hint}")
    name, source, value = claimed
    if not value:
        raise InvalidInputError(f"model {model!r} names nothing after {source.prefix!r}; expected "
                                f"'{source.prefix}<path>'.")
    spec = ModelSpec(source.kind, value, name)
    if check_paths:
        source.check(spec, model)
    return spec


def source_of(model: Any) -> tuple[ModelSource, Any]:
    """The source of ``model`` and what it reads: a string's ``ModelSpec``, or the object itself.

    Raises
    ------
    InvalidTypeError
        An object no in-memory source claims (the accepted forms listed).
    """
    if isinstance(model, str):
        spec = parse_model_spec(model)
        return spec.model_source, spec
    if isinstance(model, ModelSpec):
        return model.model_source, model
    for _, cls in MODEL_SOURCE_REGISTRY.items():
        if cls.claims_object(model):
            return cls(), model
    raise InvalidTypeError(
        f"model must be a model name ({', '.join(repr(n) for n in model_names())}), a model string "
        f"({model_forms()}) or an object in memory: {_object_forms()}; found {type(model).__name__}."
    )


def learner_from_source(model: Any, request: LearnerRequest) -> tuple[Any, bool]:
    """A learner for ``model`` (a string, a ``ModelSpec`` or an object) and whether it still
    needs training on the given labels (a name: yes; a loaded or given model: no, unless an
    unfitted scikit-learn estimator)."""
    source, value = source_of(model)
    return source.learner(value, request)


__all__ = ["CHECKPOINT_PREFIX", "HF_PREFIX", "MODEL_SOURCE_REGISTRY", "CheckpointModel", "HFModel", "LearnerModel",
           "LearnerRequest", "ModelSource", "ModelSpec", "ModuleModel", "NamedModel", "SklearnModel",
           "learner_from_source", "model_forms", "model_names", "parse_model_spec", "source_of", "torch_learner"]

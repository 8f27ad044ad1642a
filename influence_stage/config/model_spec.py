"""Which model a ``CleanConfig.model`` string names: :func:`parse_model_spec` and the content digest of the cache keys.

A builder name (``"auto"``, ``"mlp"``, ``"cnn"``: trained on the given labels), a torch checkpoint
(``"checkpoint:<path>"`` or a path ending in ``.pt``, ``.pth``, ``.bin``, ``.safetensors``; loaded with
:func:`influence_stage.engine.checkpoint.load_model`) or a local Hugging Face classifier
(``"hf:<folder>"``; :class:`influence_stage.engine.hf.HFLearner`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from influence_stage.engine.checkpoint import CHECKPOINT_SUFFIXES, checkpoint_digest, is_checkpoint_path
from influence_stage.errors import InvalidInputError, InvalidTypeError

#: Model names built by ``models.build_model`` and trained on the given labels.
MODEL_NAMES: tuple[str, ...] = ("auto", "mlp", "cnn")
CHECKPOINT_PREFIX = "checkpoint:"
HF_PREFIX = "hf:"


@dataclass(frozen=True)
class ModelSpec:
    """What a ``CleanConfig.model`` string names.

    Attributes
    ----------
    kind : {"name", "checkpoint", "hf"}
        A builder name (trained on the given labels), a torch checkpoint file, or a local Hugging
        Face model folder.
    value : str
        The name, or the path as written (without its ``checkpoint:`` / ``hf:`` prefix).
    """

    kind: Literal["name", "checkpoint", "hf"]
    value: str

    @property
    def path(self) -> Path:
        """``value`` as a path (``~`` expanded); relative paths are read from the working directory."""
        return Path(self.value).expanduser()


_MODEL_FORMS = ("'auto', 'mlp', 'cnn', a torch checkpoint ('checkpoint:<path>' or a path ending in "
                + ", ".join(CHECKPOINT_SUFFIXES) + ") or a local Hugging Face model folder ('hf:<folder>')")


def _where_path(path: Path) -> str:
    where = str(path.absolute())
    return where if path.is_absolute() else f"{where} (relative paths are read from the working directory)"


def parse_model_spec(model: Any, *, check_paths: bool = True) -> ModelSpec:
    """Read a ``CleanConfig.model`` string and check that the file or folder it names exists.

    Parameters
    ----------
    model : str
        ``"auto"``, ``"mlp"``, ``"cnn"``; ``"checkpoint:<path>"`` (any file name) or a plain path
        ending in ``.pt``, ``.pth``, ``.bin`` or ``.safetensors``; ``"hf:<folder>"`` (a folder
        written by ``save_pretrained``, with its ``config.json``).
    check_paths : bool, default True
        Look at the filesystem (the file or folder exists; a hint for an unknown name that is a
        path). False: the form only, so ``CleanConfig`` validates without I/O; :func:`preflight`
        and :func:`make_model_step` check the paths.

    Returns
    -------
    ModelSpec

    Raises
    ------
    InvalidTypeError
        ``model`` is not a string.
    InvalidInputError
        An unknown name, or a checkpoint / folder that does not exist (the message gives the
        absolute path and the accepted forms).
    """
    if not isinstance(model, str):
        raise InvalidTypeError(f"model must be a string: {_MODEL_FORMS}; found {type(model).__name__}.")
    if model.startswith(HF_PREFIX):
        spec = ModelSpec("hf", model[len(HF_PREFIX):])
        if not spec.value:
            raise InvalidInputError(f"model {model!r} names no folder; expected 'hf:<folder>'.")
        folder = spec.path
        if not check_paths:
            return spec
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
        return spec
    if model.startswith(CHECKPOINT_PREFIX) or (model not in MODEL_NAMES and is_checkpoint_path(model)):
        spec = ModelSpec("checkpoint", model[len(CHECKPOINT_PREFIX):] if model.startswith(CHECKPOINT_PREFIX) else model)
        if not spec.value:
            raise InvalidInputError(f"model {model!r} names no file; expected 'checkpoint:<path>'.")
        path = spec.path
        if not check_paths:
            return spec
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
        return spec
    if model in MODEL_NAMES:
        return ModelSpec("name", model)
    hint = ""
    candidate = Path(model).expanduser()
    if not check_paths:
        pass
    elif candidate.is_dir():
        hint = f" {model!r} is a folder: for a Hugging Face model write 'hf:{model}'."
    elif candidate.is_file():
        hint = f" {model!r} is a file: for a torch checkpoint write 'checkpoint:{model}'."
    raise InvalidInputError(f"unknown model name {model!r}; expected {_MODEL_FORMS}.{hint}")


def model_digest(spec: ModelSpec) -> str | None:
    """Content hash of the checkpoint or folder ``spec`` names (None for a builder name)."""
    if spec.kind == "checkpoint":
        return checkpoint_digest(spec.path)
    if spec.kind == "hf":
        from influence_stage.engine.hf import pretrained_digest  # torch and the hf helpers, on use only

        return pretrained_digest(spec.path)
    return None


__all__ = ["CHECKPOINT_PREFIX", "HF_PREFIX", "MODEL_NAMES", "ModelSpec", "model_digest", "parse_model_spec"]

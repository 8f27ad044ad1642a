"""A local Hugging Face model folder: the optional import it needs (``require``), its content
digest for cache keys (``pretrained_digest``) and its class names (``model_label_names``).

``transformers`` is an optional dependency (the ``hf`` extra): ``require`` imports it on use and
raises ``MissingDependencyError`` with the pip command when it is missing.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from pathlib import Path
from types import ModuleType

from torch import nn

from influence_stage.errors import CheckpointError, MissingDependencyError

PIP_HINT = "pip install 'influence_stage[hf]'  (or: pip install transformers safetensors)"


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


__all__ = ["PIP_HINT", "model_label_names", "pretrained_digest", "require"]

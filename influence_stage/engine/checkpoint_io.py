"""Checkpoint files of θ*: write a state dict atomically (``torch.save`` or safetensors) with its JSON
sidecar, read back only tensors (``torch.load(weights_only=True)``), and the content digest used in
cache keys. Every failure is a ``CheckpointError`` naming the path and the problem.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from influence_stage.errors import CheckpointError, InvalidInputError, InvalidTypeError

logger = logging.getLogger(__name__)

SAFETENSORS_SUFFIX = ".safetensors"
META_SUFFIX = ".meta.json"
#: Suffixes that make a plain path in ``CleanConfig.model`` a checkpoint (``"checkpoint:<path>"`` takes any).
CHECKPOINT_SUFFIXES: tuple[str, ...] = (".pt", ".pth", ".bin", SAFETENSORS_SUFFIX)


def meta_path(path: str | os.PathLike) -> Path:
    """Path of the JSON sidecar of checkpoint ``path``: ``model.pt`` → ``model.pt.meta.json``."""
    path = Path(path)
    return path.with_name(path.name + META_SUFFIX)


def is_safetensors(path: Path) -> bool:
    return path.suffix.lower() == SAFETENSORS_SUFFIX


def is_checkpoint_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` ends in one of ``CHECKPOINT_SUFFIXES`` (case-insensitive); the file is not read."""
    return Path(path).suffix.lower() in CHECKPOINT_SUFFIXES


def checkpoint_digest(path: str | os.PathLike, *, chunk_bytes: int = 1 << 20) -> str:
    """``sha256`` hex of the checkpoint's bytes and of its sidecar's (when there is one).

    Two checkpoints with equal digests load into equal models, so the digest can stand for the
    weights in a cache key (a path alone cannot: the file may be overwritten).

    Raises
    ------
    CheckpointError
        The file is missing or not a file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}.")
    h = hashlib.sha256()
    for part in (path, meta_path(path)):
        if not part.is_file():
            h.update(b"\0absent")
            continue
        h.update(f"\0{part.stat().st_size}\0".encode())
        with open(part, "rb") as fh:
            for block in iter(lambda: fh.read(chunk_bytes), b""):
                h.update(block)
    return h.hexdigest()


def atomic_write(path: Path, write: Any) -> None:
    """Write through a temporary file in the same folder and rename, so a crash leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_checkpoint(module: nn.Module | Mapping[str, torch.Tensor], path: str | os.PathLike, *,
                    meta: dict[str, Any] | None = None) -> Path:
    """Save the state dict of ``module`` to ``path`` (and ``meta`` to a JSON sidecar).

    Parameters
    ----------
    module : torch.nn.Module or dict of str to torch.Tensor
        The model, or its state dict. Only tensors are written, never the module object.
    path : path-like
        Target file. A ``.safetensors`` suffix writes safetensors (needs the ``safetensors``
        package, part of the ``hf`` extra); anything else writes ``torch.save`` format.
    meta : dict, optional
        JSON-serialisable facts about the checkpoint, written to ``<path>.meta.json``. For
        ``load_model`` to rebuild the model without a ``builder`` argument, give
        ``{"builder": "mlp" | "cnn", "input_shape": [...], "n_classes": K}`` and, when the model
        was built with non-default sizes, ``"builder_kwargs": {"hidden": [...]}`` (mlp) or
        ``{"width": w, "blocks": b}`` (cnn; the blocks are read off the weights when not given). Without ``meta``, a sidecar left by an earlier save to the same
        path is removed, so it cannot describe the new weights.

    Returns
    -------
    Path
        The checkpoint path.
    """
    path = Path(path)
    if isinstance(module, nn.Module):
        state = module.state_dict()
    elif isinstance(module, Mapping):
        state = module
    else:
        raise InvalidTypeError(
            f"save_checkpoint needs a torch.nn.Module or a state dict; found {type(module).__name__}."
        )
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise InvalidTypeError(
            f"a state dict maps parameter names to tensors; entry {bad[0]!r} is "
            f"{type(state[bad[0]]).__name__}."
        )
    # clone: safetensors refuses tensors that share memory (tied weights), and views are not saved
    # compactly by torch.save either
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    if meta is not None:
        if not isinstance(meta, dict):
            raise InvalidTypeError(f"meta must be a dict; found {type(meta).__name__}.")
        try:
            meta_text = json.dumps(meta, indent=2, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"meta must be JSON-serialisable: {exc}. Convert values to str, int, "
                                    "float, list or dict.") from exc
    stale = meta_path(path)
    if meta is None and stale.exists():  # a sidecar of an earlier save would describe other weights
        stale.unlink()
        logger.info("removed the sidecar %s of an earlier checkpoint (no meta given)", stale)
    if is_safetensors(path):
        from influence_stage.engine.hf_folder import require

        st = require("safetensors.torch", purpose="saving .safetensors checkpoints")
        atomic_write(path, lambda tmp: st.save_file(tensors, tmp))
    else:
        atomic_write(path, lambda tmp: torch.save(tensors, tmp))
    if meta is not None:
        atomic_write(meta_path(path), lambda tmp: Path(tmp).write_text(meta_text, encoding="utf-8"))
    logger.info("saved checkpoint %s (%d tensors)", path, len(tensors))
    return path


def weights_only_reason(message: str) -> str:
    """The one informative line of torch's weights_only refusal ("Unsupported global: ...")."""
    for line in message.splitlines():
        if "WeightsUnpickler error:" in line:
            reason = line.split("WeightsUnpickler error:", 1)[1].strip()
            # torch goes on to suggest allow-listing the global; we do not, so cut that advice
            reason = reason.split(" Please use", 1)[0].rstrip(".")
            if reason:
                return reason
    for line in message.splitlines():
        if line.strip().startswith("Unsupported"):
            return line.strip()
    return message.splitlines()[0] if message else "unknown reason"


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict ``{name: tensor}`` from ``path`` onto the CPU, never unpickling objects.

    ``.safetensors`` files are read with ``safetensors.torch.load_file``; anything else with
    ``torch.load(path, weights_only=True, map_location="cpu")``, which refuses pickled Python
    objects (classes, functions, ``os.system`` payloads) instead of running them.

    Raises
    ------
    CheckpointError
        The file is missing, truncated or corrupt, holds Python objects weights_only refuses, or
        holds something other than a dict of tensors (a bare tensor, a list, a nested training
        checkpoint). The message names the path and the problem.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint file not found: {path}.")
    if not path.is_file():
        raise CheckpointError(f"checkpoint path {path} is not a file (a folder?); give the weights file.")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); it was not saved completely.")
    if is_safetensors(path):
        from influence_stage.engine.hf_folder import require

        st = require("safetensors.torch", purpose="loading .safetensors checkpoints")
        try:
            obj: Any = st.load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own SafetensorError and OSError/ValueError
            raise CheckpointError(
                f"checkpoint {path} could not be read as safetensors ({type(exc).__name__}: {exc}); "
                "the file is truncated, corrupt or not a safetensors file."
            ) from exc
    else:
        try:
            obj = torch.load(path, weights_only=True, map_location="cpu")
        except Exception as exc:  # UnpicklingError, RuntimeError (zip), EOFError, IndexError, ...
            message = str(exc)
            if "Weights only load failed" in message and "Unsupported global" in message:
                raise CheckpointError(
                    f"checkpoint {path} was refused by torch.load(weights_only=True): it holds pickled "
                    f"Python objects, not only tensors ({weights_only_reason(message)}). Unpickling "
                    "them could run arbitrary code, so they are never loaded. If you trust the file, "
                    "load it yourself and re-save the weights only: "
                    "influence_stage.engine.checkpoint.save_checkpoint(model, path) or "
                    "torch.save(model.state_dict(), path)."
                ) from exc
            raise CheckpointError(
                f"checkpoint {path} could not be read by torch.load(weights_only=True) "
                f"({type(exc).__name__}: {weights_only_reason(message) if message else 'no details'}); "
                "the file is truncated, corrupt, not a PyTorch checkpoint, or a pickle of objects "
                "other than tensors."
            ) from exc
    return as_state_dict(obj, path)


def as_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        raise CheckpointError(
            f"checkpoint {path} holds a single tensor of shape {tuple(obj.shape)}, not a state dict "
            "{name: tensor}; save model.state_dict() instead."
        )
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"checkpoint {path} holds a {type(obj).__name__}, not a state dict {{name: tensor}}; "
            "save model.state_dict() instead."
        )
    if not obj:
        raise CheckpointError(f"checkpoint {path} holds an empty dict; no parameters to load.")
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            hint = ""
            if isinstance(value, Mapping):
                hint = (f" It looks like a training checkpoint with the weights nested under {key!r}; "
                        f"save checkpoint[{key!r}] on its own.")
            raise CheckpointError(
                f"checkpoint {path} is not a state dict {{name: tensor}}: entry {key!r} is a "
                f"{type(value).__name__}.{hint}"
            )
    return dict(obj)


def read_meta(path: str | os.PathLike) -> dict[str, Any] | None:
    """The JSON sidecar of checkpoint ``path`` as a dict, or None when there is none."""
    mp = meta_path(path)
    if not mp.exists():
        return None
    try:
        meta = json.loads(mp.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint sidecar {mp} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint sidecar {mp} must hold a JSON object; found {type(meta).__name__}.")
    return meta


__all__ = ["CHECKPOINT_SUFFIXES", "META_SUFFIX", "SAFETENSORS_SUFFIX", "as_state_dict", "atomic_write",
           "checkpoint_digest", "is_checkpoint_path", "is_safetensors", "load_state_dict", "meta_path", "read_meta",
           "save_checkpoint", "weights_only_reason"]

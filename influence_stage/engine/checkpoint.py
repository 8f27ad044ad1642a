"""Checkpoints of θ*: save and load state dicts safely, check a loaded model against the data.

This module owns the file side of "load a trained model instead of fitting one":

- ``save_checkpoint`` writes a module's state dict (``torch.save``; ``.safetensors`` suffix →
  safetensors) and, with ``meta``, a JSON sidecar ``<file>.meta.json`` that names the builder.
- ``load_state_dict`` reads only tensors: ``torch.load(weights_only=True)`` refuses pickled Python
  objects (unpickling them can run arbitrary code), and every failure — missing, truncated or
  corrupt file, a file that holds something other than a ``{name: tensor}`` dict — is a
  ``CheckpointError`` naming the path and the problem.
- ``load_into`` loads strictly and lists what does not match; ``check_model`` runs one forward pass
  to check the input shape and the number of classes; ``load_model`` builds one of our models
  (``influence_stage.engine.models.build_model``) and does both. Sizes the sidecar does not give (input
  size, classes, the MLP's hidden widths, the CNN's width) are read off the weights, so a
  checkpoint made for other data fails in ``check_model`` with both numbers named.
- ``is_checkpoint_path`` (the suffixes the stage takes for ``CleanConfig.model``) and
  ``checkpoint_digest`` (content hash of the weights and the sidecar, for cache keys).

Whole pickled modules (``torch.save(model)``) are deliberately not supported: loading them means
unpickling arbitrary objects. Save ``model.state_dict()`` instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from influence_stage.errors import CheckpointError, InvalidInputError, InvalidTypeError
from influence_stage.engine.models import build_model

logger = logging.getLogger(__name__)

SAFETENSORS_SUFFIX = ".safetensors"
META_SUFFIX = ".meta.json"
#: Suffixes that make a plain path in ``CleanConfig.model`` a checkpoint (``"checkpoint:<path>"`` takes any).
CHECKPOINT_SUFFIXES: tuple[str, ...] = (".pt", ".pth", ".bin", SAFETENSORS_SUFFIX)
# Keyword arguments of the builders that change the architecture (build_model takes none of them).
_BUILDER_KWARGS = {"mlp": ("hidden",), "cnn": ("width",)}


def meta_path(path: str | os.PathLike) -> Path:
    """Path of the JSON sidecar of checkpoint ``path``: ``model.pt`` → ``model.pt.meta.json``."""
    path = Path(path)
    return path.with_name(path.name + META_SUFFIX)


def _is_safetensors(path: Path) -> bool:
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


def _atomic_write(path: Path, write: Any) -> None:
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
        ``{"width": w}`` (cnn). Without ``meta``, a sidecar left by an earlier save to the same
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
    if _is_safetensors(path):
        from influence_stage.engine.hf import require

        st = require("safetensors.torch", purpose="saving .safetensors checkpoints")
        _atomic_write(path, lambda tmp: st.save_file(tensors, tmp))
    else:
        _atomic_write(path, lambda tmp: torch.save(tensors, tmp))
    if meta is not None:
        _atomic_write(meta_path(path), lambda tmp: Path(tmp).write_text(meta_text, encoding="utf-8"))
    logger.info("saved checkpoint %s (%d tensors)", path, len(tensors))
    return path


def _weights_only_reason(message: str) -> str:
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
    if _is_safetensors(path):
        from influence_stage.engine.hf import require

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
                    f"Python objects, not only tensors ({_weights_only_reason(message)}). Unpickling "
                    "them could run arbitrary code, so they are never loaded. If you trust the file, "
                    "load it yourself and re-save the weights only: "
                    "influence_stage.engine.checkpoint.save_checkpoint(model, path) or "
                    "torch.save(model.state_dict(), path)."
                ) from exc
            raise CheckpointError(
                f"checkpoint {path} could not be read by torch.load(weights_only=True) "
                f"({type(exc).__name__}: {_weights_only_reason(message) if message else 'no details'}); "
                "the file is truncated, corrupt, not a PyTorch checkpoint, or a pickle of objects "
                "other than tensors."
            ) from exc
    return _as_state_dict(obj, path)


def _as_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
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


def _format_keys(keys: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f", … ({len(keys)} in all)" if len(keys) > limit else "")


def load_into(module: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load the state dict at ``path`` into ``module`` strictly; return ``module``.

    Raises
    ------
    CheckpointError
        Unreadable file (see ``load_state_dict``), or keys and shapes that do not match the module:
        the message lists the missing and unexpected keys and the first shape mismatch (name,
        shape the module expects, shape found in the file).
    """
    if not isinstance(module, nn.Module):
        raise InvalidTypeError(f"load_into needs a torch.nn.Module; found {type(module).__name__}.")
    return _load_state(module, load_state_dict(path), path)


def _load_state(module: nn.Module, state: Mapping[str, torch.Tensor], path: str | os.PathLike) -> nn.Module:
    """``load_into`` on a state dict already read from ``path`` (named in the messages)."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [(k, tuple(expected[k].shape), tuple(state[k].shape))
                  for k in expected if k in state and expected[k].shape != state[k].shape]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing keys (in the model, not in the file): {_format_keys(missing)}")
        if unexpected:
            parts.append(f"unexpected keys (in the file, not in the model): {_format_keys(unexpected)}")
        if mismatched:
            name, want, found = mismatched[0]
            parts.append(f"shape mismatch at {name!r}: the model expects {want}, the file has {found}"
                         + (f" ({len(mismatched)} mismatched tensors in all)" if len(mismatched) > 1 else ""))
        raise CheckpointError(
            f"checkpoint {path} does not match the {type(module).__name__}: " + "; ".join(parts)
            + ". Build the model with the architecture the checkpoint was saved from."
        )
    try:
        module.load_state_dict(dict(state), strict=True)
    except RuntimeError as exc:  # dtype casts that cannot be done, and the like
        raise CheckpointError(f"checkpoint {path} could not be loaded into the model: {exc}") from exc
    return module


def _first_input_layer(module: nn.Module) -> tuple[str, str, int] | None:
    """``(name, kind, size)`` of the first layer that fixes the input size, if one is found."""
    for name, m in module.named_modules():
        if isinstance(m, nn.Linear):
            return name, "features", int(m.in_features)
        if isinstance(m, nn.modules.conv._ConvNd):
            return name, "channels", int(m.in_channels)
    return None


def check_model(module: nn.Module, input_shape: Sequence[int], n_classes: int) -> None:
    """Check that ``module`` accepts rows of ``input_shape`` and outputs ``n_classes`` logits.

    Runs one forward pass in eval mode on a zero batch ``(2, *input_shape)`` (float32, the module's
    device) without gradients; the module's train/eval mode is restored afterwards.

    Parameters
    ----------
    module : torch.nn.Module
    input_shape : sequence of int
        Shape of one row without the batch axis, e.g. ``(64,)`` or ``(1, 8, 8)``.
    n_classes : int
        Number of classes K of the data.

    Raises
    ------
    InvalidInputError
        The module rejects the input shape (the message names the size its first layer expects and
        the size of the data), or its output is not ``(batch, n_classes)`` (e.g. "model outputs 5
        classes, the data has 10").
    """
    if not isinstance(module, nn.Module):
        raise InvalidTypeError(f"check_model needs a torch.nn.Module; found {type(module).__name__}.")
    shape = tuple(int(s) for s in input_shape)
    param = next(module.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = module(torch.zeros((2, *shape), dtype=torch.float32, device=device))
    except Exception as exc:  # shape errors surface as RuntimeError; some models raise others
        first = _first_input_layer(module)
        detail = ""
        if first is not None:
            name, kind, size = first
            found = shape[0] if kind == "channels" else (shape[-1] if shape else 0)
            detail = (f" Its first layer ({name!r}) expects {size} input {kind}; the data has {found} "
                      f"{kind} per row.")
        raise InvalidInputError(
            f"the model does not accept rows of shape {shape}.{detail} Forward pass failed with "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    finally:
        module.train(was_training)
    logits = getattr(out, "logits", out)
    if not isinstance(logits, torch.Tensor):
        raise InvalidInputError(
            f"the model must return a tensor of logits (batch, n_classes); it returned {type(out).__name__}."
        )
    if logits.dim() != 2:
        raise InvalidInputError(
            f"the model must return logits of shape (batch, n_classes); it returned shape "
            f"{tuple(logits.shape)} for a batch of 2 rows of shape {shape}."
        )
    if logits.shape[1] != n_classes:
        raise InvalidInputError(
            f"model outputs {logits.shape[1]} classes, the data has {n_classes}. Use a model (or "
            "checkpoint) trained for the data's classes, or pass n_classes."
        )


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


def _build(name: str, input_shape: tuple[int, ...], n_classes: int, kwargs: Mapping[str, Any],
           source: str) -> nn.Module:
    module = build_model(name, input_shape, n_classes)  # validates the name and the input shape
    if not kwargs:
        return module
    resolved = "cnn" if name == "auto" and len(input_shape) == 3 else ("mlp" if name == "auto" else name)
    allowed = _BUILDER_KWARGS.get(resolved, ())
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise CheckpointError(
            f"{source} gives builder_kwargs {unknown} that builder {resolved!r} does not take; "
            f"allowed: {list(allowed)}."
        )
    from influence_stage.engine import models

    return getattr(models, resolved)(input_shape[0], n_classes, **dict(kwargs))


def _layer_order(key: str) -> tuple[int, str] | None:
    head, _, rest = key.partition(".")
    return (int(head), rest) if head.isdigit() else None


def _sizes_from_state(builder: str, state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Sizes of one of our models read off its weights: ``in`` (features or channels), ``n_classes``, ``kwargs``.

    Our builders are ``nn.Sequential``s (keys ``"<index>.<name>"``); their linear weights are the
    2-D ``*.weight`` tensors and the convolution weights the 4-D ones, in index order (sorted by
    number: safetensors files list keys alphabetically, where ``"10"`` sorts before ``"2"``). An
    empty dict when the keys do not look like that (then nothing is inferred).
    """
    keyed = []
    for key, value in state.items():
        order = _layer_order(key)
        if order is None:
            return {}
        keyed.append((order, key, value))
    keyed.sort(key=lambda t: t[0])
    weights = [v for (_, rest), _, v in keyed if rest == "weight"]
    linears = [w for w in weights if w.dim() == 2]
    convs = [w for w in weights if w.dim() == 4]
    if not linears:
        return {}
    n_classes = int(linears[-1].shape[0])
    if builder == "mlp" and not convs:
        return {"in": int(linears[0].shape[1]), "n_classes": n_classes,
                "kwargs": {"hidden": [int(w.shape[0]) for w in linears[:-1]]}}
    if builder == "cnn" and convs:
        return {"in": int(convs[0].shape[1]), "n_classes": n_classes, "kwargs": {"width": int(convs[0].shape[0])}}
    return {}


def load_model(path: str | os.PathLike, *, builder: str | None = None, input_shape: Sequence[int],
               n_classes: int) -> nn.Module:
    """Build one of our models, load the checkpoint at ``path`` into it and check it on the data.

    Parameters
    ----------
    path : path-like
        A state dict (``torch.save`` or ``.safetensors``), optionally with a ``<path>.meta.json``
        sidecar written by ``save_checkpoint(..., meta={"builder": ..., ...})``.
    builder : str, optional
        Name for ``influence_stage.engine.models.build_model`` (``"mlp"``, ``"cnn"``, ``"auto"``). Default:
        the sidecar's ``"builder"``.
    input_shape : sequence of int
        Shape of one data row without the batch axis.
    n_classes : int
        Number of classes of the data.

    Returns
    -------
    torch.nn.Module
        The loaded model in eval mode.

    Raises
    ------
    CheckpointError
        No builder given and no sidecar naming one; the sidecar disagrees with ``builder``; the
        file is unreadable or does not match the architecture.
    InvalidInputError
        The loaded model does not fit the data (input shape or number of classes; both numbers
        named, e.g. "expects 32 input features; the data has 64", "model outputs 5 classes, the
        data has 10").

    Notes
    -----
    The architecture is built from what the checkpoint was saved from, so that a model trained for
    other data fails in ``check_model`` with both numbers named rather than as a shape mismatch
    while loading: the sidecar's ``input_shape`` / ``n_classes`` / ``builder_kwargs`` when it has
    them, else the sizes read off the weights (input features or channels, classes, the MLP's
    hidden widths, the CNN's width), else the data's.
    """
    path = Path(path)
    meta = read_meta(path) or {}
    source = f"checkpoint sidecar {meta_path(path)}"
    meta_builder = meta.get("builder")
    if builder is None and meta_builder is None:
        raise CheckpointError(
            f"no builder for checkpoint {path}: pass builder='mlp' or 'cnn', or save it with "
            "save_checkpoint(model, path, meta={'builder': ..., 'input_shape': ..., 'n_classes': ...})."
        )
    if builder is not None and meta_builder is not None and builder != meta_builder:
        raise CheckpointError(
            f"builder={builder!r} was given but {source} says the checkpoint was saved from "
            f"{meta_builder!r}."
        )
    name = builder if builder is not None else meta_builder
    if not isinstance(name, str):
        raise CheckpointError(f"{source}: 'builder' must be a model name; found {name!r}.")
    data_shape = tuple(int(s) for s in input_shape)
    state = load_state_dict(path)
    resolved = ("cnn" if len(data_shape) == 3 else "mlp") if name == "auto" else name
    inferred = _sizes_from_state(resolved, state)
    if "in" in inferred:
        guess_shape = ((inferred["in"],) if resolved == "mlp"
                       else (inferred["in"], *data_shape[1:]) if len(data_shape) == 3 else data_shape)
    else:
        guess_shape = data_shape
    try:
        build_shape = tuple(int(s) for s in meta.get("input_shape", guess_shape))
        build_classes = int(meta.get("n_classes", inferred.get("n_classes", n_classes)))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: input_shape must be a list of ints and n_classes an int: {exc}") from exc
    kwargs = meta["builder_kwargs"] if "builder_kwargs" in meta else inferred.get("kwargs", {})
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, Mapping):
        raise CheckpointError(f"{source}: builder_kwargs must be a JSON object; found {kwargs!r}.")
    module = _build(name, build_shape, build_classes, kwargs, source)
    _load_state(module, state, path)
    module.eval()
    check_model(module, data_shape, n_classes)
    logger.info("loaded %s model from %s", name, path)
    return module

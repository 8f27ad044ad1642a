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

One job per module: the files (saving, reading, the sidecar, the digest) are in
``influence_stage.engine.checkpoint_io``, the forward-pass check in
``influence_stage.engine.model_check``; this module builds and loads our models, and every name
above still imports from here.

Whole pickled modules (``torch.save(model)``) are deliberately not supported: loading them means
unpickling arbitrary objects. Save ``model.state_dict()`` instead.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from influence_stage.errors import CheckpointError, InvalidTypeError
from influence_stage.engine.checkpoint_io import (
    CHECKPOINT_SUFFIXES,
    META_SUFFIX,
    SAFETENSORS_SUFFIX,
    checkpoint_digest,
    is_checkpoint_path,
    load_state_dict,
    meta_path,
    read_meta,
    save_checkpoint,
)
from influence_stage.engine.checkpoint_io import as_state_dict as _as_state_dict  # noqa: F401  (former private names)
from influence_stage.engine.checkpoint_io import atomic_write as _atomic_write  # noqa: F401
from influence_stage.engine.checkpoint_io import is_safetensors as _is_safetensors  # noqa: F401
from influence_stage.engine.checkpoint_io import weights_only_reason as _weights_only_reason  # noqa: F401
from influence_stage.engine.model_check import check_model
from influence_stage.engine.model_check import first_input_layer as _first_input_layer  # noqa: F401
from influence_stage.engine.models import build_model

logger = logging.getLogger(__name__)

# Keyword arguments of the builders that change the architecture (build_model takes none of them).
_BUILDER_KWARGS = {"mlp": ("hidden",), "cnn": ("width", "blocks")}


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
        return {"in": int(convs[0].shape[1]), "n_classes": n_classes,
                "kwargs": {"width": int(convs[0].shape[0]), "blocks": len(convs)}}
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
    hidden widths, the CNN's width and blocks), else the data's.
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
    blocks = inferred.get("kwargs", {}).get("blocks")
    if blocks is not None and "blocks" not in kwargs:  # a sidecar from before the CNN's blocks names its width only
        kwargs = {**kwargs, "blocks": blocks}
    module = _build(name, build_shape, build_classes, kwargs, source)
    _load_state(module, state, path)
    module.eval()
    check_model(module, data_shape, n_classes)
    logger.info("loaded %s model from %s", name, path)
    return module


# The file side (checkpoint_io) and the forward-pass check (model_check) live in their own modules;
# their names stay importable from here.
__all__ = [
    "CHECKPOINT_SUFFIXES", "META_SUFFIX", "SAFETENSORS_SUFFIX", "check_model", "checkpoint_digest",
    "is_checkpoint_path", "load_into", "load_model", "load_state_dict", "meta_path", "read_meta", "save_checkpoint",
]

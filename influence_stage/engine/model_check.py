"""One forward pass that checks a model against the data: it accepts rows of the data's shape and
outputs one logit per class (both numbers named when not)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from influence_stage.errors import InvalidInputError, InvalidTypeError


def first_input_layer(module: nn.Module) -> tuple[str, str, int] | None:
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
        first = first_input_layer(module)
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


__all__ = ["check_model", "first_input_layer"]

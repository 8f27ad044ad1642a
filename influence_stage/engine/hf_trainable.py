"""Which parameters of a Hugging Face classifier SGD moves: ``"all"``, ``"head"`` or ``"last:N"``.

``"head"``: every parameter outside the backbone ``model.base_model_prefix``; ``"last:N"``: the head,
the last N blocks of the backbone's layer list and the backbone parameters after it (pooler, final
norm). ``check_trainable`` validates a setting without loading anything.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

from torch import nn

from influence_stage.errors import InvalidInputError

_LAST_N = re.compile(r"^last:(\d+)$")


def parse_trainable(spec: str) -> tuple[str, int]:
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
    parse_trainable(spec)
    return spec



def layer_list(base: nn.Module) -> tuple[str, nn.ModuleList]:
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
    kind, n_layers = parse_trainable(trainable)
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
        list_name, layers = layer_list(base)
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



def ancestors(name: str) -> Iterator[str]:
    parts = name.split(".")
    for i in range(len(parts)):
        yield ".".join(parts[:i])


__all__ = ["ancestors", "check_trainable", "layer_list", "parse_trainable", "trainable_parameter_names"]

"""Which parameters of a causal language model the members perturb: ``"all"`` or ``"last:N"`` blocks."""

from __future__ import annotations

import re
from typing import Any

from torch import nn

from influence_stage.errors import InvalidInputError

_LAST_N = re.compile(r"^last:(\d+)$")


def check_lm_trainable(spec: Any) -> str:
    """``spec`` if it is ``"all"`` or ``"last:N"`` (N >= 1), else InvalidInputError."""
    if spec == "all" or (isinstance(spec, str) and (m := _LAST_N.match(spec)) and int(m.group(1)) >= 1):
        return spec
    raise InvalidInputError(f"trainable must be 'all' or 'last:N' with N >= 1 (e.g. 'last:2'); found {spec!r}.")


def lm_trainable_names(model: nn.Module, trainable: str) -> list[str]:
    """Parameter names ``trainable`` leaves trainable: every one, or the last N blocks and what follows them.

    ``"last:N"``: the last N blocks of the model's list of transformer blocks (its largest
    ``nn.ModuleList``) and every parameter registered after that list (the final layer norm, an
    untied output layer). Tied input embeddings are not among them.
    """
    check_lm_trainable(trainable)
    names = [n for n, _ in model.named_parameters()]
    if trainable == "all":
        return names
    n_blocks = int(trainable.split(":")[1])
    best, best_size = None, -1
    for name, m in model.named_modules():
        if isinstance(m, nn.ModuleList) and len(m) > 0:
            size = sum(p.numel() for p in m.parameters())
            if size > best_size:
                best, best_size = (name, m), size
    if best is None:
        raise InvalidInputError(f"trainable={trainable!r} needs a model with a list of blocks (nn.ModuleList); "
                                f"{type(model).__name__} has none. Use trainable='all'.")
    list_name, blocks = best
    if n_blocks > len(blocks):
        raise InvalidInputError(f"trainable={trainable!r} asks for the last {n_blocks} blocks, but {list_name} has "
                                f"{len(blocks)}.")
    prefixes = tuple(f"{list_name}.{i}." for i in range(len(blocks) - n_blocks, len(blocks)))
    in_list = [i for i, n in enumerate(names) if n.startswith(f"{list_name}.")]
    chosen = {n for n in names if n.startswith(prefixes)} | set(names[in_list[-1] + 1:])
    return [n for n in names if n in chosen]


__all__ = ["check_lm_trainable", "lm_trainable_names"]

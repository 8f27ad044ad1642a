"""Small model builders used by the defaults: an MLP for tabular or embedding features, a CNN for images."""

from __future__ import annotations

from typing import Sequence

from torch import nn

from influence_stage._checks import check_positive_int
from influence_stage.errors import InvalidInputError
from influence_stage.engine.learner import reinitialize


def mlp(n_features: int, n_classes: int, *, hidden: Sequence[int] = (128,), seed: int = 0) -> nn.Module:
    """Fully connected ReLU network ``n_features → hidden… → n_classes`` (logits).

    Parameters are drawn from a local generator seeded with ``seed``; global RNG state is untouched.
    """
    check_positive_int(n_features, "n_features")
    check_positive_int(n_classes, "n_classes", minimum=2)
    layers: list[nn.Module] = []
    width = n_features
    for h in hidden:
        layers += [nn.Linear(width, int(h)), nn.ReLU()]
        width = int(h)
    layers.append(nn.Linear(width, n_classes))
    return reinitialize(nn.Sequential(*layers), seed)


def cnn(in_channels: int, n_classes: int, *, width: int = 32, blocks: int = 2, seed: int = 0) -> nn.Module:
    """Small CNN for images ``(b, in_channels, h, w)`` of any size ≥ 8×8: ``blocks`` conv blocks with
    batch-norm (widths ``width``, then ``2 * width``), a 2×2 max-pool between blocks, global average
    pooling, a linear head.

    Two blocks (the default) see about 10 pixels of the image per feature, three about 18: a bare
    training loop learns procedural shapes far better with three, but inside the stage three blocks
    did not make the rows of 800 noisy shape images rankable (benchmarks/RESULTS.md, GEXConfig.cnn_blocks).
    """
    check_positive_int(in_channels, "in_channels")
    check_positive_int(n_classes, "n_classes", minimum=2)
    check_positive_int(blocks, "blocks")
    layers: list[nn.Module] = []
    channels = in_channels
    for b in range(blocks):
        if b:
            layers.append(nn.MaxPool2d(2))
        out = width if b == 0 else 2 * width
        layers += [nn.Conv2d(channels, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
        channels = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, n_classes)]
    return reinitialize(nn.Sequential(*layers), seed)


def build_model(name: str, input_shape: Sequence[int], n_classes: int, *, seed: int = 0,
                cnn_blocks: int = 2) -> nn.Module:
    """Build a default model by name for inputs of shape ``input_shape`` (without the batch axis).

    ``"auto"`` picks ``"cnn"`` for 3-D inputs ``(c, h, w)`` and ``"mlp"`` for 1-D inputs;
    ``cnn_blocks`` is the CNN's number of conv blocks (``GEXConfig.cnn_blocks``).
    """
    shape = tuple(int(s) for s in input_shape)
    if name == "auto":
        name = "cnn" if len(shape) == 3 else "mlp"
    if name == "mlp":
        if len(shape) != 1:
            raise InvalidInputError(f"model 'mlp' needs 1-D features per row; found row shape {shape}.")
        return mlp(shape[0], n_classes, seed=seed)
    if name == "cnn":
        if len(shape) != 3:
            raise InvalidInputError(
                f"model 'cnn' needs image rows of shape (channels, height, width); found {shape}."
            )
        return cnn(shape[0], n_classes, blocks=cnn_blocks, seed=seed)
    raise InvalidInputError(f"unknown model name {name!r}; expected one of 'auto', 'mlp', 'cnn'.")

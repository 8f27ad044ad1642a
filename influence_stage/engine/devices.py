"""Devices: the torch device a ``device`` option names (``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"auto"``),
refused before any work when it is not there."""

from __future__ import annotations

import torch

from influence_stage.errors import InvalidInputError

DEVICES = ("cpu", "cuda", "auto")


def resolve_device(device: str | torch.device | None) -> str:
    """The torch device a ``device`` option names: ``"cpu"``, ``"cuda"`` / ``"cuda:N"``, or ``"auto"``.

    ``"auto"`` is CUDA when a CUDA device is visible, else CPU. Asking for CUDA where there is none
    is an error here, before any model is built or data copied, rather than a torch error deep in
    training.

    Parameters
    ----------
    device : str, torch.device or None
        None means ``"cpu"``.

    Returns
    -------
    str
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Raises
    ------
    InvalidInputError
        An unknown name, or CUDA asked for and not available (or index ``N`` out of range).
    """
    name = "cpu" if device is None else str(device)
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return name
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InvalidInputError(
                f"device {name!r} asked for, but torch sees no CUDA device (torch {torch.__version__}, "
                f"CUDA build {torch.version.cuda or 'none'}). Fix: use device='cpu' or 'auto', or install a CUDA "
                "build of torch on a machine with a GPU."
            )
        index = name.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise InvalidInputError(f"device {name!r}: there are {torch.cuda.device_count()} CUDA devices "
                                    f"(cuda:0..cuda:{torch.cuda.device_count() - 1}). Fix: pick one of them.")
        return name
    raise InvalidInputError(f"device must be one of {DEVICES} (or 'cuda:N'); found {name!r}.")


__all__ = ["DEVICES", "resolve_device"]

"""Checks before any work: the configuration's type, writable folders, and ``preflight``, every check
that needs no features and no training.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from influence_stage.config.clean import CleanConfig, check_rates
from influence_stage.config.model_spec import parse_model_spec
from influence_stage.data.sources import check_source
from influence_stage.engine.learner import resolve_device
from influence_stage.errors import InvalidInputError, InvalidTypeError


def check_config(config: Any) -> CleanConfig:
    if not isinstance(config, CleanConfig):
        raise InvalidTypeError(
            f"config must be a CleanConfig; found {type(config).__name__}. "
            "Fix: CleanConfig(...) or CleanConfig.from_yaml(path)."
        )
    return config


def check_folder(path: str | os.PathLike, what: str, flag: str) -> Path:
    """``path`` is a writable folder, or can be created as one (nothing is created here).

    Raises
    ------
    InvalidInputError
        ``path`` (or the nearest existing folder above it) is a file, or is not writable.
    """
    folder = Path(path).expanduser()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        where = "is a file" if existing == folder else f"cannot be created: {existing} is a file"
        raise InvalidInputError(
            f"{what} {folder} {where}, not a folder; expected a folder (created when missing). "
            f"Fix: point {flag} at a folder, or move the file away."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InvalidInputError(
            f"{what} {folder} is not writable ({existing} does not allow writing for this user). "
            f"Fix: point {flag} at a writable folder, or change its permissions."
        )
    return folder


def preflight(source: Any, config: CleanConfig, *, name: str | None = None,
              publish_root: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
              push_to_hub: str | None = None) -> None:
    """Every check that needs no features and no training, before any work (a few ms to a second).

    The configuration type and its rates (``check_rates``); the model spec
    (``parse_model_spec``: a known name, or a checkpoint / ``hf:`` folder that exists); the
    dataset name (the rule ``influence_stage.publish.versions.publish`` applies); the publish root and
    the cache dir writable folders, or creatable; a hub push possible (online, a token); a local
    source readable and not empty (``influence_stage.data.sources.check_source``: the claiming data source's
    checks; for local files ``check_local_source``).

    Raises
    ------
    InvalidInputError, InvalidTypeError, HubPushError
        The first failed check; nothing is written.
    """
    from influence_stage.publish.versions import check_hub_push, check_name

    config = check_config(config)
    check_rates(config.gex)
    resolve_device(config.gex.device)  # CUDA asked for on a machine without it: refused before any work
    parse_model_spec(config.model)
    if name is not None:
        check_name(name)
    if publish_root is not None:
        check_folder(publish_root, "publish root", "--publish-root (publish_root)")
    if cache_dir is not None:
        check_folder(cache_dir, "cache dir", "--cache-dir (cache_dir)")
    if push_to_hub is not None:
        check_hub_push(push_to_hub)
    check_source(source)


__all__ = ["check_config", "check_folder", "preflight"]

"""Skip-unchanged: whether the latest version was published from the same data and configuration.

A scheduled run publishes nothing when the input dataset's fingerprint
(``influence_stage.data.fingerprint.dataset_fingerprint``) and the configuration fingerprint
(``config_digest``) equal those the latest version recorded in ``meta.json``. ``publish``
checks it holding the name's lock (so two runs on the same data publish once); a flow checks it
early (``unchanged_version``) to skip the scoring work.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from influence_stage._checks import check_safe_name
from influence_stage.errors import InfluenceStageError, InvalidInputError, InvalidTypeError
from influence_stage.publish.layout import CONFIG_JSON, META_JSON, latest_version
from influence_stage.publish.store import json_ready

logger = logging.getLogger(__name__)


def config_digest(config: Mapping[str, Any]) -> str:
    """Fingerprint of a configuration mapping: sha256 hex of its canonical JSON (sorted keys).

    Equal for equal values however the mapping was built (key order, numpy scalars, pydantic
    models); what ``publish`` records as ``config_fingerprint`` unless told otherwise.

    Parameters
    ----------
    config : mapping or pydantic model or dataclass

    Returns
    -------
    str
        64 hex digits.
    """
    data = json_ready(config, "config")
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _recorded_config_fingerprint(folder: Path, meta: Mapping[str, Any]) -> str | None:
    """A version's configuration fingerprint: from meta.json, else (older versions) from config.json."""
    recorded = meta.get("config_fingerprint")
    if isinstance(recorded, str):
        return recorded
    try:
        return config_digest(json.loads((folder / CONFIG_JSON).read_text(encoding="utf-8")))
    except (OSError, ValueError, InfluenceStageError):
        return None


def unchanged_held(base: Path, name: str, fingerprint: str | None, config_fp: str) -> str | None:
    """The latest version under ``base`` when its data and configuration fingerprints equal these, else None.

    Called holding the name's lock (``publish``) or not (``unchanged_version``); a damaged
    ``LATEST`` counts as changed, so the publish goes ahead and repairs it.
    """
    if fingerprint is None:
        return None
    try:
        latest = latest_version(base.parent, name)
    except InvalidInputError as exc:  # a damaged LATEST: publish anew, which repairs it
        logger.warning("%s; publishing a new version.", exc)
        return None
    if latest is None:
        return None
    folder = base / latest
    try:
        meta = json.loads((folder / META_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if meta.get("fingerprint") == fingerprint and _recorded_config_fingerprint(folder, meta) == config_fp:
        return latest
    return None


def unchanged_version(root: str | os.PathLike[str], name: str, *, fingerprint: str,
                      config: Mapping[str, Any] | None = None, config_fingerprint: str | None = None) -> str | None:
    """The latest version of ``name`` when it was published from the same data and configuration.

    What ``publish(skip_unchanged=True)`` checks (holding the lock); a flow calls it early to skip
    the scoring work for data that did not change.

    Parameters
    ----------
    root : str or path-like
    name : str
    fingerprint : str
        The input dataset's fingerprint
        (``influence_stage.data.fingerprint.dataset_fingerprint``).
    config : mapping, optional
        The configuration as passed to ``publish``; its ``config_digest`` is compared.
    config_fingerprint : str, optional
        Or the configuration fingerprint itself (as passed to ``publish``); one of the two.

    Returns
    -------
    str or None
        The latest version's name when its ``fingerprint`` and configuration fingerprint equal
        these; None when they differ, nothing was published, or ``LATEST`` is damaged.
    """
    if (config is None) == (config_fingerprint is None):
        raise InvalidInputError("unchanged_version needs exactly one of config= or config_fingerprint=; "
                                f"found {'both' if config is not None else 'neither'}.")
    if not isinstance(fingerprint, str):
        raise InvalidTypeError(f"fingerprint must be a string; found {type(fingerprint).__name__}.")
    base = Path(root) / check_safe_name(name, "name")
    config_fp = config_digest(config) if config is not None else str(config_fingerprint)
    return unchanged_held(base, name, fingerprint, config_fp)

"""Retention of published versions: keep the N newest, never the one ``LATEST`` points to.

``publish(keep=N)`` and ``prune_versions`` delete all but the ``N`` newest versions of a name
(newest by ``meta.json``'s ``created_utc``, then version number). Each deleted folder is first
renamed out of sight (atomic), so a reader sees a version whole or not at all; a delete cut short
leaves an ownerless ``.tmp-`` folder, which the next publish removes as debris.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from influence_stage._checks import check_safe_name
from influence_stage.errors import InvalidInputError
from influence_stage.publish.layout import (
    LATEST,
    META_JSON,
    TMP_PREFIX,
    latest_version,
    list_versions,
    version_key,
)
from influence_stage.publish.store import fsync_dir, locked

logger = logging.getLogger(__name__)


def check_keep(keep: Any) -> int:
    """``keep`` as an int when it is a whole number of versions >= 1.

    Raises
    ------
    InvalidInputError
        Below 1, a bool, or not a whole number.
    """
    if isinstance(keep, bool) or not isinstance(keep, (int, np.integer)) or int(keep) < 1:
        raise InvalidInputError(
            f"keep must be a whole number of versions >= 1; found {keep!r}. Fix: pass keep=N to keep the N newest "
            "versions, or omit it to keep every version."
        )
    return int(keep)


def _created(folder: Path) -> str:
    try:
        return str(json.loads((folder / META_JSON).read_text(encoding="utf-8")).get("created_utc") or "")
    except (OSError, ValueError):
        return ""


def prune_held(base: Path, keep: int) -> tuple[str, ...]:
    """Delete all but the ``keep`` newest versions under ``base``; the caller holds the name's lock.

    The version ``LATEST`` points to stays; a damaged ``LATEST`` deletes nothing.

    Returns
    -------
    tuple of str
        The deleted versions, oldest first.
    """
    versions = list_versions(base.parent, base.name)
    try:
        latest = latest_version(base.parent, base.name)
    except InvalidInputError:  # a damaged LATEST: keep everything rather than guess which one is live
        logger.warning("%s/%s is damaged; retention deletes nothing.", base, LATEST)
        return ()
    # newest first: by the time meta.json records, then by version number for equal times
    newest = sorted(versions, key=lambda v: (_created(base / v), version_key(v)), reverse=True)
    doomed = [v for v in newest[keep:] if v != latest]
    removed = []
    for version in sorted(doomed, key=version_key):
        # renamed out of sight first (atomic), so a reader never sees half a version; a delete cut
        # short leaves an ownerless .tmp- folder, which the next publish removes as debris
        trash = base / f"{TMP_PREFIX}removed-{version}-{uuid.uuid4().hex}"
        os.rename(base / version, trash)
        shutil.rmtree(trash, ignore_errors=True)
        removed.append(version)
        logger.info("Removed %s %s (retention: keep %d).", base.name, version, keep)
    if removed:
        fsync_dir(base)
    return tuple(removed)


def prune_versions(root: str | os.PathLike[str], name: str, keep: int) -> list[str]:
    """Retention: delete all but the ``keep`` newest published versions of ``name``.

    Newest is by ``meta.json``'s ``created_utc`` (then version number). The version ``LATEST``
    points to is never deleted, even when it is not among the newest (a named version published
    earlier and pointed to again). Each deleted folder is first renamed out of sight, so readers
    see a version whole or not at all. Runs holding the name's publish lock.

    Parameters
    ----------
    root : str or path-like
    name : str
    keep : int
        At least 1.

    Returns
    -------
    list of str
        The deleted versions, oldest first (empty when there were at most ``keep``, or when
        ``LATEST`` is damaged: nothing is deleted then).

    Raises
    ------
    InvalidInputError
        ``keep`` below 1 or not a whole number; ``name`` not a safe folder name.
    """
    keep = check_keep(keep)
    base = Path(root) / check_safe_name(name, "name")
    if not base.is_dir():
        return []
    with locked(base):
        return list(prune_held(base, keep))

"""The on-disk layout of published versions: file names, safe names, and which versions exist.

A published dataset name is a folder ``<root>/<name>/`` holding one immutable folder per version
and a ``LATEST`` pointer (see ``influence_stage.publish.versions`` for what a version folder
holds). This module owns the names of those files, the order of versions, and reading which
versions exist and which one ``LATEST`` names; names are checked by the project's one rule for
safe folder names (``influence_stage._checks.check_safe_name``). It writes nothing.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from influence_stage._checks import check_safe_name
from influence_stage.errors import InvalidInputError

DEFAULT_ROOT = Path("data/published")
"""Where versions are published unless ``root=`` says otherwise (relative to the working directory)."""

LATEST = "LATEST"
"""Name of the pointer file holding the newest version's name."""

DATASET_DIR = "dataset"
DATA_PARQUET = "data.parquet"
MANIFEST_PARQUET = "manifest.parquet"
VALIDATION_DIR = "validation"
REPORT_HTML = "report.html"
CONFIG_JSON = "config.json"
CARD_MD = "README.md"
"""The dataset card (Hugging Face format), so ``datasets.load_dataset(<version folder>)`` reads the data."""
META_JSON = "meta.json"

RESERVED = (DATASET_DIR, DATA_PARQUET, MANIFEST_PARQUET, VALIDATION_DIR, REPORT_HTML, CONFIG_JSON, CARD_MD,
            META_JSON)
"""Top-level names of a version folder that a caller's extra files may not take."""

LOCK_FILE = ".lock"
"""Serialises publishers of one name (an ``fcntl`` lock on this file, POSIX)."""

TMP_PREFIX = ".tmp-"
"""Prefix of temporary folders and files of publishes in progress (or killed)."""

OWNER_FILE = ".owner.json"
"""Inside a temporary version folder: the publishing process (pid, host, start time), so the next
publish can tell debris of a killed publish from a publish in progress. Removed before the rename."""

_AUTO_VERSION = re.compile(r"^v(\d+)$")


@dataclass(frozen=True)
class Published:
    """One published version.

    Attributes
    ----------
    path : Path
        The version folder ``<root>/<name>/<version>``.
    version : str
        E.g. ``"v0003"``.
    name : str
        The dataset name.
    files : tuple of str
        Every file of the version, relative POSIX paths, sorted.
    unchanged : bool
        True when ``publish(skip_unchanged=True)`` published nothing because the dataset and
        configuration fingerprints equal those of the latest version; ``path`` and ``version``
        are then that version's.
    removed : tuple of str
        Versions deleted by retention (``publish(keep=N)``), oldest first.
    """

    path: Path
    version: str
    name: str
    files: tuple[str, ...]
    unchanged: bool = False
    removed: tuple[str, ...] = ()

    @property
    def published(self) -> bool:
        """False when nothing was published: the data and configuration equal those of ``version``."""
        return not self.unchanged


def check_name(name: Any) -> str:
    """The dataset name rule of ``publish`` (``_checks.check_safe_name``), for checks before any work."""
    return check_safe_name(name, "name")


def version_key(version: str) -> tuple[int, int, str]:
    """Sort key of version names: ``vNNNN`` by number first, then other names alphabetically."""
    m = _AUTO_VERSION.match(version)
    return (0, int(m.group(1)), version) if m else (1, 0, version)


def next_version(base: Path) -> str:
    """The next automatic version name under ``base``: one after the highest ``vNNNN`` folder."""
    numbers = [int(m.group(1)) for p in base.iterdir() if p.is_dir() and (m := _AUTO_VERSION.match(p.name))]
    return f"v{max(numbers, default=0) + 1:04d}"


def version_containing(path: str | os.PathLike[str]) -> Path | None:
    """The published version folder ``path`` is in (or is), or None.

    A version folder is one holding ``meta.json`` and ``manifest.parquet``: what ``publish``
    writes. ``path`` need not exist.
    """
    target = Path(path).expanduser().resolve()
    for folder in (target, *target.parents):
        if (folder / META_JSON).is_file() and (folder / MANIFEST_PARQUET).is_file():
            return folder
    return None


def list_versions(root: str | os.PathLike[str], name: str) -> list[str]:
    """Published versions of ``name``, oldest first (``vNNNN`` by number, then other names sorted).

    Temporary folders of publishes in progress (or killed) are not listed.
    """
    base = Path(root) / check_safe_name(name, "name")
    if not base.is_dir():
        return []
    versions = [p.name for p in base.iterdir()
                if p.is_dir() and not p.name.startswith(".") and (p / META_JSON).is_file()]
    return sorted(versions, key=version_key)


def latest_version(root: str | os.PathLike[str], name: str) -> str | None:
    """The version ``LATEST`` points to, or None when nothing was published.

    Raises
    ------
    InvalidInputError
        ``LATEST`` names a version folder that does not exist.
    """
    base = Path(root) / check_safe_name(name, "name")
    pointer = base / LATEST
    if not pointer.is_file():
        return None
    version = pointer.read_text(encoding="utf-8").strip()
    if not (base / version / META_JSON).is_file():
        raise InvalidInputError(
            f"{str(pointer)!r} points to {version!r}, which is not a published version of {name!r} "
            f"(found {list_versions(root, name)}). Fix: write an existing version name into it."
        )
    return version

"""Reading published versions back: the dataset, the manifest and ``meta.json`` of one version.

What a version folder holds is described in :mod:`influence_stage.publish.versions`; this module
reads it, resolving ``<root>/<name>`` through ``LATEST`` and, when asked, checking every file
against the sizes and checksums ``meta.json`` records.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import datasets
import pandas as pd

from influence_stage.errors import InvalidInputError
from influence_stage.publish.layout import DATASET_DIR, LATEST, MANIFEST_PARQUET, META_JSON, latest_version
from influence_stage.publish.store import sha256


def load_published(
    path: str | os.PathLike[str], *, verify: bool = False
) -> tuple[datasets.Dataset, pd.DataFrame, dict[str, Any]]:
    """Read a published version.

    Parameters
    ----------
    path : str or path-like
        A version folder ``<root>/<name>/<version>``, or ``<root>/<name>`` for its latest version.
    verify : bool, default False
        Check every file's size and sha256 against ``meta.json`` first.

    Returns
    -------
    dataset : datasets.Dataset
        The cleaned dataset (memory-mapped from ``dataset/``).
    manifest : pandas.DataFrame
        ``manifest.parquet``: ``given_label`` / ``suggested_label`` hold the input's label values
        (``meta["classes"]`` maps codes to them;
        :func:`~influence_stage.publish.manifest.manifest_codes` turns them back).
    meta : dict
        ``meta.json``.

    Raises
    ------
    InvalidInputError
        Not a published version, or (``verify=True``) a file is missing or changed.
    """
    folder = Path(path)
    if not (folder / META_JSON).is_file() and (folder / LATEST).is_file():
        version = latest_version(folder.parent, folder.name)
        folder = folder / str(version)
    if not (folder / META_JSON).is_file():
        raise InvalidInputError(
            f"{str(folder)!r} is not a published version (no {META_JSON}). "
            "Expected <root>/<name>/<version> or <root>/<name> with a LATEST file."
        )
    meta = json.loads((folder / META_JSON).read_text(encoding="utf-8"))
    if verify:
        for rel, info in meta.get("files", {}).items():
            file = folder / rel
            if not file.is_file():
                raise InvalidInputError(f"published file {rel!r} is missing from {str(folder)!r}.")
            if file.stat().st_size != info["bytes"] or sha256(file) != info["sha256"]:
                raise InvalidInputError(
                    f"published file {rel!r} in {str(folder)!r} differs from meta.json (size or sha256); "
                    "the version was modified after publishing."
                )
    dataset = datasets.load_from_disk(str(folder / DATASET_DIR))
    manifest = pd.read_parquet(folder / MANIFEST_PARQUET)
    return dataset, manifest, meta

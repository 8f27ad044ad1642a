"""Reading published versions back: one version's dataset, manifest and ``meta.json``; every version's counts.

What a version folder holds is described in ``influence_stage.publish.versions``; this module
reads it, resolving ``<root>/<name>`` through ``LATEST`` and, when asked, checking every file
against the sizes and checksums ``meta.json`` records (``load_published``), and lists the
versions of a name with their date and counts (``version_history``, what ``influence-stage
versions`` prints).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import pandas as pd

from influence_stage._checks import check_safe_name
from influence_stage.errors import InvalidInputError
from influence_stage.publish.layout import (
    DATASET_DIR,
    LATEST,
    MANIFEST_PARQUET,
    META_JSON,
    latest_version,
    list_versions,
)
from influence_stage.publish.store import sha256

logger = logging.getLogger(__name__)


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
        ``manifest_codes`` turns them back). ``suggested_label`` is null (``pd.NA`` / None) on a
        flagged row with no confident other label.
    meta : dict
        ``meta.json``.

    Raises
    ------
    InvalidInputError
        Not a published version, or (``verify=True``) a file is missing or changed.

    Examples
    --------
    >>> import tempfile
    >>> import datasets, pandas as pd
    >>> from influence_stage.publish.read import load_published
    >>> from influence_stage.publish.versions import publish
    >>> cleaned = datasets.Dataset.from_dict({"x": [0.0, 3.0], "label": ["a", "a"], "row_id": [0, 2]})
    >>> manifest = pd.DataFrame({
    ...     "row_id": [0, 1, 2], "score": [0.1, 0.9, 0.3], "gex_influence": [0.1, 0.9, 0.3],
    ...     "label_quality": [0.9, 0.1, 0.7], "is_issue": [False, True, False], "action": ["keep", "drop", "keep"],
    ...     "given_label": ["a", "b", "a"], "suggested_label": ["a", "a", "a"], "weight": [1.0] * 3})
    >>> root = tempfile.mkdtemp()
    >>> _ = publish(cleaned, manifest, root=root, name="toy")
    >>> ds, m, meta = load_published(f"{root}/toy", verify=True)  # the latest version
    >>> ds.num_rows, m["action"].tolist(), meta["version"]
    (2, ['keep', 'drop', 'keep'], 'v0001')
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


@dataclass(frozen=True)
class VersionInfo:
    """One published version as ``influence-stage versions`` lists it.

    Attributes
    ----------
    version : str
        E.g. ``"v0003"``.
    created_utc : str or None
        When it was published (ISO 8601, UTC, from ``meta.json``).
    rows_in, rows_out : int or None
        Input rows (the manifest's) and published rows.
    flagged : int or None
        Rows the stage flagged; None when the version recorded no ``is_issue`` (a curation).
    actions : dict of str to int
        Rows per action (``keep``, ``drop``, ``relabel``, ...); empty when not recorded.
    latest : bool
        ``LATEST`` points to it.
    fingerprint : str or None
        The input dataset's fingerprint.
    readable : bool
        False when ``meta.json`` could not be read: every count is then None.
    """

    version: str
    created_utc: str | None
    rows_in: int | None
    rows_out: int | None
    flagged: int | None
    actions: dict[str, int] = field(default_factory=dict)
    latest: bool = False
    fingerprint: str | None = None
    readable: bool = True

    @property
    def flagged_share(self) -> float | None:
        """``flagged / rows_in`` (None when either is unknown or there were no rows)."""
        if self.flagged is None or not self.rows_in:
            return None
        return self.flagged / self.rows_in


def _int_or_none(value: Any) -> int | None:
    return None if value is None or isinstance(value, bool) else int(value)


def _flagged(folder: Path, meta: dict[str, Any]) -> int | None:
    """The flagged count: meta.json's, else the run summary's, else (older versions) the manifest's ``is_issue``."""
    if meta.get("flagged") is not None:
        return int(meta["flagged"])
    summary = meta.get("summary") or {}
    if isinstance(summary, dict) and summary.get("flagged") is not None:
        return int(summary["flagged"])
    try:
        import pyarrow.parquet as pq

        manifest = folder / MANIFEST_PARQUET
        if "is_issue" not in pq.read_schema(manifest).names:
            return None
        return int(pd.read_parquet(manifest, columns=["is_issue"])["is_issue"].fillna(False).astype(bool).sum())
    except (OSError, ValueError):
        return None


def version_history(root: str | os.PathLike[str], name: str) -> list[VersionInfo]:
    """Every published version of ``name`` with its date, rows in and out and flagged count, oldest first.

    Read from each version's ``meta.json`` (and, for versions published before it recorded the
    flagged count, the ``is_issue`` column of its manifest). A version whose ``meta.json`` cannot
    be read is listed with ``readable=False`` and no counts, not skipped; a damaged ``LATEST``
    marks no version as latest (``publish`` repairs it).

    Parameters
    ----------
    root : str or path-like
    name : str

    Returns
    -------
    list of VersionInfo
        In ``list_versions`` order; empty when nothing was published.

    Raises
    ------
    InvalidInputError
        ``name`` is not a safe folder name.
    """
    base = Path(root) / check_safe_name(name, "name")
    try:
        latest = latest_version(root, name)
    except InvalidInputError as exc:
        logger.warning("%s", exc)
        latest = None
    out = []
    for version in list_versions(root, name):
        folder = base / version
        try:
            meta = json.loads((folder / META_JSON).read_text(encoding="utf-8"))
            if not isinstance(meta, dict):
                raise ValueError(f"meta.json holds a {type(meta).__name__}, not an object")
            info = VersionInfo(
                version=version, created_utc=meta.get("created_utc"), rows_in=_int_or_none(meta.get("rows_in")),
                rows_out=_int_or_none(meta.get("rows_out")), flagged=_flagged(folder, meta),
                actions={str(k): int(v) for k, v in (meta.get("actions") or {}).items()},
                latest=version == latest, fingerprint=meta.get("fingerprint"))
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            logger.warning("%s/%s is unreadable (%s); listed without counts.", folder, META_JSON, exc)
            info = VersionInfo(version=version, created_utc=None, rows_in=None, rows_out=None, flagged=None,
                               latest=version == latest, readable=False)
        out.append(info)
    return out

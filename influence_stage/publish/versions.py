"""Versioned, atomic publishing of a cleaned dataset with its manifest, validation results and report.

This module owns the last arrow of the data flow: ``publish`` writes one immutable
version folder ``<root>/<name>/<version>/`` and moves a ``LATEST`` pointer to it::

    <root>/<name>/
        LATEST                 the newest published version's name (one line)
        .lock                  serialises publishers of this name (fcntl lock, POSIX)
        v0001/
            dataset/           Dataset.save_to_disk (Arrow, memory-mapped by load_published)
            data.parquet       the same rows as Parquet, for readers without `datasets`
            manifest.parquet   one row per input row: what happened to it (given_label /
                               suggested_label as the input's own label values, see
                               labelled_manifest)
            validation/<suite>.json   each suite's results (+ <suite>.html and <suite>.<batch>.html Data Docs)
            report.html        the run's report, when given
            config.json        the run's configuration ({} when none)
            README.md          the dataset card (publish.card): YAML configs naming data.parquet, so
                               datasets.load_dataset(<version folder>) loads the cleaned rows as
                               "train" (and "manifest" the manifest); counts, decisions, provenance
            <extra files>      caller's extra files
            meta.json          written last: version, UTC time, row counts, flagged count, fingerprint, package
                               version, the class list (code → label value), the run's summary,
                               size and sha256 of every other file

Atomicity: everything is written into ``<root>/<name>/.tmp-<version>-<uuid>`` (same parent, same
file system) and the folder is ``os.rename``-d into place, so a version folder is either complete
or absent. Any exception before the rename removes the temporary folder; previous versions and
``LATEST`` are untouched. An existing version is never overwritten. Publishers of the same name
are serialised by an exclusive lock on ``.lock`` held from choosing the version to moving
``LATEST``.

The publishing layer, one job per module (all public names are importable from here too):

- ``layout``: file names, safe names, listing versions, ``LATEST``;
- ``store``: atomic writes, the lock, owner files and debris of
  killed publishes (``list_debris``), checksums;
- ``manifest``: the manifest's labels (``labelled_manifest``,
  ``manifest_codes``);
- ``unchanged``: ``publish(skip_unchanged=True)`` publishes nothing
  when the dataset and configuration fingerprints (``config_digest``) equal those the latest
  version recorded (checked holding the lock, so two runs on the same data publish once);
- ``retention``: ``keep=N`` (``prune_versions``) deletes all but
  the N newest versions, never the one ``LATEST`` points to;
- ``read``: ``load_published``, ``version_history``;
- ``card``: the dataset card ``README.md``;
- ``hub``: pushing to the Hugging Face Hub, a separate, explicit step
  (``push_to_hub``), run by ``publish`` only when ``push_to_hub_repo`` is given.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import datasets
import pandas as pd

from influence_stage._checks import check_safe_name
from influence_stage.data.arrow import ROW_ID, flat_dataset
from influence_stage.errors import HubPushError, InvalidInputError, InvalidTypeError, ValidationFailedError
from influence_stage.publish import store
from influence_stage.publish.card import dataset_card
from influence_stage.publish.hub import check_hub_available, check_hub_push, push_to_hub
from influence_stage.publish.layout import (
    CARD_MD,
    CONFIG_JSON,
    DATA_PARQUET,
    DATASET_DIR,
    DEFAULT_ROOT,
    LATEST,
    MANIFEST_PARQUET,
    META_JSON,
    OWNER_FILE,
    REPORT_HTML,
    RESERVED,
    TMP_PREFIX,
    VALIDATION_DIR,
    Published,
    check_name,
    latest_version,
    list_versions,
    next_version,
    version_containing,
)
from influence_stage.publish.manifest import (
    action_counts,
    check_classes,
    flagged_count,
    labelled_manifest,
    manifest_codes,
)
from influence_stage.publish.read import VersionInfo, load_published, version_history
from influence_stage.publish.retention import check_keep, prune_held, prune_versions
from influence_stage.publish.store import list_debris
from influence_stage.publish.unchanged import config_digest, unchanged_held, unchanged_version

__all__ = [
    "CARD_MD", "CONFIG_JSON", "DATASET_DIR", "DATA_PARQUET", "DEFAULT_ROOT", "LATEST", "MANIFEST_PARQUET", "META_JSON",
    "OWNER_FILE", "REPORT_HTML", "VALIDATION_DIR", "HubPushError", "Published", "check_hub_push", "check_name",
    "config_digest", "labelled_manifest", "latest_version", "list_debris", "list_versions", "load_published",
    "manifest_codes", "prune_versions", "publish", "push_to_hub", "unchanged_version", "version_containing",
    "VersionInfo", "version_history",
]

logger = logging.getLogger(__name__)


def _check_extra_files(extra_files: Any) -> dict[str, bytes | Path]:
    """``{posix relative path: bytes or source file}``: a path-like value names a file to copy (streamed, not
    read into memory), anything bytes-like is the content itself."""
    if extra_files is None:
        return {}
    if not isinstance(extra_files, Mapping):
        raise InvalidTypeError(
            f"extra_files must be a dict of relative path to bytes or file path; found {type(extra_files).__name__}."
        )
    out: dict[str, bytes | Path] = {}
    for rel, content in extra_files.items():
        if not isinstance(rel, str) or not rel:
            raise InvalidTypeError(f"extra_files keys must be non-empty relative paths; found {rel!r}.")
        if not isinstance(content, (bytes, bytearray, memoryview, os.PathLike)):
            raise InvalidTypeError(
                f"extra_files[{rel!r}] must be bytes or a file path (pathlib.Path); found {type(content).__name__}."
            )
        pure = PurePosixPath(rel.replace("\\", "/"))
        hidden = any(part.startswith(".") for part in pure.parts)  # ".." included
        if not pure.parts or pure.is_absolute() or hidden or pure.parts[0] in RESERVED:
            raise InvalidInputError(
                f"extra_files path {rel!r} must be relative, without '..' or hidden parts, and must not be "
                f"one of the published files {list(RESERVED)}."
            )
        if isinstance(content, os.PathLike):
            source = Path(content)
            if not source.is_file():
                raise InvalidInputError(
                    f"extra_files[{rel!r}] names {str(source)!r}, which is not a file; expected a file to copy."
                )
            out[pure.as_posix()] = source
        else:
            out[pure.as_posix()] = bytes(content)
    return out


def _check_reports(validation_reports: Any) -> list[Any]:
    if validation_reports is None:
        return []
    if not isinstance(validation_reports, Sequence) or isinstance(validation_reports, (str, bytes)):
        raise InvalidTypeError(
            f"validation_reports must be a list of ValidationReport; found {type(validation_reports).__name__}."
        )
    seen = set()
    for report in validation_reports:
        if not all(hasattr(report, a) for a in ("suite", "success", "to_json")):
            raise InvalidTypeError(
                f"validation_reports must hold ValidationReport objects; found {type(report).__name__}."
            )
        check_safe_name(report.suite, "validation report suite name")
        if report.suite in seen:
            raise InvalidInputError(f"two validation reports for suite {report.suite!r}; expected one per suite.")
        seen.add(report.suite)
        if not report.success:
            if hasattr(report, "raise_if_failed"):
                report.raise_if_failed()
            raise ValidationFailedError(f"validation suite {report.suite!r} failed; nothing was published.")
    return list(validation_reports)


def _report_source(report_html: Any) -> str | Path | None:
    if report_html is None:
        return None
    if isinstance(report_html, os.PathLike):
        path = Path(report_html)
        if not path.is_file():
            raise InvalidInputError(f"report_html file {str(path)!r} does not exist; expected an HTML file to copy.")
        return path
    if isinstance(report_html, str):
        if "<" not in report_html:
            raise InvalidInputError(
                "report_html given as str must be the HTML text (e.g. from "
                f"influence_stage.report.build_report); found {report_html[:60]!r}. "
                "Fix: pass a pathlib.Path to copy a file."
            )
        return report_html
    raise InvalidTypeError(
        f"report_html must be HTML text (str) or a file path (Path); found {type(report_html).__name__}."
    )


def publish(
    cleaned_ds: datasets.Dataset,
    manifest: pd.DataFrame,
    *,
    root: str | os.PathLike[str] = DEFAULT_ROOT,
    name: str,
    version: str | None = None,
    config: Mapping[str, Any] | None = None,
    validation_reports: Sequence[Any] | None = None,
    report_html: str | os.PathLike[str] | None = None,
    extra_files: Mapping[str, bytes | os.PathLike[str]] | None = None,
    fingerprint: str | None = None,
    classes: Sequence[Any] | None = None,
    class_names: Sequence[str] | None = None,
    summary: Mapping[str, Any] | None = None,
    data_docs: bool = True,
    push_to_hub_repo: str | None = None,
    hub_token: str | None = None,
    config_fingerprint: str | None = None,
    skip_unchanged: bool = False,
    keep: int | None = None,
) -> Published:
    """Publish a cleaned dataset as a new immutable version ``<root>/<name>/<version>/``.

    Parameters
    ----------
    cleaned_ds : datasets.Dataset
        The cleaned dataset (``n_out`` rows).
    manifest : pandas.DataFrame
        One row per input row (``n_in`` rows) with a ``row_id`` column: what happened to each.
    root : str or path-like, default ``data/published``
        Folder holding one sub-folder per dataset name.
    name : str
        Dataset name: letters, digits, ``.``, ``_``, ``-``.
    version : str, optional
        Default: ``v0001``, ``v0002``, ... (one after the highest existing ``vNNNN``). An existing
        version is an error: versions are never overwritten.
    config : mapping or pydantic model or dataclass, optional
        The run's configuration, written to ``config.json`` (``{}`` when None).
    validation_reports : list of ValidationReport, optional
        Written to ``validation/<suite>.json``; every report must have passed (the publish gate).
    report_html : str or path-like, optional
        ``report.html``: a ``str`` is the HTML text (e.g. from ``influence_stage.report.build_report``); a path
        is a file, copied.
    extra_files : dict of str to bytes or path-like, optional
        More files, by relative path (no ``..``, no hidden parts, no reserved names): each value is the
        file's content (bytes) or a file to copy (a path, copied with ``shutil.copyfile``, so a large
        file is never held in memory). Either way the published file holds the same bytes.
    fingerprint : str, optional
        The input dataset's fingerprint, recorded in ``meta.json``.
    classes : sequence, optional
        The label value of each class code ``0..K-1``
        (``influence_stage.data.labels.LabelEncoding.values``), recorded in ``meta.json`` as
        ``classes``. When given, the manifest's ``given_label`` and ``suggested_label`` must hold
        these values (``labelled_manifest``), not codes.
    class_names : sequence of str, optional
        The class names in code order (``LabelEncoding.names``), recorded as ``class_names``.
    summary : mapping, optional
        The run's summary (counts, threshold, column roles...), recorded as ``summary``.
    data_docs : bool, default True
        Also write Great Expectations Data Docs HTML next to each validation JSON.
    push_to_hub_repo : str, optional
        After publishing locally, push the version to this Hub dataset repo (``push_to_hub``);
        checked to be possible (not offline) before anything is written.
    hub_token : str, optional
        Token for the push.
    config_fingerprint : str, optional
        Fingerprint of the configuration fields that shape the output, recorded in ``meta.json``;
        default ``config_digest`` of ``config`` (every field). A caller passes its own when
        some fields (progress bars, retention) do not change what is published.
    skip_unchanged : bool, default False
        Publish nothing when ``fingerprint`` and the configuration fingerprint equal those of the
        latest version (``unchanged_version``): the result then has ``unchanged=True`` and
        names that version. Checked holding the name's lock, so two runs racing on the same
        data publish once. Needs ``fingerprint``.
    keep : int, optional
        Retention: after publishing (or skipping), keep only the ``keep`` newest versions of the
        name (``prune_versions``); the version ``LATEST`` points to is never deleted.

    Returns
    -------
    Published

    Raises
    ------
    InvalidInputError
        ``version`` exists, a name is not a safe folder name, ``keep`` is below 1,
        ``skip_unchanged`` without a ``fingerprint``, or an argument is malformed.
    ValidationFailedError
        A validation report did not pass; nothing is written.
    HubPushError
        ``push_to_hub_repo`` given while offline (nothing written), or the push failed (the local
        version stays published).

    Notes
    -----
    An error after the rename (while replacing ``LATEST``) leaves the new version published but
    ``LATEST`` on the previous one; it is logged and re-raised.

    Examples
    --------
    Four input rows, row 2 dropped; the version is read back with ``load_published``:

    >>> import tempfile
    >>> import datasets, pandas as pd
    >>> from influence_stage.publish.read import load_published
    >>> from influence_stage.publish.versions import publish
    >>> cleaned = datasets.Dataset.from_dict({"x": [0.0, 1.0, 3.0], "label": ["a", "b", "a"], "row_id": [0, 1, 3]})
    >>> manifest = pd.DataFrame({
    ...     "row_id": [0, 1, 2, 3], "score": [0.1, 0.2, 0.9, 0.3], "gex_influence": [0.1, 0.2, 0.9, 0.3],
    ...     "label_quality": [0.9, 0.8, 0.1, 0.7], "is_issue": [False, False, True, False],
    ...     "action": ["keep", "keep", "drop", "keep"], "given_label": ["a", "b", "b", "a"],
    ...     "suggested_label": ["a", "b", "a", "a"], "weight": [1.0] * 4})
    >>> pub = publish(cleaned, manifest, root=tempfile.mkdtemp(), name="toy")
    >>> pub.version, "data.parquet" in pub.files, "manifest.parquet" in pub.files
    ('v0001', True, True)
    """
    if not isinstance(cleaned_ds, datasets.Dataset):
        raise InvalidTypeError(f"cleaned_ds must be a datasets.Dataset; found {type(cleaned_ds).__name__}.")
    if not isinstance(manifest, pd.DataFrame):
        raise InvalidTypeError(f"manifest must be a pandas DataFrame; found {type(manifest).__name__}.")
    if ROW_ID not in manifest.columns:
        raise InvalidInputError(
            f"manifest has no {ROW_ID!r} column; found {list(manifest.columns)}. Expected one row per input row."
        )
    check_safe_name(name, "name")
    if version is not None:
        check_safe_name(version, "version")
    if fingerprint is not None and not isinstance(fingerprint, str):
        raise InvalidTypeError(f"fingerprint must be a string; found {type(fingerprint).__name__}.")
    if config_fingerprint is not None and not isinstance(config_fingerprint, str):
        raise InvalidTypeError(f"config_fingerprint must be a string; found {type(config_fingerprint).__name__}.")
    if skip_unchanged and fingerprint is None:
        raise InvalidInputError(
            "skip_unchanged=True needs the dataset's fingerprint to compare with the latest version; found "
            "fingerprint=None. Fix: pass fingerprint=influence_stage.data.fingerprint.dataset_fingerprint(dataset), "
            "or skip_unchanged=False."
        )
    if keep is not None:
        check_keep(keep)
    reports = _check_reports(validation_reports)
    report_source = _report_source(report_html)
    extras = _check_extra_files(extra_files)
    config_data = store.json_ready({} if config is None else config, "config")
    if not isinstance(config_data, dict):
        raise InvalidTypeError(f"config must be a mapping; found {type(config).__name__}.")
    class_list = check_classes(manifest, classes, class_names)
    summary_data = store.json_ready({} if summary is None else summary, "summary")
    config_fp = config_digest(config_data) if config_fingerprint is None else config_fingerprint
    if push_to_hub_repo is not None:
        check_hub_available(push_to_hub_repo)

    from influence_stage._version import __version__

    base = Path(root) / name
    base.mkdir(parents=True, exist_ok=True)
    with store.locked(base):
        store.remove_debris(base)
        if skip_unchanged:
            same = unchanged_held(base, name, fingerprint, config_fp)
            if same is not None:
                removed = prune_held(base, keep) if keep is not None else ()
                logger.info("%s is unchanged since %s (same data and configuration); nothing published.", name,
                            same)
                return Published(path=base / same, version=same, name=name,
                                 files=tuple(store.files_under(base / same)), unchanged=True, removed=removed)
        version = version or next_version(base)
        final = base / version
        if final.exists():
            raise InvalidInputError(
                f"version {version!r} of {name!r} already exists at {str(final)!r}; published versions are never "
                "overwritten. Fix: pass another version or omit it for the next free one."
            )
        tmp = base / f"{TMP_PREFIX}{version}-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            store.write_owner(tmp)  # the next publish removes this folder only once this process is gone
            flat = flat_dataset(cleaned_ds)  # a view would be written one gathered row at a time
            flat.save_to_disk(str(tmp / DATASET_DIR))
            flat.to_parquet(str(tmp / DATA_PARQUET))
            del flat
            manifest.to_parquet(tmp / MANIFEST_PARQUET, index=False)
            validation: dict[str, Any] = {}
            if reports:
                (tmp / VALIDATION_DIR).mkdir()
            for report in reports:
                (tmp / VALIDATION_DIR / f"{report.suite}.json").write_text(report.to_json(), encoding="utf-8")
                if data_docs:
                    from influence_stage.quality import ValidationReport, render_data_docs

                    if isinstance(report, ValidationReport):
                        render_data_docs(report, tmp / VALIDATION_DIR)
                validation[report.suite] = {"success": bool(report.success),
                                            "suite_version": getattr(report, "suite_version", None)}
            if isinstance(report_source, Path):
                shutil.copyfile(report_source, tmp / REPORT_HTML)
            elif report_source is not None:
                (tmp / REPORT_HTML).write_text(report_source, encoding="utf-8")
            store.write_json(tmp / CONFIG_JSON, config_data)
            for rel, content in extras.items():
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(content, Path):
                    shutil.copyfile(content, target)
                else:
                    target.write_bytes(content)
            meta: dict[str, Any] = {
                "name": name,
                "version": version,
                "created_utc": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
                "package": "influence_stage",
                "package_version": __version__,
                "rows_in": int(len(manifest)),
                "rows_out": int(cleaned_ds.num_rows),
                "actions": action_counts(manifest),
                "flagged": flagged_count(manifest),
                "fingerprint": fingerprint,
                "config_fingerprint": config_fp,
                **class_list,
                "summary": summary_data,
                "columns": list(cleaned_ds.column_names),
                "validation": validation,
            }
            (tmp / CARD_MD).write_text(dataset_card(meta, cleaned_ds.features, manifest), encoding="utf-8")
            (tmp / OWNER_FILE).unlink()  # not part of the version
            meta["files"] = {rel: {"bytes": (tmp / rel).stat().st_size, "sha256": store.sha256(tmp / rel)}
                             for rel in store.files_under(tmp)}
            store.write_json(tmp / META_JSON, meta)
            store.fsync_tree(tmp)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        store.fsync_dir(base)
        try:
            store.write_latest(base, version)
        except BaseException:
            logger.error("Published %s %s at %s but could not move %s to it.", name, version, final, LATEST)
            raise
        removed = prune_held(base, keep) if keep is not None else ()
    published = Published(path=final, version=version, name=name, files=tuple(store.files_under(final)),
                          removed=removed)
    logger.info("Published %s %s at %s: %d rows in, %d rows out.", name, version, final, len(manifest),
                cleaned_ds.num_rows)
    if push_to_hub_repo is not None:
        push_to_hub(published, push_to_hub_repo, token=hub_token)
    return published

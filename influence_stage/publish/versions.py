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
            <extra files>      caller's extra files
            meta.json          written last: version, UTC time, row counts, fingerprint, package
                               version, the class list (code → label value), the run's summary,
                               size and sha256 of every other file

Atomicity: everything is written into ``<root>/<name>/.tmp-<version>-<uuid>`` (same parent, same
file system) and the folder is ``os.rename``-d into place, so a version folder is either complete
or absent. Any exception before the rename removes the temporary folder; previous versions and
``LATEST`` are untouched. A publish killed outright (``kill -9``) leaves its temporary folder; it
holds an owner file (:data:`OWNER_FILE`: pid, host, process start) and the next publish of the
name removes every temporary folder whose owner is no longer running (:func:`list_debris` lists
them). ``LATEST`` is replaced last (temporary file + ``os.replace``). An existing
version is never overwritten. Publishers of the same name are serialised by an exclusive lock on
``.lock`` held from choosing the version to moving ``LATEST``.

Scheduled runs: ``publish(skip_unchanged=True)`` publishes nothing when the dataset fingerprint
and the configuration fingerprint (:func:`config_digest`) equal those the latest version recorded
in ``meta.json`` (checked holding the lock, so two runs on the same data publish once), and
``keep=N`` (:func:`prune_versions`) deletes all but the N newest versions, never the one
``LATEST`` points to.

Pushing to the Hugging Face Hub is a separate, explicit step (:func:`push_to_hub`), run by
``publish`` only when ``push_to_hub_repo`` is given.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import datasets
import numpy as np
import pandas as pd

from influence_stage.data.arrow import ROW_ID, flat_dataset
from influence_stage.errors import (
    HubPushError,
    InfluenceStageError,
    InvalidInputError,
    InvalidTypeError,
    ValidationFailedError,
)

logger = logging.getLogger(__name__)

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
META_JSON = "meta.json"

_RESERVED = (DATASET_DIR, DATA_PARQUET, MANIFEST_PARQUET, VALIDATION_DIR, REPORT_HTML, CONFIG_JSON, META_JSON)
_AUTO_VERSION = re.compile(r"^v(\d+)$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_LOCK = ".lock"
_TMP_PREFIX = ".tmp-"

OWNER_FILE = ".owner.json"
"""Inside a temporary version folder: the publishing process (pid, host, start time), so the next
publish can tell debris of a killed publish from a publish in progress. Removed before the rename."""


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


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def _check_safe(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidTypeError(f"{what} must be a string; found {type(value).__name__}.")
    if not _SAFE_NAME.match(value) or value == LATEST:
        raise InvalidInputError(
            f"{what} {value!r} is not a valid folder name; expected letters, digits, '.', '_' or '-' "
            f"(not starting with '.' or '-', at most 128 characters, not {LATEST!r})."
        )
    return value


def check_name(name: Any) -> str:
    """The dataset name rule of :func:`publish` (a safe folder name), for checks before any work."""
    return _check_safe(name, "name")


def version_containing(path: str | os.PathLike[str]) -> Path | None:
    """The published version folder ``path`` is in (or is), or None.

    A version folder is one holding ``meta.json`` and ``manifest.parquet`` next to a ``LATEST`` or
    ``.lock`` of its parent: what :func:`publish` writes. ``path`` need not exist.
    """
    target = Path(path).expanduser().resolve()
    for folder in (target, *target.parents):
        if (folder / META_JSON).is_file() and (folder / MANIFEST_PARQUET).is_file():
            return folder
    return None


def _version_key(version: str) -> tuple[int, int, str]:
    m = _AUTO_VERSION.match(version)
    return (0, int(m.group(1)), version) if m else (1, 0, version)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _json_ready(value: Any, where: str) -> Any:
    """``value`` as plain JSON data; numpy scalars/arrays, paths, dataclasses and pydantic models converted."""
    if hasattr(value, "model_dump") and callable(value.model_dump):
        value = value.model_dump(mode="json")
    elif is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidTypeError(f"{where} keys must be strings; found key {k!r}.")
            out[k] = _json_ready(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [_json_ready(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise InvalidTypeError(
        f"{where} holds a {type(value).__name__} ({value!r}), which cannot be written as JSON; "
        "expected strings, numbers, booleans, None, lists and dicts."
    )


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened / synced
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_tree(folder: Path) -> None:
    """Flush every file and folder under ``folder`` to disk, so the rename publishes durable content."""
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_file():
            with path.open("rb") as f:
                os.fsync(f.fileno())
        else:
            _fsync_dir(path)
    _fsync_dir(folder)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder/.lock`` (no-op where ``fcntl`` is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with (folder / _LOCK).open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (Linux ``/proc``; None elsewhere), to tell a reused pid."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _write_owner(tmp: Path) -> None:
    import socket

    pid = os.getpid()
    owner = {"pid": pid, "host": socket.gethostname(), "start": _process_start(pid)}
    (tmp / OWNER_FILE).write_text(json.dumps(owner) + "\n", encoding="utf-8")


def _owner_running(folder: Path) -> bool:
    """True when the process named by ``folder``'s owner file may still be running (or cannot be told)."""
    import socket

    try:
        owner = json.loads((folder / OWNER_FILE).read_text(encoding="utf-8"))
        pid = int(owner["pid"])
    except FileNotFoundError:
        return False  # killed before it wrote its owner file (or by an older version)
    except (OSError, ValueError, KeyError, TypeError):
        return False  # a torn owner file: killed while writing it
    if owner.get("host") != socket.gethostname():
        return True  # another machine's process: cannot be checked from here
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    start = owner.get("start")
    return start is None or _process_start(pid) in (None, start)


def _debris(base: Path) -> list[Path]:
    """Temporary folders and ``LATEST`` files of publishes that were killed, oldest name first.

    A temporary version folder is debris when no running process owns it (:data:`OWNER_FILE`);
    a temporary ``LATEST`` file is debris whenever no publish holds the lock (callers of
    :func:`_remove_debris` hold it).
    """
    if not base.is_dir():
        return []
    found = []
    for path in sorted(base.iterdir()):
        if not path.name.startswith(_TMP_PREFIX):
            continue
        if path.is_dir() and not _owner_running(path):
            found.append(path)
        elif path.is_file() and path.name.startswith(f"{_TMP_PREFIX}{LATEST}-"):
            found.append(path)
    return found


def _remove_debris(base: Path) -> None:
    """Remove what killed publishes left (called holding the lock, so no publish of ``base`` is running)."""
    for path in _debris(base):
        logger.warning("Removing %s, left by a publish that was killed.", path)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def list_debris(root: str | os.PathLike[str], name: str) -> list[Path]:
    """Temporary folders / files that killed publishes of ``name`` left; the next publish removes them.

    Folders owned by a running publish are not listed.
    """
    return _debris(Path(root) / _check_safe(name, "name"))


def _write_latest(base: Path, version: str) -> None:
    tmp = base / f"{_TMP_PREFIX}{LATEST}-{uuid.uuid4().hex}"
    try:
        with tmp.open("w", encoding="utf-8") as f:
            f.write(version + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, base / LATEST)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(base)


def _check_extra_files(extra_files: Any) -> dict[str, bytes]:
    if extra_files is None:
        return {}
    if not isinstance(extra_files, Mapping):
        raise InvalidTypeError(
            f"extra_files must be a dict of relative path to bytes; found {type(extra_files).__name__}."
        )
    out = {}
    for rel, content in extra_files.items():
        if not isinstance(rel, str) or not rel:
            raise InvalidTypeError(f"extra_files keys must be non-empty relative paths; found {rel!r}.")
        if not isinstance(content, (bytes, bytearray, memoryview)):
            raise InvalidTypeError(f"extra_files[{rel!r}] must be bytes; found {type(content).__name__}.")
        pure = PurePosixPath(rel.replace("\\", "/"))
        hidden = any(part.startswith(".") for part in pure.parts)  # ".." included
        if not pure.parts or pure.is_absolute() or hidden or pure.parts[0] in _RESERVED:
            raise InvalidInputError(
                f"extra_files path {rel!r} must be relative, without '..' or hidden parts, and must not be "
                f"one of the published files {list(_RESERVED)}."
            )
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
        _check_safe(report.suite, "validation report suite name")
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
                "report_html given as str must be the HTML text (e.g. from report.build_report); "
                f"found {report_html[:60]!r}. Fix: pass a pathlib.Path to copy a file."
            )
        return report_html
    raise InvalidTypeError(
        f"report_html must be HTML text (str) or a file path (Path); found {type(report_html).__name__}."
    )


def _next_version(base: Path) -> str:
    numbers_ = [int(m.group(1)) for p in base.iterdir() if p.is_dir() and (m := _AUTO_VERSION.match(p.name))]
    return f"v{max(numbers_, default=0) + 1:04d}"


def _action_counts(manifest: pd.DataFrame) -> dict[str, int] | None:
    if "action" not in manifest.columns:
        return None
    counts = manifest["action"].astype(object).value_counts(dropna=False)
    return {str(k): int(v) for k, v in counts.items()}


_LABEL_COLUMNS = ("given_label", "suggested_label")


def labelled_manifest(table: pd.DataFrame, encoding: Any) -> pd.DataFrame:
    """The decisions table as it is published: label codes replaced by the input's label values.

    ``decisions.decide``'s table holds class codes ``0..K-1`` in ``given_label`` / ``suggested_label``;
    the published ``manifest.parquet`` holds the values of the input's label column instead, with
    its dtype (``LabelEncoding.decode``): ints like ``{0, 5, 7}``, strings, bools. For a
    ``ClassLabel`` column those are its stored ints, as in ``data.parquet``; its names are in
    ``meta.json`` (``class_names``). Other columns are unchanged.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per input row, with ``given_label`` and ``suggested_label`` codes.
    encoding : LabelEncoding
        The encoding the codes come from.

    Returns
    -------
    pandas.DataFrame
        A copy, same rows and columns.
    """
    if not isinstance(table, pd.DataFrame):
        raise InvalidTypeError(f"table must be a pandas DataFrame; found {type(table).__name__}.")
    out = table.copy()
    for column in _LABEL_COLUMNS:
        if column not in out.columns:
            raise InvalidInputError(f"the decisions table has no {column!r} column; found {list(out.columns)}.")
        out[column] = encoding.decode(out[column].to_numpy())
    return out


def _check_classes(manifest: pd.DataFrame, classes: Any, class_names: Any) -> dict[str, Any]:
    """``{"classes": [...], "class_names": [...]}`` for meta.json, after checking the manifest uses them."""
    if classes is None:
        return {}
    values = _json_ready(list(classes), "classes")
    names = [str(v) for v in values] if class_names is None else [str(n) for n in class_names]
    if len(names) != len(values):
        raise InvalidInputError(f"class_names has {len(names)} names for {len(values)} classes; expected one each.")
    known = set(values)
    for column in _LABEL_COLUMNS:
        if column not in manifest.columns:
            continue
        found = [v.item() if isinstance(v, np.generic) else v for v in pd.unique(manifest[column])]
        unknown = [v for v in found if v not in known]
        if unknown:
            raise InvalidInputError(
                f"manifest column {column!r} holds {unknown[:5]!r}, not in the classes {values[:10]!r}; expected "
                "the input's label values. Fix: publish publish.labelled_manifest(table, encoding), not the codes."
            )
    return {"classes": values, "class_names": names}


def manifest_codes(manifest: pd.DataFrame, meta: Mapping[str, Any]) -> pd.DataFrame:
    """A published manifest with its label values turned back into class codes ``0..K-1``.

    The inverse of :func:`labelled_manifest`, through ``meta.json``'s ``classes``; a version
    without ``classes`` (published before manifests held label values) is returned as it is.

    Raises
    ------
    InvalidInputError
        A label value that is not one of ``meta["classes"]``.
    """
    classes = meta.get("classes")
    if classes is None:
        return manifest
    index = {v: k for k, v in enumerate(classes)}
    out = manifest.copy()
    for column in _LABEL_COLUMNS:
        values = [v.item() if isinstance(v, np.generic) else v for v in out[column].tolist()]
        unknown = [v for v in values if v not in index]
        if unknown:
            raise InvalidInputError(
                f"published manifest column {column!r} holds {unknown[0]!r}, not one of the classes in meta.json "
                f"{classes[:10]!r}; the version is damaged. Fix: re-publish it."
            )
        out[column] = np.asarray([index[v] for v in values], dtype=np.int64)
    return out


# --------------------------------------------------------------------------------------------------
# publish / read
# --------------------------------------------------------------------------------------------------


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
    extra_files: Mapping[str, bytes] | None = None,
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
        ``report.html``: a ``str`` is the HTML text (e.g. from ``report.build_report``); a path
        is a file, copied.
    extra_files : dict of str to bytes, optional
        More files, by relative path (no ``..``, no hidden parts, no reserved names).
    fingerprint : str, optional
        The input dataset's fingerprint, recorded in ``meta.json``.
    classes : sequence, optional
        The label value of each class code ``0..K-1`` (``LabelEncoding.values``), recorded in
        ``meta.json`` as ``classes``. When given, the manifest's ``given_label`` and
        ``suggested_label`` must hold these values (:func:`labelled_manifest`), not codes.
    class_names : sequence of str, optional
        The class names in code order (``LabelEncoding.names``), recorded as ``class_names``.
    summary : mapping, optional
        The run's summary (counts, threshold, column roles...), recorded as ``summary``.
    data_docs : bool, default True
        Also write Great Expectations Data Docs HTML next to each validation JSON.
    push_to_hub_repo : str, optional
        After publishing locally, push the version to this Hub dataset repo (:func:`push_to_hub`);
        checked to be possible (not offline) before anything is written.
    hub_token : str, optional
        Token for the push.
    config_fingerprint : str, optional
        Fingerprint of the configuration fields that shape the output, recorded in ``meta.json``;
        default :func:`config_digest` of ``config`` (every field). A caller passes its own when
        some fields (progress bars, retention) do not change what is published.
    skip_unchanged : bool, default False
        Publish nothing when ``fingerprint`` and the configuration fingerprint equal those of the
        latest version (:func:`unchanged_version`): the result then has ``unchanged=True`` and
        names that version. Checked holding the name's lock, so two runs racing on the same
        data publish once. Needs ``fingerprint``.
    keep : int, optional
        Retention: after publishing (or skipping), keep only the ``keep`` newest versions of the
        name (:func:`prune_versions`); the version ``LATEST`` points to is never deleted.

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
    """
    if not isinstance(cleaned_ds, datasets.Dataset):
        raise InvalidTypeError(f"cleaned_ds must be a datasets.Dataset; found {type(cleaned_ds).__name__}.")
    if not isinstance(manifest, pd.DataFrame):
        raise InvalidTypeError(f"manifest must be a pandas DataFrame; found {type(manifest).__name__}.")
    if ROW_ID not in manifest.columns:
        raise InvalidInputError(
            f"manifest has no {ROW_ID!r} column; found {list(manifest.columns)}. Expected one row per input row."
        )
    _check_safe(name, "name")
    if version is not None:
        _check_safe(version, "version")
    if fingerprint is not None and not isinstance(fingerprint, str):
        raise InvalidTypeError(f"fingerprint must be a string; found {type(fingerprint).__name__}.")
    if config_fingerprint is not None and not isinstance(config_fingerprint, str):
        raise InvalidTypeError(f"config_fingerprint must be a string; found {type(config_fingerprint).__name__}.")
    if skip_unchanged and fingerprint is None:
        raise InvalidInputError(
            "skip_unchanged=True needs the dataset's fingerprint to compare with the latest version; found "
            "fingerprint=None. Fix: pass fingerprint=pipeline.dataset_fingerprint(dataset), or skip_unchanged=False."
        )
    if keep is not None:
        _check_keep(keep)
    reports = _check_reports(validation_reports)
    report_source = _report_source(report_html)
    extras = _check_extra_files(extra_files)
    config_data = _json_ready({} if config is None else config, "config")
    if not isinstance(config_data, dict):
        raise InvalidTypeError(f"config must be a mapping; found {type(config).__name__}.")
    class_list = _check_classes(manifest, classes, class_names)
    summary_data = _json_ready({} if summary is None else summary, "summary")
    config_fp = config_digest(config_data) if config_fingerprint is None else config_fingerprint
    if push_to_hub_repo is not None:
        _check_hub_available(push_to_hub_repo)

    from influence_stage import __version__

    base = Path(root) / name
    base.mkdir(parents=True, exist_ok=True)
    with _locked(base):
        _remove_debris(base)
        if skip_unchanged:
            same = _unchanged(base, name, fingerprint, config_fp)
            if same is not None:
                removed = _prune(base, keep) if keep is not None else ()
                logger.info("%s is unchanged since %s (same data and configuration); nothing published.", name,
                            same)
                return Published(path=base / same, version=same, name=name,
                                 files=tuple(_files_under(base / same)), unchanged=True, removed=removed)
        version = version or _next_version(base)
        final = base / version
        if final.exists():
            raise InvalidInputError(
                f"version {version!r} of {name!r} already exists at {str(final)!r}; published versions are never "
                "overwritten. Fix: pass another version or omit it for the next free one."
            )
        tmp = base / f"{_TMP_PREFIX}{version}-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            _write_owner(tmp)  # the next publish removes this folder only once this process is gone
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
            _write_json(tmp / CONFIG_JSON, config_data)
            for rel, content in extras.items():
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
            (tmp / OWNER_FILE).unlink()  # not part of the version
            files = {rel: {"bytes": (tmp / rel).stat().st_size, "sha256": _sha256(tmp / rel)}
                     for rel in _files_under(tmp)}
            meta = {
                "name": name,
                "version": version,
                "created_utc": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
                "package": "influence_stage",
                "package_version": __version__,
                "rows_in": int(len(manifest)),
                "rows_out": int(cleaned_ds.num_rows),
                "actions": _action_counts(manifest),
                "fingerprint": fingerprint,
                "config_fingerprint": config_fp,
                **class_list,
                "summary": summary_data,
                "columns": list(cleaned_ds.column_names),
                "validation": validation,
                "files": files,
            }
            _write_json(tmp / META_JSON, meta)
            _fsync_tree(tmp)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(base)
        try:
            _write_latest(base, version)
        except BaseException:
            logger.error("Published %s %s at %s but could not move %s to it.", name, version, final, LATEST)
            raise
        removed = _prune(base, keep) if keep is not None else ()
    published = Published(path=final, version=version, name=name, files=tuple(_files_under(final)),
                          removed=removed)
    logger.info("Published %s %s at %s: %d rows in, %d rows out.", name, version, final, len(manifest),
                cleaned_ds.num_rows)
    if push_to_hub_repo is not None:
        push_to_hub(published, push_to_hub_repo, token=hub_token)
    return published


def config_digest(config: Mapping[str, Any]) -> str:
    """Fingerprint of a configuration mapping: sha256 hex of its canonical JSON (sorted keys).

    Equal for equal values however the mapping was built (key order, numpy scalars, pydantic
    models); what :func:`publish` records as ``config_fingerprint`` unless told otherwise.

    Parameters
    ----------
    config : mapping or pydantic model or dataclass

    Returns
    -------
    str
        64 hex digits.
    """
    data = _json_ready(config, "config")
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


def _unchanged(base: Path, name: str, fingerprint: str | None, config_fp: str) -> str | None:
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
        The input dataset's fingerprint (``pipeline.dataset_fingerprint``).
    config : mapping, optional
        The configuration as passed to :func:`publish`; its :func:`config_digest` is compared.
    config_fingerprint : str, optional
        Or the configuration fingerprint itself (as passed to :func:`publish`); one of the two.

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
    base = Path(root) / _check_safe(name, "name")
    config_fp = config_digest(config) if config is not None else str(config_fingerprint)
    return _unchanged(base, name, fingerprint, config_fp)


def _check_keep(keep: Any) -> int:
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


def _prune(base: Path, keep: int) -> tuple[str, ...]:
    """Delete all but the ``keep`` newest versions under ``base`` (caller holds the lock); LATEST's stays."""
    versions = list_versions(base.parent, base.name)
    try:
        latest = latest_version(base.parent, base.name)
    except InvalidInputError:  # a damaged LATEST: keep everything rather than guess which one is live
        logger.warning("%s/%s is damaged; retention deletes nothing.", base, LATEST)
        return ()
    # newest first: by the time meta.json records, then by version number for equal times
    newest = sorted(versions, key=lambda v: (_created(base / v), _version_key(v)), reverse=True)
    doomed = [v for v in newest[keep:] if v != latest]
    removed = []
    for version in sorted(doomed, key=_version_key):
        # renamed out of sight first (atomic), so a reader never sees half a version; a delete cut
        # short leaves an ownerless .tmp- folder, which the next publish removes as debris
        trash = base / f"{_TMP_PREFIX}removed-{version}-{uuid.uuid4().hex}"
        os.rename(base / version, trash)
        shutil.rmtree(trash, ignore_errors=True)
        removed.append(version)
        logger.info("Removed %s %s (retention: keep %d).", base.name, version, keep)
    if removed:
        _fsync_dir(base)
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
    keep = _check_keep(keep)
    base = Path(root) / _check_safe(name, "name")
    if not base.is_dir():
        return []
    with _locked(base):
        return list(_prune(base, keep))


def list_versions(root: str | os.PathLike[str], name: str) -> list[str]:
    """Published versions of ``name``, oldest first (``vNNNN`` by number, then other names sorted).

    Temporary folders of publishes in progress (or killed) are not listed.
    """
    base = Path(root) / _check_safe(name, "name")
    if not base.is_dir():
        return []
    versions = [p.name for p in base.iterdir()
                if p.is_dir() and not p.name.startswith(".") and (p / META_JSON).is_file()]
    return sorted(versions, key=_version_key)


def latest_version(root: str | os.PathLike[str], name: str) -> str | None:
    """The version ``LATEST`` points to, or None when nothing was published.

    Raises
    ------
    InvalidInputError
        ``LATEST`` names a version folder that does not exist.
    """
    base = Path(root) / _check_safe(name, "name")
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
        (``meta["classes"]`` maps codes to them; :func:`manifest_codes` turns them back).
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
            if file.stat().st_size != info["bytes"] or _sha256(file) != info["sha256"]:
                raise InvalidInputError(
                    f"published file {rel!r} in {str(folder)!r} differs from meta.json (size or sha256); "
                    "the version was modified after publishing."
                )
    dataset = datasets.load_from_disk(str(folder / DATASET_DIR))
    manifest = pd.read_parquet(folder / MANIFEST_PARQUET)
    return dataset, manifest, meta


# --------------------------------------------------------------------------------------------------
# hub
# --------------------------------------------------------------------------------------------------


def _hub_offline() -> bool:
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}
    return env or bool(constants.HF_HUB_OFFLINE)


def _hub_token() -> str | None:
    from huggingface_hub import get_token

    return get_token()


def _check_hub_available(repo_id: Any) -> None:
    if not isinstance(repo_id, str) or not repo_id.strip():
        raise InvalidTypeError(f"repo_id must be a non-empty string like 'user/dataset'; found {repo_id!r}.")
    if _hub_offline():
        raise HubPushError(
            f"cannot push to the Hugging Face Hub repo {repo_id!r}: offline mode is on (HF_HUB_OFFLINE=1). "
            "Fix: unset HF_HUB_OFFLINE in an environment with network access, or publish locally only."
        )


def check_hub_push(repo_id: Any, token: str | None = None) -> None:
    """Whether :func:`push_to_hub` can work at all, checked before any work: online, a token.

    Raises
    ------
    HubPushError
        Offline mode, or no token (neither ``token`` nor ``HF_TOKEN`` / ``huggingface-cli login``).
    """
    _check_hub_available(repo_id)
    if token is None and _hub_token() is None:
        raise HubPushError(
            f"cannot push to the Hugging Face Hub repo {repo_id!r}: no Hugging Face token found. "
            "Fix: set HF_TOKEN or run `huggingface-cli login`, or publish locally only (no --push-to-hub)."
        )


def push_to_hub(published: Published, repo_id: str, *, token: str | None = None, private: bool | None = None) -> str:
    """Upload a published version to a Hugging Face Hub dataset repo.

    The version folder goes to ``<name>/<version>/`` in the repo (``dataset/`` Arrow files left
    out: ``data.parquet`` holds the same rows). The repo is created when missing. Nothing is
    written locally.

    Parameters
    ----------
    published : Published
        From :func:`publish`.
    repo_id : str
        ``"user/dataset"``.
    token : str, optional
        Hub token; default the logged-in user's.
    private : bool, optional
        Visibility of a newly created repo.

    Returns
    -------
    str
        The commit URL.

    Raises
    ------
    HubPushError
        Offline (``HF_HUB_OFFLINE=1``), or the Hub refused or could not be reached.
    """
    if not isinstance(published, Published):
        raise InvalidTypeError(f"published must be a Published; found {type(published).__name__}.")
    _check_hub_available(repo_id)
    if not (published.path / META_JSON).is_file():
        raise InvalidInputError(f"{str(published.path)!r} is not a published version (no {META_JSON}).")
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="dataset", exist_ok=True, private=private)
        info = api.upload_folder(
            repo_id=repo_id,
            repo_type="dataset",
            folder_path=published.path,
            path_in_repo=f"{published.name}/{published.version}",
            commit_message=f"Publish {published.name} {published.version}",
            ignore_patterns=[f"{DATASET_DIR}/*"],
        )
    except Exception as exc:
        raise HubPushError(
            f"pushing {published.name} {published.version} ({str(published.path)!r}) to {repo_id!r} failed: {exc}. "
            "The local version is published; retry push_to_hub when the Hub is reachable."
        ) from exc
    url = str(getattr(info, "commit_url", info))
    logger.info("Pushed %s %s to %s: %s", published.name, published.version, repo_id, url)
    return url

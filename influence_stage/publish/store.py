"""Storage atomics of publishing: durable writes, the publish lock, owner files and debris, ``LATEST``.

A version is written into a temporary folder ``<root>/<name>/.tmp-<version>-<uuid>`` (same parent,
same file system), flushed (``fsync_tree``) and ``os.rename``-d into place, so a version folder
is either complete or absent. A publish killed outright (``kill -9``) leaves its temporary folder;
it holds an owner file (``OWNER_FILE``: pid, host, process
start), and the next publish of the name removes every temporary folder whose owner is no longer
running (``remove_debris``; ``list_debris`` lists them). ``LATEST`` is replaced through a
temporary file and ``os.replace`` (``write_latest``). Publishers of one name are serialised by
an exclusive lock on its ``.lock`` file (``locked``).

This module also owns the checksums (``sha256``) and the JSON form of what is written
(``json_ready``, ``write_json``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import socket
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

from influence_stage._checks import check_safe_name
from influence_stage.errors import InvalidTypeError
from influence_stage.publish.layout import LATEST, LOCK_FILE, OWNER_FILE, TMP_PREFIX

logger = logging.getLogger(__name__)


def sha256(path: Path) -> str:
    """The ``sha256`` hex digest of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def files_under(folder: Path) -> list[str]:
    """Every file under ``folder`` (hidden ones too), as sorted relative POSIX paths."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def json_ready(value: Any, where: str) -> Any:
    """``value`` as plain JSON data; numpy scalars/arrays, paths, dataclasses and pydantic models converted.

    Raises
    ------
    InvalidTypeError
        A key that is not a string, or a value that has no JSON form; ``where`` names it.
    """
    if hasattr(value, "model_dump") and callable(value.model_dump):
        value = value.model_dump(mode="json")
    elif is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidTypeError(f"{where} keys must be strings; found key {k!r}.")
            out[k] = json_ready(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [json_ready(v, f"{where}[{i}]") for i, v in enumerate(value)]
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


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON with sorted keys (the form of every published JSON file)."""
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries to disk (a no-op where the file system does not allow it)."""
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened / synced
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_tree(folder: Path) -> None:
    """Flush every file and folder under ``folder`` to disk, so the rename publishes durable content."""
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_file():
            with path.open("rb") as f:
                os.fsync(f.fileno())
        else:
            fsync_dir(path)
    fsync_dir(folder)


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder/.lock`` (no-op where ``fcntl`` is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with (folder / LOCK_FILE).open("a") as handle:
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


def write_owner(tmp: Path) -> None:
    """Write the owner file of a temporary version folder: this process's pid, host and start time."""
    pid = os.getpid()
    owner = {"pid": pid, "host": socket.gethostname(), "start": _process_start(pid)}
    (tmp / OWNER_FILE).write_text(json.dumps(owner) + "\n", encoding="utf-8")


def _owner_running(folder: Path) -> bool:
    """True when the process named by ``folder``'s owner file may still be running (or cannot be told)."""
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

    A temporary version folder is debris when no running process owns it (``OWNER_FILE``);
    a temporary ``LATEST`` file is debris whenever no publish holds the lock (callers of
    ``remove_debris`` hold it).
    """
    if not base.is_dir():
        return []
    found = []
    for path in sorted(base.iterdir()):
        if not path.name.startswith(TMP_PREFIX):
            continue
        if path.is_dir() and not _owner_running(path):
            found.append(path)
        elif path.is_file() and path.name.startswith(f"{TMP_PREFIX}{LATEST}-"):
            found.append(path)
    return found


def remove_debris(base: Path) -> None:
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
    return _debris(Path(root) / check_safe_name(name, "name"))


def write_latest(base: Path, version: str) -> None:
    """Point ``base/LATEST`` at ``version``: a temporary file, flushed, then ``os.replace``-d."""
    tmp = base / f"{TMP_PREFIX}{LATEST}-{uuid.uuid4().hex}"
    try:
        with tmp.open("w", encoding="utf-8") as f:
            f.write(version + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, base / LATEST)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(base)

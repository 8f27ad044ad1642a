"""A loss matrix on disk that resumes: a ``.npy`` memmap, one done-flag per member, a manifest.

Layout of a store folder::

    manifest.json        key, n_rows, n_members, dtype, package version
    loss_matrix.npy      (n_rows, n_members) float32, column-major, written one member column at a time
    done/member-00007    one empty file per finished member

A member's column is written and flushed to disk before its flag is created (write a temporary
name, then rename), so a crash at any point leaves either a finished member with its flag or an
unfinished one without; a re-run evaluates only the members without a flag. The ``key`` names what
the matrix belongs to (a digest of the data and of the settings that change θ* and the members):
opening a store with another key or another shape is an error unless ``overwrite=True``, so a stale
matrix is never read as if it were current. Memory stays at one member column (``n_rows`` floats)
plus what the operating system pages in.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from influence_stage.errors import InvalidInputError

MANIFEST = "manifest.json"
MATRIX = "loss_matrix.npy"
DONE = "done"


class LossStore:
    """The loss matrix of one run under ``folder`` (created when missing).

    Parameters
    ----------
    folder : path
        The store's own folder.
    key : str
        What the matrix belongs to (data and configuration digest); must match an existing store.
    n_rows, n_members : int
        Shape of the matrix.
    overwrite : bool, default False
        Replace an existing store whose key or shape differs, instead of refusing it.
    """

    def __init__(self, folder: str | os.PathLike[str], *, key: str, n_rows: int, n_members: int,
                 overwrite: bool = False) -> None:
        if not key or not isinstance(key, str):
            raise InvalidInputError("a loss store needs a non-empty key (the data and configuration digest).")
        if n_rows < 1 or n_members < 1:
            raise InvalidInputError(f"a loss store needs at least one row and one member; found {n_rows} × {n_members}.")
        self.folder = Path(folder)
        self.key, self.n_rows, self.n_members = key, int(n_rows), int(n_members)
        if self.folder.exists() and not self.folder.is_dir():
            raise InvalidInputError(f"loss store {self.folder} is a file; expected a folder. Fix: point it elsewhere.")
        manifest = self.folder / MANIFEST
        if manifest.is_file():
            old = json.loads(manifest.read_text())
            same = (old.get("key"), old.get("n_rows"), old.get("n_members")) == (key, self.n_rows, self.n_members)
            if not same and not overwrite:
                raise InvalidInputError(
                    f"loss store {self.folder} belongs to another run (key {old.get('key')!r}, "
                    f"{old.get('n_rows')} × {old.get('n_members')}); this run is key {key!r}, "
                    f"{self.n_rows} × {self.n_members}. Fix: use another folder, or overwrite=True to replace it."
                )
            if not same:
                shutil.rmtree(self.folder)
        if not (self.folder / MANIFEST).is_file():
            self._create()
        self.matrix = np.load(self.folder / MATRIX, mmap_mode="r+")
        if self.matrix.shape != (self.n_rows, self.n_members) or self.matrix.dtype != np.float32:
            raise InvalidInputError(f"loss store {self.folder}: {MATRIX} has shape {self.matrix.shape} "
                                    f"{self.matrix.dtype}; expected ({self.n_rows}, {self.n_members}) float32. "
                                    "Fix: overwrite=True to rebuild it.")

    def _create(self) -> None:
        from influence_stage._version import __version__

        tmp = self.folder.with_name(self.folder.name + ".creating")
        if tmp.exists():
            shutil.rmtree(tmp)
        (tmp / DONE).mkdir(parents=True)
        # column-major: a member's column is one contiguous run of the file, so writing and flushing it
        # touches only its own pages (row-major, every column write would dirty the whole file)
        mm = np.lib.format.open_memmap(tmp / MATRIX, mode="w+", dtype=np.float32,
                                       shape=(self.n_rows, self.n_members), fortran_order=True)
        mm.flush()
        del mm
        (tmp / MANIFEST).write_text(json.dumps({"key": self.key, "n_rows": self.n_rows, "n_members": self.n_members,
                                                "dtype": "float32", "package_version": __version__}, indent=1))
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        if self.folder.exists():  # an empty folder given by the caller
            self.folder.rmdir()
        os.replace(tmp, self.folder)

    def _flag(self, j: int) -> Path:
        return self.folder / DONE / f"member-{j:05d}"

    def done(self) -> list[int]:
        """Members whose columns are on disk, in order."""
        return [j for j in range(self.n_members) if self._flag(j).is_file()]

    def pending(self) -> list[int]:
        """Members still to evaluate, in order."""
        return [j for j in range(self.n_members) if not self._flag(j).is_file()]

    def write(self, j: int, column: np.ndarray) -> None:
        """Store member ``j``'s losses ``(n_rows,)``: the column is flushed first, then flagged."""
        if not 0 <= j < self.n_members:
            raise InvalidInputError(f"member {j} is outside 0..{self.n_members - 1}.")
        column = np.asarray(column, dtype=np.float32)
        if column.shape != (self.n_rows,):
            raise InvalidInputError(f"member {j}: expected {self.n_rows} losses, found shape {column.shape}.")
        self.matrix[:, j] = column
        self.matrix.flush()
        flag = self._flag(j)
        tmp = flag.with_name(flag.name + ".tmp")
        tmp.write_bytes(b"")
        os.replace(tmp, flag)

    def gather(self, parts: Sequence["LossStore"]) -> list[int]:
        """Fill pending members from row blocks: ``parts`` are stores of consecutive row ranges.

        A pending member that every part has finished is copied here (its column is the parts'
        columns one after another) and gets its done-flag; the others stay pending. Memory: one
        member column.

        Returns
        -------
        list of int
            The members copied.
        """
        if sum(p.n_rows for p in parts) != self.n_rows or any(p.n_members != self.n_members for p in parts):
            raise InvalidInputError(f"loss store {self.folder}: the parts hold {sum(p.n_rows for p in parts)} rows × "
                                    f"{sorted({p.n_members for p in parts})} members; expected {self.n_rows} × "
                                    f"{self.n_members}.")
        finished = [set(p.done()) for p in parts]
        copied = []
        for j in self.pending():
            if all(j in done for done in finished):
                self.write(j, np.concatenate([np.asarray(p.matrix[:, j]) for p in parts]))
                copied.append(j)
        return copied

    def read(self) -> np.ndarray:
        """The whole matrix (a read-only memmap); every member must be done."""
        missing = self.pending()
        if missing:
            raise InvalidInputError(f"loss store {self.folder}: members {missing[:5]} are not done "
                                    f"({len(missing)} in all).")
        return np.load(self.folder / MATRIX, mmap_mode="r")


__all__ = ["LossStore"]

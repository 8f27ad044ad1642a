"""The run cache's folder marker: the stage writes it into a cache folder it creates, and only a marked
folder may be cleared.

A cleaning run (the flow, from the CLI, a deployment's worker or Python) marks its ``cache_dir``
when it creates it, or finds it empty, before anything is cached; ``influence-stage cache clear``
refuses any folder without the marker, so a user's folder is never deleted.
"""

from __future__ import annotations

import os
from pathlib import Path

MARKER = ".influence-stage-cache"
"""The file that marks a folder as a run cache created by the stage (its content says so in words)."""


def mark_cache_dir(folder: str | os.PathLike[str]) -> bool:
    """Mark ``folder`` as a stage-created cache: create it with ``MARKER`` when it does not exist or is
    empty; a folder that already holds other files is left unmarked (``cache clear`` will refuse it).

    Returns
    -------
    bool
        Whether ``folder`` carries the marker now.
    """
    path = Path(folder)
    marker = path / MARKER
    if marker.is_file():
        return True
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        return False
    path.mkdir(parents=True, exist_ok=True)
    marker.write_text("A run cache created by influence-stage; `influence-stage cache clear` may delete this "
                      "folder.\n", encoding="utf-8")
    return True


def is_marked(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` carries ``MARKER`` (a cache the stage created)."""
    return (Path(folder) / MARKER).is_file()


__all__ = ["MARKER", "is_marked", "mark_cache_dir"]

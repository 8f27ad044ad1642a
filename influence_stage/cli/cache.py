"""``influence-stage cache info | clear``: the run cache (``θ*``, members, loss matrices).

``clear`` deletes only a folder the stage created: a cleaning run writes ``MARKER`` into its
cache folder when it creates it (or finds it empty), before anything is cached. A folder without
the marker (a user's folder, the working directory, ``--cache-dir .``) is refused, exit 2, and
left as it is.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from influence_stage.cli.common import EXIT_OK
from influence_stage.orchestration.cache_folder import MARKER, is_marked, mark_cache_dir



def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``cache`` to the CLI's subparsers."""
    cache = sub.add_parser("cache", help="the run cache (θ*, members, loss matrices)")
    cache.add_argument("cache_command", choices=["clear", "info"], help="clear: delete the cache folder (only one "
                       f"the stage created, marked by {MARKER}); info: the count and size of its files")
    cache.add_argument("--cache-dir", default="runs/cache", help="the cache folder (default runs/cache)")
    return cache


def _refuse_unmarked(folder: Path) -> None:
    from influence_stage.errors import InvalidInputError

    here = Path.cwd().resolve()
    resolved = folder.resolve()
    if resolved in (here, *here.parents, Path.home().resolve()):
        raise InvalidInputError(f"--cache-dir {folder} is the working folder, one above it or the home folder; "
                                "refusing to delete it. Fix: pass the cache folder itself (default runs/cache).")
    if not is_marked(folder):
        raise InvalidInputError(f"--cache-dir {folder} was not created by influence-stage (no {MARKER} file in it); "
                                "refusing to delete it. Fix: pass the folder a run used as its cache, or delete "
                                "it yourself if you are sure.")


def run(args: argparse.Namespace) -> int:
    """``cache clear`` deletes a stage-created cache folder; ``cache info`` counts its files."""
    import shutil

    from influence_stage.errors import InvalidInputError

    folder = Path(args.cache_dir)
    if folder.exists() and not folder.is_dir():
        raise InvalidInputError(f"--cache-dir {folder} is a file, not a folder.")
    files = [f for f in folder.rglob("*") if f.is_file() and f.name != MARKER] if folder.is_dir() else []
    size = sum(f.stat().st_size for f in files)
    if args.cache_command == "info":
        print(f"{folder}: {len(files)} cached files, {size / 2**20:.1f} MiB")
        return EXIT_OK
    if folder.is_dir():
        _refuse_unmarked(folder)
        shutil.rmtree(folder)
    print(f"cleared {folder}: {len(files)} files, {size / 2**20:.1f} MiB")
    return EXIT_OK

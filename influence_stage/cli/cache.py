"""``influence-stage cache info | clear``: the run cache (θ*, members, loss matrices)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from influence_stage.cli.common import EXIT_OK


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``cache`` to the CLI's subparsers."""
    cache = sub.add_parser("cache", help="the run cache (θ*, members, loss matrices)")
    cache.add_argument("cache_command", choices=["clear", "info"], help="clear: delete the cached results; info: "
                       "their count and size")
    cache.add_argument("--cache-dir", default="runs/cache", help="the cache folder (default runs/cache)")
    return cache


def run(args: argparse.Namespace) -> int:
    """``cache clear`` deletes the cached results under ``--cache-dir``; ``cache info`` counts them."""
    import shutil

    from influence_stage.errors import InvalidInputError

    folder = Path(args.cache_dir)
    if folder.exists() and not folder.is_dir():
        raise InvalidInputError(f"--cache-dir {folder} is a file, not a folder.")
    files = [f for f in folder.rglob("*") if f.is_file()] if folder.is_dir() else []
    size = sum(f.stat().st_size for f in files)
    if args.cache_command == "info":
        print(f"{folder}: {len(files)} cached files, {size / 2**20:.1f} MiB")
        return EXIT_OK
    if folder.is_dir():
        shutil.rmtree(folder)
    print(f"cleared {folder}: {len(files)} files, {size / 2**20:.1f} MiB")
    return EXIT_OK

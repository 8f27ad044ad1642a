"""``influence-stage versions``: list the published versions of a dataset, and any debris of killed publishes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from influence_stage.cli.common import EXIT_OK


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``versions`` to the CLI's subparsers."""
    versions = sub.add_parser("versions", help="list the published versions of a dataset (date, rows in and "
                              "out, share flagged), and any debris of killed publishes")
    versions.add_argument("path", help="<root>/<name>")
    return versions


def describe(version: Path) -> str:
    """When a version was published, its rows in and out and the share flagged, from its ``meta.json``.

    E.g. ``2026-12-05 03:44 UTC  rows 150 -> 110  flagged 43 (28.7%)``; what ``meta.json`` lacks is left out.
    """
    import json

    try:
        meta = json.loads((version / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "(meta.json unreadable)"
    parts = []
    created = str(meta.get("created_utc") or "")
    if created:
        parts.append(created[:16].replace("T", " ") + " UTC")
    rows_in, rows_out, flagged = meta.get("rows_in"), meta.get("rows_out"), meta.get("flagged")
    if rows_in is not None and rows_out is not None:
        parts.append(f"rows {rows_in} -> {rows_out}")
    if flagged is not None and rows_in:
        parts.append(f"flagged {flagged} ({flagged / rows_in:.1%})")
    return "  ".join(parts)


def run(args: argparse.Namespace) -> int:
    """Run ``versions``: one line per version (date, rows in and out, share flagged; the latest marked),
    then the debris, if any."""
    from influence_stage.errors import InvalidInputError
    from influence_stage.publish.versions import latest_version, list_debris, list_versions

    base = Path(args.path)
    if not base.is_dir():
        raise InvalidInputError(f"{base} is not a folder; expected <root>/<name> of a published dataset.")
    found = list_versions(base.parent, base.name)
    latest = latest_version(base.parent, base.name) if found else None
    for v in found:
        line = f"{v:<6}  {describe(base / v)}".rstrip()
        print(f"{line}  (LATEST)" if v == latest else line)
    debris = list_debris(base.parent, base.name)
    if debris:
        print(f"debris: {', '.join(p.name for p in debris)} (left by killed publishes; removed by the next publish)")
    return EXIT_OK

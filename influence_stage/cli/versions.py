"""``influence-stage versions``: list the published versions of a dataset, and any debris of killed publishes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from influence_stage.cli.common import EXIT_OK


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``versions`` to the CLI's subparsers."""
    versions = sub.add_parser("versions", help="list the published versions of a dataset, and any debris of "
                              "killed publishes")
    versions.add_argument("path", help="<root>/<name>")
    return versions


def run(args: argparse.Namespace) -> int:
    """Run ``versions``: one line per version (the latest marked), then the debris, if any."""
    from influence_stage.errors import InvalidInputError
    from influence_stage.publish.versions import latest_version, list_debris, list_versions

    base = Path(args.path)
    if not base.is_dir():
        raise InvalidInputError(f"{base} is not a folder; expected <root>/<name> of a published dataset.")
    found = list_versions(base.parent, base.name)
    latest = latest_version(base.parent, base.name) if found else None
    for v in found:
        print(f"{v} (LATEST)" if v == latest else v)
    debris = list_debris(base.parent, base.name)
    if debris:
        print(f"debris: {', '.join(p.name for p in debris)} (left by killed publishes; removed by the next publish)")
    return EXIT_OK

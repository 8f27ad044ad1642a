"""``influence-stage import-reviews``: the reviewed labels of a review file, published as a new version.

From a published version (``--from <root>/<name>[/<version>]``), the reviewed labels become a new
version of the same name (``influence_stage.issues.reviews.publish_reviews``: atomic, under the
name's lock; its manifest marks the reviewed rows in ``reviewed`` / ``reviewed_label``, its
``meta.json`` names the review file). Reviewed rows the version dropped come back from ``--source``,
the data it was cleaned from. From a saved cleaner nothing is published (a saved cleaner is not a
published dataset): ``--out`` writes the table only.

The review file is Label Studio's JSON export, the CSV / Parquet issue file with a ``reviewed_label``
column, or Argilla records (JSON lines), by ``--format`` or the suffix (see
``influence_stage.issues.reviews``). ``--out`` also writes one row per reviewed row: ``row_id``,
``reviewed_label`` (the class code) and ``reviewed_label_name``, ``given_label`` / ``given_label_name``
and ``suggested_label_name`` from the version, and ``changed`` (the reviewed label differs from the
given one); CSV or Parquet by its suffix, atomically.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from influence_stage.cli.common import EXIT_OK

REVIEW_SUFFIXES = (".csv", ".parquet")
REVIEW_FORMATS = ("label-studio", "csv", "parquet", "argilla")
"""As ``influence_stage.issues.reviews.REVIEW_FORMATS`` (a test keeps them equal); declared here so
``import-reviews --help`` imports nothing heavy."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``import-reviews`` to the CLI's subparsers."""
    reviews = sub.add_parser("import-reviews", help="apply the reviewed labels of a review file (Label Studio JSON "
                             "export, CSV / Parquet issue file, Argilla records) as a new published version")
    reviews.add_argument("export", help="the review file: Label Studio's JSON export (.json), the issue file with a "
                         "reviewed_label column (.csv, .parquet), or Argilla records (.jsonl)")
    reviews.add_argument("--from", dest="origin", required=True, help="the published version the rows were exported "
                         "from (<root>/<name> for its latest); the new version is published beside it. A saved "
                         "cleaner: nothing is published, --out writes the table")
    reviews.add_argument("--format", choices=REVIEW_FORMATS, default=None,
                         help="the review file's format (default: by its suffix)")
    reviews.add_argument("--source", help="the data the version was cleaned from (a file or folder load_source "
                         "reads): reviewed rows the version dropped come back from it")
    reviews.add_argument("--label-column", default=None, help="label column of --source (default: the version's)")
    reviews.add_argument("--version", dest="new_version", default=None,
                         help="name of the new version (default: the next vNNNN)")
    reviews.add_argument("--out", default=None, help="also write the reviewed rows as a table: .csv or .parquet")
    reviews.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return reviews


def reviewed_table(export_path: str | Path, origin: str | Path, fmt: str | None = None) -> Any:
    """The reviewed labels joined to the version's given labels (see the module docstring)."""
    from influence_stage.cli.export import open_decisions
    from influence_stage.errors import InvalidInputError
    from influence_stage.issues.reviews import read_reviews

    table, names, _ = open_decisions(origin)
    reviews = read_reviews(export_path, names, fmt)
    known = {str(r): i for i, r in enumerate(table["row_id"].tolist())}
    missing = [r for r in reviews["row_id"].tolist() if str(r) not in known]
    if missing:
        raise InvalidInputError(f"the export reviews row_id {missing[0]!r}, which is not a row of {origin} "
                                f"({len(missing)} such rows); expected an export of the tasks written from it.")
    at = np.asarray([known[str(r)] for r in reviews["row_id"].tolist()], dtype=np.int64)
    names_arr = np.asarray(names, dtype=object)
    given = table["given_label"].to_numpy(dtype=np.int64)[at]
    from influence_stage.decisions.suggest import suggested_names

    out = reviews.assign(given_label=given, given_label_name=names_arr[given],
                         suggested_label_name=suggested_names(table["suggested_label"], names_arr)[at])
    out["changed"] = out["reviewed_label"].to_numpy() != given
    return out


def _is_published(origin: str) -> bool:
    folder = Path(origin)
    return (folder / "meta.json").is_file() or (folder / "LATEST").is_file()


def _write_table(table: Any, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        if out.suffix.lower() == ".csv":
            table.to_csv(tmp, index=False)
        else:
            table.to_parquet(tmp, index=False)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def run(args: argparse.Namespace) -> int:
    """Run ``import-reviews``: one line, the version published (or the table written) and the counts."""
    from influence_stage.errors import InvalidInputError

    out = None
    if args.out is not None:
        out = Path(args.out).expanduser().resolve()
        if out.suffix.lower() not in REVIEW_SUFFIXES:
            raise InvalidInputError(f"--out must end in one of {list(REVIEW_SUFFIXES)}; found {out.name!r}.")
        if out.exists() and not args.overwrite:
            raise InvalidInputError(f"{out} exists; import-reviews does not replace it. Fix: another --out, or "
                                    "--overwrite.")
    origin = Path(args.origin)
    if not origin.exists():
        found = ""
        if (origin.parent / "LATEST").is_file():
            from influence_stage.publish.layout import list_versions

            found = f"; {origin.parent.name} has versions {list_versions(origin.parent.parent, origin.parent.name)}"
        raise InvalidInputError(f"--from {args.origin} does not exist{found}. Fix: give a published version "
                                "(<root>/<name>/<version>, or <root>/<name> for its latest).")
    published = _is_published(args.origin)
    if not published and out is None:
        raise InvalidInputError(f"--from {args.origin} is not a published version, so nothing can be published; "
                                "pass a published version (<root>/<name>[/<version>]), or --out to write the "
                                "reviewed rows as a table.")
    table = reviewed_table(args.export, args.origin, args.format) if out is not None else None
    if published:
        from influence_stage.issues.reviews import publish_reviews

        result = publish_reviews(args.export, args.origin, fmt=args.format, source=args.source,
                                 label_column=args.label_column, new_version=args.new_version)
        reviews = (_meta_summary(result.path) or {}).get("reviews", {})
        line = (f"{result.path}  ({reviews.get('n_reviewed')} reviewed, {reviews.get('n_changed')} changed, "
                f"{reviews.get('n_restored')} put back; from {reviews.get('from_version')})")
    else:
        line = f"{out}  ({len(table)} reviewed, {int(table['changed'].sum())} changed)"
    if out is not None:
        _write_table(table, out)
        if published:
            line += f"; table {out}"
    print(line)
    return EXIT_OK


def _meta_summary(folder: Path) -> dict[str, Any]:
    import json

    return json.loads((Path(folder) / "meta.json").read_text("utf-8")).get("summary") or {}

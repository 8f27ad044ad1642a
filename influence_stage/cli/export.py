"""``influence-stage export``: the flagged rows of a published version or a saved cleaner, with their content,
for review (a Label Studio folder, Argilla records, or the issue file as Parquet, JSON lines or CSV).

The rows' content (text, images) comes from ``--source``, the data the version was cleaned from: a
published version holds the kept rows only, and a saved cleaner holds none. The issue files need no
content; Label Studio and Argilla show it, so they need ``--source``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from influence_stage.cli.common import EXIT_OK

if TYPE_CHECKING:  # numpy and pandas are imported where used, so `influence-stage --help` stays light
    import pandas as pd

CLEANER_FORMAT = "influence_stage.InfluenceCleaner"
EXPORT_FORMATS = ("label-studio", "argilla", "parquet", "jsonl", "csv")
"""The review formats, as ``api.issue_data.EXPORT_FORMATS`` (a test keeps them equal); declared here so
``export --help`` imports nothing heavy."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``export`` to the CLI's subparsers."""
    export = sub.add_parser("export", help="write the flagged rows of a published version or a saved cleaner, with "
                            "their content, for review (Label Studio, Argilla, Parquet, JSON lines, CSV)")
    export.add_argument("path", help="a published version folder, <root>/<name> for its latest version, or a folder "
                        "written by InfluenceCleaner.save")
    export.add_argument("--out", required=True, help="label-studio: a folder (tasks.json, label_config.xml, images/); "
                        "otherwise a file ending in the format's suffix (.jsonl for argilla and jsonl, .parquet, .csv)")
    export.add_argument("--format", default="label-studio", choices=EXPORT_FORMATS, help="default: label-studio")
    export.add_argument("--source", help="the data the version was cleaned from (a file or folder load_source reads), "
                        "for the rows' content; needed by label-studio and argilla")
    export.add_argument("--label-column", default=None, help="label column of --source (default: the version's)")
    export.add_argument("--all", action="store_true", help="every row, not only the flagged ones")
    export.add_argument("--max-rows", type=int, default=None, help="at most this many rows, in --order")
    export.add_argument("--order", choices=("score", "harm"), default="score",
                        help="label-issue score descending (default), or GEX harm rank")
    export.add_argument("--data-column", default=None, help="the content column shown (default: the first image, "
                        "else text column)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return export


def open_decisions(path: str | Path) -> tuple[pd.DataFrame, list[str], str]:
    """The decisions table (label codes, issue columns), the class names and the label column of a published
    version or a saved cleaner.

    Raises
    ------
    InvalidInputError
        Neither a published version nor a saved cleaner.
    """
    from influence_stage.errors import InvalidInputError

    folder = Path(path)
    manifest_json = folder / "manifest.json"
    if manifest_json.is_file():
        try:
            fmt = json.loads(manifest_json.read_text("utf-8")).get("format")
        except (OSError, ValueError, AttributeError):
            fmt = None
        if fmt == CLEANER_FORMAT:
            from influence_stage.api.cleaner import InfluenceCleaner

            cleaner = InfluenceCleaner.load(folder)
            table = cleaner.issues_.drop(columns=["given_label_name", "suggested_label_name"])
            return table, [str(c) for c in cleaner.classes_], cleaner.config_.label_column
    if not folder.is_dir() or not ((folder / "meta.json").is_file() or (folder / "LATEST").is_file()):
        raise InvalidInputError(f"{folder} is neither a published version (meta.json) nor a saved cleaner "
                                "(manifest.json of InfluenceCleaner.save). Fix: give <root>/<name>/<version>, "
                                "<root>/<name>, or the folder InfluenceCleaner.save wrote.")
    from influence_stage.publish.versions import load_published, manifest_codes

    _, manifest, meta = load_published(folder)
    table = manifest_codes(manifest, meta)
    classes = meta.get("classes")
    if meta.get("class_names") is not None:
        names = [str(n) for n in meta["class_names"]]
    elif classes is not None:
        names = [str(c) for c in classes]
    else:
        import pandas as pd

        # an empty suggestion is null: the classes come from the labels present
        k = int(pd.concat([table["given_label"], table["suggested_label"].dropna()]).max()) + 1
        names = [str(i) for i in range(k)]
    version = folder if (folder / "meta.json").is_file() else folder / str(meta.get("version"))
    config = json.loads((version / "config.json").read_text()) if (version / "config.json").is_file() else {}
    label = (config.get("clean") or {}).get("label_column", "label")
    return table.reset_index(drop=True), names, label


def source_content(source: str, label_column: str, table: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``source`` as content aligned with ``table`` (checked by row count and row ids)."""
    import numpy as np

    from influence_stage.api.issue_data import content_frame
    from influence_stage.data.sources import load_source, row_ids
    from influence_stage.errors import InvalidInputError

    ds = load_source(source, label_column=label_column)
    if ds.num_rows != len(table):
        raise InvalidInputError(f"--source has {ds.num_rows} rows, the version's input had {len(table)}; expected the "
                                "data the version was cleaned from.")
    ids = np.asarray(row_ids(ds))
    if "row_id" in table and not np.array_equal(ids.astype(str), table["row_id"].to_numpy().astype(str)):
        raise InvalidInputError("--source holds other row ids than the version's manifest (first difference at "
                                f"row {int(np.flatnonzero(ids.astype(str) != table['row_id'].astype(str))[0])}); "
                                "expected the data the version was cleaned from, in the same order.")
    return content_frame(ds, table.columns)


def run(args: argparse.Namespace) -> int:
    """Run ``export``: one line, the path written and the number of rows."""
    from influence_stage.api.issue_data import write_review
    from influence_stage.errors import InvalidInputError
    from influence_stage.issues.export import DECISION_COLUMNS, review_rows
    from influence_stage.publish.versions import version_containing

    inside = version_containing(Path(args.out))
    if inside is not None:
        raise InvalidInputError(f"--out {args.out} is inside the published version {inside}; published versions are "
                                "read-only. Fix: write the export outside it.")
    if args.max_rows is not None and args.max_rows < 1:
        raise InvalidInputError(f"--max-rows must be a positive integer; found {args.max_rows}.")
    table, names, label = open_decisions(args.path)
    if args.format in ("label-studio", "argilla") and args.source is None:
        raise InvalidInputError(f"--format {args.format} shows each row's content (text or image); pass --source "
                                "<the data the version was cleaned from>, or use --format parquet, jsonl or csv.")
    content = None if args.source is None else source_content(args.source, args.label_column or label, table)
    extra = [c for c in table.columns if c not in DECISION_COLUMNS and c != "issue_action"]
    rows = review_rows(table, table[extra] if extra else None, content=content, class_names=names,
                       only_flagged=not args.all, max_rows=args.max_rows, order=args.order)
    out = write_review(rows, args.out, args.format, names, overwrite=args.overwrite, data_column=args.data_column)
    print(f"{out}  ({len(rows)} rows, {args.format})")
    return EXIT_OK

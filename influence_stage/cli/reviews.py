"""``influence-stage import-reviews``: the reviewed labels of a Label Studio JSON export, as a table.

The export is of the tasks ``influence-stage export`` wrote; the class names come from the same
published version or saved cleaner. The table has one row per reviewed task: ``row_id``,
``reviewed_label`` (the class code) and ``reviewed_label_name``, then ``given_label`` /
``given_label_name`` and ``suggested_label_name`` from the version, and ``changed`` (the reviewed label
differs from the given one). Written as CSV or Parquet by the suffix of ``--out``, atomically.
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


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``import-reviews`` to the CLI's subparsers."""
    reviews = sub.add_parser("import-reviews", help="read the reviewed labels of a Label Studio JSON export back "
                             "into a table (row_id, reviewed label, given label, changed)")
    reviews.add_argument("export", help="the Label Studio JSON export of the project the tasks were imported into")
    reviews.add_argument("--from", dest="origin", required=True, help="the published version or saved cleaner the "
                         "tasks were exported from (class names, given labels)")
    reviews.add_argument("--out", required=True, help="the table to write: .csv or .parquet")
    reviews.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return reviews


def reviewed_table(export_path: str | Path, origin: str | Path) -> Any:
    """The reviewed labels joined to the version's given labels (see the module docstring)."""
    from influence_stage.cli.export import open_decisions
    from influence_stage.errors import InvalidInputError
    from influence_stage.issues.export import read_label_studio_reviews

    table, names, _ = open_decisions(origin)
    reviews = read_label_studio_reviews(export_path, names)
    known = {str(r): i for i, r in enumerate(table["row_id"].tolist())}
    missing = [r for r in reviews["row_id"].tolist() if str(r) not in known]
    if missing:
        raise InvalidInputError(f"the export reviews row_id {missing[0]!r}, which is not a row of {origin} "
                                f"({len(missing)} such rows); expected an export of the tasks written from it.")
    at = np.asarray([known[str(r)] for r in reviews["row_id"].tolist()], dtype=np.int64)
    names_arr = np.asarray(names, dtype=object)
    given = table["given_label"].to_numpy(dtype=np.int64)[at]
    out = reviews.assign(given_label=given, given_label_name=names_arr[given],
                         suggested_label_name=names_arr[table["suggested_label"].to_numpy(dtype=np.int64)[at]])
    out["changed"] = out["reviewed_label"].to_numpy() != given
    return out


def run(args: argparse.Namespace) -> int:
    """Run ``import-reviews``: one line, the path written, the reviewed and changed counts."""
    from influence_stage.errors import InvalidInputError

    out = Path(args.out).expanduser().resolve()
    if out.suffix.lower() not in REVIEW_SUFFIXES:
        raise InvalidInputError(f"--out must end in one of {list(REVIEW_SUFFIXES)}; found {out.name!r}.")
    if out.exists() and not args.overwrite:
        raise InvalidInputError(f"{out} exists; import-reviews does not replace it. Fix: another --out, or --overwrite.")
    table = reviewed_table(args.export, args.origin)
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
    print(f"{out}  ({len(table)} reviewed, {int(table['changed'].sum())} changed)")
    return EXIT_OK

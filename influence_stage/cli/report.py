"""``influence-stage report``: rebuild the HTML report of a published version (never modifying it)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from influence_stage.cli.common import EXIT_OK


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``report`` to the CLI's subparsers."""
    report = sub.add_parser("report", help="rebuild the HTML report of a published version (the version "
                            "itself is never modified)")
    report.add_argument("path", help="published version folder, or <root>/<name> for its latest version")
    report.add_argument("--out", help="where to write the HTML (default: report-<version>.html next to the "
                        "version folder, e.g. data/published/<name>/report-v0001.html)")
    return report


def run(args: argparse.Namespace) -> int:
    """Run ``report``: read the version's manifest and meta, build the report, write it outside the version."""
    from influence_stage.errors import InvalidInputError
    from influence_stage.publish.versions import load_published, manifest_codes
    from influence_stage.report import build_report, write_report

    if args.out:  # published versions are read-only to every command; the default name is checked below
        _refuse_inside_version(Path(args.out), InvalidInputError)
    ds, manifest, meta = load_published(args.path)
    manifest = manifest_codes(manifest, meta)  # the report draws class codes; meta.json maps them to labels
    version = Path(args.path).resolve()
    if not (version / "meta.json").is_file():  # <root>/<name>: its latest version
        version = version / str(meta.get("version"))
    config = json.loads((version / "config.json").read_text()) if (version / "config.json").is_file() else {}
    label = (config.get("clean") or {}).get("label_column", "label")
    feature = ds.features.get(label)
    import pandas as pd

    # an empty suggestion is null: the classes come from the labels present
    k = int(pd.concat([manifest["given_label"], manifest["suggested_label"].dropna()]).max()) + 1
    if meta.get("class_names") is not None:
        names = [str(n) for n in meta["class_names"]]
    else:
        names = list(feature.names) if hasattr(feature, "names") else [str(i) for i in range(k)]
    run_summary = dict(meta.get("summary") or {})  # what the run recorded: threshold, rate, members, score
    threshold = float(run_summary.get("threshold", manifest.loc[manifest["is_issue"], "score"].min()
                                      if manifest["is_issue"].any() else manifest["score"].max()))
    html = build_report(manifest, class_names=names, threshold=threshold,
                        summary={**run_summary, "version": meta.get("version")},
                        title=f"influence_stage: {meta.get('name', version.parent.name)}",
                        score_name=run_summary.get("score") or ((config.get("clean") or {}).get("gex") or {}).get("score"))
    out = Path(args.out) if args.out else version.parent / f"report-{version.name}.html"  # beside, never inside
    _refuse_inside_version(out, InvalidInputError)
    print(write_report(out, html))
    return EXIT_OK


def _refuse_inside_version(out: Path, error: type[Exception]) -> None:
    from influence_stage.publish.versions import version_containing

    inside = version_containing(out)
    if inside is not None:
        raise error(
            f"the report path {out} is inside the published version {inside}; published versions are read-only "
            "(meta.json holds the checksum of every file). Fix: pass --out with a path outside it, e.g. "
            "--out report.html in another folder."
        )

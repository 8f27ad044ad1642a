"""The issue types of a fit in the estimators' ``issues_``, and the review hand-off they write.

``fit_issues`` takes a run's issue report (the plan's ``issues`` step,
``PipelineResult.issues``) or, for a run whose plan had no such step, computes it from the run's
features, cross-fitted probabilities and loss matrix (``influence_stage.stage.issues.issues_step``
with ``apply_policy=False``: those rows were already applied and gated, so the report is the only
output). ``issues_frame`` joins it to the decisions table; ``write_review`` writes
``influence_stage.issues.export.review_rows`` in one of ``EXPORT_FORMATS``, atomically.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from influence_stage.errors import InvalidInputError, InvalidTypeError
from influence_stage.issues import IssueReport

#: ``export`` formats: a Label Studio folder (``tasks.json``, ``label_config.xml``, ``images/``), an
#: Argilla records file (JSON lines), and the issue file (every column) as Parquet, JSON lines or CSV.
EXPORT_FORMATS: tuple[str, ...] = ("label-studio", "argilla", "parquet", "jsonl", "csv")
_SUFFIX = {"argilla": ".jsonl", "parquet": ".parquet", "jsonl": ".jsonl", "csv": ".csv"}


def imputed_cells(features: Any) -> np.ndarray | None:
    """``(n, d) bool``: the cells the featurizer filled in the run's rows (a missing numeric cell, filled with its
    column's median), when the features object does not carry them itself (``features.missing``); else None.

    The tabular featurizer records the cells it filled in the data it last transformed
    (``TabularFeaturizer.missing_``); they are the run's rows when that mask has one row per row of ``X``.
    """
    if getattr(features, "missing", None) is not None:
        return None  # the features carry their own mask: the issues step already used it
    missing = getattr(getattr(features, "featurizer", None), "missing_", None)
    X = getattr(features, "X", None)
    if missing is None or not isinstance(X, np.ndarray) or X.ndim != 2 or missing.shape != X.shape:
        return None
    return missing if missing.any() else None


def fit_issues(result: Any, config: Any) -> IssueReport | None:
    """The issue report of a run: ``result.issues`` when the plan ran the ``issues`` step (its timing label
    ``"issues"`` is in ``result.timings``), else computed from the run (report only). None when no issue
    type ran.

    Cells the featurizer filled (``imputed_cells``) that the run's features did not carry to the issues
    step are put back as NaN and the report is computed again (report only), so the ``null`` type flags
    their rows; the plan's ``issue_action`` column and ``policy`` summary (what it dropped) are kept.
    """
    from influence_stage.stage.issues import issues_step

    planned = "issues" in (getattr(result, "timings", None) or {})
    report = getattr(result, "issues", None) if planned else None
    imputed = imputed_cells(result.features)
    if planned and (imputed is None or report is None or "null" not in report.types):
        return report
    features = result.features
    if imputed is not None:
        features = SimpleNamespace(X=features.X, y=features.y, row_ids=getattr(features, "row_ids", None),
                                   store=None, missing=imputed)
    fresh, _ = issues_step(result.gex_result, features, result.decisions, config, apply_policy=False)
    if report is not None and fresh is not None:
        table = fresh.table.assign(issue_action=report.table["issue_action"].to_numpy()) \
            if "issue_action" in report.table else fresh.table
        summary = {**fresh.summary, **{k: report.summary[k] for k in ("policy", "note") if k in report.summary}}
        fresh = IssueReport(table=table, summary=summary)
    return fresh


def issue_columns(report: IssueReport | None) -> pd.DataFrame | None:
    """The report's table less ``row_id`` (the columns ``issues_`` gains), or None."""
    if report is None:
        return None
    return report.table.drop(columns=[c for c in ("row_id",) if c in report.table]).reset_index(drop=True)


def issues_frame(labelled: pd.DataFrame, report: IssueReport | pd.DataFrame | None) -> pd.DataFrame:
    """``labelled`` (the decisions table with label names) with the issue columns appended (a copy)."""
    extra = issue_columns(report) if isinstance(report, IssueReport) or report is None else report
    if extra is None:
        return labelled
    extra = extra.drop(columns=[c for c in extra.columns if c in labelled.columns])
    if len(extra) != len(labelled):
        raise InvalidInputError(f"the issue table has {len(extra)} rows for {len(labelled)} decisions; expected one "
                                "per input row.")
    return pd.concat([labelled.reset_index(drop=True), extra.reset_index(drop=True)], axis=1)


def issue_types_of(issues: pd.DataFrame) -> list[str]:
    """The issue types whose flag ``issues_`` holds: ``label`` first, then ``is_<type>_issue`` in column order."""
    return ["label"] + [c[3:-6] for c in issues.columns
                        if c.startswith("is_") and c.endswith("_issue") and c not in ("is_issue", "is_any_issue")]


def content_frame(dataset: Any, reserved: Any) -> pd.DataFrame | None:
    """The rows' content as a frame: the dataset's columns less ``row_id``; a column whose name is a review
    column (``reserved``) gets the suffix ``_content``."""
    if dataset is None:
        return None
    from influence_stage.data.arrow import ROW_ID

    frame = dataset.to_pandas() if hasattr(dataset, "to_pandas") else pd.DataFrame(dataset)
    frame = frame.drop(columns=[c for c in (ROW_ID,) if c in frame]).reset_index(drop=True)
    reserved = set(reserved)
    return frame.rename(columns={c: f"{c}_content" for c in frame.columns if c in reserved})


def _targets(dest: Path, fmt: str) -> list[Path]:
    if fmt == "label-studio":
        return [dest]
    return [dest, dest.parent / f"{dest.stem}_images"]


def write_review(rows: pd.DataFrame, path: str | os.PathLike, fmt: str, class_names: Any, *,
                 overwrite: bool = False, data_column: str | None = None) -> Path:
    """Write the review rows in ``fmt``; return the path written (a folder for ``label-studio``).

    Everything is written into a temporary folder beside ``path`` and renamed into place, so a failed
    export leaves nothing behind.

    Parameters
    ----------
    rows : DataFrame
        ``influence_stage.issues.export.review_rows``.
    path : path
        ``label-studio``: a folder; otherwise a file whose suffix is the format's (``.jsonl`` for
        ``argilla`` and ``jsonl``, ``.parquet``, ``.csv``); images go to ``<stem>_images/`` beside it.
    fmt : one of ``EXPORT_FORMATS``
    class_names : sequence of str
    overwrite : bool
        Replace an existing ``path`` (and its images folder). False: refuse it.

    Raises
    ------
    InvalidInputError
        An unknown format, a suffix that is not the format's, or an existing ``path`` without ``overwrite``.
    """
    from influence_stage.issues import export

    if not isinstance(path, (str, os.PathLike)):
        raise InvalidTypeError(f"path must be a str or os.PathLike; found {type(path).__name__}.")
    if fmt not in EXPORT_FORMATS:
        raise InvalidInputError(f"format must be one of {list(EXPORT_FORMATS)}; found {fmt!r}.")
    dest = Path(path).expanduser().resolve()
    want = _SUFFIX.get(fmt)
    if want is not None and dest.suffix.lower() != want:
        raise InvalidInputError(f"format {fmt!r} writes a {want} file; found path {dest.name!r}. "
                                f"Fix: name it {dest.stem}{want}.")
    existing = [t for t in _targets(dest, fmt) if t.exists()]
    if existing and not overwrite:
        raise InvalidInputError(f"{existing[0]} exists; the export does not replace it. Fix: another path, or "
                                "overwrite=True (--overwrite).")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        staged = tmp / dest.name
        if fmt == "label-studio":
            export.write_label_studio(rows, staged, class_names, data_column=data_column)
        elif fmt == "argilla":
            export.write_argilla(rows, staged, class_names, data_column=data_column)
        else:
            export.write_issue_file(rows, staged)
        for target in _targets(dest, fmt):
            source = tmp / target.name
            if not source.exists():
                continue
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            os.replace(source, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def type_summary(issues: pd.DataFrame, report_summary: dict[str, Any] | None) -> pd.DataFrame:
    """One row per issue type of ``issues_``: ``n_issues`` (int64), ``share`` (of the rows), ``n_dropped``
    (rows the issue policy dropped for it, int64) and ``dataset_score`` (Datalab's dataset-level
    quality of the type, 1 = clean; NaN where it has none). Index ``issue_type``: ``label`` first."""
    n = max(len(issues), 1)
    types = issue_types_of(issues)
    per_type = (report_summary or {}).get("types", {})
    action = issues["issue_action"].to_numpy(dtype=object) if "issue_action" in issues else np.full(len(issues), "")
    rows = []
    for name in types:
        col = "is_issue" if name == "label" else f"is_{name}_issue"
        flagged = int(issues[col].to_numpy(dtype=bool).sum())
        score = per_type.get(name, {}).get("datalab_score")
        rows.append((name, flagged, flagged / n, int((action == name).sum()),
                     float("nan") if score is None else float(score)))
    out = pd.DataFrame(rows, columns=["issue_type", "n_issues", "share", "n_dropped", "dataset_score"])
    return out.astype({"n_issues": np.int64, "n_dropped": np.int64}).set_index("issue_type")


__all__ = ["EXPORT_FORMATS", "content_frame", "fit_issues", "issue_columns", "issue_types_of", "issues_frame",
           "type_summary", "write_review"]

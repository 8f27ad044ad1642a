"""The hand-off to review tools: the flagged rows with their content, as Label Studio tasks, Argilla
records and an issue file (Parquet, JSON lines or CSV).

``review_rows`` builds one frame of the rows to review: the decisions table's scores and labels,
the issue types' flags and the harm rank (``influence_stage.issues.find_data_issues``), and the
rows' own content (a text column, an image column, any other columns of the source), highest
label-issue score first (or most harmful first, ``order="harm"``). The writers take that frame:

- ``write_label_studio``: ``tasks.json`` in Label Studio's import format (a list of tasks, each
  ``{"data": {...}, "predictions": [{"model_version", "score", "result": [choices]}]}``) with the
  suggested label as the prediction, and ``label_config.xml`` (an ``<Image>`` or ``<Text>`` tag and a
  ``<Choices name="label">`` of the class names) to paste into the project's labeling setup; images
  are written as PNG files under ``images/`` and referenced by relative path (serve that folder
  through Label Studio's local-files storage, or upload it, and keep the names);
- ``read_label_studio_reviews``: the reviewed labels back from a Label Studio JSON export;
- ``write_argilla``: JSON lines, one record each with ``id``, ``fields``, ``metadata`` and
  ``suggestions`` (``question_name="label"``), the arguments of ``argilla.Record``;
- ``write_issue_file``: every column, by the file's suffix (``.parquet``, ``.jsonl``, ``.csv``).

No review tool is imported: the files are plain JSON, Parquet and CSV.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np
import pandas as pd

from influence_stage._checks import check_class_names
from influence_stage.decisions.suggest import NO_SUGGESTION, suggested_codes
from influence_stage.errors import InvalidInputError, InvalidTypeError

#: Columns of the decisions table carried into the review frame, when present.
DECISION_COLUMNS: tuple[str, ...] = ("row_id", "score", "gex_influence", "label_quality", "is_issue", "action",
                                     "given_label", "suggested_label", "weight")
#: String columns of the review frame itself, never taken for the rows' content.
REVIEW_TEXT_COLUMNS: frozenset[str] = frozenset({"issue_types", "action", "given_label_name", "suggested_label_name"})
#: File suffixes ``write_issue_file`` writes.
ISSUE_FILE_SUFFIXES: tuple[str, ...] = (".parquet", ".jsonl", ".csv")
#: The Label Studio control (``<Choices name=...>``) and the Argilla question the label is under.
LABEL_CONTROL = "label"
#: The empty column of a CSV / Parquet issue file where a reviewer writes class names.
REVIEWED_COLUMN = "reviewed_label"
MODEL_VERSION = "influence_stage"


def _content_frame(content: Any, n: int) -> pd.DataFrame:
    if content is None:
        return pd.DataFrame(index=range(n))
    if isinstance(content, pd.DataFrame):
        frame = content.reset_index(drop=True)
    elif hasattr(content, "column_names") and hasattr(content, "select"):  # a datasets.Dataset
        frame = content.to_pandas() if len(content) else pd.DataFrame(columns=content.column_names)
    elif isinstance(content, dict):
        frame = pd.DataFrame(content)
    else:
        raise InvalidTypeError(f"content must be a pandas DataFrame, a datasets.Dataset or a dict of columns, one "
                               f"row per input row; found {type(content).__name__}.")
    if len(frame) != n:
        raise InvalidInputError(f"content must have one row per input row: {n} rows expected, found {len(frame)}. "
                                "Pass the source the run scored, in the same order.")
    return frame


def review_rows(decisions: pd.DataFrame, issues: Any = None, *, content: Any = None, class_names: Any = None,
                only_flagged: bool = True, max_rows: int | None = None, order: str = "score") -> pd.DataFrame:
    """The rows to review, with their scores, labels, issue types and content.

    Parameters
    ----------
    decisions : DataFrame
        The decisions table, one row per input row.
    issues : IssueReport or DataFrame, optional
        ``find_data_issues``'s report (or its table) on the same rows.
    content : DataFrame, datasets.Dataset or dict of columns, optional
        The rows' content (text, images, other columns), one row per input row, same order.
    class_names : sequence of str, optional
        ``class_names[k]`` names label ``k``; adds ``given_label_name`` and ``suggested_label_name``.
    only_flagged : bool
        Keep only rows with an issue (``is_any_issue``, else ``is_issue``).
    max_rows : int, optional
        Keep the first ``max_rows`` rows of the order below.
    order : {"score", "harm"}
        ``"score"`` (default): the label-issue ``score`` descending, the rows most likely mislabeled
        first; ``"harm"``: ``harm_rank`` (flagged rows, most harmful first; needs the harm columns).
        The default is the score because ranking flagged rows by harm measured no better
        (``influence_stage.issues.harm``).

    Returns
    -------
    DataFrame
        The decisions columns present (``DECISION_COLUMNS``), ``*_label_name``, ``issue_types``
        (comma-separated names, ``label`` for ``is_issue``), the issue table's columns, then the
        content columns; in ``order``; the index is the rows' position in the input.
    """
    if not isinstance(decisions, pd.DataFrame):
        raise InvalidTypeError("decisions must be the decisions table (a DataFrame); found "
                               f"{type(decisions).__name__}.")
    base = decisions[[c for c in DECISION_COLUMNS if c in decisions]].reset_index(drop=True)
    n = len(base)
    table = getattr(issues, "table", issues)
    if table is not None:
        if not isinstance(table, pd.DataFrame) or len(table) != n:
            length = len(table) if hasattr(table, "__len__") else "?"
            raise InvalidInputError(f"issues must be find_data_issues' report (or table) on the same {n} rows; "
                                    f"found {type(table).__name__} of length {length}.")
        extra = table.drop(columns=[c for c in table.columns if c in base.columns]).reset_index(drop=True)
        base = pd.concat([base, extra], axis=1)
    if class_names is not None:
        names = np.asarray(check_class_names(class_names), dtype=object)
        for col in ("given_label", "suggested_label"):
            if col in base:
                # an empty suggestion (a flagged row with no confident other label) gets an empty name
                codes = suggested_codes(base[col]) if col == "suggested_label" else base[col].to_numpy(dtype=np.int64)
                empty = codes == NO_SUGGESTION if col == "suggested_label" else np.zeros(codes.size, dtype=bool)
                present = codes[~empty]
                if present.size and (present.min() < 0 or present.max() >= names.size):
                    raise InvalidInputError(f"{col} holds code {int(present.max())}, but only {names.size} class "
                                            "names were given. Pass one name per class.")
                label_names = names[np.where(empty, 0, codes)]
                label_names[empty] = None
                base[f"{col}_name"] = pd.Series(label_names, index=base.index, dtype=object)
    flags = [c for c in base.columns if c.startswith("is_") and c.endswith("_issue")
             and c not in ("is_issue", "is_any_issue")]
    kinds = [("label", "is_issue")] * ("is_issue" in base) + [(c[3:-6], c) for c in flags]
    marks = {name: base[col].to_numpy(dtype=bool) for name, col in kinds}
    base["issue_types"] = [",".join(name for name, m in marks.items() if m[i]) for i in range(n)]
    frame = pd.concat([base, _content_frame(content, n).add_prefix("")], axis=1)
    if frame.columns.duplicated().any():
        dup = sorted(set(frame.columns[frame.columns.duplicated()]))
        raise InvalidInputError(f"content columns {dup} clash with the review columns; rename them in the content.")
    if only_flagged:
        flag_col = "is_any_issue" if "is_any_issue" in frame else "is_issue" if "is_issue" in frame else None
        if flag_col is None:
            raise InvalidInputError("no flag column (is_any_issue or is_issue) to choose the flagged rows; pass the "
                                    "decisions table, or only_flagged=False.")
        frame = frame[frame[flag_col].to_numpy(dtype=bool)]
    if order not in ("score", "harm"):
        raise InvalidInputError(f"order must be 'score' or 'harm'; found {order!r}.")
    key_column = "harm_rank" if order == "harm" else "score"
    if key_column not in frame:
        raise InvalidInputError(f"order={order!r} needs the column {key_column!r}; found "
                                f"{[str(c) for c in frame.columns]}. "
                                + ("Run find_data_issues with deviations= for the harm columns." if order == "harm"
                                   else "Pass the decisions table."))
    if order == "harm":
        key = np.where(frame["harm_rank"].to_numpy() > 0, frame["harm_rank"].to_numpy(), np.iinfo(np.int64).max)
    else:
        key = -frame["score"].to_numpy(dtype=np.float64)
    frame = frame.iloc[np.argsort(key, kind="stable")]
    if max_rows is not None:
        frame = frame.iloc[:int(max_rows)]
    return frame


# ------------------------------------------------------------------------------------------------------
# values: images to files or bytes, everything else to JSON
# ------------------------------------------------------------------------------------------------------


def _is_image(value: Any) -> bool:
    if isinstance(value, dict):  # the datasets Image layout, {"bytes": ..., "path": ...}
        return "bytes" in value and (isinstance(value["bytes"], (bytes, bytearray)) or
                                     isinstance(value.get("path"), str))
    if isinstance(value, np.ndarray):
        return value.ndim in (2, 3) and value.dtype != object
    return type(value).__module__.startswith("PIL.")


def image_columns(frame: pd.DataFrame) -> list[str]:
    """Columns whose first non-null value is an image (PIL image, ``{"bytes", "path"}`` dict, 2-D/3-D array)."""
    out = []
    for col in frame.columns:
        values = frame[col][frame[col].notna()]
        if len(values) and _is_image(values.iloc[0]):
            out.append(col)
    return out


def _png_bytes(value: Any) -> bytes:
    from PIL import Image

    if isinstance(value, dict):
        if value.get("bytes") is not None:
            data = value["bytes"]
            return bytes(data) if _is_png(data) else _png_bytes(Image.open(io.BytesIO(data)))
        return _png_bytes(Image.open(value["path"]))
    if isinstance(value, np.ndarray):
        arr = value.astype(np.float64)
        if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
            arr = np.moveaxis(arr, 0, -1)  # (c, h, w) → (h, w, c)
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        if lo < 0 or hi > 255 or hi <= 1.0:  # not 0..255 pixels already: stretch to them
            arr = (arr - lo) / (hi - lo if hi > lo else 1.0) * 255.0
        value = Image.fromarray(np.nan_to_num(arr).round().astype(np.uint8))
    buf = io.BytesIO()
    value.save(buf, format="PNG")
    return buf.getvalue()


def _is_png(data: bytes) -> bool:
    return bytes(data[:8]) == b"\x89PNG\r\n\x1a\n"


def _json_value(value: Any) -> Any:
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.ndarray):
        return [_json_value(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (bytes, bytearray)):
        return None
    return value


def _write_images(frame: pd.DataFrame, columns: Sequence[str], folder: Path, relative_to: Path) -> pd.DataFrame:
    """A copy of ``frame`` with each image replaced by the relative path of its PNG under ``folder``."""
    out = frame.copy()
    folder.mkdir(parents=True, exist_ok=True)
    ids = frame["row_id"].tolist() if "row_id" in frame else list(frame.index)
    for col in columns:
        paths = []
        for rid, value in zip(ids, frame[col].tolist()):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                paths.append(None)
                continue
            path = folder / f"{col}_{rid}.png"
            path.write_bytes(_png_bytes(value))
            paths.append(path.relative_to(relative_to).as_posix())
        out[col] = paths
    return out


def _check_out(path: Any, what: str) -> Path:
    if not isinstance(path, (str, Path)):
        raise InvalidTypeError(f"{what} must be a path (str or pathlib.Path); found {type(path).__name__}.")
    return Path(path)


# ------------------------------------------------------------------------------------------------------
# Label Studio
# ------------------------------------------------------------------------------------------------------


def _data_column(frame: pd.DataFrame, column: str | None, images: list[str]) -> tuple[str, str]:
    """The content column a task shows and its tag (``Image`` or ``Text``)."""
    if column is None:
        if images:
            column = images[0]
        else:
            text = [c for c in frame.columns if len(frame[c].dropna()) and isinstance(frame[c].dropna().iloc[0], str)
                    and c not in REVIEW_TEXT_COLUMNS]
            if not text:
                raise InvalidInputError(
                    "the review rows have no content column (text or image) to show; found columns "
                    f"{[str(c) for c in frame.columns]}. Fix: pass content=<the source dataset or frame> to "
                    "review_rows, or name the column with data_column=.")
            column = text[0]
    if column not in frame:
        raise InvalidInputError(f"data_column {column!r} is not a column of the review rows; found "
                                f"{[str(c) for c in frame.columns]}.")
    return column, "Image" if column in images else "Text"


def label_config(class_names: Sequence[str], data_column: str, tag: str) -> str:
    """A Label Studio labeling config: the content tag, the given label as a header, one choice per class."""
    choices = "\n".join(f"    <Choice value={quoteattr(str(c))}/>" for c in class_names)
    return (f"<View>\n  <{tag} name={quoteattr(data_column)} value={quoteattr('$' + data_column)}/>\n"
            f"  <Header value=\"given label: $given_label_name; issues: $issue_types\"/>\n"
            f"  <Choices name=\"{LABEL_CONTROL}\" toName={quoteattr(data_column)} choice=\"single\" "
            f"showInline=\"true\">\n{choices}\n  </Choices>\n</View>\n")


def _suggested_name(data: dict[str, Any], names: Sequence[str]) -> str | None:
    """The suggested label's name of one review row (its JSON values), None where the suggestion is empty.

    A row without any suggestion column suggests its given label (a review of issue types only).
    """
    if "suggested_label_name" not in data and "suggested_label" not in data:
        return names[int(data["given_label"])]
    if data.get("suggested_label_name") is not None:
        return str(data["suggested_label_name"])
    code = data.get("suggested_label")
    return None if code is None else names[int(code)]


def label_studio_tasks(rows: pd.DataFrame, class_names: Any, *, data_column: str | None = None,
                       model_version: str = MODEL_VERSION) -> list[dict[str, Any]]:
    """Label Studio import tasks for the review rows (images already written as paths).

    Each task: ``data`` holds the content column, ``row_id``, ``given_label_name``, ``issue_types``, the
    scores and every other plain column; ``predictions`` holds one prediction, the suggested label as
    a ``choices`` result under ``from_name="label"``, scored by the cross-fitted or member probability
    of that label when present (``suggested_proba``), else by ``label_quality``. A row whose
    suggestion is empty (no other label is confident) has no prediction (``predictions`` is ``[]``).
    """
    names = check_class_names(class_names)
    column, _ = _data_column(rows, data_column, image_columns(rows))
    tasks = []
    for record in rows.to_dict(orient="records"):
        data = {str(k): _json_value(v) for k, v in record.items()}
        suggested = _suggested_name(data, names)
        if suggested is None:
            tasks.append({"data": data, "predictions": []})
            continue
        score = data.get("suggested_proba", data.get("label_quality"))
        prediction: dict[str, Any] = {"model_version": model_version, "result": [{
            "from_name": LABEL_CONTROL, "to_name": column, "type": "choices", "value": {"choices": [suggested]}}]}
        if isinstance(score, (int, float)):
            prediction["score"] = float(score)
        tasks.append({"data": data, "predictions": [prediction]})
    return tasks


def write_label_studio(rows: pd.DataFrame, folder: Any, class_names: Any, *, data_column: str | None = None,
                       model_version: str = MODEL_VERSION) -> Path:
    """Write ``tasks.json``, ``label_config.xml`` and ``images/`` under ``folder``; return the tasks path.

    Import ``tasks.json`` into a project whose labeling config is ``label_config.xml``; export the
    reviewed project as JSON and read it back with ``read_label_studio_reviews``.
    """
    folder = _check_out(folder, "folder")
    names = check_class_names(class_names)
    images = image_columns(rows)
    column, tag = _data_column(rows, data_column, images)
    folder.mkdir(parents=True, exist_ok=True)
    rows = _write_images(rows, images, folder / "images", folder)
    rows = rows.assign(given_label_name=rows["given_label_name"] if "given_label_name" in rows else
                       [names[int(c)] for c in rows["given_label"]])
    path = folder / "tasks.json"
    path.write_text(json.dumps(label_studio_tasks(rows, names, data_column=column, model_version=model_version),
                               indent=1))
    (folder / "label_config.xml").write_text(label_config(names, column, tag))
    return path


def read_label_studio_reviews(path: Any, class_names: Any) -> pd.DataFrame:
    """The reviewed labels in a Label Studio JSON export of the tasks ``write_label_studio`` wrote.

    Per task, the last annotation that was not cancelled and has a ``choices`` result under
    ``from_name="label"`` counts; tasks without one are left out.

    Returns
    -------
    DataFrame with ``row_id``, ``reviewed_label`` (int64 code) and ``reviewed_label_name``, one row per
    reviewed task, in the export's order.

    Raises
    ------
    InvalidInputError
        The file is not a JSON list of tasks, a task has no ``data.row_id``, or a chosen label is not a
        class name.
    """
    path = _check_out(path, "path")
    names = check_class_names(class_names)
    try:
        tasks = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{path} is not a readable JSON file: {exc}. Export the project as JSON.") from exc
    if not isinstance(tasks, list):
        raise InvalidInputError(f"{path} must hold a JSON list of tasks (Label Studio's JSON export); found "
                                f"{type(tasks).__name__}.")
    code = {name: i for i, name in enumerate(names)}
    out = []
    for i, task in enumerate(tasks):
        data = task.get("data", {}) if isinstance(task, dict) else {}
        if "row_id" not in data:
            raise InvalidInputError(f"task {i} of {path} has no data.row_id; export the tasks written by "
                                    "write_label_studio (their data carries the row id).")
        chosen = None
        for ann in task.get("annotations", []):
            if ann.get("was_cancelled"):
                continue
            for res in ann.get("result", []):
                if res.get("from_name") == LABEL_CONTROL and res.get("type") == "choices":
                    chosen = (res.get("value", {}).get("choices") or [None])[0]
        if chosen is None:
            continue
        if chosen not in code:
            raise InvalidInputError(f"task {i} (row_id {data['row_id']!r}) was labelled {chosen!r}, which is not a "
                                    f"class name; known: {names}.")
        out.append((data["row_id"], code[chosen], chosen))
    return pd.DataFrame(out, columns=["row_id", "reviewed_label", "reviewed_label_name"]).astype(
        {"reviewed_label": np.int64})


# ------------------------------------------------------------------------------------------------------
# Argilla and the issue file
# ------------------------------------------------------------------------------------------------------


def argilla_records(rows: pd.DataFrame, class_names: Any, *, data_column: str | None = None,
                    agent: str = MODEL_VERSION) -> list[dict[str, Any]]:
    """Argilla records for the review rows (images already written as paths).

    Each record is the keyword arguments of ``argilla.Record``: ``id`` (the row id as a string),
    ``fields`` (the content column), ``metadata`` (given label, issue types, scores, harm) and
    ``suggestions`` (``[{"question_name": "label", "value": <suggested name>, "score", "agent"}]``, or ``[]``
    where the suggestion is empty: no other label is confident).
    """
    names = check_class_names(class_names)
    column, _ = _data_column(rows, data_column, image_columns(rows))
    records = []
    for record in rows.to_dict(orient="records"):
        data = {str(k): _json_value(v) for k, v in record.items()}
        suggested = _suggested_name(data, names)
        suggestions: list[dict[str, Any]] = []
        if suggested is not None:
            score = data.get("suggested_proba", data.get("label_quality"))
            suggestion: dict[str, Any] = {"question_name": LABEL_CONTROL, "value": suggested, "agent": agent}
            if isinstance(score, (int, float)):
                suggestion["score"] = float(score)
            suggestions.append(suggestion)
        metadata = {k: v for k, v in data.items() if k != column and (v is None or isinstance(v, (str, int, float)))}
        records.append({"id": str(data.get("row_id")), "fields": {column: data[column]}, "metadata": metadata,
                        "suggestions": suggestions})
    return records


def write_argilla(rows: pd.DataFrame, path: Any, class_names: Any, *, data_column: str | None = None) -> Path:
    """Write ``argilla_records`` as JSON lines to ``path``; images go to ``<stem>_images/`` beside it.

    Load them with ``dataset.records.log([rg.Record(id=r["id"], fields=r["fields"], metadata=r["metadata"],
    suggestions=[rg.Suggestion(**s) for s in r["suggestions"]]) for r in records])`` into a dataset whose
    settings have that field and a ``LabelQuestion(name="label", labels=class_names)``.
    """
    path = _check_out(path, "path")
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = _write_images(rows, image_columns(rows), path.parent / f"{path.stem}_images", path.parent)
    lines = [json.dumps(r) for r in argilla_records(rows, class_names, data_column=data_column)]
    path.write_text("\n".join(lines) + ("\n" if lines else ""))
    return path


def write_issue_file(rows: pd.DataFrame, path: Any) -> Path:
    """Write the review rows with every column; the format follows the suffix.

    ``.parquet``: images as PNG bytes; ``.jsonl`` / ``.csv``: images as PNG files under
    ``<stem>_images/`` beside the file, referenced by relative path. A ``.parquet`` or ``.csv`` file
    also gets an empty ``reviewed_label`` column: a reviewer writes class names there, and
    ``influence_stage.issues.reviews`` (``influence-stage import-reviews``) reads them back.

    Raises
    ------
    InvalidInputError
        Another suffix (the message lists ``ISSUE_FILE_SUFFIXES``).
    """
    path = _check_out(path, "path")
    suffix = path.suffix.lower()
    if suffix not in ISSUE_FILE_SUFFIXES:
        raise InvalidInputError(f"the issue file must end in one of {list(ISSUE_FILE_SUFFIXES)}; found {path.name!r}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    images = image_columns(rows)
    if suffix in (".parquet", ".csv") and REVIEWED_COLUMN not in rows:  # for the reviewer's class names
        rows = rows.assign(**{REVIEWED_COLUMN: pd.Series([None] * len(rows), dtype="string", index=rows.index)})
    if suffix == ".parquet":
        out = rows.copy()
        for col in images:
            out[col] = [None if v is None else _png_bytes(v) for v in out[col].tolist()]
        out.reset_index(drop=True).to_parquet(path, index=False)
        return path
    out = _write_images(rows, images, path.parent / f"{path.stem}_images", path.parent)
    if suffix == ".jsonl":
        records = [{str(k): _json_value(v) for k, v in r.items()} for r in out.to_dict(orient="records")]
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    else:
        out.to_csv(path, index=False)
    return path


__all__ = [
    "DECISION_COLUMNS", "ISSUE_FILE_SUFFIXES", "LABEL_CONTROL", "argilla_records", "image_columns", "label_config",
    "label_studio_tasks", "read_label_studio_reviews", "review_rows", "write_argilla", "write_issue_file",
    "write_label_studio",
]

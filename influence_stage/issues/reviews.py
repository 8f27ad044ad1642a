"""Reviewed labels back from a review tool, published as a new version of the dataset.

The review hand-off (``influence_stage.issues.export``) writes the flagged rows of a published version;
people review them in Label Studio, Argilla or a spreadsheet; ``read_reviews`` reads their labels
back and ``publish_reviews`` applies them as a new version of the same dataset name, through
``influence_stage.publish.versions.publish`` (atomic, under the name's lock, never overwriting).

The review files ``read_reviews`` reads (``REVIEW_FORMATS``, chosen by ``fmt`` or by the suffix):

- ``label-studio`` (``.json``): Label Studio's JSON export of the project the tasks were imported
  into; per task, the last annotation that was not cancelled with a ``choices`` result under
  ``from_name="label"`` (``read_label_studio_reviews``);
- ``csv`` / ``parquet``: the issue file ``export`` wrote (or any table) with a ``row_id`` column and
  a ``reviewed_label`` column the reviewer filled with class names; an empty cell is a row not reviewed;
- ``argilla`` (``.jsonl``): records as ``argilla.Record.to_dict()`` (or ``dataset.records.to_list()``)
  gives them, one per line: ``id`` (the row id) and ``responses`` ``{"label": [{"value": <class name>,
  "status": ...}]}`` (or the flat ``"label.responses": [<class name>, ...]``); the last response whose
  status is not ``draft`` or ``discarded`` counts.

What the new version holds (``publish_reviews``):

- its data: the base version's rows with each reviewed row's label set to the reviewed label; a
  reviewed row the base version dropped is put back, with its reviewed label, from ``source`` (the
  data the version was cleaned from), in input order; a reviewed row dropped as an exact copy of an
  earlier row (``exact_duplicate_of`` >= 0) stays dropped, since a review sets a label, not whether a
  copy is kept;
- its manifest: the base version's, with ``reviewed`` (bool) and ``reviewed_label`` (the reviewed
  label value, null on rows not reviewed), ``stage_action`` (the action before any review), and on
  the reviewed rows put back or kept ``action`` = ``keep`` (the reviewed label is the given one) or
  ``relabel`` (another one) and ``weight`` = 1.0; a version that was itself reviewed keeps its
  earlier reviews (a later review of the same row wins);
- its ``meta.json`` ``summary.reviews``: the review file (path, name, sha256, format), the base
  version and the counts; the review file itself under ``reviews/``; the base version's
  ``config.json``, classes and input fingerprint. It has no ``validation/`` folder and no report:
  the stage's gates checked the stage's decisions, which the reviewed labels replace.

Every check runs before anything is written: an unknown row id, a label that is not a class name, a
file in another format or with no reviewed row, a version that does not exist, a dropped row without
``source`` are errors and nothing is published.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pandas as pd

from influence_stage._checks import check_class_names
from influence_stage.errors import InvalidInputError, InvalidTypeError
from influence_stage.issues.export import REVIEWED_COLUMN, read_label_studio_reviews

#: Review file formats ``read_reviews`` reads.
REVIEW_FORMATS: tuple[str, ...] = ("label-studio", "csv", "parquet", "argilla")
#: The format of a review file by its suffix, when ``fmt`` is not given.
FORMAT_BY_SUFFIX: dict[str, str] = {".json": "label-studio", ".csv": "csv", ".parquet": "parquet",
                                    ".jsonl": "argilla"}
#: The column of a CSV / Parquet review file holding the reviewed class name (the issue file has it empty).
REVIEW_COLUMN = REVIEWED_COLUMN
#: Response statuses of an Argilla record that are not a review.
_NOT_SUBMITTED = frozenset({"draft", "discarded"})
#: Columns ``read_reviews`` returns.
REVIEW_TABLE_COLUMNS: tuple[str, ...] = ("row_id", "reviewed_label", "reviewed_label_name")


def review_format(path: Any, fmt: str | None = None) -> str:
    """The format of the review file ``path``: ``fmt`` when given, else by its suffix (``FORMAT_BY_SUFFIX``)."""
    if fmt is not None:
        if fmt not in REVIEW_FORMATS:
            raise InvalidInputError(f"the review format must be one of {list(REVIEW_FORMATS)}; found {fmt!r}.")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in FORMAT_BY_SUFFIX:
        raise InvalidInputError(f"cannot tell the format of the review file {Path(path).name!r} from its suffix; "
                                f"expected one of {sorted(FORMAT_BY_SUFFIX)} ({FORMAT_BY_SUFFIX}), or name it "
                                "with the format.")
    return FORMAT_BY_SUFFIX[suffix]


def _table_reviews(path: Path, fmt: str) -> list[tuple[Any, Any]]:
    """(row id, reviewed name) pairs of a CSV / Parquet review file; empty cells left out."""
    try:
        if fmt == "csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        else:
            frame = pd.read_parquet(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{path} is not a readable {fmt.upper()} file: {' '.join(str(exc).split())[:200]}. "
                                f"Expected the issue file export wrote, with a {REVIEW_COLUMN!r} column.") from exc
    except Exception as exc:  # pyarrow's own errors (not a Parquet file)
        raise InvalidInputError(f"{path} is not a readable {fmt.upper()} file: {type(exc).__name__}: "
                                f"{' '.join(str(exc).split())[:200]}.") from exc
    missing = [c for c in ("row_id", REVIEW_COLUMN) if c not in frame.columns]
    if missing:
        raise InvalidInputError(f"{path} has no column(s) {missing}; found {[str(c) for c in frame.columns][:20]}. "
                                f"Expected the issue file export wrote, with the reviewer's class names in a "
                                f"{REVIEW_COLUMN!r} column (empty where not reviewed).")
    out = []
    for rid, value in zip(frame["row_id"].tolist(), frame[REVIEW_COLUMN].tolist()):
        if value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == "":
            continue
        out.append((rid, value.item() if isinstance(value, np.generic) else value))
    return out


def _argilla_label(record: dict[str, Any]) -> Any:
    """The last submitted ``label`` response of one Argilla record, or None."""
    if record.get("status") == "discarded":
        return None
    chosen = None
    responses = record.get("responses")
    if isinstance(responses, dict):
        for response in responses.get("label") or []:
            if isinstance(response, dict) and response.get("status") not in _NOT_SUBMITTED \
                    and response.get("value") is not None:
                chosen = response["value"]
    flat = record.get("label.responses")
    if chosen is None and isinstance(flat, list) and flat:
        chosen = flat[-1]
    return chosen


def _argilla_reviews(path: Path) -> list[tuple[Any, Any]]:
    """(row id, reviewed name) pairs of an Argilla records file (JSON lines)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{path} is not a readable Argilla records file: {exc}.") from exc
    out = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise InvalidInputError(f"line {i + 1} of {path} is not JSON ({exc}); expected Argilla records, one JSON "
                                    "object per line.") from exc
        if not isinstance(record, dict) or "id" not in record:
            raise InvalidInputError(f"line {i + 1} of {path} is not an Argilla record with an 'id' (the row id); "
                                    "expected the records export wrote, with the reviewers' responses.")
        label = _argilla_label(record)
        if label is not None:
            out.append((record["id"], label))
    return out


def read_reviews(path: Any, class_names: Any, fmt: str | None = None) -> pd.DataFrame:
    """The reviewed labels of a review file (see the module docstring for the formats).

    Parameters
    ----------
    path : str or path-like
    class_names : sequence of str
        ``class_names[k]`` names class ``k``; a reviewed label must be one of them.
    fmt : {"label-studio", "csv", "parquet", "argilla"}, optional
        Default: by the suffix (``.json``, ``.csv``, ``.parquet``, ``.jsonl``).

    Returns
    -------
    DataFrame
        ``row_id`` (as in the file), ``reviewed_label`` (int64 code) and ``reviewed_label_name``, one
        row per reviewed row, in the file's order. A row reviewed twice with the same label is
        listed once.

    Raises
    ------
    InvalidInputError
        Not a readable file of that format, a label that is not a class name, or a row reviewed twice
        with different labels.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidTypeError(f"path must be a path (str or pathlib.Path); found {type(path).__name__}.")
    path = Path(path)
    names = check_class_names(class_names)
    fmt = review_format(path, fmt)
    if not path.is_file():
        raise InvalidInputError(f"the review file {path} does not exist.")
    if fmt == "label-studio":
        reviews = read_label_studio_reviews(path, names)
    else:
        pairs = _table_reviews(path, fmt) if fmt in ("csv", "parquet") else _argilla_reviews(path)
        code = {name: i for i, name in enumerate(names)}
        rows = []
        for rid, label in pairs:
            if str(label) not in code:
                raise InvalidInputError(f"row_id {rid!r} of {path.name} was reviewed as {label!r}, which is not a "
                                        f"class name; known: {names}.")
            rows.append((rid, code[str(label)], str(label)))
        reviews = pd.DataFrame(rows, columns=list(REVIEW_TABLE_COLUMNS)).astype({"reviewed_label": np.int64})
    key = reviews["row_id"].astype(str)
    labels_per_row = reviews.groupby(key)["reviewed_label"].nunique()
    conflicting = labels_per_row[labels_per_row > 1]
    if len(conflicting):
        raise InvalidInputError(f"row_id {conflicting.index[0]!r} is reviewed with different labels in {path.name} "
                                f"({len(conflicting)} such rows); expected one label per row.")
    return reviews[~key.duplicated()].reset_index(drop=True)


# ------------------------------------------------------------------------------------------------------
# the reviewed version
# ------------------------------------------------------------------------------------------------------


def _version_folder(version: Any) -> Path:
    """The version folder of ``version`` (a version folder, or ``<root>/<name>`` for its latest)."""
    from influence_stage.publish.layout import LATEST, META_JSON, latest_version

    if not isinstance(version, (str, os.PathLike)):
        raise InvalidTypeError(f"version must be a path (str or pathlib.Path); found {type(version).__name__}.")
    folder = Path(version).expanduser()
    if not (folder / META_JSON).is_file() and (folder / LATEST).is_file():
        folder = folder / str(latest_version(folder.parent, folder.name))
    if not (folder / META_JSON).is_file():
        raise InvalidInputError(f"{folder} is not a published version (no {META_JSON}); expected "
                                "<root>/<name>/<version>, or <root>/<name> for its latest version.")
    return folder.resolve()


def _positions(ids: Any, known: dict[str, int], where: str) -> np.ndarray:
    """Manifest positions of row ids (compared as strings, as the review files carry them)."""
    missing = [r for r in ids if str(r) not in known]
    if missing:
        raise InvalidInputError(f"the review file names row_id {missing[0]!r}, which is not a row of {where} "
                                f"({len(missing)} such rows); expected the rows export wrote from that version.")
    return np.asarray([known[str(r)] for r in ids], dtype=np.int64)


def _label_values(values: list[Any], like: pd.Series) -> Any:
    """A column of label values with nulls, in a dtype that keeps ``like``'s (ints stay ints)."""
    series = pd.Series(values, dtype=object)
    if pd.api.types.is_bool_dtype(like):
        return series.astype("boolean")
    if pd.api.types.is_integer_dtype(like):
        return series.astype("Int64")
    if pd.api.types.is_float_dtype(like):
        return series.astype("float64")
    return series


def _restored_rows(source: Any, label_column: str, manifest: pd.DataFrame, positions: np.ndarray,
                   data: datasets.Dataset, weight_column: str) -> datasets.Dataset:
    """The rows at manifest ``positions`` from ``source``, with ``data``'s columns and features."""
    from influence_stage.data.arrow import ROW_ID
    from influence_stage.data.sources import load_source, row_ids

    ds = load_source(source, label_column=label_column)
    if ds.num_rows != len(manifest):
        raise InvalidInputError(f"the source has {ds.num_rows} rows, the version's input had {len(manifest)}; "
                                "expected the data the version was cleaned from.")
    ids = np.asarray(row_ids(ds)).astype(str)
    differ = np.flatnonzero(ids != manifest["row_id"].to_numpy().astype(str))
    if differ.size:
        raise InvalidInputError(f"the source holds other row ids than the version's manifest (first difference at "
                                f"row {int(differ[0])}); expected the data the version was cleaned from, in order.")
    rows = ds.select(positions.tolist())
    if ROW_ID not in data.column_names:
        rows = rows.remove_columns(ROW_ID)
    missing = [c for c in data.column_names if c not in rows.column_names]
    if missing == [weight_column]:
        rows = rows.add_column(weight_column, [1.0] * rows.num_rows)
    elif missing:
        raise InvalidInputError(f"the source has no column(s) {missing} of the published data; expected the data "
                                "the version was cleaned from.")
    rows = rows.select_columns(data.column_names)
    try:
        return rows.cast(data.features)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"the source's rows do not have the published data's column types ({exc}); "
                                "expected the data the version was cleaned from.") from exc


def _with_labels(ds: datasets.Dataset, label_column: str, at: dict[int, Any]) -> datasets.Dataset:
    """``ds`` with the label of row ``i`` set to ``at[i]`` (same features and column order)."""
    if not at:
        return ds
    values = list(ds[label_column])
    for i, value in at.items():
        values[i] = value
    feature = ds.features[label_column]
    out = ds.remove_columns(label_column).add_column(label_column, values, feature=feature)
    return out.select_columns(ds.column_names)


def reviewed_version(reviews: pd.DataFrame, version: Any, *, source: Any = None,
                     label_column: str | None = None) -> tuple[datasets.Dataset, pd.DataFrame, dict[str, Any]]:
    """The data, manifest and counts of the reviewed version (nothing written; see the module docstring).

    Parameters
    ----------
    reviews : DataFrame
        ``read_reviews``'s table against this version's class names.
    version : path
        A published version folder, or ``<root>/<name>`` for its latest version.
    source : path or dataset, optional
        The data the version was cleaned from (what ``load_source`` reads); needed when a reviewed
        row was dropped.
    label_column : str, optional
        Default: the version's (its ``config.json``), else ``label``.

    Returns
    -------
    data : datasets.Dataset
    manifest : DataFrame, one row per input row
    info : dict
        ``folder`` (the base version folder), ``meta``, ``config``, ``label_column`` and the counts
        ``n_reviewed``, ``n_changed`` (reviewed label differs from the given one), ``n_restored``
        (put back from the source), ``n_copies_kept_dropped``.
    """
    from influence_stage.data.arrow import ROW_ID
    from influence_stage.publish.layout import CONFIG_JSON
    from influence_stage.publish.read import load_published

    folder = _version_folder(version)
    data, manifest, meta = load_published(folder)
    config = json.loads((folder / CONFIG_JSON).read_text("utf-8")) if (folder / CONFIG_JSON).is_file() else {}
    clean = config.get("clean") or {}
    label_column = label_column or clean.get("label_column") or "label"
    weight_column = clean.get("weight_column") or "weight"
    classes = meta.get("classes")
    if classes is None or not {"action", "given_label", "row_id"} <= set(manifest.columns):
        raise InvalidInputError(f"{folder} records no classes or no action per row (a version published before "
                                "manifests held label values, or a curation); reviews apply to cleaned versions.")
    if label_column not in data.column_names:
        raise InvalidInputError(f"the published data of {folder} has no label column {label_column!r}; found "
                                f"{data.column_names}. Fix: pass the label column.")
    missing_cols = [c for c in REVIEW_TABLE_COLUMNS if c not in reviews.columns]
    if missing_cols:
        raise InvalidInputError(f"reviews must be read_reviews' table; it has no column(s) {missing_cols}.")
    codes = reviews["reviewed_label"].to_numpy(dtype=np.int64)
    if codes.size and (codes.min() < 0 or codes.max() >= len(classes)):
        raise InvalidInputError(f"reviewed label code {int(codes.max())} is not a class of {folder} "
                                f"({len(classes)} classes).")
    known = {str(r): i for i, r in enumerate(manifest["row_id"].tolist())}
    at = _positions(reviews["row_id"].tolist(), known, str(folder))
    value = [classes[c] for c in codes]

    action = manifest["action"].astype(object).to_numpy()
    kept = np.flatnonzero(action != "drop")
    if ROW_ID in data.column_names:
        data_pos = _positions(list(data[ROW_ID]), known, str(folder))
    elif data.num_rows == kept.size:
        data_pos = kept
    else:
        raise InvalidInputError(f"{folder} holds {data.num_rows} rows, its manifest keeps {kept.size}; the version "
                                "is damaged. Fix: re-publish it.")
    row_of = {int(p): j for j, p in enumerate(data_pos)}
    copy_of = manifest["exact_duplicate_of"].to_numpy() if "exact_duplicate_of" in manifest else None
    relabel: dict[int, Any] = {}
    restore: list[tuple[int, Any]] = []
    copies = []
    for p, v in zip(at.tolist(), value):
        if p in row_of:
            relabel[row_of[p]] = v
        elif copy_of is not None and int(copy_of[p]) >= 0:
            copies.append(p)
        else:
            restore.append((p, v))
    if restore and source is None:
        ids = [manifest["row_id"].tolist()[p] for p, _ in restore]
        raise InvalidInputError(f"{len(restore)} reviewed row(s) were dropped from {folder.name} (row_id "
                                f"{ids[0]!r} first); pass the source (the data the version was cleaned from) to "
                                "put them back with their reviewed labels.")
    out = _with_labels(data, label_column, relabel)
    if restore:
        back = _restored_rows(source, label_column, manifest, np.asarray([p for p, _ in restore]), data,
                              weight_column)
        back = _with_labels(back, label_column, {i: v for i, (_, v) in enumerate(restore)})
        order = np.argsort(np.concatenate([data_pos, [p for p, _ in restore]]), kind="stable")
        out = datasets.concatenate_datasets([out, back]).select(order.tolist())

    new = manifest.copy()
    given = new["given_label"].tolist()
    if "stage_action" not in new:
        new["stage_action"] = new["action"].astype(object)
    reviewed = new["reviewed"].to_numpy(dtype=bool).copy() if "reviewed" in new else np.zeros(len(new), dtype=bool)
    labels = new["reviewed_label"].astype(object).where(new["reviewed_label"].notna(), None).tolist() \
        if "reviewed_label" in new else [None] * len(new)
    action = new["action"].astype(object).to_numpy().copy()
    weight = new["weight"].to_numpy(dtype=np.float64).copy() if "weight" in new else None
    copies_set = set(copies)
    for p, v in zip(at.tolist(), value):
        reviewed[p] = True
        labels[p] = v
        if p not in copies_set:
            action[p] = "keep" if v == given[p] else "relabel"
            if weight is not None:
                weight[p] = 1.0
    new["reviewed"] = reviewed
    new["reviewed_label"] = _label_values(labels, new["given_label"])
    new["action"] = action
    if weight is not None:
        new["weight"] = weight
    info = {"folder": folder, "meta": meta, "config": config, "label_column": label_column,
            "n_reviewed": int(len(at)), "n_changed": int(sum(v != given[p] for p, v in zip(at.tolist(), value))),
            "n_restored": len(restore), "n_copies_kept_dropped": len(copies)}
    return out, new, info


def publish_reviews(reviews_path: Any, version: Any, *, fmt: str | None = None, source: Any = None,
                    label_column: str | None = None, new_version: str | None = None) -> Any:
    """Apply the reviewed labels of a review file to a published version, as a new version of its name.

    Parameters
    ----------
    reviews_path : path
        The review file (``read_reviews``).
    version : path
        A published version folder, or ``<root>/<name>`` for its latest version; the new version is
        published beside it (same root and name), and ``LATEST`` moves to it.
    fmt : {"label-studio", "csv", "parquet", "argilla"}, optional
        Default: by the suffix.
    source : path or dataset, optional
        The data the version was cleaned from; needed when a reviewed row was dropped.
    label_column : str, optional
        Default: the version's.
    new_version : str, optional
        The new version's name (default the next ``vNNNN``).

    Returns
    -------
    Published

    Raises
    ------
    InvalidInputError
        See ``read_reviews`` and ``reviewed_version``; nothing is published.

    Examples
    --------
    >>> from influence_stage.issues.reviews import publish_reviews  # doctest: +SKIP
    >>> publish_reviews("project-export.json", "data/published/digits",  # doctest: +SKIP
    ...                 source="data/digits/train.parquet")
    """
    from influence_stage.publish.store import sha256
    from influence_stage.publish.unchanged import config_digest
    from influence_stage.publish.versions import publish

    folder = _version_folder(version)
    meta_names = json.loads((folder / "meta.json").read_text("utf-8"))
    names = meta_names.get("class_names") or [str(c) for c in (meta_names.get("classes") or [])]
    if not names:
        raise InvalidInputError(f"{folder} records no classes; reviews apply to cleaned versions.")
    fmt = review_format(reviews_path, fmt)
    reviews = read_reviews(reviews_path, names, fmt)
    if not len(reviews):
        raise InvalidInputError(f"{Path(reviews_path).name} holds no reviewed row (no annotation, response or "
                                f"{REVIEW_COLUMN!r} value); nothing to publish. Expected the review tool's export "
                                "after review, not the file export wrote.")
    data, manifest, info = reviewed_version(reviews, folder, source=source, label_column=label_column)
    path = Path(reviews_path).expanduser().resolve()
    digest = sha256(path)
    meta = info["meta"]
    summary = dict(meta.get("summary") or {})
    summary["reviews"] = {"file": str(path), "file_name": path.name, "sha256": digest, "format": fmt,
                          "stored_as": f"reviews/{path.name}", "from_version": folder.name,
                          **{k: info[k] for k in ("n_reviewed", "n_changed", "n_restored", "n_copies_kept_dropped")}}
    return publish(data, manifest, root=folder.parent.parent, name=folder.parent.name, version=new_version,
                   config=info["config"], fingerprint=meta.get("fingerprint"), classes=meta.get("classes"),
                   class_names=meta.get("class_names"), summary=summary,
                   extra_files={f"reviews/{path.name}": path.read_bytes()},
                   config_fingerprint=config_digest({"config": info["config"], "reviews_sha256": digest}))


__all__ = ["FORMAT_BY_SUFFIX", "REVIEW_COLUMN", "REVIEW_FORMATS", "publish_reviews", "read_reviews",
           "review_format", "reviewed_version"]

"""Checks of a cleaning command line that read only the source's schema, before anything starts.

A mistyped ``--label-column``, a feature pattern that matches nothing, an unreadable file or a
name with control characters is reported (exit 2, one line) within a second or two: the check
reads a parquet footer, a CSV header, the first JSON line or a ``save_to_disk`` folder's
``dataset_info.json``, with pyarrow and the standard library only. Neither Prefect, nor Great
Expectations, nor ``datasets``, nor torch is imported, and no Prefect server starts. The full
checks of the data (values, numeric columns, classes) still run when it is loaded.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
from pathlib import Path
from typing import Any

SHOWN_COLUMNS = 12
"""How many column names an error lists (wide data has hundreds)."""

_DATA_SUFFIXES = {".parquet", ".pq", ".csv", ".tsv", ".json", ".jsonl", ".ndjson"}
_COMPRESSION = {".gz", ".bz2", ".xz", ".zst"}


def _raw_settings(args: argparse.Namespace) -> dict[str, Any]:
    """``source``, ``name``, ``label_column``, ``feature_columns``, ``split`` from the flags and the raw
    ``--config`` YAML (flags win), without building the configuration (which imports Prefect)."""
    from influence_stage._checks import read_yaml_mapping

    data: dict[str, Any] = {}
    if getattr(args, "config", None):
        from influence_stage.cli.clean import demo_config

        data = read_yaml_mapping(demo_config() if args.config == "demo" else args.config)
    clean = data.get("clean") if isinstance(data.get("clean"), dict) else {}
    out = {"source": data.get("source"), "name": data.get("name"), "label_column": clean.get("label_column"),
           "feature_columns": clean.get("feature_columns"), "split": clean.get("split")}
    for key in out:
        if getattr(args, key, None) is not None:
            out[key] = getattr(args, key)
    out["normalize_labels"] = clean.get("normalize_labels") or ()
    if getattr(args, "normalize_labels", None) is not None:
        from influence_stage.cli.clean import normalization_steps

        out["normalize_labels"] = normalization_steps(args.normalize_labels)
    return out


def _shown(columns: list[str]) -> str:
    if len(columns) <= SHOWN_COLUMNS:
        return repr(columns)
    return f"{repr(columns[:SHOWN_COLUMNS])[:-1]}, … ({len(columns)} in all)]"


def _data_suffix(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION:
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes and suffixes[-1] in _DATA_SUFFIXES else None


def file_columns(path: Path) -> list[str] | None:
    """The column names of one data file, reading only its schema; None when they cannot be told cheaply.

    Raises
    ------
    InvalidInputError
        The file cannot be read (permissions, not a parquet file, no header).
    """
    from influence_stage.errors import InvalidInputError

    suffix = _data_suffix(path)
    if suffix is None or path.stat().st_size == 0:
        return None  # an unknown suffix or an empty file: preflight names it (check_local_source)
    try:
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        if suffix in (".csv", ".tsv"):
            import pyarrow.csv as pacsv

            delimiter = "\t" if suffix == ".tsv" else ","
            with pacsv.open_csv(path, parse_options=pacsv.ParseOptions(delimiter=delimiter)) as reader:
                return list(reader.schema.names)
        if suffix in (".jsonl", ".ndjson", ".json") and path.suffix.lower() == suffix:
            with path.open("r", encoding="utf-8") as f:
                first = f.readline()
            try:
                row = json.loads(first)
            except ValueError:
                return None  # a JSON document over several lines: left to the loader
            return list(row) if isinstance(row, dict) else None
    except OSError as exc:
        raise InvalidInputError(f"source file {path} cannot be read ({type(exc).__name__}: "
                                f"{' '.join(str(exc).split())}). Fix: check the file and its permissions.") from exc
    except Exception as exc:  # pyarrow's ArrowInvalid: not parquet, an empty CSV, bad bytes
        raise InvalidInputError(f"source file {path} cannot be read as {suffix.lstrip('.')} "
                                f"({' '.join(str(exc).split())}). Fix: check that the file is what its suffix "
                                "says.") from exc
    return None


def _saved_columns(folder: Path, split: str | None) -> list[str] | None:
    info = folder / "dataset_info.json"
    if not info.is_file() and (folder / "dataset_dict.json").is_file():
        splits = json.loads((folder / "dataset_dict.json").read_text(encoding="utf-8")).get("splits") or []
        if split is None and len(splits) == 1:
            split = splits[0]
        if split is None or split not in splits:
            return None  # the loader names the splits
        info = folder / split / "dataset_info.json"
    try:
        features = json.loads(info.read_text(encoding="utf-8")).get("features")
    except (OSError, ValueError):
        return None
    return list(features) if isinstance(features, dict) else None


def source_columns(source: Any, split: str | None = None) -> list[str] | None:
    """The columns of a local source (file, folder of files, ``save_to_disk`` folder); None for a hub
    id, an in-memory source, or a layout whose schema is left to the loader."""
    if not isinstance(source, (str, os.PathLike)):
        return None
    path = Path(os.fspath(source)).expanduser()
    if not path.exists():
        return None  # a hub id, or a missing path (preflight names it)
    if path.is_file():
        return file_columns(path)
    if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
        return _saved_columns(path, split)
    files = sorted(f for f in path.rglob("*") if f.is_file() and _data_suffix(f) is not None
                   and not any(part.startswith(".") for part in f.relative_to(path).parts))
    if split is not None:
        files = [f for f in files if split in f.relative_to(path).as_posix()] or files
    return file_columns(files[0]) if files else None


def check_columns(columns: list[str], label_column: str | None, feature_columns: Any) -> None:
    """The label column exists; every feature column exists or its pattern matches one.

    Raises
    ------
    InvalidInputError
        Naming the missing column or pattern and the columns there are.
    """
    from influence_stage.errors import InvalidInputError

    label = label_column or "label"
    if label not in columns:
        raise InvalidInputError(f"label column {label!r} not found; available columns: {_shown(columns)}. "
                                "Fix: pass --label-column with one of them.")
    for name in [feature_columns] if isinstance(feature_columns, str) else list(feature_columns or ()):
        if not isinstance(name, str):
            continue
        if any(ch in name for ch in "*?[") and name not in columns:
            if not fnmatch.filter(columns, name):
                raise InvalidInputError(f"feature column pattern {name!r} matches no column; available columns: "
                                        f"{_shown(columns)}.")
        elif name not in columns:
            raise InvalidInputError(f"feature column {name!r} not found; available columns: {_shown(columns)}. "
                                    "Fix: pass --feature-columns with columns of the source.")


def source_file(source: Any, split: str | None = None) -> Path | None:
    """The one data file a local source reads (a file, or the first file of a folder); None otherwise."""
    if not isinstance(source, (str, os.PathLike)):
        return None
    path = Path(os.fspath(source)).expanduser()
    if path.is_file():
        return path if _data_suffix(path) is not None else None
    if not path.is_dir() or (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
        return None
    files = sorted(f for f in path.rglob("*") if f.is_file() and _data_suffix(f) is not None
                   and not any(part.startswith(".") for part in f.relative_to(path).parts))
    if split is not None:
        files = [f for f in files if split in f.relative_to(path).as_posix()] or files
    return files[0] if len(files) == 1 else None


def label_values(path: Path, label_column: str) -> list[str] | None:
    """The distinct string labels of a parquet or CSV file, read with pyarrow (one column); None when the
    labels are not strings or the file is of another kind (the loader checks them)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    suffix = _data_suffix(path)
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        column = pq.read_table(path, columns=[label_column]).column(label_column)
    elif suffix in (".csv", ".tsv"):
        import pyarrow.csv as pacsv

        delimiter = "\t" if suffix == ".tsv" else ","
        column = pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter=delimiter),
                                convert_options=pacsv.ConvertOptions(include_columns=[label_column])
                                ).column(label_column)
    else:
        return None
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return None
    return [v for v in pc.unique(column).to_pylist() if v is not None]


def check_label_spelling(source: Any, split: str | None, label_column: str | None, normalize: Any) -> None:
    """Distinct string labels that collide under a normalisation not asked for: refused before anything starts.

    Raises
    ------
    InvalidInputError
        ``data.spelling.check_label_spellings``'s message, naming the colliding labels and the
        ``--normalize-labels`` steps that merge them.
    """
    path = source_file(source, split)
    if path is None:
        return
    try:
        values = label_values(path, label_column or "label")
    except Exception:  # unreadable here: the loader reports it with its own message
        return
    if values:
        from influence_stage.data.spelling import check_label_spellings

        check_label_spellings(values, label_column or "label", normalize)


def check_args(args: argparse.Namespace) -> None:
    """The checks that need only the command line and the source's schema (see the module docstring)."""
    from influence_stage._checks import check_safe_name

    raw = _raw_settings(args)
    if raw["name"] is not None:
        check_safe_name(raw["name"], "name")
    columns = source_columns(raw["source"], raw["split"]) if raw["source"] is not None else None
    if columns is not None:
        check_columns(columns, raw["label_column"], raw["feature_columns"])
        check_label_spelling(raw["source"], raw["split"], raw["label_column"], raw["normalize_labels"])

"""Column roles: which column is the label, which are features and of what kind (tabular, image, text)."""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import datasets
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from influence_stage.data.arrow import (
    ROW_ID,
    Kind,
    arrow_column,
    column_kinds,
    string_columns,
    where,
)
from influence_stage.errors import (
    InvalidInputError,
    InvalidTypeError,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ColumnRoles:
    """Which column is the label and which columns are features.

    Attributes
    ----------
    label_column : str
        The label column.
    feature_columns : tuple of str
        Feature columns: one image column, one or more text columns (joined with a space), or one
        or more numeric / bool columns.
    kind : {"tabular", "image", "text"}
        How the feature columns are featurized.
    """

    label_column: str
    feature_columns: tuple[str, ...]
    kind: Kind


def label_not_found(label_column: str, columns: Sequence[str]) -> InvalidInputError:
    """The error for a label column that is not among ``columns`` (which it lists)."""
    return InvalidInputError(
        f"label column {label_column!r} not found; available columns: {list(columns)}. "
        "Fix: pass label_column= with one of them."
    )


def schema_features(ds: datasets.Dataset) -> datasets.Features:
    """``ds``'s features without a copy, to read only (``Dataset.features`` deep-copies every feature)."""
    return ds.info.features


def _isin(names: Sequence[object] | np.ndarray, values: Sequence[object]) -> np.ndarray:
    """``(len(names),) bool``: which names are among ``values``, one hash-table pass (any mix of types)."""
    return pd.Index(np.asarray(names, dtype=object), dtype=object).isin(list(values))


def check_label_present(ds: datasets.Dataset, label_column: str) -> None:
    if label_column not in ds.column_names:
        raise label_not_found(label_column, ds.column_names)


def missing_mask(col: pa.Array, class_label: bool) -> np.ndarray:
    """``(n,) bool``: null, NaN, or — for a ClassLabel — ``-1`` (datasets' "no label")."""
    missing = col.is_null(nan_is_null=True) if pa.types.is_floating(col.type) else col.is_null()
    if class_label and pa.types.is_integer(col.type):
        missing = pc.or_(missing, pc.fill_null(pc.equal(col, -1), False))
    return missing.to_numpy(zero_copy_only=False)


def check_label_values(ds: datasets.Dataset, label_column: str) -> pa.Array:
    """The label column as an Arrow array; errors when absent or when a label is missing."""
    check_label_present(ds, label_column)
    col = arrow_column(ds, label_column)
    missing = missing_mask(col, isinstance(schema_features(ds)[label_column], datasets.ClassLabel))
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        rid = arrow_column(ds, ROW_ID)[row].as_py() if ROW_ID in ds.column_names else None
        raise InvalidInputError(
            f"label column {label_column!r} has {int(missing.sum())} missing label(s) (null, NaN or ClassLabel "
            f"-1); the first at {where(row, rid)}. Expected a label on every row. "
            "Fix: drop or label those rows first."
        )
    return col


def mean_text_length(ds: datasets.Dataset, column: str, rows: int = 1000) -> float:
    sample = ds.with_format("arrow", columns=[column])[: min(rows, ds.num_rows)][column]
    lengths = pc.utf8_length(sample)
    return float(pc.mean(lengths).as_py() or 0.0)


def expand_patterns(names: list[str], columns: Sequence[str]) -> list[str]:
    """Expand shell-style patterns among ``names`` against ``columns`` (plain names pass through)."""
    out: list[str] = []
    seen: set[str] = set()
    known = set(columns)
    for name in names:
        if isinstance(name, str) and any(ch in name for ch in "*?[") and name not in known:
            hits = fnmatch.filter(columns, name)
            if not hits:
                raise InvalidInputError(
                    f"feature column pattern {name!r} matches no column; available columns: {list(columns)}."
                )
            new = [h for h in hits if h not in seen]
            out += new
            seen.update(new)
        else:
            out.append(name)
            seen.add(name)
    return out


MOSTLY_NUMERIC_FRACTION = 0.5
"""A string column is "numeric except for a few cells" when more than this share of its present
cells parse as numbers and at least one does not (see ``check_numeric_columns``)."""


_MISSING_TEXT = {"", "nan", "na", "n/a", "null", "none"}


def non_numeric_cells(col: pa.Array) -> np.ndarray | None:
    """Positions of the cells of a string column that are not numbers, when most cells are; else None."""
    values = pd.Series(col.to_pylist(), dtype=object)
    text = values.where(values.isna(), values.astype(str).str.strip())
    present = text.notna() & ~text.str.lower().isin(_MISSING_TEXT)
    numeric = pd.to_numeric(text.where(present), errors="coerce").notna() & present
    bad = present & ~numeric
    if not bad.any() or int(numeric.sum()) <= MOSTLY_NUMERIC_FRACTION * int(present.sum()):
        return None
    return np.flatnonzero(bad.to_numpy())


def check_numeric_columns(
    ds: datasets.Dataset,
    label_column: str,
    feature_columns: Sequence[str] | str | None = None,
    *,
    coerce: bool = False,
) -> datasets.Dataset:
    """Refuse (or, with ``coerce``, repair) string columns that are numbers except for a few cells.

    One stray ``"?"`` in a CSV's numeric column makes the whole column strings, and the automatic
    column choice (``resolve_columns``) would then featurize the table as text on that column
    alone. A string column (among ``feature_columns``, or every column but the label and
    ``row_id`` when None) of which more than ``MOSTLY_NUMERIC_FRACTION`` of the present cells
    parse as numbers and at least one does not is such a column.

    Parameters
    ----------
    ds : datasets.Dataset
    label_column : str
    feature_columns : sequence of str or str, optional
        Explicit feature columns (patterns allowed); None checks every candidate column.
    coerce : bool, default False
        Read the cells that are not numbers as missing (null) and the column as float64; their
        rows are then the ``null`` issue type, as for any missing feature value.

    Returns
    -------
    datasets.Dataset
        ``ds`` itself when nothing is coerced, else a copy with those columns as float64.

    Raises
    ------
    InvalidInputError
        (``coerce=False``) naming the column, how many cells are not numbers, and the first rows
        and values.
    """
    if feature_columns is None:
        columns = np.asarray(ds.column_names, dtype=object)
        columns = columns[~_isin(columns, [label_column, ROW_ID])]
    else:
        names = [feature_columns] if isinstance(feature_columns, str) else list(feature_columns)
        columns = np.asarray(expand_patterns(names, ds.column_names), dtype=object)
    # Only string columns can be such columns: pick them from the schema once (a set test over all
    # columns at once), read only those.
    strings = columns[_isin(columns, string_columns(schema_features(ds)))]
    fixed: dict[str, pa.Array] = {}
    for c in strings:  # string columns only: a table of numbers reads none
        col = arrow_column(ds, c)
        bad = non_numeric_cells(col)
        if bad is None:
            continue
        if not coerce:
            ids = arrow_column(ds, ROW_ID).to_pylist() if ROW_ID in ds.column_names else None
            shown = ", ".join(f"{where(int(r), None if ids is None else ids[int(r)])}: {col[int(r)].as_py()!r}"
                              for r in bad[:5])
            more = f", ... ({bad.size} in all)" if bad.size > 5 else ""
            cells = "cell that is not a number" if bad.size == 1 else "cells that are not numbers"
            raise InvalidInputError(
                f"column {c!r} is numeric except for {bad.size} {cells} ({shown}{more}); "
                "read as strings it would silently make the features text (or be left out). Expected a number "
                f"in every cell of a numeric column. Fix: repair or drop those rows, or set coerce_numeric: true "
                "to read those cells as missing (their rows are then reported as null issues)."
            )
        values = pd.Series(col.to_pylist(), dtype=object)
        text = values.where(values.isna(), values.astype(str).str.strip())
        fixed[c] = pa.array(pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64), type=pa.float64(),
                            from_pandas=True)
        logger.warning("column %r: %d cell(s) that are not numbers read as missing (coerce_numeric); first at %s",
                       c, bad.size, where(int(bad[0]), None))
    if not fixed:
        return ds
    from datasets.table import InMemoryTable

    table = ds.with_format("arrow")[:]
    features = schema_features(ds).copy()
    for c, array in fixed.items():
        table = table.set_column(table.column_names.index(c), c, array)
        features[c] = datasets.Value("float64")
    return datasets.Dataset(InMemoryTable(table), info=datasets.DatasetInfo(features=features))


def resolve_columns(
    ds: datasets.Dataset,
    label_column: str,
    feature_columns: Sequence[str] | str | None = None,
) -> ColumnRoles:
    """Choose the label and feature columns and the featurizer kind.

    Automatic choice (``feature_columns=None``), among columns other than the label and ``row_id``:
    an image column (``datasets.Image``, ``Array2D`` / ``Array3D``, or nested numeric lists of
    2 or 3 levels; the first one if several) gives ``"image"``; else a string column (the one with
    the longest mean length over the first 1000 rows if several) gives ``"text"``; else all numeric
    and bool columns give ``"tabular"``. Columns left out are logged. ``ClassLabel`` columns other
    than the label are left out automatically (they often encode a coarser label) but may be
    named explicitly.

    Parameters
    ----------
    ds : datasets.Dataset
        ``n`` rows.
    label_column : str
        Must exist and have no missing values (null, NaN, ClassLabel ``-1``).
    feature_columns : sequence of str or str, optional
        Explicit feature columns; all must exist and be of one kind. Names may be shell-style
        patterns (``"px_*"``), expanded in column order; a pattern that matches nothing is an error.

    Returns
    -------
    ColumnRoles
    """
    check_label_values(ds, label_column)
    features = schema_features(ds)
    kinds = column_kinds(features)  # one verdict per distinct feature type
    names = np.asarray(list(kinds), dtype=object)
    kind_of = np.asarray(list(kinds.values()), dtype=object)  # (d,) in column order
    if feature_columns is not None:
        cols = [feature_columns] if isinstance(feature_columns, str) else list(feature_columns)
        cols = expand_patterns(cols, ds.column_names)
        if not cols:
            raise InvalidInputError("feature_columns is empty; expected at least one column, or None for automatic.")
        # Each check is one vectorised pass over the list; the first offending column is named.
        at = pd.Index(names).get_indexer(pd.Index(cols, dtype=object))
        if (at < 0).any():
            raise InvalidInputError(
                f"feature column {cols[int(np.argmax(at < 0))]!r} not found; available columns: {ds.column_names}. "
                "Fix: correct feature_columns."
            )
        chosen_kinds = kind_of[at]
        reserved = _isin(np.asarray(cols, dtype=object), [label_column, ROW_ID])
        if reserved.any():
            raise InvalidInputError(
                f"feature column {cols[int(np.argmax(reserved))]!r} is the label or the row id; expected other "
                "columns. Fix: remove it from feature_columns."
            )
        unusable = pd.isna(chosen_kinds)
        if unusable.any():
            c = cols[int(np.argmax(unusable))]
            raise InvalidTypeError(
                f"feature column {c!r} has dtype {features[c]!r}, which cannot be featurized; "
                "expected numbers / bools (tabular), strings (text), or images / 2-D or 3-D arrays (image). "
                "Fix: convert the column or leave it out."
            )
        found = set(np.where(chosen_kinds == "categorical", "numeric", chosen_kinds).tolist())
        if len(found) > 1:
            detail = ", ".join(f"{c}: {k}" for c, k in zip(cols, chosen_kinds))
            raise InvalidInputError(
                f"feature columns mix kinds ({detail}); expected all numeric, all text, or one image column. "
                "Fix: featurize them separately or choose one kind."
            )
        (kind,) = found
        if kind == "image" and len(cols) > 1:
            raise InvalidInputError(f"expected one image column; found {cols}. Fix: name one of them.")
        return ColumnRoles(label_column, tuple(cols), {"numeric": "tabular"}.get(kind, kind))  # type: ignore[arg-type]

    is_candidate = ~_isin(names, [label_column, ROW_ID])
    candidates = names[is_candidate]
    images = names[is_candidate & (kind_of == "image")]
    texts = names[is_candidate & (kind_of == "text")]
    numeric = names[is_candidate & (kind_of == "numeric")]
    if images.size:
        chosen, kind = [images[0]], "image"
    elif texts.size:
        best = max(texts, key=lambda c: mean_text_length(ds, c)) if texts.size > 1 else texts[0]
        chosen, kind = [best], "text"
    elif numeric.size:
        chosen, kind = numeric.tolist(), "tabular"
    else:
        detail = ", ".join(f"{c}: {features[c]!r}" for c in candidates) or "none"
        raise InvalidInputError(
            f"no usable feature column besides the label {label_column!r}; columns found: {detail}. "
            "Expected numeric, string or image columns. Fix: pass feature_columns= or featurize the data yourself."
        )
    ignored = candidates[~_isin(candidates, chosen)].tolist()
    if ignored:
        logger.info("Featurizing %s column(s) %s as %r; ignoring %s.", len(chosen), chosen, kind, ignored)
    return ColumnRoles(label_column, tuple(chosen), kind)  # type: ignore[arg-type]

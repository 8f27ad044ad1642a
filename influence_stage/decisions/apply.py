"""Decisions to data: one rule (``decision_arrays``) and thin writers for a Dataset, a DataFrame and arrays.

``drop`` removes a row, ``relabel`` writes the suggested label (in the input's own label values),
``reweight`` adds a weight column, ``keep`` changes nothing. Every writer takes the kept positions,
the relabel mask and the weights from ``decision_arrays``, so the three outputs agree row for row.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import datasets
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from influence_stage.data.labels import LabelEncoding
from influence_stage.data.arrow import arrow_column, preview
from influence_stage.data.columns import check_label_present
from influence_stage.data.sources import row_ids
from influence_stage.decisions.schema import ROW_ACTIONS
from influence_stage.errors import InvalidInputError, InvalidTypeError

logger = logging.getLogger(__name__)


def check_new_weight_column(columns: Iterable[str], weight_column: str) -> None:
    """Refuse a weight column name the data already has: reweighting adds that column."""
    if weight_column in list(columns):
        raise InvalidInputError(
            f"column {weight_column!r} already exists; action='reweight' adds a weight column of that name. "
            "Fix: set weight_column to another name."
        )



def aligned_decisions(ds: datasets.Dataset, table: pd.DataFrame) -> pd.DataFrame:
    """The decision table reordered to ``ds``'s rows; errors on missing, extra or duplicated ids."""
    if not isinstance(table, pd.DataFrame):
        raise InvalidTypeError(f"table must be a pandas DataFrame; found {type(table).__name__}.")
    required = ["row_id", "action", "suggested_label", "weight"]
    missing_cols = [c for c in required if c not in table.columns]
    if missing_cols:
        raise InvalidInputError(
            f"decision table lacks column(s) {missing_cols}; found {list(table.columns)}. "
            f"Expected {required}."
        )
    if table["row_id"].isna().any():
        i = int(np.flatnonzero(table["row_id"].isna().to_numpy())[0])
        raise InvalidInputError(f"decision table has a null row_id at table row {i}; expected an id on every row.")
    actions = table["action"].astype("object")
    bad = ~actions.isin(ROW_ACTIONS)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InvalidInputError(
            f"decision table row_id {table['row_id'].tolist()[i]!r} has action {actions.iloc[i]!r}; "
            f"expected one of {list(ROW_ACTIONS)}."
        )
    tids = table["row_id"].to_numpy()
    dup = pd.Index(tids).duplicated()
    if dup.any():
        raise InvalidInputError(
            f"decision table lists row_id {tids[np.flatnonzero(dup)[0]].item()!r} more than once "
            f"({int(dup.sum())} duplicate(s)); expected each row_id exactly once."
        )
    ids = row_ids(ds)
    pos = pd.Index(tids).get_indexer(ids)
    if (pos < 0).any():
        missing = ids[pos < 0]
        raise InvalidInputError(
            f"decision table is missing {missing.size} row_id(s) of the dataset: {preview(missing.tolist())}. "
            "Expected one decision per dataset row."
        )
    if len(tids) != len(ids):
        extra = np.setdiff1d(tids, ids)
        raise InvalidInputError(
            f"decision table has {extra.size} row_id(s) not in the dataset: {preview(extra.tolist())}. "
            "Fix: decide on the rows of this dataset only."
        )
    return table.iloc[pos].reset_index(drop=True)


def relabel_targets(table: pd.DataFrame, relabel: np.ndarray, n_classes: int) -> np.ndarray:
    """The ``suggested_label`` codes of the ``relabel`` rows ``(n,) bool`` of ``table``, ``(n_relabel,) int64``.

    A relabel row's suggestion must be a class code ``0..n_classes-1``; an empty one (null) or any
    other value is an error naming the row. Other rows' suggestions may be empty.
    """
    values = pd.to_numeric(pd.Series(table["suggested_label"]).astype(object), errors="coerce")
    suggested = values.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = relabel & ~(np.isfinite(suggested) & (suggested == np.round(suggested)) & (suggested >= 0)
                      & (suggested < n_classes))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        found = table["suggested_label"].tolist()[i]
        raise InvalidInputError(
            f"relabel of row_id {table['row_id'].tolist()[i]!r} has suggested_label "
            f"{'empty (null)' if pd.isna(found) else repr(found)}; expected a class code in 0..{n_classes - 1}."
        )
    return suggested[relabel].astype(np.int64)


def decision_arrays(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The one rule every writer of decisions follows (Dataset, DataFrame, arrays).

    Returns
    -------
    keep : ``(n_keep,) int64`` positions of rows whose action is not ``drop``, in order.
    relabel : ``(n,) bool`` rows whose label becomes ``suggested_label``.
    weights : ``(n,) float64`` the table's weight on ``reweight`` rows, 1.0 elsewhere.
    """
    actions = table["action"].to_numpy(dtype=object)
    given = pd.to_numeric(table["weight"], errors="coerce").to_numpy(dtype=np.float64)
    weights = np.where(actions == "reweight", given, 1.0)
    return np.flatnonzero(actions != "drop"), actions == "relabel", weights


def apply_decisions(
    ds: datasets.Dataset,
    table: pd.DataFrame,
    *,
    label_column: str,
    encoding: LabelEncoding,
    weight_column: str = "weight",
) -> datasets.Dataset:
    """Apply keep / drop / relabel / reweight decisions to the dataset.

    - ``drop`` removes the row;
    - ``relabel`` writes ``encoding.decode(suggested_label)`` into ``label_column``; the column keeps
      its feature type (e.g. ``ClassLabel`` with its names) and position;
    - ``reweight``: when any row is reweighted, a float64 column ``weight_column`` is appended,
      holding the table's ``weight`` on reweighted rows and 1.0 on the others;
    - ``keep`` changes nothing.

    All other columns (``row_id`` included) are untouched and the kept rows stay in their order.

    Parameters
    ----------
    ds : datasets.Dataset
        ``n`` rows with a ``row_id`` column.
    table : pandas.DataFrame
        Columns ``row_id, action, suggested_label, weight``; every ``row_id`` of ``ds`` exactly
        once. ``suggested_label`` is a code ``0..K-1`` on relabel rows (elsewhere it may be empty); ``weight``
        must be finite and >= 0 on reweight rows.
    label_column : str
        The label column to rewrite.
    encoding : LabelEncoding
        Decodes the suggested codes into label values.
    weight_column : str, default "weight"
        Name of the added weight column; must not exist yet.

    Returns
    -------
    datasets.Dataset
        ``n - n_drop`` rows.
    """
    check_label_present(ds, label_column)
    if not isinstance(encoding, LabelEncoding):
        raise InvalidTypeError(f"encoding must be a LabelEncoding; found {type(encoding).__name__}.")
    dec = aligned_decisions(ds, table)
    actions = dec["action"].to_numpy(dtype=object)
    ids = dec["row_id"].tolist()
    out = ds
    keep, relabel, weights = decision_arrays(dec)

    if relabel.any():
        new_values = encoding.decode(relabel_targets(dec, relabel, encoding.n_classes))
        original = arrow_column(out, label_column)
        try:
            replacement = pa.array(new_values.tolist(), type=original.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InvalidTypeError(
                f"decoded labels {preview(new_values.tolist(), 3)} do not fit label column {label_column!r} of "
                f"type {original.type}. Fix: pass the LabelEncoding built on this label column."
            ) from exc
        updated = pc.replace_with_mask(original, pa.array(relabel), replacement)
        column = updated.to_pylist() if updated.type in (pa.string(), pa.large_string()) \
            else updated.to_numpy(zero_copy_only=False)
        order = out.column_names
        # remove + add keeps the feature (e.g. ClassLabel names); select_columns restores the position.
        out = out.remove_columns(label_column).add_column(label_column, column, feature=out.features[label_column])
        out = out.select_columns(order)

    reweight = actions == "reweight"
    if reweight.any():
        check_new_weight_column(out.column_names, weight_column)
        bad = reweight & ~(np.isfinite(weights) & (weights >= 0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InvalidInputError(
                f"reweight of row_id {ids[i]!r} has weight {dec['weight'].tolist()[i]!r}; expected a finite number >= 0."
            )
        out = out.add_column(weight_column, weights, feature=datasets.Value("float64"))

    if keep.size < out.num_rows:
        out = out.select(keep)
    logger.info(
        "Applied decisions: %d kept, %d dropped, %d relabelled, %d reweighted.",
        int((actions == "keep").sum()), int((actions == "drop").sum()), int(relabel.sum()), int(reweight.sum()),
    )
    if out.num_rows == 0:
        logger.warning("Every row was dropped; the cleaned dataset is empty.")
    return out


def apply_to_arrays(X: np.ndarray, y: np.ndarray, table: pd.DataFrame,
                     encoding: LabelEncoding) -> tuple[np.ndarray, np.ndarray]:
    """``(X_res, y_res)``: kept rows of ``X``, labels with relabels applied (same dtype as ``y``)."""
    keep, relabel_mask, _ = decision_arrays(table)
    y_out = np.array(y, dtype=object if y.dtype.kind in "USO" else y.dtype, copy=True)
    relabel = np.flatnonzero(relabel_mask)
    if relabel.size:
        y_out[relabel] = frame_label_values(pd.Series(y), encoding,
                                            relabel_targets(table, relabel_mask, encoding.n_classes))
    if y.dtype.kind in "US":
        y_out = np.asarray(y_out.tolist())
    return X[keep], y_out[keep]


def frame_label_values(labels: pd.Series, encoding: LabelEncoding, codes: np.ndarray) -> list[Any]:
    """Label values of ``codes`` as the frame itself spells them (its dtype, categories, objects)."""
    first: dict[int, Any] = {}
    positions = pd.Series(np.arange(len(encoding.codes))).groupby(encoding.codes).first()
    for code, pos in positions.items():
        first[int(code)] = labels.iloc[int(pos)]
    decoded = encoding.decode(codes)
    return [first.get(int(c), d) for c, d in zip(codes, decoded)]


def apply_to_frame(df: pd.DataFrame, table: pd.DataFrame, encoding: LabelEncoding,
                    config: Any) -> pd.DataFrame:
    """The decisions applied to the frame they were made on (rows in the same order).

    Same rules as ``influence_stage.stage.steps.apply_step``; the frame keeps its index, dtypes
    and column order.
    """
    if len(table) != len(df):
        raise InvalidInputError(f"decisions cover {len(table)} rows; the frame has {len(df)}.")
    keep, relabel_mask, weights = decision_arrays(table)
    out = df.copy()
    relabel = np.flatnonzero(relabel_mask)
    if relabel.size:
        col = out[config.label_column].copy()
        col.iloc[relabel] = frame_label_values(df[config.label_column], encoding,
                                                relabel_targets(table, relabel_mask, encoding.n_classes))
        out[config.label_column] = col
    if config.action == "reweight":
        check_new_weight_column(out.columns, config.weight_column)
        out[config.weight_column] = weights
    return out.iloc[keep] if keep.size < len(out) else out

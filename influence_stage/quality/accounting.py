"""Accounting: one row per input row_id, joining the manifest and the output, so the output suite can check that every row is accounted for."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from influence_stage.data.arrow import ROW_ID
from influence_stage.decisions.schema import ROW_ACTIONS
from influence_stage.errors import (
    InvalidTypeError,
)



FROM_INPUT = "input"


NOT_FROM_INPUT = "not an input row_id"


def _int_ids(values: pd.Series, what: str) -> pd.Series:
    """Non-null row ids as int64 (nulls are reported by the not-null expectations)."""
    values = values[values.notna()]
    try:
        return pd.to_numeric(values).astype("int64")
    except (TypeError, ValueError) as exc:
        raise InvalidTypeError(f"{what} row_id must hold integers; found dtype {values.dtype}.") from exc


def _manifest_labels(values: pd.Series) -> np.ndarray:
    """Manifest label values as plain Python objects (numpy scalars unwrapped); None where missing."""
    out = np.full(len(values), None, dtype=object)
    for i, v in enumerate(values.to_numpy(dtype=object)):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            continue
        out[i] = v.item() if isinstance(v, np.generic) else v
    return out


def _get(frame: pd.DataFrame, column: str) -> pd.Series:
    """``frame[column]`` as objects, or all None when the column is absent."""
    if column in frame.columns:
        return frame[column].astype(object)
    return pd.Series(None, index=frame.index, dtype=object)


def _get_float(frame: pd.DataFrame, column: str) -> pd.Series:
    """``frame[column]`` as float64 (NaN where not a number), or all NaN when the column is absent."""
    if column in frame.columns:
        return pd.to_numeric(frame[column], errors="coerce").astype(np.float64)
    return pd.Series(np.nan, index=frame.index, dtype=np.float64)


def _keyed(frame: pd.DataFrame, what: str, count_column: str) -> pd.DataFrame:
    """The first row of each non-null ``row_id`` (as int64), with how often it occurs in ``count_column``."""
    ids = _int_ids(_get(frame, ROW_ID), what)
    first = frame.loc[ids.index].assign(**{ROW_ID: ids}).drop_duplicates(ROW_ID, keep="first")
    return first.assign(**{count_column: first[ROW_ID].map(ids.value_counts()).to_numpy(dtype=np.int64)})


def accounting_frame(input_ids: pd.Series, manifest: pd.DataFrame, out_rows: pd.DataFrame, *,
                      label_column: str, weight_column: str, classes: list[Any]) -> pd.DataFrame:
    """The outer join of input, manifest and output row ids, with one derived column per check.

    Columns (None / NaN where a check does not apply to the row, which GE column-map expectations
    skip): ``row_id``; ``output_row_source`` / ``manifest_row_source`` ("input" or not) for ids
    in the output / manifest; ``manifest_count`` for input rows; ``output_count`` and
    ``expected_output_count`` (0 for drop, 1 otherwise) for input rows with a manifest action;
    ``output_label`` / ``expected_label`` and ``output_weight`` / ``expected_weight`` for output
    rows; ``dropped`` (1.0 / 0.0) for input rows.
    """
    inp = pd.DataFrame({ROW_ID: _int_ids(input_ids, "input").drop_duplicates().to_numpy(), "in_input": True})

    man = _keyed(manifest, "manifest", "n_manifest")
    action = _get(man, "action")
    if "new_label" in man.columns:
        label_value = _get(man, "new_label")
    else:
        label_value = _get(man, "given_label").where(action != "relabel", _get(man, "suggested_label"))
    man_part = pd.DataFrame({
        ROW_ID: man[ROW_ID].to_numpy(),
        "n_manifest": man["n_manifest"].to_numpy(),
        "action": action.to_numpy(dtype=object),
        "expected_label": _manifest_labels(label_value),
        "expected_weight": _get_float(man, "weight").to_numpy(),
    })

    out = _keyed(out_rows, "output", "n_output")
    out_part = pd.DataFrame({
        ROW_ID: out[ROW_ID].to_numpy(),
        "n_output": out["n_output"].to_numpy(),
        "output_label": _get(out, label_column).to_numpy(dtype=object),
        "output_weight": _get_float(out, weight_column).to_numpy(),
    })

    acc = inp.merge(man_part, on=ROW_ID, how="outer").merge(out_part, on=ROW_ID, how="outer")
    acc = acc.sort_values(ROW_ID, kind="stable").reset_index(drop=True)
    in_input = acc["in_input"].eq(True).to_numpy()
    n_manifest = acc["n_manifest"].fillna(0).to_numpy(dtype=np.int64)
    n_output = acc["n_output"].fillna(0).to_numpy(dtype=np.int64)
    acts = acc["action"].to_numpy(dtype=object)
    valid_action = np.isin(acts, np.asarray(ROW_ACTIONS, dtype=object))
    source = np.where(in_input, FROM_INPUT, NOT_FROM_INPUT).astype(object)

    def masked(values: np.ndarray, mask: np.ndarray) -> pd.Series:
        """``values`` where ``mask``, else missing (skipped by GE); numbers stay numeric (fast null checks)."""
        values = np.asarray(values)
        if values.dtype.kind in "iu":
            return pd.Series(pd.array(values, dtype="Int64")).mask(~mask)
        if values.dtype.kind == "f":
            return pd.Series(np.where(mask, values, np.nan))
        out_values = values.astype(object, copy=True)
        out_values[~mask] = None
        return pd.Series(out_values, dtype=object)

    in_output = n_output > 0
    in_both = in_input & valid_action
    paired = in_output & in_both
    return pd.DataFrame({
        ROW_ID: acc[ROW_ID].to_numpy(dtype=np.int64),
        "output_row_source": masked(source, in_output),
        "manifest_row_source": masked(source, n_manifest > 0),
        "manifest_count": masked(n_manifest, in_input),
        "output_count": masked(n_output, in_both),
        "expected_output_count": masked(np.where(acts == "drop", 0, 1), in_both),
        "output_label": masked(acc["output_label"].to_numpy(dtype=object), paired),
        "expected_label": masked(acc["expected_label"].to_numpy(dtype=object), paired),
        "output_weight": masked(acc["output_weight"].to_numpy(dtype=np.float64), paired),
        "expected_weight": masked(acc["expected_weight"].to_numpy(dtype=np.float64), paired),
        "dropped": np.where(in_input, (~in_output).astype(np.float64), np.nan),
    })

"""Whether data given to ``transform`` (or to ``load``) is the data the cleaner was fitted on, and if not, what differs.

The decisions belong to the fitted rows: a cleaner refuses any other data, by the content
fingerprint of ``influence_stage.data.fingerprint``, and says in words what changed (rows, row
ids, their order, columns, feature types, values, labels).
"""

from __future__ import annotations

import json
from typing import Any

import datasets
import numpy as np

from influence_stage.api.views import preview
from influence_stage.data.arrow import ROW_ID
from influence_stage.data.fingerprint import column_fingerprints, combine_fingerprints
from influence_stage.data.sources import row_ids
from influence_stage.errors import InvalidInputError


def features_json(ds: datasets.Dataset) -> dict[str, Any]:
    """``ds.features`` as JSON values (tuples as lists), so a saved and a live description compare equal."""
    return json.loads(json.dumps(ds.features.to_dict(), default=str))


class SameDataCheck:
    """The fitted-data check of ``InfluenceCleaner``: reads ``row_ids_``, ``dataset_fingerprint_``,
    ``column_fingerprints_``, ``encoding_``, ``classes_``, ``config_`` and the fitted columns and features."""

    def _difference(self, ds: datasets.Dataset, digests: dict[str, str], codes: np.ndarray | None) -> str:
        """What differs between ``ds`` and the fitted dataset, in words."""
        notes: list[str] = []
        if ds.num_rows != len(self.row_ids_):
            notes.append(f"it has {ds.num_rows} rows, the fitted dataset had {len(self.row_ids_)}")
        missing = [c for c in self._fitted_columns_ if c not in ds.column_names]
        extra = [c for c in ds.column_names if c not in self._fitted_columns_]
        if missing:
            notes.append(f"columns {missing} are missing")
        if extra:
            notes.append(f"columns {extra} are new")
        ids = row_ids(ds)
        if ds.num_rows == len(self.row_ids_) and np.array_equal(np.sort(ids), np.sort(self.row_ids_)):
            if not np.array_equal(ids, self.row_ids_):
                first = int(np.flatnonzero(ids != self.row_ids_)[0])
                notes.append(f"the same row ids come in another order (first at row {first})")
        else:
            gone = np.setdiff1d(self.row_ids_, ids)
            new = np.setdiff1d(ids, self.row_ids_)
            if gone.size:
                notes.append(f"{gone.size} fitted row_id(s) are missing: {preview(gone)}")
            if new.size:
                notes.append(f"{new.size} row_id(s) were not fitted: {preview(new)}")
        fitted_features = self._fitted_features_
        new_features = features_json(ds)
        retyped = [c for c in ds.column_names if c in fitted_features and new_features[c] != fitted_features[c]]
        if retyped:
            notes.append(f"columns {retyped} changed feature type")
        changed = [c for c in ds.column_names
                   if c in self.column_fingerprints_ and digests[c] != self.column_fingerprints_[c]
                   and c not in retyped and c != ROW_ID]
        if changed and ds.num_rows == len(self.row_ids_):
            notes.append(f"the values of column(s) {changed} differ")
            label = self.config_.label_column
            moved = None if codes is None or len(codes) != len(self.encoding_.codes) \
                else np.flatnonzero(codes != self.encoding_.codes)
            if label in changed and moved is not None and moved.size:
                row = int(moved[0])
                notes.append(f"{moved.size} label(s) changed, the first at row {row} (row_id {int(ids[row])}): "
                             f"fitted {self.classes_[self.encoding_.codes[row]]!r}, now {self.classes_[codes[row]]!r}")
        return "; ".join(notes) or "the content differs"

    def _check_same_dataset(self, ds: datasets.Dataset, codes: np.ndarray | None = None) -> None:
        digests = column_fingerprints(ds)
        if combine_fingerprints(ds, digests) == self.dataset_fingerprint_:
            return
        raise InvalidInputError(
            "transform expects the dataset given to fit: the decisions belong to its rows. This dataset differs: "
            f"{self._difference(ds, digests, codes)}. Fix: call fit (or fit_transform) on this dataset."
        )

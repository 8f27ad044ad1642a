"""What ``transform``, ``save`` and ``export`` of the cleaner share: the fitted decisions applied to the
fitted data in the type of the input, the check that data is the fitted data, the refusal after a
refused fit.

``CleanerTransform`` is a mixin of ``influence_stage.api.cleaner.InfluenceCleaner``: it reads the
attributes ``fit`` sets (``decisions_``, ``config_``, ``encoding_``, ``_roles_``...) and the input
checks of the estimator (``_check_input``, ``_check_same_dataset``, ``_as_output``).
"""

from __future__ import annotations

from typing import Any

import datasets
import pandas as pd

from influence_stage.api.issue_data import content_frame
from influence_stage.data.arrow import ROW_ID
from influence_stage.data.labels import encode_labels
from influence_stage.data.sources import load_source
from influence_stage.decisions.apply import apply_to_arrays, apply_to_frame, decision_arrays
from influence_stage.errors import ValidationFailedError
from influence_stage.stage.results import Prepared
from influence_stage.stage.steps import apply_step


class CleanerTransform:
    """The helpers of ``transform``, ``save``, ``load`` and ``export``: the output in the form of the
    input, the fitted-data check and the refused-fit check."""

    _refused_: str | None = None  # the output gate's message when the last fit was refused

    def _output(self, kind: str, source: Any, had_row_id: bool, prepared: Prepared,
                cleaned: datasets.Dataset | None = None, index: pd.Index | None = None) -> Any:
        """The cleaned data in the type of the input (see ``transform``); ``index``: that of a DataFrame X."""
        table = self.decisions_.table
        if kind == "frame":
            return apply_to_frame(source, table, prepared.encoding, self.config_)
        if kind == "arrays":
            X_res, y_res = apply_to_arrays(source[0], source[1], table, prepared.encoding)
            return self._as_output(X_res, decision_arrays(table)[0], index), y_res
        if cleaned is None:
            cleaned = apply_step(prepared, self.decisions_, self.config_)
        if not had_row_id:  # added by load_source: not one of the user's columns
            cleaned = cleaned.remove_columns(ROW_ID)
        return cleaned

    def _check_not_refused(self, method: str) -> None:
        if self._refused_ is not None:
            raise ValidationFailedError(
                f"{method} applies only a result the output gate accepted; the last fit was refused: "
                f"{self._refused_}")

    def _review_content(self, dataset: Any) -> Any:
        """The rows' content for ``export``: ``dataset`` after checking it is the fitted data, else the
        fitted dataset when this estimator holds it (after ``fit``; not after ``load``)."""
        if dataset is not None:
            self._check_fitted_data(dataset)
            y = self._fitted_y_ if getattr(self, "_input_kind_", None) == "arrays" \
                and not isinstance(dataset, tuple) else None
            _, source, _ = self._check_input(dataset, y, "export")
            return content_frame(load_source(source, label_column=self.config_.label_column), self.issues_.columns)
        pipeline = getattr(self, "pipeline_", None)
        if pipeline is not None:
            return content_frame(pipeline.prepared.dataset, self.issues_.columns)
        return None

    def _check_fitted_data(self, dataset: Any) -> None:
        """Raise (saying what differs) unless ``dataset`` is the fitted data."""
        y = self._fitted_y_ if getattr(self, "_input_kind_", None) == "arrays" and not isinstance(dataset, tuple) \
            else None
        _, source, _ = self._check_input(dataset, y, "load")
        ds = load_source(source, label_column=self.config_.label_column)
        codes = encode_labels(ds, self.config_.label_column, fitted=self.encoding_).codes
        self._check_same_dataset(ds, codes)


__all__ = ["CleanerTransform"]

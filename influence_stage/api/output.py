"""scikit-learn's output conventions for ``InfluenceCleaner``: ``get_feature_names_out`` and ``set_output``.

``transform`` passes features through (it drops or relabels rows, never changes a column), so the
names out are the names in: for arrays, ``feature_names_in_`` (a DataFrame of features given to
``fit`` with ``y``) or ``x0..x{d-1}``; for a Dataset or a DataFrame with its label column, the
table's own columns (a ``row_id`` the stage added left out) plus ``weight_column`` under
``action="reweight"``. ``set_output(transform="pandas")`` turns an array ``X_res`` into a DataFrame
with those columns; tables come back in their own type either way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn import get_config
from sklearn.utils.validation import check_is_fitted

from influence_stage.data.arrow import ADDED_ROW_ID, ROW_ID
from influence_stage.errors import InvalidInputError

OUTPUTS = ("default", "pandas")
"""The ``set_output(transform=...)`` containers: numpy arrays as computed, or pandas DataFrames."""


def frame_feature_names(X: Any) -> np.ndarray | None:
    """The column names of a DataFrame of features, ``(n_features,)`` object, when they are all strings
    (scikit-learn's rule for ``feature_names_in_``); else None."""
    if isinstance(X, pd.DataFrame) and all(isinstance(c, str) for c in X.columns):
        return np.asarray(list(X.columns), dtype=object)
    return None


class FeatureOutput:
    """``set_output`` and ``get_feature_names_out`` of ``InfluenceCleaner``, over its fitted attributes."""

    _output_: str | None = None  # set_output(transform=...); None: sklearn's global transform_output

    def set_output(self, *, transform: str | None = None) -> Any:
        """Choose the container of an array ``X_res``: ``"default"`` (numpy) or ``"pandas"``.

        Parameters
        ----------
        transform : {"default", "pandas"} or None
            None leaves the setting as it is. Without a setting, scikit-learn's global
            ``set_config(transform_output=...)`` applies. Datasets and DataFrames with their label
            column always come back in their own type.

        Returns
        -------
        self
        """
        if transform is None:
            return self
        if transform not in OUTPUTS:
            raise InvalidInputError(f"set_output(transform=...) must be one of {list(OUTPUTS)} or None; found "
                                    f"{transform!r}. Fix: set_output(transform='pandas').")
        self._output_ = transform
        return self

    def _output_container(self) -> str:
        chosen = self._output_ if self._output_ is not None else get_config()["transform_output"]
        return "pandas" if chosen == "pandas" else "default"

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The column names of what ``transform`` returns, ``(n_features_out,)`` object.

        Parameters
        ----------
        input_features : array-like of str, optional
            For arrays: names of the input features (length ``n_features_in_``; equal to
            ``feature_names_in_`` when that is set). For tables: the table's columns, or None.

        Raises
        ------
        InvalidInputError
            Names of another length or other names than the fitted ones; image arrays (no
            feature names).
        """
        check_is_fitted(self, "issues_")
        if getattr(self, "_input_kind_", "dataset") == "arrays":
            n = getattr(self, "n_features_in_", None)
            if n is None:
                raise InvalidInputError("get_feature_names_out applies to 2-D arrays and tables; this cleaner was "
                                        "fitted on image arrays, whose pixels have no names. Fix: read X_res directly.")
            fitted = getattr(self, "feature_names_in_", None)
            names = fitted if fitted is not None else np.asarray([f"x{j}" for j in range(n)], dtype=object)
        else:
            added = (self._fitted_features_.get(ROW_ID) or {}).get("id") == ADDED_ROW_ID
            columns = [c for c in self._fitted_columns_ if not (c == ROW_ID and added)]
            if self.config_.action == "reweight":
                columns.append(self.config_.weight_column)
            names, n, fitted = np.asarray(columns, dtype=object), None, None
        if input_features is not None:
            given = np.asarray(list(input_features), dtype=object)
            if n is not None and given.size != n:
                raise InvalidInputError(f"input_features should have length equal to the number of features ({n}), "
                                        f"got {given.size}. Fix: pass the {n} names of the columns given to fit.")
            expected = fitted if n is not None else None
            if expected is not None and not np.array_equal(given, expected):
                raise InvalidInputError(f"input_features is not equal to feature_names_in_: found "
                                        f"{list(given)[:5]}, fitted {list(expected)[:5]}. Fix: pass the fitted names "
                                        "or None.")
            if n is not None:
                names = given
        return names

    def _as_output(self, X_res: np.ndarray, keep: np.ndarray, index: pd.Index | None) -> Any:
        """``X_res`` in the chosen container: a DataFrame with the names out and, for a DataFrame input, its
        index at the kept rows."""
        if self._output_container() != "pandas" or X_res.ndim != 2:
            return X_res
        return pd.DataFrame(X_res, columns=self.get_feature_names_out(),
                            index=None if index is None else index[keep])

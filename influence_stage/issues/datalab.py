"""One run of cleanlab's Datalab on the stage's own features and cross-fitted probabilities.

Datalab's issue managers share one k-nearest-neighbour graph, so every Datalab-backed issue type of a
run is found by a single ``cleanlab.Datalab.find_issues`` call (with ``issue_types`` naming only
the managers asked for). This module owns that call and nothing else: what each issue type makes of
the result is in ``influence_stage.issues.types``.

Missing cells. Datalab's ``null`` manager reads the features as given (NaN included); its kNN
managers (``outlier``, ``near_duplicate``, ``non_iid``, ``underperforming_group``) refuse NaN, so
they see the features with each NaN cell replaced by its column's median over the non-missing
rows (``fill_missing``). A column with no value at all becomes 0.

Datalab prints a line and carries on when one of its managers fails; here its output is captured
and a manager that produced no result is an error naming that manager and what it printed.
"""

from __future__ import annotations

import contextlib
import io
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from influence_stage.errors import InvalidInputError

#: Datalab issue managers whose input is the kNN graph over the features (NaN must be filled first).
KNN_MANAGERS = frozenset({"outlier", "near_duplicate", "non_iid", "underperforming_group"})

KNN_WORKING_MEMORY_MB = 64
"""scikit-learn's ``working_memory`` (MB) while Datalab builds its kNN graph: the pairwise distances are
computed and reduced to each row's neighbours in blocks of rows of about this size, instead of one
``n x n`` block (400 MB at 10,000 rows). Each row's distances are the same numbers either way."""


@dataclass(frozen=True, eq=False)
class DatalabFindings:
    """What one ``Datalab.find_issues`` call found.

    Attributes
    ----------
    issues : DataFrame, one row per input row: Datalab's ``is_<name>_issue`` and ``<name>_score``
        columns (quality scores in [0, 1], lower = more severe) for every manager run.
    summary : DataFrame, Datalab's ``issue_summary`` (``issue_type, score, num_issues``).
    info : ``{manager name: Datalab.get_info(name)}``.
    seconds : wall seconds of the ``find_issues`` call.
    """

    issues: pd.DataFrame
    summary: pd.DataFrame
    info: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0

    def score(self, name: str) -> np.ndarray:
        """``(n,) float64`` Datalab's ``<name>_score`` column."""
        return self.issues[f"{name}_score"].to_numpy(dtype=np.float64)

    def flag(self, name: str) -> np.ndarray:
        """``(n,) bool`` Datalab's ``is_<name>_issue`` column."""
        return self.issues[f"is_{name}_issue"].to_numpy(dtype=bool)

    def dataset_score(self, name: str) -> float:
        """Datalab's dataset-level score of ``name`` (in [0, 1], lower = more severe)."""
        row = self.summary.loc[self.summary["issue_type"] == name, "score"]
        return float(row.iloc[0]) if len(row) else float("nan")


def fill_missing(features: np.ndarray) -> np.ndarray:
    """``(n, d) float32`` the features with every NaN cell replaced by its column's median.

    A column that is missing on every row is filled with 0. Rows and columns keep their order; a
    matrix without NaN is returned as is (no copy).
    """
    missing = np.isnan(features)
    if not missing.any():
        return features
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: its median is NaN, filled below
        median = np.nanmedian(features, axis=0)
    median = np.where(np.isnan(median), 0.0, median).astype(features.dtype)
    return np.where(missing, median[None, :], features)


class DatalabTypesFailed(InvalidInputError):
    """Datalab produced no result for some of the issue types asked of it.

    ``failed`` holds their Datalab names, so a caller can skip those types and keep the others (a manager
    that cannot run on the data, e.g. too few rows for its neighbours, says nothing about the rest).
    """

    def __init__(self, message: str, failed: list[str]):
        super().__init__(message)
        self.failed = list(failed)


def run_datalab(features: np.ndarray, labels: np.ndarray, proba: np.ndarray | None,
                managers: dict[str, dict[str, Any]]) -> DatalabFindings:
    """Run the Datalab issue managers named in ``managers`` once, on one shared kNN graph.

    Parameters
    ----------
    features : ndarray, shape ``(n_samples, n_features)`` float32
        May hold NaN cells (see the module docstring).
    labels : ndarray, shape ``(n_samples,)`` int64, codes ``0..K-1``
    proba : ndarray, shape ``(n_samples, K)``, or None
        Out-of-sample (cross-fitted) class probabilities; the ``underperforming_group`` manager needs them.
    managers : ``{Datalab issue name: its keyword arguments}``

    Raises
    ------
    DatalabTypesFailed
        An InvalidInputError: a manager produced no result (Datalab caught its error); the message carries
        what Datalab printed, ``failed`` the managers' names.
    """
    from cleanlab import Datalab  # cleanlab imports scikit-learn and datasets: kept off the import path

    names = list(managers)
    knn = [m for m in names if m in KNN_MANAGERS]
    direct = [m for m in names if m not in KNN_MANAGERS]
    start = time.perf_counter()
    out = io.StringIO()
    lab = Datalab(data={"label": np.asarray(labels)}, label_name="label", verbosity=0)
    with contextlib.redirect_stdout(out), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Datalab warns about its own defaults (metric choice, cluster sizes)
        if direct:
            lab.find_issues(features=features, pred_probs=proba, issue_types={m: managers[m] for m in direct})
        if knn:
            from sklearn import config_context

            with config_context(working_memory=KNN_WORKING_MEMORY_MB):
                lab.find_issues(features=fill_missing(features), pred_probs=proba,
                                issue_types={m: managers[m] for m in knn})
    seconds = time.perf_counter() - start
    summary = lab.issue_summary  # the attribute: get_issue_summary() raises when every manager failed
    done = set(summary["issue_type"]) if "issue_type" in summary else set()
    failed = [m for m in names if m not in done]
    if failed:
        printed = " ".join(out.getvalue().split())[:600]
        raise DatalabTypesFailed(
            f"cleanlab's Datalab found no result for issue type(s) {failed} on features of shape "
            f"{features.shape} and probabilities of shape {None if proba is None else proba.shape}; "
            f"Datalab said: {printed or '(nothing)'}. Fix: check that the features are numeric with at least "
            "k + 1 rows, or leave those issue types out.", failed)
    info = {m: lab.get_info(m) for m in names}
    return DatalabFindings(issues=lab.get_issues().reset_index(drop=True), summary=summary, info=info,
                           seconds=seconds)


__all__ = ["DatalabFindings", "DatalabTypesFailed", "KNN_MANAGERS", "KNN_WORKING_MEMORY_MB", "fill_missing",
           "run_datalab"]

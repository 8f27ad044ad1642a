"""Issue types beside label issues: one class each, registered by name in :data:`ISSUE_TYPE_REGISTRY`.

Every issue type gives each row a score and a flag, under the names ``<type>_score`` and
``is_<type>``, plus a summary dict. Scores follow cleanlab's convention (and the decisions table's
``label_quality``): a quality in [0, 1], 1 = no sign of the issue, lower = more severe.

Where cleanlab's Datalab has an issue manager for the type, the type is that manager, run on the
stage's features (and, for ``underperforming_group``, its cross-fitted probabilities); the class
only names the manager, passes its options and reads its columns (:mod:`influence_stage.issues.datalab`
runs them all at once). Two types are the stage's own, because Datalab has no such rule:

- ``exact_duplicate``: rows whose feature vectors are equal bit for bit (Datalab's
  ``near_duplicate`` also flags them, but through a kNN radius that can miss copies when a set is
  larger than ``k``, and it cannot tell which copy came first);
- the flag of ``null``: a row with any missing cell is flagged (Datalab's score, the share of
  non-missing cells, is kept; Datalab flags only rows missing every cell).

A new issue type is one class in one file::

    @ISSUE_TYPE_REGISTRY.register("my-type")
    @dataclass(frozen=True)
    class MyType(IssueType):
        help = "..."
        def find(self, x, lab): ...
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from influence_stage.issues.datalab import DatalabFindings
from influence_stage.registry import Registry


@dataclass(frozen=True, eq=False)
class IssueInputs:
    """What an issue type reads; one entry per row, in input order.

    Attributes
    ----------
    features : ``(n, d) float32`` the stage's features; NaN marks a missing cell
    labels : ``(n,) int64`` the given labels, codes ``0..K-1``
    proba : ``(n, K) float64`` cross-fitted out-of-sample probabilities, or None
    """

    features: np.ndarray
    labels: np.ndarray
    proba: np.ndarray | None

    @property
    def n(self) -> int:
        return int(self.labels.size)


@dataclass(frozen=True, eq=False)
class IssueColumns:
    """What one issue type found.

    Attributes
    ----------
    score : ``(n,) float64`` quality in [0, 1], lower = more severe
    flag : ``(n,) bool``
    extra : ``{column name: (n,) array}`` further per-row columns (e.g. ``exact_duplicate_of``)
    summary : JSON-ready dict; always has ``n_flagged`` and ``dataset_score``
    """

    score: np.ndarray
    flag: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IssueType:
    """One issue type: a frozen dataclass (its fields are its options) in :data:`ISSUE_TYPE_REGISTRY`.

    Attributes
    ----------
    name : str
        Set by the registry; the table's columns are ``<name>_score`` and ``is_<name>``.
    help : str
        One line for the docs and the CLI help.
    datalab_name : str or None
        The Datalab issue manager that finds it (None: the stage's own rule).
    needs_proba : bool
        It needs out-of-sample class probabilities.
    """

    name: ClassVar[str] = ""
    help: ClassVar[str] = ""
    datalab_name: ClassVar[str | None] = None
    needs_proba: ClassVar[bool] = False

    def datalab_kwargs(self) -> dict[str, Any]:
        """The Datalab manager's keyword arguments: this type's options."""
        return asdict(self)

    def find(self, x: IssueInputs, lab: DatalabFindings | None) -> IssueColumns:
        """Score and flag every row. ``lab`` holds this type's Datalab manager's output, when it has one."""
        if self.datalab_name is None or lab is None:
            raise NotImplementedError(f"issue type {self.name!r} must implement find()")
        score, flag = lab.score(self.datalab_name), lab.flag(self.datalab_name)
        return IssueColumns(score, flag, summary={"n_flagged": int(flag.sum()),
                                                  "dataset_score": lab.dataset_score(self.datalab_name)})


#: Every issue type the stage can find, one class each (``issues.find_issues(types=...)`` takes the names).
ISSUE_TYPE_REGISTRY: Registry[type[IssueType]] = Registry(
    "issue type", base=IssueType, fix="Fix: pass names from influence_stage.issues.ISSUE_TYPE_REGISTRY.names().")


@ISSUE_TYPE_REGISTRY.register("outlier")
@dataclass(frozen=True)
class Outlier(IssueType):
    """Atypical rows: Datalab's ``outlier`` manager (mean distance to the ``k`` nearest neighbours)."""

    help = "rows far from their nearest neighbours in feature space (cleanlab Datalab 'outlier')"
    datalab_name = "outlier"
    k: int = 10


@ISSUE_TYPE_REGISTRY.register("near_duplicate")
@dataclass(frozen=True)
class NearDuplicate(IssueType):
    """Rows (almost) equal to another: Datalab's ``near_duplicate`` manager; exact copies are flagged too."""

    help = "rows much closer to a neighbour than is typical (cleanlab Datalab 'near_duplicate')"
    datalab_name = "near_duplicate"
    k: int = 10
    threshold: float = 0.13

    def find(self, x: IssueInputs, lab: DatalabFindings | None) -> IssueColumns:
        base = super().find(x, lab)
        sets = lab.info["near_duplicate"].get("near_duplicate_sets", []) if lab is not None else []
        return IssueColumns(base.score, base.flag,
                            summary={**base.summary, "n_sets": int(sum(len(s) > 0 for s in sets))})


@ISSUE_TYPE_REGISTRY.register("exact_duplicate")
@dataclass(frozen=True)
class ExactDuplicate(IssueType):
    """Rows whose feature vectors are equal bit for bit; ``exact_duplicate_of`` names the first copy.

    Extra column ``exact_duplicate_of``: ``(n,) int64``, for every copy after the first the position of
    the first copy in its group, ``-1`` for first copies and unique rows. The score is 0 on every row
    of a group of two or more, 1 elsewhere.
    """

    help = "rows with the same feature vector as another row (the first copy is kept by the default policy)"

    def find(self, x: IssueInputs, lab: DatalabFindings | None) -> IssueColumns:
        flat = np.ascontiguousarray(x.features.reshape(x.n, -1))
        # bytes, not values: NaN equals NaN and -0.0 differs from 0.0, i.e. equal content, not equal numbers
        keys = flat.view(np.dtype((np.void, flat.dtype.itemsize * flat.shape[1]))).ravel()
        _, first, inverse, counts = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
        inverse = inverse.ravel()
        in_group = counts[inverse] > 1
        first_of_row = first[inverse]
        duplicate_of = np.where(in_group & (first_of_row != np.arange(x.n)), first_of_row, -1).astype(np.int64)
        conflicting = 0
        for g in np.flatnonzero(counts > 1):
            conflicting += int(np.unique(x.labels[inverse == g]).size > 1)
        return IssueColumns(
            score=np.where(in_group, 0.0, 1.0), flag=in_group, extra={"exact_duplicate_of": duplicate_of},
            summary={"n_flagged": int(in_group.sum()), "dataset_score": float(1.0 - in_group.mean()),
                     "n_groups": int((counts > 1).sum()), "n_extra_copies": int((duplicate_of >= 0).sum()),
                     "n_groups_with_conflicting_labels": conflicting})


@ISSUE_TYPE_REGISTRY.register("null")
@dataclass(frozen=True)
class Null(IssueType):
    """Rows with missing (NaN) feature cells: Datalab's ``null`` score, flagged on any missing cell.

    Datalab's ``null_score`` is the share of the row's cells that are present; Datalab flags only rows
    missing every cell. Here a row with any missing cell is flagged, because the stage fills those
    cells (column median) before the model and the kNN issue types see them.
    """

    help = "rows with missing (NaN) feature cells (cleanlab Datalab 'null' score; flagged on any missing cell)"
    datalab_name = "null"

    def datalab_kwargs(self) -> dict[str, Any]:
        return {}

    def find(self, x: IssueInputs, lab: DatalabFindings | None) -> IssueColumns:
        missing = np.isnan(x.features.reshape(x.n, -1))
        flag = missing.any(axis=1)
        score = lab.score("null") if lab is not None else 1.0 - missing.mean(axis=1)
        all_missing = int(lab.flag("null").sum()) if lab is not None else int(missing.all(axis=1).sum())
        columns = np.flatnonzero(missing.any(axis=0))
        return IssueColumns(score, flag, summary={
            "n_flagged": int(flag.sum()), "dataset_score": float(1.0 - missing.mean()),
            "n_missing_cells": int(missing.sum()), "n_rows_all_missing": all_missing,
            "columns_with_missing": [int(c) for c in columns[:50]]})


@ISSUE_TYPE_REGISTRY.register("class_imbalance")
@dataclass(frozen=True)
class ClassImbalance(IssueType):
    """Rows of a class far rarer than the others: Datalab's ``class_imbalance`` manager."""

    help = "rows of the rarest class when it holds under threshold/K of the rows (cleanlab Datalab 'class_imbalance')"
    datalab_name = "class_imbalance"
    threshold: float = 0.1

    def find(self, x: IssueInputs, lab: DatalabFindings | None) -> IssueColumns:
        base = super().find(x, lab)
        rarest = lab.info["class_imbalance"].get("Rarest Class") if lab is not None else None
        return IssueColumns(base.score, base.flag, summary={
            **base.summary, "rarest_class": int(rarest) if isinstance(rarest, (int, np.integer)) else None})


@ISSUE_TYPE_REGISTRY.register("non_iid")
@dataclass(frozen=True)
class NonIID(IssueType):
    """Ordered rows (drift, sorted files): Datalab's ``non_iid`` manager, a permutation test on the kNN graph.

    The test is on the whole dataset (``p_value`` in the summary); when it rejects, Datalab flags the
    one row with the lowest score, and the per-row scores say where the ordering shows.
    """

    help = "the row order is not independent of the content (cleanlab Datalab 'non_iid', a permutation test)"
    datalab_name = "non_iid"
    k: int = 10
    num_permutations: int = 25
    seed: int = 0
    significance_threshold: float = 0.05

    def find(self, x: IssueInputs, lab: DatalabFindings | None) -> IssueColumns:
        base = super().find(x, lab)
        p = lab.info["non_iid"].get("p-value") if lab is not None else None
        return IssueColumns(base.score, base.flag, summary={
            **base.summary, "p_value": None if p is None else float(p),
            "ordered": None if p is None else bool(p < self.significance_threshold)})


@ISSUE_TYPE_REGISTRY.register("underperforming_group")
@dataclass(frozen=True)
class UnderperformingGroup(IssueType):
    """Clusters of rows where the out-of-sample model does much worse: Datalab's ``underperforming_group``."""

    help = ("clusters of rows where the cross-fitted model is much less accurate than overall "
            "(cleanlab Datalab 'underperforming_group')")
    datalab_name = "underperforming_group"
    needs_proba = True
    k: int = 10
    threshold: float = 0.1
    min_cluster_samples: int = 5


#: The issue types ``find_issues`` runs by default: every registered one when this module loads.
DEFAULT_ISSUE_TYPES: tuple[str, ...] = ISSUE_TYPE_REGISTRY.names()

__all__ = [
    "DEFAULT_ISSUE_TYPES", "ISSUE_TYPE_REGISTRY", "ClassImbalance", "ExactDuplicate", "IssueColumns", "IssueInputs",
    "IssueType", "NearDuplicate", "NonIID", "Null", "Outlier", "UnderperformingGroup",
]

"""Issue types beside label issues, registered in the stage's issue-type registry.

Each class here is an entry of ``influence_stage.decisions.issues.ISSUE_REGISTRY``; importing this
module (or ``influence_stage.issues``) registers them. Like every issue type there, each gives a row
a score (``<type>_score``, float64, higher = more of the issue) and a flag (``is_<type>_issue``), plus
a summary with ``n_issues``.

Where cleanlab's Datalab has an issue manager for the type, the type *is* that manager, run on the
stage's features (and, for ``underperforming_group``, its cross-fitted probabilities): the class names
the manager, passes its options and turns Datalab's quality score ``q`` (1 = clean) into the registry's
``1 - q``. ``influence_stage.issues.find_data_issues`` runs all the Datalab-backed types of a run
in one Datalab call (one kNN graph) and hands the result to each type as ``datalab=`` (an
``DatalabFindings``); a type called without it runs its own
manager alone. Two rules are the stage's own, because Datalab has none:

- ``exact_duplicate``: rows whose feature vectors are equal bit for bit (Datalab's
  ``near_duplicate`` also flags them, but through a kNN radius that can miss copies when a set is
  larger than ``k``, and it cannot tell which copy came first);
- the flag of ``null``: a row with any missing cell is flagged (Datalab's score, the share of missing
  cells, is kept; Datalab flags only rows missing every cell).

Options: each type is a frozen dataclass whose fields are its options (with defaults); pass
``issue_options={"outlier": {"k": 15}}`` to ``find_data_issues`` to change them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, ClassVar

import numpy as np

from influence_stage.decisions.issues import ISSUE_REGISTRY, IssueInputs, IssueResult, IssueType
from influence_stage.errors import InvalidInputError
from influence_stage.issues.datalab import DatalabFindings, run_datalab


def labels_of(x: IssueInputs) -> np.ndarray:
    """``(n,) int64`` the given labels: ``labels=`` passed to ``decisions.issues.find_issues``, else the
    table's ``given_label``."""
    if "labels" in x.extra:
        return np.asarray(x.extra["labels"], dtype=np.int64)
    if "given_label" in x.table:
        return x.table["given_label"].to_numpy(dtype=np.int64)
    raise InvalidInputError("this issue type needs the given labels; the table has no 'given_label' column. "
                            "Fix: pass labels= to decisions.issues.find_issues, or the decisions table.")


def flat_features(x: IssueInputs) -> np.ndarray:
    """``(n, d) float32`` the features, one row per table row (NaN marks a missing cell)."""
    X = np.asarray(x.features)
    X = X.reshape(X.shape[0], -1).astype(np.float32, copy=False)
    if X.shape[0] != x.n:
        raise InvalidInputError(f"features must have one row per table row: {x.n} rows, found {X.shape[0]}.")
    return X


def exact_duplicate_of(features: np.ndarray) -> np.ndarray:
    """``(n,) int64``: for every copy after the first, the position of the first copy of its feature vector; -1
    for first copies and unique rows. Copies are equal bit for bit (NaN equals NaN, -0.0 differs from 0.0)."""
    flat = np.ascontiguousarray(features.reshape(features.shape[0], -1))
    keys = flat.view(np.dtype((np.void, flat.dtype.itemsize * flat.shape[1]))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    first_of_row = first[inverse.ravel()]
    return np.where(first_of_row != np.arange(flat.shape[0]), first_of_row, -1).astype(np.int64)


@dataclass(frozen=True)
class DatalabIssueType(IssueType):
    """An issue type that is one of cleanlab Datalab's issue managers; its dataclass fields are the manager's
    options.

    Attributes
    ----------
    datalab_name : str
        The Datalab issue manager (``"outlier"``, ``"near_duplicate"``, ...).
    """

    datalab_name: ClassVar[str] = ""
    needs: ClassVar[tuple[str, ...]] = ("features",)

    def datalab_kwargs(self) -> dict[str, Any]:
        """The manager's keyword arguments: this type's options."""
        return asdict(self)

    def configured(self, x: IssueInputs) -> DatalabIssueType:
        """This type with the options passed as ``issue_options={name: {...}}`` to
        ``decisions.issues.find_issues`` (``find_data_issues`` passes its ``options`` there)."""
        given = dict((x.extra.get("issue_options") or {}).get(self.name, {}))
        known = {f.name for f in fields(self)}
        if set(given) - known:
            raise InvalidInputError(f"issue type {self.name!r} takes options {sorted(known)}; found "
                                    f"{sorted(set(given) - known)}.")
        return replace(self, **given) if given else self

    def findings(self, x: IssueInputs) -> DatalabFindings:
        """The shared Datalab run passed as ``datalab=``, or a run of this type's manager alone."""
        lab = x.extra.get("datalab")
        if isinstance(lab, DatalabFindings) and self.datalab_name in lab.info:
            return lab
        proba = x.oos_proba
        return run_datalab(flat_features(x), labels_of(x), proba, {self.datalab_name: self.datalab_kwargs()})

    def detect(self, x: IssueInputs) -> IssueResult:
        me = self.configured(x)
        lab = me.findings(x)
        flag = lab.flag(me.datalab_name)
        return IssueResult(score=1.0 - lab.score(me.datalab_name), flag=flag,
                           summary={"n_issues": int(flag.sum()), **me.more_summary(lab),
                                    "datalab_score": lab.dataset_score(me.datalab_name)})

    def more_summary(self, lab: DatalabFindings) -> dict[str, Any]:
        """Numbers beyond ``n_issues`` and Datalab's dataset score, read from the manager's info."""
        return {}


@ISSUE_REGISTRY.register("outlier")
@dataclass(frozen=True)
class Outlier(DatalabIssueType):
    """Atypical rows: Datalab's ``outlier`` manager (distance to the ``k`` nearest neighbours)."""

    help = "rows far from their nearest neighbours in feature space (cleanlab Datalab 'outlier')"
    datalab_name = "outlier"
    k: int = 10


@ISSUE_REGISTRY.register("near_duplicate")
@dataclass(frozen=True)
class NearDuplicate(DatalabIssueType):
    """Rows (almost) equal to another: Datalab's ``near_duplicate`` manager; exact copies are flagged too."""

    help = "rows much closer to a neighbour than is typical (cleanlab Datalab 'near_duplicate')"
    datalab_name = "near_duplicate"
    k: int = 10
    threshold: float = 0.13

    def more_summary(self, lab: DatalabFindings) -> dict[str, Any]:
        sets = lab.info["near_duplicate"].get("near_duplicate_sets", [])
        return {"n_rows_with_a_set": int(sum(len(s) > 0 for s in sets))}


@ISSUE_REGISTRY.register("exact_duplicate")
@dataclass(frozen=True)
class ExactDuplicate(IssueType):
    """Rows whose feature vector equals another row's bit for bit.

    Score: 1.0 on every copy after the first, 0.5 on the first copy of a group, 0.0 on unique rows (the
    later copies are the ones the default policy drops). Flag: every row of a group of two or more.
    """

    help = "rows with the same feature vector as another row (the default policy drops every copy after the first)"
    needs: ClassVar[tuple[str, ...]] = ("features",)

    def detect(self, x: IssueInputs) -> IssueResult:
        # find_data_issues passes the map it also writes to its table (one pass over the features, not two)
        given = x.extra.get("exact_duplicate_of")
        dup_of = np.asarray(given, dtype=np.int64) if given is not None and len(given) == x.n \
            else exact_duplicate_of(flat_features(x))
        later = dup_of >= 0
        first = np.zeros(x.n, dtype=bool)
        first[dup_of[later]] = True
        labels = labels_of(x) if ("labels" in x.extra or "given_label" in x.table) else None
        conflicting = 0
        if labels is not None:
            conflicting = len({int(f) for f, l in zip(dup_of[later], labels[later]) if labels[f] != l})
        return IssueResult(score=np.where(later, 1.0, np.where(first, 0.5, 0.0)), flag=later | first,
                           summary={"n_issues": int((later | first).sum()), "n_groups": int(first.sum()),
                                    "n_extra_copies": int(later.sum()),
                                    "n_groups_with_conflicting_labels": conflicting})


@ISSUE_REGISTRY.register("null")
@dataclass(frozen=True)
class Null(DatalabIssueType):
    """Rows with missing (NaN) feature cells: Datalab's ``null`` score, flagged on any missing cell.

    Score: ``1 - null_score`` of Datalab, the share of the row's cells that are missing. Datalab flags
    only rows missing every cell; here a row with any missing cell is flagged, because the stage fills
    those cells (column median) before the kNN issue types see them.
    """

    help = "rows with missing (NaN) feature cells (cleanlab Datalab 'null' score; flagged on any missing cell)"
    datalab_name = "null"

    def detect(self, x: IssueInputs) -> IssueResult:
        missing = np.isnan(flat_features(x))
        lab = self.findings(x)
        flag = missing.any(axis=1)
        columns = np.flatnonzero(missing.any(axis=0))
        return IssueResult(score=1.0 - lab.score("null"), flag=flag, summary={
            "n_issues": int(flag.sum()), "n_missing_cells": int(missing.sum()),
            "n_rows_all_missing": int(lab.flag("null").sum()), "columns_with_missing": [int(c) for c in columns[:50]],
            "datalab_score": lab.dataset_score("null")})


@ISSUE_REGISTRY.register("class_imbalance")
@dataclass(frozen=True)
class ClassImbalance(DatalabIssueType):
    """Rows of a class far rarer than the others: Datalab's ``class_imbalance`` manager."""

    help = ("rows of the rarest class when it holds under threshold/K of the rows "
            "(cleanlab Datalab 'class_imbalance')")
    datalab_name = "class_imbalance"
    needs: ClassVar[tuple[str, ...]] = ()
    threshold: float = 0.1

    def findings(self, x: IssueInputs) -> DatalabFindings:
        lab = x.extra.get("datalab")
        if isinstance(lab, DatalabFindings) and self.datalab_name in lab.info:
            return lab
        labels = labels_of(x)
        return run_datalab(np.zeros((labels.size, 1), dtype=np.float32), labels, None,
                           {"class_imbalance": self.datalab_kwargs()})

    def more_summary(self, lab: DatalabFindings) -> dict[str, Any]:
        rarest = lab.info["class_imbalance"].get("Rarest Class")
        return {"rarest_class": int(rarest) if isinstance(rarest, (int, np.integer)) else None}


@ISSUE_REGISTRY.register("non_iid")
@dataclass(frozen=True)
class NonIID(DatalabIssueType):
    """Ordered rows (drift, files sorted by class or source): Datalab's ``non_iid`` manager.

    Its permutation test is on the whole dataset (``p_value`` in the summary); when the test rejects,
    Datalab flags the one row with the highest score, and the per-row scores show where the order shows.
    """

    help = "the row order depends on the content (cleanlab Datalab 'non_iid', a permutation test on the kNN graph)"
    datalab_name = "non_iid"
    k: int = 10
    num_permutations: int = 25
    seed: int = 0
    significance_threshold: float = 0.05

    def more_summary(self, lab: DatalabFindings) -> dict[str, Any]:
        p = lab.info["non_iid"].get("p-value")
        return {"p_value": None if p is None else float(p),
                "ordered": None if p is None else bool(p < self.significance_threshold)}


@ISSUE_REGISTRY.register("underperforming_group")
@dataclass(frozen=True)
class UnderperformingGroup(DatalabIssueType):
    """Clusters of rows where the cross-fitted model does much worse: Datalab's ``underperforming_group``."""

    help = ("clusters of rows where the cross-fitted model is much less accurate than overall "
            "(cleanlab Datalab 'underperforming_group')")
    datalab_name = "underperforming_group"
    needs: ClassVar[tuple[str, ...]] = ("features", "oos_proba")
    k: int = 10
    threshold: float = 0.1
    min_cluster_samples: int = 5


#: The issue types this package registers, in the order ``find_data_issues`` runs them by default.
DATA_ISSUE_TYPES: tuple[str, ...] = ("outlier", "near_duplicate", "exact_duplicate", "null", "class_imbalance",
                                     "non_iid", "underperforming_group")

__all__ = [
    "DATA_ISSUE_TYPES", "ClassImbalance", "DatalabIssueType", "ExactDuplicate", "NearDuplicate", "NonIID", "Null",
    "Outlier", "UnderperformingGroup", "exact_duplicate_of", "flat_features", "labels_of",
]

"""Issue types: what can be wrong with a row, each as a score and a flag per row plus a summary.

Each issue type is one class in ``ISSUE_REGISTRY`` (``docs/extending.md`` adds one). Label
issues (``"label"``) are the stage's own: their score and flag are the decisions table's ``score``
and ``is_issue``. Every further type adds two columns to the table, ``<name>_score`` (float64,
higher = more of an issue) and ``is_<name>_issue`` (bool), and one entry to the summary;
``find_issues`` runs the types asked for.

Issue types only describe rows; what happens to a row is the policy's business
(``influence_stage.decisions.policies``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from influence_stage.errors import InvalidInputError
from influence_stage.registry import Registry


@dataclass(frozen=True, eq=False)
class IssueInputs:
    """What an issue type may read; every array has one entry per row of ``table``, in its order.

    Attributes
    ----------
    table : pandas.DataFrame, the decisions table (``schema.TABLE_COLUMNS``)
    threshold : ThresholdResult or None, the threshold that flagged the label issues
    proba : ``(n, K) float64`` the members' mean class probabilities, or None
    oos_proba : ``(n, K) float64`` cross-fitted out-of-sample probabilities, or None
    features : ``(n, d) float`` the featurized rows, or None
    extra : dict, anything else a caller passes by name (for issue types of its own)
    """

    table: pd.DataFrame
    threshold: Any = None
    proba: np.ndarray | None = None
    oos_proba: np.ndarray | None = None
    features: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.table)


@dataclass(frozen=True, eq=False)
class IssueResult:
    """One issue type's findings.

    Attributes
    ----------
    score : ``(n,) float64`` higher = more of an issue
    flag : ``(n,) bool`` the rows that have the issue
    summary : dict, a few named numbers for the run summary (``n_issues`` at least)
    """

    score: np.ndarray
    flag: np.ndarray
    summary: dict[str, Any]


class IssueType(ABC):
    """One kind of issue: a class registered in ``ISSUE_REGISTRY``.

    Attributes
    ----------
    name : str
        Set by the registry.
    help : str
        One line for the docs.
    needs : tuple of str
        The ``IssueInputs`` fields it needs (besides ``table``); ``find_issues`` names a
        missing one.
    """

    name: ClassVar[str] = ""
    help: ClassVar[str] = ""
    needs: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def columns(cls) -> tuple[str, str]:
        """The table columns of its score and flag: ``<name>_score``, ``is_<name>_issue``."""
        return f"{cls.name}_score", f"is_{cls.name}_issue"

    @abstractmethod
    def detect(self, x: IssueInputs) -> IssueResult:
        """Score and flag every row."""


#: Every issue type, one class each.
ISSUE_REGISTRY: Registry[type[IssueType]] = Registry("issue type", base=IssueType)


@ISSUE_REGISTRY.register("label")
class LabelIssue(IssueType):
    """Wrong labels: the run's ranking ``score`` and the threshold's ``is_issue`` (the table's own columns)."""

    help = "rows whose given label is likely wrong (the ranking score and the threshold's flag)"

    @classmethod
    def columns(cls) -> tuple[str, str]:
        return "score", "is_issue"

    def detect(self, x: IssueInputs) -> IssueResult:
        flag = x.table["is_issue"].to_numpy(dtype=bool)
        summary: dict[str, Any] = {"n_issues": int(flag.sum())}
        if x.threshold is not None:
            summary.update(threshold=x.threshold.method, value=float(x.threshold.value),
                           estimated_noise_rate=x.threshold.estimated_noise_rate)
        return IssueResult(score=x.table["score"].to_numpy(dtype=np.float64), flag=flag, summary=summary)


def find_issues(table: pd.DataFrame, types: tuple[str, ...] | list[str] = ("label",), *, threshold: Any = None,
                proba: Any = None, oos_proba: Any = None, features: Any = None,
                **extra: Any) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """Run the issue types ``types`` on a decisions table.

    Parameters
    ----------
    table : pandas.DataFrame
        The decisions table (``Decisions.table``), one row per input row.
    types : sequence of str, default ``("label",)``
        Names in ``ISSUE_REGISTRY``.
    threshold, proba, oos_proba, features, **extra
        The ``IssueInputs`` the types read.

    Returns
    -------
    table : pandas.DataFrame
        A copy of ``table`` with ``<name>_score`` and ``is_<name>_issue`` appended for every type
        but ``label`` (whose columns are ``score`` and ``is_issue`` already).
    summary : dict
        ``{name: IssueResult.summary}`` in the order of ``types``.

    Raises
    ------
    InvalidInputError
        An unknown type (the message lists the registry's names), a type given twice, an input a
        type needs that is missing, or a result of the wrong shape.
    """
    names = list(types)
    if len(set(names)) != len(names):
        raise InvalidInputError(f"issue types must be distinct; found {names}.")
    classes = [ISSUE_REGISTRY.get(name) for name in names]
    x = IssueInputs(table=table, threshold=threshold,
                    proba=None if proba is None else np.asarray(proba, dtype=np.float64),
                    oos_proba=None if oos_proba is None else np.asarray(oos_proba, dtype=np.float64),
                    features=None if features is None else np.asarray(features), extra=dict(extra))
    out = table.copy()
    summary: dict[str, dict[str, Any]] = {}
    for cls in classes:
        missing = [k for k in cls.needs if getattr(x, k, None) is None and k not in x.extra]
        if missing:
            raise InvalidInputError(f"issue type {cls.name!r} needs {', '.join(missing)}; found none. "
                                    f"Fix: pass {', '.join(f'{k}=' for k in missing)} to find_issues.")
        result = cls().detect(x)
        score = np.asarray(result.score, dtype=np.float64)
        flag = np.asarray(result.flag, dtype=bool)
        if score.shape != (x.n,) or flag.shape != (x.n,):
            raise InvalidInputError(f"issue type {cls.name!r} must give one score and one flag per row ({x.n}); "
                                    f"found shapes {score.shape} and {flag.shape}.")
        score_col, flag_col = cls.columns()
        if (score_col, flag_col) != ("score", "is_issue"):
            out[score_col] = score
            out[flag_col] = flag
        summary[cls.name] = dict(result.summary)
    return out, summary


__all__ = ["ISSUE_REGISTRY", "IssueInputs", "IssueResult", "IssueType", "LabelIssue", "find_issues"]

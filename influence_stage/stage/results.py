"""What the stage's steps hand each other: ``Prepared`` (the loaded, checked input), ``Features``
(what the engine scores) and ``PipelineResult`` (everything one run produced).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import datasets
import numpy as np

from influence_stage.data.columns import ColumnRoles
from influence_stage.data.feature_store import FeatureStore, StreamData
from influence_stage.data.featurize import Featurizer
from influence_stage.data.labels import LabelEncoding
from influence_stage.decisions import Decisions
from influence_stage.engine.gex import GEXResult
from influence_stage.engine.learner import Learner, TensorData


@dataclass(frozen=True, eq=False)
class Prepared:
    """The loaded, checked input.

    Attributes
    ----------
    dataset : datasets.Dataset
        ``n`` rows with a ``row_id`` column (added as ``0..n-1`` when the source had none).
    roles : ColumnRoles
        Label and feature columns and the featurizer kind.
    encoding : LabelEncoding
        Label values ↔ codes ``0..K-1``; ``encoding.codes`` ``(n,) int64`` in dataset order.
    """

    dataset: datasets.Dataset
    roles: ColumnRoles
    encoding: LabelEncoding

    @property
    def n_classes(self) -> int:
        """Number of classes ``K``."""
        return self.encoding.n_classes


@dataclass(frozen=True, eq=False)
class Features:
    """What the engine scores.

    Attributes
    ----------
    X : numpy.ndarray or FeatureStore
        ``(n, d)`` float32 (tabular, text) or ``(n, c, h, w)`` float32 (images); ``(n, 0)`` float32
        when the model reads the raw columns itself (``model="hf:<folder>"``, see
        ``featurize_step``). Image features on disk (``featurize.on_disk``) are a
        ``FeatureStore`` of that shape, read in batches;
        a store in a temporary folder is removed when it is no longer referenced.
    y : numpy.ndarray
        ``(n,) int64`` given label codes ``0..K-1``.
    row_ids : numpy.ndarray
        ``(n,) int64`` in the same order.
    n_classes : int
        ``K``.
    featurizer : TabularFeaturizer, ImageFeaturizer, TextFeaturizer or None
        The fitted featurizer (None when the caller built the arrays).
    missing : numpy.ndarray or None
        ``(n, d) bool``: the cells the featurizer filled (a missing numeric cell takes its column's
        median), so the null issue type flags exactly those rows; None when no cell was filled.
    """

    X: np.ndarray | FeatureStore
    y: np.ndarray
    row_ids: np.ndarray
    n_classes: int
    featurizer: Featurizer | None = None
    missing: np.ndarray | None = None

    @property
    def store(self) -> FeatureStore | None:
        """The on-disk features, or None when ``X`` is an array."""
        return self.X if isinstance(self.X, FeatureStore) else None

    def tensor_data(self, device: Any = "cpu") -> TensorData | StreamData:
        """``(X, y)`` as tensors on ``device`` (shares memory with the arrays on CPU).

        On-disk features give a ``StreamData`` instead,
        which reads ``X`` from the store batch by batch (``y`` is a tensor).
        """
        if self.store is not None:
            return self.store.data(self.y, device=device)
        return TensorData.from_arrays(self.X, self.y, device=device)


@dataclass(frozen=True, eq=False)
class PipelineResult:
    """Everything one run of the stage produced.

    Attributes
    ----------
    prepared, features : step results
    learner : Learner
        At θ*.
    gex_result : GEXResult
        Scores ``(n,)``, loss matrix ``(n, M)``, members, the fine-tuning rate.
    decisions : Decisions
        ``decisions.table``: one row per input row, in input order.
    cleaned : datasets.Dataset
        ``n - n_drop`` rows.
    timings : dict
        Wall seconds per step: ``prepare, featurize, model, score, decide, apply`` (and the gates'
        ``validate input``, ``validate output`` when they ran).
    reports : list of ValidationReport
        The input and output suites' reports, when the gates ran.
    summary : dict
        Counts and choices of the run (``stage.run.summarize``).
    """

    prepared: Prepared
    features: Features
    learner: Learner
    gex_result: GEXResult
    decisions: Decisions
    cleaned: datasets.Dataset
    timings: dict[str, float] = field(default_factory=dict)
    reports: list[Any] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    issues: Any = None  # IssueReport of the issues step (stage.issues), None when no type ran


__all__ = ["Features", "PipelineResult", "Prepared"]

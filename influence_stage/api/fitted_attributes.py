"""The fitted attributes of ``InfluenceCleaner`` (``scores_``, ``issues_``, ``decisions_``...), set from
one run of the stage."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from influence_stage.api.fitted_data import features_json
from influence_stage.api.issue_data import fit_issues, issues_frame
from influence_stage.api.views import with_label_names
from influence_stage.config import CleanConfig
from influence_stage.data.fingerprint import column_fingerprints, combine_fingerprints
from influence_stage.stage.results import PipelineResult

logger = logging.getLogger("influence_stage.api.cleaner")  # the cleaner's log, as before the move


def set_fitted(est: Any, result: PipelineResult, config: CleanConfig) -> None:
    """Set every fitted attribute of ``est`` (an ``InfluenceCleaner``) from ``result``, run with ``config``."""
    ds = result.prepared.dataset
    digests = column_fingerprints(ds)
    est.config_ = config
    est.pipeline_ = result
    est.result_ = result.gex_result
    est.learner_ = result.learner
    est.members_ = result.gex_result.members
    est.scores_ = np.asarray(result.gex_result.scores, dtype=np.float64)
    est.gex_influence_ = np.asarray(result.gex_result.gex_influence, dtype=np.float64)
    est.label_quality_ = result.decisions.table["label_quality"].to_numpy()
    est.estimated_noise_rate_ = result.decisions.threshold.estimated_noise_rate
    est.decisions_ = result.decisions
    report = fit_issues(result, config)
    est.issue_report_summary_ = None if report is None else report.summary
    est.issues_ = issues_frame(with_label_names(result.decisions.table, np.asarray(result.prepared.encoding.names)),
                                report)
    est.score_name_ = result.gex_result.score_name
    est._evidence_first_ = bool(result.gex_result.evidence_first)  # how scores_ was built (engine.scores)
    est.ft_lr_ = float(result.gex_result.ft_lr)
    est.oos_proba_ = result.gex_result.oos_proba
    est._roles_ = result.prepared.roles
    est._base_loss_ = np.asarray(result.gex_result.base_loss, dtype=np.float32)
    est._loss_matrix_ = result.gex_result.loss_matrix
    est.threshold_ = float(result.decisions.threshold.value)
    est.encoding_ = result.prepared.encoding
    est.classes_ = np.asarray(result.prepared.encoding.names)
    est.row_ids_ = result.features.row_ids
    est.timings_ = dict(result.timings)
    est.column_fingerprints_ = digests
    est.dataset_fingerprint_ = combine_fingerprints(ds, digests)
    est._fitted_columns_ = list(ds.column_names)
    est._fitted_features_ = features_json(ds)
    counts = result.decisions.table["action"].value_counts().to_dict()
    logger.info("InfluenceCleaner fitted on %d rows: %s", ds.num_rows, counts)


__all__ = ["set_fitted"]

"""The stage's steps as plain functions, one per arrow of the data flow.

Each step calls the library function of its layer with its part of the one configuration object;
``influence_stage.stage.run`` chains them (with the scoring steps and the quality gates), and the
Prefect flow wraps the same functions in tasks, so nothing is computed in two places.

``prepare``          source → ``Prepared`` (Dataset with ``row_id``, column roles, label encoding)
``featurize_step``   ``Prepared`` → ``Features`` (``X`` float32, ``y`` int64 codes, row ids)
``make_model_step``  ``Features`` → a ``Learner`` at θ* (built and trained, loaded, or given)
``learner_data``     what a learner trains and evaluates on (tensors, or raw texts / images)
``stage.run``        scale → member groups → loss matrix → ``GEXResult``; the gates; ``run``
``decide_step``      ``GEXResult`` → ``Decisions`` (one row per input row)
``apply_step``       ``Decisions`` → the cleaned ``datasets.Dataset``

The configuration (``CleanConfig``, ``parse_model_spec``,
``config_fingerprint``) lives in ``influence_stage.config``; those three names are still
re-exported here for older importers.

Which model: ``parse_model_spec`` reads ``CleanConfig.model`` through the model-source registry
(``influence_stage.engine.sources.MODEL_SOURCE_REGISTRY``) — a builder name (``"auto"``,
``"mlp"``, ``"cnn"``: trained on the given labels), a torch checkpoint (``"checkpoint:<path>"`` or a
path ending in ``.pt``, ``.pth``, ``.bin``, ``.safetensors``; loaded with
``influence_stage.engine.checkpoint.load_model``), a local Hugging Face classifier
(``"hf:<folder>"``; ``influence_stage.engine.hf.HFLearner``) or a registered source's form.
Loaded models are θ* as they are unless ``fit_loaded``.

One job per module: the step results (``Prepared``, ``Features``, ``PipelineResult``) are in
``influence_stage.stage.results``, the checks before any work (``preflight``, ``check_folder``) in
``influence_stage.stage.preflight``, the model step and ``learner_data`` in
``influence_stage.stage.model_step``; every one of those names still imports from here.

Caching keys for the flows: ``data.fingerprint.dataset_fingerprint`` (content of the Arrow table,
column names and feature types) and ``config_fingerprint`` (the configuration fields that change members and
scores, plus the content of a checkpoint or Hugging Face folder named by ``model``).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import datasets
import numpy as np

from influence_stage.config.clean import CleanConfig
from influence_stage.config.clean import config_fingerprint  # noqa: F401  (re-exported, see __all__)
from influence_stage.config.model_spec import parse_model_spec
from influence_stage.data.columns import check_numeric_columns, resolve_columns
from influence_stage.data.featurize import featurize
from influence_stage.data.labels import LabelEncoding, normalize_label_column
from influence_stage.data.sources import load_source, row_ids
from influence_stage.decisions import Decisions, decide, parse_threshold
from influence_stage.decisions.suggest import suggestion_proba
from influence_stage.decisions.apply import apply_decisions, check_new_weight_column
from influence_stage.decisions.estimate import ESTIMATE_COUNTS, weak_model_count
from influence_stage.decisions.policies import POLICY_REGISTRY
from influence_stage.engine.gex import GEXResult
from influence_stage.engine.influence import self_influence
from influence_stage.engine.losses import mean_member_proba
from influence_stage.engine.members import can_cross_fit, out_of_sample_proba
from influence_stage.engine.scores import GEX_SCALE
from influence_stage.errors import InvalidInputError
from influence_stage.stage.model_step import HF_EVAL_BATCH_SIZE, hf_task, learner_data, make_model_step
from influence_stage.stage.preflight import check_config, check_folder, preflight
from influence_stage.stage.results import Features, PipelineResult, Prepared

logger = logging.getLogger(__name__)

_check_config = check_config  # the former private name


def check_class_counts(encoding: LabelEncoding, ids: np.ndarray) -> None:
    """At least 2 classes present, and no class with a single row.

    A class with one row has no other evidence: its row is maximally self-influential whether its
    label is right or wrong, and relabeling it would delete the class.

    Raises
    ------
    InvalidInputError
        Naming the class(es) and the row id(s).
    """
    counts = np.bincount(encoding.codes, minlength=encoding.n_classes)
    present = np.flatnonzero(counts)
    if present.size < 2:
        found = [encoding.names[c] for c in present]
        raise InvalidInputError(
            f"label column {encoding.label_column!r} has {present.size} class(es) {found}; expected at least 2 "
            "classes. Fix: check label_column names the label."
        )
    single = np.flatnonzero(counts == 1)
    if single.size:
        where = ", ".join(
            f"class {encoding.names[c]!r} (row_id {int(ids[np.flatnonzero(encoding.codes == c)[0]])})"
            for c in single[:10]
        )
        more = f" and {single.size - 10} more" if single.size > 10 else ""
        raise InvalidInputError(
            f"{single.size} class(es) have a single row: {where}{more}. Expected at least 2 rows per class: a "
            "lone row is maximally self-influential whatever its label, and relabeling it would delete its "
            "class. Fix: drop those rows, merge the class into another, or add rows."
        )


def prepare(source: Any, config: CleanConfig) -> Prepared:
    """Load and check the input: source → Dataset with ``row_id``, column roles, label codes.

    Parameters
    ----------
    source : path, hub id, datasets.Dataset, datasets.DatasetDict, pandas.DataFrame or (X, y)
        See ``influence_stage.data.sources.load_source``.
    config : CleanConfig
        Uses ``label_column``, ``feature_columns``, ``split``, ``coerce_numeric``.

    Returns
    -------
    Prepared

    Raises
    ------
    InvalidInputError
        Empty data, missing label column (the message lists the available ones), missing labels,
        fewer than 2 classes, a class with a single row, bad feature columns.
    """
    config = check_config(config)
    ds = load_source(source, split=config.split, label_column=config.label_column)  # adds / checks row_id
    ds = check_numeric_columns(ds, config.label_column, config.feature_columns, coerce=config.coerce_numeric)
    roles = resolve_columns(ds, config.label_column, config.feature_columns)
    ds, encoding = normalize_label_column(ds, config.label_column, config.normalize_labels)
    check_class_counts(encoding, row_ids(ds))
    logger.info("prepared %d rows, %d classes, %s features %s", ds.num_rows, encoding.n_classes, roles.kind,
                list(roles.feature_columns)[:5])
    return Prepared(dataset=ds, roles=roles, encoding=encoding)


def featurize_step(prepared: Prepared, config: CleanConfig, *, store_dir: str | os.PathLike | None = None) -> Features:
    """Feature columns → ``X`` float32; labels → ``y`` int64 codes.

    Image features go to disk when ``config.featurize.on_disk`` says so (``"auto"``: when the
    float32 matrix would exceed ``on_disk_above`` bytes): into ``store_dir`` when given (kept),
    else into a temporary folder removed when the features are garbage-collected.

    With ``config.model = "hf:<folder>"`` nothing is featurized: the Hugging Face model tokenizes
    or processes the raw text / image column itself (``learner_data``), so ``X`` is an empty
    ``(n, 0)`` array and ``featurizer`` None (TF-IDF or resized images would only cost time and
    memory). The feature columns must then be text or one image column.

    Returns
    -------
    Features
        ``X`` ``(n, d)``, ``(n, c, h, w)`` or (``hf:``) ``(n, 0)`` float32, ``y`` ``(n,)`` int64,
        ``row_ids`` ``(n,)`` int64.

    Raises
    ------
    InvalidInputError
        ``hf:`` model with tabular feature columns; see also ``influence_stage.data.featurize.featurize``.
    """
    config = check_config(config)
    y = np.asarray(prepared.encoding.codes, dtype=np.int64)
    ids = row_ids(prepared.dataset)
    if parse_model_spec(config.model).model_source.reads_raw:
        hf_task(prepared.roles, f"model {config.model!r}")
        logger.info("model %r reads the raw %s column(s) %s; not featurized", config.model, prepared.roles.kind,
                    list(prepared.roles.feature_columns))
        return Features(X=np.empty((len(y), 0), dtype=np.float32), y=y, row_ids=ids, n_classes=prepared.n_classes,
                        featurizer=None)
    X, featurizer = featurize(prepared.dataset, prepared.roles, config=config.featurize, store_dir=store_dir)
    missing = getattr(featurizer, "missing_", None)  # only the tabular featurizer fills cells
    if missing is not None and not missing.any():
        missing = None
    return Features(X=X, y=y, row_ids=ids, n_classes=prepared.n_classes, featurizer=featurizer, missing=missing)


def decide_step(result: GEXResult, features: Features, config: CleanConfig, *,
                prepared: Prepared | None = None, only_rows: Any = None) -> Decisions:
    """Scores → one decision per row; suggested labels from the members' and the cross-fitted probabilities
    (``decisions.suggest``).

    Parameters
    ----------
    result : GEXResult
    features : Features
    config : CleanConfig
    prepared : Prepared, optional
        Needed when ``result.learner`` is an ``HFLearner`` (see ``learner_data``).
    only_rows : ndarray of bool, optional
        Rows an action may touch (``decide``'s ``eligible``); default every row.

    Returns
    -------
    Decisions
        ``table`` columns ``row_id, score, is_issue, action, given_label, suggested_label, weight``,
        in ``features`` order.
    """
    config = check_config(config)
    policy = POLICY_REGISTRY.get(config.action)
    if config.action == "prune":  # the budget ranks by the paper's D = L - b (prune_tau), not the noise floor
        influence = self_influence(result.loss_matrix, result.base_loss, tau=config.prune_tau)
    else:
        influence = result.gex_influence
    proba = n_estimated = None
    if policy.uses_threshold:  # a policy that chooses its own rows needs no probabilities and no estimate
        data = learner_data(result.learner, prepared, features)
        members = result.member_proba
        if members is None:  # the loss passes kept none (a loss store, the vmap path, a learner without the pass)
            members = mean_member_proba(result.learner, result.members, data, batch_size=config.gex.eval_batch_size,
                                        member_chunk=config.gex.member_chunk)
        proba = suggestion_proba(members, result.oos_proba, result.auxiliary)
        n_estimated = estimated_issues(result, data, config, member_proba=members)
    return decide(result.scores, features.y, threshold=config.threshold, action=config.action, proba=proba,
                  row_ids=features.row_ids, min_agreement=config.min_agreement,
                  relabel_fallback=config.relabel_fallback, relabel_rule=config.relabel_rule,
                  max_fraction_per_class=config.max_fraction_per_class,
                  max_drop_fraction=config.drop_cap, min_weight=config.min_weight,
                  random_state=config.seed, gex_influence=influence, n_estimated=n_estimated,
                  eligible=only_rows, oos_proba=result.oos_proba,
                  score_floor=2 * config.gex.tau ** 2 if result.score_name in GEX_SCALE else 0.0,
                  policy_options={"keep": config.prune_keep, "per_class": config.prune_per_class,
                                  "high_share": config.prune_high_share, "min_margin": config.relabel_margin,
                                  "weak_min_agreement": config.weak_min_agreement,
                                  "reverse_flip_alpha": config.reverse_flip_alpha})


def estimated_issues(result: GEXResult, data: Any, config: CleanConfig, *,
                     member_proba: np.ndarray | None = None) -> int | None:
    """Estimated number of mislabeled rows when the threshold is ``"estimate"`` (else None).

    From the run's cross-fitted out-of-sample probabilities (``estimate.both_count``, or
    ``estimate.confident_joint_count`` under ``GEXConfig.estimate_count="confident_joint"``), trained
    here when neither the scale nor the score did.
    When their model is not reliable (``result.auxiliary``, see ``engine.auxiliary``),
    ``estimate.weak_model_count`` with ``member_proba`` ``(n, K)``, the members' mean probabilities:
    the midpoint of the over-count of the weak model alone and the under-count of its mean with the
    members (in-sample, they remember wrong labels).
    """
    if parse_threshold(config.threshold).method != "estimate":
        return None
    aux = getattr(result, "auxiliary", None)
    if aux is not None and not aux.reliable and member_proba is not None and result.oos_proba is not None:
        y = data.y.cpu().numpy() if hasattr(data.y, "cpu") else np.asarray(data.y)
        return weak_model_count(y, result.oos_proba, member_proba)
    proba = result.oos_proba
    if proba is None:
        if not can_cross_fit(result.learner):
            raise InvalidInputError(
                "threshold 'estimate' needs out-of-sample probabilities, which this model cannot provide (it cannot "
                "train a fresh copy). Fix: set threshold to 'otsu', 'gmm', 'quantile:q' or 'budget:f'."
            )
        proba = out_of_sample_proba(result.learner, data, config=config.gex, fit_config=config.fit)
    y = data.y.cpu().numpy() if hasattr(data.y, "cpu") else np.asarray(data.y)
    return ESTIMATE_COUNTS[config.gex.estimate_count](y, proba)


def apply_step(prepared: Prepared, decisions: Decisions, config: CleanConfig) -> datasets.Dataset:
    """Apply the decisions to the prepared dataset (see ``influence_stage.decisions.apply.apply_decisions``).

    Under ``action="reweight"`` the weight column is always added (1.0 on every row when nothing
    was flagged), so the output schema does not depend on the data.

    Returns
    -------
    datasets.Dataset
        ``n - n_drop`` rows; other columns untouched.
    """
    config = check_config(config)
    ds = prepared.dataset
    if config.action == "reweight":
        check_new_weight_column(ds.column_names, config.weight_column)
    out = apply_decisions(ds, decisions.table, label_column=config.label_column, encoding=prepared.encoding,
                          weight_column=config.weight_column)
    if config.action == "reweight" and config.weight_column not in out.column_names:
        out = out.add_column(config.weight_column, np.ones(out.num_rows), feature=datasets.Value("float64"))
    return out


# CleanConfig, config_fingerprint and parse_model_spec are re-exported for the modules that still import


# The step results (stage.results), the checks before any work (stage.preflight) and the model step
# (stage.model_step) live in their own modules; their names stay importable from here.
# CleanConfig, config_fingerprint and parse_model_spec are re-exported for the modules that still import
# them from here (influence_stage.api.{params,persist,gate}, benchmarks/{scale,scale_images,downstream}.py
# and tests); new code imports them from influence_stage.config.
__all__ = [
    "CleanConfig", "Features", "HF_EVAL_BATCH_SIZE", "PipelineResult", "Prepared", "apply_step", "check_class_counts",
    "check_folder", "config_fingerprint", "decide_step", "estimated_issues", "featurize_step", "learner_data",
    "make_model_step", "parse_model_spec", "preflight", "prepare",
]

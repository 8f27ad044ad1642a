"""The scikit-learn-style API: ``InfluenceCleaner`` for datasets and frames, ``InfluenceSampler`` for
imbalanced-learn pipelines.

Both are thin: they turn their parameters into one :class:`~influence_stage.stage.steps.CleanConfig`
and call the step functions of :mod:`influence_stage.stage.steps` (the same ones the flows and the CLI
call). They follow the scikit-learn contract: ``__init__`` only stores its keyword arguments, every
check happens in ``fit`` / ``fit_resample``, fitted attributes end with ``_``, and ``random_state``
goes through ``check_random_state``.

``InfluenceSampler`` needs the optional package imbalanced-learn (the ``dev`` extra); without it
this module still imports and ``InfluenceCleaner`` works, while importing ``InfluenceSampler``
raises an ``ImportError`` saying what to install.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator
from sklearn.utils import TransformerTags, check_random_state
from sklearn.utils.validation import check_is_fitted
import torch
from torch import nn

from influence_stage._checks import check_fraction
from influence_stage.config import FitConfig, GEXConfig
from influence_stage.data.arrow import ROW_ID
from influence_stage.data.columns import ColumnRoles
from influence_stage.data.featurize.config import FeaturizeConfig
from influence_stage.data.labels import LabelEncoding, encode_labels
from influence_stage.data.sources import load_source, row_ids
# The two loaders ``load_source`` itself uses for a DatasetDict and a local path: the cleaner needs the
# source's own columns (did it have a ``row_id``?) before ``load_source`` adds one.
from influence_stage.data.sources import _load_path, _pick_split
from influence_stage.decisions.apply import apply_to_arrays, apply_to_frame, decision_arrays
from influence_stage.decisions.estimate import class_noise_share
from influence_stage.errors import InvalidInputError, InvalidTypeError
from influence_stage.engine.learner import Learner
from influence_stage.decisions import ROW_ACTIONS, Decisions, ThresholdResult
from influence_stage.engine.scores import check_score_name
from influence_stage.stage.run import GATE_MAX_DROP_FRACTION, run
from influence_stage.stage.steps import CleanConfig, PipelineResult, Prepared, apply_step
from influence_stage.data.fingerprint import column_fingerprints, combine_fingerprints

logger = logging.getLogger(__name__)

_SEED_HIGH = 2**31 - 1


# --------------------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------------------


def _check_gate_fraction(value: Any) -> float:
    """The output gate's ``max_drop_fraction``: a number in (0, 1]."""
    return check_fraction(value, "max_drop_fraction", low_open=True)


def _check_model(model: Any) -> Any:
    """``model`` if it is a string, a torch module or a Learner; else a clear InvalidTypeError.

    Strings are checked by ``CleanConfig`` (see ``pipeline.parse_model_spec``).
    """
    if isinstance(model, (str, nn.Module)) or isinstance(model, Learner) or _is_sklearn_sgd_classifier(model):
        return model
    raise InvalidTypeError(
        "model must be a model name ('auto', 'mlp', 'cnn'), a torch checkpoint path ('checkpoint:<path>' or a "
        "path ending in .pt, .pth, .bin, .safetensors), a Hugging Face model folder ('hf:<folder>'), a "
        "torch.nn.Module (trained), a Learner (trained) or a scikit-learn classifier with partial_fit and "
        f"predict_proba (e.g. SGDClassifier(loss='log_loss'), MLPClassifier(solver='sgd')); found "
        f"{type(model).__name__} {model!r}."
    )


def _is_sklearn_sgd_classifier(model: Any) -> bool:
    """A scikit-learn estimator that :class:`~influence_stage.engine.sklearn_learner.SklearnLearner` can drive."""
    return hasattr(model, "get_params") and hasattr(model, "partial_fit") and hasattr(model, "predict_proba")


def _sklearn_learner(model: Any, gex: GEXConfig) -> tuple[Any, bool]:
    """A scikit-learn classifier as a ``SklearnLearner`` on a copy (the caller's estimator, its
    hyperparameters included, is never changed), and whether it must be trained first (unfitted)."""
    from influence_stage.engine.sklearn_learner import SklearnLearner

    fitted = hasattr(model, "coef_") or hasattr(model, "coefs_")
    return SklearnLearner(copy.deepcopy(model), batch_size=gex.batch_size), not fitted


def _check_config_arg(value: Any, cls: type, name: str) -> Any:
    if value is None or isinstance(value, cls):
        return value
    raise InvalidTypeError(
        f"{name} must be a {cls.__name__} or None; found {type(value).__name__}. Fix: {name}={cls.__name__}(...)."
    )


def _build_config(*, model: Any, gex_config: GEXConfig | None, fit_config: FitConfig | None, random_state: Any,
                  score: str | None = None, **fields: Any) -> tuple[CleanConfig, Any]:
    """The estimator's parameters as one CleanConfig, and the model object to pass to the steps.

    ``score`` (when not None) replaces ``gex_config.score``.

    Every seed (θ* initialisation and chains ``gex.seed``, batch order ``fit.seed``, text SVD
    ``featurize.seed``, the gmm threshold ``seed``) is drawn from ``check_random_state(random_state)``,
    replacing the seeds of the given configs: an int gives the same seeds (and scores) every time,
    None draws them from numpy's global random state (fresh randomness, as in scikit-learn).
    """
    model = _check_model(model)
    gex = _check_config_arg(gex_config, GEXConfig, "gex_config") or GEXConfig()
    fit = _check_config_arg(fit_config, FitConfig, "fit_config") or FitConfig()
    if score is not None:
        gex = GEXConfig.model_validate({**gex.model_dump(), "score": check_score_name(score)})
    data: dict[str, Any] = dict(fields, gex=gex, fit=fit)
    if _is_sklearn_sgd_classifier(model) and not isinstance(model, Learner):
        model, needs_fit = _sklearn_learner(model, gex)
        if needs_fit:  # an unfitted estimator is trained on the data with fit_config, like a model name
            data["fit_loaded"] = True
    if isinstance(model, str):
        data["model"] = model
    rng = check_random_state(random_state)
    s_gex, s_fit, s_feat, s_run = (int(s) for s in rng.randint(0, _SEED_HIGH, size=4))
    data["gex"] = gex.model_copy(update={"seed": s_gex})
    data["fit"] = fit.model_copy(update={"seed": s_fit})
    data["featurize"] = FeaturizeConfig(seed=s_feat)
    data["seed"] = s_run
    config = CleanConfig.from_mapping(data, where="estimator parameters")
    return config, (None if isinstance(model, str) else model)


# --------------------------------------------------------------------------------------------------
# InfluenceCleaner
# --------------------------------------------------------------------------------------------------


def _preview(values: Any, limit: int = 5) -> str:
    values = list(values)
    more = f", ... ({len(values)} in all)" if len(values) > limit else ""
    return "[" + ", ".join(repr(v.item() if hasattr(v, "item") else v) for v in values[:limit]) + more + "]"


class InfluenceCleaner(BaseEstimator):
    """Find and fix suspicious rows of a labelled dataset with GEX self-influence.

    ``fit`` loads the data, featurizes it, trains (or takes) a model θ*, builds the geometric
    ensemble, scores every row and decides what happens to it; ``transform`` applies those decisions
    to the same dataset. Higher scores are more suspicious (typically a wrong label).

    Parameters
    ----------
    label_column : str, default "label"
        The label column.
    feature_columns : sequence of str, str or None, default None
        Feature columns (all numeric, all text, or one image column); None chooses automatically
        (see :func:`influence_stage.data.sources.resolve_columns`).
    model : str, torch.nn.Module, Learner or scikit-learn classifier, default "auto"
        A model name ("auto": a CNN for images, else an MLP; "mlp"; "cnn") trained on the given
        labels; a scikit-learn classifier with ``partial_fit`` and ``predict_proba``
        (``SGDClassifier(loss="log_loss")``, ``MLPClassifier(solver="sgd")``), driven by
        :class:`~influence_stage.engine.sklearn_learner.SklearnLearner` on a copy: unfitted, it is trained
        with ``fit_config`` on the featurized (standardised) rows; fitted (on those features, with
        the label codes ``0..K-1`` as classes), it is θ* as it is; a torch checkpoint ("checkpoint:<path>" or a path ending in .pt, .pth, .bin or
        .safetensors; see :func:`influence_stage.engine.checkpoint.load_model`) or a local Hugging Face
        classifier folder ("hf:<folder>", text or image feature columns), loaded and used as θ*;
        or a trained module / learner used as θ*. See
        :func:`influence_stage.stage.steps.make_model_step`.
    model_builder : {"mlp", "cnn"} or None, default None
        Architecture of a checkpoint whose sidecar ``<file>.meta.json`` does not name one.
    fit_loaded : bool, default False
        Train a loaded or given model with ``fit_config`` before scoring, instead of using it as
        θ* as it is.
    hf_trainable : str, default "head"
        Parameters of an "hf:" model that SGD moves: "head", "all" or "last:N".
    action : {"drop", "relabel", "reweight", "none", "prune"}, default "drop"
        What happens to flagged rows (see :func:`influence_stage.decisions.decide.decide`);
        ``"prune"`` keeps the budget ``prune_keep`` by GEX self-influence and drops the rest
        (:func:`influence_stage.decisions.prune.prune`; ``threshold`` is not used).
    prune_keep : float in (0, 1], int or None, default None
        ``action="prune"``: rows to keep, a fraction or a count.
    prune_high_share : float in [0, 1], default 0.0
        ``action="prune"``: share of the pruned rows taken from the highest self-influence; the
        rest are the lowest.
    prune_per_class : bool, default False
        ``action="prune"``: each class keeps its share of the budget (no class is emptied either way).
    score : str or None, default None
        The ranking: "gex", "gex-trimmed", "member-loss", "gex+oos" or "gex+oos+aum" (see
        :mod:`influence_stage.engine.scores`). None: ``gex_config.score`` (default "gex+oos+aum").
    threshold : str or float, default "estimate"
        "estimate" (the estimated number of mislabeled rows), "otsu", "gmm", "quantile:q",
        "budget:f" or a score value.
    relabel_rule : {"argmax", "soft"}, default "argmax"
        Which flagged rows can be relabeled (see :func:`influence_stage.decisions.decide.decide`).
    min_agreement : float in [0, 1], default 0.5
        Relabel only where the members' mean probability of the suggested label is at least this.
    relabel_fallback : {"drop", "keep"}, default "drop"
        Action of flagged rows that are not relabeled.
    max_fraction_per_class : float in [0, 1] or None, default 0.5
        Never drop more than this fraction of a class.
    gex_config : GEXConfig, optional
        Members, perturbation scale and scores; default ``GEXConfig()``.
    fit_config : FitConfig, optional
        Training recipe of θ*; default ``FitConfig()``.
    random_state : int, RandomState or None, default None
        Every seed (θ* initialisation, chains, batch order, text SVD, the gmm threshold) is drawn
        from ``check_random_state(random_state)``, replacing the seeds in ``gex_config`` /
        ``fit_config``: an int gives the same scores on every fit; None gives fresh randomness
        (numpy's global random state, as in scikit-learn). Pass an int for reproducible results.
    split : str or None, default None
        The split to read from a multi-split source (a ``DatasetDict``, a folder of ``train*`` /
        ``test*`` files, a ``DatasetDict.save_to_disk`` folder); None: the only split.
    max_drop_fraction : float in (0, 1], default 0.3
        The output gate (the same Great Expectations suite the flow runs before publishing): ``fit``
        raises ``ValidationFailedError`` when more than this share of the rows would be dropped.
        Not a cap on the decisions (``max_fraction_per_class`` is one): raise it when mass drops
        are intended. Not applied under ``action="prune"`` (the budget is the drop share).
    progress : bool, default False
        Progress bars.
    weight_column : str, default "weight"
        Column added under ``action="reweight"``.

    Attributes
    ----------
    scores_ : ndarray, shape ``(n_samples,)`` float64
        The ranking score per input row, in input order (higher = more suspicious).
    gex_influence_ : ndarray, shape ``(n_samples,)`` float64
        The exact GEX self-influence per input row.
    label_quality_ : ndarray, shape ``(n_samples,)`` float64 in [0, 1]
        Higher = cleaner; non-increasing in ``scores_``.
    estimated_noise_rate_ : float or None
        Share of rows estimated to be mislabeled (threshold "estimate"), else None.
    issues_ : pandas.DataFrame
        One row per input row, in input order: ``row_id, score, gex_influence, label_quality,
        is_issue, action, given_label, suggested_label, weight`` (the decisions table,
        ``decisions_.table``; labels as codes into ``classes_``), then ``given_label_name`` and
        ``suggested_label_name``, the class names of those codes. Views: :meth:`get_issues`,
        :meth:`issue_summary`, :meth:`report`.
    decisions_ : Decisions
        The decisions table (exactly ``decisions.schema.TABLE_COLUMNS``) and the threshold, with
        ``decisions_.threshold.p_issue`` ``(n_samples,)`` float64, the probability-like score of
        being an issue (``>= 0.5`` on flagged rows).
    score_name_ : str
        The ranking computed (see :mod:`influence_stage.engine.scores`).
    ft_lr_ : float
        The members' fine-tuning rate (chosen by the automatic scale, or given).
    oos_proba_ : ndarray, shape ``(n_samples, n_classes)`` float32, or None
        Cross-fitted out-of-sample probabilities, when the run computed them.
    members_ : list of parameter states
        The ensemble members, chain-major.
    threshold_ : float
        The score cut-off used.
    classes_ : ndarray, shape ``(n_classes,)`` str
        Class names; code ``k`` of ``issues_`` is ``classes_[k]``.
    learner_ : Learner
        The model at θ*.
    result_ : GEXResult
        Everything GEX computed (loss matrix, base losses, ``ft_lr``...).
    pipeline_ : PipelineResult
        Every step's output and timings.
    config_ : CleanConfig
        The configuration used.
    dataset_fingerprint_ : str
        Content hash of the fitted dataset (with its ``row_id`` column).
    """

    def __init__(self, *, label_column: str = "label", feature_columns: Any = None, model: Any = "auto",
                 action: str = "drop", score: str | None = None, threshold: str | float = "estimate",
                 min_agreement: float = 0.5, relabel_fallback: str = "drop", relabel_rule: str = "argmax",
                 max_fraction_per_class: float | None = 0.5,
                 gex_config: GEXConfig | None = None, fit_config: FitConfig | None = None,
                 random_state: Any = None, progress: bool = False, weight_column: str = "weight",
                 model_builder: str | None = None, fit_loaded: bool = False, hf_trainable: str = "head",
                 split: str | None = None, max_drop_fraction: float = GATE_MAX_DROP_FRACTION,
                 prune_keep: float | int | None = None, prune_high_share: float = 0.0,
                 prune_per_class: bool = False) -> None:
        self.label_column = label_column
        self.feature_columns = feature_columns
        self.model = model
        self.action = action
        self.score = score
        self.threshold = threshold
        self.min_agreement = min_agreement
        self.relabel_fallback = relabel_fallback
        self.relabel_rule = relabel_rule
        self.max_fraction_per_class = max_fraction_per_class
        self.gex_config = gex_config
        self.fit_config = fit_config
        self.random_state = random_state
        self.progress = progress
        self.weight_column = weight_column
        self.model_builder = model_builder
        self.fit_loaded = fit_loaded
        self.hf_trainable = hf_trainable
        self.split = split
        self.max_drop_fraction = max_drop_fraction
        self.prune_keep = prune_keep
        self.prune_high_share = prune_high_share
        self.prune_per_class = prune_per_class

    # -- helpers ---------------------------------------------------------------------------------
    def _check_input(self, dataset: Any, y: Any, method: str) -> tuple[str, Any, bool]:
        """The source as the pipeline takes it: ``(kind, source, had_row_id)``.

        ``kind`` is ``"dataset"`` (a Dataset, a DatasetDict's split or a local path, read here),
        ``"frame"`` (a DataFrame) or ``"arrays"`` (``(X, y)`` as numpy arrays); ``had_row_id`` says
        whether the user's data had a ``row_id`` column (one added by ``load_source`` is not
        returned by ``transform``).
        """
        if y is not None and isinstance(dataset, (datasets.Dataset, datasets.DatasetDict, pd.DataFrame, str,
                                                  os.PathLike, tuple)):
            raise InvalidInputError(
                f"{method}(X, y) takes y only with an array X; found y next to a {type(dataset).__name__}, whose "
                f"labels are its column {self.label_column!r}. Fix: {method}(data) without y (or {method}(X, y) "
                "with X a numeric array)."
            )
        if isinstance(dataset, datasets.Dataset):
            return "dataset", dataset, ROW_ID in dataset.column_names
        if isinstance(dataset, datasets.DatasetDict):
            ds = _pick_split(dataset, self.split, "the DatasetDict")
            return "dataset", ds, ROW_ID in ds.column_names
        if isinstance(dataset, pd.DataFrame):
            return "frame", dataset, ROW_ID in dataset.columns
        if isinstance(dataset, (str, os.PathLike)):
            path = Path(os.fspath(dataset)).expanduser()
            if not path.exists():  # load_source names the missing path (or reads a hub id)
                return "dataset", load_source(dataset, split=self.split, label_column=self.label_column), True
            ds = _load_path(path, self.split, None)  # re-read on every call: the file's content now
            return "dataset", ds, ROW_ID in ds.column_names
        if isinstance(dataset, tuple) and len(dataset) == 2:
            dataset, y = dataset
        if sparse.issparse(dataset) or (dataset is not None and not isinstance(dataset, (str, bytes, dict)) and (
                y is not None or hasattr(dataset, "__array__") or hasattr(dataset, "shape")
                or isinstance(dataset, list))):
            if y is None:
                raise InvalidInputError(
                    f"InfluenceCleaner requires y to be passed, but the target y is None: {method} got an array X "
                    f"without labels. Fix: {method}(X, y) or {method}((X, y)) (or a Dataset / DataFrame with a "
                    f"{self.label_column!r} column)."
                )
            return "arrays", (_check_array_X(dataset), _check_array_y(y)), False
        raise InvalidTypeError(
            f"{method} expects a datasets.Dataset, a datasets.DatasetDict (with split=), a pandas.DataFrame, a local "
            f"parquet / csv / json file or folder, or arrays as {method}(X, y) or {method}((X, y)); found "
            f"{type(dataset).__name__}{' without y' if isinstance(dataset, np.ndarray) else ''}. Fix: pass one of "
            "those (the labels of an array X go in y)."
        )

    def _config(self) -> tuple[CleanConfig, Any]:
        return _build_config(
            model=self.model, gex_config=self.gex_config, fit_config=self.fit_config,
            random_state=self.random_state, label_column=self.label_column,
            feature_columns=None if self.feature_columns is None else (
                self.feature_columns if isinstance(self.feature_columns, str) else tuple(self.feature_columns)),
            action=self.action, score=self.score, threshold=self.threshold, min_agreement=self.min_agreement,
            relabel_fallback=self.relabel_fallback, relabel_rule=self.relabel_rule,
            max_fraction_per_class=self.max_fraction_per_class,
            weight_column=self.weight_column, model_builder=self.model_builder, fit_loaded=self.fit_loaded,
            hf_trainable=self.hf_trainable, split=self.split, prune_keep=self.prune_keep,
            prune_high_share=self.prune_high_share, prune_per_class=self.prune_per_class,
        )

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
                notes.append(f"{gone.size} fitted row_id(s) are missing: {_preview(gone)}")
            if new.size:
                notes.append(f"{new.size} row_id(s) were not fitted: {_preview(new)}")
        fitted_features = self._fitted_features_
        new_features = _features_json(ds)
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

    def _output(self, kind: str, source: Any, had_row_id: bool, prepared: Prepared,
                cleaned: datasets.Dataset | None = None) -> Any:
        """The cleaned data in the type of the input (see :meth:`transform`)."""
        table = self.decisions_.table
        if kind == "frame":
            return apply_to_frame(source, table, prepared.encoding, self.config_)
        if kind == "arrays":
            return apply_to_arrays(source[0], source[1], table, prepared.encoding)
        if cleaned is None:
            cleaned = apply_step(prepared, self.decisions_, self.config_)
        if not had_row_id:  # added by load_source: not one of the user's columns
            cleaned = cleaned.remove_columns(ROW_ID)
        return cleaned

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # transform changes rows and labels of the data it was fitted on (and refuses any other data):
        # a transformer of datasets, not a feature map; an array's dtype is kept.
        tags.transformer_tags = TransformerTags(preserves_dtype=["float64", "float32"])
        tags.target_tags.required = True  # the labels are the data: in y, or in label_column
        tags.input_tags.two_d_array = True  # fit(X, y) with numeric X (n_samples, n_features)
        tags.input_tags.three_d_array = True  # (n, h, w) images
        tags.input_tags.string = True  # text columns of a Dataset / DataFrame
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        return tags

    # -- API -------------------------------------------------------------------------------------
    def fit(self, dataset: Any, y: Any = None) -> "InfluenceCleaner":
        """Score every row and decide what happens to it.

        Parameters
        ----------
        dataset : Dataset, DatasetDict, DataFrame, path, (X, y) or array X
            ``n`` labelled rows: a ``datasets.Dataset``; a ``datasets.DatasetDict`` (the split named
            by ``split``, or its only split); a ``pandas.DataFrame``; a local parquet / csv / json
            file or folder of them, or a ``save_to_disk`` folder (read by content; see
            :func:`influence_stage.data.sources.load_source`); a tuple ``(X, y)``; or a numeric array ``X``
            ``(n_samples, n_features)`` (or ``(n, h, w)`` images) with the labels in ``y``.
        y : array-like of shape (n_samples,), optional
            The labels of an array ``X``; must be None for every other source (whose labels are
            ``label_column``).

        Returns
        -------
        self
        """
        kind, source, _ = self._check_input(dataset, y, "fit")
        config, model = self._config()
        result = run(source, config, model, progress=self.progress,
                     max_drop_fraction=_check_gate_fraction(self.max_drop_fraction))
        self._set_fitted(result, config)
        self._input_kind_ = kind
        if kind == "arrays":
            X = source[0]
            if X.ndim == 2:
                self.n_features_in_ = int(X.shape[1])
            self._fitted_y_ = source[1]
        return self

    def _set_fitted(self, result: PipelineResult, config: CleanConfig) -> None:
        ds = result.prepared.dataset
        digests = column_fingerprints(ds)
        self.config_ = config
        self.pipeline_ = result
        self.result_ = result.gex_result
        self.learner_ = result.learner
        self.members_ = result.gex_result.members
        self.scores_ = np.asarray(result.gex_result.scores, dtype=np.float64)
        self.gex_influence_ = np.asarray(result.gex_result.gex_influence, dtype=np.float64)
        self.label_quality_ = result.decisions.table["label_quality"].to_numpy()
        self.estimated_noise_rate_ = result.decisions.threshold.estimated_noise_rate
        self.decisions_ = result.decisions
        self.issues_ = _with_label_names(result.decisions.table, np.asarray(result.prepared.encoding.names))
        self.score_name_ = result.gex_result.score_name
        self.ft_lr_ = float(result.gex_result.ft_lr)
        self.oos_proba_ = result.gex_result.oos_proba
        self._roles_ = result.prepared.roles
        self._base_loss_ = np.asarray(result.gex_result.base_loss, dtype=np.float32)
        self._loss_matrix_ = result.gex_result.loss_matrix
        self.threshold_ = float(result.decisions.threshold.value)
        self.encoding_ = result.prepared.encoding
        self.classes_ = np.asarray(result.prepared.encoding.names)
        self.row_ids_ = result.features.row_ids
        self.timings_ = dict(result.timings)
        self.column_fingerprints_ = digests
        self.dataset_fingerprint_ = combine_fingerprints(ds, digests)
        self._fitted_columns_ = list(ds.column_names)
        self._fitted_features_ = _features_json(ds)
        counts = result.decisions.table["action"].value_counts().to_dict()
        logger.info("InfluenceCleaner fitted on %d rows: %s", ds.num_rows, counts)

    # -- views for a notebook --------------------------------------------------------------------
    def get_issues(self, kind: str | None = None, *, label: Any = None, action: str | None = None) -> pd.DataFrame:
        """A filtered view of ``issues_`` (a copy).

        Parameters
        ----------
        kind : {None, "all", "issues"}, default None
            None or "all": every row, in input order. "issues": the flagged rows only
            (``is_issue``), sorted by ``score`` descending (ties by input order).
        label : class name, optional
            Only rows whose given label is this class (a name of ``classes_``).
        action : {"keep", "drop", "relabel", "reweight"}, optional
            Only rows with this action.

        Returns
        -------
        pandas.DataFrame
            The columns of ``issues_``; the index is the row's position in the input.

        Raises
        ------
        InvalidInputError
            An unknown kind, class or action (the message lists the valid ones).
        """
        check_is_fitted(self, "issues_")
        if kind not in (None, "all", "issues"):
            raise InvalidInputError(f"kind must be None, 'all' or 'issues'; found {kind!r}.")
        view = self.issues_
        if label is not None:
            names = [str(c) for c in self.classes_]
            if str(label) not in names:
                raise InvalidInputError(f"label {label!r} is not a class; classes: {_preview(names, 20)}.")
            view = view[view["given_label_name"] == str(label)]
        if action is not None:
            if action not in ROW_ACTIONS:
                raise InvalidInputError(f"action must be one of {list(ROW_ACTIONS)}; found {action!r}.")
            view = view[view["action"] == action]
        if kind == "issues":
            view = view[view["is_issue"]].sort_values("score", ascending=False, kind="stable")
        return view.copy()

    def issue_summary(self) -> pd.DataFrame:
        """Per-class counts and the estimated noise share (cleanlab's ``issue_summary`` in spirit).

        Returns
        -------
        pandas.DataFrame
            Index ``class``: the class names (``classes_`` order), then ``"all"``. Columns: those of
            :meth:`influence_stage.decisions.decide.Decisions.summary` (``n_rows, n_flagged, keep, drop,
            relabel, reweight, relabeled_in, n_after``, int64), ``flagged_share`` (``n_flagged /
            n_rows``) and ``estimated_noise_share``: the share of the class's rows estimated to carry
            a wrong label, the class's off-diagonal count in the confident joint of the run's
            cross-fitted out-of-sample probabilities (the per-class part of
            ``estimated_noise_rate_``); NaN when the run computed no out-of-sample probabilities.
        """
        check_is_fitted(self, "issues_")
        table = self.decisions_.summary()
        codes = [c for c in table.index if c != "all"]
        table.index = pd.Index([str(self.classes_[int(c)]) for c in codes] + ["all"], name="class", dtype=object)
        table["flagged_share"] = table["n_flagged"] / table["n_rows"].clip(lower=1)
        given = self.decisions_.table["given_label"].to_numpy()
        share = (np.full(len(self.classes_), np.nan) if self.oos_proba_ is None
                 else class_noise_share(given, self.oos_proba_, len(self.classes_)))
        table["estimated_noise_share"] = [share[int(c)] for c in codes] + [
            float(np.nan if self.oos_proba_ is None else np.nansum(share * np.bincount(given, minlength=len(share)))
                  / len(given))]
        return table

    def report(self, path: str | os.PathLike | None = None, *, truth: Any = None,
               title: str = "influence_stage report") -> Any:
        """The HTML report of the fit (:func:`influence_stage.report.build_report`).

        Parameters
        ----------
        path : path, optional
            Where to write it (parent folders are created; written atomically).
        truth : array-like of bool, shape (n_samples,), optional
            Truly mislabeled rows (demos): adds precision / recall.
        title : str

        Returns
        -------
        pathlib.Path or HTMLReport
            With ``path``: the absolute path written. Without: an :class:`HTMLReport`, which a
            notebook renders (``_repr_html_``); its ``html`` attribute is the page.
        """
        from influence_stage.report import build_report, write_report

        check_is_fitted(self, "issues_")
        html = build_report(self.decisions_.table, class_names=[str(c) for c in self.classes_],
                            threshold=self.threshold_, truth=truth, summary=self._report_summary(), title=title,
                            score_name=self.score_name_)
        return write_report(path, html) if path is not None else HTMLReport(html)

    def _report_summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"score": self.score_name_, "threshold method": self.decisions_.threshold.method,
                               "members": len(self.members_), "ft_lr": self.ft_lr_}
        if self.estimated_noise_rate_ is not None:
            out["estimated noise rate"] = round(float(self.estimated_noise_rate_), 4)
        return out

    # -- save / load without pickle --------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted result to a folder, without pickle.

        Files: ``manifest.json`` (format version, package version, the dataset fingerprint and
        per-column digests, label encoding, threshold, estimator parameters, and the sha256 of every
        other file), ``config.json`` (``config_.model_dump(mode="json")``), ``decisions.parquet``
        (the decisions table, ``decisions.schema.TABLE_COLUMNS``), ``scores.parquet`` (``row_id, score,
        gex_influence, p_issue, base_loss``), ``arrays.safetensors`` (loss matrix, base losses,
        out-of-sample probabilities when computed) and ``members.safetensors`` (the members'
        tensors, ``member.<j>.<name>``). The model θ* itself is not saved (``learner_``).

        Parameters
        ----------
        path : path
            A folder; created if missing. Files of a previous save there are replaced.

        Returns
        -------
        pathlib.Path
            The folder, absolute.
        """
        import safetensors.numpy
        import safetensors.torch

        check_is_fitted(self, "issues_")
        folder = Path(path).expanduser().resolve()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(self.config_.model_dump(mode="json"), indent=1), "utf-8")
        self.decisions_.table.to_parquet(folder / "decisions.parquet", index=False)
        scores = pd.DataFrame({"row_id": self.row_ids_, "score": self.scores_, "gex_influence": self.gex_influence_,
                               "p_issue": np.asarray(self.decisions_.threshold.p_issue, dtype=np.float64),
                               "base_loss": self._base_loss_})
        if getattr(self, "_input_kind_", None) == "arrays":
            scores["fitted_y"] = pd.Series(list(self._fitted_y_.tolist()))
        scores.to_parquet(folder / "scores.parquet", index=False)
        arrays = {"base_loss": np.ascontiguousarray(self._base_loss_, dtype=np.float32)}
        if self._loss_matrix_ is not None:
            arrays["loss_matrix"] = np.ascontiguousarray(self._loss_matrix_, dtype=np.float32)
        if self.oos_proba_ is not None:
            arrays["oos_proba"] = np.ascontiguousarray(self.oos_proba_, dtype=np.float32)
        safetensors.numpy.save_file(arrays, str(folder / "arrays.safetensors"))
        members = {f"member.{j}.{k}": torch.as_tensor(v).detach().cpu().clone().contiguous()
                   for j, state in enumerate(self.members_) for k, v in state.items()}
        safetensors.torch.save_file(members, str(folder / "members.safetensors"))
        encoding = self.encoding_
        manifest = {
            "format": _SAVE_FORMAT, "format_version": _SAVE_VERSION, "package_version": _package_version(),
            "dataset_fingerprint": self.dataset_fingerprint_, "column_fingerprints": self.column_fingerprints_,
            "fitted_columns": self._fitted_columns_, "fitted_features": self._fitted_features_,
            "n_rows": int(len(self.row_ids_)), "n_members": len(self.members_),
            "member_keys": [list(state) for state in self.members_][:1],
            "input_kind": getattr(self, "_input_kind_", "dataset"),
            "n_features_in": getattr(self, "n_features_in_", None),
            "fitted_y_dtype": str(self._fitted_y_.dtype) if getattr(self, "_input_kind_", None) == "arrays" else None,
            "threshold": {"value": self.threshold_, "method": self.decisions_.threshold.method,
                          "n_estimated": self.decisions_.threshold.n_estimated},
            "score_name": self.score_name_, "ft_lr": self.ft_lr_,
            "encoding": {"label_column": encoding.label_column, "names": list(encoding.names),
                         "values": [v.item() if hasattr(v, "item") else v for v in encoding.values],
                         "value_dtype": encoding.value_dtype, "source": encoding.source},
            "roles": {"label_column": self._roles_.label_column, "feature_columns": list(self._roles_.feature_columns),
                      "kind": self._roles_.kind},
            "params": _params_to_json(self.get_params(deep=False)),
            "timings": self.timings_,
        }
        manifest["files"] = {name: _sha256(folder / name) for name in _SAVED_FILES}
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str), "utf-8")
        logger.info("saved InfluenceCleaner to %s", folder)
        return folder

    @classmethod
    def load(cls, path: str | os.PathLike, *, dataset: Any = None) -> "InfluenceCleaner":
        """A cleaner saved by :meth:`save`, ready to ``transform`` the dataset it was fitted on.

        Every file is checked against the sha256 in ``manifest.json`` and the tables against each
        other; ``transform`` refuses any dataset whose fingerprint differs from the fitted one (as
        after ``fit``). ``learner_``, ``result_`` and ``pipeline_`` are None (θ* is not saved);
        ``fit`` works again when the parameters are strings and configs (an in-memory model
        given as ``model=`` is not saved: ``model`` is then ``"auto"``).

        Parameters
        ----------
        path : path
            The folder written by :meth:`save`.
        dataset : optional
            The fitted data (any form ``fit`` takes): checked against the saved fingerprint now.

        Raises
        ------
        InvalidInputError
            A missing or changed file, another format version, tables that disagree, or a
            ``dataset`` other than the fitted one (the message says what differs).
        """
        import safetensors.numpy
        import safetensors.torch

        folder = Path(path).expanduser().resolve()
        manifest_path = folder / "manifest.json"
        if not manifest_path.is_file():
            raise InvalidInputError(f"no saved InfluenceCleaner at {folder}: manifest.json is missing. "
                                    "Fix: give the folder written by InfluenceCleaner.save.")
        manifest = json.loads(manifest_path.read_text("utf-8"))
        if manifest.get("format") != _SAVE_FORMAT or manifest.get("format_version") != _SAVE_VERSION:
            raise InvalidInputError(
                f"{manifest_path} holds format {manifest.get('format')!r} version {manifest.get('format_version')!r}; "
                f"expected {_SAVE_FORMAT!r} version {_SAVE_VERSION}. Fix: save it again with this version.")
        for name in _SAVED_FILES:
            file = folder / name
            if not file.is_file():
                raise InvalidInputError(f"saved cleaner at {folder} lacks {name}. Fix: save it again.")
            expected = manifest["files"].get(name)
            if _sha256(file) != expected:
                raise InvalidInputError(f"{file} changed since it was saved (sha256 differs from manifest.json). "
                                        "Fix: save it again; never edit the files of a saved cleaner.")
        est = cls(**_params_from_json(manifest["params"]))
        config = CleanConfig.model_validate(json.loads((folder / "config.json").read_text("utf-8")))
        table = pd.read_parquet(folder / "decisions.parquet")
        scores = pd.read_parquet(folder / "scores.parquet")
        n = manifest["n_rows"]
        if len(table) != n or len(scores) != n or not np.array_equal(table["row_id"], scores["row_id"]):
            raise InvalidInputError(f"saved tables at {folder} disagree: decisions.parquet has {len(table)} rows, "
                                    f"scores.parquet {len(scores)}, the manifest {n}. Fix: save it again.")
        arrays = safetensors.numpy.load_file(str(folder / "arrays.safetensors"))
        flat = safetensors.torch.load_file(str(folder / "members.safetensors"))
        members: list[dict[str, torch.Tensor]] = [{} for _ in range(manifest["n_members"])]
        for key, value in flat.items():
            _, j, name = key.split(".", 2)
            members[int(j)][name] = value
        if manifest["member_keys"]:  # keep the state's own key order
            members = [{k: m[k] for k in manifest["member_keys"][0]} for m in members]
        enc = manifest["encoding"]
        codes = table["given_label"].to_numpy(dtype=np.int64)
        est.encoding_ = LabelEncoding(label_column=enc["label_column"], names=tuple(enc["names"]),
                                      values=tuple(enc["values"]), value_dtype=enc["value_dtype"],
                                      source=enc["source"], codes=codes)
        roles = manifest["roles"]
        est._roles_ = ColumnRoles(roles["label_column"], tuple(roles["feature_columns"]), roles["kind"])
        p_issue = scores["p_issue"].to_numpy(dtype=np.float64)
        is_issue = table["is_issue"].to_numpy(dtype=bool)
        p_issue.setflags(write=False)
        is_issue.setflags(write=False)
        thr = manifest["threshold"]
        est.decisions_ = Decisions(table=table, threshold=ThresholdResult(
            value=float(thr["value"]), is_issue=is_issue, p_issue=p_issue, method=thr["method"],
            n_estimated=thr["n_estimated"]))
        est.config_ = config
        est.classes_ = np.asarray(est.encoding_.names)
        est.issues_ = _with_label_names(table, est.classes_)
        est.scores_ = scores["score"].to_numpy(dtype=np.float64)
        est.gex_influence_ = scores["gex_influence"].to_numpy(dtype=np.float64)
        est.label_quality_ = table["label_quality"].to_numpy()
        n_est = thr["n_estimated"]
        est.estimated_noise_rate_ = None if n_est is None else n_est / max(n, 1)
        est.threshold_ = float(thr["value"])
        est.score_name_ = manifest["score_name"]
        est.ft_lr_ = float(manifest["ft_lr"])
        est.oos_proba_ = arrays.get("oos_proba")
        est._base_loss_ = arrays["base_loss"]
        est._loss_matrix_ = arrays.get("loss_matrix")
        est.members_ = members
        est.row_ids_ = scores["row_id"].to_numpy(dtype=np.int64)
        est.timings_ = dict(manifest.get("timings") or {})
        est.column_fingerprints_ = dict(manifest["column_fingerprints"])
        est.dataset_fingerprint_ = manifest["dataset_fingerprint"]
        est._fitted_columns_ = list(manifest["fitted_columns"])
        est._fitted_features_ = manifest["fitted_features"]
        est._input_kind_ = manifest["input_kind"]
        if manifest.get("n_features_in") is not None:
            est.n_features_in_ = int(manifest["n_features_in"])
        if est._input_kind_ == "arrays":
            values = scores["fitted_y"].tolist()
            dtype = manifest["fitted_y_dtype"]
            est._fitted_y_ = np.asarray(values, dtype=object) if dtype == "object" else np.asarray(values).astype(
                dtype)
        est.learner_ = est.result_ = est.pipeline_ = None
        if dataset is not None:
            est._check_fitted_data(dataset)
        return est

    def _check_fitted_data(self, dataset: Any) -> None:
        """Raise (saying what differs) unless ``dataset`` is the fitted data."""
        y = self._fitted_y_ if getattr(self, "_input_kind_", None) == "arrays" and not isinstance(dataset, tuple) \
            else None
        _, source, _ = self._check_input(dataset, y, "load")
        ds = load_source(source, label_column=self.config_.label_column)
        codes = encode_labels(ds, self.config_.label_column, fitted=self.encoding_).codes
        self._check_same_dataset(ds, codes)

    def transform(self, dataset: Any, y: Any = None) -> Any:
        """Apply the fitted decisions to the fitted dataset.

        Parameters
        ----------
        dataset : Dataset, DatasetDict, DataFrame, path, (X, y) or array X
            The data given to ``fit``, in the same form (same content and order; checked by
            fingerprint). A path is read again, so a file changed since ``fit`` is refused. For an
            array ``X`` fitted with ``fit(X, y)``, ``y`` may be left out (the fitted labels are used).
        y : array-like of shape (n_samples,), optional
            The labels of an array ``X``.

        Returns
        -------
        datasets.Dataset, pandas.DataFrame, tuple (X_res, y_res) or ndarray X_res
            The form of the input: a ``Dataset`` for a Dataset, a DatasetDict or a path; a
            ``DataFrame`` for a DataFrame; ``(X_res, y_res)`` numpy arrays for a tuple ``(X, y)``;
            ``X_res`` alone for an array ``X`` (with or without ``y``: the transformer contract,
            ``fit(X, y).transform(X)``; pass the tuple, or use :class:`InfluenceSampler`, to get the
            relabeled ``y_res`` too). Dropped rows are removed, relabeled rows get the new label (a
            ``ClassLabel`` keeps its names; arrays and frames keep their label dtype), every other
            column untouched (a DataFrame keeps its index; a ``row_id`` column is kept only if the
            input had one). Under ``action="reweight"`` a Dataset or DataFrame gains a float64
            ``weight_column`` in ``(0, 1]``; for arrays the weights of the kept rows are
            ``issues_["weight"]`` on the rows whose action is not ``drop``.

        Raises
        ------
        InvalidInputError
            A label not seen in ``fit`` (named, with its row), or data other than the fitted data
            (the message says what differs); an array with another number of features.
        """
        check_is_fitted(self, "issues_")
        if dataset is not None and y is None and getattr(self, "_input_kind_", None) == "arrays" \
                and not isinstance(dataset, tuple):
            X = _check_array_X(dataset)
            n_fitted = getattr(self, "n_features_in_", None)
            if n_fitted is not None and (X.ndim != 2 or X.shape[1] != n_fitted):
                found = X.shape[1] if X.ndim == 2 else f"shape {X.shape}"
                raise InvalidInputError(
                    f"X has {found} features, but InfluenceCleaner is expecting {n_fitted} features as input "
                    "(the arrays given to fit). Fix: transform the arrays given to fit."
                )
            if len(X) != len(self._fitted_y_):
                raise InvalidInputError(
                    f"transform expects the arrays given to fit: X has {len(X)} rows, fit had {len(self._fitted_y_)}. "
                    "Fix: call fit (or fit_transform) on these arrays."
                )
            y = self._fitted_y_
        labels_out = isinstance(dataset, tuple)  # (X, y) in, (X_res, y_res) out; X in, X_res out
        kind, source, had_row_id = self._check_input(dataset, y, "transform")
        ds = load_source(source, label_column=self.config_.label_column)
        # Labels first: an unseen label is named with its row before the generic content check.
        codes = encode_labels(ds, self.config_.label_column, fitted=self.encoding_).codes
        self._check_same_dataset(ds, codes)
        prepared = Prepared(dataset=ds, roles=self._roles_, encoding=self.encoding_)
        out = self._output(kind, source, had_row_id, prepared)
        return out if kind != "arrays" or labels_out else out[0]

    def fit_transform(self, dataset: Any, y: Any = None) -> Any:
        """``fit(dataset, y)`` then the cleaned data (computed once, by the pipeline's apply step).

        Returns
        -------
        datasets.Dataset, pandas.DataFrame, tuple (X_res, y_res) or ndarray X_res
            See :meth:`transform`.
        """
        kind, source, had_row_id = self._check_input(dataset, y, "fit")
        if kind == "arrays":
            self.fit(*source)
        else:
            self.fit(source)
        cleaned = self.pipeline_.cleaned if kind == "dataset" else None
        out = self._output(kind, source, had_row_id, self.pipeline_.prepared, cleaned)
        return out if kind != "arrays" or isinstance(dataset, tuple) else out[0]


_SAVE_FORMAT = "influence_stage.InfluenceCleaner"
_SAVE_VERSION = 1
_SAVED_FILES = ("config.json", "decisions.parquet", "scores.parquet", "arrays.safetensors", "members.safetensors")


def _package_version() -> str:
    from influence_stage import __version__

    return __version__


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _features_json(ds: datasets.Dataset) -> dict[str, Any]:
    """``ds.features`` as JSON values (tuples as lists), so a saved and a live description compare equal."""
    return json.loads(json.dumps(ds.features.to_dict(), default=str))


def _params_to_json(params: dict[str, Any]) -> dict[str, Any]:
    """Estimator parameters as JSON: configs as their dumps, an in-memory model as None (not saved)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, (GEXConfig, FitConfig)):
            out[key] = {"__config__": type(value).__name__, "value": value.model_dump(mode="json")}
        elif key == "model" and not isinstance(value, str):
            out[key] = None
        elif key == "random_state" and not (value is None or isinstance(value, int)):
            out[key] = None  # a RandomState object: its seeds are in config.json
        elif isinstance(value, tuple):
            out[key] = list(value)
        else:
            out[key] = value
    return out


def _params_from_json(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict) and "__config__" in value:
            out[key] = {"GEXConfig": GEXConfig, "FitConfig": FitConfig}[value["__config__"]].model_validate(
                value["value"])
        elif key == "model" and value is None:
            out[key] = "auto"
        else:
            out[key] = value
    return out


class HTMLReport:
    """An HTML report a notebook renders: ``html`` is the page, ``save(path)`` writes it."""

    def __init__(self, html: str) -> None:
        self.html = html

    def _repr_html_(self) -> str:
        return self.html

    def save(self, path: str | os.PathLike) -> Path:
        """Write the page (atomically); returns the absolute path."""
        from influence_stage.report import write_report

        return write_report(path, self.html)

    def __repr__(self) -> str:
        return f"HTMLReport({len(self.html)} characters)"


def _with_label_names(table: pd.DataFrame, classes: np.ndarray) -> pd.DataFrame:
    """``table`` plus ``given_label_name`` / ``suggested_label_name``: ``classes[code]`` as str (a copy)."""
    out = table.copy()
    names = np.asarray([str(c) for c in classes], dtype=object)
    out["given_label_name"] = names[out["given_label"].to_numpy(dtype=np.int64)]
    out["suggested_label_name"] = names[out["suggested_label"].to_numpy(dtype=np.int64)]
    return out


def _check_array_X(X: Any) -> np.ndarray:
    """A numeric array ``X`` (2-D, or images ``(n, h, w[, c])``), with scikit-learn's messages."""
    from sklearn.utils import check_array

    if hasattr(X, "detach"):  # a torch tensor
        X = X.detach().cpu().numpy()
    ndim = 2 if sparse.issparse(X) else X.ndim if hasattr(X, "ndim") else np.asarray(X).ndim
    try:
        return check_array(X, accept_sparse=False, dtype="numeric", ensure_2d=ndim <= 2, allow_nd=True,
                           ensure_all_finite=True, input_name="X")
    except TypeError as exc:  # sparse input
        raise InvalidTypeError(f"{exc} Fix: pass X.toarray(), or a Dataset / DataFrame.") from exc
    except ValueError as exc:  # complex, empty, NaN / inf, strings, 1-D
        raise InvalidInputError(str(exc)) from exc


def _check_array_y(y: Any) -> np.ndarray:
    """``y`` as a 1-D numpy array (labels of any type: ints, strings...)."""
    y = np.asarray(y.detach().cpu().numpy() if hasattr(y, "detach") else y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()
    return y


# --------------------------------------------------------------------------------------------------
# InfluenceSampler (needs imbalanced-learn)
# --------------------------------------------------------------------------------------------------

_IMBLEARN_MISSING = (
    "InfluenceSampler needs the optional package imbalanced-learn, which is not installed. "
    "Fix: pip install 'influence_stage[dev]' (or pip install imbalanced-learn). "
    "InfluenceCleaner works without it."
)

try:
    from imblearn.base import BaseSampler as _BaseSampler
except ImportError:  # optional dependency: InfluenceSampler is then unavailable (see __getattr__)
    _BaseSampler = None


_REWEIGHT_IN_PIPELINE = (
    "InfluenceSampler(action='reweight') is a step of an imblearn Pipeline, but imbalanced-learn's Pipeline passes "
    "only (X_res, y_res) from a sampler to the next step: the weights would never reach the classifier. Fix: fit "
    "the sampler on its own and pass the weights, X_res, y_res = sampler.fit_resample(X, y); "
    "clf.fit(X_res, y_res, sample_weight=sampler.sample_weight_[sampler.sample_indices_]); or use action='drop' or "
    "'relabel' inside the Pipeline."
)


def _called_by_imblearn_pipeline() -> bool:
    """Whether this ``fit_resample`` runs as an inner step of an ``imblearn.pipeline.Pipeline``.

    imbalanced-learn (0.14) fits every step but the last through ``imblearn.pipeline._fit_resample_one``,
    which unpacks exactly ``(X_res, y_res)``; a sampler that is the last step returns to the caller,
    who can read ``sample_weight_`` from it, so only inner steps are detected.
    """
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "_fit_resample_one" and frame.f_globals.get("__name__") == "imblearn.pipeline":
            return True
        frame = frame.f_back
    return False


if _BaseSampler is not None:

    class InfluenceSampler(_BaseSampler):
        """imbalanced-learn sampler that removes, relabels or reweights suspicious rows (GEX).

        Use it as a step of ``imblearn.pipeline.Pipeline`` in front of any classifier; it runs only
        at fit time (``fit_resample``). Features must be numeric ``(n_samples, n_features)``; they
        are standardised before θ* is trained, and ``X_res`` holds the original rows.

        Parameters
        ----------
        model : str, torch.nn.Module, Learner or scikit-learn classifier, default "mlp"
            A model name trained on ``(X, y)``; a torch checkpoint path (trained on the
            standardised features; see :class:`InfluenceCleaner`); a module / learner already
            trained on them; or a scikit-learn classifier with ``partial_fit`` and
            ``predict_proba`` (see :class:`InfluenceCleaner`: unfitted, it is trained here).
        action : {"drop", "relabel", "reweight", "none", "prune"}, default "drop"
            ``drop``: flagged rows are removed. ``relabel``: flagged rows get the members' consensus
            label (flagged rows without a confident consensus are removed). ``reweight``: every row
            is kept and ``sample_weight_`` is set. ``none``: only ``scores_``. ``prune``: the budget
            ``prune_keep`` of rows is kept by GEX self-influence, the rest removed.

            ``reweight`` cannot be a step of an imblearn ``Pipeline``: imbalanced-learn's Pipeline
            passes only ``(X_res, y_res)`` from a sampler to the next step (0.14 has no way to route
            a sampler's weights), so the weights would never reach the classifier; ``fit`` of such a
            Pipeline raises an ``InvalidInputError`` before any scoring. Fit the sampler on its own
            and pass the weights yourself::

                X_res, y_res = sampler.fit_resample(X, y)
                clf.fit(X_res, y_res, sample_weight=sampler.sample_weight_[sampler.sample_indices_])
        score : str or None, default None
            The ranking (see :class:`InfluenceCleaner`); None: ``gex_config.score``.
        threshold : str or float, default "estimate"
            See :func:`influence_stage.decisions.thresholds.choose_threshold`.
        relabel_rule : {"argmax", "soft"}, default "argmax"
            Which flagged rows can be relabeled (see :func:`influence_stage.decisions.decide.decide`).
        sampling_strategy : str, list or callable, default "auto"
            Classes whose rows may be changed, as for imbalanced-learn's cleaning samplers:
            ``"auto"`` = ``"not minority"``, ``"all"``, ``"majority"``, ``"not majority"``, a list
            of labels, or a callable. Rows of other classes are always kept as they are.
        gex_config : GEXConfig, optional
        fit_config : FitConfig, optional
        random_state : int, RandomState or None, default None
            As for :class:`InfluenceCleaner`.
        max_drop_fraction : float in (0, 1], default 0.3
            As for :class:`InfluenceCleaner`: the output gate's limit on the dropped share.
        prune_keep, prune_high_share, prune_per_class
            ``action="prune"``, as for :class:`InfluenceCleaner`; the budget counts the rows of the
            classes ``sampling_strategy`` targets, the other rows are kept.

        Attributes
        ----------
        scores_ : ndarray, shape ``(n_samples,)`` float64
            The ranking score of every input row (higher = more suspicious).
        gex_influence_ : ndarray, shape ``(n_samples,)`` float64
            The exact GEX self-influence of every input row.
        estimated_noise_rate_ : float or None
            Share of rows estimated to be mislabeled (threshold "estimate"), else None.
        sample_indices_ : ndarray, shape ``(n_resampled,)`` int64
            Input rows kept, in order; ``X_res = X[sample_indices_]``.
        sample_weight_ : ndarray, shape ``(n_samples,)`` float64 in ``(0, 1]``
            Per input row: the weight of reweighted rows, 1.0 elsewhere. For ``X_res`` use
            ``sample_weight_[sample_indices_]``.
        issues_ : pandas.DataFrame
            The decisions table (row ids ``0..n-1``, labels as codes into ``classes_``).
        classes_ : ndarray
            The labels, sorted (``LabelEncoder``).
        threshold_ : float
        members_, learner_, result_, config_ : as for :class:`InfluenceCleaner`.
        sampling_strategy_ : dict
            Targeted classes (keys).
        """

        _sampling_type = "clean-sampling"
        # Parameters are validated by CleanConfig in _fit_resample (errors from exceptions.py).
        _parameter_constraints: dict = {}

        def __init__(self, *, model: Any = "mlp", action: str = "drop", score: str | None = None,
                     threshold: str | float = "estimate", relabel_rule: str = "argmax",
                     sampling_strategy: Any = "auto", gex_config: GEXConfig | None = None,
                     fit_config: FitConfig | None = None, random_state: Any = None,
                     max_drop_fraction: float = GATE_MAX_DROP_FRACTION, prune_keep: float | int | None = None,
                     prune_high_share: float = 0.0, prune_per_class: bool = False) -> None:
            super().__init__(sampling_strategy=sampling_strategy)
            self.model = model
            self.action = action
            self.score = score
            self.threshold = threshold
            self.relabel_rule = relabel_rule
            self.gex_config = gex_config
            self.fit_config = fit_config
            self.random_state = random_state
            self.max_drop_fraction = max_drop_fraction
            self.prune_keep = prune_keep
            self.prune_high_share = prune_high_share
            self.prune_per_class = prune_per_class

        def _check_X_y(self, X, y, accept_sparse=None):
            # Dense only: the features become a float32 tensor. A DataFrame of pandas sparse columns is
            # densified (``X_res`` comes back with the frame's own sparse dtypes); scipy sparse matrices
            # are refused (densifying one could need far more memory than the caller expects).
            if isinstance(X, pd.DataFrame) and any(isinstance(d, pd.SparseDtype) for d in X.dtypes):
                X = X.sparse.to_dense()
            return super()._check_X_y(X, y, accept_sparse=False)

        def __sklearn_tags__(self):
            tags = super().__sklearn_tags__()
            tags.input_tags.sparse = False  # scipy sparse X: refused (TypeError "dense data is required")
            tags.input_tags.dataframe = True  # DataFrames, pandas sparse columns included (densified)
            tags.sampler_tags.sample_indices = True  # sample_indices_ is set by every fit_resample
            return tags

        def _fit_resample(self, X, y):
            from sklearn.preprocessing import LabelEncoder

            if self.action == "reweight" and _called_by_imblearn_pipeline():
                raise InvalidInputError(_REWEIGHT_IN_PIPELINE)

            config, model = _build_config(model=self.model, gex_config=self.gex_config, fit_config=self.fit_config,
                                          random_state=self.random_state, action=self.action, score=self.score,
                                          threshold=self.threshold, relabel_rule=self.relabel_rule,
                                          prune_keep=self.prune_keep, prune_high_share=self.prune_high_share,
                                          prune_per_class=self.prune_per_class)
            y = np.asarray(y)
            encoder = LabelEncoder().fit(y)
            codes = encoder.transform(y).astype(np.int64)
            targeted = np.isin(y, np.asarray(list(self.sampling_strategy_), dtype=y.dtype))
            run_result = run((np.asarray(X), codes), config, model, only_rows=targeted,
                             max_drop_fraction=_check_gate_fraction(self.max_drop_fraction))
            result, decisions = run_result.gex_result, run_result.decisions
            table = decisions.table
            keep, relabel_mask, weight = decision_arrays(table)
            relabel = np.flatnonzero(relabel_mask)
            y_res = y.copy()
            if relabel.size:
                y_res[relabel] = encoder.inverse_transform(table["suggested_label"].to_numpy()[relabel])

            self.config_ = config
            self.classes_ = encoder.classes_
            self.scores_ = np.asarray(result.scores, dtype=np.float64)
            self.gex_influence_ = np.asarray(result.gex_influence, dtype=np.float64)
            self.estimated_noise_rate_ = decisions.threshold.estimated_noise_rate
            self.issues_ = _with_label_names(table, encoder.classes_)
            self.threshold_ = float(decisions.threshold.value)
            self.sample_indices_ = keep.astype(np.int64)
            self.sample_weight_ = weight
            self.members_ = result.members
            self.learner_ = result.learner
            self.result_ = result
            logger.info("InfluenceSampler: %d of %d rows kept, %d relabeled, %d reweighted", keep.size, len(y),
                        relabel.size, int((table["action"] == "reweight").sum()))
            return X[keep], y_res[keep]


def __getattr__(name: str) -> Any:
    """``InfluenceSampler`` without imbalanced-learn: a clear ImportError instead of an AttributeError."""
    if name == "InfluenceSampler":
        raise ImportError(_IMBLEARN_MISSING)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["InfluenceCleaner", "InfluenceSampler"]

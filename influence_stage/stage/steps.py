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

Caching keys for the flows: ``data.fingerprint.dataset_fingerprint`` (content of the Arrow table,
column names and feature types) and ``config_fingerprint`` (the configuration fields that change members and
scores, plus the content of a checkpoint or Hugging Face folder named by ``model``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import datasets
import numpy as np

from influence_stage.config.clean import CleanConfig, check_rates
from influence_stage.config.clean import config_fingerprint  # noqa: F401  (re-exported, see __all__)
from influence_stage.config.model_spec import parse_model_spec
from influence_stage.data.columns import ColumnRoles, check_numeric_columns, resolve_columns
from influence_stage.data.featurize import Featurizer, featurize
from influence_stage.data.feature_store import FeatureStore, StreamData
from influence_stage.data.labels import LabelEncoding, normalize_label_column
from influence_stage.data.sources import check_local_source, load_source, row_ids
from influence_stage.decisions import Decisions, decide, parse_threshold
from influence_stage.decisions.suggest import suggestion_proba
from influence_stage.decisions.apply import apply_decisions, check_new_weight_column
from influence_stage.decisions.estimate import confident_joint_count
from influence_stage.decisions.policies import POLICY_REGISTRY
from influence_stage.engine.gex import GEXResult, make_learner
from influence_stage.engine.hf import DatasetImages, HFLearner, ImageData, TextData
from influence_stage.engine.influence import self_influence
from influence_stage.engine.learner import Learner, TensorData, place, resolve_device
from influence_stage.engine.losses import mean_member_proba
from influence_stage.engine.members import can_cross_fit, out_of_sample_proba
from influence_stage.engine.scores import GEX_SCALE
from influence_stage.engine.sources import LearnerRequest
from influence_stage.errors import InvalidInputError, InvalidTypeError

logger = logging.getLogger(__name__)

#: Most rows per forward pass of a Hugging Face model in the stage (``gex.eval_batch_size`` is sized
#: for small torch models; 4096 padded sequences through a transformer would need tens of GB).
HF_EVAL_BATCH_SIZE = 64


# --------------------------------------------------------------------------------------------------
# checks before any work
# --------------------------------------------------------------------------------------------------


def check_folder(path: str | os.PathLike, what: str, flag: str) -> Path:
    """``path`` is a writable folder, or can be created as one (nothing is created here).

    Raises
    ------
    InvalidInputError
        ``path`` (or the nearest existing folder above it) is a file, or is not writable.
    """
    folder = Path(path).expanduser()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        where = "is a file" if existing == folder else f"cannot be created: {existing} is a file"
        raise InvalidInputError(
            f"{what} {folder} {where}, not a folder; expected a folder (created when missing). "
            f"Fix: point {flag} at a folder, or move the file away."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InvalidInputError(
            f"{what} {folder} is not writable ({existing} does not allow writing for this user). "
            f"Fix: point {flag} at a writable folder, or change its permissions."
        )
    return folder


def preflight(source: Any, config: CleanConfig, *, name: str | None = None,
              publish_root: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
              push_to_hub: str | None = None) -> None:
    """Every check that needs no features and no training, before any work (a few ms to a second).

    The configuration type and its rates (``check_rates``); the model spec
    (``parse_model_spec``: a known name, or a checkpoint / ``hf:`` folder that exists); the
    dataset name (the rule ``influence_stage.publish.versions.publish`` applies); the publish root and
    the cache dir writable folders, or creatable; a hub push possible (online, a token); a local
    source readable and not empty (``influence_stage.data.sources.check_local_source``).

    Raises
    ------
    InvalidInputError, InvalidTypeError, HubPushError
        The first failed check; nothing is written.
    """
    from influence_stage.publish.versions import check_hub_push, check_name

    config = _check_config(config)
    check_rates(config.gex)
    resolve_device(config.gex.device)  # CUDA asked for on a machine without it: refused before any work
    parse_model_spec(config.model)
    if name is not None:
        check_name(name)
    if publish_root is not None:
        check_folder(publish_root, "publish root", "--publish-root (publish_root)")
    if cache_dir is not None:
        check_folder(cache_dir, "cache dir", "--cache-dir (cache_dir)")
    if push_to_hub is not None:
        check_hub_push(push_to_hub)
    check_local_source(source)


# --------------------------------------------------------------------------------------------------
# step results
# --------------------------------------------------------------------------------------------------


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
    """

    X: np.ndarray | FeatureStore
    y: np.ndarray
    row_ids: np.ndarray
    n_classes: int
    featurizer: Featurizer | None = None

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


# --------------------------------------------------------------------------------------------------
# steps
# --------------------------------------------------------------------------------------------------


def _check_config(config: Any) -> CleanConfig:
    if not isinstance(config, CleanConfig):
        raise InvalidTypeError(
            f"config must be a CleanConfig; found {type(config).__name__}. "
            "Fix: CleanConfig(...) or CleanConfig.from_yaml(path)."
        )
    return config


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
    config = _check_config(config)
    ds = load_source(source, split=config.split, label_column=config.label_column)  # adds / checks row_id
    ds = check_numeric_columns(ds, config.label_column, config.feature_columns, coerce=config.coerce_numeric)
    roles = resolve_columns(ds, config.label_column, config.feature_columns)
    ds, encoding = normalize_label_column(ds, config.label_column, config.normalize_labels)
    check_class_counts(encoding, row_ids(ds))
    logger.info("prepared %d rows, %d classes, %s features %s", ds.num_rows, encoding.n_classes, roles.kind,
                list(roles.feature_columns)[:5])
    return Prepared(dataset=ds, roles=roles, encoding=encoding)


def _hf_task(roles: ColumnRoles, what: str) -> Literal["text", "image"]:
    """The ``HFLearner`` task for the feature columns, or an error for tabular columns."""
    if roles.kind in ("text", "image"):
        return roles.kind  # type: ignore[return-value]
    raise InvalidInputError(
        f"{what} reads raw text or image columns; the feature columns {list(roles.feature_columns)[:5]} are "
        f"{roles.kind}. Fix: choose a text column or an image column with feature_columns, or use a torch model "
        "('auto', 'mlp', or a checkpoint) for tabular data."
    )


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
    config = _check_config(config)
    y = np.asarray(prepared.encoding.codes, dtype=np.int64)
    ids = row_ids(prepared.dataset)
    if parse_model_spec(config.model).model_source.reads_raw:
        _hf_task(prepared.roles, f"model {config.model!r}")
        logger.info("model %r reads the raw %s column(s) %s; not featurized", config.model, prepared.roles.kind,
                    list(prepared.roles.feature_columns))
        return Features(X=np.empty((len(y), 0), dtype=np.float32), y=y, row_ids=ids, n_classes=prepared.n_classes,
                        featurizer=None)
    X, featurizer = featurize(prepared.dataset, prepared.roles, config=config.featurize, store_dir=store_dir)
    return Features(X=X, y=y, row_ids=ids, n_classes=prepared.n_classes, featurizer=featurizer)


def _raw_texts(prepared: Prepared) -> list[str]:
    """The text feature columns of every row (several joined with a space, as the text featurizer does)."""
    ds = prepared.dataset
    ids = row_ids(ds)
    table = ds.with_format("arrow")  # column → Python list in one go (row-wise iteration is ~5x slower)
    parts = []
    for name in prepared.roles.feature_columns:
        values = table[name].to_pylist()
        bad = [i for i, v in enumerate(values) if not isinstance(v, str)]
        if bad:
            i = bad[0]
            raise InvalidInputError(
                f"text column {name!r} has {type(values[i]).__name__} {values[i]!r} at row {i} (row_id {int(ids[i])}); "
                f"expected a string on every row ({len(bad)} such rows). Fix: fill with '' or drop those rows."
            )
        parts.append(values)
    return parts[0] if len(parts) == 1 else [" ".join(p) for p in zip(*parts)]


def learner_data(learner: Learner, prepared: Prepared | None, features: Features) -> Any:
    """What ``learner`` trains and evaluates on, for the rows of ``features``.

    Parameters
    ----------
    learner : Learner
    prepared : Prepared or None
        The output of ``prepare`` that ``features`` were made from; needed for an
        ``HFLearner``, which reads the raw columns.
    features : Features

    Returns
    -------
    TensorData, TextData or ImageData
        ``HFLearner(task="text")``: ``TextData`` of the text feature column(s) (several joined with
        a space) and ``features.y``. ``HFLearner(task="image")``: ``ImageData`` of the image column,
        read lazily (``influence_stage.engine.hf.DatasetImages``, converted to the model's channel
        count) and ``features.y``. Any other learner (``TorchLearner`` included):
        ``features.tensor_data()`` on the learner's ``device`` (CPU when it has none): tensors, or
        a ``StreamData`` reading on-disk features in batches.

    Raises
    ------
    InvalidInputError
        An ``HFLearner`` without ``prepared``, with ``prepared`` from other rows than ``features``,
        or with feature columns of the wrong kind; a text cell that is not a string (row named).
    """
    if not isinstance(learner, HFLearner):
        return features.tensor_data(getattr(learner, "device", "cpu"))
    if not isinstance(prepared, Prepared):
        raise InvalidInputError(
            f"an HFLearner reads the raw {learner.task} column, so it needs prepared= (the output of prepare) "
            f"next to the features; found {type(prepared).__name__}. Fix: pass prepared=prepare(source, config)."
        )
    ids = row_ids(prepared.dataset)
    if len(ids) != len(features.row_ids) or not np.array_equal(ids, features.row_ids):
        raise InvalidInputError(
            f"prepared holds {len(ids)} rows and features {len(features.row_ids)} rows, or their row ids differ; "
            "expected the features made from prepared. Fix: pass the prepared dataset the features came from."
        )
    task = _hf_task(prepared.roles, f"HFLearner(task={learner.task!r})")
    if task != learner.task:
        raise InvalidInputError(
            f"HFLearner(task={learner.task!r}) needs {learner.task} feature columns; the feature columns "
            f"{list(prepared.roles.feature_columns)} are {task}. Fix: choose a {learner.task} column with "
            "feature_columns, or a model for the data's kind."
        )
    if task == "text":
        return TextData(_raw_texts(prepared), features.y)
    channels = getattr(getattr(learner.model, "config", None), "num_channels", None)
    images = DatasetImages(prepared.dataset, prepared.roles.feature_columns[0],
                           channels=channels if channels in (1, 3) else None)
    return ImageData(images, features.y)


def _check_label_names(model_names: list[str] | None, prepared: Prepared, where: str) -> None:
    """A loaded classifier's class names (when it has real ones) must be the data's, in code order."""
    if model_names is None:
        return
    data_names = [str(n) for n in prepared.encoding.names]
    if model_names == data_names:
        return
    if sorted(model_names) == sorted(data_names):
        raise InvalidInputError(
            f"{where} outputs the data's classes in another order: model outputs {model_names}, data codes "
            f"{data_names} (label column {prepared.encoding.label_column!r}). Scoring would read every label as "
            "another class. Fix: cast the label column to datasets.ClassLabel(names="
            f"{model_names!r}) so that code k is the model's output k."
        )
    logger.warning("%s names its classes %s; the data's classes are %s. Output k is taken as data class k.",
                   where, model_names[:10], data_names[:10])


def _source_learner(model: str, features: Features, config: CleanConfig,
                    prepared: Prepared | None) -> tuple[Learner, bool]:
    """The learner of a model string's source (a name built here, a checkpoint, an ``hf:`` folder, ...)
    and whether it is to be trained (a name; a loaded model under ``fit_loaded``)."""
    spec = parse_model_spec(model)
    source, where, task = spec.model_source, f"model {model!r}", None
    if source.reads_raw:
        if not isinstance(prepared, Prepared):
            raise InvalidInputError(
                f"{where} reads the raw text or image column, so make_model_step needs prepared= (the output of "
                f"prepare); found {type(prepared).__name__}. Fix: make_model_step(features, config, prepared=prepared)."
            )
        task = _hf_task(prepared.roles, where)
    request = LearnerRequest(input_shape=tuple(int(s) for s in features.X.shape[1:]), n_classes=features.n_classes,
                             gex=config.gex, model_builder=config.model_builder, hf_trainable=config.hf_trainable,
                             task=task, eval_batch_cap=HF_EVAL_BATCH_SIZE)
    learner, needs_fit = source.learner(spec, request)
    if isinstance(prepared, Prepared):
        _check_label_names(source.class_names(learner), prepared, where)
    return learner, needs_fit or config.fit_loaded


def make_model_step(features: Features, config: CleanConfig, model: Any = None, *, prepared: Prepared | None = None,
                    progress: bool = False) -> Learner:
    """A learner at θ*.

    Parameters
    ----------
    features : Features
    config : CleanConfig
        ``model`` (used when ``model`` is None), ``model_builder``, ``fit_loaded``,
        ``hf_trainable``, ``gex`` (learner settings and the initialisation seed ``gex.seed``),
        ``fit`` (the training recipe).
    model : None, str, torch.nn.Module or Learner
        None: ``config.model``. A string (see ``parse_model_spec``): a name is built with
        ``models.build_model`` and trained on the data with ``config.fit``; a checkpoint is loaded
        with ``checkpoint.load_model`` (builder from its sidecar or ``config.model_builder``,
        input size and classes checked against the data) and wrapped in a ``TorchLearner``; an
        ``hf:`` folder is loaded with ``HFLearner.from_pretrained`` (task from the feature columns'
        kind, ``num_labels`` checked, ``trainable=config.hf_trainable``, batch size
        ``gex.batch_size``, at most ``HF_EVAL_BATCH_SIZE`` rows per forward pass) and its class
        names, when it has real ones, checked against the data's. A module or a learner: used as it
        is. Loaded and given models are θ* as they are, unless ``config.fit_loaded``: then they are
        trained with ``config.fit`` first.
    prepared : Prepared, optional
        The output of ``prepare``; needed for ``hf:`` models (and HF learners to be fitted),
        which read the raw columns (``learner_data``).
    progress : bool
        Show a progress bar while training.

    Returns
    -------
    Learner

    Raises
    ------
    InvalidInputError
        Unknown name, missing file; a loaded model that does not fit the data (input size or
        number of classes, both numbers named); ``fit_loaded`` with a learner that has no ``fit``.
    CheckpointError
        An unreadable or corrupt checkpoint or model folder.
    """
    config = _check_config(config)
    chosen = config.model if model is None else model
    if isinstance(chosen, str):
        learner, needs_fit = _source_learner(chosen, features, config, prepared)
    else:
        import torch.nn as nn

        if isinstance(chosen, nn.Module) and isinstance(features.X, np.ndarray):  # one error naming both sizes
            from influence_stage.engine.checkpoint import check_model

            check_model(chosen, tuple(features.X.shape[1:]), features.n_classes)
        learner, needs_fit = make_learner(chosen, features.X, features.n_classes, config=config.gex)
        needs_fit = needs_fit or config.fit_loaded
    learner = place(learner, config.gex.device)  # gex.device: cpu, cuda or auto; the data follows the learner
    if needs_fit:
        if not callable(getattr(learner, "fit", None)):
            raise InvalidInputError(
                f"fit_loaded=True trains the given model, but {type(learner).__name__} has no fit(data, recipe). "
                "Fix: train it yourself and set fit_loaded=False, or give a torch module."
            )
        learner.fit(learner_data(learner, prepared, features), config.fit, progress=progress)
    return learner


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
    config = _check_config(config)
    policy = POLICY_REGISTRY.get(config.action)
    if config.action == "prune":  # the budget ranks by the paper's D = L - b (prune_tau), not the noise floor
        influence = self_influence(result.loss_matrix, result.base_loss, tau=config.prune_tau)
    else:
        influence = result.gex_influence
    proba = n_estimated = None
    if policy.uses_threshold:  # a policy that chooses its own rows needs no probabilities and no estimate
        data = learner_data(result.learner, prepared, features)
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
                                  "high_share": config.prune_high_share})


def estimated_issues(result: GEXResult, data: Any, config: CleanConfig, *,
                     member_proba: np.ndarray | None = None) -> int | None:
    """Estimated number of mislabeled rows when the threshold is ``"estimate"`` (else None).

    From the confident joint of the run's cross-fitted out-of-sample probabilities
    (``estimate.confident_joint_count``); trained here when neither the scale nor the score did.
    When their model is not reliable (``result.auxiliary``, see ``engine.auxiliary``), from the
    confident joint of their mean with ``member_proba`` ``(n, K)``, the members' mean probabilities
    (in-sample, so they contradict fewer rows; ``benchmarks/detect_images.py`` measures it).
    """
    if parse_threshold(config.threshold).method != "estimate":
        return None
    aux = getattr(result, "auxiliary", None)
    if aux is not None and not aux.reliable and member_proba is not None and result.oos_proba is not None:
        y = data.y.cpu().numpy() if hasattr(data.y, "cpu") else np.asarray(data.y)
        return confident_joint_count(y, (np.asarray(member_proba) + np.asarray(result.oos_proba)) / 2)
    proba = result.oos_proba
    if proba is None:
        if not can_cross_fit(result.learner):
            raise InvalidInputError(
                "threshold 'estimate' needs out-of-sample probabilities, which this model cannot provide (it cannot "
                "train a fresh copy). Fix: set threshold to 'otsu', 'gmm', 'quantile:q' or 'budget:f'."
            )
        proba = out_of_sample_proba(result.learner, data, config=config.gex, fit_config=config.fit)
    y = data.y.cpu().numpy() if hasattr(data.y, "cpu") else np.asarray(data.y)
    return confident_joint_count(y, proba)


def apply_step(prepared: Prepared, decisions: Decisions, config: CleanConfig) -> datasets.Dataset:
    """Apply the decisions to the prepared dataset (see ``influence_stage.decisions.apply.apply_decisions``).

    Under ``action="reweight"`` the weight column is always added (1.0 on every row when nothing
    was flagged), so the output schema does not depend on the data.

    Returns
    -------
    datasets.Dataset
        ``n - n_drop`` rows; other columns untouched.
    """
    config = _check_config(config)
    ds = prepared.dataset
    if config.action == "reweight":
        check_new_weight_column(ds.column_names, config.weight_column)
    out = apply_decisions(ds, decisions.table, label_column=config.label_column, encoding=prepared.encoding,
                          weight_column=config.weight_column)
    if config.action == "reweight" and config.weight_column not in out.column_names:
        out = out.add_column(config.weight_column, np.ones(out.num_rows), feature=datasets.Value("float64"))
    return out


# CleanConfig, config_fingerprint and parse_model_spec are re-exported for the modules that still import
# them from here (influence_stage.api.{params,persist,gate,cleaner}, benchmarks/{scale,scale_images,downstream}.py
# and tests); new code imports them from influence_stage.config.
__all__ = [
    "CleanConfig", "Features", "HF_EVAL_BATCH_SIZE", "PipelineResult", "Prepared", "apply_step", "check_class_counts",
    "check_folder", "config_fingerprint", "decide_step", "estimated_issues", "featurize_step", "learner_data",
    "make_model_step", "parse_model_spec", "preflight", "prepare",
]

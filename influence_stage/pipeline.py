"""The stage's steps as plain functions, one per arrow of the data flow, and their configuration.

This module owns the *chaining* of the stage: which library function runs at which step, with which
part of the one configuration object. Prefect flows wrap each step in one task, the scikit-learn
API (:mod:`influence_stage.cleaner`) and the CLI call the same functions, so nothing is computed in
two places.

``prepare``          source → ``Prepared`` (Dataset with ``row_id``, column roles, label encoding)
``featurize_step``   ``Prepared`` → ``Features`` (``X`` float32, ``y`` int64 codes, row ids)
``make_model_step``  ``Features`` → a ``Learner`` at θ* (built and trained, or given)
``score_step``       learner + features → ``GEXResult`` (members, loss matrix, self-influence)
``decide_step``      ``GEXResult`` → ``Decisions`` (one row per input row)
``apply_step``       ``Decisions`` → the cleaned ``datasets.Dataset``
``run_pipeline``     all of the above → ``PipelineResult``

Caching keys for the flows: :func:`dataset_fingerprint` (content of the Arrow table, column names
and feature types) and :func:`config_fingerprint` (the configuration fields that change members and
scores).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import datasets
import numpy as np
import pyarrow as pa
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from influence_stage.config import FitConfig, GEXConfig
from influence_stage.data import (
    ColumnRoles,
    FeaturizeConfig,
    Featurizer,
    LabelEncoding,
    apply_decisions,
    encode_labels,
    featurize,
    load_source,
    resolve_columns,
    row_ids,
)
from influence_stage.exceptions import InvalidInputError, InvalidTypeError
from influence_stage.gex import GEXResult, make_learner, score_fitted
from influence_stage.learner import Learner, TensorData
from influence_stage.losses import mean_member_proba
from influence_stage.policy import Decisions, decide, parse_threshold

logger = logging.getLogger(__name__)

#: Fields of :class:`CleanConfig` that change θ*, the members or the scores (not the decisions):
#: the default ``keys`` of :func:`config_fingerprint`, i.e. what a cache of members / loss matrices
#: must match.
SCORE_KEYS: tuple[str, ...] = ("label_column", "feature_columns", "split", "model", "featurize", "fit", "gex")

#: Rows per window when hashing a dataset; fixed so that the fingerprint does not depend on chunking.
FINGERPRINT_BATCH_ROWS = 8192


# --------------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------------


def _model_class_at(loc: tuple[Any, ...]) -> type[BaseModel]:
    """The pydantic model that owns the field at ``loc[:-1]`` (for 'allowed keys' in messages)."""
    cls: type[BaseModel] = CleanConfig
    for part in loc[:-1]:
        info = cls.model_fields.get(str(part))
        ann = None if info is None else info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            cls = ann
        else:
            break
    return cls


def _config_error(exc: ValidationError, where: str) -> InvalidInputError:
    """A ValidationError rewritten as one message: unknown keys first (with the allowed ones)."""
    unknown: list[str] = []
    allowed: dict[str, list[str]] = {}
    other: list[str] = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        if err.get("type") == "extra_forbidden":
            unknown.append(dotted)
            owner = _model_class_at(loc)
            prefix = ".".join(str(p) for p in loc[:-1])
            allowed[prefix or "top level"] = sorted(owner.model_fields)
        else:
            other.append(f"{dotted}: {err.get('msg')} (found {err.get('input')!r})")
    parts = []
    if unknown:
        keys = "; ".join(f"{k}: {allowed[k]}" for k in sorted(allowed, key=lambda k: (k != "top level", k)))
        parts.append(f"unknown key(s) {sorted(unknown)}; allowed keys ({keys}). Fix: remove or correct them")
    if other:
        parts.append("invalid value(s): " + "; ".join(other))
    return InvalidInputError(f"{where}: " + ". ".join(parts) + ".")


class CleanConfig(BaseModel):
    """Everything one run of the stage needs, validated once; also the Prefect flow parameters.

    Round-trips through ``model_dump(mode="json")`` / ``model_validate`` and YAML
    (:meth:`to_yaml` / :meth:`from_yaml`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    label_column: str = Field("label", min_length=1, description="Name of the label column.")
    feature_columns: tuple[str, ...] | None = Field(
        None, min_length=1, description="Feature columns, all of one kind (numeric, text, or one image column). "
        "None: chosen automatically (see data.resolve_columns).")
    split: str | None = Field(None, description="Split to read from a multi-split source (None: the only split).")
    model: str = Field("auto", min_length=1, description="Model name for models.build_model: 'auto' (a CNN for "
                       "image rows, an MLP otherwise), 'mlp' or 'cnn'. Trained on the given labels as θ*.")
    action: Literal["drop", "relabel", "reweight", "none"] = Field(
        "drop", description="What happens to flagged rows: drop them, relabel them to the members' consensus, "
        "give every row a weight (flagged rows < 0.5), or 'none' (score only).")
    threshold: str | float = Field(
        "otsu", description="How rows are flagged: 'otsu', 'gmm', 'quantile:q', 'budget:f' or a score value "
        "(see policy.choose_threshold).")
    min_agreement: float = Field(0.5, ge=0, le=1, description="Relabel only where the members' mean probability "
                                 "of the suggested label is at least this.")
    relabel_fallback: Literal["drop", "keep"] = Field(
        "drop", description="Action of flagged rows that are not relabeled under action='relabel'.")
    relabel_rule: Literal["argmax", "soft"] = Field(
        "argmax", description="Which flagged rows can be relabeled (see policy.decide).")
    max_fraction_per_class: float | None = Field(
        0.5, ge=0, le=1, description="Never drop more than this fraction of a class (by given label); at least "
        "one row per class is always kept. None: no per-class cap.")
    max_drop_fraction: float | None = Field(
        None, ge=0, le=1, description="Never drop more than this fraction of all rows. None: no global cap.")
    min_weight: float = Field(0.05, gt=0, le=1, description="Lower clip of the weights under action='reweight'.")
    weight_column: str = Field("weight", min_length=1, description="Name of the column added under "
                               "action='reweight'; must not exist in the data.")
    gex: GEXConfig = Field(default_factory=GEXConfig, description="Members, perturbation scale and scores.")
    fit: FitConfig = Field(default_factory=FitConfig, description="Training recipe of θ* (and of the auto "
                           "scale's held-out models).")
    featurize: FeaturizeConfig = Field(default_factory=FeaturizeConfig, description="Featurizer settings.")
    seed: int = Field(0, description="Seed of the random choices outside θ* training and GEX (the 'gmm' "
                      "threshold). Model initialisation and chains use gex.seed, batch order fit.seed.")

    @field_validator("feature_columns", mode="before")
    @classmethod
    def _one_column_as_tuple(cls, v: Any) -> Any:
        return (v,) if isinstance(v, str) else v

    @field_validator("threshold", mode="before")
    @classmethod
    def _threshold_not_bool(cls, v: Any) -> Any:
        if isinstance(v, bool):
            raise ValueError(f"threshold must be a string or a number; found bool {v!r}")
        return v

    @field_validator("threshold")
    @classmethod
    def _threshold_parses(cls, v: str | float) -> str | float:
        parse_threshold(v)  # raises InvalidInputError / InvalidTypeError with the accepted forms
        return v

    @model_validator(mode="after")
    def _enough_members(self) -> "CleanConfig":
        if self.gex.n_members < 2:
            raise ValueError(
                f"GEX needs at least 2 members; gex.chains × gex.cycles = {self.gex.chains} × {self.gex.cycles}. "
                "Raise chains or cycles."
            )
        return self

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, where: str = "configuration") -> "CleanConfig":
        """Validate a mapping (e.g. parsed YAML or JSON).

        Raises
        ------
        InvalidInputError
            Unknown keys (named, with the allowed ones) or invalid values.
        """
        if not isinstance(data, Mapping):
            raise InvalidInputError(
                f"{where} must be a mapping of setting names to values; found {type(data).__name__}. "
                f"Allowed keys: {sorted(cls.model_fields)}."
            )
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise _config_error(exc, where) from exc

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "CleanConfig":
        """Load a configuration from a YAML file (an empty file gives the defaults).

        Raises
        ------
        InvalidInputError
            Missing file, invalid YAML, unknown keys (named) or invalid values.
        """
        p = Path(path).expanduser()
        if not p.is_file():
            raise InvalidInputError(f"no configuration file at {p.absolute()}. Fix: check the path.")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise InvalidInputError(f"configuration file {p} is not valid YAML: {exc}") from exc
        return cls.from_mapping({} if data is None else data, where=f"configuration file {p}")

    def to_yaml(self, path: str | os.PathLike) -> None:
        """Write the configuration as YAML (every field, JSON-compatible values)."""
        Path(path).write_text(yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False), encoding="utf-8")


def config_fingerprint(config: CleanConfig, keys: Iterable[str] = SCORE_KEYS) -> str:
    """Stable hash of some fields of a configuration, ``sha256`` hex.

    Parameters
    ----------
    config : CleanConfig
    keys : iterable of str, default ``SCORE_KEYS``
        Top-level field names to include; the default is the fields that change θ*, the members or
        the scores, so two configs with equal fingerprints can share cached members and loss matrices.

    Returns
    -------
    str
        64 hex digits; equal for equal values of ``keys`` whatever the other fields.
    """
    if not isinstance(config, CleanConfig):
        raise InvalidTypeError(f"config must be a CleanConfig; found {type(config).__name__}.")
    keys = [keys] if isinstance(keys, str) else list(keys)
    unknown = sorted(set(keys) - set(CleanConfig.model_fields))
    if unknown or not keys:
        raise InvalidInputError(
            f"keys must be a non-empty set of CleanConfig fields; found unknown {unknown or keys}. "
            f"Allowed: {sorted(CleanConfig.model_fields)}."
        )
    payload = config.model_dump(mode="json", include=set(keys))
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------------
# dataset fingerprint
# --------------------------------------------------------------------------------------------------


def _canonical_ipc(array: pa.Array, name: str) -> bytes:
    """Bytes of one column window that depend only on its logical content.

    ``concat_arrays`` copies into fresh zero-offset buffers (a slice keeps its parent's buffers,
    offsets and trailing bitmap bits); the IPC stream then writes them with zeroed padding.
    """
    fresh = pa.concat_arrays([array])
    batch = pa.record_batch([fresh], names=[name])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def column_fingerprints(ds: datasets.Dataset, *, batch_rows: int = FINGERPRINT_BATCH_ROWS) -> dict[str, str]:
    """``sha256`` hex of each column's content, in dataset order (indices mapping applied).

    Rows are read in windows of ``batch_rows`` (fixed, so chunking does not matter); each window of
    each column is hashed in a canonical Arrow IPC form. Values stored under nulls are part of the
    content as Arrow keeps them (they are zero for data built by Arrow, pandas or ``datasets``).

    Parameters
    ----------
    ds : datasets.Dataset
        ``n`` rows.
    batch_rows : int
        Rows per window; changing it changes the digests.

    Returns
    -------
    dict
        Column name → 64 hex digits.
    """
    if not isinstance(ds, datasets.Dataset):
        raise InvalidTypeError(f"ds must be a datasets.Dataset; found {type(ds).__name__}.")
    hashers = {name: hashlib.sha256() for name in ds.column_names}
    for table in ds.with_format("arrow").iter(batch_size=batch_rows):
        for name in ds.column_names:
            col = table.column(name)
            if col.num_chunks:
                hashers[name].update(_canonical_ipc(pa.concat_arrays(col.chunks), name))
    return {name: h.hexdigest() for name, h in hashers.items()}


def combine_fingerprints(ds: datasets.Dataset, columns: Mapping[str, str]) -> str:
    """The dataset fingerprint from per-column digests (see :func:`dataset_fingerprint`)."""
    meta = {
        "num_rows": ds.num_rows,
        "columns": list(ds.column_names),
        "features": ds.features.to_dict(),
        "digests": [columns[c] for c in ds.column_names],
    }
    text = json.dumps(meta, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def dataset_fingerprint(ds: datasets.Dataset) -> str:
    """Stable hash of a dataset's content, column names and feature types, ``sha256`` hex.

    Equal for two datasets with the same rows in the same order, the same column names and the
    same features (a ``ClassLabel``'s names included), however they were built or stored; any
    changed value, column, feature type or row order changes it. ``datasets``' own
    ``_fingerprint`` is not used: it hashes the transform history and file paths, not the content
    (the same parquet file saved twice, or ``select(range(n))``, gets a new one).

    Parameters
    ----------
    ds : datasets.Dataset

    Returns
    -------
    str
        64 hex digits.
    """
    return combine_fingerprints(ds, column_fingerprints(ds))


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
    X : numpy.ndarray
        ``(n, d)`` float32 (tabular, text) or ``(n, c, h, w)`` float32 (images).
    y : numpy.ndarray
        ``(n,) int64`` given label codes ``0..K-1``.
    row_ids : numpy.ndarray
        ``(n,) int64`` in the same order.
    n_classes : int
        ``K``.
    featurizer : TabularFeaturizer, ImageFeaturizer, TextFeaturizer or None
        The fitted featurizer (None when the caller built the arrays).
    """

    X: np.ndarray
    y: np.ndarray
    row_ids: np.ndarray
    n_classes: int
    featurizer: Featurizer | None = None

    def tensor_data(self, device: Any = "cpu") -> TensorData:
        """``(X, y)`` as tensors on ``device`` (shares memory with the arrays on CPU)."""
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
        Wall seconds per step: ``prepare, featurize, model, score, decide, apply``.
    """

    prepared: Prepared
    features: Features
    learner: Learner
    gex_result: GEXResult
    decisions: Decisions
    cleaned: datasets.Dataset
    timings: dict[str, float] = field(default_factory=dict)


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
        See :func:`influence_stage.data.load_source`.
    config : CleanConfig
        Uses ``label_column``, ``feature_columns``, ``split``.

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
    roles = resolve_columns(ds, config.label_column, config.feature_columns)
    encoding = encode_labels(ds, config.label_column)
    check_class_counts(encoding, row_ids(ds))
    logger.info("prepared %d rows, %d classes, %s features %s", ds.num_rows, encoding.n_classes, roles.kind,
                list(roles.feature_columns)[:5])
    return Prepared(dataset=ds, roles=roles, encoding=encoding)


def featurize_step(prepared: Prepared, config: CleanConfig) -> Features:
    """Feature columns → ``X`` float32; labels → ``y`` int64 codes.

    Returns
    -------
    Features
        ``X`` ``(n, d)`` or ``(n, c, h, w)`` float32, ``y`` ``(n,)`` int64, ``row_ids`` ``(n,)`` int64.
    """
    config = _check_config(config)
    X, featurizer = featurize(prepared.dataset, prepared.roles, config=config.featurize)
    return Features(X=X, y=np.asarray(prepared.encoding.codes, dtype=np.int64), row_ids=row_ids(prepared.dataset),
                    n_classes=prepared.n_classes, featurizer=featurizer)


def make_model_step(features: Features, config: CleanConfig, model: Any = None, *, progress: bool = False) -> Learner:
    """A learner at θ*.

    Parameters
    ----------
    features : Features
    config : CleanConfig
        ``model`` (the name used when ``model`` is None), ``gex`` (learner settings and the
        initialisation seed ``gex.seed``), ``fit`` (the training recipe).
    model : None, str, torch.nn.Module or Learner
        None or a name: built with ``models.build_model`` and trained on ``(X, y)`` with
        ``config.fit``. A module or a learner: assumed trained (θ*), used as it is.
    progress : bool
        Show a progress bar while training.

    Returns
    -------
    Learner
    """
    config = _check_config(config)
    learner, needs_fit = make_learner(config.model if model is None else model, features.X, features.n_classes,
                                      config=config.gex)
    if needs_fit:
        learner.fit(features.tensor_data(getattr(learner, "device", "cpu")), config.fit, progress=progress)
    return learner


def score_step(learner: Learner, features: Features, config: CleanConfig, *, progress: bool = False) -> GEXResult:
    """GEX from θ*: perturbation scale → members → loss matrix → self-influence.

    Returns
    -------
    GEXResult
        ``scores`` ``(n,) float64`` aligned with ``features.row_ids``.
    """
    config = _check_config(config)
    data = features.tensor_data(getattr(learner, "device", "cpu"))
    return score_fitted(learner, data, config=config.gex, fit_config=config.fit, progress=progress)


def decide_step(result: GEXResult, features: Features, config: CleanConfig) -> Decisions:
    """Scores → one decision per row; suggested labels are the argmax of the members' mean probabilities.

    Returns
    -------
    Decisions
        ``table`` columns ``row_id, score, is_issue, action, given_label, suggested_label, weight``,
        in ``features`` order.
    """
    config = _check_config(config)
    data = features.tensor_data(getattr(result.learner, "device", "cpu"))
    proba = mean_member_proba(result.learner, result.members, data, batch_size=config.gex.eval_batch_size,
                              member_chunk=config.gex.member_chunk)
    return decide(result.scores, features.y, threshold=config.threshold, action=config.action, proba=proba,
                  row_ids=features.row_ids, min_agreement=config.min_agreement,
                  relabel_fallback=config.relabel_fallback, relabel_rule=config.relabel_rule,
                  max_fraction_per_class=config.max_fraction_per_class,
                  max_drop_fraction=config.max_drop_fraction, min_weight=config.min_weight,
                  random_state=config.seed, score_floor=2 * config.gex.tau ** 2)


def apply_step(prepared: Prepared, decisions: Decisions, config: CleanConfig) -> datasets.Dataset:
    """Apply the decisions to the prepared dataset (see :func:`influence_stage.data.apply_decisions`).

    Under ``action="reweight"`` the weight column is always added (1.0 on every row when nothing
    was flagged), so the output schema does not depend on the data.

    Returns
    -------
    datasets.Dataset
        ``n - n_drop`` rows; other columns untouched.
    """
    config = _check_config(config)
    ds = prepared.dataset
    if config.action == "reweight" and config.weight_column in ds.column_names:
        raise InvalidInputError(
            f"column {config.weight_column!r} already exists; action='reweight' adds a weight column of that "
            "name. Fix: set weight_column to another name."
        )
    out = apply_decisions(ds, decisions.table, label_column=config.label_column, encoding=prepared.encoding,
                          weight_column=config.weight_column)
    if config.action == "reweight" and config.weight_column not in out.column_names:
        out = out.add_column(config.weight_column, np.ones(out.num_rows), feature=datasets.Value("float64"))
    return out


def run_pipeline(source: Any, config: CleanConfig, model: Any = None, progress: bool = False) -> PipelineResult:
    """Run every step: prepare → featurize → model → score → decide → apply.

    Parameters
    ----------
    source : see :func:`prepare`
    config : CleanConfig
    model : None, str, torch.nn.Module or Learner
        See :func:`make_model_step`.
    progress : bool
        Progress bars for training and members.

    Returns
    -------
    PipelineResult
    """
    config = _check_config(config)
    timings: dict[str, float] = {}

    def timed(name: str, fn, *args, **kwargs):
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        timings[name] = time.perf_counter() - t
        return out

    prepared = timed("prepare", prepare, source, config)
    features = timed("featurize", featurize_step, prepared, config)
    learner = timed("model", make_model_step, features, config, model, progress=progress)
    result = timed("score", score_step, learner, features, config, progress=progress)
    decisions = timed("decide", decide_step, result, features, config)
    cleaned = timed("apply", apply_step, prepared, decisions, config)
    logger.info("pipeline done: %d → %d rows; seconds per step %s", prepared.dataset.num_rows, cleaned.num_rows,
                {k: round(v, 3) for k, v in timings.items()})
    return PipelineResult(prepared=prepared, features=features, learner=learner, gex_result=result,
                          decisions=decisions, cleaned=cleaned, timings=timings)


__all__ = [
    "CleanConfig", "Features", "PipelineResult", "Prepared", "SCORE_KEYS", "apply_step", "check_class_counts",
    "column_fingerprints", "combine_fingerprints", "config_fingerprint", "dataset_fingerprint", "decide_step",
    "featurize_step", "make_model_step", "prepare", "run_pipeline", "score_step",
]

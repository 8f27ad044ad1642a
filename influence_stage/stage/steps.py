"""The stage's steps as plain functions, one per arrow of the data flow, and their configuration.

Each step calls the library function of its layer with its part of the one configuration object;
:mod:`influence_stage.stage.run` chains them (with the scoring steps and the quality gates), and the
Prefect flow wraps the same functions in tasks, so nothing is computed in two places.

``prepare``          source → ``Prepared`` (Dataset with ``row_id``, column roles, label encoding)
``featurize_step``   ``Prepared`` → ``Features`` (``X`` float32, ``y`` int64 codes, row ids)
``make_model_step``  ``Features`` → a ``Learner`` at θ* (built and trained, loaded, or given)
``learner_data``     what a learner trains and evaluates on (tensors, or raw texts / images)
``stage.run``        scale → member groups → loss matrix → ``GEXResult``; the gates; ``run``
``decide_step``      ``GEXResult`` → ``Decisions`` (one row per input row)
``apply_step``       ``Decisions`` → the cleaned ``datasets.Dataset``

Which model: :func:`parse_model_spec` reads ``CleanConfig.model`` — a builder name (``"auto"``,
``"mlp"``, ``"cnn"``: trained on the given labels), a torch checkpoint (``"checkpoint:<path>"`` or a
path ending in ``.pt``, ``.pth``, ``.bin``, ``.safetensors``; loaded with
:func:`influence_stage.engine.checkpoint.load_model`) or a local Hugging Face classifier
(``"hf:<folder>"``; :class:`influence_stage.engine.hf.HFLearner`). Loaded models are θ* as they are
unless ``fit_loaded``.

Caching keys for the flows: ``data.fingerprint.dataset_fingerprint`` (content of the Arrow table,
column names and feature types) and :func:`config_fingerprint` (the configuration fields that change members and
scores, plus the content of a checkpoint or Hugging Face folder named by ``model``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import datasets
import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from influence_stage.engine.checkpoint import CHECKPOINT_SUFFIXES, checkpoint_digest, is_checkpoint_path, load_model
from influence_stage.config import FitConfig, GEXConfig
from influence_stage.data.columns import ColumnRoles, check_numeric_columns, resolve_columns
from influence_stage.data.featurize.config import FeaturizeConfig
from influence_stage.data.featurize import Featurizer, featurize
from influence_stage.data.feature_store import FeatureStore, StreamData
from influence_stage.data.labels import LabelEncoding, encode_labels
from influence_stage.data.sources import check_local_source, load_source, row_ids
from influence_stage.errors import InvalidInputError, InvalidTypeError
from influence_stage.engine.gex import GEXResult, make_learner
from influence_stage.engine.hf import (
    DatasetImages,
    HFLearner,
    ImageData,
    TextData,
    check_trainable,
    model_label_names,
    pretrained_digest,
)
from influence_stage.engine.learner import Learner, TensorData, place, resolve_device
from influence_stage.engine.losses import mean_member_proba
from influence_stage.engine.members import can_cross_fit, out_of_sample_proba
from influence_stage.decisions.estimate import confident_joint_count
from influence_stage.decisions import Decisions, decide, parse_threshold
from influence_stage.decisions.apply import apply_decisions, check_new_weight_column
from influence_stage.engine.scores import GEX_SCALE, RANK_SCORES

logger = logging.getLogger(__name__)

#: Fields of :class:`CleanConfig` that change θ*, the members or the scores (not the decisions):
#: the default ``keys`` of :func:`config_fingerprint`, i.e. what a cache of members / loss matrices
#: must match.
SCORE_KEYS: tuple[str, ...] = ("label_column", "feature_columns", "split", "model", "model_builder", "fit_loaded",
                               "hf_trainable", "featurize", "fit", "gex")


#: Model names built by ``models.build_model`` and trained on the given labels.
MODEL_NAMES: tuple[str, ...] = ("auto", "mlp", "cnn")
CHECKPOINT_PREFIX = "checkpoint:"
HF_PREFIX = "hf:"
#: Most rows per forward pass of a Hugging Face model in the stage (``gex.eval_batch_size`` is sized
#: for small torch models; 4096 padded sequences through a transformer would need tens of GB).
HF_EVAL_BATCH_SIZE = 64


# --------------------------------------------------------------------------------------------------
# which model
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """What a ``CleanConfig.model`` string names.

    Attributes
    ----------
    kind : {"name", "checkpoint", "hf"}
        A builder name (trained on the given labels), a torch checkpoint file, or a local Hugging
        Face model folder.
    value : str
        The name, or the path as written (without its ``checkpoint:`` / ``hf:`` prefix).
    """

    kind: Literal["name", "checkpoint", "hf"]
    value: str

    @property
    def path(self) -> Path:
        """``value`` as a path (``~`` expanded); relative paths are read from the working directory."""
        return Path(self.value).expanduser()


_MODEL_FORMS = ("'auto', 'mlp', 'cnn', a torch checkpoint ('checkpoint:<path>' or a path ending in "
                + ", ".join(CHECKPOINT_SUFFIXES) + ") or a local Hugging Face model folder ('hf:<folder>')")


def _where_path(path: Path) -> str:
    where = str(path.absolute())
    return where if path.is_absolute() else f"{where} (relative paths are read from the working directory)"


def parse_model_spec(model: Any, *, check_paths: bool = True) -> ModelSpec:
    """Read a ``CleanConfig.model`` string and check that the file or folder it names exists.

    Parameters
    ----------
    model : str
        ``"auto"``, ``"mlp"``, ``"cnn"``; ``"checkpoint:<path>"`` (any file name) or a plain path
        ending in ``.pt``, ``.pth``, ``.bin`` or ``.safetensors``; ``"hf:<folder>"`` (a folder
        written by ``save_pretrained``, with its ``config.json``).
    check_paths : bool, default True
        Look at the filesystem (the file or folder exists; a hint for an unknown name that is a
        path). False: the form only, so ``CleanConfig`` validates without I/O; :func:`preflight`
        and :func:`make_model_step` check the paths.

    Returns
    -------
    ModelSpec

    Raises
    ------
    InvalidTypeError
        ``model`` is not a string.
    InvalidInputError
        An unknown name, or a checkpoint / folder that does not exist (the message gives the
        absolute path and the accepted forms).
    """
    if not isinstance(model, str):
        raise InvalidTypeError(f"model must be a string: {_MODEL_FORMS}; found {type(model).__name__}.")
    if model.startswith(HF_PREFIX):
        spec = ModelSpec("hf", model[len(HF_PREFIX):])
        if not spec.value:
            raise InvalidInputError(f"model {model!r} names no folder; expected 'hf:<folder>'.")
        folder = spec.path
        if not check_paths:
            return spec
        if not folder.is_dir():
            what = "a file, not a folder" if folder.exists() else "not found"
            raise InvalidInputError(
                f"model {model!r}: the Hugging Face model folder {_where_path(folder)} is {what}. Expected a local "
                "folder written by model.save_pretrained(folder) and tokenizer.save_pretrained(folder) (or "
                "image_processor.save_pretrained(folder)); hub ids are not downloaded here. Fix: check the path, "
                "or download the model first."
            )
        if not (folder / "config.json").is_file():
            raise InvalidInputError(
                f"model {model!r}: the folder {_where_path(folder)} has no config.json; expected a folder written "
                "by model.save_pretrained(folder). Fix: point hf: at that folder."
            )
        return spec
    if model.startswith(CHECKPOINT_PREFIX) or (model not in MODEL_NAMES and is_checkpoint_path(model)):
        spec = ModelSpec("checkpoint", model[len(CHECKPOINT_PREFIX):] if model.startswith(CHECKPOINT_PREFIX) else model)
        if not spec.value:
            raise InvalidInputError(f"model {model!r} names no file; expected 'checkpoint:<path>'.")
        path = spec.path
        if not check_paths:
            return spec
        if path.is_dir():
            hint = " For a Hugging Face model folder write 'hf:<folder>'." if (path / "config.json").is_file() else ""
            raise InvalidInputError(
                f"model {model!r}: {_where_path(path)} is a folder; expected a weights file (a state dict saved "
                f"with influence_stage.engine.checkpoint.save_checkpoint or torch.save(model.state_dict(), path)).{hint}"
            )
        if not path.is_file():
            raise InvalidInputError(
                f"model {model!r}: no checkpoint file at {_where_path(path)}. Fix: check the path, or save one "
                "with influence_stage.engine.checkpoint.save_checkpoint(module, path, meta={'builder': 'mlp'})."
            )
        return spec
    if model in MODEL_NAMES:
        return ModelSpec("name", model)
    hint = ""
    candidate = Path(model).expanduser()
    if not check_paths:
        pass
    elif candidate.is_dir():
        hint = f" {model!r} is a folder: for a Hugging Face model write 'hf:{model}'."
    elif candidate.is_file():
        hint = f" {model!r} is a file: for a torch checkpoint write 'checkpoint:{model}'."
    raise InvalidInputError(f"unknown model name {model!r}; expected {_MODEL_FORMS}.{hint}")


def model_digest(spec: ModelSpec) -> str | None:
    """Content hash of the checkpoint or folder ``spec`` names (None for a builder name)."""
    if spec.kind == "checkpoint":
        return checkpoint_digest(spec.path)
    if spec.kind == "hf":
        return pretrained_digest(spec.path)
    return None


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
    coerce_numeric: bool = Field(False, description="Read the cells of a column that is numeric except for a few "
                                 "cells (e.g. one '?') as missing values instead of refusing the data (see "
                                 "data.check_numeric_columns); the input suite then reports the missing values.")
    model: str = Field("auto", min_length=1, description="θ*: a model name for models.build_model, 'auto' (a CNN "
                       "for image rows, an MLP otherwise), 'mlp' or 'cnn', trained on the given labels; or a torch "
                       "checkpoint, 'checkpoint:<path>' or a path ending in .pt, .pth, .bin or .safetensors (loaded "
                       "with checkpoint.load_model: builder from its sidecar or model_builder; input size and "
                       "classes checked against the data); or 'hf:<folder>', a local Hugging Face sequence- or "
                       "image-classification model with its tokenizer / image processor (text or image feature "
                       "columns; read raw, not featurized). Loaded models are used as trained unless fit_loaded.")
    model_builder: Literal["mlp", "cnn"] | None = Field(
        None, description="Architecture of a checkpoint given as model, when its sidecar <file>.meta.json does "
        "not name one (sizes are read from the weights). None: the sidecar's.")
    fit_loaded: bool = Field(False, description="Train a loaded or given model (checkpoint, 'hf:' folder, module, "
                             "learner) with the fit recipe before scoring; False uses it as θ* as it is. Model "
                             "names are always trained.")
    hf_trainable: str = Field("head", min_length=1, description="Parameters of an 'hf:' model that SGD moves "
                              "(members and fit_loaded): 'head', 'all' or 'last:N' (see hf.HFLearner).")
    action: Literal["drop", "relabel", "reweight", "none", "prune"] = Field(
        "drop", description="What happens to flagged rows: drop them, relabel them to the members' consensus, "
        "give every row a weight (flagged rows < 0.5), 'none' (score only), or 'prune': keep the budget "
        "prune_keep by GEX self-influence and drop the rest (decisions.prune; threshold is not used).")
    prune_keep: float | int | None = Field(
        None, description="action='prune': rows to keep, a fraction in (0, 1] or a count (at most the row count).")
    prune_high_share: float = Field(0.0, ge=0, le=1, description="action='prune': share of the pruned rows taken "
                                    "from the highest self-influence (junk, mislabeled); the rest are the lowest "
                                    "(redundant).")
    prune_per_class: bool = Field(False, description="action='prune': each class keeps its share of the budget "
                                  "and is pruned on its own ranking; no class is ever emptied either way.")
    prune_tau: float = Field(0.0, ge=0, description="action='prune': floor of the reference loss of the self-"
                             "influence the budget ranks by. 0 is the paper's D = L - b: rows every member still "
                             "fits score lowest. The label-noise floor gex.tau would rank rows whose member loss "
                             "sits near tau lowest instead, not the easiest ones.")
    threshold: str | float = Field(
        "estimate", description="How rows are flagged: 'estimate' (the estimated number of mislabeled rows, from the "
        "confident joint of cross-fitted probabilities; see influence_stage.decisions.estimate), 'otsu', 'gmm', 'quantile:q', "
        "'budget:f' or a score value (see decisions.thresholds.choose_threshold).")
    min_agreement: float = Field(0.5, ge=0, le=1, description="Relabel only where the members' mean probability "
                                 "of the suggested label is at least this.")
    relabel_fallback: Literal["drop", "keep"] = Field(
        "drop", description="Action of flagged rows that are not relabeled under action='relabel'.")
    relabel_rule: Literal["argmax", "soft"] = Field(
        "argmax", description="Which flagged rows can be relabeled (see decisions.decide).")
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

    @field_validator("model")
    @classmethod
    def _model_exists(cls, v: str) -> str:
        parse_model_spec(v, check_paths=False)  # the form; preflight and make_model_step check the paths
        return v

    @field_validator("hf_trainable")
    @classmethod
    def _trainable_parses(cls, v: str) -> str:
        return check_trainable(v)

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
    def _threshold_fits_score(self) -> "CleanConfig":
        method = parse_threshold(self.threshold).method
        if self.gex.score in RANK_SCORES and method in ("otsu", "gmm"):
            raise ValueError(
                f"threshold {method!r} splits the score histogram at a valley, but score {self.gex.score!r} is a mean of "
                "percentile ranks, spread evenly by construction, with no valley to find. Fix: use threshold "
                "'estimate' (the default), 'budget:f' or 'quantile:q', or a GEX-scale score (gex.score 'gex' or "
                "'gex-trimmed')."
            )
        return self

    @field_validator("prune_keep", mode="before")
    @classmethod
    def _prune_keep_number(cls, v: Any) -> Any:
        if v is None:
            return v
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"prune_keep must be a fraction in (0, 1] or a row count >= 1; found {v!r}")
        if isinstance(v, int) and v < 1 or isinstance(v, float) and not 0 < v <= 1:
            raise ValueError(f"prune_keep must be a fraction in (0, 1] or a row count >= 1; found {v!r}")
        return v

    @model_validator(mode="after")
    def _prune_has_budget(self) -> "CleanConfig":
        if self.action == "prune" and self.prune_keep is None:
            raise ValueError("action='prune' needs prune_keep, the rows to keep: a fraction in (0, 1] or a count")
        return self

    @model_validator(mode="after")
    def _rate_positive(self) -> "CleanConfig":
        check_rates(self.gex)
        return self

    @model_validator(mode="after")
    def _builder_needs_checkpoint(self) -> "CleanConfig":
        if self.model_builder is not None and parse_model_spec(self.model, check_paths=False).kind != "checkpoint":
            raise ValueError(
                f"model_builder={self.model_builder!r} names the architecture of a checkpoint, but model is "
                f"{self.model!r}. Fix: set model to a checkpoint path, or remove model_builder."
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
        from influence_stage._checks import read_yaml_mapping

        return cls.from_mapping(read_yaml_mapping(path, empty_ok=True), where=f"configuration file {path}")

    def to_yaml(self, path: str | os.PathLike) -> None:
        """Write the configuration as YAML (every field, JSON-compatible values)."""
        Path(path).write_text(yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False), encoding="utf-8")


def check_rates(gex: GEXConfig) -> None:
    """``gex.ft_lr`` is ``'auto'`` or a positive finite number; ``gex.lr_grid`` positive and finite.

    Raises
    ------
    InvalidInputError
        Naming the value found (a ValueError, so pydantic validators can call it too).
    """
    ft_lr = gex.ft_lr
    if ft_lr != "auto" and (isinstance(ft_lr, bool) or not math.isfinite(float(ft_lr)) or float(ft_lr) <= 0):
        raise InvalidInputError(
            f"gex.ft_lr must be 'auto' or a positive number; found {ft_lr!r}. It is the peak learning rate of the "
            "members' fine-tuning. Fix: give a rate such as 0.1, or 'auto' to choose it from the data."
        )
    bad = [r for r in gex.lr_grid if not (math.isfinite(float(r)) and float(r) > 0)]
    if bad:
        raise InvalidInputError(
            f"gex.lr_grid must hold positive finite rates; found {bad!r}. Fix: e.g. [0.05, 0.1, 0.2]."
        )


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

    The configuration type and its rates (:func:`check_rates`); the model spec
    (:func:`parse_model_spec`: a known name, or a checkpoint / ``hf:`` folder that exists); the
    dataset name (the rule :func:`influence_stage.publish.versions.publish` applies); the publish root and
    the cache dir writable folders, or creatable; a hub push possible (online, a token); a local
    source readable and not empty (:func:`influence_stage.data.sources.check_local_source`).

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
        64 hex digits; equal for equal values of ``keys`` whatever the other fields. When ``keys``
        holds ``"model"`` and the model is a checkpoint or an ``hf:`` folder, the content of that
        file / folder is part of the hash (the path alone would not see it overwritten).
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
    if "model" in keys:
        digest = model_digest(parse_model_spec(config.model))
        if digest is not None:  # the path alone would survive an overwritten checkpoint
            payload["model_content"] = digest
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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
        :func:`featurize_step`). Image features on disk (``featurize.on_disk``) are a
        :class:`~influence_stage.data.feature_store.FeatureStore` of that shape, read in batches;
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

        On-disk features give a :class:`~influence_stage.data.feature_store.StreamData` instead,
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
        See :func:`influence_stage.data.sources.load_source`.
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
    encoding = encode_labels(ds, config.label_column)
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
    or processes the raw text / image column itself (:func:`learner_data`), so ``X`` is an empty
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
        ``hf:`` model with tabular feature columns; see also :func:`influence_stage.data.sources.featurize`.
    """
    config = _check_config(config)
    y = np.asarray(prepared.encoding.codes, dtype=np.int64)
    ids = row_ids(prepared.dataset)
    if parse_model_spec(config.model).kind == "hf":
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
        The output of :func:`prepare` that ``features`` were made from; needed for an
        ``HFLearner``, which reads the raw columns.
    features : Features

    Returns
    -------
    TensorData, TextData or ImageData
        ``HFLearner(task="text")``: ``TextData`` of the text feature column(s) (several joined with
        a space) and ``features.y``. ``HFLearner(task="image")``: ``ImageData`` of the image column,
        read lazily (:class:`influence_stage.engine.hf.DatasetImages`, converted to the model's channel
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


def _load_learner(spec: ModelSpec, features: Features, config: CleanConfig, prepared: Prepared | None) -> Learner:
    """The learner of a checkpoint or an ``hf:`` folder, at the loaded parameters."""
    if spec.kind == "checkpoint":
        module = load_model(spec.path, builder=config.model_builder, input_shape=features.X.shape[1:],
                            n_classes=features.n_classes)
        learner, _ = make_learner(module, features.X, features.n_classes, config=config.gex)
        return learner
    where = f"model 'hf:{spec.value}'"
    if not isinstance(prepared, Prepared):
        raise InvalidInputError(
            f"{where} reads the raw text or image column, so make_model_step needs prepared= (the output of "
            f"prepare); found {type(prepared).__name__}. Fix: make_model_step(features, config, prepared=prepared)."
        )
    learner = HFLearner.from_pretrained(
        spec.path, task=_hf_task(prepared.roles, where), num_labels=features.n_classes,
        trainable=config.hf_trainable, batch_size=config.gex.batch_size,
        eval_batch_size=min(config.gex.eval_batch_size, HF_EVAL_BATCH_SIZE), momentum=config.gex.momentum,
        weight_decay=config.gex.weight_decay, device=resolve_device(config.gex.device))
    _check_label_names(model_label_names(learner.model), prepared, where)
    return learner


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
        None: ``config.model``. A string (see :func:`parse_model_spec`): a name is built with
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
        The output of :func:`prepare`; needed for ``hf:`` models (and HF learners to be fitted),
        which read the raw columns (:func:`learner_data`).
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
        spec = parse_model_spec(chosen)
        if spec.kind == "name":
            learner, needs_fit = make_learner(spec.value, features.X, features.n_classes, config=config.gex)
        else:
            learner, needs_fit = _load_learner(spec, features, config, prepared), config.fit_loaded
    else:
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
    """Scores → one decision per row; suggested labels are the argmax of the members' mean probabilities.

    Parameters
    ----------
    result : GEXResult
    features : Features
    config : CleanConfig
    prepared : Prepared, optional
        Needed when ``result.learner`` is an ``HFLearner`` (see :func:`learner_data`).
    only_rows : ndarray of bool, optional
        Rows an action may touch (``decide``'s ``eligible``); default every row.

    Returns
    -------
    Decisions
        ``table`` columns ``row_id, score, is_issue, action, given_label, suggested_label, weight``,
        in ``features`` order.
    """
    config = _check_config(config)
    if config.action == "prune":
        from influence_stage.decisions.prune import prune_decisions

        from influence_stage.engine.influence import self_influence

        influence = self_influence(result.loss_matrix, result.base_loss, tau=config.prune_tau)
        return prune_decisions(influence, features.y, config.prune_keep, per_class=config.prune_per_class,
                               high_share=config.prune_high_share, row_ids=features.row_ids, ranking=result.scores,
                               eligible=only_rows)
    data = learner_data(result.learner, prepared, features)
    proba = mean_member_proba(result.learner, result.members, data, batch_size=config.gex.eval_batch_size,
                              member_chunk=config.gex.member_chunk)
    return decide(result.scores, features.y, threshold=config.threshold, action=config.action, proba=proba,
                  row_ids=features.row_ids, min_agreement=config.min_agreement,
                  relabel_fallback=config.relabel_fallback, relabel_rule=config.relabel_rule,
                  max_fraction_per_class=config.max_fraction_per_class,
                  max_drop_fraction=config.max_drop_fraction, min_weight=config.min_weight,
                  random_state=config.seed, gex_influence=result.gex_influence,
                  n_estimated=estimated_issues(result, data, config), eligible=only_rows,
                  score_floor=2 * config.gex.tau ** 2 if result.score_name in GEX_SCALE else 0.0)


def estimated_issues(result: GEXResult, data: Any, config: CleanConfig) -> int | None:
    """Estimated number of mislabeled rows when the threshold is ``"estimate"`` (else None).

    From the confident joint of the run's cross-fitted out-of-sample probabilities
    (``estimate.confident_joint_count``); trained here when neither the scale nor the score did.
    """
    if parse_threshold(config.threshold).method != "estimate":
        return None
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
    """Apply the decisions to the prepared dataset (see :func:`influence_stage.decisions.apply.apply_decisions`).

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


__all__ = [
    "CleanConfig", "Features", "HF_EVAL_BATCH_SIZE", "MODEL_NAMES", "ModelSpec", "PipelineResult", "Prepared",
    "SCORE_KEYS", "apply_step", "check_class_counts", "check_folder", "check_rates", "preflight",
    "config_fingerprint", "decide_step", "estimated_issues", "featurize_step", "learner_data",
    "make_model_step", "model_digest", "parse_model_spec", "prepare",
]

"""The stage configuration ``CleanConfig``: every setting of one run, validated once.

Also the YAML reader and writer, the rewriting of pydantic errors into one what / found / fix
message, and ``config_fingerprint``, the configuration half of the flows' cache keys (the other
half is ``data.fingerprint.dataset_fingerprint``): the fields that change members and scores, plus
the content of a checkpoint or Hugging Face folder named by ``model``.

The registries the values are checked against (thresholds, scores, the ``hf:`` trainable setting)
live in upper layers and are imported when a value is validated.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from influence_stage.config.fit import FitConfig, GEXConfig
from influence_stage.config.model_spec import model_digest, parse_model_spec
from influence_stage.config.featurize import FeaturizeConfig
from influence_stage.errors import InvalidInputError, InvalidTypeError

#: Fields of ``CleanConfig`` that change θ*, the members or the scores (not the decisions):
#: the default ``keys`` of ``config_fingerprint``, i.e. what a cache of members / loss matrices
#: must match.
SCORE_KEYS: tuple[str, ...] = ("label_column", "feature_columns", "split", "model", "model_builder", "fit_loaded",
                               "hf_trainable", "featurize", "fit", "gex")


#: The error for the configuration key that was renamed: the decision cap and the output gate have two names.
RENAMED_DROP_CAP = (
    "max_drop_fraction is not a key of the clean configuration: the cap on decisions is named drop_cap (never drop "
    "more than this fraction of all rows; where it binds the lowest-scoring drops are kept and the run goes on), "
    "and max_drop_fraction is the output gate (the flow's top-level key, --max-drop-fraction, the estimators' "
    "max_drop_fraction=): the run fails and nothing is published when more than that share of rows was dropped. "
    "Fix: rename clean.max_drop_fraction to clean.drop_cap to cap the decisions, or move it to the top level of "
    "the flow configuration to set the gate.")


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
    (``to_yaml`` / ``from_yaml``).

    Examples
    --------
    >>> from influence_stage.config import CleanConfig
    >>> cfg = CleanConfig(action="relabel", threshold="budget:0.1")
    >>> cfg.action, cfg.threshold, cfg.gex.chains
    ('relabel', 'budget:0.1', 8)
    >>> CleanConfig.model_validate(cfg.model_dump(mode="json")) == cfg
    True
    >>> cfg.model_copy(update={"action": "drop"}).action  # frozen: change a copy
    'drop'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    label_column: str = Field("label", min_length=1, description="Name of the label column.")
    feature_columns: tuple[str, ...] | None = Field(
        None, min_length=1, description="Feature columns, all of one kind (numeric, text, or one image column). "
        "None: chosen automatically (see data.resolve_columns).")
    split: str | None = Field(None, description="Split to read from a multi-split source (None: the only split).")
    coerce_numeric: bool = Field(False, description="Read the cells of a column that is numeric except for a few "
                                 "cells (e.g. one '?') as missing values instead of refusing the data (see "
                                 "data.check_numeric_columns); they are then null issues, filled with their column's median for the "
                                 "model.")
    normalize_labels: tuple[Literal["strip", "casefold", "nfc"], ...] = Field(
        (), description="String labels that differ only in surrounding whitespace ('strip'), case ('casefold') or "
        "Unicode normal form ('nfc') are merged into one class under the normalisations listed (the label column "
        "then holds the normalised value); labels that still collide under one not listed are refused, naming them "
        "(data.labels). Empty: every such collision is refused.")
    issue_types: tuple[str, ...] | None = Field(
        None, description="Issue types found beside label issues (names in decisions.issues.ISSUE_REGISTRY, e.g. "
        "'exact_duplicate', 'near_duplicate', 'outlier', 'null'). None: every data issue type up to 10,000 rows, "
        "only 'exact_duplicate' above (the kNN types grow faster than the rows); an empty list: none. Exact "
        "duplicates with the first copy's label are dropped (the first kept); every other type is reported.")
    model: str = Field("auto", min_length=1, description="θ*: a model name for models.build_model, 'auto' (a CNN "
                       "for image rows, an MLP otherwise), 'mlp' or 'cnn', trained on the given labels; or a torch "
                       "checkpoint, 'checkpoint:<path>' or a path ending in .pt, .pth, .bin or .safetensors (loaded "
                       "with checkpoint.load_model: builder from its sidecar or model_builder; input size and "
                       "classes checked against the data); or 'hf:<folder>', a local Hugging Face sequence- or "
                       "image-classification model with its tokenizer / image processor (text or image feature "
                       "columns; read raw, not featurized); or the form of a source registered in "
                       "engine.sources.MODEL_SOURCE_REGISTRY. Loaded models are used as trained unless fit_loaded.")
    model_builder: Literal["mlp", "cnn"] | None = Field(
        None, description="Architecture of a checkpoint given as model, when its sidecar <file>.meta.json does "
        "not name one (sizes are read from the weights). None: the sidecar's.")
    fit_loaded: bool = Field(False, description="Train a loaded or given model (checkpoint, 'hf:' folder, module, "
                             "learner) with the fit recipe before scoring; False uses it as θ* as it is. Model "
                             "names are always trained.")
    hf_trainable: str = Field("head", min_length=1, description="Parameters of an 'hf:' model that SGD moves "
                              "(members and fit_loaded): 'head', 'all' or 'last:N' (see hf.HFLearner).")
    action: str = Field(
        "drop", description="What happens to flagged rows, a policy of decisions.policies.POLICY_REGISTRY: 'drop' "
        "them, 'relabel' them to the members' consensus, 'reweight' (flagged rows get a weight < 0.5), 'none' "
        "(score only), or 'prune': keep the budget prune_keep by GEX self-influence and drop the rest "
        "(decisions.prune; threshold is not used); or a policy registered there.")
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
        "estimate", description="How rows are flagged: 'estimate' (the estimated number of mislabeled rows, counted on "
        "cross-fitted probabilities as GEXConfig.estimate_count says; see influence_stage.decisions.estimate), 'otsu', 'gmm', 'quantile:q', "
        "'budget:f' or a score value (see decisions.thresholds.choose_threshold).")
    min_agreement: float = Field(0.5, ge=0, le=1, description="Relabel only where the suggested label's "
                                 "probability (the members' and the cross-fitted probabilities averaged; the members' "
                                 "alone when the cross-fitted model is weak) is at least this; it must also lead "
                                 "the given label's by relabel_margin, and reach weak_min_agreement when the "
                                 "cross-fitted model is weak.")
    relabel_margin: float = Field(0.3, ge=0, le=1, description="Relabel only where the suggested label's probability "
                                  "leads the given label's by at least this (decisions.suggest.RELABEL_MARGIN).")
    weak_min_agreement: float = Field(0.75, ge=0, le=1, description="Relabel only where the suggested label's "
                                      "probability reaches at least this when the cross-fitted model is weak "
                                      "(decisions.suggest.WEAK_AUXILIARY_MIN_PROBA).")
    reverse_flip_alpha: float | None = Field(0.05, gt=0, lt=1, description="Under a reliable cross-fitted model, "
                                             "do not relabel g -> s where the run's own flips s -> g are the more "
                                             "common direction at this one-sided binomial significance "
                                             "(decisions.suggest.reverse_flip_veto). None: no veto.")
    relabel_fallback: Literal["drop", "keep"] = Field(
        "drop", description="Action of flagged rows that are not relabeled under action='relabel'.")
    relabel_rule: Literal["argmax", "soft"] = Field(
        "argmax", description="Which flagged rows can be relabeled (see decisions.decide).")
    max_fraction_per_class: float | None = Field(
        0.5, ge=0, le=1, description="Never drop more than this fraction of a class (by given label); at least "
        "one row per class is always kept. None: no per-class cap.")
    drop_cap: float | None = Field(
        None, ge=0, le=1, description="A cap on the decisions: never drop more than this fraction of all rows; "
        "where it binds, the lowest-scoring drops are kept (is_issue stays True). None: no global cap. Not the "
        "output gate (max_drop_fraction of the flow, the CLI and the estimators), which fails the run instead.")
    min_weight: float = Field(0.05, gt=0, le=1, description="Lower clip of the weights under action='reweight'.")
    weight_column: str = Field("weight", min_length=1, description="Name of the column added under "
                               "action='reweight'; must not exist in the data.")
    gex: GEXConfig = Field(default_factory=GEXConfig, description="Members, perturbation scale and scores.")
    fit: FitConfig = Field(default_factory=FitConfig, description="Training recipe of θ* (and of the auto "
                           "scale's held-out models).")
    featurize: FeaturizeConfig = Field(default_factory=FeaturizeConfig, description="Featurizer settings.")
    seed: int = Field(0, description="Seed of the random choices outside θ* training and GEX (the 'gmm' "
                      "threshold). Model initialisation and chains use gex.seed, batch order fit.seed.")

    @model_validator(mode="before")
    @classmethod
    def _renamed_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "max_drop_fraction" in data:
            raise ValueError(RENAMED_DROP_CAP)
        return data

    @field_validator("issue_types", mode="before")
    @classmethod
    def _issue_types_registered(cls, v: Any) -> Any:
        if v is None:
            return v
        if isinstance(v, str):
            raise ValueError(f"issue_types is a list of issue type names; found the string {v!r}. Fix: "
                             f"issue_types: [{v!r}]")
        import influence_stage.issues  # noqa: F401  (registers the data issue types)
        from influence_stage.decisions.issues import ISSUE_REGISTRY

        for name in v:
            ISSUE_REGISTRY.get(name)  # an unknown name lists the registry's names
        return tuple(v)

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
        from influence_stage.engine.hf import check_trainable

        return check_trainable(v)

    @field_validator("action", mode="before")
    @classmethod
    def _action_registered(cls, v: Any) -> str:
        from influence_stage.decisions.policies import check_action

        return check_action(v)  # the registry's names, listed in the error

    @field_validator("threshold", mode="before")
    @classmethod
    def _threshold_not_bool(cls, v: Any) -> Any:
        if isinstance(v, bool):
            raise ValueError(f"threshold must be a string or a number; found bool {v!r}")
        return v

    @field_validator("threshold")
    @classmethod
    def _threshold_parses(cls, v: str | float) -> str | float:
        from influence_stage.decisions import parse_threshold

        parse_threshold(v)  # raises InvalidInputError / InvalidTypeError with the accepted forms
        return v

    @model_validator(mode="after")
    def _threshold_fits_score(self) -> "CleanConfig":
        from influence_stage.decisions import parse_threshold
        from influence_stage.decisions.thresholds import VALLEY_THRESHOLDS
        from influence_stage.engine.scores import RANK_SCORES

        method = parse_threshold(self.threshold).method
        if self.gex.score in RANK_SCORES and method in VALLEY_THRESHOLDS:
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
        if isinstance(data, Mapping) and "max_drop_fraction" in data:
            raise InvalidInputError(f"{where}: {RENAMED_DROP_CAP}")
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



def config_fingerprint(config: CleanConfig, keys: Iterable[str] = SCORE_KEYS) -> str:
    """Stable hash of some fields of a configuration, ``sha256`` hex.

    Parameters
    ----------
    config : CleanConfig
    keys : iterable of str, default ``SCORE_KEYS``
        Top-level field names to include; the default is the fields that change ``θ*``, the members or
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


__all__ = ["CleanConfig", "RENAMED_DROP_CAP", "SCORE_KEYS", "check_rates", "config_fingerprint"]

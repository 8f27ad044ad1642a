"""Save and load a fitted ``InfluenceCleaner`` without pickle: JSON, parquet and safetensors files.

A saved cleaner is a folder; ``save_cleaner`` writes it and ``load_cleaner`` restores
every fitted attribute ``transform`` and the views need. Nothing in it is executable on load.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.utils.validation import check_is_fitted

from influence_stage.api.views import with_label_names
from influence_stage.config import FitConfig, GEXConfig
from influence_stage.config.featurize import FeaturizeConfig
from influence_stage.data.columns import ColumnRoles
from influence_stage.data.labels import LabelEncoding
from influence_stage.decisions import Decisions, ThresholdResult
from influence_stage.decisions.suggest import SUGGESTED_DTYPE
from influence_stage.errors import InvalidInputError
from influence_stage.config import CleanConfig

logger = logging.getLogger(__name__)


_SAVE_FORMAT = "influence_stage.InfluenceCleaner"
_SAVE_VERSION = 2
"""2: ``manifest.json`` carries ``manifest_sha256``, the digest of its own content (version 1 had none)."""
_SAVED_FILES = ("config.json", "decisions.parquet", "scores.parquet", "arrays.safetensors", "members.safetensors")


_DIGEST_KEY = "manifest_sha256"
_ISSUES_FILE = "issues.parquet"
"""The issue types' columns of ``issues_`` (beside the decisions table's), when the fit ran any; listed in
the manifest's ``files`` (so under its checksums) only then."""


def issue_extra_columns(issues: pd.DataFrame) -> pd.DataFrame | None:
    """The columns of ``issues_`` that are neither the decisions table's nor the label names, or None."""
    from influence_stage.decisions.schema import TABLE_COLUMNS

    extra = [c for c in issues.columns if c not in TABLE_COLUMNS
             and c not in ("given_label_name", "suggested_label_name")]
    return issues[extra].reset_index(drop=True) if extra else None


def manifest_digest(manifest: dict[str, Any]) -> str:
    """The sha256 of a manifest's content, every key but ``manifest_sha256`` itself.

    The content is hashed as canonical JSON (sorted keys, no whitespace), so the digest depends on the
    values only, not on how the file is laid out. It covers everything ``load`` restores from the
    manifest (threshold, encoding, roles, fingerprints, parameters) and, through ``files``, the sha256 of
    every other file: one edited byte anywhere in a saved cleaner fails ``load``.
    """
    content = {k: v for k, v in manifest.items() if k != _DIGEST_KEY}
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def check_manifest(manifest: dict[str, Any], manifest_path: Path) -> None:
    """Raise ``InvalidInputError`` unless ``manifest`` is the format this version writes and unedited."""
    if manifest.get("format") != _SAVE_FORMAT or manifest.get("format_version") != _SAVE_VERSION:
        raise InvalidInputError(
            f"{manifest_path} holds format {manifest.get('format')!r} version {manifest.get('format_version')!r}; "
            f"expected {_SAVE_FORMAT!r} version {_SAVE_VERSION}. Fix: save it again with this version.")
    saved, found = manifest.get(_DIGEST_KEY), manifest_digest(manifest)
    if saved != found:
        raise InvalidInputError(
            f"{manifest_path} changed since it was saved: the sha256 of its content is {found[:16]}..., the digest "
            f"saved in it ({_DIGEST_KEY}) is {str(saved)[:16]}...; the threshold, labels, fingerprints and "
            "parameters it holds cannot be trusted. Fix: save the cleaner again from a fit; never edit the files "
            "of a saved cleaner.")


def package_version() -> str:
    from influence_stage import __version__

    return __version__


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def saved_config(config: dict[str, Any]) -> dict[str, Any]:
    """A saved ``config.json`` in today's ``CleanConfig``, in memory (the file stays under its checksum).

    A cleaner saved before the decision cap was renamed holds ``max_drop_fraction`` in its clean
    configuration: the same cap, now ``drop_cap`` (``max_drop_fraction`` is the output gate's name). Its
    ``gex`` section keeps the values it was fitted under for fields added since (``saved_gex``).
    """
    if "max_drop_fraction" in config and "drop_cap" not in config:
        config = {("drop_cap" if k == "max_drop_fraction" else k): v for k, v in config.items()}
    if isinstance(config.get("gex"), dict):
        config = {**config, "gex": saved_gex(config["gex"])}
    return config


#: GEXConfig fields whose default is not what fits did before the field was saved -> what they did: a save
#: that lacks one was fitted under that value, so it keeps it instead of today's default
FIELDS_BEFORE_SAVED = {"estimate_count": "confident_joint", "image_aux_lr_scale": 1.0, "image_aux_shift": 0,
                       "image_aux_views": 1, "floored_aux_share": 1.0, "floored_aux_first": 0.25,
                       "image_lr_grid": None, "image_min_cycle_steps": None, "image_gex_rank": True,
                       "image_chains": None}


def saved_gex(gex: dict[str, Any]) -> dict[str, Any]:
    """A saved ``GEXConfig`` dump in today's fields: a field the save lacks (``FIELDS_BEFORE_SAVED``) takes
    the value its fit ran under, not today's default (for example the confident joint's count before
    ``"both"``, the halves at θ*'s rate before ``image_aux_lr_scale=4``, one unshifted view before
    ``image_aux_shift`` and ``image_aux_views``, the GEX rank on image rows before ``image_gex_rank``, eight
    member chains on image rows before ``image_chains=2``)."""
    return {**{k: v for k, v in FIELDS_BEFORE_SAVED.items() if k not in gex}, **gex}


def params_to_json(params: dict[str, Any]) -> dict[str, Any]:
    """Estimator parameters as JSON: configs as their dumps, an in-memory model as None (not saved)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, (GEXConfig, FitConfig, FeaturizeConfig)):
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


def params_from_json(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict) and "__config__" in value:
            dump = saved_gex(value["value"]) if value["__config__"] == "GEXConfig" else value["value"]
            out[key] = {"GEXConfig": GEXConfig, "FitConfig": FitConfig,
                        "FeaturizeConfig": FeaturizeConfig}[value["__config__"]].model_validate(dump)
        elif key == "model" and value is None:
            out[key] = "auto"
        else:
            out[key] = value
    return out

def save_cleaner(est: Any, path: str | os.PathLike) -> Path:
    """Write the fitted result to a folder, without pickle.

    Files: ``manifest.json`` (format version, package version, the dataset fingerprint and
    per-column digests, label encoding, threshold, estimator parameters, the sha256 of every
    other file, and ``manifest_sha256``: the digest of its own content, see ``manifest_digest``), ``config.json`` (``config_.model_dump(mode="json")``), ``decisions.parquet``
    (the decisions table, ``decisions.schema.TABLE_COLUMNS``), ``issues.parquet`` (the issue types'
    columns of ``issues_``, when the fit ran any; their summary is the manifest's ``issue_summary``), ``scores.parquet`` (``row_id, score,
    gex_influence, p_issue, base_loss``), ``arrays.safetensors`` (loss matrix, base losses,
    out-of-sample probabilities when computed) and ``members.safetensors`` (the members'
    tensors, ``member.<j>.<name>``). The model ``θ*`` itself is not saved (``learner_``).

    Parameters
    ----------
    est : InfluenceCleaner
        Fitted.
    path : path
        A folder; created if missing. Files of a previous save there are replaced.

    Returns
    -------
    pathlib.Path
        The folder, absolute.
    """
    import safetensors.numpy
    import safetensors.torch

    check_is_fitted(est, "issues_")
    folder = Path(path).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(est.config_.model_dump(mode="json"), indent=1), "utf-8")
    est.decisions_.table.to_parquet(folder / "decisions.parquet", index=False)
    scores = pd.DataFrame({"row_id": est.row_ids_, "score": est.scores_, "gex_influence": est.gex_influence_,
                           "p_issue": np.asarray(est.decisions_.threshold.p_issue, dtype=np.float64),
                           "base_loss": est._base_loss_})
    if getattr(est, "_input_kind_", None) == "arrays":
        scores["fitted_y"] = pd.Series(list(est._fitted_y_.tolist()))
    scores.to_parquet(folder / "scores.parquet", index=False)
    arrays = {"base_loss": np.ascontiguousarray(est._base_loss_, dtype=np.float32)}
    if est._loss_matrix_ is not None:
        arrays["loss_matrix"] = np.ascontiguousarray(est._loss_matrix_, dtype=np.float32)
    if est.oos_proba_ is not None:
        arrays["oos_proba"] = np.ascontiguousarray(est.oos_proba_, dtype=np.float32)
    safetensors.numpy.save_file(arrays, str(folder / "arrays.safetensors"))
    members = {f"member.{j}.{k}": torch.as_tensor(v).detach().cpu().clone().contiguous()
               for j, state in enumerate(est.members_) for k, v in state.items()}
    safetensors.torch.save_file(members, str(folder / "members.safetensors"))
    encoding = est.encoding_
    manifest = {
        "format": _SAVE_FORMAT, "format_version": _SAVE_VERSION, "package_version": package_version(),
        "dataset_fingerprint": est.dataset_fingerprint_, "column_fingerprints": est.column_fingerprints_,
        "fitted_columns": est._fitted_columns_, "fitted_features": est._fitted_features_,
        "n_rows": int(len(est.row_ids_)), "n_members": len(est.members_),
        "member_keys": [list(state) for state in est.members_][:1],
        "input_kind": getattr(est, "_input_kind_", "dataset"),
        "n_features_in": getattr(est, "n_features_in_", None),
        "feature_names_in": None if getattr(est, "feature_names_in_", None) is None
        else [str(c) for c in est.feature_names_in_],
        "fitted_y_dtype": str(est._fitted_y_.dtype) if getattr(est, "_input_kind_", None) == "arrays" else None,
        "threshold": {"value": est.threshold_, "method": est.decisions_.threshold.method,
                      "n_estimated": est.decisions_.threshold.n_estimated},
        "score_name": est.score_name_, "evidence_first": bool(getattr(est, "_evidence_first_", False)),
        "ft_lr": est.ft_lr_,
        "encoding": {"label_column": encoding.label_column, "names": list(encoding.names),
                     "values": [v.item() if hasattr(v, "item") else v for v in encoding.values],
                     "value_dtype": encoding.value_dtype, "source": encoding.source},
        "roles": {"label_column": est._roles_.label_column, "feature_columns": list(est._roles_.feature_columns),
                  "kind": est._roles_.kind},
        "params": params_to_json(est.get_params(deep=False)),
        "timings": est.timings_,
    }
    saved = list(_SAVED_FILES)
    extra = issue_extra_columns(est.issues_)
    stale = folder / _ISSUES_FILE
    if extra is not None:
        extra.to_parquet(stale, index=False)
        saved.append(_ISSUES_FILE)
        manifest["issue_summary"] = getattr(est, "issue_report_summary_", None)
    elif stale.exists():  # a previous save's issue table is not this fit's
        stale.unlink()
    manifest["files"] = {name: sha256(folder / name) for name in saved}
    manifest = json.loads(json.dumps(manifest, default=str))  # as load will read it back
    manifest[_DIGEST_KEY] = manifest_digest(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1), "utf-8")
    logger.info("saved InfluenceCleaner to %s", folder)
    return folder


def load_cleaner(cls: type, path: str | os.PathLike, *, dataset: Any = None) -> Any:
    """A cleaner saved by ``save_cleaner``, ready to ``transform`` the dataset it was fitted on.

    ``manifest.json`` is checked against its own digest (``manifest_sha256``), every other file
    against the sha256 the manifest holds, and the tables against each other; ``transform`` refuses any dataset whose fingerprint differs from the fitted one (as
    after ``fit``). ``learner_``, ``result_`` and ``pipeline_`` are None (``θ*`` is not saved);
    ``fit`` works again when the parameters are strings and configs (an in-memory model
    given as ``model=`` is not saved: ``model`` is then ``"auto"``).

    Parameters
    ----------
    cls : type
        ``InfluenceCleaner`` (or a subclass): built from the saved parameters.
    path : path
        The folder written by ``save_cleaner``.
    dataset : optional
        The fitted data (any form ``fit`` takes): checked against the saved fingerprint now.

    Raises
    ------
    InvalidInputError
        A missing or changed file (``manifest.json`` included), another format version, tables that disagree, or a
        ``dataset`` other than the fitted one (the message says what differs).
    """
    import safetensors.numpy
    import safetensors.torch

    folder = Path(path).expanduser().resolve()
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise InvalidInputError(f"no saved InfluenceCleaner at {folder}: manifest.json is missing. "
                                "Fix: give the folder written by InfluenceCleaner.save.")
    try:
        manifest = json.loads(manifest_path.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"{manifest_path} is not the JSON InfluenceCleaner.save wrote: {exc}. "
                                "Fix: save the cleaner again; never edit the files of a saved cleaner.") from exc
    if not isinstance(manifest, dict):
        raise InvalidInputError(f"{manifest_path} holds a JSON {type(manifest).__name__}, not the object "
                                "InfluenceCleaner.save wrote. Fix: save the cleaner again.")
    check_manifest(manifest, manifest_path)
    files = manifest.get("files") or {}
    optional = [name for name in files if name == _ISSUES_FILE]
    for name in (*_SAVED_FILES, *optional):
        file = folder / name
        if not file.is_file():
            raise InvalidInputError(f"saved cleaner at {folder} lacks {name}. Fix: save it again.")
        expected = manifest["files"].get(name)
        if sha256(file) != expected:
            raise InvalidInputError(f"{file} changed since it was saved (sha256 differs from manifest.json). "
                                    "Fix: save it again; never edit the files of a saved cleaner.")
    est = cls(**params_from_json(manifest["params"]))
    config = CleanConfig.model_validate(saved_config(json.loads((folder / "config.json").read_text("utf-8"))))
    table = pd.read_parquet(folder / "decisions.parquet")
    # nullable: empty on flagged rows with no confident other label (saved before that: int64, never empty)
    table["suggested_label"] = table["suggested_label"].astype(SUGGESTED_DTYPE)
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
    est.issues_ = with_label_names(table, est.classes_)
    if optional:
        extra = pd.read_parquet(folder / _ISSUES_FILE)
        if len(extra) != n:
            raise InvalidInputError(f"saved tables at {folder} disagree: {_ISSUES_FILE} has {len(extra)} rows, the "
                                    f"manifest {n}. Fix: save it again.")
        est.issues_ = pd.concat([est.issues_.reset_index(drop=True), extra], axis=1)
    est.issue_report_summary_ = manifest.get("issue_summary")
    est.scores_ = scores["score"].to_numpy(dtype=np.float64)
    est.gex_influence_ = scores["gex_influence"].to_numpy(dtype=np.float64)
    est.label_quality_ = table["label_quality"].to_numpy()
    n_est = thr["n_estimated"]
    est.estimated_noise_rate_ = None if n_est is None else n_est / max(n, 1)
    est.threshold_ = float(thr["value"])
    est.score_name_ = manifest["score_name"]
    est._evidence_first_ = bool(manifest.get("evidence_first", False))  # saved before it existed: it was not
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
    if manifest.get("feature_names_in") is not None:
        est.feature_names_in_ = np.asarray(manifest["feature_names_in"], dtype=object)
    if est._input_kind_ == "arrays":
        values = scores["fitted_y"].tolist()
        dtype = manifest["fitted_y_dtype"]
        est._fitted_y_ = np.asarray(values, dtype=object) if dtype == "object" else np.asarray(values).astype(
            dtype)
    est.learner_ = est.result_ = est.pipeline_ = None
    if dataset is not None:
        est._check_fitted_data(dataset)
    return est

"""The model step: a learner at θ* (built and trained, loaded, or given), and ``learner_data``, what a
learner trains and evaluates on (tensors, or the raw texts / images an ``HFLearner`` reads).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np

from influence_stage.config.clean import CleanConfig
from influence_stage.config.model_spec import parse_model_spec
from influence_stage.data.columns import ColumnRoles
from influence_stage.data.sources import row_ids
from influence_stage.engine.gex import make_learner
from influence_stage.engine.hf import DatasetImages, HFLearner, ImageData, TextData
from influence_stage.engine.learner import Fittable, Learner, OnDevice, place
from influence_stage.engine.sources import LearnerRequest
from influence_stage.errors import InvalidInputError
from influence_stage.stage.preflight import check_config
from influence_stage.stage.results import Features, Prepared

logger = logging.getLogger(__name__)

#: Most rows per forward pass of a Hugging Face model in the stage (``gex.eval_batch_size`` is sized
#: for small torch models; 4096 padded sequences through a transformer would need tens of GB).
HF_EVAL_BATCH_SIZE = 64


def hf_task(roles: ColumnRoles, what: str) -> Literal["text", "image"]:
    """The ``HFLearner`` task for the feature columns, or an error for tabular columns."""
    if roles.kind in ("text", "image"):
        return roles.kind  # type: ignore[return-value]
    raise InvalidInputError(
        f"{what} reads raw text or image columns; the feature columns {list(roles.feature_columns)[:5]} are "
        f"{roles.kind}. Fix: choose a text column or an image column with feature_columns, or use a torch model "
        "('auto', 'mlp', or a checkpoint) for tabular data."
    )


def raw_texts(prepared: Prepared) -> list[str]:
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
        return features.tensor_data(learner.device if isinstance(learner, OnDevice) else "cpu")
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
    task = hf_task(prepared.roles, f"HFLearner(task={learner.task!r})")
    if task != learner.task:
        raise InvalidInputError(
            f"HFLearner(task={learner.task!r}) needs {learner.task} feature columns; the feature columns "
            f"{list(prepared.roles.feature_columns)} are {task}. Fix: choose a {learner.task} column with "
            "feature_columns, or a model for the data's kind."
        )
    if task == "text":
        return TextData(raw_texts(prepared), features.y)
    channels = getattr(getattr(learner.model, "config", None), "num_channels", None)
    images = DatasetImages(prepared.dataset, prepared.roles.feature_columns[0],
                           channels=channels if channels in (1, 3) else None)
    return ImageData(images, features.y)


def check_label_names(model_names: list[str] | None, prepared: Prepared, where: str) -> None:
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


def source_learner(model: str, features: Features, config: CleanConfig,
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
        task = hf_task(prepared.roles, where)
    request = LearnerRequest(input_shape=tuple(int(s) for s in features.X.shape[1:]), n_classes=features.n_classes,
                             gex=config.gex, model_builder=config.model_builder, hf_trainable=config.hf_trainable,
                             task=task, eval_batch_cap=HF_EVAL_BATCH_SIZE)
    learner, needs_fit = source.learner(spec, request)
    if isinstance(prepared, Prepared):
        check_label_names(source.class_names(learner), prepared, where)
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
    config = check_config(config)
    chosen = config.model if model is None else model
    if isinstance(chosen, str):
        learner, needs_fit = source_learner(chosen, features, config, prepared)
    else:
        import torch.nn as nn

        if isinstance(chosen, nn.Module) and isinstance(features.X, np.ndarray):  # one error naming both sizes
            from influence_stage.engine.checkpoint import check_model

            check_model(chosen, tuple(features.X.shape[1:]), features.n_classes)
        learner, needs_fit = make_learner(chosen, features.X, features.n_classes, config=config.gex)
        needs_fit = needs_fit or config.fit_loaded
    learner = place(learner, config.gex.device)  # gex.device: cpu, cuda or auto; the data follows the learner
    if needs_fit:
        if not isinstance(learner, Fittable):
            raise InvalidInputError(
                f"fit_loaded=True trains the given model, but {type(learner).__name__} has no fit(data, recipe). "
                "Fix: train it yourself and set fit_loaded=False, or give a torch module."
            )
        learner.fit(learner_data(learner, prepared, features), config.fit, progress=progress)
    return learner


__all__ = ["HF_EVAL_BATCH_SIZE", "check_label_names", "hf_task", "learner_data", "make_model_step", "raw_texts",
           "source_learner"]

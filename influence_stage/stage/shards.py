"""Scoring in pieces that read their own rows: member chains and loss-matrix row shards.

The Prefect flow maps tasks over these functions; on a Dask cluster each runs on a worker. None
of them takes the data as an argument: ``write_rows`` puts the rows of a run once under the
run folder (the label, feature and ``row_id`` columns as an Arrow dataset, ``save_to_disk``, and the
label codes), and every piece gets a small ``RowsRef`` instead. A chain reads all rows (it
trains on them); a loss shard reads only its row range, featurizes it with the run's fitted
featurizer and writes its block of the loss matrix into its own ``LossStore`` (one file per shard,
so workers on several machines never write into one file). ``gather_losses`` copies each
member whose every shard is done into the run's store, where it gets its done-flag; a re-run
evaluates only what is missing.

The rows a piece reads are exactly the rows the client featurized (a fitted featurizer transforms
row by row), so the members, the loss matrix and the scores equal those of the single-process run
for the same seed and the same grouping of chains.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import datasets
import numpy as np

from influence_stage.config import FitConfig, GEXConfig
from influence_stage.data.arrow import ROW_ID
from influence_stage.data.columns import ColumnRoles
from influence_stage.data.featurize import Featurizer, featurize
from influence_stage.data.labels import LabelEncoding
from influence_stage.engine.gex import GEXResult, result_from_members
from influence_stage.engine.learner import EvalBatched, Learner, Minibatched, RecordsFit, State
from influence_stage.engine.loss_store import LossStore
from influence_stage.engine.losses import loss_matrix
from influence_stage.engine.members import AutoScale, cycle_steps
from influence_stage.errors import InvalidInputError
from influence_stage.stage.scoring import chains_step
from influence_stage.stage.steps import Features, Prepared, learner_data

logger = logging.getLogger(__name__)

ROWS_MANIFEST = "rows.json"
DATASET_DIR = "dataset"
LABELS = "labels.npy"
FEATURES = "features.npy"
REFEATURIZED = frozenset({"tabular", "image"})
"""Feature kinds whose fitted featurizer transforms row by row, bit for bit, so tasks featurize the rows
they read. Text (TF-IDF → SVD) differs at float rounding with the batch a row is in: its features
are stored (``features.npy``) and read back instead."""
DEFAULT_SHARD_ROWS = 65536
"""Rows per loss-matrix shard when the caller names no size: small enough that a shard's features
and block stay a few MB, large enough that per-task overhead stays small."""


@dataclass(frozen=True)
class RowsRef:
    """Where a task reads a run's rows from, and how it makes the learner's data of them.

    Attributes
    ----------
    path : str
        Folder written by ``write_rows``; it must be readable by every worker (a shared
        filesystem on a cluster).
    n_rows : int
    roles : ColumnRoles
        Label and feature columns, and their kind.
    n_classes : int
    featurizer : TabularFeaturizer, ImageFeaturizer or None
        The run's fitted featurizer (kinds in ``REFEATURIZED``); None when the features were
        given as arrays or are text features (then they are stored as ``features.npy`` and read
        from there) or the model reads raw columns (``hf:``).
    encoding : LabelEncoding
        The run's label encoding without its per-row codes (those are in ``labels.npy``).
    fingerprint : str
        The dataset fingerprint the rows belong to.
    """

    path: str
    n_rows: int
    roles: ColumnRoles
    n_classes: int
    featurizer: Featurizer | None
    encoding: LabelEncoding
    fingerprint: str


def write_rows(prepared: Prepared, features: Features, folder: str | os.PathLike[str], *,
               fingerprint: str) -> RowsRef:
    """Put the rows of a run under ``folder`` once; return the reference tasks read them by.

    Writes ``dataset/`` (the ``row_id``, label and feature columns, ``Dataset.save_to_disk``),
    ``labels.npy`` (the label codes) and, when the features have no featurizer to rebuild them,
    ``features.npy``; then ``rows.json``. A folder whose ``rows.json`` names the same fingerprint
    and row count is reused as it is. Written under a temporary name and renamed, so a crash
    leaves no half-written folder that looks finished.

    Parameters
    ----------
    prepared, features : Prepared, Features
        The run's loaded dataset and its features (same rows, same order).
    folder : path
    fingerprint : str
        ``data.fingerprint.dataset_fingerprint(prepared.dataset)``.

    Returns
    -------
    RowsRef
    """
    folder = Path(folder).resolve()
    n = len(features.y)
    if prepared.dataset.num_rows != n:
        raise InvalidInputError(f"prepared holds {prepared.dataset.num_rows} rows and features {n}; expected the "
                                "features made from prepared.")
    raw_only = features.X.ndim == 2 and features.X.shape[1] == 0
    featurizer = features.featurizer if prepared.roles.kind in REFEATURIZED else None
    ref = RowsRef(path=str(folder), n_rows=n, roles=prepared.roles, n_classes=features.n_classes,
                  featurizer=featurizer, encoding=replace(prepared.encoding, codes=np.empty(0, dtype=np.int64)),
                  fingerprint=fingerprint)
    manifest = folder / ROWS_MANIFEST
    if manifest.is_file():
        old = json.loads(manifest.read_text())
        if old.get("fingerprint") == fingerprint and old.get("n_rows") == n:
            return ref
        shutil.rmtree(folder)
    tmp = folder.with_name(folder.name + ".writing")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    columns = [ROW_ID, prepared.roles.label_column, *prepared.roles.feature_columns]
    quiet = not datasets.utils.are_progress_bars_disabled()
    if quiet:  # a progress bar per run folder would only add noise to the run's output
        datasets.utils.disable_progress_bars()
    try:
        prepared.dataset.select_columns(list(dict.fromkeys(columns))).save_to_disk(str(tmp / DATASET_DIR))
    finally:
        if quiet:
            datasets.utils.enable_progress_bars()
    np.save(tmp / LABELS, np.asarray(features.y, dtype=np.int64))
    if featurizer is None and not raw_only:  # arrays given by the caller, or text features
        np.save(tmp / FEATURES, np.ascontiguousarray(features.X, dtype=np.float32))
    (tmp / ROWS_MANIFEST).write_text(json.dumps({"fingerprint": fingerprint, "n_rows": n}))
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return ref


_OPEN: dict[tuple[str, str], datasets.Dataset] = {}
_FULL: dict[tuple[str, str], tuple[Prepared, Features]] = {}


def _dataset(ref: RowsRef) -> datasets.Dataset:
    """The stored rows (memory-mapped Arrow), opened once per process."""
    folder = Path(ref.path)
    if not (folder / ROWS_MANIFEST).is_file():
        raise InvalidInputError(f"rows folder {folder} is missing or unfinished on this machine; every worker "
                                "must read the run folder. Fix: put cache_dir on a filesystem all workers share.")
    key = (ref.path, ref.fingerprint)
    if key not in _OPEN:
        _OPEN.clear()
        _OPEN[key] = datasets.load_from_disk(str(folder / DATASET_DIR))
    return _OPEN[key]


def read_features(ref: RowsRef, start: int = 0, stop: int | None = None) -> Features:
    """The features and label codes of rows ``start..stop-1`` (default all), read from ``ref.path``.

    Tabular, image and text rows are featurized here with the run's fitted featurizer; features
    given as arrays come from ``features.npy``; an ``hf:`` model gets an empty ``(rows, 0)`` array
    (it reads the raw columns, see ``rows_data``).
    """
    stop = ref.n_rows if stop is None else stop
    if not 0 <= start < stop <= ref.n_rows:
        raise InvalidInputError(f"rows {start}..{stop} are outside the run's 0..{ref.n_rows}.")
    folder = Path(ref.path)
    part = _dataset(ref).select(range(start, stop))
    y = np.array(np.load(folder / LABELS, mmap_mode="r")[start:stop], dtype=np.int64)
    ids = np.asarray(part.with_format("arrow")[ROW_ID].to_numpy(zero_copy_only=False), dtype=np.int64)
    if ref.featurizer is not None:
        X, _ = featurize(part, ref.roles, fitted=ref.featurizer)
    elif (folder / FEATURES).is_file():
        X = np.array(np.load(folder / FEATURES, mmap_mode="r")[start:stop], dtype=np.float32)
    else:
        X = np.empty((stop - start, 0), dtype=np.float32)
    return Features(X=X, y=y, row_ids=ids, n_classes=ref.n_classes, featurizer=ref.featurizer)


def read_rows(ref: RowsRef, start: int = 0, stop: int | None = None) -> tuple[Prepared, Features]:
    """Rows ``start..stop-1`` (default all) as the stage's ``Prepared`` and ``Features``, read from ``ref.path``.

    ``Prepared`` holds the stored columns of those rows (what a Hugging Face model reads) and the
    run's label encoding with those rows' codes.
    """
    features = read_features(ref, start, stop)
    stop = ref.n_rows if stop is None else stop
    part = _dataset(ref).select(range(start, stop))
    return Prepared(dataset=part, roles=ref.roles, encoding=replace(ref.encoding, codes=features.y)), features


def rows_data(ref: RowsRef, learner: Learner, start: int = 0, stop: int | None = None) -> Any:
    """What ``learner`` trains and evaluates on for rows ``start..stop-1``, read from ``ref.path``.

    Same as ``stage.steps.learner_data`` on the client: tensors on the learner's device, or the
    raw texts / images of those rows for a Hugging Face model.
    """
    prepared, features = read_rows(ref, start, stop)
    return learner_data(learner, prepared, features)


def share_rows(ref: RowsRef, prepared: Prepared, features: Features) -> None:
    """Let chain tasks in this process use the caller's rows instead of reading them again.

    For tasks on threads next to the client (the default task runner): they would read the same
    rows from ``ref.path`` (a fitted featurizer transforms row by row), at the cost of a second
    copy in memory. Worker processes never see this and read from ``ref.path``.
    """
    if len(features.y) != ref.n_rows:
        raise InvalidInputError(f"the rows of {ref.path} are {ref.n_rows}; the features given hold {len(features.y)}.")
    _FULL.clear()
    _FULL[(ref.path, ref.fingerprint)] = (prepared, features)


def release_rows() -> None:
    """Forget this process's open run rows (``share_rows``, the memory-mapped stored rows).

    Called by the client once the loss matrix is gathered: the shards that ran on its threads
    touched every page of the stored rows, and the mapping would keep them resident until the
    process ends. A later task opens them again when it needs them.
    """
    _OPEN.clear()
    _FULL.clear()


def _all_rows(ref: RowsRef) -> tuple[Prepared, Features]:
    """All rows, read once per process (the chain tasks of one run share them)."""
    key = (ref.path, ref.fingerprint)
    if key not in _FULL:
        _FULL.clear()
        _FULL[key] = read_rows(ref)
    return _FULL[key]


def task_learner(learner: Learner) -> Learner:
    """The learner as tasks get it: its parameters and settings, without per-row history.

    A ``TorchLearner`` keeps its last fit's per-row margins (``last_fit``, ``(n,)`` floats); tasks do
    not use them, so they are left out and a task's arguments do not grow with the rows. A shallow
    copy: the module is shared (every task copies the learner before it trains).
    """
    if not isinstance(learner, RecordsFit) or learner.last_fit is None:
        return learner
    lean = copy.copy(learner)
    lean.last_fit = None
    return lean


def row_shards(n_rows: int, shard_rows: int | None = None) -> list[tuple[int, int]]:
    """Contiguous row ranges ``[(start, stop), ...]`` of at most ``shard_rows`` rows covering ``0..n_rows``."""
    size = DEFAULT_SHARD_ROWS if shard_rows is None else int(shard_rows)
    if size < 1 or n_rows < 1:
        raise InvalidInputError(f"row shards need at least one row and a positive size; found {n_rows} rows, "
                                f"shard size {shard_rows}.")
    return [(s, min(s + size, n_rows)) for s in range(0, n_rows, size)]


def chains_shard(ref: RowsRef, learner: Learner, gex: GEXConfig, ft_lr: float, chains: list[int],
                 prefixes: list[list[State]], *, progress: bool = False) -> list[list[State]]:
    """The members of one group of chains (``gex.cycles`` each), trained on the rows of ``ref``.

    ``stage.scoring.chains_step`` on the rows read from ``ref`` (the same members as on the client's
    data); it works on its own copy of the learner.

    Returns
    -------
    list of list of State
        ``states[i][cycle]`` for chain ``chains[i]``.
    """
    prepared, features = _all_rows(ref)
    t = time.perf_counter()
    states = chains_step(learner, prepared, features, gex, ft_lr, chains, prefixes, progress=progress)
    seconds = time.perf_counter() - t
    steps = cycle_steps(ref.n_rows, gex, learner) * sum(gex.cycles - len(p) for p in prefixes)
    rows = steps * int(learner.batch_size if isinstance(learner, Minibatched) else gex.batch_size)
    logger.info("chains %s: %d SGD steps, %d rows in %.2f s (%.0f rows/s)", chains, steps, rows, seconds,
                rows / max(seconds, 1e-9))
    return states


def shard_store(folder: str | os.PathLike[str], key: str, start: int, stop: int, n_members: int) -> LossStore:
    """The ``LossStore`` of one row shard: ``folder/rows-<start>-<stop>``, its own key per range."""
    return LossStore(Path(folder) / f"rows-{start:010d}-{stop:010d}", key=f"{key}/rows {start}-{stop}",
                     n_rows=stop - start, n_members=n_members, overwrite=True)


def loss_shard(ref: RowsRef, learner: Learner, members: Sequence[State], start: int, stop: int,
               folder: str, key: str, *, progress: bool = False) -> str:
    """Losses of every member on rows ``start..stop-1``, into the shard's own store; returns its folder.

    Reads only its rows (from ``ref``), and evaluates only the members the shard's store has not
    finished, so a shard re-run after a crash or a lost worker picks up where it stopped.
    """
    store = shard_store(folder, key, start, stop, len(members))
    todo = store.pending()
    if todo:
        learner = copy.deepcopy(learner)
        t = time.perf_counter()
        data = rows_data(ref, learner, start, stop)
        read = time.perf_counter() - t
        loss_matrix(learner, members, data, batch_size=learner.eval_batch_size if isinstance(learner, EvalBatched) else 4096, store=store,
                    progress=progress)
        seconds = time.perf_counter() - t - read
        logger.info("loss shard rows %d-%d: %d members × %d rows in %.2f s (%.0f rows/s; reading rows %.2f s)",
                    start, stop, len(todo), stop - start, seconds, len(todo) * (stop - start) / max(seconds, 1e-9),
                    read)
    return str(store.folder)


def gather_losses(store: LossStore, shards: Sequence[tuple[int, int]], folder: str | os.PathLike[str],
                  key: str) -> list[int]:
    """Copy into ``store`` every pending member that all row shards have finished; returns them.

    Each copied member gets its done-flag in ``store`` (``LossStore.write``); a member some shard
    has not finished stays pending.
    """
    starts = [s for s, _ in shards]
    if starts != sorted(starts) or shards[0][0] != 0 or shards[-1][1] != store.n_rows or any(
            a[1] != b[0] for a, b in zip(shards, shards[1:])):
        raise InvalidInputError(f"row shards {shards[:3]}… do not cover rows 0..{store.n_rows} in order.")
    parts = [shard_store(folder, key, s, e, store.n_members) for s, e in shards]
    return store.gather([p for p in parts])


def scores_from_shards(learner: Learner, members: list[State], prepared: Prepared | None, features: Features,
                       gex: GEXConfig, fit: FitConfig, ft_lr: float, auto: AutoScale | None, *,
                       store: LossStore, shards: Sequence[tuple[int, int]], folder: str | os.PathLike[str],
                       key: str, progress: bool = False) -> GEXResult:
    """The run's loss matrix from its shards (into ``store``) and the scores (``engine.gex.result_from_members``).

    Members that some shard has not finished are evaluated here, on the client's rows.
    """
    gather_losses(store, shards, folder, key)
    data = learner_data(learner, prepared, features)
    return result_from_members(learner, data, members, config=gex, ft_lr=ft_lr, auto=auto, fit_config=fit,
                               progress=progress, store=store)


__all__ = [
    "DEFAULT_SHARD_ROWS", "RowsRef", "chains_shard", "gather_losses", "loss_shard", "read_features", "read_rows",
    "release_rows",
    "row_shards", "rows_data", "scores_from_shards", "share_rows", "shard_store", "task_learner",
    "write_rows",
]

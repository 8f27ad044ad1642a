"""Scoring as tasks, and the cleaning flow on a Dask cluster through ``prefect-dask``.

:func:`score_on_tasks` is the flow's scoring: member chains as tasks (``chains``, one group of
chains each) and the loss matrix in row shards as tasks (``loss-shard rows A-B``), each reading its
own rows from the run folder (``stage.shards``), never from arguments shipped by the client. It
submits them to the running flow's task runner: threads by default, Dask workers under
:func:`clean_on_dask`. The loss matrix lands in a ``LossStore`` under the run folder (one store per
shard, gathered into the run's store with a done-flag per member), so a re-run evaluates only what
is missing.

:func:`clean_on_dask` runs the flow with a ``prefect_dask.DaskTaskRunner``: ``address`` names an
existing scheduler (``tcp://host:8786``; it is contacted first, and one that cannot be reached is an
``InvalidInputError`` within ``connect_timeout`` seconds), no address starts a local cluster of
``n_workers`` processes with one thread each. On a cluster every worker needs this package (and
torch, datasets, prefect-dask) installed and must read and write ``cache_dir``: a shared filesystem.
A worker lost mid-run has its task run again elsewhere (Dask reschedules it; shards resume from
their stores), so the scores do not change.
Needs the ``dask`` extra (``prefect-dask``, ``dask[distributed]``).
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from influence_stage.config import GEXConfig
from influence_stage.engine.gex import GEXResult
from influence_stage.engine.learner import Learner, State
from influence_stage.engine.loss_store import LossStore
from influence_stage.engine.members import AutoScale, cycle_steps
from influence_stage.errors import InvalidInputError, MissingDependencyError
from influence_stage.stage import shards
from influence_stage.stage.run import plan_members
from influence_stage.stage.steps import CleanConfig, Features, Prepared
from influence_stage.timing import Timings

CONNECT_TIMEOUT = 10.0
"""Seconds to wait for an existing Dask scheduler to answer before the run is refused."""


def _digest(*parts: Any) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:32]


def _cache_key(context: Any, parameters: dict[str, Any]) -> str:
    return f"{context.task.name}-{parameters['key']}"


@task(name="chains", task_run_name="chains {chains}", cache_key_fn=_cache_key, persist_result=True, retries=1)
def chains_task(ref: shards.RowsRef, learner: Learner, gex: GEXConfig, ft_lr: float, chains: list[int],
                prefixes: list[list[State]], key: str, progress: bool = False) -> list[list[State]]:
    """Members of one group of chains, trained on the rows the task reads itself (``stage.shards.chains_shard``)."""
    t = time.perf_counter()
    states = shards.chains_shard(ref, learner, gex, ft_lr, chains, prefixes, progress=progress)
    seconds = time.perf_counter() - t
    rows = (sum(gex.cycles - len(p) for p in prefixes) * cycle_steps(ref.n_rows, gex, learner)
            * int(getattr(learner, "batch_size", gex.batch_size)))
    get_run_logger().info("chains %s: %d training rows in %.1f s (%.0f rows/s)", chains, rows, seconds,
                          rows / max(seconds, 1e-9))
    return states


@task(name="loss-shard", task_run_name="loss-shard rows {start}-{stop}", cache_policy=NO_CACHE, retries=1)
def loss_shard_task(ref: shards.RowsRef, learner: Learner, members: list[State], start: int, stop: int, folder: str,
                    key: str, progress: bool = False) -> str:
    """One row shard of the loss matrix into its own store (``stage.shards.loss_shard``); returns its folder."""
    t = time.perf_counter()
    out = shards.loss_shard(ref, learner, members, start, stop, folder, key, progress=progress)
    seconds = time.perf_counter() - t
    get_run_logger().info("loss-shard rows %d-%d: %d members in %.1f s (%.0f rows/s)", start, stop, len(members),
                          seconds, len(members) * (stop - start) / max(seconds, 1e-9))
    return out


def score_on_tasks(learner: Learner, prepared: Prepared, features: Features, config: CleanConfig,
                   auto: AutoScale | None, *, run_folder: str | Path, fingerprint: str, key: str,
                   chains_per_task: int | None = None, shard_rows: int | None = None,
                   result_storage: Any = None, progress: bool = False, timings: Timings | None = None) -> GEXResult:
    """Members and loss matrix as tasks on the running flow's task runner, then the scores.

    Parameters
    ----------
    learner : Learner
        At θ* (sent to each task: parameters, not data).
    prepared, features : Prepared, Features
        The run's rows; written once under ``run_folder/rows`` (``stage.shards.write_rows``).
    config : CleanConfig
    auto : AutoScale or None
        The scale step's result (its probe chains are continued, not retrained).
    run_folder : path
        This run's folder (rows, loss stores); on a cluster, shared by every worker.
    fingerprint : str
        The dataset fingerprint.
    key : str
        Digest of the data and the configuration that shape θ* and the members; keys the chain
        tasks' cache and the loss stores.
    chains_per_task : int, optional
        Chains per task (``stage.run.plan_members``); default all in one batched task, or one
        per task for learners that train chains one at a time.
    shard_rows : int, optional
        Rows per loss shard (``stage.shards.DEFAULT_SHARD_ROWS``).
    result_storage : optional
        Where the chain tasks persist their results (Prefect ``result_storage``).
    progress : bool
    timings : Timings, optional
        Receives ``members`` (the chain tasks), ``losses`` (the shard tasks) and ``scores`` (gathering
        the shards, the loss at θ*, the scores).

    Returns
    -------
    GEXResult
        Its ``loss_matrix`` is the run store's read-only memmap.
    """
    timings = timings if timings is not None else Timings()
    run_folder = Path(run_folder).resolve()
    ref = shards.write_rows(prepared, features, run_folder / "rows", fingerprint=fingerprint)
    shards.share_rows(ref, prepared, features)  # chain tasks on threads here need not read them again
    options = {} if result_storage is None else {"result_storage": result_storage}
    sent = shards.task_learner(learner)  # parameters and settings only: nothing per row travels with a task
    with timings.step("members"):
        plan = plan_members(learner, config, auto, chains_per_task=chains_per_task)
        futures = [chains_task.with_options(**options).submit(
            ref, sent, config.gex, plan.ft_lr, group, [plan.prefixes[c] for c in group],
            key=_digest(key, plan.ft_lr, "chains", *group), progress=progress) for group in plan.groups]
        members = plan.collect([f.result() for f in futures])
    with timings.step("losses"):
        # the grouping is in the key: chains trained together equal chains trained apart only up to rounding
        loss_key = _digest(key, plan.ft_lr, "loss", *map(tuple, plan.groups))
        folder = run_folder / "losses" / loss_key
        ranges = shards.row_shards(len(features.y), shard_rows)
        store = LossStore(folder / "matrix", key=loss_key, n_rows=len(features.y), n_members=len(members),
                          overwrite=True)
        if store.pending():
            limit = shards_in_flight()
            parts: list[Any] = []
            for s, e in ranges:
                if limit is not None and len(parts) >= limit:
                    parts.pop(0).result()  # the oldest shard first: they take about the same time
                parts.append(loss_shard_task.submit(ref, sent, members, s, e, str(folder / "shards"), loss_key,
                                                    progress=progress))
            for part in parts:
                part.result()
    shards.release_rows()  # the matrix is gathered below from the shard stores, not from the rows
    with timings.step("scores"):
        return shards.scores_from_shards(learner, members, prepared, features, config.gex, config.fit, plan.ft_lr,
                                         auto, store=store, shards=ranges, folder=folder / "shards", key=loss_key,
                                         progress=progress)


def shards_in_flight() -> int | None:
    """How many loss shards the running flow evaluates at once: one per core on the local thread pool.

    Each shard holds a chunk of members' activations for a block of its rows; on the default
    thread-pool runner every submitted task starts at once, so memory would grow with the number of
    shards (with N) for no speed on a few cores. None (no limit) on Dask, whose workers run one task
    per thread and queue the rest themselves.
    """
    from prefect.context import FlowRunContext
    from prefect.task_runners import ThreadPoolTaskRunner

    runner = getattr(FlowRunContext.get(), "task_runner", None)
    return max(1, os.cpu_count() or 1) if isinstance(runner, ThreadPoolTaskRunner) else None


def check_scheduler(address: str, *, timeout: float = CONNECT_TIMEOUT) -> None:
    """Contact the Dask scheduler at ``address``; an ``InvalidInputError`` within ``timeout`` s if it is silent."""
    try:
        from distributed import Client
    except ImportError as exc:
        raise MissingDependencyError("running on Dask needs dask[distributed]: pip install "
                                     "'influence_stage[dask]'.") from exc
    if not isinstance(address, str) or not address.strip():
        raise InvalidInputError(f"--dask address must be a scheduler address such as tcp://host:8786; "
                                f"found {address!r}.")
    t = time.perf_counter()
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:  # refused, unknown host, timed out, bad address
        detail = " ".join(str(exc).split())[:200]
        raise InvalidInputError(
            f"cannot reach the Dask scheduler at {address!r} within {timeout:.0f} s "
            f"({type(exc).__name__}: {detail}; gave up after {time.perf_counter() - t:.0f} s). Fix: start the "
            "scheduler (dask scheduler) and workers, or correct --dask, or use --dask-workers N for a local cluster."
        ) from exc
    client.close()


def dask_task_runner(address: str | None = None, *, n_workers: int = 2, processes: bool = True,
                     connect_timeout: float = CONNECT_TIMEOUT) -> Any:
    """A ``prefect_dask.DaskTaskRunner`` for a cluster at ``address`` or a new local one.

    Parameters
    ----------
    address : str, optional
        An existing scheduler (checked with :func:`check_scheduler`). None: a local cluster.
    n_workers : int, default 2
        Worker processes of the local cluster, one thread each.
    processes : bool, default True
        Local workers as processes (real parallelism); False keeps them as threads in this process.
    connect_timeout : float
        Seconds an existing scheduler has to answer.
    """
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as exc:
        raise MissingDependencyError(
            "running on Dask needs prefect-dask: pip install 'influence_stage[dask]'.") from exc
    if address:
        check_scheduler(address, timeout=connect_timeout)
        return DaskTaskRunner(address=address, client_kwargs={"timeout": connect_timeout})
    if not isinstance(n_workers, int) or isinstance(n_workers, bool) or n_workers < 1:
        raise InvalidInputError(f"--dask-workers must be a positive number of worker processes; found {n_workers!r}.")
    return DaskTaskRunner(cluster_kwargs={"n_workers": n_workers, "threads_per_worker": 1,
                                          "processes": processes, "dashboard_address": None})


def clean_on_dask(params: Any, *, address: str | None = None, n_workers: int = 2, processes: bool = True) -> dict:
    """Run ``clean_dataset(params)`` with a Dask task runner; returns the flow's summary.

    ``address``: an existing scheduler; None: a local cluster of ``n_workers`` processes (one
    thread each). Chains default to one per task, so the workers share them.
    """
    from influence_stage.orchestration.flow import clean_dataset

    runner = dask_task_runner(address, n_workers=n_workers, processes=processes)
    if params.chains_per_task is None:  # one chain per task, so the workers share them
        params = params.model_copy(update={"chains_per_task": 1})
    return clean_dataset.with_options(task_runner=runner)(params)


__all__ = ["CONNECT_TIMEOUT", "chains_task", "check_scheduler", "clean_on_dask", "dask_task_runner",
           "loss_shard_task", "score_on_tasks", "shards_in_flight"]

"""The cleaning flow on a Dask cluster through ``prefect-dask``.

The flow's Prefect executor (``orchestration.prefect_executor``) submits the work units of the
mapped steps (member chains as ``chains`` tasks, the loss matrix in row shards as ``loss-shard rows
A-B`` tasks) to the flow's task runner; under ``clean_on_dask`` that is Dask, so they spread over
the workers. Each unit reads its own rows from the run folder (``stage.shards``), never from
arguments shipped by the client.

``clean_on_dask`` runs the flow with a ``prefect_dask.DaskTaskRunner``: ``address`` names an
existing scheduler (``tcp://host:8786``; it is contacted first, and one that cannot be reached is an
``InvalidInputError`` within ``connect_timeout`` seconds), no address starts a local cluster of
``n_workers`` processes with one thread each. On a cluster every worker needs this package (and
torch, datasets, prefect-dask) installed and must read and write ``cache_dir``: a shared filesystem.
A worker lost mid-run has its task run again elsewhere (Dask reschedules it; shards resume from
their stores), so the scores do not change.
Needs the ``dask`` extra (``prefect-dask``, ``dask[distributed]``).

The curation flow uses Dask differently (``dask_client``, ``DaskUnitsExecutor``): Prefect stays the
orchestrator on the driver (its steps are tasks there, on the default task runner) and only the work
units of mapped steps go to the cluster, as plain functions submitted with ``Client.submit``. A
Prefect task on a worker process talks to a Prefect API; with no server configured each worker
starts a temporary one of its own, which costs about a minute per worker, more than a scoring unit.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Iterator

from influence_stage.errors import InvalidInputError, MissingDependencyError
from influence_stage.orchestration.flow import clean_dataset
from influence_stage.orchestration.prefect_executor import PrefectExecutor
from influence_stage.pipeline.context import RunContext
from influence_stage.pipeline.step import MappedStep, WorkUnits

CONNECT_TIMEOUT = 10.0
"""Seconds to wait for an existing Dask scheduler to answer before the run is refused."""


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
        An existing scheduler (checked with ``check_scheduler``). None: a local cluster.
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
    runner = dask_task_runner(address, n_workers=n_workers, processes=processes)
    if params.chains_per_task is None:  # one chain per task, so the workers share them
        params = params.model_copy(update={"chains_per_task": 1})
    return clean_dataset.with_options(task_runner=runner)(params)


@contextlib.contextmanager
def dask_client(address: str | None = None, *, n_workers: int = 2, processes: bool = True,
                connect_timeout: float = CONNECT_TIMEOUT) -> Iterator[Any]:
    """A ``distributed.Client`` of the cluster at ``address`` or of a new local one, closed on exit.

    ``address``: an existing scheduler (checked with ``check_scheduler``); None: a ``LocalCluster`` of
    ``n_workers`` workers with one thread each (processes, unless ``processes`` is False), shut down on
    exit. Local worker processes get Dask's one-thread settings for OpenMP/MKL, so torch runs one
    thread per worker, but not ``MALLOC_TRIM_THRESHOLD_`` (Dask's default sets it): setting it turns off glibc's
    adaptive mmap threshold, so every large tensor of a forward pass is a fresh ``mmap`` with its page
    faults, and a scoring pass ran about 1.6× slower in a process started with it. Workers of an
    existing cluster (``address``) keep the environment they were started with.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise MissingDependencyError("running on Dask needs dask[distributed]: pip install "
                                     "'influence_stage[dask]'.") from exc
    if address:
        check_scheduler(address, timeout=connect_timeout)
        with Client(address, timeout=connect_timeout, set_as_default=False) as client:
            yield client
        return
    if not isinstance(n_workers, int) or isinstance(n_workers, bool) or n_workers < 1:
        raise InvalidInputError(f"--dask-workers must be a positive number of worker processes; found {n_workers!r}.")
    import dask

    # see the docstring; a None value unsets it, and a nanny started earlier in this process may have
    # left it in os.environ (Dask sets it there before spawning), which the workers would inherit
    inherited = os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}), \
                LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=processes,
                             dashboard_address=None) as cluster, Client(cluster, set_as_default=False) as client:
            yield client
    finally:
        if inherited is not None:
            os.environ["MALLOC_TRIM_THRESHOLD_"] = inherited


def run_units(client: Any, units: WorkUnits, *, retries: int = 1) -> list[Any]:
    """Run ``units`` on the cluster of ``client`` as plain functions; their results in ``units.items`` order.

    The shared arguments are sent to every worker once (``Client.scatter(..., broadcast=True)``), each
    unit is one ``Client.submit`` (named by its task name, rerun up to ``retries`` times when its worker
    is lost). ``units.check``, when set, is called on the driver after each unit completes: when it
    raises (a corpus shard changed under the run), the units still queued are cancelled and the error
    propagates. A unit's own error propagates as raised on the worker.
    """
    from distributed import as_completed

    shared = {k: client.scatter(v, broadcast=True, hash=False) for k, v in units.shared.items()}  # own keys per call
    futures = [client.submit(units.fn, **shared, **item, key=f"{name}-{_token()}", retries=retries, pure=False)
               for item, name in zip(units.items, units.names, strict=True)]
    try:
        for future in as_completed(futures, loop=client.loop):
            if future.status == "error":
                future.result()  # raises the unit's error here
            if units.check is not None:
                units.check()
        return client.gather(futures)
    except BaseException:
        client.cancel(futures)
        raise


def _token() -> str:
    import uuid

    return uuid.uuid4().hex[:8]


class DaskUnitsExecutor(PrefectExecutor):
    """The Prefect executor with the work units of mapped steps run on a Dask cluster as plain functions.

    Every other step is a Prefect task on the driver as under ``PrefectExecutor``; a mapped step's units
    go to ``client`` (``run_units``), so no Prefect task (and no Prefect API) runs on a worker. Cached
    units (``WorkUnits.keys``) are not supported here: the curation units resume from their done-flags.
    """

    def __init__(self, client: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = client

    def map_units(self, step: MappedStep, context: RunContext) -> Any:
        units = step.units(context)
        if units.keys is not None:
            raise InvalidInputError(f"step {step.name!r} has cached work units; DaskUnitsExecutor runs only units "
                                    "that resume from their own files. Fix: run it with PrefectExecutor on a "
                                    "DaskTaskRunner (clean_on_dask).")
        results = run_units(self.client, units, retries=step.unit_retries)
        with context.step_seconds.step(f"{step.name}: gather"):
            return step.gather(context, units, results)


__all__ = ["CONNECT_TIMEOUT", "DaskUnitsExecutor", "check_scheduler", "clean_on_dask", "dask_client",
           "dask_task_runner", "run_units"]

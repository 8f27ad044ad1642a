"""The Prefect executor: a plan's steps as Prefect tasks, the work units of mapped steps submitted to the task runner.

Run inside a flow. Each step that is worth a task (``Step.task``) runs as a task named after it
(``load``, ``fit-theta``, ``auto-scale``, ...), called in the flow's process; cheap bookkeeping
steps run inline. A cached step (``Step.cached``) is a task whose result is persisted under
``cache_dir`` and keyed ``<step name>-<Step.cache_key>``: the data fingerprint plus the
configuration it depends on, so a re-run (or a run restarted after a crash) reuses it. The other
tasks are never cached: without an explicit policy Prefect would pickle the dataset, the features
and the loss matrix to hash each task's inputs, for a key nothing reads. Steps that touch the
outside (``Step.io``: the source, the publish root) are retried on transient I/O errors.

A mapped step's work units (member chain groups, loss-matrix row shards) are submitted to the
flow's task runner, each a task of its own (``chains``, ``loss-shard``): threads by default, Dask
workers under a ``DaskTaskRunner`` (``orchestration.dask_runner``). Each reads its rows from the run
folder, never from arguments shipped by the client; resume lives in the units' done-flags
(``stage.shards``) and, for cached units, in the persisted results.
"""

from __future__ import annotations

import errno
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote

from influence_stage.pipeline.context import RunContext
from influence_stage.pipeline.local import LocalExecutor
from influence_stage.pipeline.step import MappedStep, Step


def transient_io(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only I/O errors that may pass (a network share, the hub, a busy disk), never bad input.

    A missing or unreadable file, a full disk and every ``InfluenceStageError`` fail at once.
    """
    from influence_stage.errors import InfluenceStageError

    exc = getattr(state, "data", None)
    if not isinstance(exc, OSError) or isinstance(exc, InfluenceStageError):
        return False
    permanent = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)
    return not isinstance(exc, permanent) and exc.errno not in (errno.ENOSPC, errno.EDQUOT)


#: Retries of the I/O steps (load, publish), with backoff.
IO_RETRIES = dict(retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=transient_io)

#: Options of the tasks that are never cached.
UNCACHED = dict(cache_policy=NO_CACHE)


def cache_key(context: Any, parameters: dict[str, Any]) -> str:
    """Cached tasks take an explicit ``key``: fingerprint of data + the config that affects them."""
    return f"{context.task.name}-{parameters['key']}"


def _run_step(step: Step, context: RunContext, key: str | None = None) -> Any:
    """A step as a task body (``key`` only names the cache entry)."""
    return step.run(context)


def _unit_key(key: str) -> Any:
    """The cache key function of one work unit (its key is not an argument of the unit's function)."""
    def unit_cache_key(context: Any, parameters: dict[str, Any]) -> str:
        return f"{context.task.name}-{key}"

    return unit_cache_key


def units_in_flight(bounded: bool) -> int | None:
    """How many units of a mapped step run at once: one per core on the local thread pool when ``bounded``.

    A bounded unit (a loss shard) holds a chunk of members' activations for a block of its rows; on
    the default thread-pool runner every submitted task starts at once, so memory would grow with
    the number of units (with N) for no speed on a few cores. None (no limit) on Dask, whose workers
    run one task per thread and queue the rest themselves, and for units that are not bounded.
    """
    from prefect.context import FlowRunContext
    from prefect.task_runners import ThreadPoolTaskRunner

    if not bounded:
        return None
    runner = getattr(FlowRunContext.get(), "task_runner", None)
    return max(1, os.cpu_count() or 1) if isinstance(runner, ThreadPoolTaskRunner) else None


class PrefectExecutor(LocalExecutor):
    """Runs a ``Plan`` as Prefect tasks, inside a flow: ``LocalExecutor.run``'s loop, each step through ``run_step``.

    Parameters
    ----------
    cache_dir : path, optional
        Where cached step and unit results are persisted (``result_storage``); default Prefect's.
    cache_expiration : timedelta, optional
        How long a cached result is reused; None: never expires.
    timeout_s : float, optional
        Longest a single task may run, in seconds; a task past it fails the run.
    """

    def __init__(self, *, cache_dir: str | os.PathLike[str] | None = None, cache_expiration: timedelta | None = None,
                 timeout_s: float | None = None) -> None:
        self.cache_dir = None if cache_dir is None else Path(cache_dir).resolve()
        self.cache_expiration = cache_expiration
        self.timeout_s = timeout_s

    def _cached(self) -> dict[str, Any]:
        storage = {} if self.cache_dir is None else {"result_storage": self.cache_dir}
        return dict(cache_key_fn=cache_key, persist_result=True, cache_expiration=self.cache_expiration, **storage)

    def step_task(self, step: Step) -> Any:
        """The Prefect task that runs ``step`` (named after it; cached, retried, timed out as the step says)."""
        options: dict[str, Any] = dict(name=step.name, timeout_seconds=self.timeout_s)
        options.update(self._cached() if step.cached else UNCACHED)
        if step.io:
            options.update(IO_RETRIES)
        return task(_run_step, **options)

    def run_step(self, step: Step, context: RunContext) -> Any:
        """One step of ``LocalExecutor.run``'s loop: a task (cached, retried, timed out as the step says), its
        work units mapped over the flow's task runner, or inline in the flow (``Step.task`` False)."""
        if isinstance(step, MappedStep):
            return self.map_units(step, context)
        if not step.task:
            return step.run(context)
        key = step.cache_key(context) if step.cached else None
        return self.step_task(step)(step, quote(context), key=key)  # quote: not introspected

    def map_units(self, step: MappedStep, context: RunContext) -> Any:
        """Submit ``step``'s work units to the flow's task runner, wait for them, and gather their results."""
        units = step.units(context)
        base: dict[str, Any] = dict(name=step.unit_name, retries=step.unit_retries, timeout_seconds=self.timeout_s)
        limit = units_in_flight(units.bounded)
        futures: list[Any] = []
        results: list[Any] = []

        def result_of(future: Any) -> Any:  # between units: the step's own check (e.g. a corpus shard changed)
            out = future.result()
            if units.check is not None:
                units.check()
            return out

        for i, (item, name) in enumerate(zip(units.items, units.names, strict=True)):
            options = dict(base, task_run_name=name)
            if units.keys is not None:
                options.update(self._cached(), cache_key_fn=_unit_key(units.keys[i]))
            else:
                options.update(UNCACHED)
            if limit is not None and len(futures) - len(results) >= limit:
                results.append(result_of(futures[len(results)]))  # the oldest first: units take about the same time
            futures.append(task(units.fn, **options).submit(**units.shared, **item))
        results += [result_of(f) for f in futures[len(results):]]
        with context.step_seconds.step(f"{step.name}: gather"):  # the client's part, within the step's seconds
            return step.gather(context, units, results)


def score_on_tasks(learner: Any, prepared: Any, features: Any, config: Any, *, cache_dir: str | os.PathLike[str],
                   chains_per_task: int | None = None, shard_rows: int | None = None,
                   progress: bool = False) -> RunContext:
    """The ``SCORE`` plan (scale, members, loss matrix) as tasks in the running flow, from a learner at ``θ*``.

    The run folder (rows, loss stores) and the cached results live under ``cache_dir``. Returns the
    run context: ``context["result"]`` is the ``GEXResult`` (its ``loss_matrix`` the run store's
    read-only memmap), ``context.step_seconds`` the seconds per step.
    """
    from influence_stage.pipeline.clean import SCORE

    context = RunContext(config=config, progress=progress, chains_per_task=chains_per_task, shard_rows=shard_rows,
                         cache_dir=Path(cache_dir), values={"learner": learner, "prepared": prepared,
                                                            "features": features})
    return PrefectExecutor(cache_dir=cache_dir).run(SCORE, context)


__all__ = ["IO_RETRIES", "PrefectExecutor", "UNCACHED", "cache_key", "score_on_tasks", "transient_io",
           "units_in_flight"]

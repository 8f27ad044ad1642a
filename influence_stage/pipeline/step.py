"""A step of a plan, and a plan: what every executor runs.

A ``Step`` declares what it reads from and writes into the run context, whether its result is
cached, and its cache key (the data fingerprint plus the configuration fields it depends on, plus a
tag naming the step's result). A ``MappedStep`` is a step whose work splits into independent
*work units* (member chain groups, loss-matrix row shards): in process they run one after another;
the Prefect executor runs each as a task, so on Dask they spread over the workers. A unit reads its
rows itself (``stage.shards``); nothing per row travels with it.

A ``Plan`` is an ordered tuple of steps. The step order of a product exists once, as its plan
(``pipeline.clean``); executors (``pipeline.local``, ``orchestration.prefect_executor``) run plans.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from influence_stage.config.clean import SCORE_KEYS
from influence_stage.errors import InvalidInputError
from influence_stage.pipeline.context import RunContext, digest


class Step(ABC):
    """One arrow of the data flow; a subclass implements ``run`` (an abstract method).

    Attributes
    ----------
    name : str
        Unique in a plan; the Prefect task name (a cached step's cache entries are named by it).
    reads, writes : tuple of str
        Context values the step needs, and those it sets: its return value (one name), or a tuple
        in ``writes`` order (several).
    cached : bool
        Its result may be reused by a run with the same ``cache_key`` (the Prefect executor
        persists it under ``cache_dir``; the in-process executor never caches).
    key_fields : tuple of str
        The ``CleanConfig`` fields the result depends on (default: those that change ``θ*``, the members
        or the scores).
    key_tag : str
        Separates this step's cache entry from the other steps' of the same data and configuration.
    timing : str
        Label its seconds are added to in ``RunContext.timings`` (steps may share one).
    io : bool
        Reads or writes outside the process (the source, the publish root): the Prefect executor
        retries it on transient I/O errors.
    task : bool
        Worth a task of its own in an orchestrator; False for cheap bookkeeping the Prefect
        executor runs inline in the flow (checks, the summary).
    """

    name: ClassVar[str] = "step"
    reads: ClassVar[tuple[str, ...]] = ()
    writes: ClassVar[tuple[str, ...]] = ()
    cached: ClassVar[bool] = False
    key_fields: ClassVar[tuple[str, ...]] = SCORE_KEYS
    key_tag: ClassVar[str] = ""
    timing: ClassVar[str] = ""
    io: ClassVar[bool] = False
    task: ClassVar[bool] = True

    def applies(self, context: RunContext) -> bool:
        """Whether the step runs in this context (a gate switched off, a rate given instead of 'auto')."""
        return True

    def cache_key(self, context: RunContext) -> str:
        """Data fingerprint + the fingerprint of ``key_fields`` of the configuration + ``key_tag``."""
        return digest(context.scoring_key(self.key_fields), self.key_tag)

    @abstractmethod
    def run(self, context: RunContext) -> Any:
        """Compute the step's value(s) from the context (in process)."""

    def store(self, context: RunContext, value: Any) -> None:
        """Write the step's return value into the context under ``writes``."""
        if len(self.writes) == 1:
            context.values[self.writes[0]] = value
        elif self.writes:
            context.values.update(zip(self.writes, value, strict=True))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


@dataclass(frozen=True)
class WorkUnits:
    """The work units of a mapped step, as the Prefect executor submits them.

    Attributes
    ----------
    fn : callable
        Runs one unit: ``fn(**shared, **item)``; a module-level function, so Dask workers import it.
    shared : dict
        Arguments every unit gets (a rows reference, the learner's parameters: nothing per row).
    items : list of dict
        Each unit's own arguments.
    names : list of str
        Each unit's task run name.
    keys : list of str or None
        Each unit's cache key when units are cached (their result persisted), else None.
    bounded : bool
        Each unit holds memory that grows with its rows: on a local thread pool, at most one per
        core runs at once.
    check : callable, optional
        Called with no argument between units by every executor (in process, on the driver while units
        run on Dask, and after each Prefect task's result): raises to stop the step early (e.g. a corpus shard changed under the
        run). None: nothing to check.
    """

    fn: Callable[..., Any]
    shared: dict[str, Any]
    items: list[dict[str, Any]]
    names: list[str]
    keys: list[str] | None = None
    bounded: bool = False
    check: Callable[[], None] | None = None


class MappedStep(Step):
    """A step whose work is independent units; ``units`` says what they are, ``gather`` combines them.

    ``unit_name`` is the units' Prefect task name; ``unit_retries`` how often a failed unit (a lost
    worker) is run again: units resume from their done-flags, so a re-run finishes their work. A
    subclass implements ``units`` and ``gather`` (abstract methods); ``run``, the step in process, runs
    the units one after another with ``units.check`` between them, unless the subclass has a faster
    in-process form.
    """

    unit_name: ClassVar[str] = "unit"
    unit_retries: ClassVar[int] = 1

    @abstractmethod
    def units(self, context: RunContext) -> WorkUnits:
        """The units as tasks get them: each reads its own rows (the Prefect executor maps them)."""

    @abstractmethod
    def gather(self, context: RunContext, units: WorkUnits, results: list[Any]) -> Any:
        """The step's value from the units' results, in ``units.items`` order."""

    def run(self, context: RunContext) -> Any:
        units = self.units(context)
        results = []
        for item in units.items:
            results.append(units.fn(**units.shared, **item))
            if units.check is not None:
                units.check()
        return self.gather(context, units, results)


@dataclass(frozen=True)
class Plan:
    """An ordered tuple of steps: one product's step order, written once.

    Attributes
    ----------
    name : str
    steps : tuple of Step

    Examples
    --------
    >>> from influence_stage.pipeline.step import Plan, Step
    >>> class Load(Step):
    ...     name, writes = "load", ("rows",)
    ...     def run(self, context):
    ...         return [1, 2, 3]
    >>> class Count(Step):
    ...     name, reads, writes = "count", ("rows",), ("n",)
    ...     def run(self, context):
    ...         return len(context["rows"])
    >>> Plan("demo", (Load(), Count())).names
    ['load', 'count']

    A step without ``run`` is abstract: building it raises ``TypeError``.

    >>> import inspect
    >>> class Forgot(Step):
    ...     name = "forgot"
    >>> inspect.isabstract(Forgot), sorted(Forgot.__abstractmethods__)
    (True, ['run'])

    A plan runs with ``influence_stage.pipeline.local.LocalExecutor`` (see there) or the Prefect executor.
    """

    name: str
    steps: tuple[Step, ...]

    def __post_init__(self) -> None:
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise InvalidInputError(f"plan {self.name!r} names a step twice: {names}; expected unique step names "
                                    "(a cached step's entries are named by it). Fix: rename one step.")

    @property
    def names(self) -> list[str]:
        """The step names, in order."""
        return [s.name for s in self.steps]

    def __iter__(self) -> Any:
        return iter(self.steps)


__all__ = ["MappedStep", "Plan", "Step", "WorkUnits"]

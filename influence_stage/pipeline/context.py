"""The run context: a run's inputs and settings, and the values its steps write, by name."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from influence_stage.config.clean import SCORE_KEYS, CleanConfig, config_fingerprint
from influence_stage.errors import InvalidInputError
from influence_stage.stage.gates import GATE_MAX_DROP_FRACTION
from influence_stage.timing import Timings


def digest(*parts: Any) -> str:
    """32 hex digits of ``sha256`` over the parts' strings joined by ``|``: the cache keys' hash."""
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:32]


@dataclass(eq=False)
class RunContext:
    """What the steps of one run read and write.

    Attributes
    ----------
    config : CleanConfig
        The run's configuration (the curation plan's steps read a ``CurateConfig`` here).
    source : Any
        What ``load`` reads (see ``data.sources.load_source``).
    model : Any
        A model given instead of ``config.model`` (a module, a learner, an estimator), or None.
    progress : bool
        Progress bars while training.
    validate : bool
        Run the input and output suites.
    max_drop_fraction : float
        The output gate's limit on the dropped share of rows.
    only_rows : ndarray of bool, optional
        ``(n,)``: rows an action may touch (the sampler's ``sampling_strategy``).
    chains_per_task : int, optional
        Chains per member work unit (``engine.gex.member_plan``).
    shard_rows : int, optional
        Rows per loss-matrix work unit (``stage.shards.DEFAULT_SHARD_ROWS``).
    cache_dir : path, optional
        Where cached step results and run folders (rows, loss stores) live; mapped steps need it.
    params : Any
        The flow's ``FlowConfig`` (publishing, reporting), for the steps of the ``clean`` plan.
    values : dict
        What the steps wrote, by name (``prepared``, ``features``, ``learner``, ``auto``, ...).
    timings : Timings
        Wall seconds per step label (``Step.timing``).
    step_seconds : Timings
        Wall seconds per step name.
    outcome : Any
        Set by a step that ends the run early (``stop``): the executor runs no further step.
    """

    config: CleanConfig
    source: Any = None
    model: Any = None
    progress: bool = False
    validate: bool = True
    max_drop_fraction: float = GATE_MAX_DROP_FRACTION
    only_rows: np.ndarray | None = None
    chains_per_task: int | None = None
    shard_rows: int | None = None
    cache_dir: Path | None = None
    params: Any = None
    values: dict[str, Any] = field(default_factory=dict)
    timings: Timings = field(default_factory=Timings)
    step_seconds: Timings = field(default_factory=Timings)
    outcome: Any = None
    stopped: bool = False

    def __getitem__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise InvalidInputError(
                f"the run context holds no {name!r}; it holds {sorted(self.values)}. A step reads a value an earlier "
                "step writes. Fix: run the plan from its first step, or put the value in the context first."
            ) from None

    def get(self, name: str, default: Any = None) -> Any:
        """The value ``name``, or ``default`` when no step wrote it."""
        return self.values.get(name, default)

    def stop(self, outcome: Any) -> None:
        """End the run after the current step, with ``outcome`` as its result."""
        self.outcome, self.stopped = outcome, True

    @property
    def fingerprint(self) -> str:
        """The dataset fingerprint of the prepared rows (``data.fingerprint.dataset_fingerprint``), computed once."""
        if "fingerprint" not in self.values:
            from influence_stage.data.fingerprint import dataset_fingerprint

            self.values["fingerprint"] = dataset_fingerprint(self["prepared"].dataset)
        return self.values["fingerprint"]

    def scoring_key(self, fields: tuple[str, ...] = SCORE_KEYS) -> str:
        """Digest of the data fingerprint and the configuration ``fields``: the base of the cache keys."""
        return digest(self.fingerprint, config_fingerprint(self.config, fields))

    @property
    def run_folder(self) -> Path:
        """``cache_dir/runs/<scoring key>``: the rows and loss stores the work units read and write."""
        if self.cache_dir is None:
            raise InvalidInputError(
                "work units read their rows from a run folder under cache_dir, but the run context has none. "
                "Fix: give RunContext(cache_dir=...) (the flow's cache_dir)."
            )
        return Path(self.cache_dir) / "runs" / self.scoring_key()


__all__ = ["RunContext", "digest"]

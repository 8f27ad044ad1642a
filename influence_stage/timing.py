"""Wall-clock seconds per named step: the one timing helper of the stage, the engine and the flow."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class Timings(dict[str, float]):
    """``{step name: wall seconds}``; a step timed twice adds up.

    >>> timings = Timings()
    >>> with timings.step("load"):
    ...     pass
    """

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time the ``with`` block under ``name`` (also when it raises)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self[name] = self.get(name, 0.0) + time.perf_counter() - start

    def rounded(self, digits: int = 3) -> dict[str, float]:
        """The timings rounded, for logs and summaries."""
        return {name: round(seconds, digits) for name, seconds in self.items()}

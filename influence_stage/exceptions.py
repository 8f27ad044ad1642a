"""The project's exceptions: one base class, each error also a builtin so callers can catch either."""

from __future__ import annotations


class InfluenceStageError(Exception):
    """Base class of every error raised by influence_stage."""


class InvalidInputError(InfluenceStageError, ValueError):
    """Input data or arguments have the right type but a wrong value, shape or content."""


class InvalidTypeError(InfluenceStageError, TypeError):
    """Input data or arguments have the wrong type or dtype."""


class CheckpointError(InfluenceStageError, ValueError):
    """A checkpoint cannot be read or does not match the model it is loaded into."""


class ValidationFailedError(InfluenceStageError, RuntimeError):
    """A data-quality gate failed; nothing was published."""


class RunMismatchError(InfluenceStageError, ValueError):
    """A run folder holds artifacts made with a different configuration or dataset."""

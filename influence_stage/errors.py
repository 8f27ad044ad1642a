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


class MissingDependencyError(InfluenceStageError, ImportError):
    """An optional dependency is not installed; the message names the pip command."""


class HubPushError(InfluenceStageError, ConnectionError):
    """Pushing a published dataset to the Hugging Face hub failed (offline, auth, network)."""

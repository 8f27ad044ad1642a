"""Named plug points: a registry maps a name to one class, and lists its names.

Every plug point of the stage is a ``Registry``: scores
(``influence_stage.engine.scores.SCORE_REGISTRY``), thresholds
(``influence_stage.decisions.thresholds.THRESHOLD_REGISTRY``), decision policies
(``influence_stage.decisions.policies.POLICY_REGISTRY``), issue types
(``influence_stage.decisions.issues.ISSUE_REGISTRY``), model sources
(``influence_stage.engine.sources.MODEL_SOURCE_REGISTRY``), data sources
(``influence_stage.data.sources.DATA_SOURCE_REGISTRY``) and featurizers
(``influence_stage.data.featurize.FEATURIZER_REGISTRY``). An entry is one class, registered by name with a decorator::

    from influence_stage.engine.scores import SCORE_REGISTRY, Score

    @SCORE_REGISTRY.register("my-score")
    class MyScore(Score):
        ...

Config validation, CLI help, error messages and the docs read ``Registry.names``, so a new
entry is listed everywhere as soon as its module is imported. A registry holds classes, not
instances: the caller builds an instance with the options that entry takes.

Pure Python, no third-party imports: the CLI and the config import registries before anything heavy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Set
from typing import Any, Generic, TypeVar

from influence_stage.errors import InvalidInputError, InvalidTypeError

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    """Classes registered by name, in registration order.

    Parameters
    ----------
    kind : str
        What an entry is, in the singular (``"score"``, ``"threshold"``), for error messages.
    plural : str, optional
        The plural of ``kind`` (default ``kind + "s"``).
    base : type, optional
        When given, every registered class must be a subclass of it.
    fix : str, optional
        The fix an unknown-name error suggests after the list of names.

    Examples
    --------
    >>> from influence_stage.registry import Registry
    >>> class Shape:
    ...     pass
    >>> SHAPES = Registry("shape", base=Shape)
    >>> @SHAPES.register("square")
    ... class Square(Shape):
    ...     pass
    >>> SHAPES.names(), SHAPES.get("square").name
    (('square',), 'square')
    >>> SHAPES.unknown_message("circle")
    "unknown shape 'circle'; valid shapes: 'square'."
    """

    def __init__(self, kind: str, *, plural: str | None = None, base: type | None = None, fix: str = "") -> None:
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self.base = base
        self.fix = fix
        self._entries: dict[str, T] = {}

    def register(self, name: str, *, replace: bool = False) -> Callable[[T], T]:
        """A class decorator that registers the class under ``name`` and sets its ``name`` attribute.

        Raises
        ------
        InvalidInputError
            ``name`` is empty or not a string, or is taken (unless ``replace=True``).
        InvalidTypeError
            The decorated object is not a class, or not a subclass of the registry's ``base``.
        """
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            raise InvalidInputError(f"a {self.kind} name must be a non-empty string without surrounding spaces; "
                                    f"found {name!r}.")
        if name in self._entries and not replace:
            raise InvalidInputError(
                f"{self.kind} {name!r} is already registered (by {self._entries[name].__qualname__}). "
                f"Fix: choose another name, or pass replace=True to override it on purpose."
            )

        def decorate(cls: T) -> T:
            if not isinstance(cls, type):
                raise InvalidTypeError(f"register({name!r}) decorates a class; found {type(cls).__name__}.")
            if self.base is not None and not issubclass(cls, self.base):
                raise InvalidTypeError(f"{self.kind} {name!r}: {cls.__qualname__} must subclass "
                                       f"{self.base.__qualname__}.")
            cls.name = name  # type: ignore[attr-defined]
            self._entries[name] = cls
            return cls

        return decorate

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for tests and for replacing an entry); unknown names are an error."""
        self.get(name)
        del self._entries[name]

    def get(self, name: Any) -> T:
        """The class registered under ``name``; an error listing the known names otherwise."""
        if not isinstance(name, str) or name not in self._entries:
            raise InvalidInputError(self.unknown_message(name))
        return self._entries[name]

    def unknown_message(self, name: Any) -> str:
        """``unknown <kind> 'x'; valid <kinds>: 'a', 'b'.`` plus the registry's fix, one line."""
        known = ", ".join(repr(n) for n in self._entries)
        fix = f" {self.fix}" if self.fix else ""
        return f"unknown {self.kind} {name!r}; valid {self.plural}: {known}.{fix}"

    def names(self) -> tuple[str, ...]:
        """The registered names, in registration order (for config validation, CLI help, docs)."""
        return tuple(self._entries)

    def where(self, attribute: str | None = None) -> NamesWhere:
        """A live set of the names whose class has a true ``attribute`` (e.g. ``"needs_oos"``); every
        name when ``attribute`` is None."""
        return NamesWhere(self, attribute)

    def items(self) -> tuple[tuple[str, T], ...]:
        """``(name, class)`` pairs in registration order."""
        return tuple(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"


class NamesWhere(Set):
    """The names of a registry whose class has a true attribute; computed on every use, so it
    follows entries registered later. Behaves as a read-only set of strings."""

    def __init__(self, registry: Registry, attribute: str | None) -> None:
        self._registry = registry
        self._attribute = attribute

    def _names(self) -> tuple[str, ...]:
        if self._attribute is None:
            return self._registry.names()
        return tuple(n for n, cls in self._registry.items() if getattr(cls, self._attribute, False))

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        return f"{{{', '.join(repr(n) for n in self._names())}}}"


__all__ = ["NamesWhere", "Registry"]

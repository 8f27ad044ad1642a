"""Label spellings: normalisations (NFC, case folding, whitespace) and the labels that collide under them.

Kept free of heavy imports (no ``datasets``, pyarrow or numpy) so that a command line can check a
source's labels before any machinery starts. ``influence_stage.data.labels`` applies these when it
encodes labels.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

from influence_stage.errors import InvalidInputError


LABEL_NORMALIZATIONS: tuple[str, ...] = ("nfc", "casefold", "strip")
"""Label normalisations, in the order they apply: Unicode NFC, case folding, surrounding whitespace."""


def check_normalization(normalize: Iterable[str] | None) -> tuple[str, ...]:
    """``normalize`` as a tuple in ``LABEL_NORMALIZATIONS`` order; an error naming an unknown entry."""
    if normalize is None:
        return ()
    if isinstance(normalize, str):
        normalize = (normalize,)
    given = list(normalize)
    unknown = [n for n in given if n not in LABEL_NORMALIZATIONS]
    if unknown:
        raise InvalidInputError(
            f"normalize_labels holds {unknown!r}; expected any of {list(LABEL_NORMALIZATIONS)}. "
            "Fix: list only those."
        )
    return tuple(n for n in LABEL_NORMALIZATIONS if n in given)


def normalize_label(value: str, normalize: Sequence[str]) -> str:
    """One label string under the normalisations ``normalize`` (applied in ``LABEL_NORMALIZATIONS`` order).

    Case folding can leave a string outside NFC (a folded letter may decompose), so NFC runs again
    after it when both are asked for.
    """
    out = value
    if "nfc" in normalize:
        out = unicodedata.normalize("NFC", out)
    if "casefold" in normalize:
        out = out.casefold()
        if "nfc" in normalize:
            out = unicodedata.normalize("NFC", out)
    if "strip" in normalize:
        out = out.strip()
    return out


def label_collisions(values: Iterable[str], normalize: Sequence[str] = LABEL_NORMALIZATIONS) -> list[list[str]]:
    """Groups of distinct label strings that become equal under ``normalize``, each sorted; groups sorted.

    Parameters
    ----------
    values : iterable of str
        The distinct label values (``K`` of them: the work is per class, not per row).
    normalize : sequence of str, default all of ``LABEL_NORMALIZATIONS``
    """
    groups: dict[str, list[str]] = {}
    for v in sorted(set(values)):
        groups.setdefault(normalize_label(v, normalize), []).append(v)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def shown_label(value: str, group: list[str]) -> str:
    """``repr`` of a label, or ``ascii`` when the group holds another Unicode form of it (NFC vs NFD look alike)."""
    forms = {unicodedata.normalize("NFC", v) for v in group}
    return ascii(value) if len(forms) < len(group) else repr(value)


def collision_error(label_column: str, groups: list[list[str]], normalize: tuple[str, ...]) -> InvalidInputError:
    """One line naming the colliding labels (``'cat' and 'cat '``) and the option that merges them."""
    shown = "; ".join(" and ".join(shown_label(v, g) for v in g) for g in groups[:5])
    more = f"; ... ({len(groups)} groups in all)" if len(groups) > 5 else ""
    # a normalisation is needed when, without it, some group would not collapse to one label
    needed = [n for n in LABEL_NORMALIZATIONS
              if n in normalize or any(len({normalize_label(v, [m for m in LABEL_NORMALIZATIONS if m != n])
                                            for v in g}) > 1 for g in groups)]
    return InvalidInputError(
        f"label column {label_column!r} holds labels that differ only in whitespace, case or Unicode normal form: "
        f"{shown}{more}; they would be separate classes. Expected one spelling per class. Fix: repair the labels, "
        f"or merge them with normalize_labels: {list(needed or LABEL_NORMALIZATIONS)}."
    )


def check_label_spellings(values: Iterable[str], label_column: str, normalize: Iterable[str] | None = ()) -> None:
    """Raise when distinct label strings still collide after the normalisations ``normalize``.

    Parameters
    ----------
    values : iterable of str
        The distinct label values (the work is per class, not per row).
    label_column : str
        Named in the message.
    normalize : iterable of str, optional
        The normalisations that will be applied (``CleanConfig.normalize_labels``).

    Raises
    ------
    InvalidInputError
        One line naming each colliding group (``'cat' and 'cat '``) and the option that merges them.
    """
    steps = check_normalization(normalize)
    spellings: dict[str, list[str]] = {}
    for v in set(values):
        spellings.setdefault(normalize_label(v, steps), []).append(v)
    groups = label_collisions(spellings)
    if groups:
        raise collision_error(label_column, [sorted(v for n in g for v in spellings[n]) for g in groups], steps)

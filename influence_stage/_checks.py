"""The input checks shared across layers: each returns cleaned values or raises a named error.

Arrays (features, labels, scores, masks, loss matrices), fractions, choices, counts and class
names are checked here, once, with one error class per fault: ``InvalidTypeError`` for a value of
the wrong kind, ``InvalidInputError`` for a value out of range or of the wrong shape. A check that
concerns one module's own arguments (a publish folder name, an estimator parameter) stays beside
that module. Messages say what was expected, what was found (shape, column, row, value) and how to
fix it.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from influence_stage.errors import InvalidInputError, InvalidTypeError


def check_features(X: Any, *, name: str = "X", allow_nan: bool = False) -> np.ndarray:
    """Return ``X`` as a float32 array with at least 2 dimensions and only finite values.

    Parameters
    ----------
    X : array-like, shape ``(n_samples, ...)``
        Tabular ``(n, d)`` or image ``(n, c, h, w)`` features.
    allow_nan : bool
        Accept NaN cells in a 2-D ``X`` (missing values: the tabular featurizer fills them and the
        null issue type reports their rows); infinite values are refused either way.
    """
    if hasattr(X, "detach"):  # a torch tensor
        X = X.detach().cpu().numpy()
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists and the like
        raise InvalidTypeError(f"{name} could not be turned into an array: {exc}") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InvalidTypeError(
            f"{name} must be numeric; found dtype {arr.dtype}. Featurize text or image columns first."
        )
    if arr.ndim == 1:
        raise InvalidInputError(
            f"{name} must be 2-D (n_samples, n_features) or more; found shape {arr.shape}. "
            "For a single feature use X.reshape(-1, 1)."
        )
    if arr.shape[0] == 0:
        raise InvalidInputError(f"{name} is empty (0 rows); give at least one row per class.")
    arr = arr.astype(np.float32, copy=False)
    finite = np.isfinite(arr.reshape(arr.shape[0], -1))
    if allow_nan and arr.ndim == 2:
        finite |= np.isnan(arr)
    if not finite.all():
        rows, cols = np.nonzero(~finite)
        raise InvalidInputError(
            f"{name} has {int((~finite).sum())} NaN or infinite values; first at row {int(rows[0])}, "
            f"feature {int(cols[0])} (value {arr.reshape(arr.shape[0], -1)[rows[0], cols[0]]}). "
            "Impute or drop those rows first."
        )
    return arr


def check_labels(y: Any, *, n_classes: int | None = None, name: str = "y") -> tuple[np.ndarray, int]:
    """Return integer labels ``(n,) int64`` and the number of classes ``K``.

    Labels must be integers in ``0..K-1``; with ``n_classes=None``, ``K = max(y) + 1``.
    """
    if hasattr(y, "detach"):
        y = y.detach().cpu().numpy()
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise InvalidInputError(f"{name} must be 1-D (n_samples,); found shape {arr.shape}.")
    if arr.shape[0] == 0:
        raise InvalidInputError(f"{name} is empty (0 rows).")
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InvalidInputError(
                f"{name} must hold integer class indices; row {i} has {arr[i].item()!r}. "
                "Encode labels as 0..K-1 (e.g. sklearn.preprocessing.LabelEncoder)."
            )
        arr = arr.astype(np.int64)
    elif not np.issubdtype(arr.dtype, np.integer):
        raise InvalidTypeError(
            f"{name} must hold integer class indices 0..K-1; found dtype {arr.dtype}. "
            "Encode string labels first (e.g. sklearn.preprocessing.LabelEncoder)."
        )
    arr = arr.astype(np.int64, copy=False)
    if n_classes is None:
        n_classes = max(int(arr.max()) + 1, 1)
    bad = (arr < 0) | (arr >= n_classes)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidInputError(
            f"{name} has labels outside 0..{n_classes - 1}: row {i} has {int(arr[i])} "
            f"({int(bad.sum())} rows in all). Labels must be class indices 0..K-1."
        )
    present = np.unique(arr)
    if present.size < 2:
        raise InvalidInputError(
            f"{name} has fewer than 2 classes (found {present.tolist()}); influence scores need at least 2."
        )
    return arr, int(n_classes)


def check_xy(X: Any, y: Any, *, n_classes: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Check features and labels together; return ``(X float32, y int64, K)``."""
    n_x = len(X) if hasattr(X, "__len__") else None
    n_y = len(y) if hasattr(y, "__len__") else None
    if n_x is not None and n_y is not None and n_x != n_y:
        raise InvalidInputError(f"X and y have different lengths: X has {n_x} rows, y has {n_y}.")
    y_arr, k = check_labels(y, n_classes=n_classes)
    X_arr = check_features(X)
    return X_arr, y_arr, k


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as int if it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidTypeError(f"{name} must be an integer; found {type(value).__name__} {value!r}.")
    if value < minimum:
        raise InvalidInputError(f"{name} must be >= {minimum}; found {value}.")
    return int(value)


def check_loss_matrix(L: Any, base: Any) -> tuple[np.ndarray, np.ndarray]:
    """Check a loss matrix ``(n, M)`` and base losses ``(n,)``; need ``M >= 2`` members."""
    L = np.asarray(L, dtype=np.float64)
    base = np.asarray(base, dtype=np.float64)
    if L.ndim != 2:
        raise InvalidInputError(f"loss matrix must be 2-D (n_samples, n_members); found shape {L.shape}.")
    if L.shape[1] < 2:
        raise InvalidInputError(
            f"GEX needs at least 2 members; the loss matrix has {L.shape[1]} column(s). "
            "Raise chains or cycles."
        )
    if base.shape != (L.shape[0],):
        raise InvalidInputError(
            f"base losses must have shape ({L.shape[0]},) to match the loss matrix; found {base.shape}."
        )
    return L, base


def check_scores(scores: Any, *, name: str = "scores", n: int | None = None,
                 aligned_with: str = "the rows", nonnegative: bool = True) -> np.ndarray:
    """Return scores as ``(n,) float64``: 1-D, non-empty, finite, ``>= 0`` (and ``n`` long when given).

    Every ranking score of the stage is ``>= 0`` (self-influence is a mean of squares; the rank
    scores are percentiles), so a negative value means the wrong array was passed. Rankings that
    may be negative (a baseline's score handed to pruning) pass ``nonnegative=False``.
    """
    if hasattr(scores, "detach"):  # a torch tensor
        scores = scores.detach().cpu().numpy()
    try:
        arr = np.asarray(scores)
    except Exception as exc:  # ragged lists and the like
        raise InvalidTypeError(f"{name} must be numeric; could not turn them into an array: {exc}") from exc
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise InvalidTypeError(f"{name} must be numeric (real self-influence scores); found dtype {arr.dtype}.")
    if arr.ndim != 1:
        raise InvalidInputError(
            f"{name} must be 1-D (n_samples,); found shape {arr.shape}. "
            "Pass one score per row (e.g. scores.ravel() for an (n, 1) column)."
        )
    if arr.shape[0] == 0:
        raise InvalidInputError(f"{name} is empty (0 rows); there is nothing to score.")
    if n is not None and arr.shape[0] != n:
        raise InvalidInputError(f"{name} has {arr.shape[0]} entries but {aligned_with} has {n}; give one score per "
                                "row, in the same order.")
    arr = arr.astype(np.float64, copy=False)
    checks = [(~np.isfinite(arr), "finite")]
    if nonnegative:
        checks.append((arr < 0, ">= 0 (self-influence is a mean of squares; rank scores are percentiles)"))
    for bad, what in checks:
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InvalidInputError(f"{name} must be {what}; row {i} has {float(arr[i])!r} ({int(bad.sum())} bad "
                                    "rows in all).")
    return arr


def check_fraction(value: Any, name: str, *, allow_none: bool = False, low_open: bool = False) -> float | None:
    """Return ``value`` as a float in ``[0, 1]`` (``(0, 1]`` with ``low_open``), or None if allowed."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        expected = "a number in " + ("(0, 1]" if low_open else "[0, 1]") + (" or None" if allow_none else "")
        raise InvalidTypeError(f"{name} must be {expected}; found {type(value).__name__} {value!r}.")
    v = float(value)
    ok = (0.0 < v <= 1.0) if low_open else (0.0 <= v <= 1.0)
    if not ok:
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise InvalidInputError(f"{name} must be in {interval}; found {value!r}.")
    return v


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """Return ``value`` when it is one of ``choices`` (strings)."""
    if not isinstance(value, str):
        raise InvalidTypeError(f"{name} must be one of {list(choices)}; found {type(value).__name__} {value!r}.")
    if value not in choices:
        raise InvalidInputError(f"{name} must be one of {list(choices)}; found {value!r}.")
    return value


def check_mask(mask: Any, n: int, name: str) -> np.ndarray:
    """Return a boolean mask ``(n,)``, one entry per row; accepts bool or 0/1 values (and a Series)."""
    arr = np.asarray(mask.to_numpy() if hasattr(mask, "to_numpy") else mask)
    if arr.ndim != 1:
        raise InvalidInputError(f"{name} must be 1-D, one entry per row; found shape {arr.shape}.")
    if arr.shape[0] != n:
        raise InvalidInputError(
            f"{name} must have one entry per row: expected {n}, found {arr.shape[0]}. "
            f"Align {name} with the rows (same order)."
        )
    if arr.dtype != bool:
        if not np.issubdtype(arr.dtype, np.number) or not np.isin(arr, (0, 1)).all():
            raise InvalidTypeError(f"{name} must be boolean (or 0/1); found dtype {arr.dtype}.")
        arr = arr.astype(bool)
    return arr


def check_class_names(class_names: Any) -> list[str]:
    """Return the class names as a list of ``str``; ``class_names[k]`` names label ``k``."""
    if isinstance(class_names, (str, bytes)) or not isinstance(class_names, (Sequence, np.ndarray, pd.Index)):
        raise InvalidTypeError(
            f"class_names must be a list of strings, one per class (label k is class_names[k]); "
            f"found {type(class_names).__name__}."
        )
    names = [str(c) for c in class_names]
    if not names:
        raise InvalidInputError("class_names is empty; give one name per class (label k is class_names[k]).")
    return names


def read_yaml_mapping(path: Any, *, empty_ok: bool = False) -> dict[str, Any]:
    """The mapping a YAML configuration file holds; one ``InvalidInputError`` naming the file on any problem.

    A missing or unreadable file, invalid YAML and a document that is not a mapping are refused;
    an empty file is ``{}`` when ``empty_ok`` (the defaults), else refused too.
    """
    from pathlib import Path

    import yaml

    try:
        data = yaml.safe_load(Path(path).expanduser().read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InvalidInputError(f"configuration file {path} does not exist.") from exc
    except (OSError, UnicodeDecodeError) as exc:  # a folder, no permission, not text
        raise InvalidInputError(f"configuration file {path} cannot be read ({type(exc).__name__}: {exc}). "
                                "Fix: point --config at a readable YAML file.") from exc
    except yaml.YAMLError as exc:  # ParserError, ScannerError...: one line, exit 2 in the CLI
        detail = " ".join(str(exc).split())
        raise InvalidInputError(f"configuration file {path} is not valid YAML ({detail}). Fix: correct the "
                                "YAML syntax (indentation, ':' after each key, closed brackets).") from exc
    if data is None and empty_ok:
        return {}
    if not isinstance(data, dict):
        raise InvalidInputError(f"configuration file {path} must hold a mapping; found {type(data).__name__}.")
    return data


SAFE_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
"""A safe folder name: letters, digits, ``.``, ``_``, ``-``; not starting with ``.`` or ``-``; at most 128
characters. Matched against the whole string (``re.fullmatch``): ``'abc\\n'`` is refused."""

RESERVED_NAMES = ("LATEST",)
"""Names a dataset or version may not take (``LATEST`` is the pointer file of a dataset's folder)."""


def check_safe_name(value: Any, what: str) -> str:
    """``value`` when it is a safe folder name (``SAFE_NAME``, not in ``RESERVED_NAMES``).

    Raises
    ------
    InvalidTypeError
        Not a string.
    InvalidInputError
        Not a safe folder name (control characters, spaces, slashes, a trailing newline...); ``what``
        names the argument in the message.
    """
    import re

    if not isinstance(value, str):
        raise InvalidTypeError(f"{what} must be a string; found {type(value).__name__}.")
    if re.fullmatch(SAFE_NAME, value) is None or value in RESERVED_NAMES:
        raise InvalidInputError(
            f"{what} {value!r} is not a valid folder name; expected letters, digits, '.', '_' or '-' "
            f"(not starting with '.' or '-', no spaces or control characters, at most 128 characters, not "
            f"{RESERVED_NAMES[0]!r})."
        )
    return value

"""Label-noise injection for benchmarks and tests: uniform and class-dependent (asymmetric)."""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state

from influence_stage._checks import check_labels
from influence_stage.errors import InvalidInputError


def flip_labels(y, rate: float, *, kind: str = "uniform", n_classes: int | None = None,
                random_state=None) -> tuple[np.ndarray, np.ndarray]:
    """Flip a fraction ``rate`` of labels; return ``(noisy_y (n,) int64, flipped (n,) bool)``.

    ``kind="uniform"``: exactly ``round(rate * n)`` rows, chosen at random, get a label drawn
    uniformly from the *other* classes. ``kind="asymmetric"``: class-dependent noise, exactly
    ``round(rate * n_c)`` rows of each class c move to the class ``(c + 1) % K`` (a fixed confusion
    pair per class, like 7→1 in handwriting).
    """
    y_arr, k = check_labels(y, n_classes=n_classes)
    if not 0 <= rate < 1:
        raise InvalidInputError(f"rate must be in [0, 1); found {rate}.")
    rng = check_random_state(random_state)
    noisy = y_arr.copy()
    flipped = np.zeros(len(y_arr), dtype=bool)
    if kind == "uniform":
        rows = rng.choice(len(y_arr), size=int(round(rate * len(y_arr))), replace=False)
        shift = rng.randint(1, k, size=len(rows))  # 1..K-1: never the original class
        noisy[rows] = (y_arr[rows] + shift) % k
        flipped[rows] = True
    elif kind == "asymmetric":
        for c in range(k):
            members = np.flatnonzero(y_arr == c)
            rows = rng.choice(members, size=int(round(rate * len(members))), replace=False)
            noisy[rows] = (c + 1) % k
            flipped[rows] = True
    else:
        raise InvalidInputError(f"kind must be 'uniform' or 'asymmetric'; found {kind!r}.")
    return noisy, flipped

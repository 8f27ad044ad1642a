"""GEX scores from loss matrices: pure numpy on ``(n, M)`` arrays; never sees a model.

Definitions: ``D[n, m] = L[n, m] - max(b[n], tau)``; self-influence
``s[n] = mean_m D[n, m]**2``; cross-influence ``I(i, j) = (1/M) sum_m D_train[i, m] D_test[j, m]``.
"""

from __future__ import annotations

import numpy as np

from influence_stage._checks import check_loss_matrix, check_positive_int
from influence_stage.errors import InvalidInputError

DEFAULT_TAU = 0.05
#: Rows scored at a time, so a loss matrix on disk (a memmap) is never held whole in float64.
ROW_BLOCK = 65536


def deviation(L: np.ndarray, base: np.ndarray, tau: float = DEFAULT_TAU) -> np.ndarray:
    """Loss deviation from the (floored) loss at ``θ*``.

    Parameters
    ----------
    L : ndarray, shape ``(n_samples, n_members)``
    base : ndarray, shape ``(n_samples,)``
        Losses at ``θ*``.
    tau : float
        Floor of the reference loss, so that rows already fitted to ~0 loss are not rewarded for
        tiny absolute changes.

    Returns
    -------
    D : ndarray, shape ``(n_samples, n_members)`` float64
    """
    L, base = check_loss_matrix(L, base)
    if tau < 0:
        raise InvalidInputError(f"tau must be >= 0; found {tau}.")
    return L - np.maximum(base, tau)[:, None]


def self_influence(L: np.ndarray, base: np.ndarray, tau: float = DEFAULT_TAU, *, trim: int = 0) -> np.ndarray:
    """GEX self-influence ``s[n] = mean_m (L[n, m] - max(b[n], tau))**2``, ``(n_samples,) float64``.

    Higher means more influential on itself: typically a wrong label or an atypical row.

    ``trim`` (default 0: the definition above, exactly) drops each row's ``trim`` largest squared
    deviations before averaging. A variant, not the method's definition: one member that spikes on an
    atypical clean row can dominate the mean; see benchmarks/RESULTS.md for what it changes.

    Examples
    --------
    Two rows, two members; row 1's losses swing around its loss at ``θ*``, row 0's barely move:

    >>> import numpy as np
    >>> from influence_stage.engine.influence import self_influence
    >>> L = np.array([[0.1, 0.3], [2.0, 1.0]])  # (n_samples, n_members) member losses
    >>> base = np.array([0.1, 1.5])              # (n_samples,) losses at θ*
    >>> self_influence(L, base, tau=0.05).round(6)
    array([0.02, 0.25])
    """
    L = L if isinstance(L, np.ndarray) else np.asarray(L)
    if L.ndim != 2 or L.shape[0] <= ROW_BLOCK:
        return _self_influence_block(L, base, tau, trim)
    base = np.asarray(base)
    if base.shape != (L.shape[0],):
        raise InvalidInputError(
            f"base losses must have shape ({L.shape[0]},) to match the loss matrix; found {base.shape}."
        )
    return np.concatenate([_self_influence_block(L[s:s + ROW_BLOCK], base[s:s + ROW_BLOCK], tau, trim)
                           for s in range(0, L.shape[0], ROW_BLOCK)])


def _self_influence_block(L: np.ndarray, base: np.ndarray, tau: float, trim: int) -> np.ndarray:
    D = deviation(L, base, tau)
    sq = D * D
    if trim:
        if not 0 <= trim < sq.shape[1] - 1:
            raise InvalidInputError(f"trim must be in 0..{sq.shape[1] - 2} for {sq.shape[1]} members; found {trim}.")
        sq = np.sort(sq, axis=1)[:, :sq.shape[1] - trim]
    return np.mean(sq, axis=1)


def _check_pair(D_train: np.ndarray, D_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    D_train, D_test = np.asarray(D_train, dtype=np.float64), np.asarray(D_test, dtype=np.float64)
    if D_train.ndim != 2 or D_test.ndim != 2 or D_train.shape[1] != D_test.shape[1]:
        raise InvalidInputError(
            "deviation matrices must be 2-D with the same number of members; found "
            f"{D_train.shape} and {D_test.shape}."
        )
    return D_train, D_test


def cross_influence(D_train: np.ndarray, D_test: np.ndarray) -> np.ndarray:
    """Full GEX kernel ``(n_train, n_test)``: ``D_train @ D_test.T / M``.

    ``cross_influence(D, D)`` has ``self_influence`` on its diagonal. For large sets use
    ``cross_influence_topk`` instead of holding this matrix.

    Examples
    --------
    >>> import numpy as np
    >>> from influence_stage.engine.influence import cross_influence
    >>> D = np.array([[1.0, -1.0], [0.5, 0.5]])  # (n_samples, n_members) deviations L - max(b, tau)
    >>> cross_influence(D, D)                     # its diagonal is the self-influence
    array([[1.  , 0.  ],
           [0.  , 0.25]])
    """
    D_train, D_test = _check_pair(D_train, D_test)
    return D_train @ D_test.T / D_train.shape[1]


def cross_influence_topk(D_train: np.ndarray, D_test: np.ndarray, k: int, *, largest: bool = True,
                         test_chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """For each test row, the ``k`` training rows with the largest (or smallest) cross-influence.

    The kernel is formed ``test_chunk`` test rows at a time, so memory is
    ``O(n_train * test_chunk)``.

    Returns
    -------
    indices : ndarray, shape ``(n_test, k)`` int64
        Training-row indices, ordered from most to least extreme.
    values : ndarray, shape ``(n_test, k)`` float64
        The matching kernel values.
    """
    D_train, D_test = _check_pair(D_train, D_test)
    k = check_positive_int(k, "k")
    if k > D_train.shape[0]:
        raise InvalidInputError(f"k={k} exceeds the number of training rows ({D_train.shape[0]}).")
    n_test, m = D_test.shape[0], D_train.shape[1]
    idx_out = np.empty((n_test, k), dtype=np.int64)
    val_out = np.empty((n_test, k), dtype=np.float64)
    sign = 1.0 if largest else -1.0
    for s in range(0, n_test, test_chunk):
        block = sign * (D_test[s:s + test_chunk] @ D_train.T) / m  # (chunk, n_train)
        part = np.argpartition(-block, k - 1, axis=1)[:, :k]
        vals = np.take_along_axis(block, part, axis=1)
        order = np.argsort(-vals, axis=1, kind="stable")
        idx_out[s:s + test_chunk] = np.take_along_axis(part, order, axis=1)
        val_out[s:s + test_chunk] = sign * np.take_along_axis(vals, order, axis=1)
    return idx_out, val_out


def mean_test_loss_influence(D_train: np.ndarray, D_test: np.ndarray) -> np.ndarray:
    """Influence of each training row on the mean test loss, ``(n_train,) float64``.

    Equals the row mean of ``cross_influence(D_train, D_test)`` without forming it:
    ``D_train @ mean_j D_test[j] / M``.
    """
    D_train, D_test = _check_pair(D_train, D_test)
    return D_train @ D_test.mean(axis=0) / D_train.shape[1]

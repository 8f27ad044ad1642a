"""Which flagged rows matter: GEX cross-influence of each training row on a held-out loss.

Datalab says a row is an outlier, a duplicate or mislabeled; it does not say whether the model is
worse for having trained on it. GEX does: with the deviation matrices ``D = L - max(b, tau)`` the
engine already computes (``influence_stage.engine.influence.deviation``), the influence of
training row ``i`` on the mean loss of reference rows ``R`` is
``I(i) = (1/M) sum_m D_train[i, m] * mean_{j in R} D_ref[j, m]``
(``mean_test_loss_influence``). A positive ``I(i)`` means the
members that moved row ``i``'s loss moved the reference loss the same way: row ``i`` is a proponent
of the reference rows. Its **harm** is ``-I(i)``: positive harm = an opponent, a row whose removal is
expected to lower the reference loss.

Members drift as well as spread: continued SGD moves the losses one way on average, so ``mean_m D``
is not 0 and the plain product carries a common term ``mean_m D_train[i] * mean_m D_ref`` that has
the sign of the reference's drift and the size of row ``i``'s own deviation (it follows
self-influence, not harm). ``centre=True`` removes it: the covariance over members
``(1/M) sum_m (D_train[i, m] - mean_m D_train[i]) * mean_j D_ref[j, m]``, what a row shares with the
reference beyond the drift (``benchmarks/RESULTS.md``, section harm, measures both).

The reference is a held-out set when the run has one (its deviation matrix, computed from the same
members), and otherwise the training rows no issue type flagged (the rows the stage trusts), with
the flagged rows left out so that no row is its own reference.

Measured (``benchmarks/harm.py``, digits and a synthetic set, 20% flipped, 3 seeds): among the rows
flagged as label issues, dropping the most harmful ones never helped a retrained model more than
dropping the same number by the label-issue score (worse in 19 of 56 comparisons, within the seed
spread in the rest). The plain product ranks the truly flipped flagged rows *last* (AUROC 0.22-0.37:
their large deviations meet the reference's drift), the centred one near chance (0.45-0.56), a
trusted (clean) held-out set changes neither. Harm says what a row does to the reference loss under
the members' perturbations; it is reported beside the issue flags, not used to choose the rows a
policy acts on.

Pure numpy on ``(n, M)`` matrices; never sees a model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from influence_stage._checks import check_mask
from influence_stage.engine.influence import mean_test_loss_influence
from influence_stage.errors import InvalidInputError


def harm_scores(D_train: Any, *, D_reference: Any = None, reference: Any = None, centre: bool = False) -> np.ndarray:
    """``(n_train,) float64`` harm ``-mean_test_loss_influence(D_train, D_ref)``; higher = more harmful.

    Parameters
    ----------
    D_train : array, shape ``(n_train, M)``
        Deviations of the training rows.
    D_reference : array, shape ``(n_ref, M)``, optional
        Deviations of held-out reference rows under the same members.
    reference : ``(n_train,) bool``, optional
        Without ``D_reference``: the training rows that form the reference (default: all of them).
    centre : bool
        Centre each training row's deviations over the members first (the covariance; see the module
        docstring). Default False: the plain GEX product.

    Raises
    ------
    InvalidInputError
        Both or an empty reference; matrices that do not share the members.
    """
    D_train = np.asarray(D_train, dtype=np.float64)
    if D_train.ndim != 2:
        raise InvalidInputError(f"D_train must be 2-D (n_train, n_members); found shape {D_train.shape}.")
    if D_reference is not None and reference is not None:
        raise InvalidInputError("pass either D_reference (held-out rows) or reference (a mask of training rows), "
                                "not both.")
    if D_reference is None:
        mask = np.ones(D_train.shape[0], dtype=bool) if reference is None else check_mask(
            reference, D_train.shape[0], "reference")
        if not mask.any():
            raise InvalidInputError(
                "the reference is empty: every training row is flagged, so none is left to measure harm on. "
                "Fix: pass D_reference (deviations of held-out rows) or a reference mask with at least one row.")
        D_reference = D_train[mask]
    if centre:
        D_train = D_train - D_train.mean(axis=1, keepdims=True)
    return -mean_test_loss_influence(D_train, D_reference)


def rank_by_harm(D_train: Any, flagged: Any, *, D_reference: Any = None, centre: bool = False) -> pd.DataFrame:
    """Harm of every row and the rank of the flagged ones.

    Parameters
    ----------
    D_train : array, shape ``(n, M)``
        Deviations of the training rows.
    flagged : ``(n,) bool``
        Rows some issue type flagged (the label issue included).
    D_reference : array, shape ``(n_ref, M)``, optional
        Deviations of held-out rows; default: the unflagged training rows.
    centre : bool
        See ``harm_scores``.

    Returns
    -------
    DataFrame, ``n`` rows in input order:
        ``harm`` ``float64`` (every row); ``harm_rank`` ``int64``, 1 = the most harmful flagged row,
        0 for unflagged rows.
    """
    D_train = np.asarray(D_train, dtype=np.float64)
    if D_train.ndim != 2:
        raise InvalidInputError(f"D_train must be 2-D (n_train, n_members); found shape {D_train.shape}.")
    flagged = check_mask(flagged, D_train.shape[0], "flagged")
    harm = harm_scores(D_train, D_reference=D_reference, reference=None if D_reference is not None else ~flagged,
                       centre=centre)
    rank = np.zeros(harm.size, dtype=np.int64)
    idx = np.flatnonzero(flagged)
    order = idx[np.argsort(-harm[idx], kind="stable")]
    rank[order] = np.arange(1, order.size + 1)
    return pd.DataFrame({"harm": harm, "harm_rank": rank})


__all__ = ["harm_scores", "rank_by_harm"]

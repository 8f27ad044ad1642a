"""The ranking a run reports as ``score``: the exact GEX score or a rank combination, on arrays only.

Every score is ``(n_samples,) float64``, finite, ``>= 0``, higher = more suspicious. Names
(``SCORES``):

- ``"gex"``: the exact GEX self-influence ``mean_m D[n, m]**2`` (``influence.self_influence``).
- ``"gex-trimmed"``: the same with each row's ``trim`` largest squared deviations left out.
- ``"member-loss"``: the members' mean loss on the given label, ``mean_m L[n, m]``.
- ``"gex+oos"``: the mean of two percentile ranks, the trimmed GEX score and the cross-fitted
  out-of-sample loss (the yardstick the automatic scale already trains).
- ``"gex+oos+aum"`` (the default): the mean of three percentile ranks, the two above and the
  negated in-sample margin of θ*'s own training, averaged over its epochs (area under the margin,
  recorded for free while the stage trains θ*).

Why a rank mean is the default: the three signals fail on different rows. GEX ranks rows θ* never
fitted low (their loss is high in every member and barely moves); the out-of-sample loss misses
rows a half-data model is unsure about anyway; training margins flag rows that are only hard. A
mean of the three needs no per-dataset choice (the detection benchmark compares it with each
component and with cleanlab: benchmarks/RESULTS.md). Ranks make
the combination free of the components' scales: any increasing transform of a component leaves
the score unchanged. The exact GEX score is always computed and published next to it
(``gex_influence``).

When θ* was not trained by the stage (a loaded checkpoint or module), no training margins exist and
``"gex+oos+aum"`` falls back to ``"gex+oos"``, with a warning; the name actually used is recorded.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from scipy.stats import rankdata

from influence_stage.errors import InvalidInputError
from influence_stage.engine.influence import self_influence

logger = logging.getLogger(__name__)

#: Ranking scores accepted as ``score=``.
SCORES: tuple[str, ...] = ("gex", "gex-trimmed", "member-loss", "gex+oos", "gex+oos+aum")
#: The default ranking.
DEFAULT_SCORE = "gex+oos+aum"
#: Scores that need the cross-fitted out-of-sample probabilities.
NEEDS_OOS: frozenset[str] = frozenset({"gex+oos", "gex+oos+aum"})
#: Scores that are means of percentile ranks (spread evenly over (0, 1]: no histogram valley to threshold).
RANK_SCORES: frozenset[str] = frozenset({"gex+oos", "gex+oos+aum"})
#: Scores on the GEX self-influence scale (a pile of rows near ``tau**2``; see decisions.thresholds.choose_threshold).
GEX_SCALE: frozenset[str] = frozenset({"gex", "gex-trimmed"})


def check_score_name(name: Any) -> str:
    """Return ``name`` if it is a known score; else an error listing the valid ones."""
    if not isinstance(name, str) or name not in SCORES:
        raise InvalidInputError(f"unknown score {name!r}; valid scores: {', '.join(repr(s) for s in SCORES)}.")
    return name


def percentile_rank(x: np.ndarray) -> np.ndarray:
    """Ranks of ``x`` divided by its length, ``(n,) float64`` in ``(0, 1]``; ties share their mean rank."""
    x = np.asarray(x, dtype=np.float64)
    return rankdata(x, method="average") / x.size


def mean_rank(*components: np.ndarray) -> np.ndarray:
    """Mean of the percentile ranks of ``components`` (each ``(n,)``, higher = more suspicious)."""
    if not components:
        raise InvalidInputError("mean_rank needs at least one component.")
    return np.mean([percentile_rank(c) for c in components], axis=0)


def oos_loss(oos_proba: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cross-entropy of the given label under out-of-sample probabilities, ``(n,) float64``."""
    p = np.asarray(oos_proba, dtype=np.float64)[np.arange(len(labels)), np.asarray(labels)]
    return -np.log(np.maximum(p, 1e-12))


def resolve_score(name: str, *, has_oos: bool, has_margin: bool) -> str:
    """The score that will actually be computed for ``name``, given which inputs exist.

    ``"gex+oos+aum"`` without training margins becomes ``"gex+oos"`` (logged as a warning); a score
    that needs out-of-sample probabilities without them is an error.
    """
    name = check_score_name(name)
    if name == "gex+oos+aum" and not has_margin:
        logger.warning("score 'gex+oos+aum': θ* was not trained by the stage on these rows, so there are no "
                       "training margins; ranking by 'gex+oos' instead (recorded as the run's score).")
        name = "gex+oos"
    if name in NEEDS_OOS and not has_oos:
        raise InvalidInputError(
            f"score {name!r} needs out-of-sample probabilities, which this model cannot provide (it cannot "
            "train a fresh copy). Fix: use score='gex-trimmed' or score='gex'."
        )
    return name


def ranking_score(name: str, L: np.ndarray, base: np.ndarray, *, tau: float, trim: int,
                  oos_loss: np.ndarray | None = None, train_margin: np.ndarray | None = None) -> np.ndarray:
    """The score ``name`` (see the module docstring), ``(n_samples,) float64``, higher = more suspicious.

    Parameters
    ----------
    name : one of ``SCORES`` (already resolved: see :func:`resolve_score`)
    L : ``(n_samples, n_members)`` member losses on the given labels
    base : ``(n_samples,)`` losses at θ*
    tau, trim : GEX settings (``influence.self_influence``); ``trim`` is used by the trimmed and rank scores,
        at most ``n_members - 2`` (so at least two members are averaged)
    oos_loss : ``(n_samples,)`` cross-fitted out-of-sample loss, for the ``+oos`` scores
    train_margin : ``(n_samples,)`` θ*'s in-sample margin averaged over its epochs, for ``+aum``
    """
    name = check_score_name(name)
    if name == "gex":
        return self_influence(L, base, tau=tau)
    trimmed = self_influence(L, base, tau=tau, trim=min(trim, max(np.shape(L)[1] - 2, 0)))
    if name == "gex-trimmed":
        return trimmed
    if name == "member-loss":
        return np.asarray(L).mean(axis=1, dtype=np.float64)
    if oos_loss is None or len(oos_loss) != len(trimmed):
        raise InvalidInputError(f"score {name!r} needs one out-of-sample loss per row.")
    if name == "gex+oos":
        return mean_rank(trimmed, oos_loss)
    if train_margin is None or len(train_margin) != len(trimmed):
        raise InvalidInputError(f"score {name!r} needs one training margin per row.")
    return mean_rank(trimmed, oos_loss, -np.asarray(train_margin, dtype=np.float64))


def label_quality(score: np.ndarray) -> np.ndarray:
    """Label quality in ``[0, 1]``, higher = cleaner: one minus the row's rank in ``score``.

    ``1 - (rank - 1) / (n - 1)`` with ties sharing their mean rank: the most suspicious row gets 0,
    the least 1, and it is non-increasing in ``score`` (cleanlab's convention: sort ascending to
    review the worst labels first). A single row gets 1.
    """
    s = np.asarray(score, dtype=np.float64)
    if s.size <= 1:
        return np.ones(s.size)
    return 1.0 - (rankdata(s, method="average") - 1.0) / (s.size - 1)


__all__ = ["DEFAULT_SCORE", "GEX_SCALE", "NEEDS_OOS", "RANK_SCORES", "SCORES", "check_score_name", "label_quality", "mean_rank",
           "oos_loss", "percentile_rank", "ranking_score", "resolve_score"]

"""The ranking a run reports as ``score``: the exact GEX score or a rank combination, on arrays only.

Every score is ``(n_samples,) float64``, finite, ``>= 0``, higher = more suspicious. Names
(``SCORES``):

- ``"gex"``: the exact GEX self-influence ``mean_m D[n, m]**2`` (``influence.self_influence``).
- ``"gex-trimmed"``: the same with each row's ``trim`` largest squared deviations left out.
- ``"member-loss"``: the members' mean loss on the given label, ``mean_m L[n, m]``.
- ``"gex+oos"``: the mean of two percentile ranks, the trimmed GEX score and the cross-fitted
  out-of-sample loss (the yardstick the automatic scale already trains).
- ``"gex+aum"``: the mean of two percentile ranks, the trimmed GEX score and the negated training
  margins (no cross-fitted model needed).
- ``"gex+oos+aum"`` (the default): the mean of three percentile ranks, the two above and the
  negated in-sample margin of θ*'s own training, averaged over its epochs (area under the margin,
  recorded for free while the stage trains θ*). Image rows under a reliable cross-fitted model rank
  by ``"oos+aum"`` instead (``GEXConfig.image_gex_rank``, applied in ``engine.gex``).

Why a rank mean is the default: the three signals fail on different rows. GEX ranks rows θ* never
fitted low (their loss is high in every member and barely moves); the out-of-sample loss misses
rows a half-data model is unsure about anyway; training margins flag rows that are only hard. A
mean of the three needs no per-dataset choice (the detection benchmark compares it with each
component and with cleanlab: benchmarks/RESULTS.md). Ranks make
the combination free of the components' scales: any increasing transform of a component leaves
the score unchanged. The exact GEX score is always computed and published next to it
(``gex_influence``).

Evidence first (``evidence_first``): under a reliable cross-fitted model, the rank scores put the
rows whose suggestion probabilities (the mean of the cross-fitted and the members' probabilities)
favour their given label after every row whose probabilities favour another label, each group in
its rank order. A row that the models agree belongs to its label is a weaker candidate than any
row they place in another class; cleanlab's ``find_label_issues`` drops the former from its issues
outright. Keeping them ranked, below, leaves the threshold a cut on the published score and the
estimate's count unchanged (measured against the plain rank mean and against unflagging them in
``benchmarks/flag_restrictions.py`` and ``flag_restrictions_images.py``). Under a weak model the
suggestion probabilities are the members' alone, which remember the given labels, and the rank
mean is kept as it is.

Each score is one class in ``SCORE_REGISTRY`` (``docs/extending.md`` adds one). When θ* was not trained by the stage (a loaded checkpoint or module), no training margins exist and
``"gex+oos+aum"`` falls back to ``"gex+oos"``, with a warning; the name actually used is recorded.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from influence_stage.errors import InvalidInputError
from influence_stage.engine.influence import self_influence
from influence_stage.registry import Registry

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class ScoreInputs:
    """What a score may read: the loss matrix and the evidence the run already has.

    Attributes
    ----------
    L : ``(n_samples, n_members)`` member losses on the given labels
    base : ``(n_samples,)`` losses at θ*
    tau, trim : GEX settings (``influence.self_influence``)
    oos_loss : ``(n_samples,)`` cross-fitted out-of-sample loss, or None
    train_margin : ``(n_samples,)`` θ*'s in-sample margin averaged over its epochs, or None
    """

    L: np.ndarray
    base: np.ndarray
    tau: float
    trim: int
    oos_loss: np.ndarray | None = None
    train_margin: np.ndarray | None = None

    def gex(self) -> np.ndarray:
        """The exact GEX self-influence ``mean_m D[n, m]**2``, ``(n_samples,)``."""
        return self_influence(self.L, self.base, tau=self.tau)

    def gex_trimmed(self) -> np.ndarray:
        """GEX with each row's ``trim`` largest squared deviations left out (at least two members kept)."""
        return self_influence(self.L, self.base, tau=self.tau, trim=min(self.trim, max(np.shape(self.L)[1] - 2, 0)))


class Score(ABC):
    """One ranking score: a class registered in ``SCORE_REGISTRY``.

    A subclass sets the class attributes that describe what it needs and how it is scaled, and
    implements ``compute``. The stage calls ``compute`` once per run; the result must be
    ``(n_samples,) float64``, finite, ``>= 0``, higher = more suspicious.

    Attributes
    ----------
    name : str
        Set by the registry.
    help : str
        One line for the docs and the CLI help.
    needs_oos : bool
        Needs the cross-fitted out-of-sample losses (``ScoreInputs.oos_loss``).
    needs_margin : bool
        Needs θ*'s training margins (``ScoreInputs.train_margin``).
    fallback : str or None
        The score used instead, with a warning, when the training margins do not exist.
    rank_based : bool
        A mean of percentile ranks, spread evenly over (0, 1]: no histogram valley for ``otsu`` or ``gmm``.
    gex_scale : bool
        On the GEX self-influence scale (a pile of rows near ``tau**2``; thresholds get a floor above it).
    without_gex : str or None
        The score used instead when the GEX score reads inverted against the cross-fitted model
        (``engine.gex.GEXAgreement``): the same ranks without the GEX rank.
    """

    name: ClassVar[str] = ""
    help: ClassVar[str] = ""
    needs_oos: ClassVar[bool] = False
    needs_margin: ClassVar[bool] = False
    fallback: ClassVar[str | None] = None
    rank_based: ClassVar[bool] = False
    gex_scale: ClassVar[bool] = False
    without_gex: ClassVar[str | None] = None

    @abstractmethod
    def compute(self, x: ScoreInputs) -> np.ndarray:
        """The score of every row, ``(n_samples,) float64``, higher = more suspicious."""


#: Every ranking score accepted as ``score=``, one class each.
SCORE_REGISTRY: Registry[type[Score]] = Registry("score", base=Score)


@SCORE_REGISTRY.register("gex")
class GEXScore(Score):
    help = "the exact GEX self-influence mean_m D[n, m]**2"
    gex_scale = True

    def compute(self, x: ScoreInputs) -> np.ndarray:
        return x.gex()


@SCORE_REGISTRY.register("gex-trimmed")
class GEXTrimmedScore(Score):
    help = "GEX with each row's trim largest squared deviations left out"
    gex_scale = True

    def compute(self, x: ScoreInputs) -> np.ndarray:
        return x.gex_trimmed()


@SCORE_REGISTRY.register("member-loss")
class MemberLossScore(Score):
    help = "the members' mean loss on the given label"

    def compute(self, x: ScoreInputs) -> np.ndarray:
        return np.asarray(x.L).mean(axis=1, dtype=np.float64)


@SCORE_REGISTRY.register("gex+oos")
class GEXOOSScore(Score):
    help = "mean percentile rank of the trimmed GEX score and the cross-fitted out-of-sample loss"
    needs_oos = True
    rank_based = True
    without_gex = "oos"

    def compute(self, x: ScoreInputs) -> np.ndarray:
        return mean_rank(x.gex_trimmed(), x.oos_loss)


@SCORE_REGISTRY.register("gex+oos+aum")
class GEXOOSAUMScore(Score):
    help = "(default) the two ranks above and the negated training margin (area under the margin)"
    needs_oos = True
    needs_margin = True
    fallback = "gex+oos"
    rank_based = True
    without_gex = "oos+aum"

    def compute(self, x: ScoreInputs) -> np.ndarray:
        return mean_rank(x.gex_trimmed(), x.oos_loss, -np.asarray(x.train_margin, dtype=np.float64))


@SCORE_REGISTRY.register("gex+aum")
class GEXAUMScore(Score):
    help = "mean percentile rank of the trimmed GEX score and the negated training margin"
    needs_margin = True
    fallback = "gex-trimmed"
    rank_based = True

    def compute(self, x: ScoreInputs) -> np.ndarray:
        return mean_rank(x.gex_trimmed(), -np.asarray(x.train_margin, dtype=np.float64))


@SCORE_REGISTRY.register("oos")
class OOSScore(Score):
    help = "the percentile rank of the cross-fitted out-of-sample loss (what 'gex+oos' ranks by when GEX reads inverted)"
    needs_oos = True
    rank_based = True

    def compute(self, x: ScoreInputs) -> np.ndarray:
        return mean_rank(x.oos_loss)


@SCORE_REGISTRY.register("oos+aum")
class OOSAUMScore(Score):
    help = ("mean percentile rank of the out-of-sample loss and the negated training margin (what the default "
            "ranks by when GEX reads inverted)")
    needs_oos = True
    needs_margin = True
    fallback = "oos"
    rank_based = True

    def compute(self, x: ScoreInputs) -> np.ndarray:
        return mean_rank(x.oos_loss, -np.asarray(x.train_margin, dtype=np.float64))


#: Ranking scores accepted as ``score=`` (a live view of ``SCORE_REGISTRY``'s names).
SCORES = SCORE_REGISTRY.where()
#: The default ranking.
DEFAULT_SCORE = "gex+oos+aum"
#: Scores that need the cross-fitted out-of-sample probabilities.
NEEDS_OOS = SCORE_REGISTRY.where("needs_oos")
#: Scores that are means of percentile ranks (spread evenly over (0, 1]: no histogram valley to threshold).
RANK_SCORES = SCORE_REGISTRY.where("rank_based")
#: Scores on the GEX self-influence scale (a pile of rows near ``tau**2``; see decisions.thresholds.choose_threshold).
GEX_SCALE = SCORE_REGISTRY.where("gex_scale")


def score_help() -> str:
    """The registered scores in one line, the default first, for the CLI's help."""
    names = [DEFAULT_SCORE] + [n for n in SCORE_REGISTRY.names() if n != DEFAULT_SCORE]
    return f"ranking: {names[0]} (default), " + (", ".join(names[1:-1]) + " or " + names[-1] if len(names) > 2
                                                 else ", ".join(names[1:]))


def check_score_name(name: Any) -> str:
    """Return ``name`` if it is a registered score; else an error listing the registry's names."""
    SCORE_REGISTRY.get(name)
    return name


def percentile_rank(x: np.ndarray) -> np.ndarray:
    """Ranks of ``x`` divided by its length, ``(n,) float64`` in ``(0, 1]``; ties share their mean rank."""
    from scipy.stats import rankdata  # imported on use: scipy.stats is slow to import

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

    A score that needs training margins without them becomes its ``fallback`` (``"gex+oos+aum"``
    becomes ``"gex+oos"``, logged as a warning); a score that needs out-of-sample probabilities
    without them is an error.
    """
    cls = SCORE_REGISTRY.get(name)
    if cls.needs_margin and not has_margin and cls.fallback is not None:
        logger.warning("score %r: θ* was not trained by the stage on these rows, so there are no "
                       "training margins; ranking by %r instead (recorded as the run's score).", name, cls.fallback)
        name, cls = cls.fallback, SCORE_REGISTRY.get(cls.fallback)
    if cls.needs_oos and not has_oos:
        others = " or ".join(f"score={n!r}" for n, c in SCORE_REGISTRY.items()
                             if c.gex_scale and not c.needs_oos and not c.needs_margin)
        raise InvalidInputError(
            f"score {name!r} needs out-of-sample probabilities, which this model cannot provide (it cannot "
            f"train a fresh copy). Fix: use {others}."
        )
    return name


def ranking_score(name: str, L: np.ndarray, base: np.ndarray, *, tau: float, trim: int,
                  oos_loss: np.ndarray | None = None, train_margin: np.ndarray | None = None) -> np.ndarray:
    """The score ``name`` (see the module docstring), ``(n_samples,) float64``, higher = more suspicious.

    Parameters
    ----------
    name : a name in ``SCORE_REGISTRY`` (already resolved: see ``resolve_score``)
    L : ``(n_samples, n_members)`` member losses on the given labels
    base : ``(n_samples,)`` losses at θ*
    tau, trim : GEX settings (``influence.self_influence``); ``trim`` is used by the trimmed and rank scores,
        at most ``n_members - 2`` (so at least two members are averaged)
    oos_loss : ``(n_samples,)`` cross-fitted out-of-sample loss, for the ``+oos`` scores
    train_margin : ``(n_samples,)`` θ*'s in-sample margin averaged over its epochs, for ``+aum``
    """
    cls = SCORE_REGISTRY.get(name)
    n = np.shape(L)[0]
    if cls.needs_oos and (oos_loss is None or len(oos_loss) != n):
        raise InvalidInputError(f"score {name!r} needs one out-of-sample loss per row.")
    if cls.needs_margin and (train_margin is None or len(train_margin) != n):
        raise InvalidInputError(f"score {name!r} needs one training margin per row.")
    return cls().compute(ScoreInputs(L=L, base=base, tau=tau, trim=trim, oos_loss=oos_loss, train_margin=train_margin))


def evidence_first(score: np.ndarray, labels: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """``score`` with the rows whose ``proba`` favours their given label ranked after all others.

    ``(score + [argmax proba != label]) / 2``, ``(n_samples,) float64``: a rank score in ``(0, 1]``
    keeps its order within each group, rows favouring another label land in ``(0.5, 1]`` and the
    others in ``(0, 0.5]``. ``labels`` ``(n,)`` int codes, ``proba`` ``(n, K)`` the suggestion
    probabilities (``decisions.suggest.suggestion_proba``).
    """
    s = np.asarray(score, dtype=np.float64)
    P = np.asarray(proba)
    y = np.asarray(labels)
    if P.ndim != 2 or P.shape[0] != s.size or y.shape != s.shape:
        raise InvalidInputError(f"evidence_first needs one label and one probability row per score; found scores "
                                f"{s.shape}, labels {y.shape} and proba {P.shape}.")
    if s.size and (s.min() <= 0 or s.max() > 1):
        raise InvalidInputError("evidence_first needs a rank score in (0, 1].")
    return (s + (P.argmax(axis=1) != y)) / 2.0


def label_quality(score: np.ndarray) -> np.ndarray:
    """Label quality in ``[0, 1]``, higher = cleaner: one minus the row's rank in ``score``.

    ``1 - (rank - 1) / (n - 1)`` with ties sharing their mean rank: the most suspicious row gets 0,
    the least 1, and it is non-increasing in ``score`` (cleanlab's convention: sort ascending to
    review the worst labels first). A single row gets 1.
    """
    from scipy.stats import rankdata

    s = np.asarray(score, dtype=np.float64)
    if s.size <= 1:
        return np.ones(s.size)
    return 1.0 - (rankdata(s, method="average") - 1.0) / (s.size - 1)


__all__ = ["DEFAULT_SCORE", "GEX_SCALE", "NEEDS_OOS", "RANK_SCORES", "SCORES", "SCORE_REGISTRY", "Score", "ScoreInputs",
           "check_score_name", "evidence_first", "label_quality", "score_help", "mean_rank",
           "oos_loss", "percentile_rank", "ranking_score", "resolve_score"]

"""Which rows are flagged: the threshold methods (estimate, otsu, gmm, quantile, budget, value).

Thresholds work on **log scores**. Self-influence is a mean of squares, so scores span orders of
magnitude and the clean and suspicious groups are roughly log-normal. Scores may be exactly zero,
so the log uses a floor tied to the score scale: ``log(max(score, eps))`` with ``eps`` the 1st
percentile of the positive scores (1.0 when no score is positive). Zeros then sit at the bottom of
the observed low tail instead of forming a detached mode that Otsu or a mixture would split off,
and scores above the floor are not distorted. Multiplying all scores by a constant multiplies every
threshold value by the same constant.

Each method is one class in ``THRESHOLD_REGISTRY`` (``docs/extending.md`` adds one); the parser,
the error messages and the config read the registry's names.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import logging
import math
import numbers
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from influence_stage._checks import check_scores
from influence_stage.decisions.cuts import (
    LOG_FLOOR_PERCENTILE,
    OTSU_BINS,
    budget_cut,
    cut_between,
    gmm_posterior,
    log_scores,
    logistic_p,
    otsu_cut,
    robust_scale,
)
from influence_stage.errors import InvalidInputError, InvalidTypeError
from influence_stage.registry import Registry

logger = logging.getLogger(__name__)

#: The default threshold: flag the estimated number of label issues (see influence_stage.decisions.estimate).
DEFAULT_THRESHOLD = "estimate"


@dataclass(frozen=True)
class ThresholdSpec:
    """A parsed threshold specification.

    Attributes
    ----------
    method : str
        The thresholding method, a name in ``THRESHOLD_REGISTRY``.
    param : float or None
        ``q`` for ``quantile``, ``f`` for ``budget``, the score value for ``value``; None otherwise.
    """

    method: str
    param: float | None = None


@dataclass(frozen=True, eq=False)
class ThresholdResult:
    """Which rows a threshold flags, and a probability-like score per row.

    Attributes
    ----------
    value : float
        The score cut-off. Rows scoring above ``value`` are flagged and rows scoring below it are
        not. For every method but ``budget``, ``is_issue == (scores > value)`` exactly; for
        ``budget`` rows tied at ``value`` are flagged in row order until the budget is met.
        For ``otsu`` and ``gmm`` the value is the log-space midpoint between the largest unflagged
        and the smallest flagged score (the largest score when nothing is flagged).
    is_issue : ndarray, shape ``(n,)`` bool
        Flagged rows. Read-only.
    p_issue : ndarray, shape ``(n,)`` float64 in ``[0, 1]``
        Non-decreasing in the score; ``p_issue > 0.5`` implies ``is_issue`` and ``is_issue``
        implies ``p_issue >= 0.5``. For ``gmm`` it is the posterior of the higher-mean component
        (made monotone in the tails, see ``choose_threshold``) and ``is_issue == p_issue > 0.5``.
        For the other methods it is a logistic of the log score centred at the threshold:
        ``p = 1 / (1 + exp(-(log(max(s, eps)) - log(max(value, eps))) / scale))`` with ``scale``
        the robust spread of the log scores (IQR / 1.349; the standard deviation if the IQR is 0;
        1.0 if both are 0). Read-only.
    method : str
        A name in ``THRESHOLD_REGISTRY``.
    n_estimated : int or None
        ``estimate`` only: the estimated number of mislabeled rows it flagged (before ties).
    """

    value: float
    is_issue: np.ndarray
    p_issue: np.ndarray
    method: str
    n_estimated: int | None = None

    @property
    def estimated_noise_rate(self) -> float | None:
        """``n_estimated / n`` (``estimate`` only), the share of rows estimated to be mislabeled."""
        return None if self.n_estimated is None else self.n_estimated / max(self.is_issue.size, 1)

    @property
    def n_flagged(self) -> int:
        """Number of flagged rows."""
        return int(self.is_issue.sum())


def threshold_help() -> str:
    """Every registered threshold form in one line, for the CLI's help: ``estimate, otsu, ..., or a number >= 0``."""
    return _spec_help()[len("Use "):-1]


def _spec_help() -> str:
    """``Use 'estimate' (...), 'otsu', ..., or a number >= 0 (a score value).``: every registered form."""
    forms = [cls.form or repr(name) for name, cls in THRESHOLD_REGISTRY.items()]
    return "Use " + (", ".join(forms[:-1]) + ", or " + forms[-1] if len(forms) > 1 else forms[0]) + "."


def parse_threshold(spec: Any) -> ThresholdSpec:
    """Parse a threshold specification.

    Parameters
    ----------
    spec : str or float
        A name in ``THRESHOLD_REGISTRY`` that takes no parameter (``"estimate"``, ``"otsu"``,
        ``"gmm"``), ``"name:x"`` for one that does (``"quantile:q"`` with ``0 <= q <= 1``,
        ``"budget:f"`` with ``0 <= f <= 1``), or a number ``>= 0`` (a float or a numeric string)
        used as a score value. Names are case-insensitive and surrounding whitespace is ignored.

    Returns
    -------
    ThresholdSpec

    Raises
    ------
    InvalidTypeError
        ``spec`` is neither a string nor a real number.
    InvalidInputError
        ``spec`` is malformed or its parameter is out of range; the message lists every accepted form.
    """
    if isinstance(spec, bool) or not isinstance(spec, (str, numbers.Real)):
        raise InvalidTypeError(
            f"threshold must be a string or a number; found {type(spec).__name__} {spec!r}. {_spec_help()}"
        )
    if isinstance(spec, numbers.Real):
        return ThresholdSpec("value", _check_value_threshold(float(spec), spec))
    text = spec.strip().lower()
    if ":" in text:
        name, _, arg = (part.strip() for part in text.partition(":"))
        cls = THRESHOLD_REGISTRY.get(name) if name in THRESHOLD_REGISTRY else None
        if cls is None or cls.param is None:
            raise InvalidInputError(f"unknown threshold method {name!r} in {spec!r}. {_spec_help()}")
        return ThresholdSpec(name, cls.parse_param(arg, spec))
    if text in THRESHOLD_REGISTRY:
        cls = THRESHOLD_REGISTRY.get(text)
        if cls.param is None:
            return ThresholdSpec(text)
        if not cls.bare_number:
            raise InvalidInputError(f"threshold {spec!r} needs a parameter: {cls.form}. {_spec_help()}")
    try:
        x = float(text)
    except ValueError:
        raise InvalidInputError(f"unknown threshold {spec!r}. {_spec_help()}") from None
    return ThresholdSpec("value", _check_value_threshold(x, spec))


def _check_value_threshold(x: float, spec: Any) -> float:
    if not math.isfinite(x) or x < 0:
        raise InvalidInputError(
            f"a score-value threshold must be a finite number >= 0 (scores are non-negative); "
            f"found {spec!r}. {_spec_help()}"
        )
    return x


@dataclass(frozen=True, eq=False)
class ThresholdInputs:
    """What a threshold method reads.

    Attributes
    ----------
    scores : ``(n,) float64`` the checked scores, finite and ``>= 0``
    log_scores : ``(n,) float64`` ``log(max(scores, eps))``
    eps : float, the log floor (see the module docstring)
    fit : ``(n,) bool`` rows above the score floor (every row when fewer than 10 are): the rows
        ``otsu`` and ``gmm`` fit on
    param : float or None, the parsed parameter (``quantile:q``'s ``q``, ...)
    random_state : the seed of a randomised method
    n_estimated : int or None, the estimated number of mislabeled rows
    """

    scores: np.ndarray
    log_scores: np.ndarray
    eps: float
    fit: np.ndarray
    param: float | None
    random_state: Any
    n_estimated: int | None

    def logistic(self, value: float) -> np.ndarray:
        """The default ``p_issue``: a logistic of the log score centred at ``value`` (see ThresholdResult)."""
        return logistic_p(self.log_scores, value, self.eps)


class Threshold(ABC):
    """One threshold method: a class registered in ``THRESHOLD_REGISTRY``.

    A subclass implements ``flag``; one that takes a parameter (``"name:x"``) sets ``param``
    to the parameter's letter and may override ``parse_param`` (default: a number in [0, 1]).

    Attributes
    ----------
    name : str
        Set by the registry.
    form : str
        How a user writes it, with a short gloss, for error messages and help (default ``'name'``).
    param : str or None
        The parameter's letter (``"q"`` for ``quantile:q``), None when it takes none.
    bare_number : bool
        A plain number (``0.3``, ``"0.3"``) selects this method (``value`` only).
    uses_valley : bool
        Looks for a valley between a clean and a suspicious mode (``otsu``, ``gmm``): pointless on
        rank scores, which are spread evenly.
    """

    name: ClassVar[str] = ""
    uses_valley: ClassVar[bool] = False
    form: ClassVar[str] = ""
    param: ClassVar[str | None] = None
    bare_number: ClassVar[bool] = False

    @classmethod
    def parse_param(cls, arg: str, spec: Any) -> float:
        """The parameter of ``"name:arg"``: by default a number in ``[0, 1]``."""
        try:
            x = float(arg)
        except ValueError:
            raise InvalidInputError(
                f"threshold {spec!r}: the {cls.name} parameter must be a number in [0, 1]; found {arg!r}. "
                f"{_spec_help()}"
            ) from None
        if not 0.0 <= x <= 1.0:  # also rejects NaN
            raise InvalidInputError(
                f"threshold {spec!r}: the {cls.name} parameter must be in [0, 1]; found {x}. {_spec_help()}"
            )
        return x

    @abstractmethod
    def flag(self, x: ThresholdInputs) -> tuple[np.ndarray, float, np.ndarray]:
        """``(is_issue (n,) bool, value, p_issue (n,) float64)`` with the contract of ``ThresholdResult``."""


#: Every threshold method, one class each.
THRESHOLD_REGISTRY: Registry[type[Threshold]] = Registry("threshold method", base=Threshold)


@THRESHOLD_REGISTRY.register("estimate")
class EstimateThreshold(Threshold):
    """Exactly ``n_estimated`` top-scoring rows (ties by row order): the estimated number of mislabeled rows."""

    form = "'estimate' (flag the estimated number of label issues)"

    def flag(self, x: ThresholdInputs) -> tuple[np.ndarray, float, np.ndarray]:
        s, n_estimated = x.scores, x.n_estimated
        if isinstance(n_estimated, bool) or not isinstance(n_estimated, numbers.Integral) or not 0 <= n_estimated <= s.size:
            raise InvalidInputError(
                f"threshold 'estimate' needs the estimated number of mislabeled rows, an integer in 0..{s.size}; "
                f"found {n_estimated!r}. Pass n_estimated (estimate.both_count or estimate.confident_joint_count), or use another threshold."
            )
        is_issue, value = budget_cut(s, int(n_estimated) / s.size if s.size else 0.0)
        return is_issue, value, x.logistic(value)


@THRESHOLD_REGISTRY.register("otsu")
class OtsuThreshold(Threshold):
    """Otsu's split of the log scores above the floor; flags the upper class."""

    uses_valley = True

    def flag(self, x: ThresholdInputs) -> tuple[np.ndarray, float, np.ndarray]:
        is_issue = np.zeros(x.scores.size, dtype=bool)
        is_issue[x.fit] = otsu_cut(x.log_scores[x.fit])
        value = cut_between(x.scores, is_issue, x.eps)
        return is_issue, value, x.logistic(value)


@THRESHOLD_REGISTRY.register("gmm")
class GMMThreshold(Threshold):
    """A two-component Gaussian mixture on the log scores above the floor; ``is_issue = p_issue > 0.5``."""

    uses_valley = True

    def flag(self, x: ThresholdInputs) -> tuple[np.ndarray, float, np.ndarray]:
        p = np.zeros(x.scores.size, dtype=np.float64)
        p[x.fit] = gmm_posterior(x.log_scores[x.fit], x.random_state)
        is_issue = p > 0.5
        return is_issue, cut_between(x.scores, is_issue, x.eps), p


@THRESHOLD_REGISTRY.register("quantile")
class QuantileThreshold(Threshold):
    """Rows above ``numpy.quantile(scores, q)``; tied scores are all flagged or all not."""

    form = "'quantile:q' (0 <= q <= 1, flag rows above the q-quantile)"
    param = "q"

    def flag(self, x: ThresholdInputs) -> tuple[np.ndarray, float, np.ndarray]:
        value = float(np.quantile(x.scores, x.param))
        return x.scores > value, value, x.logistic(value)


@THRESHOLD_REGISTRY.register("budget")
class BudgetThreshold(Threshold):
    """Exactly ``floor(f * n + 0.5)`` top-scoring rows, ties by row order."""

    form = "'budget:f' (0 <= f <= 1, flag exactly the top fraction f)"
    param = "f"

    def flag(self, x: ThresholdInputs) -> tuple[np.ndarray, float, np.ndarray]:
        is_issue, value = budget_cut(x.scores, x.param)
        return is_issue, value, x.logistic(value)


@THRESHOLD_REGISTRY.register("value")
class ValueThreshold(Threshold):
    """Rows scoring above a fixed score value."""

    form = "a number >= 0 (a score value)"
    param = "x"
    bare_number = True

    @classmethod
    def parse_param(cls, arg: str, spec: Any) -> float:
        try:
            x = float(arg)
        except ValueError:
            raise InvalidInputError(f"unknown threshold {spec!r}. {_spec_help()}") from None
        return _check_value_threshold(x, spec)

    def flag(self, x: ThresholdInputs) -> tuple[np.ndarray, float, np.ndarray]:
        value = float(x.param)
        return x.scores > value, value, x.logistic(value)


#: Threshold methods, as reported in ``ThresholdResult.method`` (a live view of the registry's names).
THRESHOLD_METHODS = THRESHOLD_REGISTRY.where()
#: Methods that look for a valley between a clean and a suspicious mode (pointless on rank scores).
VALLEY_THRESHOLDS = THRESHOLD_REGISTRY.where("uses_valley")


def check_threshold_name(name: Any) -> str:
    """Return ``name`` if it is a registered threshold method; else an error listing the registry's names."""
    THRESHOLD_REGISTRY.get(name)
    return name


def choose_threshold(scores: Any, spec: Any = "otsu", random_state: Any = None, *,
                     floor: float = 0.0, n_estimated: int | None = None) -> ThresholdResult:
    """Flag suspicious rows from self-influence scores.

    Parameters
    ----------
    scores : array-like, shape ``(n,)`` float
        Self-influence scores, finite and ``>= 0``; higher = more suspicious.
    spec : str or float, default ``"otsu"``
        A method of ``THRESHOLD_REGISTRY`` (``parse_threshold``); the built-in ones:

        - ``"estimate"``: exactly ``n_estimated`` top-scoring rows (ties by row order), the
          estimated number of mislabeled rows (``estimate.ESTIMATE_COUNTS``); needs
          ``n_estimated``.
        - ``"otsu"``: Otsu's threshold on log scores (256-bin histogram, the cut that maximises
          the between-class variance). Flags the upper class.
        - ``"gmm"``: a two-component ``sklearn.mixture.GaussianMixture`` on log scores.
          ``p_issue`` is the posterior of the component with the higher mean, made monotone in
          the score (running max above the midpoint of the two means, running min below it,
          because with unequal variances the wider component wins in both far tails);
          ``is_issue = p_issue > 0.5``.
        - ``"quantile:q"``: rows with score above ``numpy.quantile(scores, q)`` (linear
          interpolation). Tied scores are all flagged or all not.
        - ``"budget:f"``: exactly ``floor(f * n + 0.5)`` rows, the highest scores, ties broken by
          row order (earlier row first).
        - a number (float or numeric string) ``>= 0``: rows with score above that value.

        With all scores equal, ``otsu`` and ``gmm`` flag nothing.
    random_state : int, RandomState instance or None
        Seed of the mixture fit (``gmm`` only); the same seed gives the same result.
    floor : float, default 0
        ``otsu`` and ``gmm`` only: rows with score ``<= floor`` are never flagged and are left out
        of the fit (when at least 10 rows lie above it). GEX scores pile up in a spike at about
        ``tau**2`` (rows every member fits to ~0 loss); without the floor, Otsu splits that spike
        from everything else instead of finding the mislabeled mode. The pipeline passes
        ``2 * tau**2``.
    n_estimated : int, optional
        The estimated number of mislabeled rows, for ``"estimate"``.

    Returns
    -------
    ThresholdResult
        ``value``, ``is_issue (n,) bool``, ``p_issue (n,) float64``, ``method``; see the class.

    Raises
    ------
    InvalidInputError
        Scores not 1-D, empty, non-finite or negative; a malformed ``spec``.
    InvalidTypeError
        Non-numeric scores; ``spec`` of the wrong type.
    """
    s = check_scores(scores)
    parsed = parse_threshold(spec)
    log_s, eps = log_scores(s)
    fit = s > floor
    if fit.sum() < 10:
        fit = np.ones(s.size, dtype=bool)
    method = THRESHOLD_REGISTRY.get(parsed.method)()
    is_issue, value, p = method.flag(ThresholdInputs(scores=s, log_scores=log_s, eps=eps, fit=fit, param=parsed.param,
                                                     random_state=random_state, n_estimated=n_estimated))
    is_issue = np.asarray(is_issue, dtype=bool)
    p = np.asarray(p, dtype=np.float64)
    is_issue.setflags(write=False)
    p.setflags(write=False)
    logger.info(
        "threshold %s: value=%.6g, %d of %d rows flagged", parsed.method, value, int(is_issue.sum()), s.size
    )
    return ThresholdResult(value=float(value), is_issue=is_issue, p_issue=p, method=parsed.method,
                           n_estimated=int(n_estimated) if parsed.method == "estimate" else None)

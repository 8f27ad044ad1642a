"""End-to-end GEX on arrays: model → (``θ*``) → members → loss matrix → self-influence → ranking score.

``gex`` returns everything it computed (``GEXResult``: the ranking chosen by ``GEXConfig.score``
and the exact self-influence next to it); ``gex_self_influence`` returns the exact self-influence.
Every higher layer (cleaner, flows, CLI, benchmarks) calls these.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from influence_stage._checks import check_xy
from influence_stage.config import FitConfig, GEXConfig
from influence_stage.config.fit import is_image
from influence_stage.engine.auxiliary import AuxiliaryCheck, check_auxiliary, contradicted_rows
from influence_stage.engine.members import (
    AutoScale,
    MemberPlan,
    can_cross_fit,
    choose_ft_lr,
    out_of_sample_fit,
    plan_members,
    row_shape,
)
from influence_stage.timing import Timings
from influence_stage.errors import InvalidInputError
from influence_stage.engine.influence import self_influence
from influence_stage.engine.learner import (
    Fittable,
    Learner,
    OnDevice,
    RecordsFit,
    State,
    TensorData,
    TrainHistory,
    labels_digest,
)
from influence_stage.decisions.suggest import suggestion_proba
from influence_stage.engine.loss_store import LossStore
from influence_stage.engine.losses import loss_matrix_and_mean_proba, mean_member_proba
from influence_stage.engine.sources import LearnerRequest, learner_from_source
from influence_stage.engine.scores import (
    GEX_SCALE,
    NEEDS_OOS,
    RANK_SCORES,
    SCORE_REGISTRY,
    evidence_first,
    label_quality,
    oos_loss,
    ranking_score,
    resolve_score,
)

logger = logging.getLogger(__name__)

# Below this share of rows fitted by θ*, GEX warns: GEX assumes θ* memorised its training rows, and
# on a θ* that fits few of them it ranks below the plain loss at θ* (benchmarks/RESULTS.md).
THETA_FIT_WARNING = 0.8


#: Fewest rows on each side (contradicted, not) for the agreement check: as the automatic scale's AP criterion.
MIN_AGREEMENT_ROWS = 5


@dataclass(frozen=True)
class GEXAgreement:
    """The exact GEX score against a reliable cross-fitted model's evidence.

    ``ap``: average precision of ``gex_influence`` for the rows that model contradicts (it gives their given
    label probability < 0.5); ``chance``: their share, the AP of a random ranking. GEX assumes the members
    move θ* off the rows it fitted only by memorising them; when θ* memorises every row and the members stay
    at it, the score can rank the contradicted rows *below* the others (``inverted``), and its rank in the
    default ranking then works against the other two. The run says so, and a rank score that has a form
    without the GEX rank (``Score.without_gex``) ranks by that form instead; ``gex_influence`` is unchanged.
    """

    ap: float
    chance: float
    contradicted: int
    left_out: str | None = None
    """The score the run was asked for when it ranked by that score's ``without_gex`` instead."""

    @property
    def inverted(self) -> bool:
        """Whether GEX ranks the contradicted rows worse than a random order does."""
        return self.ap < self.chance

    def message(self, theta_fit: float, score: str) -> str:
        """The run's warning; ``score`` is the ranking it used."""
        head = (f"the GEX score disagrees with the reliable cross-fitted model: its average precision for the "
                f"{self.contradicted} rows that model contradicts is {self.ap:.3f}, below the {self.chance:.3f} of "
                f"a random order (θ* fits {100 * theta_fit:.0f}% of the given labels). The members did not move "
                "θ* off the rows it memorised, so gex_influence ranks them low")
        if self.left_out is not None:
            return (f"{head}; the ranking leaves the GEX rank out: score {score!r} instead of {self.left_out!r} "
                    "(gex_influence is still published; do not rank by it alone).")
        return (f"{head}; score {score!r} ranks by it. Rank by 'oos+aum' or 'oos' (the cross-fitted evidence), or "
                "train θ* so that it does not fit every row.")


def gex_agreement(gex_influence: np.ndarray, oos_proba: np.ndarray, y: np.ndarray) -> GEXAgreement | None:
    """``GEXAgreement`` of ``gex_influence`` with the cross-fitted probabilities ``oos_proba`` on labels ``y``;
    None with fewer than ``MIN_AGREEMENT_ROWS`` contradicted or uncontradicted rows (no AP to speak of)."""
    from sklearn.metrics import average_precision_score

    contradicted = contradicted_rows(oos_proba, y)
    n = int(contradicted.sum())
    if n < MIN_AGREEMENT_ROWS or len(y) - n < MIN_AGREEMENT_ROWS:
        return None
    return GEXAgreement(ap=float(average_precision_score(contradicted, gex_influence)),
                        chance=float(contradicted.mean()), contradicted=n)


@dataclass(frozen=True)
class GEXResult:
    """Everything one GEX run computed.

    Attributes
    ----------
    scores : ``(n_samples,) float64`` the ranking named by ``score_name``, higher = more suspicious.
    gex_influence : ``(n_samples,) float64`` the exact GEX self-influence (``influence.self_influence``).
    score_name : the score actually computed (``scores.SCORES``; see ``scores.resolve_score``).
    loss_matrix : ``(n_samples, n_members) float32`` member losses on the given labels.
    base_loss : ``(n_samples,) float32`` losses at ``θ*``.
    members : member parameter states, chain-major.
    ft_lr : the fine-tuning rate used.
    auto : what the automatic scale measured, or None when ``ft_lr`` was given.
    learner : the learner, left at ``θ*``.
    oos_proba : ``(n_samples, n_classes) float32`` cross-fitted out-of-sample probabilities (the auto
        scale's yardstick), or None when neither the scale nor the score needed them.
    train_margin : ``(n_samples,) float32`` ``θ*``'s in-sample margin averaged over its training epochs,
        or None when ``θ*`` was not trained by the stage on these rows.
    timings : wall seconds per step.
    auxiliary : the check of the model behind ``oos_proba`` (``engine.auxiliary``: its out-of-sample
        accuracy on the given labels and whether it is reliable), or None without ``oos_proba``.
    member_proba : ``(n_samples, n_classes) float32`` the members' mean class probabilities
        (``losses.mean_member_proba``), kept from the loss passes when they came from the same forward
        passes, or computed for ``evidence_first``; None otherwise (the decision computes them).
    gex_agreement : how the exact GEX score agrees with the reliable cross-fitted model (``GEXAgreement``),
        None without one.
    evidence_first : whether ``scores`` ranks the rows whose suggestion probabilities favour their
        given label after all others (``scores.evidence_first``: a rank score under a reliable
        cross-fitted model).
    """

    scores: np.ndarray
    loss_matrix: np.ndarray
    base_loss: np.ndarray
    members: list[State]
    ft_lr: float
    auto: AutoScale | None
    learner: Learner
    gex_influence: np.ndarray | None = None
    score_name: str = "gex"
    oos_proba: np.ndarray | None = None
    train_margin: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)
    auxiliary: AuxiliaryCheck | None = None
    member_proba: np.ndarray | None = None
    evidence_first: bool = False
    gex_agreement: GEXAgreement | None = None

    @property
    def label_quality(self) -> np.ndarray:
        """``(n_samples,) float64`` in [0, 1], higher = cleaner; non-increasing in ``scores``."""
        return label_quality(self.scores)

    @property
    def theta_fit(self) -> float:
        """Share of rows ``θ*`` fits (probability of the given label > 0.5, i.e. loss < ln 2)."""
        return float(np.mean(self.base_loss < np.log(2.0)))


def make_learner(model: Any, X: np.ndarray, n_classes: int, *, config: GEXConfig) -> tuple[Learner, bool]:
    """Turn ``model`` into a Learner through its source (``influence_stage.engine.sources``); the flag
    says whether it still needs training (a name was given, or an unfitted scikit-learn estimator)."""
    return learner_from_source(model, LearnerRequest(input_shape=tuple(int(s) for s in X.shape[1:]),
                                                     n_classes=n_classes, gex=config))


def gex(model: Any, X: Any, y: Any, *, config: GEXConfig | None = None, fit_config: FitConfig | None = None,
        fit_model: bool | None = None, n_classes: int | None = None, progress: bool = False) -> GEXResult:
    """Score every row of ``(X, y)`` by GEX self-influence.

    Parameters
    ----------
    model : str | torch.nn.Module | Learner
        A model name (built and trained on ``(X, y)`` as ``θ*``), or a trained module or learner (``θ*``).
    X : array-like, shape ``(n_samples, n_features)`` or ``(n_samples, c, h, w)``
    y : array-like of int, shape ``(n_samples,)``, classes ``0..K-1`` (the given, possibly wrong labels)
    config : GEXConfig
        Members, perturbation scale and score settings.
    fit_config : FitConfig
        Recipe for training ``θ*`` and the auto scale's held-out model.
    fit_model : bool, optional
        Train ``θ*`` first. Default: only when ``model`` is a name.
    n_classes : int, optional
        Number of classes K; default ``max(y) + 1``.

    Examples
    --------
    The full result of a tiny run (40 rows, 4 features, 2 classes; 4 members):

    >>> import numpy as np
    >>> from influence_stage.config import FitConfig, GEXConfig
    >>> from influence_stage.engine.gex import gex
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 4)).astype(np.float32)
    >>> y = (X[:, 0] > 0).astype(np.int64)
    >>> r = gex("mlp", X, y, config=GEXConfig(chains=2, cycles=2, ft_lr=0.1, score="gex"),
    ...         fit_config=FitConfig(epochs=5))
    >>> r.score_name, r.scores.shape, len(r.members), r.loss_matrix.shape
    ('gex', (40,), 4, (40, 4))
    >>> bool(np.array_equal(r.scores, r.gex_influence))
    True
    """
    config = config or GEXConfig()
    fit_config = fit_config or FitConfig()
    X_arr, y_arr, k = check_xy(X, y, n_classes=n_classes)
    learner, needs_fit = make_learner(model, X_arr, k, config=config)
    data = TensorData.from_arrays(X_arr, y_arr, device=learner.device if isinstance(learner, OnDevice) else "cpu")
    timings = Timings()
    with timings.step("fit"):
        if fit_model if fit_model is not None else needs_fit:
            if not isinstance(learner, Fittable):
                raise InvalidInputError(f"fit_model=True needs a learner with fit(); {type(learner).__name__} has none.")
            learner.fit(data, fit_config, progress=progress)
    return score_fitted(learner, data, config=config, fit_config=fit_config, progress=progress, timings=timings)


def train_margin_of(learner: Learner, data: Any) -> np.ndarray | None:
    """``θ*``'s training margins (``TrainHistory.mean_margin``) when its last ``fit`` was on these labels.

    The learner keeps the history of its last fit (``last_fit``); it counts only if that fit saw
    exactly ``data``'s labels (same count, same digest), so a model trained elsewhere never lends
    its margins to other rows.
    """
    history = learner.last_fit if isinstance(learner, RecordsFit) else None
    y = getattr(data, "y", None)
    if not isinstance(history, TrainHistory) or history.mean_margin is None or y is None:
        return None
    if len(history.mean_margin) != len(data) or history.labels_digest != labels_digest(y):
        return None
    return history.mean_margin


def score_fitted(learner: Learner, data: TensorData, *, config: GEXConfig, fit_config: FitConfig,
                 progress: bool = False, timings: dict[str, float] | None = None,
                 store: LossStore | None = None) -> GEXResult:
    """GEX from a learner already at ``θ*``: scale → members → loss matrix → scores.

    The same three pieces the stage's ``SCORE`` plan runs as steps (``auto_scale``, ``member_plan``,
    ``result_from_members``), here one after another in process.
    ``store``: keep the loss matrix on disk and evaluate only unfinished members (``loss_store``).
    """
    timings = Timings(timings or {})
    with timings.step("scale"):
        auto = auto_scale(learner, data, config=config, fit_config=fit_config, progress=progress)
    with timings.step("members"):
        plan = member_plan(learner, config, auto, input_shape=row_shape(data))
        members = plan.train(learner, data, config=config, progress=progress)
    with timings.step("losses"):
        result = result_from_members(learner, data, members, config=config, ft_lr=plan.ft_lr, auto=auto,
                                     fit_config=fit_config, progress=progress, store=store)
    return replace(result, timings=dict(timings))


def auto_scale(learner: Learner, data: Any, *, config: GEXConfig, fit_config: FitConfig,
               progress: bool = False) -> AutoScale | None:
    """The automatic fine-tuning rate (``engine.members.choose_ft_lr``); None when ``config.ft_lr`` is a number.

    θ*'s training margins (``train_margin_of``) stand in for a weak yardstick's contradicted rows
    (``engine.auxiliary``).
    """
    if config.ft_lr != "auto":
        return None
    return choose_ft_lr(learner, data, config=config, fit_config=fit_config, progress=progress,
                        train_margin=train_margin_of(learner, data))


def member_plan(learner: Learner, config: GEXConfig, auto: AutoScale | None, *,
                chains_per_task: int | None = None, input_shape: Sequence[int] | None = None) -> MemberPlan:
    """The members left to train (``engine.members.plan_members``, for rows of ``input_shape``): at the scale's
    rate, continuing its probe chains, or at ``config.ft_lr`` when it is a number (``auto`` None)."""
    if auto is None:
        return plan_members(learner, config, ft_lr=float(config.ft_lr), chains_per_task=chains_per_task,
                            input_shape=input_shape)
    return plan_members(learner, config, ft_lr=auto.ft_lr, first_chains=auto.first_chains,
                        chains_per_task=chains_per_task, input_shape=input_shape)


def ranked(name: str, L: np.ndarray, base: np.ndarray, y: np.ndarray, *, config: GEXConfig,
           oos_proba: np.ndarray | None, train_margin: np.ndarray | None,
           suggestion: np.ndarray | None = None) -> np.ndarray:
    """The published ranking of score ``name`` (already resolved): ``scores.ranking_score`` on a run's evidence,
    then ``scores.evidence_first`` with the suggestion probabilities ``suggestion`` when given (a rank score under
    a reliable cross-fitted model: ``result_from_members`` decides). ``(n_samples,) float64``."""
    scores = ranking_score(name, L, base, tau=config.tau, trim=config.trim,
                           oos_loss=oos_loss(oos_proba, y) if oos_proba is not None else None, train_margin=train_margin)
    # rows the models place in their given class go after the others
    return scores if suggestion is None else evidence_first(scores, y, suggestion)


def result_from_members(learner: Learner, data: Any, members: list[State], *, config: GEXConfig, ft_lr: float,
                        auto: AutoScale | None = None, fit_config: FitConfig | None = None,
                        progress: bool = False, store: LossStore | None = None) -> GEXResult:
    """Base losses at ``θ*`` (the learner's current state), the loss matrix of ``members`` and the scores.

    The last step of ``score_fitted`` and of the ``SCORE`` plan (in process, and gathered from loss
    shards by the Prefect executor). The out-of-sample probabilities come from ``auto`` (the scale's yardstick); when
    the rate was given and the score needs them, they are trained here with ``fit_config``.
    """
    base = learner.per_sample_loss(data)
    fit = float(np.mean(base < np.log(2.0)))
    if fit < THETA_FIT_WARNING:
        # GEX ranks rows by how much the members change their loss; a row θ* never fitted keeps a high
        # loss in every member and scores low, so a θ* that fits few rows hides its mislabeled ones.
        if config.score in GEX_SCALE:
            logger.warning("θ* fits only %.0f%% of the given labels; GEX assumes θ* fits (memorises) its training "
                           "rows and ranks the rows it does not fit low. Train θ* longer or with a larger model, or "
                           "use the default score 'gex+oos+aum', which adds out-of-sample and training-margin "
                           "evidence.", 100 * fit)
        else:
            logger.info("θ* fits only %.0f%% of the given labels; the GEX part of score %r ranks rows it does not "
                        "fit low, the out-of-sample and margin parts do not.", 100 * fit, config.score)
    L, member_proba = loss_matrix_and_mean_proba(learner, members, data, batch_size=config.eval_batch_size,
                                                 member_chunk=config.member_chunk, progress=progress, store=store)
    margin = train_margin_of(learner, data)
    proba = auto.oos_proba if auto is not None else None
    aux = getattr(auto, "auxiliary", None)  # an AutoScale cached before the check existed has none
    can_oos = proba is not None or can_cross_fit(learner)
    name = resolve_score(config.score, has_oos=can_oos, has_margin=margin is not None)
    if proba is None and name in NEEDS_OOS:
        proba, aux = out_of_sample_fit(learner, data, config=config, fit_config=fit_config or FitConfig())
    y = np.asarray(data.y.cpu().numpy() if hasattr(data.y, "cpu") else data.y)
    if proba is not None and aux is None:
        aux = check_auxiliary(proba, y)
    if aux is not None and not aux.reliable:
        # the ranking keeps the weak model's component: one rank of three, and on every weak run measured
        # (text, weak features) the ranking without it was the worse one (benchmarks/weak_ranking.py)
        logger.warning("%s", aux.message())
    influence = self_influence(L, base, tau=config.tau)
    reliable = proba is not None and aux is not None and aux.reliable
    agreement = gex_agreement(influence, proba, y) if reliable else None
    inverted = agreement is not None and agreement.inverted
    # the same ranks without GEX's: where GEX reads inverted (benchmarks/inverted_gex.py), and on image rows
    # unless GEXConfig.image_gex_rank keeps it there
    instead = (SCORE_REGISTRY.get(name).without_gex
               if inverted or (reliable and not config.image_gex_rank and is_image(row_shape(data))) else None)
    if instead is not None:
        if inverted:
            agreement = replace(agreement, left_out=name)
        else:
            logger.info("image rows under a reliable cross-fitted model: score %r ranks as %r, without the GEX rank "
                        "(GEXConfig.image_gex_rank=False).", name, instead)
        name = instead
    if inverted:
        logger.warning("%s", agreement.message(fit, name))
    first = name in RANK_SCORES and reliable
    if first and member_proba is None:  # a loss store or the vmap path kept none; the decision reuses these
        member_proba = mean_member_proba(learner, members, data, batch_size=config.eval_batch_size,
                                         member_chunk=config.member_chunk)
    scores = ranked(name, L, base, y, config=config, oos_proba=proba, train_margin=margin,
                    suggestion=suggestion_proba(member_proba, proba, aux) if first else None)
    return GEXResult(scores=scores, gex_influence=influence, score_name=name,
                     loss_matrix=L, base_loss=base, members=list(members), ft_lr=ft_lr, auto=auto, learner=learner,
                     oos_proba=proba, train_margin=margin, auxiliary=aux,
                     member_proba=member_proba, evidence_first=bool(first), gex_agreement=agreement)


def gex_self_influence(model: Any, X: Any, y: Any, *, config: GEXConfig | None = None,
                       fit_config: FitConfig | None = None, fit_model: bool | None = None,
                       n_classes: int | None = None, progress: bool = False) -> np.ndarray:
    """The exact GEX self-influence of every row, ``(n_samples,) float64``; higher = more suspicious.

    Same arguments as ``gex``; see there. (``gex(...).scores`` is the ranking ``config.score`` names.)

    Examples
    --------
    A tiny MLP on 40 rows, the first two with flipped labels (``θ*`` trained for 5 epochs, 2 chains ×
    2 cycles = 4 members; about a second on a CPU):

    >>> import numpy as np
    >>> from influence_stage.config import FitConfig, GEXConfig
    >>> from influence_stage.engine.gex import gex_self_influence
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 4)).astype(np.float32)
    >>> y = (X[:, 0] > 0).astype(np.int64)
    >>> y[:2] = 1 - y[:2]
    >>> s = gex_self_influence("mlp", X, y, config=GEXConfig(chains=2, cycles=2, ft_lr=0.1),
    ...                        fit_config=FitConfig(epochs=5))
    >>> s.shape, s.dtype, bool((s >= 0).all())
    ((40,), dtype('float64'), True)
    """
    config = (config or GEXConfig()).model_copy(update={"score": "gex"})
    return gex(model, X, y, config=config, fit_config=fit_config, fit_model=fit_model,
               n_classes=n_classes, progress=progress).gex_influence

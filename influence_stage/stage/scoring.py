"""Scoring from θ*, in pieces: the perturbation scale, the member groups, the loss matrix and the scores.

Each piece is the engine's (``engine.gex.auto_scale``, ``engine.gex.member_plan`` (which the plan's
``Members`` step calls itself), ``engine.members.build_chains``, ``engine.gex.result_from_members``:
what ``engine.gex.score_fitted`` runs in a row), on the rows of the stage's ``learner_data``. Only the member groups differ by
executor: in process they train one after another (``MemberPlan.train``), as Prefect tasks they are
mapped (one per Dask worker). The members and the scores are the same for the same seed and the
same grouping.
"""

from __future__ import annotations

import copy

from influence_stage.config import GEXConfig
from influence_stage.config.clean import CleanConfig
from influence_stage.engine.gex import GEXResult, auto_scale, result_from_members
from influence_stage.engine.learner import Learner, State
from influence_stage.engine.members import AutoScale, MemberPlan, build_chains
from influence_stage.stage.preflight import check_config
from influence_stage.stage.steps import Features, Prepared, learner_data


def scale_step(learner: Learner, prepared: Prepared | None, features: Features, config: CleanConfig, *,
               progress: bool = False) -> AutoScale | None:
    """The automatic fine-tuning rate (``engine.gex.auto_scale``); None when ``gex.ft_lr`` is a number."""
    config = check_config(config)
    return auto_scale(learner, learner_data(learner, prepared, features), config=config.gex, fit_config=config.fit,
                      progress=progress)


def members_step(learner: Learner, plan: MemberPlan, prepared: Prepared | None, features: Features, gex: GEXConfig,
                 *, progress: bool = False) -> list[State]:
    """The members in process: every group of ``plan`` in turn (``MemberPlan.train``), chain-major."""
    return plan.train(learner, learner_data(learner, prepared, features), config=gex, progress=progress)


def chains_step(learner: Learner, prepared: Prepared | None, features: Features, gex: GEXConfig, ft_lr: float,
                chains: list[int], prefixes: list[list[State]], *, progress: bool = False) -> list[list[State]]:
    """The members of one group of chains (``gex.cycles`` each), trained together: one mapped unit.

    ``prefixes``: each chain's first members when the scale's probe already trained them. Works on
    its own copy of the learner: ``functional_call`` swaps a module's parameters while it runs, so
    groups trained side by side must not share one module.
    """
    learner = copy.deepcopy(learner)
    data = learner_data(learner, prepared, features)
    return build_chains(learner, data, config=gex, ft_lr=ft_lr, chain_ids=chains, prefixes=prefixes,
                        progress=progress)


def loss_step(learner: Learner, members: list[State], prepared: Prepared | None, features: Features,
              config: CleanConfig, ft_lr: float, auto: AutoScale | None, *, progress: bool = False) -> GEXResult:
    """Loss matrix and scores (``engine.gex.result_from_members``)."""
    data = learner_data(learner, prepared, features)
    return result_from_members(learner, data, members, config=config.gex, ft_lr=ft_lr, auto=auto,
                               fit_config=config.fit, progress=progress)


__all__ = ["chains_step", "loss_step", "members_step", "scale_step"]

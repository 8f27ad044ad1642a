"""Scoring from θ*, in pieces: the perturbation scale, the member groups, the loss matrix and the scores.

Only the member groups differ by executor: ``plan_members`` splits the chains into groups; in
process they train one after another, as Prefect tasks they are mapped (one per Dask worker). The
members and the scores are the same for the same seed and the same grouping.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

from influence_stage.config import GEXConfig
from influence_stage.config.clean import CleanConfig
from influence_stage.engine.gex import GEXResult, result_from_members, train_margin_of
from influence_stage.engine.learner import Learner, State
from influence_stage.engine.members import AutoScale, build_chains, choose_ft_lr, member_prefixes, trains_batched
from influence_stage.stage.preflight import check_config
from influence_stage.stage.steps import Features, Prepared, learner_data

logger = logging.getLogger(__name__)

def scale_step(learner: Learner, prepared: Prepared | None, features: Features, config: CleanConfig, *,
               progress: bool = False) -> AutoScale | None:
    """The automatic fine-tuning rate (``engine.members.choose_ft_lr``); None when ``gex.ft_lr`` is a number."""
    config = check_config(config)
    if config.gex.ft_lr != "auto":
        return None
    data = learner_data(learner, prepared, features)
    # θ*'s training margins stand in for a weak yardstick's contradicted rows (engine.auxiliary)
    auto = choose_ft_lr(learner, data, config=config.gex, fit_config=config.fit, progress=progress,
                        train_margin=train_margin_of(learner, data))
    logger.info("auto ft_lr = %g (contradicted out of sample: %.1f%%)", auto.ft_lr, 100 * auto.contradicted_fraction)
    return auto


@dataclass(frozen=True)
class MemberPlan:
    """Which chains still need training, in which groups, at which rate.

    Attributes
    ----------
    ft_lr : float
        The fine-tuning rate of every chain.
    prefixes : list of list of State
        Each chain's members already trained (by the scale's probe); empty for the others.
    groups : list of list of int
        The chain ids left to train, one list per group; the chains of one group train together.
    """

    ft_lr: float
    prefixes: list[list[State]]
    groups: list[list[int]]

    def collect(self, trained: list[list[list[State]]]) -> list[State]:
        """The members chain-major, from each group's trained chains (in ``groups`` order)."""
        chains = [list(p) for p in self.prefixes]
        for group, states in zip(self.groups, trained, strict=True):
            for c, members in zip(group, states, strict=True):
                chains[c] = members
        return [m for chain in chains for m in chain]


def plan_members(learner: Learner, config: CleanConfig, auto: AutoScale | None, *,
                 chains_per_task: int | None = None) -> MemberPlan:
    """Split the chains left to train into groups.

    Default: one group of all chains when the learner trains chains batched (the fastest on one
    machine), else one chain per group. Chains trained together equal chains trained apart only
    up to rounding, so callers that cache a group key it by its chain ids.
    """
    gex = config.gex
    ft_lr, reused = (auto.ft_lr, list(auto.first_chains)) if auto is not None else (float(gex.ft_lr), [])
    prefixes = member_prefixes(gex, reused)
    todo = [c for c, prefix in enumerate(prefixes) if len(prefix) < gex.cycles]
    size = chains_per_task or (max(len(todo), 1) if trains_batched(learner) else 1)
    return MemberPlan(ft_lr=ft_lr, prefixes=prefixes, groups=[todo[i:i + size] for i in range(0, len(todo), size)])


def chains_step(learner: Learner, prepared: Prepared | None, features: Features, gex: GEXConfig, ft_lr: float,
                chains: list[int], prefixes: list[list[State]], *, progress: bool = False) -> list[list[State]]:
    """The members of one group of chains (``gex.cycles`` each), trained together.

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


__all__ = ["MemberPlan", "chains_step", "loss_step", "plan_members", "scale_step"]

"""The curation plan's model steps: ``θ*`` loaded, the corpus tokenized once, ``θ*`` adapted, the members.

The adapted ``θ*`` and the members are cached steps keyed by the data's key and the settings that
affect them. Steps of ``influence_stage.pipeline.curate.CURATE``.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

from influence_stage.pipeline.context import RunContext, digest
from influence_stage.pipeline.curate_inputs import load_learner
from influence_stage.pipeline.step import Step

logger = logging.getLogger(__name__)


class LoadModel(Step):
    """``θ*`` as given (``load_learner``)."""

    name, writes, timing, task = "load-model", ("learner",), "θ*", False

    def run(self, context: RunContext) -> Any:
        return load_learner(context.config)


class Tokenize(Step):
    """The scored documents tokenized once (``data.tokens.TokenCache``): ``cache_dir/tokens/<data key>.arrow``,
    read by the adaptation, the members and every scoring pass, and reused by a re-run."""

    name, reads, writes, timing = "tokenize", ("learner", "view", "data_key"), ("tokens",), "tokens"

    def run(self, context: RunContext) -> Any:
        from influence_stage.data.tokens import TokenCache

        c = context.config
        path = Path(c.cache_dir).resolve() / "tokens" / f"{context['data_key']}.arrow"
        return TokenCache.build(context["learner"], context["view"], path, progress=c.progress)


def cycle_steps(config: Any, n_docs: int) -> int:
    """SGD steps per member cycle: ``cycle_steps``, or with ``cycle_epochs`` the steps that draw
    ``cycle_epochs × n_docs`` documents (``ceil(cycle_epochs × n_docs / batch_size)``, at least 1),
    so the members' coverage of the corpus does not shrink as it grows."""
    if config.cycle_epochs is None:
        return int(config.cycle_steps)
    return max(1, math.ceil(config.cycle_epochs * n_docs / config.batch_size))


class AdaptTheta(Step):
    """``θ*`` adapted to the corpus: ``adapt_steps`` steps of continued pre-training (``CausalLMLearner.fit``:
    AdamW, warm-up then cosine from ``adapt_lr``) from the model as given, on batches drawn from the whole
    tokenized corpus, before the members.

    A cached step with its own key (the data's key and the adaptation's settings): the full state
    dict is saved to ``cache_dir/curate/adapted/<key>.pt`` (written whole, then renamed) and a re-run,
    on any executor, loads it instead of training again (the Prefect executor also caches the task).
    ``context.values["adapt_steps_run"]`` says how many steps this run trained (0: reused).
    """

    name, reads, writes, timing, cached = "adapt-theta", ("tokens", "data_key"), ("adapted",), "θ*", True

    def applies(self, context: RunContext) -> bool:
        return bool(context.config.adapt_steps)

    def cache_key(self, context: RunContext) -> str:
        c = context.config
        return digest(context["data_key"], "adapt", c.adapt_steps, c.adapt_lr, c.seed, c.batch_size, c.trainable)

    def path(self, context: RunContext) -> Path:
        """Where the adapted state dict lives."""
        return Path(context.config.cache_dir).resolve() / "curate" / "adapted" / f"{self.cache_key(context)}.pt"

    def run(self, context: RunContext) -> Any:
        import torch

        c, path = context.config, self.path(context)
        if path.is_file():
            logger.info("θ* adapted before: %s", path)
            context.values["adapt_steps_run"] = 0
            return torch.load(path, map_location="cpu", weights_only=True)
        learner = load_learner(c)
        logger.info("adapting θ* to the corpus: %d steps", c.adapt_steps)
        losses = learner.fit(context["tokens"], steps=c.adapt_steps, lr=c.adapt_lr,
                             warmup=max(c.adapt_steps // 10, 1), seed=c.seed, progress=c.progress)
        state = {k: v.detach().cpu().clone() for k, v in learner.model.state_dict().items()}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)
        context.values["adapt_steps_run"] = int(c.adapt_steps)
        context.values["adapt_losses"] = losses
        return state

    def store(self, context: RunContext, value: Any) -> None:
        super().store(context, value)
        if value is not None:
            context["learner"].model.load_state_dict(value)


def _member_key(context: RunContext) -> str:
    c = context.config
    return digest(context["data_key"], "members", c.adapt_steps, c.adapt_lr, c.trainable, c.chains, c.cycles,
                  c.cycle_steps, c.ft_lr, c.seed, c.batch_size, "tokens", c.cycle_epochs)


class LMMembers(Step):
    """Cycles of continued pre-training from ``θ*`` (``engine.causal_lm.lm_members``), each step's batch drawn
    uniformly from the whole tokenized corpus; ``cycle_steps`` steps per cycle."""

    name, reads, writes, timing, cached = "members", ("learner", "tokens"), ("members",), "members", True

    def cache_key(self, context: RunContext) -> str:
        return _member_key(context)

    def run(self, context: RunContext) -> Any:
        from influence_stage.engine.causal_lm import lm_members

        c = context.config
        tokens = context["tokens"]
        return lm_members(context["learner"], tokens, chains=c.chains, cycles=c.cycles,
                          steps=cycle_steps(c, len(tokens)), ft_lr=c.ft_lr, seed=c.seed, progress=c.progress)


__all__ = ["AdaptTheta", "LMMembers", "LoadModel", "Tokenize", "cycle_steps"]

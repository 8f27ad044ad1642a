"""The cleaning steps and the plans made of them: ``CLEAN_LIBRARY`` (estimators, ``run_pipeline``,
benchmarks) and ``CLEAN`` (the Prefect flow: the same steps, then the summary, the report's bias
scores and publishing).

load → validate input → featurize → fit ``θ*`` → auto scale → members → losses → decide → issues →
apply → validate output [→ summarize → bias scores → publish]

Each step calls the step function of its layer (``stage.steps``, ``stage.gates``,
``stage.scoring``, ``stage.shards``); the plans are the only place the order is written.
``members`` and ``losses`` are mapped steps: in process they train the chain groups one after
another and evaluate the loss matrix in memory; as tasks their units read the run's rows from the
run folder, and the loss matrix is kept on disk with a done-flag per member, so a re-run evaluates
only what is missing.
"""

from __future__ import annotations

from typing import Any

from influence_stage.engine.gex import member_plan
from influence_stage.engine.loss_store import LossStore
from influence_stage.engine.members import MemberPlan, row_shape
from influence_stage.pipeline.context import RunContext, digest
from influence_stage.pipeline.issues import Issues
from influence_stage.pipeline.publishing import PUBLISH_STEPS, Preflight, SkipUnchanged
from influence_stage.pipeline.step import MappedStep, Plan, Step, WorkUnits
from influence_stage.stage import gates, scoring, shards, steps


class Load(Step):
    """Source → ``Prepared`` (``stage.steps.prepare``)."""

    name, writes, timing, io = "load", ("prepared",), "prepare", True

    def run(self, context: RunContext) -> Any:
        return steps.prepare(context.source, context.config)


class ValidateInput(Step):
    """The input suite (``stage.gates.validate_input_step``); a failure stops the run."""

    name, reads, writes, timing = "validate-input", ("prepared",), ("input_report",), "validate input"

    def applies(self, context: RunContext) -> bool:
        return context.validate

    def run(self, context: RunContext) -> Any:
        return gates.validate_input_step(context["prepared"])


class Featurize(Step):
    """``Prepared`` → ``Features`` (``stage.steps.featurize_step``)."""

    name, reads, writes, timing = "featurize", ("prepared",), ("features",), "featurize"

    def run(self, context: RunContext) -> Any:
        return steps.featurize_step(context["prepared"], context.config)


class FitTheta(Step):
    """A learner at ``θ*`` (``stage.steps.make_model_step``): trained, loaded, or the given model."""

    name, reads, writes, timing = "fit-theta", ("prepared", "features"), ("learner",), "model"
    cached, key_tag = True, "theta"

    def run(self, context: RunContext) -> Any:
        return steps.make_model_step(context["features"], context.config, context.model,
                                     prepared=context["prepared"], progress=context.progress)


class Scale(Step):
    """The automatic fine-tuning rate (``stage.scoring.scale_step``); skipped (None) when ``gex.ft_lr`` is a number."""

    name, reads, writes, timing = "auto-scale", ("learner", "prepared", "features"), ("auto",), "score"
    cached, key_tag = True, "scale"

    def applies(self, context: RunContext) -> bool:
        return context.config.gex.ft_lr == "auto"

    def run(self, context: RunContext) -> Any:
        return scoring.scale_step(context["learner"], context["prepared"], context["features"], context.config,
                                  progress=context.progress)


def _rows(context: RunContext) -> shards.RowsRef:
    """The run's rows under the run folder (written once), shared with units on this process's threads."""
    if "rows_ref" not in context.values:
        ref = shards.write_rows(context["prepared"], context["features"], context.run_folder.resolve() / "rows",
                                fingerprint=context.fingerprint)
        shards.share_rows(ref, context["prepared"], context["features"])  # units on threads here need not read them
        context.values["rows_ref"] = ref
        context.values["task_learner"] = shards.task_learner(context["learner"])  # parameters, not per-row history
    return context.values["rows_ref"]


class Members(MappedStep):
    """The members: the chains left after the scale's probe, in groups (``engine.gex.member_plan``).

    One unit per group of chains (``chains_per_task``; default all chains in one batched unit when
    the learner trains them batched). Units are cached by the group's chain ids and the rate: chains
    trained together equal chains trained apart only up to rounding.
    """

    name, reads, writes, timing = "members", ("learner", "prepared", "features", "auto"), ("member_plan", "members"), \
        "score"
    unit_name = "chains"

    def _plan(self, context: RunContext) -> MemberPlan:
        return member_plan(context["learner"], context.config.gex, context["auto"],
                           chains_per_task=context.chains_per_task, input_shape=row_shape(context["features"]))

    def run(self, context: RunContext) -> Any:
        plan = self._plan(context)
        return plan, scoring.members_step(context["learner"], plan, context["prepared"], context["features"],
                                          context.config.gex, progress=context.progress)

    def units(self, context: RunContext) -> WorkUnits:
        ref, plan = _rows(context), self._plan(context)
        context.values["member_plan"] = plan
        key = context.scoring_key()
        return WorkUnits(fn=shards.chains_shard,
                         shared={"ref": ref, "learner": context["task_learner"], "gex": context.config.gex,
                                 "ft_lr": plan.ft_lr, "progress": context.progress},
                         items=[{"chains": g, "prefixes": [plan.prefixes[c] for c in g]} for g in plan.groups],
                         names=[f"chains {g}" for g in plan.groups],
                         keys=[digest(key, plan.ft_lr, "chains", *g) for g in plan.groups])

    def gather(self, context: RunContext, units: WorkUnits, results: list[Any]) -> Any:
        plan = context["member_plan"]
        return plan, plan.collect(results)


class Losses(MappedStep):
    """The loss matrix and the scores (``engine.gex.result_from_members``) → ``GEXResult``.

    As units: row shards (``stage.shards.loss_shard``), each into its own ``LossStore``, gathered into
    the run's store under ``run_folder/losses/<key>`` with a done-flag per member; a member every
    shard finished is never evaluated again.
    """

    name, reads, writes, timing = "losses", ("learner", "members", "member_plan", "auto"), ("result",), "score"
    unit_name = "loss-shard"

    def run(self, context: RunContext) -> Any:
        return scoring.loss_step(context["learner"], context["members"], context["prepared"], context["features"],
                                 context.config, context["member_plan"].ft_lr, context["auto"],
                                 progress=context.progress)

    def units(self, context: RunContext) -> WorkUnits:
        ref, plan, members = _rows(context), context["member_plan"], context["members"]
        # the grouping is in the key: chains trained together equal chains trained apart only up to rounding
        loss_key = digest(context.scoring_key(), plan.ft_lr, "loss", *map(tuple, plan.groups))
        folder = context.run_folder.resolve() / "losses" / loss_key
        n = len(context["features"].y)
        ranges = shards.row_shards(n, context.shard_rows)
        store = LossStore(folder / "matrix", key=loss_key, n_rows=n, n_members=len(members), overwrite=True)
        context.values.update(loss_store=store, loss_shards=ranges, loss_folder=folder / "shards", loss_key=loss_key)
        todo = ranges if store.pending() else []
        return WorkUnits(fn=shards.loss_shard,
                         shared={"ref": ref, "learner": context["task_learner"], "members": members,
                                 "folder": str(folder / "shards"), "key": loss_key, "progress": context.progress},
                         items=[{"start": s, "stop": e} for s, e in todo],
                         names=[f"loss-shard rows {s}-{e}" for s, e in todo], bounded=True)

    def gather(self, context: RunContext, units: WorkUnits, results: list[Any]) -> Any:
        shards.release_rows()  # the matrix is gathered from the shard stores, not from the rows
        context.values.pop("rows_ref", None)
        return shards.scores_from_shards(
            context["learner"], context["members"], context["prepared"], context["features"], context.config.gex,
            context.config.fit, context["member_plan"].ft_lr, context["auto"], store=context["loss_store"],
            shards=context["loss_shards"], folder=context["loss_folder"], key=context["loss_key"],
            progress=context.progress)


class Decide(Step):
    """Scores → one decision per row (``stage.steps.decide_step``)."""

    name, reads, writes, timing = "decide", ("result", "features", "prepared"), ("decisions",), "decide"

    def run(self, context: RunContext) -> Any:
        return steps.decide_step(context["result"], context["features"], context.config, prepared=context["prepared"],
                                 only_rows=context.only_rows)


class Apply(Step):
    """The decisions applied to the rows (``stage.steps.apply_step``)."""

    name, reads, writes, timing = "apply", ("prepared", "decisions"), ("cleaned",), "apply"

    def run(self, context: RunContext) -> Any:
        return steps.apply_step(context["prepared"], context["decisions"], context.config)


class ValidateOutput(Step):
    """The output suite (``stage.gates.validate_output_step``); a failure stops the run, nothing is published."""

    name, reads, writes, timing = ("validate-output", ("cleaned", "prepared", "decisions"), ("output_report",),
                                   "validate output")

    def applies(self, context: RunContext) -> bool:
        return context.validate

    def run(self, context: RunContext) -> Any:
        return gates.validate_output_step(context["cleaned"], context["prepared"], context["decisions"], context.config,
                                          max_drop_fraction=context.max_drop_fraction)


SCORE = Plan("score", (Scale(), Members(), Losses()))
"""GEX from ``θ*``: the scale, the members, the loss matrix and the scores."""

CLEAN_LIBRARY = Plan("clean-library", (Load(), ValidateInput(), Featurize(), FitTheta(), *SCORE.steps, Decide(),
                                       Issues(), Apply(), ValidateOutput()))
"""The stage in Python: source in, cleaned rows, decisions and reports out; nothing published."""

CLEAN = Plan("clean", (Preflight(), Load(), ValidateInput(), Featurize(), SkipUnchanged(), *CLEAN_LIBRARY.steps[3:],
                       *PUBLISH_STEPS))
"""The cleaning flow: the checks before any work, the library's steps (stopping early when the data
and configuration equal the latest published version's, under ``skip_unchanged``), then the summary,
the report's bias scores and publishing."""


__all__ = ["CLEAN", "CLEAN_LIBRARY", "SCORE", "Apply", "Decide", "Featurize", "FitTheta", "Load", "Losses",
           "Members", "Scale", "ValidateInput", "ValidateOutput"]

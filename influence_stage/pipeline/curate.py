"""The curation steps and their plan, ``CURATE``: a smaller corpus of the same worth, scored by a language model.

preflight → inventory (exact and, with ``near_dedup``, MinHash near-duplicate removal) → budget →
load ``θ*`` → tokenize (once, an Arrow file reused by every pass and by a re-run) → adapt ``θ*`` → members
(batches drawn from the whole corpus) → loss matrix (one work unit per document range × pass, each
with a done-flag) → with ``score: reference``, the reference members (cycles from ``θ*`` on the reference corpus)
and the documents' losses under them (work units with done-flags too) → prune → write the curated corpus (Parquet shards under a size limit) →
validate (the ``corpus`` suite) → report → publish → outcome

They read the flow's ``CurateConfig`` as ``RunContext.config`` and never import Prefect. The
expensive results (the adapted ``θ*``, the members, the loss matrix) are cached steps whose keys are the
corpus fingerprint (its shards' bytes), the model folder's digest and the settings that affect them.
Timing labels group the steps as the run's summary reports them (``inventory``, ``θ*``,
``members``, ``scores``, ``write + validate``, ``report + publish``).

The steps live in modules of one job each: ``influence_stage.pipeline.curate_inputs`` (preflight,
inventory, budget), ``influence_stage.pipeline.curate_model`` (``θ*``, tokens, adaptation, members),
``influence_stage.pipeline.curate_scores`` (the loss matrix's work units, the reference) and
``influence_stage.pipeline.curate_output`` (prune, write, validate, report, publish); their public
names import from here too.
"""

from __future__ import annotations

from influence_stage.pipeline.context import RunContext
from influence_stage.pipeline.curate_inputs import (Budget, CuratePreflight, Inventory, count_budget, load_learner,
                                                    preflight, reference_texts, remove_near_duplicates, texts_of)
from influence_stage.pipeline.curate_model import AdaptTheta, LMMembers, LoadModel, Tokenize, cycle_steps
from influence_stage.pipeline.curate_output import (CorpusReport, CurateOutcome, Prune, PublishCorpus,
                                                    ValidateCorpus, WriteCurated, build_manifest, document_tokens,
                                                    prune_to_tokens)
from influence_stage.pipeline.curate_scores import (LossMatrix, ReferenceLosses, ReferenceMembers, reference_influence,
                                                    score_pass)
from influence_stage.pipeline.step import Plan

CURATE = Plan("curate", (CuratePreflight(), Inventory(), Budget(), LoadModel(), Tokenize(), AdaptTheta(), LMMembers(),
                         LossMatrix(), ReferenceMembers(),
                         ReferenceLosses(), Prune(), WriteCurated(), ValidateCorpus(), CorpusReport(),
                         PublishCorpus(), CurateOutcome()))
"""The curation flow's step order."""


def cleanup(context: RunContext) -> None:
    """Remove the run's working folder (the curated Arrow files), once the run ended or failed."""
    workdir = context.values.pop("workdir", None)
    if workdir is not None:
        workdir.cleanup()


__all__ = ["CURATE", "build_manifest", "cleanup", "count_budget", "cycle_steps", "document_tokens", "load_learner",
           "preflight", "prune_to_tokens", "reference_influence", "reference_texts", "remove_near_duplicates",
           "score_pass", "texts_of"]

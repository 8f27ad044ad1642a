"""The curation steps and their plan, ``CURATE``: a smaller corpus of the same worth, scored by a language model.

preflight → inventory → budget → load θ* → adapt θ* → members → loss matrix → prune → write the
curated corpus → validate (the ``corpus`` suite) → report → publish → outcome

They read the flow's ``CurateConfig`` as ``RunContext.config`` and never import Prefect. The
expensive results (the adapted θ*, the members, the loss matrix) are cached steps whose keys are the
corpus fingerprint (its shards' bytes), the model folder's digest and the settings that affect them.
Timing labels group the steps as the run's summary reports them (``inventory``, ``θ*``,
``members``, ``scores``, ``write + validate``, ``report + publish``).
"""

from __future__ import annotations

import json
import logging
import numbers
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from influence_stage.data.arrow import ROW_ID
from influence_stage.data.corpus import Corpus, inventory, near_duplicate_groups
from influence_stage.decisions.prune import check_budget, prune
from influence_stage.errors import InvalidInputError
from influence_stage.pipeline.context import RunContext, digest
from influence_stage.pipeline.step import Plan, Step

logger = logging.getLogger(__name__)


def load_learner(config: Any) -> Any:
    """θ* as the configuration names it: ``CausalLMLearner.from_pretrained`` of ``config.model``."""
    from influence_stage.engine.causal_lm import CausalLMLearner

    return CausalLMLearner.from_pretrained(config.model, trainable=config.trainable, max_length=config.max_length,
                                           max_chunks=config.max_chunks, batch_size=config.batch_size,
                                           batch_tokens=config.batch_tokens, device=config.device)


def preflight(config: Any) -> Corpus:
    """The cheap checks before anything is scored: shards and columns, the model folder, the budget."""
    from influence_stage.engine.hf import pretrained_digest
    from influence_stage.publish.versions import check_name

    check_name(config.name)
    corpus = Corpus(config.source, text_column=config.text_column, id_column=config.id_column)
    pretrained_digest(config.model)  # the folder exists
    check_budget(config.budget, len(corpus))  # against the input count; the scored count is checked later
    return corpus


def build_manifest(inv: pd.DataFrame, scored: np.ndarray, scores: np.ndarray, base_loss: np.ndarray,
                   result: Any) -> pd.DataFrame:
    """One row per input document (``validation`` suite ``corpus``'s ``MANIFEST_COLUMNS``)."""
    n = len(inv)
    status = inv["status"].to_numpy(dtype=object).copy()
    full_score = np.full(n, np.nan)
    full_base = np.full(n, np.nan)
    idx = np.flatnonzero(scored)
    full_score[idx] = scores
    full_base[idx] = base_loss
    status[idx] = result.reason
    return pd.DataFrame({
        ROW_ID: inv["row"].to_numpy(dtype=np.int64),
        "doc_id": inv["doc_id"].astype(str).to_numpy(),
        "status": status,
        "action": np.where(status == "kept", "keep", "drop"),
        "score": full_score,
        "base_loss": full_base,
        "n_chars": inv["n_chars"].to_numpy(dtype=np.int64),
        "content_hash": inv["content_hash"].to_numpy(dtype=object),
        "duplicate_of": inv["duplicate_of"].to_numpy(dtype=np.int64),
    })


def texts_of(corpus: Corpus, rows: set[int]) -> dict[int, str]:
    """Texts of a few rows, in one streaming pass."""
    mask = np.zeros(len(corpus), dtype=bool)
    mask[list(rows)] = True
    wanted = sorted(rows)
    return {r: t for r, t in zip(wanted, corpus.iter_texts(rows=mask))}


class CuratePreflight(Step):
    """:func:`preflight`: the corpus, opened and checked."""

    name, writes, timing, task = "preflight", ("corpus",), "inventory", False

    def run(self, context: RunContext) -> Any:
        return preflight(context.config)


class Inventory(Step):
    """One streaming pass: lengths, content hashes, exact duplicates, near-duplicate keys."""

    name, reads, writes, timing = "inventory", ("corpus",), ("inventory",), "inventory"

    def run(self, context: RunContext) -> Any:
        c = context.config
        return inventory(context["corpus"], min_chars=c.min_chars, max_chars=c.max_chars, dedup=c.dedup,
                         skip_invalid=c.skip_invalid, progress=c.progress)


class Budget(Step):
    """The documents left to score, the budget's count of them, near-duplicate groups and the data's cache key."""

    name, reads, timing, task = "budget", ("corpus", "inventory"), "inventory", False
    writes = ("scored", "n_keep", "near", "view", "data_key")

    def run(self, context: RunContext) -> Any:
        from influence_stage.engine.hf import pretrained_digest

        c, corpus, inv = context.config, context["corpus"], context["inventory"]
        scored = inv["status"].eq("ok").to_numpy()
        n_scored = int(scored.sum())
        if n_scored == 0:
            raise InvalidInputError(f"no document of {c.source} is left to score: "
                                    f"{inv['status'].value_counts().to_dict()}.")
        n_keep = check_budget(c.budget, n_scored)
        near = near_duplicate_groups(inv)
        context.values["fingerprint"] = corpus.fingerprint()
        data_key = digest(context.fingerprint, pretrained_digest(c.model), c.min_chars, c.max_chars, c.dedup,
                          c.skip_invalid, c.max_length, c.max_chunks)
        return scored, n_keep, near, corpus.where(scored), data_key


class LoadModel(Step):
    """θ* as given (:func:`load_learner`)."""

    name, writes, timing, task = "load-model", ("learner",), "θ*", False

    def run(self, context: RunContext) -> Any:
        return load_learner(context.config)


class AdaptTheta(Step):
    """θ* adapted to the corpus (``fit_steps`` AdamW steps); the full state dict is cached and loaded into θ*."""

    name, reads, writes, timing, cached = "adapt-theta", ("view", "data_key"), ("adapted",), "θ*", True

    def applies(self, context: RunContext) -> bool:
        return bool(context.config.fit_steps)

    def cache_key(self, context: RunContext) -> str:
        c = context.config
        return digest(context["data_key"], "adapt", c.fit_steps, c.fit_lr, c.seed, c.batch_size, c.trainable)

    def run(self, context: RunContext) -> Any:
        c = context.config
        learner = load_learner(c)
        logger.info("adapting θ* to the corpus: %d steps", c.fit_steps)
        learner.fit(context["view"], steps=c.fit_steps, lr=c.fit_lr, warmup=max(c.fit_steps // 10, 1), seed=c.seed,
                    progress=c.progress)
        return {k: v.detach().clone() for k, v in learner.model.state_dict().items()}

    def store(self, context: RunContext, value: Any) -> None:
        super().store(context, value)
        if value is not None:
            context["learner"].model.load_state_dict(value)


def _member_key(context: RunContext) -> str:
    c = context.config
    return digest(context["data_key"], "members", c.fit_steps, c.fit_lr, c.trainable, c.chains, c.cycles,
                  c.cycle_steps, c.ft_lr, c.seed, c.batch_size)


class LMMembers(Step):
    """Cycles of continued pre-training from θ* (``engine.causal_lm.lm_members``)."""

    name, reads, writes, timing, cached = "members", ("learner", "view"), ("members",), "members", True

    def cache_key(self, context: RunContext) -> str:
        return _member_key(context)

    def run(self, context: RunContext) -> Any:
        from influence_stage.engine.causal_lm import lm_members

        c = context.config
        return lm_members(context["learner"], context["view"], chains=c.chains, cycles=c.cycles, steps=c.cycle_steps,
                          ft_lr=c.ft_lr, seed=c.seed, progress=c.progress)


class LossMatrix(Step):
    """One streaming pass per member: the loss matrix and the exact GEX self-influence (``corpus_gex``)."""

    name, reads, writes, timing, cached = "loss-matrix", ("learner", "view", "members"), ("scores",), "scores", True

    def cache_key(self, context: RunContext) -> str:
        return digest(_member_key(context), "loss", context.config.tau, context.config.batch_tokens)

    def run(self, context: RunContext) -> Any:
        from influence_stage.engine.causal_lm import corpus_gex

        c = context.config
        res = corpus_gex(context["learner"], context["view"], members=context["members"], ft_lr=c.ft_lr, tau=c.tau,
                         progress=c.progress)
        return {"self_influence": res.self_influence, "base_loss": res.base_loss,
                "loss_matrix": np.asarray(res.loss_matrix), "timings": res.timings}


class Prune(Step):
    """The budget on the self-influence (``decisions.prune``) and the manifest of every input document."""

    name, reads, writes, timing, task = ("prune", ("scores", "inventory", "scored", "n_keep"), ("pruned", "manifest"),
                                         "write + validate", False)

    def run(self, context: RunContext) -> Any:
        scores = context["scores"]
        result = prune(scores["self_influence"], context["n_keep"], high_share=context.config.high_share)
        return result, build_manifest(context["inventory"], context["scored"], scores["self_influence"],
                                      scores["base_loss"], result)


class WriteCurated(Step):
    """The kept documents, every input column plus ``row_id`` and ``self_influence``, as a Dataset memory-mapped
    from Arrow files under a working folder (never held whole in memory; removed when the run ends)."""

    name, reads, writes, timing = "write-curated", ("corpus", "manifest"), ("curated",), "write + validate"

    def run(self, context: RunContext) -> Any:
        import datasets

        workdir = context.values.setdefault("workdir", tempfile.TemporaryDirectory(prefix="curate-"))
        manifest = context["manifest"]
        keep = manifest["status"].eq("kept").to_numpy()
        path = Path(workdir.name) / "curated.parquet"
        context["corpus"].write_parquet(path, keep, extra={ROW_ID: manifest[ROW_ID].to_numpy(),
                                                           "self_influence": manifest["score"].to_numpy()})
        return datasets.Dataset.from_parquet(str(path), cache_dir=str(Path(workdir.name) / "arrow"))


class ValidateCorpus(Step):
    """The ``corpus`` suite on the curated documents and the manifest; a failure stops the run, nothing is published."""

    name, reads, writes, timing = ("validate-corpus", ("curated", "manifest", "pruned", "scored"), ("report",),
                                   "write + validate")

    def run(self, context: RunContext) -> Any:
        from influence_stage.quality.corpus import document_frame, validate_corpus

        c, n_scored = context.config, int(context["scored"].sum())
        n_keep = context["pruned"].n_keep
        report = validate_corpus(document_frame(context["curated"], c.text_column), context["manifest"],
                                 n_input=len(context["corpus"]), n_scored=n_scored,
                                 budget_fraction=n_keep / max(n_scored, 1)
                                 if isinstance(c.budget, numbers.Integral) else float(c.budget),
                                 min_chars=c.min_chars, max_chars=c.max_chars, dedup=c.dedup)
        report.raise_if_failed()
        return report


class CorpusReport(Step):
    """The run's summary and the HTML report (score histogram, samples, near-duplicate groups)."""

    name, reads, writes, timing, task = ("report", ("manifest", "pruned", "near", "inventory"), ("summary", "html"),
                                         "report + publish", False)

    def run(self, context: RunContext) -> Any:
        from influence_stage.report.corpus import build_corpus_report, sample_rows

        c, manifest, result, near = context.config, context["manifest"], context["pruned"], context["near"]
        n_scored = int(context["scored"].sum())
        samples = sample_rows(manifest)
        wanted = {i for ids in samples.values() for i in ids} | {g[0] for g in near[:10]}
        texts = texts_of(context["corpus"], wanted)
        counts = manifest["status"].value_counts().to_dict()
        summary = {"documents in": int(len(context["inventory"])), "documents scored": n_scored,
                   "documents kept": int(result.n_keep), **{f"status {k}": int(v) for k, v in sorted(counts.items())},
                   "budget": c.budget, "high share": c.high_share,
                   "kept fraction of scored": round(result.n_keep / n_scored, 6),
                   "near-duplicate groups": len(near), "members": c.chains * c.cycles,
                   "ft_lr": c.ft_lr, "trainable": c.trainable, "model": c.model,
                   "low cut": result.low_cut, "high cut": result.high_cut}
        seconds = {f"seconds {k}": round(v, 3) for k, v in context.timings.items()}
        html = build_corpus_report(manifest, texts=texts, summary={**summary, **seconds}, low_cut=result.low_cut,
                                   high_cut=result.high_cut, near_duplicates=near,
                                   title=f"influence_stage curation: {c.name}")
        return summary, html


class PublishCorpus(Step):
    """The curated corpus published as a version, with the manifest, the report and the near-duplicate groups."""

    name, reads, writes, timing = ("publish", ("curated", "manifest", "report", "html", "near", "summary"),
                                   ("published",), "report + publish")

    def run(self, context: RunContext) -> Any:
        from influence_stage.publish.versions import publish

        c = context.config
        extra = {"near_duplicates.json": json.dumps(context["near"]).encode()}
        return publish(context["curated"], context["manifest"], root=c.publish_root, name=c.name,
                       config=c.model_dump(mode="json"), validation_reports=[context["report"]],
                       report_html=context["html"], extra_files=extra, fingerprint=context.fingerprint,
                       summary=context["summary"])


class CurateOutcome(Step):
    """The run's outcome: the summary with the published path, the timings and a markdown table."""

    name, reads, timing, task = "outcome", ("published", "summary"), "outcome", False

    def run(self, context: RunContext) -> Any:
        published, summary = context["published"], context["summary"]
        summary["published"] = str(published.path)
        summary["report"] = str(Path(published.path) / "report.html")
        summary["timings"] = context.timings.rounded()
        summary["seconds"] = round(sum(context.timings.values()), 2)
        summary["markdown"] = "\n".join(["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in summary.items()
                                                                 if k not in ("timings",)])
        logger.info("published %s (%d → %d documents)", published.path, summary["documents in"],
                    summary["documents kept"])
        context.stop(summary)


CURATE = Plan("curate", (CuratePreflight(), Inventory(), Budget(), LoadModel(), AdaptTheta(), LMMembers(),
                         LossMatrix(), Prune(), WriteCurated(), ValidateCorpus(), CorpusReport(), PublishCorpus(),
                         CurateOutcome()))
"""The curation flow's step order."""


def cleanup(context: RunContext) -> None:
    """Remove the run's working folder (the curated Arrow files), once the run ended or failed."""
    workdir = context.values.pop("workdir", None)
    if workdir is not None:
        workdir.cleanup()


__all__ = ["CURATE", "build_manifest", "cleanup", "load_learner", "preflight", "texts_of"]

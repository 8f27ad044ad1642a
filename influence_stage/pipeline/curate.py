"""The curation steps and their plan, ``CURATE``: a smaller corpus of the same worth, scored by a language model.

preflight → inventory (exact and, with ``near_dedup``, MinHash near-duplicate removal) → budget →
load ``θ*`` → tokenize (once, an Arrow file reused by every pass and by a re-run) → adapt ``θ*`` → members
(batches drawn from the whole corpus) → loss matrix (one work unit per document range × pass, each
with a done-flag) → prune → write the curated corpus (Parquet shards under a size limit) →
validate (the ``corpus`` suite) → report → publish → outcome

They read the flow's ``CurateConfig`` as ``RunContext.config`` and never import Prefect. The
expensive results (the adapted ``θ*``, the members, the loss matrix) are cached steps whose keys are the
corpus fingerprint (its shards' bytes), the model folder's digest and the settings that affect them.
Timing labels group the steps as the run's summary reports them (``inventory``, ``θ*``,
``members``, ``scores``, ``write + validate``, ``report + publish``).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import numbers
import os
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
from influence_stage.pipeline.step import MappedStep, Plan, Step, WorkUnits

logger = logging.getLogger(__name__)


def load_learner(config: Any) -> Any:
    """``θ*`` as the configuration names it: ``CausalLMLearner.from_pretrained`` of ``config.model``."""
    from influence_stage.engine.causal_lm import CausalLMLearner

    return CausalLMLearner.from_pretrained(config.model, trainable=config.trainable, max_length=config.max_length,
                                           max_chunks=config.max_chunks, batch_size=config.batch_size,
                                           batch_tokens=config.batch_tokens, device=config.device,
                                           eval_dtype=config.eval_dtype)


def preflight(config: Any) -> Corpus:
    """The cheap checks before anything is scored: shards and columns, the model folder, the budget."""
    from influence_stage.engine.hf import pretrained_digest
    from influence_stage.publish.versions import check_name

    check_name(config.name)
    corpus = Corpus(config.source, text_column=config.text_column, id_column=config.id_column)
    empty = [str(f) for f, n in zip(corpus.files, corpus.shard_rows()) if n == 0]
    if empty:
        raise InvalidInputError(f"corpus shard(s) {empty[:3]} hold 0 rows; every shard must hold documents. Fix: "
                                "remove the empty shards or point source at the others.")
    pretrained_digest(config.model)  # the folder exists
    check_budget(config.budget, len(corpus))  # against the input count; the scored count is checked later
    if config.score == "reference":
        reference_texts(config)
    return corpus


def reference_texts(config: Any) -> list[str]:
    """The reference corpus's documents (``config.reference``, same text column), non-empty, in memory."""
    ref = Corpus(config.reference, text_column=config.text_column)
    texts = [t for t in ref.iter_texts() if isinstance(t, str) and t.strip()]
    if not texts:
        raise InvalidInputError(f"the reference corpus {config.reference!r} holds no non-empty document; "
                                "score: reference needs a few documents of the domain to select toward.")
    return texts


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
    """``preflight``: the corpus, opened and checked."""

    name, writes, timing, task = "preflight", ("corpus",), "inventory", False

    def run(self, context: RunContext) -> Any:
        return preflight(context.config)


class Inventory(Step):
    """One streaming pass: lengths, content hashes, exact duplicates, near-duplicate keys."""

    name, reads, writes, timing = "inventory", ("corpus",), ("inventory",), "inventory"

    def run(self, context: RunContext) -> Any:
        c = context.config
        inv = inventory(context["corpus"], min_chars=c.min_chars, max_chars=c.max_chars, dedup=c.dedup,
                        skip_invalid=c.skip_invalid, progress=c.progress)
        if c.near_dedup is not None:
            inv = remove_near_duplicates(context["corpus"], inv, threshold=c.near_dedup)
        return inv


def remove_near_duplicates(corpus: Corpus, inv: pd.DataFrame, *, threshold: float) -> pd.DataFrame:
    """The inventory with MinHash near duplicates of earlier documents marked ``duplicate``.

    Only documents still ``ok`` are compared (``data.dedup.near_duplicate_of``, one streaming pass);
    a near duplicate's ``duplicate_of`` is the row of the earlier document it matched, whose
    content hash differs from its own (the manifest tells exact from near duplicates that way).
    """
    from influence_stage.data.dedup import near_duplicate_of

    ok = inv["status"].eq("ok").to_numpy()
    rows = np.flatnonzero(ok)
    of = near_duplicate_of(corpus.iter_texts(rows=ok), threshold=threshold)
    hit = of >= 0
    out = inv.copy()
    status = out["status"].to_numpy(dtype=object).copy()
    dup = out["duplicate_of"].to_numpy(dtype=np.int64).copy()
    status[rows[hit]] = "duplicate"
    dup[rows[hit]] = rows[of[hit]]
    out["status"], out["duplicate_of"] = status, dup
    logger.info("near duplicates (MinHash, threshold %.2f): %d removed", threshold, int(hit.sum()))
    return out


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
                          c.skip_invalid, c.max_length, c.max_chunks,
                          *(() if c.near_dedup is None else ("near", c.near_dedup)))
        return scored, n_keep, near, corpus.where(scored), data_key


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
    """``θ*`` adapted to the corpus (``fit_steps`` AdamW steps); the full state dict is cached and loaded
    into ``θ*``."""

    name, reads, writes, timing, cached = "adapt-theta", ("tokens", "data_key"), ("adapted",), "θ*", True

    def applies(self, context: RunContext) -> bool:
        return bool(context.config.fit_steps)

    def cache_key(self, context: RunContext) -> str:
        c = context.config
        return digest(context["data_key"], "adapt", c.fit_steps, c.fit_lr, c.seed, c.batch_size, c.trainable)

    def run(self, context: RunContext) -> Any:
        c = context.config
        learner = load_learner(c)
        logger.info("adapting θ* to the corpus: %d steps", c.fit_steps)
        learner.fit(context["tokens"], steps=c.fit_steps, lr=c.fit_lr, warmup=max(c.fit_steps // 10, 1), seed=c.seed,
                    progress=c.progress)
        return {k: v.detach().clone() for k, v in learner.model.state_dict().items()}

    def store(self, context: RunContext, value: Any) -> None:
        super().store(context, value)
        if value is not None:
            context["learner"].model.load_state_dict(value)


def _member_key(context: RunContext) -> str:
    c = context.config
    return digest(context["data_key"], "members", c.fit_steps, c.fit_lr, c.trainable, c.chains, c.cycles,
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


def score_pass(learner: Any, tokens: Any, member: str | None, start: int, stop: int, out: str) -> bool:
    """One scoring work unit: the losses of documents ``start .. stop - 1`` at ``θ*`` (``member`` None) or at
    the member saved in ``member``, saved to ``out`` (``.npy``) with a done-flag ``out + ".done"``.

    A unit whose done-flag exists returns at once; returns whether it evaluated the pass. The
    learner is copied first, so units on threads of one process never share weights.
    """
    import torch

    done = Path(out + ".done")
    if done.exists():
        return False
    own = copy.copy(learner)
    own.model = copy.deepcopy(learner.model)
    if member is not None:
        own.set_state(torch.load(member, map_location=own.device, weights_only=True))
    losses = own.per_sample_loss(tokens.slice(start, stop))
    tmp = Path(f"{out}.{os.getpid()}.tmp.npy")
    np.save(tmp, losses)
    os.replace(tmp, out)
    done.touch()
    return True


class LossMatrix(MappedStep):
    """The loss matrix and the exact GEX self-influence, as work units: one per (document range ×
    pass), a pass being ``θ*`` or one member (``score_pass``).

    Everything lives under ``cache_dir/curate/<key>/``: the members' states (``members/<m>.pt``), each
    unit's losses and done-flag (``passes/``), the gathered matrix (``loss_matrix.npy``, memory
    mapped). After a kill, a re-run evaluates only the units without a done-flag. ``shard_docs``
    documents per range.
    """

    name, reads, writes, timing = "loss-matrix", ("learner", "tokens", "members"), ("scores",), "scores"
    unit_name = "score-pass"
    unit_retries = 1

    def _folder(self, context: RunContext) -> Path:
        c = context.config
        key = digest(_member_key(context), "passes", c.batch_tokens, c.eval_dtype)
        return Path(c.cache_dir).resolve() / "curate" / key

    def units(self, context: RunContext) -> WorkUnits:
        import torch

        c, folder, members = context.config, self._folder(context), context["members"]
        (folder / "members").mkdir(parents=True, exist_ok=True)
        (folder / "passes").mkdir(parents=True, exist_ok=True)
        paths: list[str | None] = [None]
        for m, state in enumerate(members):
            path = folder / "members" / f"{m}.pt"
            if not path.exists():
                tmp = path.with_name(f".{m}.{os.getpid()}.tmp")
                torch.save(state, tmp)
                os.replace(tmp, path)
            paths.append(str(path))
        n = len(context["tokens"])
        ranges = [(s, min(s + c.shard_docs, n)) for s in range(0, n, c.shard_docs)]
        items, names = [], []
        for p, member in enumerate(paths):
            tag = "theta" if member is None else f"m{p - 1}"
            for s, e in ranges:
                items.append({"member": member, "start": s, "stop": e,
                              "out": str(folder / "passes" / f"{tag}-{s}-{e}.npy")})
                names.append(f"score-pass {tag} docs {s}-{e}")
        context.values["pass_folder"] = folder
        return WorkUnits(fn=score_pass, shared={"learner": context["learner"], "tokens": context["tokens"]},
                         items=items, names=names, bounded=True)

    def run(self, context: RunContext) -> Any:
        units = self.units(context)
        return self.gather(context, units, [units.fn(**units.shared, **item) for item in units.items])

    def gather(self, context: RunContext, units: WorkUnits, results: list[Any]) -> Any:
        from influence_stage.engine.influence import self_influence

        folder, n, n_members = context["pass_folder"], len(context["tokens"]), len(context["members"])
        L = np.lib.format.open_memmap(str(folder / "loss_matrix.npy"), mode="w+", dtype=np.float32,
                                      shape=(n, n_members))
        base = np.empty(n, dtype=np.float32)
        for item in units.items:
            col = np.load(item["out"])
            s, e = item["start"], item["stop"]
            if len(col) != e - s:
                raise InvalidInputError(f"scoring pass {item['out']} holds {len(col)} losses for documents {s}..{e}; "
                                        "the pass file is stale. Fix: remove the cache folder "
                                        f"{str(folder)!r} and run again.")
            if item["member"] is None:
                base[s:e] = col
            else:
                L[s:e, int(Path(item["member"]).stem)] = col
        L.flush()
        evaluated = int(sum(bool(r) for r in results))
        context.values["passes_evaluated"] = evaluated
        logger.info("scoring passes: %d evaluated, %d reused from their done-flags", evaluated,
                    len(results) - evaluated)
        return {"self_influence": self_influence(L, base, tau=context.config.tau), "base_loss": base,
                "loss_matrix": L, "timings": {}}


class ReferenceLosses(Step):
    """``score: reference``: the reference corpus's losses at ``θ*`` ``(r,)`` and at each member ``(r, M)``,
    in process (the reference is small)."""

    name, reads, writes, timing = "reference-losses", ("learner", "members"), ("reference",), "scores"

    def applies(self, context: RunContext) -> bool:
        return context.config.score == "reference"

    def run(self, context: RunContext) -> Any:
        learner, members = context["learner"], context["members"]
        texts = reference_texts(context.config)
        start = learner.get_state()
        base = learner.per_sample_loss(texts)
        L = np.empty((len(texts), len(members)), dtype=np.float32)
        try:
            for m, state in enumerate(members):
                learner.set_state(state)
                L[:, m] = learner.per_sample_loss(texts)
        finally:
            learner.set_state(start)
        return {"base_loss": base, "loss_matrix": L}


def reference_influence(scores: dict[str, Any], reference: dict[str, Any]) -> np.ndarray:
    """Each document's GEX cross-influence on the reference's mean loss (``influence.mean_test_loss_influence``
    of the loss deviations from ``θ*``), ``(n,) float64``: higher, its losses move with the reference's."""
    from influence_stage.engine.influence import mean_test_loss_influence

    D = np.asarray(scores["loss_matrix"], dtype=np.float64) - scores["base_loss"].astype(np.float64)[:, None]
    R = reference["loss_matrix"].astype(np.float64) - reference["base_loss"].astype(np.float64)[:, None]
    return mean_test_loss_influence(D, R)


class Prune(Step):
    """The budget on the run's score (``decisions.prune``) and the manifest of every input document.

    ``score: self``: the self-influence, removals from both ends by ``high_share``. ``score:
    reference``: the cross-influence on the reference (``reference_influence``), the documents
    that help it least removed (status ``redundant``).
    """

    name, reads, writes, timing, task = ("prune", ("scores", "inventory", "scored", "n_keep"), ("pruned", "manifest"),
                                         "write + validate", False)

    def run(self, context: RunContext) -> Any:
        scores = context["scores"]
        score = scores["self_influence"]
        if context.config.score == "reference":
            score = reference_influence(scores, context["reference"])
        result = prune(score, context["n_keep"], high_share=context.config.high_share)
        return result, build_manifest(context["inventory"], context["scored"], score, scores["base_loss"], result)


class WriteCurated(Step):
    """The kept documents, every input column plus ``row_id`` and ``self_influence``, as a Dataset memory-mapped
    from Arrow files under a working folder (never held whole in memory; removed when the run ends)."""

    name, reads, writes, timing = "write-curated", ("corpus", "manifest"), ("curated",), "write + validate"

    def run(self, context: RunContext) -> Any:
        import datasets

        c = context.config
        workdir = context.values.setdefault("workdir", tempfile.TemporaryDirectory(prefix="curate-"))
        manifest = context["manifest"]
        keep = manifest["status"].eq("kept").to_numpy()
        paths = context["corpus"].write_parquet_shards(
            Path(workdir.name) / "shards", keep, extra={ROW_ID: manifest[ROW_ID].to_numpy(),
                                                       "self_influence": manifest["score"].to_numpy(),
                                                       "base_loss": manifest["base_loss"].to_numpy()},
            max_rows=c.output_shard_rows, max_bytes=c.output_shard_bytes)
        context.values["output_shards"] = paths
        return datasets.Dataset.from_parquet([str(p) for p in paths], cache_dir=str(Path(workdir.name) / "arrow"))


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
                   "budget": c.budget, "high share": c.high_share, "score": c.score,
                   "kept fraction of scored": round(result.n_keep / n_scored, 6),
                   "near-duplicate groups": len(near), "members": c.chains * c.cycles,
                   "ft_lr": c.ft_lr, "trainable": c.trainable, "model": c.model,
                   "low cut": result.low_cut, "high cut": result.high_cut,
                   "member steps per cycle": cycle_steps(c, n_scored),
                   "scoring passes evaluated": int(context.get("passes_evaluated", 0)),
                   "output shards": len(context.get("output_shards", []))}
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
        for path in context.get("output_shards", []):  # the curated corpus as Parquet shards under the size limit
            extra[f"shards/{path.name}"] = path.read_bytes()
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


CURATE = Plan("curate", (CuratePreflight(), Inventory(), Budget(), LoadModel(), Tokenize(), AdaptTheta(), LMMembers(),
                         LossMatrix(), ReferenceLosses(), Prune(), WriteCurated(), ValidateCorpus(), CorpusReport(),
                         PublishCorpus(), CurateOutcome()))
"""The curation flow's step order."""


def cleanup(context: RunContext) -> None:
    """Remove the run's working folder (the curated Arrow files), once the run ended or failed."""
    workdir = context.values.pop("workdir", None)
    if workdir is not None:
        workdir.cleanup()


__all__ = ["CURATE", "build_manifest", "cleanup", "cycle_steps", "load_learner", "preflight",
           "reference_influence", "reference_texts", "remove_near_duplicates", "score_pass",
           "texts_of"]

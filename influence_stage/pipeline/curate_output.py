"""The curation plan's last steps: the budget applied, the curated shards written, validated, reported, published.

Steps of ``influence_stage.pipeline.curate.CURATE``.
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
from influence_stage.decisions.prune import prune
from influence_stage.errors import InvalidInputError
from influence_stage.pipeline.context import RunContext
from influence_stage.pipeline.curate_inputs import texts_of
from influence_stage.pipeline.curate_model import cycle_steps
from influence_stage.pipeline.curate_scores import reference_influence
from influence_stage.pipeline.step import Step

logger = logging.getLogger(__name__)


def build_manifest(inv: pd.DataFrame, scored: np.ndarray, scores: np.ndarray, base_loss: np.ndarray,
                   result: Any) -> pd.DataFrame:
    """One row per input document (``validation`` suite ``corpus``'s ``MANIFEST_COLUMNS``).

    The text columns (``doc_id``, ``status``, ``action``, ``content_hash``) are built as Arrow strings
    (pandas' ``str`` dtype) without a Python string per document, so a million-row manifest costs its
    Arrow buffers and no more."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(inv)
    full_score = np.full(n, np.nan)
    full_base = np.full(n, np.nan)
    idx = np.flatnonzero(scored)
    full_score[idx] = scores
    full_base[idx] = base_loss
    mask = np.zeros(n, dtype=bool)
    mask[idx] = True
    status = _arrow_strings(inv["status"])
    status = pc.replace_with_mask(status, pa.array(mask),
                                  pa.array(np.asarray(result.reason, dtype=object), type=status.type))
    action = pc.if_else(pc.equal(status, "kept"), "keep", "drop")
    ids = inv["doc_id"]
    doc_id = (pc.cast(pa.array(ids.to_numpy(dtype=np.int64)), pa.string()) if ids.dtype == np.int64
              else _arrow_strings(ids.astype(str)))
    return pd.DataFrame({
        ROW_ID: inv["row"].to_numpy(dtype=np.int64),
        "doc_id": doc_id.to_pandas(),
        "status": status.to_pandas(),
        "action": action.to_pandas(),
        "score": full_score,
        "base_loss": full_base,
        "n_chars": inv["n_chars"].to_numpy(dtype=np.int64),
        "content_hash": _arrow_strings(inv["content_hash"]).to_pandas(),
        "duplicate_of": inv["duplicate_of"].to_numpy(dtype=np.int64),
    })


def _arrow_strings(column: pd.Series) -> Any:
    """A text column as one Arrow string array (its own buffers when it is already Arrow-backed)."""
    import pyarrow as pa

    arr = pa.array(column.astype("str").array)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def document_tokens(learner: Any, tokens: Any) -> np.ndarray:
    """Tokens of each scored document as the tokenizer counts them, whole (the ``bos`` the learner puts in
    front not counted; ``max_chunks`` does not cut them), ``(n,) int64``."""
    n = tokens.n_tokens()
    bos = bool(getattr(learner, "add_bos", False)) and getattr(learner.tokenizer, "bos_token_id", None) is not None
    return n - int(bos)


def prune_to_tokens(score: np.ndarray, n_tokens: np.ndarray, n_keep: int, budget_tokens: int, *,
                    high_share: float = 0.0) -> Any:
    """``decisions.prune`` for the largest count ``k <= n_keep`` whose kept documents hold at most ``budget_tokens``.

    The kept set of ``prune(score, k)`` grows by one document as ``k`` grows (from the top of the
    ranking, or with ``high_share`` from whichever end the count budget would give back), so this
    keeps documents in score order until the next one would pass the token budget: with
    ``high_share = 0`` the kept set is the best-scored prefix of the ranking. Bisection over ``k``.

    Raises
    ------
    InvalidInputError
        Not even the first document in that order fits the token budget.
    """
    def kept_tokens(k: int) -> tuple[Any, int]:
        result = prune(score, k, high_share=high_share)
        return result, int(n_tokens[result.reason == "kept"].sum())

    best, used = kept_tokens(1)
    if used > budget_tokens:
        raise InvalidInputError(f"budget_tokens {budget_tokens} keeps no document: the first document in score order "
                                f"holds {used} tokens. Fix: raise budget_tokens.")
    lo, hi = 1, int(n_keep)  # kept_tokens(lo) fits; find the largest k that fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        result, used = kept_tokens(mid)
        if used <= budget_tokens:
            lo, best = mid, result
        else:
            hi = mid - 1
    return best


class Prune(Step):
    """The budget on the run's score (``decisions.prune``) and the manifest of every input document.

    ``score: self``: the self-influence, removals from both ends by ``high_share``.
    ``score: self_or_perplexity``: the larger of the self-influence's and the loss per character's rank
    fractions (``engine.lm_scores``), removals from both ends by ``high_share``. ``score:
    reference``: the cross-influence on the reference (``reference_influence``), the documents
    that help it least removed (status ``redundant``). With ``budget_tokens`` the kept set also
    holds at most that many tokens (``prune_to_tokens``); ``context.values["doc_tokens"]`` keeps
    each scored document's tokens for the output and the summary.
    """

    name, reads, writes, timing, task = ("prune", ("scores", "inventory", "scored", "n_keep", "tokens", "learner"),
                                         ("pruned", "manifest"), "write + validate", False)

    def run(self, context: RunContext) -> Any:
        c, scores = context.config, context["scores"]
        score = scores["self_influence"]
        n_tokens = document_tokens(context["learner"], context["tokens"])
        context.values["doc_tokens"] = n_tokens
        if c.score == "reference":
            score = reference_influence(scores, context["reference"])
        elif c.score == "self_or_perplexity":
            from influence_stage.engine.lm_scores import loss_per_char, self_or_perplexity

            n_chars = context["inventory"]["n_chars"].to_numpy()[np.asarray(context["scored"], dtype=bool)]
            score = self_or_perplexity(score, loss_per_char(scores["base_loss"], n_tokens, n_chars))
        if c.budget_tokens is None:
            result = prune(score, context["n_keep"], high_share=c.high_share)
        else:
            result = prune_to_tokens(score, n_tokens, context["n_keep"], c.budget_tokens, high_share=c.high_share)
        manifest = build_manifest(context["inventory"], context["scored"], score, scores["base_loss"], result)
        # the manifest now holds every input row's fields; no later step reads the inventory, so it is let go
        # (about as large as the manifest: one Arrow row per input document) before the output is written
        context.values.pop("inventory", None)
        return result, manifest


class WriteCurated(Step):
    """The kept documents, every input column plus ``row_id``, ``self_influence`` (GEX self-influence),
    ``score`` (the run's score, where it is not the self-influence), ``base_loss`` and ``n_tokens``, as
    Parquet shards under the size limits and a Dataset memory-mapped from them under a working folder (never
    held whole in memory; removed when the run ends)."""

    name, reads, writes, timing = ("write-curated", ("corpus", "manifest", "scored", "scores"), ("curated",),
                                   "write + validate")

    def run(self, context: RunContext) -> Any:
        import datasets

        c = context.config
        workdir = context.values.setdefault("workdir", tempfile.TemporaryDirectory(prefix="curate-"))
        manifest = context["manifest"]
        keep = manifest["status"].eq("kept").to_numpy()
        n_tokens = np.full(len(manifest), -1, dtype=np.int64)
        rows = np.flatnonzero(context["scored"])
        n_tokens[rows] = context["doc_tokens"]
        self_influence = np.full(len(manifest), np.nan)
        self_influence[rows] = context["scores"]["self_influence"]
        extra = {ROW_ID: manifest[ROW_ID].to_numpy(), "self_influence": self_influence}
        if c.score != "self":  # the manifest's score is another ranking: written beside the self-influence
            extra["score"] = manifest["score"].to_numpy()
        extra.update(base_loss=manifest["base_loss"].to_numpy(), n_tokens=n_tokens)
        paths = context["corpus"].write_parquet_shards(Path(workdir.name) / "shards", keep, extra=extra,
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
                                 if isinstance(c.budget, numbers.Integral) or c.budget_tokens is not None
                                 else float(c.budget),
                                 min_chars=c.min_chars, max_chars=c.max_chars, dedup=c.dedup)
        report.raise_if_failed()
        return report


#: The manifest columns the HTML report reads (``report.corpus.build_corpus_report`` and ``sample_rows``).
REPORT_COLUMNS: tuple[str, ...] = (ROW_ID, "status", "score", "base_loss")


class CorpusReport(Step):
    """The run's summary and the HTML report (score histogram, samples, near-duplicate groups)."""

    name, reads, writes, timing, task = ("report", ("manifest", "pruned", "near"), ("summary", "html"),
                                         "report + publish", False)

    def run(self, context: RunContext) -> Any:
        from influence_stage.report.corpus import build_corpus_report, sample_rows

        c, result, near = context.config, context["pruned"], context["near"]
        # the columns the report reads: its row copies (scored rows, sorted, indexed by row_id) then hold four
        # numbers a document, not the manifest's hashes and ids
        manifest = context["manifest"][list(REPORT_COLUMNS)]
        n_scored = int(context["scored"].sum())
        samples = sample_rows(manifest)
        wanted = {i for ids in samples.values() for i in ids} | {g[0] for g in near[:10]}
        texts = texts_of(context["corpus"], wanted)
        counts = manifest["status"].value_counts().to_dict()
        summary = {"documents in": int(len(manifest)), "documents scored": n_scored,  # one manifest row per input
                   "documents kept": int(result.n_keep), **{f"status {k}": int(v) for k, v in sorted(counts.items())},
                   "budget": c.budget, "budget tokens": c.budget_tokens,
                   "tokens kept": int(context["doc_tokens"][context["pruned"].reason == "kept"].sum()),
                   "high share": c.high_share, "score": c.score,
                   "kept fraction of scored": round(result.n_keep / n_scored, 6),
                   "near-duplicate groups": len(near), "members": c.chains * c.cycles,
                   "ft_lr": c.ft_lr, "trainable": c.trainable, "model": c.model,
                   "low cut": result.low_cut, "high cut": result.high_cut,
                   "member steps per cycle": cycle_steps(c, n_scored),
                   "scoring passes evaluated": int(context.get("passes_evaluated", 0)),
                   "θ* adaptation steps": c.adapt_steps,
                   "θ* adaptation steps run": int(context.get("adapt_steps_run", 0)),
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
        # the curated corpus as Parquet shards under the size limit, copied file to file (not read into memory)
        for path in context.get("output_shards", []):
            extra[f"shards/{path.name}"] = Path(path)
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


__all__ = ["CorpusReport", "CurateOutcome", "Prune", "PublishCorpus", "ValidateCorpus", "WriteCurated", "build_manifest",
           "document_tokens", "prune_to_tokens"]

"""The curation plan's first steps: the corpus checked and inventoried, the budget, the reference corpus.

``preflight`` runs the cheap checks before anything is scored; ``Inventory`` is one streaming pass
(lengths, hashes, exact and, with ``near_dedup``, MinHash near duplicates); ``Budget`` fixes the
documents to score and the data's cache key. Steps of ``influence_stage.pipeline.curate.CURATE``.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from influence_stage.data.corpus import Corpus, inventory, near_duplicate_groups
from influence_stage.decisions.prune import check_budget
from influence_stage.errors import InvalidInputError
from influence_stage.pipeline.context import RunContext, digest
from influence_stage.pipeline.step import Step

logger = logging.getLogger(__name__)


def load_learner(config: Any) -> Any:
    """``θ*`` as the configuration names it: ``CausalLMLearner.from_pretrained`` of ``config.model``."""
    from influence_stage.engine.causal_lm import CausalLMLearner

    return CausalLMLearner.from_pretrained(config.model, trainable=config.trainable, max_length=config.max_length,
                                           max_chunks=config.max_chunks, batch_size=config.batch_size,
                                           batch_tokens=config.batch_tokens, device=config.device,
                                           eval_dtype=config.eval_dtype)


def count_budget(config: Any) -> float | int:
    """The document budget: ``config.budget``, or 1.0 (every scored document) when only ``budget_tokens`` limits."""
    return 1.0 if config.budget is None else config.budget


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
    check_budget(count_budget(config), len(corpus))  # against the input count; the scored count is checked later
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
    out = inv.copy(deep=False)  # the other columns are shared (copy on write), only two are replaced
    near = np.zeros(len(inv), dtype=bool)
    near[rows[hit]] = True
    dup = out["duplicate_of"].to_numpy(dtype=np.int64).copy()
    dup[rows[hit]] = rows[of[hit]]
    # the status column stays an Arrow string column (no Python string per document)
    out["status"], out["duplicate_of"] = out["status"].mask(near, "duplicate"), dup
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
        n_keep = check_budget(count_budget(c), n_scored)
        near = near_duplicate_groups(inv)
        context.values["fingerprint"] = corpus.fingerprint()
        data_key = digest(context.fingerprint, pretrained_digest(c.model), c.min_chars, c.max_chars, c.dedup,
                          c.skip_invalid, c.max_length, c.max_chunks,
                          *(() if c.near_dedup is None else ("near", c.near_dedup)))
        return scored, n_keep, near, corpus.where(scored), data_key


__all__ = ["Budget", "CuratePreflight", "Inventory", "count_budget", "load_learner", "preflight", "reference_texts", "remove_near_duplicates", "texts_of"]

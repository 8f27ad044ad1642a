"""The curation plan's scoring steps: the loss matrix as work units with done-flags; for ``score: reference`` the
reference members and the documents' losses under them (work units too), the reference's own losses.

Steps of ``influence_stage.pipeline.curate.CURATE``; ``score_pass`` is one work unit, run in
process, as a Prefect task or on a Dask worker.
"""

from __future__ import annotations

import copy
from abc import abstractmethod
import functools
import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from influence_stage.memory import release_free_memory
from influence_stage.errors import InvalidInputError
from influence_stage.pipeline.context import RunContext, digest
from influence_stage.pipeline.curate_inputs import reference_texts
from influence_stage.pipeline.curate_model import _member_key
from influence_stage.pipeline.step import MappedStep, Step, WorkUnits

logger = logging.getLogger(__name__)


def score_pass(learner: Any, tokens: Any, member: str | None, start: int, stop: int, out: str) -> bool:
    """One scoring work unit: the losses of documents ``start .. stop - 1`` at ``θ*`` (``member`` None) or at
    the member saved in ``member``, saved to ``out`` (``.npy``) with a done-flag ``out + ".done"``.

    A unit whose done-flag exists returns at once; returns whether it evaluated the pass. The
    learner is copied first, so units on threads of one process never share weights. The memory the
    unit freed is handed back to the operating system at its end (``memory.release_free_memory``).
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
    del own, losses
    release_free_memory()  # the unit's model copy, token slice and activations, kept by the allocators otherwise
    return True


def check_shards(files: list[str], recorded: list[tuple[int, int]]) -> None:
    """InvalidInputError when a corpus shard disappeared or changed since the run opened it (``files`` and their
    ``(size, mtime_ns)`` then); a work unit's ``check``, so a run stops scoring as soon as it sees it."""
    from influence_stage.data.corpus_shards import shards_changed_error

    err = shards_changed_error([Path(f) for f in files], recorded)
    if err is not None:
        raise err


def remove_torn_files(folder: Path, outs: list[str]) -> list[Path]:
    """Delete the half-written files a killed run of the stage left in ``folder``; returns them.

    Only the stage's own temporary names are touched: ``<pass file>.<pid>.tmp.npy`` next to each of
    ``outs`` (a scoring unit killed while saving) and ``members/.<m>.<pid>.tmp`` (a member state killed
    while saving). Anything else in the folder stays.
    """
    torn: list[Path] = []
    names = {Path(o).name for o in outs}
    pass_tmp = re.compile(r"(?P<out>.+\.npy)\.\d+\.tmp\.npy")
    for path in (folder / "passes").glob("*.tmp.npy"):
        m = pass_tmp.fullmatch(path.name)
        if m and m["out"] in names:
            torn.append(path)
    member_tmp = re.compile(r"\.\d+\.\d+\.tmp")
    torn += [p for p in (folder / "members").glob(".*.tmp") if member_tmp.fullmatch(p.name)]
    for path in torn:
        path.unlink(missing_ok=True)
    if torn:
        logger.info("removed %d half-written file(s) of an interrupted run under %s", len(torn), folder)
    return torn


class _Passes(MappedStep):
    """A step whose work is forward passes of saved member states over document ranges, one work unit per
    (range × pass) (``score_pass``), with done-flags under ``cache_dir/curate/<key>/``: the states in
    ``members/<m>.pt``, each unit's losses in ``passes/<tag>-<start>-<stop>.npy``. After a kill, a re-run
    first deletes the half-written files the killed run left (``remove_torn_files``), then evaluates only the
    units without a done-flag. Between units the corpus shards are checked against their stamps."""

    unit_retries = 1
    #: context value holding the member states; context value the folder goes to; whether θ* is a pass too;
    #: the prefix of a member's pass tag; what a pass is called in messages
    members_value, folder_value, with_theta, tag_prefix, pass_label = "members", "pass_folder", True, "m", "pass"
    #: context value that gets the number of half-written files removed (None: not recorded)
    torn_value: str | None = None

    @abstractmethod
    def key(self, context: RunContext) -> str:
        """The cache key of the member states these passes evaluate."""

    def _folder(self, context: RunContext) -> Path:
        c = context.config
        return Path(c.cache_dir).resolve() / "curate" / digest(self.key(context), "passes", c.batch_tokens,
                                                                c.eval_dtype)

    def units(self, context: RunContext) -> WorkUnits:
        import torch

        c, folder, members = context.config, self._folder(context), context[self.members_value]
        (folder / "members").mkdir(parents=True, exist_ok=True)
        (folder / "passes").mkdir(parents=True, exist_ok=True)
        paths: list[str | None] = [None] if self.with_theta else []
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
        for member in paths:
            tag = "theta" if member is None else f"{self.tag_prefix}{Path(member).stem}"
            for s, e in ranges:
                items.append({"member": member, "start": s, "stop": e,
                              "out": str(folder / "passes" / f"{tag}-{s}-{e}.npy")})
                names.append(f"{self.unit_name} {tag} docs {s}-{e}")
        context.values[self.folder_value] = folder
        removed = remove_torn_files(folder, [it["out"] for it in items])
        if self.torn_value is not None:
            context.values[self.torn_value] = len(removed)
        corpus = context.values.get("corpus")
        check = None if corpus is None else functools.partial(check_shards, [str(f) for f in corpus.files],
                                                               list(corpus._stamps))
        return WorkUnits(fn=score_pass, shared={"learner": context["learner"], "tokens": context["tokens"]},
                         items=items, names=names, bounded=True, check=check)

    def columns(self, units: WorkUnits, results: list[Any]) -> Any:
        """Each unit's item and its saved losses, in unit order; InvalidInputError for a stale pass file."""
        for item in units.items:
            col = np.load(item["out"])
            s, e = item["start"], item["stop"]
            if len(col) != e - s:
                folder = Path(item["out"]).parent.parent
                raise InvalidInputError(f"{self.pass_label} {item['out']} holds {len(col)} losses for documents "
                                        f"{s}..{e}; the pass file is stale. Fix: remove the cache folder "
                                        f"{str(folder)!r} and run again.")
            yield item, col
        evaluated = int(sum(bool(r) for r in results))
        logger.info("%ses: %d evaluated, %d reused from their done-flags", self.pass_label, evaluated,
                    len(results) - evaluated)


class LossMatrix(_Passes):
    """The loss matrix and the exact GEX self-influence, as work units: one per (document range ×
    pass), a pass being ``θ*`` or one member (``score_pass``).

    Everything lives under ``cache_dir/curate/<key>/``: the members' states (``members/<m>.pt``), each
    unit's losses and done-flag (``passes/``), the gathered matrix (``loss_matrix.npy``, memory
    mapped). After a kill, a re-run first deletes the half-written files the killed run left
    (``remove_torn_files``), then evaluates only the units without a done-flag. ``shard_docs``
    documents per range. Between units (in process, and on the driver while units run on Dask) the
    corpus shards are checked against their stamps (``check_shards``).
    """

    name, reads, writes, timing = "loss-matrix", ("learner", "tokens", "members"), ("scores",), "scores"
    unit_name, pass_label, torn_value = "score-pass", "scoring pass", "torn_files_removed"

    def key(self, context: RunContext) -> str:
        return _member_key(context)

    def gather(self, context: RunContext, units: WorkUnits, results: list[Any]) -> Any:
        from influence_stage.engine.influence import self_influence

        folder, n, n_members = context["pass_folder"], len(context["tokens"]), len(context["members"])
        L = np.lib.format.open_memmap(str(folder / "loss_matrix.npy"), mode="w+", dtype=np.float32,
                                      shape=(n, n_members))
        base = np.empty(n, dtype=np.float32)
        for item, col in self.columns(units, results):
            s, e = item["start"], item["stop"]
            if item["member"] is None:
                base[s:e] = col
            else:
                L[s:e, int(Path(item["member"]).stem)] = col
        L.flush()
        context.values["passes_evaluated"] = int(sum(bool(r) for r in results))
        return {"self_influence": self_influence(L, base, tau=context.config.tau), "base_loss": base,
                "loss_matrix": L, "timings": {}}


def reference_fingerprint(texts: list[str]) -> str:
    """32 hex digits of ``sha256`` over the reference documents (a cache key's part: other reference, other members)."""
    import hashlib

    h = hashlib.sha256()
    for t in texts:
        b = t.encode()
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()[:32]


def _reference(context: RunContext) -> list[str]:
    """The reference corpus's documents (``curate_inputs.reference_texts``), read once per run: the reference
    steps' cache keys, the members' training and the reference's own losses all need them."""
    texts = context.values.get("reference_texts")
    if texts is None:
        texts = context.values["reference_texts"] = reference_texts(context.config)
    return texts


def _reference_member_key(context: RunContext) -> str:
    c = context.config
    return digest(_member_key(context), "reference-members", reference_fingerprint(_reference(context)),
                  c.reference_members, c.reference_steps, c.reference_lr)


class ReferenceMembers(Step):
    """``score: reference``: the *reference members*, ``reference_members`` short cycles of continued pre-training
    from ``θ*`` on the reference corpus (``engine.lm_gex.lm_members``: one chain per member, each with its own
    batch order, ``reference_steps`` SGD steps peaking at ``reference_lr``).

    Each moves ``θ*`` toward the reference, so a pool document's loss deviation under them carries the
    reference's direction: to first order ``L_m(doc) - L*(doc) ≈ -η g_doc · g_ref``, the alignment of the
    document's gradient with the reference's, measured without gradients. The corpus members, trained on the
    pool, cannot carry it: their deviations are the pool's common drift and noise. A cached step keyed by
    ``θ*``'s key, the reference's documents and these settings.
    """

    name, reads, writes, timing, cached = ("reference-members", ("learner",), ("reference_members",), "members",
                                           True)

    def applies(self, context: RunContext) -> bool:
        return context.config.score == "reference"

    def cache_key(self, context: RunContext) -> str:
        return _reference_member_key(context)

    def run(self, context: RunContext) -> Any:
        from influence_stage.engine.lm_gex import lm_members

        c = context.config
        return lm_members(context["learner"], _reference(context), chains=c.reference_members, cycles=1,
                          steps=c.reference_steps, ft_lr=c.reference_lr, seed=c.seed, progress=c.progress)


class ReferenceLosses(_Passes):
    """``score: reference``: the losses under the reference members (``ReferenceMembers``) of every scored
    document ``(n, R)``, as work units with done-flags like ``LossMatrix`` (one per document range × reference
    member, ``score_pass``), and of the reference's own documents at ``θ*`` ``(r,)`` and under each member
    ``(r, R)``, in process (the reference is small).

    Everything lives under ``cache_dir/curate/<key>/`` (``members/``, ``passes/``, ``pool_loss_matrix.npy``);
    a re-run after a kill evaluates only the units without a done-flag. The documents' losses at ``θ*`` are
    the loss matrix's (``scores["base_loss"]``), not evaluated again.
    """

    name, reads, writes, timing = ("reference-losses", ("learner", "tokens", "reference_members"), ("reference",),
                                   "scores")
    unit_name, pass_label = "reference-pass", "reference pass"
    members_value, folder_value, with_theta, tag_prefix = "reference_members", "reference_folder", False, "r"

    def applies(self, context: RunContext) -> bool:
        return context.config.score == "reference"

    def key(self, context: RunContext) -> str:
        return _reference_member_key(context)

    def gather(self, context: RunContext, units: WorkUnits, results: list[Any]) -> Any:
        import torch

        folder, n, members = context["reference_folder"], len(context["tokens"]), context["reference_members"]
        P = np.lib.format.open_memmap(str(folder / "pool_loss_matrix.npy"), mode="w+", dtype=np.float32,
                                      shape=(n, len(members)))
        for item, col in self.columns(units, results):
            P[item["start"]:item["stop"], int(Path(item["member"]).stem)] = col
        P.flush()
        learner, texts = context["learner"], _reference(context)
        start = learner.get_state()
        base = learner.per_sample_loss(texts)
        L = np.empty((len(texts), len(members)), dtype=np.float32)
        try:
            for m in range(len(members)):
                learner.set_state(torch.load(folder / "members" / f"{m}.pt", map_location=learner.device,
                                             weights_only=True))
                L[:, m] = learner.per_sample_loss(texts)
        finally:
            learner.set_state(start)
        logger.info("the reference's mean loss: %.4f at θ*, %.4f under the reference members", float(base.mean()),
                    float(L.mean()))
        return {"base_loss": base, "loss_matrix": L, "pool_loss_matrix": P}


def reference_influence(scores: dict[str, Any], reference: dict[str, Any]) -> np.ndarray:
    """Each document's GEX cross-influence on the reference's mean loss, ``(n,) float64``: higher, it helps the
    reference more.

    ``influence.mean_test_loss_influence(D, R)`` of the documents' loss deviations from ``θ*`` ``D (n, M)`` and
    the reference's ``R (r, M)``, under the same members: the reference members when ``reference`` holds the
    documents' losses under them (``pool_loss_matrix``, what ``ReferenceLosses`` gives), else the members of
    ``scores`` (``loss_matrix``). Under the reference members every ``R[:, m]`` is mostly negative (they
    were trained on it), so a document whose loss falls as the model moves toward the reference, a
    gradient aligned with the reference's, scores high; one whose loss rises (junk, other topics) low.

    Parameters
    ----------
    scores : dict
        ``base_loss (n,)`` the documents' losses at ``θ*``; ``loss_matrix (n, M)`` under the corpus members.
    reference : dict
        ``base_loss (r,)`` and ``loss_matrix (r, M)`` the reference's losses at ``θ*`` and under the members;
        optionally ``pool_loss_matrix (n, M)`` the documents' losses under the same (reference) members.
    """
    from influence_stage.engine.influence import mean_test_loss_influence

    pool = reference.get("pool_loss_matrix")
    pool = scores["loss_matrix"] if pool is None else pool
    D = np.asarray(pool, dtype=np.float64) - np.asarray(scores["base_loss"], dtype=np.float64)[:, None]
    R = np.asarray(reference["loss_matrix"], dtype=np.float64) - np.asarray(reference["base_loss"],
                                                                            dtype=np.float64)[:, None]
    return mean_test_loss_influence(D, R)


__all__ = ["LossMatrix", "ReferenceLosses", "ReferenceMembers", "check_shards", "reference_fingerprint",
           "reference_influence", "remove_torn_files", "score_pass"]

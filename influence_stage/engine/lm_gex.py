"""GEX on a text corpus with a ``CausalLMLearner``: members, the loss matrix and the self-influence.

``lm_members`` runs cycles of continued pre-training from ``θ*``; ``corpus_gex`` runs it all (one
pass over the corpus per member and one at ``θ*``, the loss matrix ``(n_documents, n_members)`` in
memory or a memory-mapped file, the exact GEX self-influence of ``influence.self_influence``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from influence_stage.engine.influence import DEFAULT_TAU, self_influence
from influence_stage.engine.learner import State
from influence_stage.engine.members import run_chains
from influence_stage.errors import InvalidInputError

if TYPE_CHECKING:
    from influence_stage.engine.causal_lm import CausalLMLearner


@dataclass(frozen=True, eq=False)
class CorpusGEX:
    """What ``corpus_gex`` computed.

    Attributes
    ----------
    self_influence : ``(n,) float64`` the exact GEX self-influence of each document.
    base_loss : ``(n,) float32`` each document's mean token loss at θ*.
    loss_matrix : ``(n, M) float32`` the members' losses (a ``np.memmap`` when a path was given).
    n_members : int
    ft_lr : float
    timings : wall seconds per step.
    """

    self_influence: np.ndarray
    base_loss: np.ndarray
    loss_matrix: np.ndarray
    n_members: int
    ft_lr: float
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def perplexity(self) -> np.ndarray:
        """Per-document perplexity at θ*, ``exp(base_loss)``: the classic baseline score."""
        return np.exp(self.base_loss.astype(np.float64))


def lm_members(learner: CausalLMLearner, data: Any, *, chains: int, cycles: int, steps: int, ft_lr: float,
               seed: int = 0, progress: bool = False) -> list[State]:
    """Members from cycles of continued pre-training from θ* (the learner's current state), chain-major.

    ``chains`` chains of ``cycles`` cosine cycles of ``steps`` SGD steps peaking at ``ft_lr``; the
    end of each cycle is one member (``members.run_chains``). The learner is left at θ*.
    """
    if chains * cycles < 2:
        raise InvalidInputError(f"GEX needs at least 2 members; chains × cycles = {chains} × {cycles}.")
    if not (isinstance(ft_lr, (int, float)) and ft_lr > 0):
        raise InvalidInputError(f"ft_lr must be a positive number for a language model; found {ft_lr!r}.")
    start = learner.get_state()
    states = run_chains(learner, data, start=start, rates=[float(ft_lr)] * chains, cycles=cycles,
                        steps=int(steps), seed=seed, progress=progress, desc="members")
    learner.set_state(start)
    return [s for chain in states for s in chain]


def corpus_gex(learner: CausalLMLearner, data: Any, *, chains: int = 4, cycles: int = 2, steps: int = 50,
               ft_lr: float = 0.05, seed: int = 0, tau: float = DEFAULT_TAU, members: list[State] | None = None,
               loss_path: str | Path | None = None, progress: bool = False) -> CorpusGEX:
    """GEX self-influence of every document of ``data`` from θ* (the learner's current state).

    Parameters
    ----------
    learner : CausalLMLearner
        At θ*.
    data : list of str or corpus stream
        The documents (module docstring); a stream is read once at θ* and once per member.
    chains, cycles, steps, ft_lr, seed
        Members (``lm_members``); ignored when ``members`` is given.
    tau : float
        Floor of the reference loss (``influence.self_influence``).
    members : list of State, optional
        Members built before (e.g. by a cached flow task).
    loss_path : path, optional
        Keep the loss matrix in this ``.npy`` file, opened as a memory map, instead of in memory.

    Returns
    -------
    CorpusGEX
    """
    timings: dict[str, float] = {}
    t = time.perf_counter()
    if members is None:
        members = lm_members(learner, data, chains=chains, cycles=cycles, steps=steps, ft_lr=ft_lr, seed=seed,
                             progress=progress)
    timings["members"] = time.perf_counter() - t
    t = time.perf_counter()
    start = learner.get_state()
    base = learner.per_sample_loss(data, progress=progress, desc="score θ*")
    n = len(base)
    if loss_path is not None:
        L = np.lib.format.open_memmap(str(loss_path), mode="w+", dtype=np.float32, shape=(n, len(members)))
    else:
        L = np.empty((n, len(members)), dtype=np.float32)
    try:
        for m, state in enumerate(members):
            learner.set_state(state)
            col = learner.per_sample_loss(data, progress=progress, desc=f"score member {m + 1}/{len(members)}")
            if len(col) != n:
                raise InvalidInputError(f"the corpus gave {len(col)} documents to member {m} but {n} at θ*; a "
                                        "stream must yield the same documents on every pass.")
            L[:, m] = col
    finally:
        learner.set_state(start)
    if isinstance(L, np.memmap):
        L.flush()
    timings["losses"] = time.perf_counter() - t
    return CorpusGEX(self_influence=self_influence(L, base, tau=tau), base_loss=base, loss_matrix=L,
                     n_members=len(members), ft_lr=float(ft_lr), timings=timings)


__all__ = ["CorpusGEX", "corpus_gex", "lm_members"]

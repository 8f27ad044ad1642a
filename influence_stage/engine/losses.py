"""Loss matrices: per-sample losses of every member, ``(n_samples, n_members) float32``, in batches.

Rows are streamed in batches of ``batch_size`` and members in chunks of ``member_chunk``; the result
can be written into a caller-provided array, or into a ``loss_store.LossStore`` (a memmap in a run
folder with a done-flag per member), in which case only the members without a flag are evaluated
and a re-run after a crash resumes where it stopped.

Two ways to evaluate members: ``"loop"`` loads each member with ``set_state`` and runs one large-batch
forward pass per member; ``"vmap"`` (learners with ``member_logits``, i.e. ``TorchLearner``) stacks a
chunk of members and evaluates them in one ``torch.func.vmap`` pass. On CPU the loop is the faster
and leaner of the two for the MLP (benchmarks/RESULTS.md, "speed"), so ``"auto"`` means ``"loop"``
there; on a CUDA device ``"auto"`` means ``"vmap"`` (many small members fill the accelerator better
together) for learners that have ``member_logits``. A store always takes the loop, one member
column at a time, so that each finished member gets its done-flag.

Progress bars count rows (member × row evaluations), so they show rows per second.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from influence_stage.errors import InvalidInputError
from influence_stage.engine.learner import Learner, LossAndProba, MemberLogits, OnDevice, State, TensorData
from influence_stage.engine.loss_store import LossStore

Method = Literal["auto", "vmap", "loop"]


def _on_cuda(learner: Learner) -> bool:
    return str(learner.device if isinstance(learner, OnDevice) else "cpu").startswith("cuda")


def _resolve(learner: Learner, method: Method) -> str:
    if method == "auto":
        return "vmap" if _on_cuda(learner) and isinstance(learner, MemberLogits) else "loop"
    if method == "vmap" and not isinstance(learner, MemberLogits):
        raise InvalidInputError("method='vmap' needs a learner with member_logits (TorchLearner).")
    if method not in ("vmap", "loop"):
        raise InvalidInputError(f"method must be 'auto', 'vmap' or 'loop'; found {method!r}.")
    return method


def _stored_losses(learner: Learner, members: Sequence[State], data: TensorData, store: LossStore,
                   progress: bool) -> np.ndarray:
    """The loop path into a store: only members without a done-flag are evaluated."""
    if (store.n_rows, store.n_members) != (len(data), len(members)):
        raise InvalidInputError(f"the loss store holds {store.n_rows} × {store.n_members}; this run has "
                                f"{len(data)} rows × {len(members)} members.")
    todo = store.pending()
    saved = learner.get_state()
    bar = tqdm(total=len(todo) * len(data), desc="loss matrix (to disk)", unit="rows", unit_scale=True,
               disable=not progress, leave=False)
    try:
        for j in todo:
            learner.set_state(members[j])
            store.write(j, learner.per_sample_loss(data))
            bar.update(len(data))
    finally:
        bar.close()
        learner.set_state(saved)
    return store.read()


def _member_stat(learner: Learner, members: Sequence[State], data: TensorData, *,
                 batch_size: int, member_chunk: int, method: Method, out: np.ndarray | None,
                 progress: bool, store: LossStore | None = None,
                 keep_proba: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Cross-entropy of every member on the given labels, and, with ``keep_proba``, the members' mean
    class probabilities when they come from the same forward passes (the loop path over a learner with
    ``loss_and_proba``, without a store; equal to ``mean_member_proba``'s), else None."""
    n, m = len(data), len(members)
    if m == 0:
        raise InvalidInputError("no members to evaluate.")
    if store is not None:
        if out is not None or method == "vmap":
            raise InvalidInputError("a loss store takes member losses one member at a time (method 'auto' or "
                                    "'loop'), without out=.")
        return _stored_losses(learner, members, data, store, progress), None
    if out is None:
        out = np.empty((n, m), dtype=np.float32)
    elif out.shape != (n, m):
        raise InvalidInputError(f"out must have shape ({n}, {m}); found {out.shape}.")
    bar = tqdm(total=m * n, desc="members (loss)", unit="rows", unit_scale=True, disable=not progress, leave=False)
    if _resolve(learner, method) == "loop":
        with_proba = keep_proba and isinstance(learner, LossAndProba)
        total = None
        saved = learner.get_state()
        try:
            for j, state in enumerate(members):
                learner.set_state(state)
                if with_proba:
                    out[:, j], p = learner.loss_and_proba(data)
                    total = p if total is None else total + p  # the order and dtype of mean_member_proba
                else:
                    out[:, j] = learner.per_sample_loss(data)
                bar.update(n)
        finally:
            bar.close()
            learner.set_state(saved)
        return out, (total / m).astype(np.float32) if with_proba else None
    for cols in (range(s, min(s + member_chunk, m)) for s in range(0, m, member_chunk)):
        chunk_states = [members[j] for j in cols]
        for s in range(0, n, batch_size):
            xb, yb = data.X[s:s + batch_size], data.y[s:s + batch_size]
            logp = F.log_softmax(learner.member_logits(chunk_states, xb), dim=-1)  # (m_chunk, b, K)
            picked = logp.gather(-1, yb.view(1, -1, 1).expand(len(cols), -1, 1)).squeeze(-1)  # (m_chunk, b)
            out[s:s + batch_size, cols.start:cols.stop] = (-picked).T.cpu().numpy()
            bar.update(len(cols) * len(yb))
    bar.close()
    return out, None


def loss_matrix(learner: Learner, members: Sequence[State], data: TensorData, *, batch_size: int = 4096,
                member_chunk: int = 16, method: Method = "auto", out: np.ndarray | None = None,
                store: LossStore | None = None, progress: bool = False) -> np.ndarray:
    """Per-sample cross-entropy of every member on the given labels, eval mode.

    ``store``: evaluate only the members the store has not finished, write each into it, and return
    its matrix (a read-only memmap).

    Returns
    -------
    L : ndarray, shape ``(n_samples, n_members)`` float32
        ``L[n, m] = loss(z_n, members[m])``.
    """
    return _member_stat(learner, members, data, batch_size=batch_size, member_chunk=member_chunk, method=method,
                        out=out, progress=progress, store=store)[0]


def loss_matrix_and_mean_proba(learner: Learner, members: Sequence[State], data: TensorData, *,
                               batch_size: int = 4096, member_chunk: int = 16, method: Method = "auto",
                               store: LossStore | None = None,
                               progress: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """``loss_matrix``, and the members' mean class probabilities ``(n_samples, n_classes) float32`` from the
    same forward passes where there are such passes (the loop path, a learner with ``loss_and_proba``, no
    store); None otherwise, and the caller computes them with ``mean_member_proba`` when it needs them.
    The probabilities equal ``mean_member_proba``'s bit for bit."""
    return _member_stat(learner, members, data, batch_size=batch_size, member_chunk=member_chunk, method=method,
                        out=None, progress=progress, store=store, keep_proba=True)


def mean_member_proba(learner: Learner, members: Sequence[State], data: TensorData, *,
                      batch_size: int = 4096, member_chunk: int = 16, method: Method = "auto") -> np.ndarray:
    """Class probabilities averaged over members, ``(n_samples, n_classes) float32``."""
    if _resolve(learner, method) == "vmap":
        parts = []
        for s in range(0, len(data), batch_size):
            acc = None
            for c in range(0, len(members), member_chunk):
                p = torch.softmax(learner.member_logits(members[c:c + member_chunk], data.X[s:s + batch_size]), -1)
                acc = p.sum(0) if acc is None else acc + p.sum(0)
            parts.append((acc / len(members)).cpu().numpy())
        return np.concatenate(parts).astype(np.float32)
    saved = learner.get_state()
    try:
        total = None
        for state in members:
            learner.set_state(state)
            p = learner.predict_proba(data)
            total = p if total is None else total + p
    finally:
        learner.set_state(saved)
    return (total / len(members)).astype(np.float32)

"""The floor of a curation run: its forward passes and training steps in a bare torch loop.

A curation run with ``chains × cycles`` members scores every document ``1 + chains × cycles`` times
(θ* and each member) and trains ``chains × cycles × cycle_steps`` SGD steps of ``batch_size``
windows. This module does that work with the same GPT-2 (``transformers`` directly), the same token
ids (the run's own token cache, read before the clock starts), the same windows
(``chunk_ids``) and the same padded batches (``pack_batches`` at ``batch_tokens``): batches are
padded into tensors before timing, then each pass is a loop of ``model(ids, mask)`` and a masked
token cross-entropy under ``torch.no_grad``; training is plain SGD with momentum 0.9 on random
batches of windows. No tokenization, no caching, no orchestration, no files.

Passes cost the same whatever the weights, so a few full passes over every document are timed and
their mean multiplied by the number of passes (``passes_timed`` in the result says how many were run).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def _windows(token_ids: list[list[int]], max_length: int) -> list[list[int]]:
    try:
        from influence_stage.engine.causal_lm import chunk_ids
    except ImportError:  # pragma: no cover - the windows module of a later layout
        from influence_stage.engine.lm_windows import chunk_ids
    return [list(w) for ids in token_ids for w in chunk_ids(ids, max_length, None)]


def _padded(windows: list[list[int]], batch: list[int], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    m = max(len(windows[i]) for i in batch)
    ids = torch.full((len(batch), m), pad, dtype=torch.long)
    mask = torch.zeros((len(batch), m), dtype=torch.long)
    for r, i in enumerate(batch):
        ids[r, :len(windows[i])] = torch.as_tensor(windows[i])
        mask[r, :len(windows[i])] = 1
    return ids, mask


def _loss(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    target, keep = ids[:, 1:], mask[:, 1:].bool()
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="none")
    ce = torch.where(keep, ce.reshape(target.shape), torch.zeros_like(target, dtype=ce.dtype))
    return ce.sum(1), keep.sum(1)


def lm_floor(model_dir: str | Path, token_cache: str | Path, *, max_length: int, batch_tokens: int, batch_size: int,
             passes: int, train_steps: int, ft_lr: float = 0.05, seed: int = 0, timed_passes: int = 2,
             threads: int | None = None) -> dict:
    """Seconds of ``passes`` scoring passes over every document of ``token_cache`` and ``train_steps`` SGD steps.

    ``timed_passes`` full passes are timed (at most ``passes``); their mean times ``passes`` is the
    scoring floor. ``threads``: torch threads while timing (default: torch's default in a fresh
    process, the CPU count, which is what the ``curate`` command runs with). Returns
    ``{"pass_seconds" (each timed pass), "scoring_seconds", "train_seconds", "windows", "tokens",
    "passes", "passes_timed", "torch_threads", "train_steps"}``.
    """
    from transformers import AutoModelForCausalLM

    try:
        from influence_stage.engine.causal_lm import pack_batches
    except ImportError:  # pragma: no cover
        from influence_stage.engine.lm_windows import pack_batches
    from influence_stage.data.tokens import TokenCache

    from transformers import AutoTokenizer

    pad = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    pad_id = pad.pad_token_id if pad.pad_token_id is not None else pad.eos_token_id
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True).float().eval()
    cache = TokenCache(token_cache)
    windows = _windows(cache.token_ids(), max_length)
    batches = [_padded(windows, b, pad_id) for b in pack_batches([len(w) for w in windows], batch_tokens)]
    n_tokens = int(sum(len(w) for w in windows))

    before = torch.get_num_threads()
    threads = int(threads or os.cpu_count() or 1)
    torch.set_num_threads(threads)
    try:
        return _timed(model, batches, windows, pad_id, n_tokens, passes=passes, train_steps=train_steps, ft_lr=ft_lr,
                      seed=seed, timed_passes=timed_passes, batch_size=batch_size, threads=threads)
    finally:
        torch.set_num_threads(before)


def _timed(model: torch.nn.Module, batches: list, windows: list[list[int]], pad_id: int, n_tokens: int, *,
           passes: int, train_steps: int, ft_lr: float, seed: int, timed_passes: int, batch_size: int,
           threads: int) -> dict:
    pass_s = []
    for _ in range(max(1, min(timed_passes, passes))):
        t = time.perf_counter()
        with torch.no_grad():
            for ids, mask in batches:
                _loss(model, ids, mask)
        pass_s.append(time.perf_counter() - t)
    del batches

    rng = np.random.default_rng(seed)
    train = [_padded(windows, rng.integers(0, len(windows), batch_size).tolist(), pad_id) for _ in range(train_steps)]
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=ft_lr, momentum=0.9)
    t = time.perf_counter()
    for ids, mask in train:
        s, c = _loss(model, ids, mask)
        loss = s.sum() / c.sum().clamp_min(1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    train_s = time.perf_counter() - t
    return {"pass_seconds": [round(x, 2) for x in pass_s], "scoring_seconds": float(np.mean(pass_s)) * passes,
            "train_seconds": train_s, "windows": len(windows), "tokens": n_tokens, "passes": passes,
            "passes_timed": len(pass_s), "torch_threads": threads,
            "train_steps": train_steps}


def side_by_side(model_dir: str | Path, token_cache: str | Path, *, docs: int, max_length: int, batch_tokens: int,
                 repeats: int = 3, threads: int | None = None) -> dict:
    """The stage's scoring pass (``CausalLMLearner.per_sample_loss`` on the token cache, what each scoring
    unit runs) and the bare pass on the same first ``docs`` documents, alternated ``repeats`` times in one
    process with the same torch threads, so both see the same load. Orchestration (tasks, files) is not
    in either; it is what the job's scoring time adds on top."""
    try:
        from influence_stage.engine.causal_lm import pack_batches
    except ImportError:  # pragma: no cover
        from influence_stage.engine.lm_windows import pack_batches
    from influence_stage.data.tokens import TokenCache
    from influence_stage.engine.causal_lm import CausalLMLearner

    learner = CausalLMLearner.from_pretrained(model_dir, max_length=max_length, batch_tokens=batch_tokens)
    cache = TokenCache(token_cache)
    part = cache.slice(0, min(docs, len(cache)))
    windows = _windows(part.token_ids(), max_length)
    pad_id = int(learner.tokenizer.pad_token_id)
    batches = [_padded(windows, b, pad_id) for b in pack_batches([len(w) for w in windows], batch_tokens)]
    before = torch.get_num_threads()
    threads = int(threads or os.cpu_count() or 1)
    torch.set_num_threads(threads)
    stage, bare = [], []
    try:
        for _ in range(repeats):
            t = time.perf_counter()
            learner.per_sample_loss(part)
            stage.append(time.perf_counter() - t)
            t = time.perf_counter()
            with torch.no_grad():
                for ids, mask in batches:
                    _loss(learner.model, ids, mask)
            bare.append(time.perf_counter() - t)
    finally:
        torch.set_num_threads(before)
    return {"docs": len(part), "repeats": repeats, "torch_threads": threads, "stage_pass_seconds": stage,
            "bare_pass_seconds": bare, "ratio_of_medians": float(np.median(stage) / np.median(bare)),
            "ratio_of_minima": float(np.min(stage) / np.min(bare))}

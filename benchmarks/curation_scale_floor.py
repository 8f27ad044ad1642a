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
             passes: int, train_steps: int, ft_lr: float = 0.05, seed: int = 0, timed_passes: int = 2) -> dict:
    """Seconds of ``passes`` scoring passes over every document of ``token_cache`` and ``train_steps`` SGD steps.

    ``timed_passes`` full passes are timed (at most ``passes``); their mean times ``passes`` is the
    scoring floor. Returns ``{"pass_seconds" (each timed pass), "scoring_seconds", "train_seconds",
    "windows", "tokens", "passes", "passes_timed", "train_steps"}``.
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
            "passes_timed": len(pass_s),
            "train_steps": train_steps}

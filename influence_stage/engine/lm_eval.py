"""Scoring forward passes of a causal language model without the work padding costs.

A scoring pass needs, per window, the summed next-token cross-entropy of its predicted tokens. The
model's own forward computes the vocabulary logits of every position, padding and each window's
last position included, and the loss then copies them again (``logits[:, :-1]`` made contiguous).
For a small model the output layer is most of the work: a 64-wide GPT-2 with a 2,000-token
vocabulary spends more time in its logits and their cross-entropy than in its blocks.

``eval_token_losses`` runs the transformer blocks as the model does (same padded batch, same
attention mask), then the output layer and the cross-entropy only on the positions that predict a
real token, a block of rows at a time (the logits of a block stay in cache). Each token's loss is
the same number as through the full logits (the output layer is a row-wise product and the
cross-entropy a row-wise reduction), and the per-window sums add the same values in the same order
(zeros where padding was).

It applies to models whose output is a plain linear layer over the last hidden state
(``split_head``: GPT-2, GPT-Neo, GPT-NeoX, Llama, Mistral, Qwen2); others keep the full forward.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

#: Model types whose logits are ``output_embeddings(last_hidden_state)``, nothing else (no soft-capping, no scale).
PLAIN_HEAD_TYPES = ("gpt2", "gpt_neo", "gpt_neox", "llama", "mistral", "qwen2")
#: Rows of logits computed at once by ``eval_token_losses``.
HEAD_BLOCK_ROWS = 1024


def split_head(model: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    """``(body, head)`` of a causal LM whose logits are ``head(body(...).last_hidden_state)``; None otherwise.

    ``body`` is the model's base (``model.base_model``), ``head`` its output embeddings. Models
    outside ``PLAIN_HEAD_TYPES``, or with a config that scales or caps the logits, give None.
    """
    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) not in PLAIN_HEAD_TYPES:
        return None
    if any(getattr(config, k, None) not in (None, 1, 1.0) for k in ("final_logit_softcapping", "logit_scale")):
        return None
    body, head = getattr(model, "base_model", None), model.get_output_embeddings() if hasattr(
        model, "get_output_embeddings") else None
    if body is None or body is model or not isinstance(head, nn.Linear):
        return None
    return body, head


def eval_token_losses(body: nn.Module, head: nn.Linear, ids: torch.Tensor, mask: torch.Tensor, *,
                      block_rows: int = HEAD_BLOCK_ROWS) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token cross-entropy and predicted-token count per window of a padded batch.

    Parameters
    ----------
    body, head : from ``split_head``
    ids, mask : torch.Tensor
        ``(b, t)`` token ids and attention mask (1 on real tokens, 0 on padding at the end).
    block_rows : int
        Predicted positions whose logits are computed at once.

    Returns
    -------
    sums : torch.Tensor
        ``(b,) float32``: the sum over each window's predicted tokens of the cross-entropy.
    counts : torch.Tensor
        ``(b,) int64``: predicted tokens per window (real tokens minus one).
    """
    hidden = body(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
    keep = mask[:, 1:].bool()
    rows = hidden[keep]  # (n, d): the positions that predict a real token, row-major
    target = ids[:, 1:][keep]
    ce = torch.empty(rows.shape[0], dtype=torch.float32, device=rows.device)
    for s in range(0, rows.shape[0], block_rows):
        logits = head(rows[s:s + block_rows]).float()
        ce[s:s + block_rows] = F.cross_entropy(logits, target[s:s + block_rows], reduction="none")
    full = torch.zeros(keep.shape, dtype=torch.float32, device=rows.device)
    full[keep] = ce
    return full.sum(1), keep.sum(1)


__all__ = ["HEAD_BLOCK_ROWS", "PLAIN_HEAD_TYPES", "eval_token_losses", "split_head"]

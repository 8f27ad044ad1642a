"""Causal language models behind the ``Learner`` protocol: GEX on unlabeled text corpora.

``CausalLMLearner`` wraps a Hugging Face causal language model (GPT-2 style, from a local folder)
so that the GEX machinery scores documents instead of labelled rows:

- **Loss of a document**: its mean next-token cross-entropy, in nats per predicted token.
- **Chunking rule**: a document is tokenized without truncation (a ``bos`` token is put in front
  when the tokenizer has one, so the first real token is predicted too) and cut into windows of
  ``max_length`` tokens that overlap by one token: window ``k`` holds tokens
  ``k (max_length - 1) … k (max_length - 1) + max_length - 1``. Each window predicts its tokens
  after the first, so every token after the first is predicted exactly once, with at most
  ``max_length - 1`` tokens of context. The document's loss is the sum of the token losses of
  all its windows divided by the number of predicted tokens (long and short documents are on the
  same per-token scale). ``max_chunks`` (default: no cap) scores only a document's first windows.
- **Token batches**: windows are packed into batches of at most ``batch_tokens`` tokens
  (rows × longest row), longest first within a buffer of documents; padding is masked out of
  both the attention and the loss, so a document's loss does not depend on its batch.
- **Members**: cycles of continued pre-training (SGD with momentum, cosine from ``ft_lr`` to 0 per
  cycle, a fresh optimizer each cycle) from θ*, the pretrained model; ``trainable="last:N"``
  perturbs only the last N transformer blocks and the final norm (``get_state`` then copies only
  those), ``"all"`` every parameter.
- **Data**: a list of strings (in memory), or a *stream*: any object with
  ``iter_texts(shuffle_seed=None)`` returning a fresh iterator over the documents and ``__len__``
  (``influence_stage.data.corpus.Corpus``). A stream is read once per member when scoring, a
  buffer of documents at a time, so a corpus larger than memory is scored; training reads it in a
  shuffled order and starts it over when it runs out.
  *Token data* (``influence_stage.data.tokens.TokenCache``): the documents tokenized once; scoring
  reads their ids in order, training reads seeded permutations of the whole corpus (a fresh one
  per training run), so every shard and every offset is trained on.
- **Evaluation precision**: ``eval_dtype="bfloat16"`` runs the scoring forward passes under
  ``torch.autocast`` (bf16 matmuls, losses summed in fp32); training stays fp32.

``corpus_gex`` runs it all: members, one pass over the corpus per member (and one at θ*), the loss
matrix ``(n_documents, n_members)`` (in memory or a memory-mapped file) and the exact GEX
self-influence (``influence.self_influence``).

The pieces live in modules of their own: reading data and the chunking rule
(``influence_stage.engine.lm_windows``), the trainable part (``influence_stage.engine.lm_trainable``)
and GEX on a corpus (``influence_stage.engine.lm_gex``); their public names import from here too.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from influence_stage.errors import CheckpointError, InvalidInputError, InvalidTypeError
from influence_stage.engine.hf import require, seeded_rng
from influence_stage.engine.learner import CosineSchedule, LRSchedule, State
from influence_stage.engine.lm_eval import eval_token_losses, split_head
from influence_stage.engine.lm_gex import CorpusGEX, corpus_gex, lm_members
from influence_stage.engine.lm_trainable import check_lm_trainable, lm_trainable_names
from influence_stage.engine.lm_windows import (_is_stream, _is_tokens, _iter_documents, _n_documents,
                                              _Window, chunk_ids, pack_batches)
from influence_stage.engine.members import member_seed

logger = logging.getLogger(__name__)

#: Documents read from a stream before their windows are packed into batches.
DEFAULT_BUFFER_DOCS = 256
#: Default window length when the model allows it.
DEFAULT_MAX_LENGTH = 512
#: Precisions of the scoring forward passes.
EVAL_DTYPES = ("float32", "bfloat16")
#: Seconds between progress log lines while scoring a stream.
LOG_EVERY_S = 30.0


class CausalLMLearner:
    """``Learner`` for a causal language model: the loss of a document is its mean token cross-entropy.

    Build it with ``from_pretrained`` from a local folder, or pass a loaded model and tokenizer.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A causal language model (``AutoModelForCausalLM``); returns ``.logits`` ``(b, t, vocab)``.
    tokenizer : transformers tokenizer
        Needs a pad token (``from_pretrained`` uses the eos token when there is none; padding is
        masked, so which token pads does not matter).
    trainable : str
        ``"all"`` or ``"last:N"`` (module docstring).
    max_length : int, optional
        Tokens per window of the chunking rule, at least 2 and at most the model's positions
        (default: the model's positions, at most ``DEFAULT_MAX_LENGTH``).
    max_chunks : int, optional
        Windows scored per document (default: all).
    batch_size : int
        Windows per SGD step.
    batch_tokens : int
        Padded tokens per forward pass when scoring.
    momentum, weight_decay : float
        SGD settings of ``train_steps`` (a fresh optimizer per call).
    add_bos : bool
        Put the tokenizer's ``bos`` token in front of each document (when it has one).
    buffer_docs : int
        Documents read from a stream before their windows are packed.
    device : str
    eval_dtype : {"float32", "bfloat16"}
        Precision of the scoring forward passes (``bfloat16``: ``torch.autocast``).
    """

    def __init__(self, model: nn.Module, tokenizer: Any, *, trainable: str = "all", max_length: int | None = None,
                 max_chunks: int | None = None, batch_size: int = 16, batch_tokens: int = 8192,
                 momentum: float = 0.9, weight_decay: float = 0.0, add_bos: bool = True,
                 buffer_docs: int = DEFAULT_BUFFER_DOCS, device: str = "cpu", eval_dtype: str = "float32") -> None:
        if not isinstance(model, nn.Module):
            raise InvalidTypeError(f"CausalLMLearner needs a torch.nn.Module; found {type(model).__name__}.")
        if getattr(tokenizer, "pad_token_id", None) is None:
            raise InvalidInputError("the tokenizer has no pad token; set tokenizer.pad_token (e.g. to its eos token) "
                                    "or build the learner with CausalLMLearner.from_pretrained, which does.")
        check_lm_trainable(trainable)
        positions = getattr(getattr(model, "config", None), "n_positions", None) or \
            getattr(getattr(model, "config", None), "max_position_embeddings", None)
        if max_length is None:
            max_length = min(int(positions or DEFAULT_MAX_LENGTH), DEFAULT_MAX_LENGTH)
        if not isinstance(max_length, int) or max_length < 2 or (positions and max_length > positions):
            raise InvalidInputError(f"max_length must be an int in 2..{positions or 'the model positions'}; "
                                    f"found {max_length!r}.")
        if max_chunks is not None and (not isinstance(max_chunks, int) or max_chunks < 1):
            raise InvalidInputError(f"max_chunks must be None or an int >= 1; found {max_chunks!r}.")
        if eval_dtype not in EVAL_DTYPES:
            raise InvalidInputError(f"eval_dtype must be one of {list(EVAL_DTYPES)}; found {eval_dtype!r}.")
        self.model = model.to(device).float().eval()
        self.eval_dtype = eval_dtype
        self.tokenizer = tokenizer
        self.trainable = check_lm_trainable(trainable)
        self.max_length = int(max_length)
        self.max_chunks = max_chunks
        self.batch_size = int(batch_size)
        self.batch_tokens = max(int(batch_tokens), self.max_length)
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.add_bos = bool(add_bos)
        self.buffer_docs = int(buffer_docs)
        self.device = device
        self._names = lm_trainable_names(self.model, self.trainable)
        chosen = set(self._names)
        for name, p in self.model.named_parameters():
            p.requires_grad_(name in chosen)
        self._cache: tuple[Any, list[_Window]] | None = None

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs: Any) -> "CausalLMLearner":
        """Load a causal language model and its tokenizer from a local ``save_pretrained`` folder.

        Nothing is downloaded (``local_files_only``). A tokenizer without a pad token gets its eos
        token as pad token (padding is masked); one with neither is refused.

        Raises
        ------
        CheckpointError
            The folder is missing, holds no model or tokenizer, or holds a model that is not a
            causal language model (e.g. a sequence classifier or an encoder-decoder).
        """
        transformers = require("transformers", purpose="loading causal language models")
        folder = Path(path)
        if not folder.is_dir():
            raise CheckpointError(f"language model folder not found: {folder}. Save one with "
                                  "model.save_pretrained(folder) and tokenizer.save_pretrained(folder).")
        try:
            config = transformers.AutoConfig.from_pretrained(str(folder), local_files_only=True)
        except Exception as exc:
            raise CheckpointError(f"could not read a model config in {folder}: {type(exc).__name__}: "
                                  f"{str(exc)[:200]}") from exc
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

        archs = list(getattr(config, "architectures", None) or [])
        causal_arch = not archs or any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs)
        if type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING or not causal_arch \
                or getattr(config, "is_encoder_decoder", False):
            raise CheckpointError(f"the model in {folder} is not a causal language model (model_type "
                                  f"{getattr(config, 'model_type', '?')!r}, architectures {archs}); expected a "
                                  "GPT-2 style model saved from AutoModelForCausalLM.")
        try:
            model = transformers.AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True)
        except Exception as exc:
            raise CheckpointError(f"could not load a causal language model from {folder}: {type(exc).__name__}: "
                                  f"{str(exc)[:200]}") from exc
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except Exception as exc:
            raise CheckpointError(f"could not load the tokenizer from {folder}: {type(exc).__name__}: "
                                  f"{str(exc)[:200]}. Save it next to the model with "
                                  "tokenizer.save_pretrained(folder).") from exc
        if tokenizer.pad_token_id is None:
            if tokenizer.eos_token_id is None:
                raise CheckpointError(f"the tokenizer in {folder} has neither a pad nor an eos token; set "
                                      "tokenizer.pad_token and save it again.")
            tokenizer.pad_token = tokenizer.eos_token
            logger.info("tokenizer has no pad token; padding with eos %r (masked)", tokenizer.eos_token)
        return cls(model, tokenizer, **kwargs)

    # -- tokens ------------------------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str], first_doc: int = 0) -> list[list[int]]:
        """Token ids of each of ``texts`` with the ``bos`` in front (when added); each has at least 2."""
        enc = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        bos = self.tokenizer.bos_token_id if self.add_bos else None
        out = []
        for i, ids in enumerate(enc):
            ids = ([bos] if bos is not None else []) + list(ids)
            if len(ids) < 2:
                raise InvalidInputError(f"document {first_doc + i} has {len(ids)} token(s); at least 2 are needed "
                                        "to predict one (the tokenizer has no bos token to put in front).")
            out.append(ids)
        return out

    def encode_ids(self, id_lists: Sequence[Sequence[int]], first_doc: int = 0) -> list[_Window]:
        """Windows of already tokenized documents (document ``first_doc + i`` for ``id_lists[i]``)."""
        out = []
        for i, ids in enumerate(id_lists):
            out.extend(_Window(first_doc + i, list(w)) for w in chunk_ids(ids, self.max_length, self.max_chunks))
        return out

    def encode(self, texts: Sequence[str], first_doc: int = 0) -> list[_Window]:
        """Windows of ``texts`` (document ``first_doc + i`` for ``texts[i]``) under the chunking rule."""
        return self.encode_ids(self.tokenize(texts, first_doc), first_doc)

    def _pad(self, windows: Sequence[_Window]) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = np.fromiter((len(w.ids) for w in windows), dtype=np.int64, count=len(windows))
        m = int(lengths.max())
        mask = np.arange(m)[None, :] < lengths[:, None]
        ids = np.full((len(windows), m), int(self.tokenizer.pad_token_id), dtype=np.int64)
        ids[mask] = np.fromiter((t for w in windows for t in w.ids), dtype=np.int64, count=int(lengths.sum()))
        return torch.from_numpy(ids).to(self.device), torch.from_numpy(mask.astype(np.int64)).to(self.device)

    def _token_losses(self, windows: Sequence[_Window]) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed next-token cross-entropy and predicted-token count per window (padding masked)."""
        ids, mask = self._pad(windows)
        logits = self.model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        target = ids[:, 1:]
        keep = mask[:, 1:].bool()
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                             reduction="none").reshape(target.shape)
        ce = torch.where(keep, ce, torch.zeros_like(ce))
        return ce.sum(1), keep.sum(1)

    def _eval_losses(self, windows: Sequence[_Window]) -> tuple[torch.Tensor, torch.Tensor]:
        """``_token_losses`` for scoring: the output layer only on the predicted positions
        (``lm_eval.eval_token_losses``) when the model allows it (``lm_eval.split_head``)."""
        split = split_head(self.model)
        if split is None:
            return self._token_losses(windows)
        ids, mask = self._pad(windows)
        return eval_token_losses(*split, ids, mask)

    # -- Learner protocol --------------------------------------------------------------------------
    def get_state(self) -> State:
        """Copies of the trainable parameters, by name."""
        params = dict(self.model.named_parameters())
        return {n: params[n].detach().clone() for n in self._names}

    def set_state(self, state: State) -> None:
        """Load a state from ``get_state`` of a learner with the same ``trainable`` setting."""
        if set(state) != set(self._names):
            missing = sorted(set(self._names) - set(state))[:3]
            extra = sorted(set(state) - set(self._names))[:3]
            raise InvalidInputError(f"state does not match the trainable part (trainable={self.trainable!r}): "
                                    f"missing {missing}, unexpected {extra}.")
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, value in state.items():
                params[name].copy_(value)

    def _training_windows(self, data: Any, seed: int) -> Iterator[list[_Window]]:
        """Minibatches of ``batch_size`` windows: shuffled epochs over an in-memory list, or a
        shuffled stream, started over (with the next seed) when it runs out, or seeded
        permutations of token data."""
        if _is_tokens(data):
            yield from self._token_training_windows(data, seed)
            return
        if not _is_stream(data):
            if self._cache is None or self._cache[0] is not data:
                texts = list(_iter_documents(data))
                if not texts:
                    raise InvalidInputError("the corpus has 0 documents.")
                self._cache = (data, self.encode(texts))
            windows = self._cache[1]
            gen = torch.Generator().manual_seed(int(seed))
            size = min(self.batch_size, len(windows))
            while True:  # epoch-wise permutations cut into batches, the ragged tail dropped (batch_indices' rule)
                perm = torch.randperm(len(windows), generator=gen).tolist()
                for s in range(0, len(windows) - size + 1, size):
                    yield [windows[i] for i in perm[s:s + size]]
        epoch = 0
        while True:
            buf: list[_Window] = []
            n_docs = 0
            texts: list[str] = []
            for text in _iter_documents(data, shuffle_seed=member_seed(seed, 0, epoch)):
                texts.append(text)
                if len(texts) == self.buffer_docs:
                    buf.extend(self.encode(texts, n_docs))
                    n_docs += len(texts)
                    texts = []
                    while len(buf) >= self.batch_size:
                        yield buf[:self.batch_size]
                        buf = buf[self.batch_size:]
            if texts:
                buf.extend(self.encode(texts, n_docs))
                n_docs += len(texts)
            while len(buf) >= self.batch_size:
                yield buf[:self.batch_size]
                buf = buf[self.batch_size:]
            if n_docs == 0:
                raise InvalidInputError("the corpus has 0 documents.")
            if buf:
                yield buf
            epoch += 1

    def _token_training_windows(self, data: Any, seed: int) -> Iterator[list[_Window]]:
        """Seeded permutations of all documents, one after another, read ``buffer_docs`` at a time
        and cut into batches of ``batch_size`` windows: each training run starts at a random place in
        the corpus and covers it without repeats before it repeats a document."""
        n = len(data)
        if n == 0:
            raise InvalidInputError("the corpus has 0 documents.")
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 7919])
        buf: list[_Window] = []
        while True:
            perm = rng.permutation(n)
            for s in range(0, n, self.buffer_docs):
                docs = perm[s:s + self.buffer_docs]
                for doc, ids in zip(docs.tolist(), data.take(docs)):
                    buf.extend(_Window(int(doc), list(w)) for w in chunk_ids(ids, self.max_length, self.max_chunks))
                while len(buf) >= self.batch_size:
                    yield buf[:self.batch_size]
                    buf = buf[self.batch_size:]

    def train_steps(self, data: Any, steps: int, lr_schedule: LRSchedule, *, seed: int = 0) -> None:
        """``steps`` SGD steps (momentum, weight decay, fresh optimizer) on the mean token cross-entropy.

        Only the trainable parameters move; window order and dropout masks come from ``seed``.
        """
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=lr_schedule(0), momentum=self.momentum, weight_decay=self.weight_decay)
        self._run(opt, data, int(steps), lr_schedule, seed)

    def fit(self, data: Any, *, steps: int, lr: float = 3e-3, warmup: int = 0, weight_decay: float = 0.01,
            seed: int = 0, progress: bool = False) -> list[float]:
        """Pre-train from the current weights: AdamW, linear warm-up then cosine decay to 0.

        The recipe for θ* when a model is trained on the corpus (tests, benchmarks); members use
        ``train_steps``. Returns the loss of every step.
        """
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        cosine = CosineSchedule(lr, max(steps - warmup, 1))

        def schedule(t: int) -> float:
            return lr * (t + 1) / warmup if t < warmup else cosine(t - warmup)

        return self._run(opt, data, int(steps), schedule, seed, progress=progress)

    def _run(self, opt: torch.optim.Optimizer, data: Any, steps: int, schedule: LRSchedule, seed: int,
             progress: bool = False) -> list[float]:
        losses = []
        batches = self._training_windows(data, seed)
        bar = tqdm(total=steps, desc="train", disable=not progress, leave=False)
        self.model.train()
        try:
            with seeded_rng(seed, self.device):
                for t in range(steps):
                    for group in opt.param_groups:
                        group["lr"] = schedule(t)
                    total, count = self._token_losses(next(batches))
                    loss = total.sum() / count.sum().clamp_min(1)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    losses.append(float(loss.detach()))
                    bar.update(1)
        finally:
            self.model.eval()
            bar.close()
        return losses

    @torch.inference_mode()
    def per_sample_loss(self, data: Any, *, progress: bool = False, desc: str = "score") -> np.ndarray:
        """Mean token cross-entropy of each document in eval mode, ``(n_documents,) float32``.

        A stream is read once, ``buffer_docs`` documents at a time; progress (documents/s and an
        ETA when the corpus size is known) goes to a progress bar and, every
        ``LOG_EVERY_S`` seconds, to the log.
        """
        self.model.eval()
        total = _n_documents(data)
        sums: list[float] = []
        counts: list[int] = []
        bar = tqdm(total=total, desc=desc, unit="doc", disable=not progress, leave=False)
        t0 = last_log = time.perf_counter()
        texts: list[str] = []

        def flush(ids: list[list[int]] | None = None) -> None:
            nonlocal last_log
            start = len(sums)
            k = len(texts) if ids is None else len(ids)
            windows = self.encode(texts, start) if ids is None else self.encode_ids(ids, start)
            sums.extend([0.0] * k)
            counts.extend([0] * k)
            for batch in pack_batches([len(w.ids) for w in windows], self.batch_tokens):
                chunk = [windows[i] for i in batch]
                s, c = self._eval_losses(chunk)
                for w, si, ci in zip(chunk, s.tolist(), c.tolist()):
                    sums[w.doc] += si
                    counts[w.doc] += int(ci)
            bar.update(k)
            texts.clear()
            now = time.perf_counter()
            if now - last_log >= LOG_EVERY_S:
                last_log = now
                rate = len(sums) / max(now - t0, 1e-9)
                eta = f", ETA {(total - len(sums)) / rate:.0f} s" if total else ""
                logger.info("%s: %d%s documents, %.1f docs/s%s", desc, len(sums), f"/{total}" if total else "",
                            rate, eta)

        try:
            with self._eval_precision():
                if _is_tokens(data):
                    for s in range(0, len(data), self.buffer_docs):
                        flush(data.token_ids(s, min(s + self.buffer_docs, len(data))))
                else:
                    for text in _iter_documents(data):
                        texts.append(text)
                        if len(texts) == self.buffer_docs:
                            flush()
                    if texts:
                        flush()
        finally:
            bar.close()
        if not sums:
            raise InvalidInputError("the corpus has 0 documents.")
        return (np.asarray(sums, dtype=np.float64) / np.maximum(np.asarray(counts), 1)).astype(np.float32)

    def _eval_precision(self) -> Any:
        """``torch.autocast`` to bf16 when ``eval_dtype`` asks for it, else a no-op context."""
        import contextlib

        if self.eval_dtype == "float32":
            return contextlib.nullcontext()
        device_type = torch.device(self.device).type
        return torch.autocast(device_type=device_type, dtype=torch.bfloat16)

    def predict_proba(self, data: Any) -> np.ndarray:
        """Per-token geometric-mean probability of each document, ``exp(-loss)``, ``(n_documents, 1) float32``.

        A language model has no classes; this is the one probability per document that the
        ``Learner`` protocol's shape allows (``exp`` of minus the mean token cross-entropy).
        """
        return np.exp(-self.per_sample_loss(data).astype(np.float64)).astype(np.float32)[:, None]

    def perplexity(self, data: Any) -> float:
        """Token-weighted perplexity over all documents: ``exp(total token loss / total tokens)``."""
        self.model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            texts = list(_iter_documents(data))
            windows = self.encode(texts)
            for batch in pack_batches([len(w.ids) for w in windows], self.batch_tokens):
                s, c = self._token_losses([windows[i] for i in batch])
                total += float(s.sum())
                count += int(c.sum())
        return float(math.exp(total / max(count, 1)))


__all__ = ["DEFAULT_BUFFER_DOCS", "DEFAULT_MAX_LENGTH", "EVAL_DTYPES", "CausalLMLearner", "CorpusGEX",
           "check_lm_trainable", "chunk_ids", "corpus_gex", "lm_members", "lm_trainable_names", "pack_batches"]

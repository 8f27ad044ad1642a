"""The curation flow: a smaller corpus of the same worth, scored by a language model with GEX.

inventory (one streaming pass: lengths, content hashes, exact duplicates, near-duplicate keys) →
load the causal language model (θ*; optionally adapted to the corpus first) → members (cycles of
continued pre-training) → scores (one streaming pass per member) → budget (``decisions.prune``) →
write the curated corpus (one streaming pass) → validate (the ``corpus`` suite) → report → publish
(versioned, with the manifest and the report).

The same conventions as the cleaning flow (``orchestration.flow``): one Prefect task per step, each
calling library functions; the expensive results (the adapted θ*, the members, the loss matrix) are
cached by content, the key being the corpus fingerprint (its shards' bytes), the model folder's
digest and the settings that affect them, persisted under ``cache_dir``; nothing is published
unless the suite passes.

Every input document ends in the manifest with a status: ``kept``, ``redundant`` (pruned from the
low end of self-influence), ``junk`` (pruned from the high end), or the inventory's reason for not
scoring it (``empty``, ``too short``, ``too long``, ``duplicate``, ``not text``). The budget is a
fraction or a count of the *scored* documents.

Run it: ``influence-stage curate --config flows/corpus.yaml`` or ``python flows/curate.py [CONFIG]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import numbers
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict, Field, field_validator

from influence_stage.data.corpus import Corpus, inventory, near_duplicate_groups
from influence_stage.data.arrow import ROW_ID
from influence_stage.decisions.prune import check_budget, prune
from influence_stage.errors import InvalidInputError

logger = logging.getLogger(__name__)


class CurateConfig(BaseModel):
    """Parameters of the curation flow (also what ``--config`` YAML files hold)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(description="Corpus shards: a Parquet / Arrow / JSONL file, a folder of them, or a glob.")
    name: str = Field(description="Name of the published corpus: <publish_root>/<name>/<version>/.")
    model: str = Field(description="Local folder of a causal language model and its tokenizer (θ*).")
    budget: float | int = Field(description="Documents to keep: a fraction in (0, 1] or a count of the scored "
                                "documents.")
    text_column: str = Field("text", description="Column of the documents.")
    id_column: str | None = Field(None, description="Column of document ids (default: the row number).")
    high_share: float = Field(0.0, ge=0, le=1, description="Share of the removed documents taken from the highest "
                              "self-influence (junk); the rest are the lowest (redundant).")
    dedup: bool = Field(True, description="Leave out exact duplicates (same bytes) before scoring.")
    min_chars: int = Field(1, ge=1, description="Fewest characters of a scored document (after stripping).")
    max_chars: int | None = Field(None, ge=1, description="Most characters of a scored document (None: no bound).")
    skip_invalid: bool = Field(False, description="Leave non-string documents out (status 'not text') instead of "
                               "failing.")
    trainable: str = Field("all", description="Parameters the members perturb: 'all' or 'last:N' (last N blocks).")
    max_length: int | None = Field(None, ge=2, description="Tokens per window of the chunking rule.")
    max_chunks: int | None = Field(None, ge=1, description="Windows scored per document (None: all).")
    batch_size: int = Field(16, ge=1, description="Windows per SGD step of the members.")
    batch_tokens: int = Field(8192, ge=2, description="Padded tokens per forward pass when scoring.")
    fit_steps: int = Field(0, ge=0, description="AdamW steps adapting θ* to the corpus before the members (0: the "
                           "model as given is θ*).")
    fit_lr: float = Field(1e-3, gt=0, description="Peak rate of the adaptation.")
    chains: int = Field(4, ge=1, description="Member chains from θ*.")
    cycles: int = Field(2, ge=1, description="Cycles per chain; each cycle's end is a member.")
    cycle_steps: int = Field(50, ge=1, description="SGD steps per cycle.")
    ft_lr: float = Field(0.05, gt=0, description="Peak SGD rate of each cycle.")
    tau: float = Field(0.0, ge=0, description="Floor of the reference loss in self-influence (0: the paper's D = L - L*; "
                       "a language model's losses sit far above any small floor).")
    seed: int = Field(0, description="Seed of the members' window order and dropout.")
    device: str = Field("cpu", description="Torch device.")
    publish_root: str = Field("data/published", description="Root folder of published versions.")
    cache_dir: str = Field("runs/cache", description="Where cached θ*, members and loss matrices live.")
    progress: bool = Field(False, description="Show progress bars.")

    @field_validator("budget", mode="before")
    @classmethod
    def _budget(cls, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise ValueError(f"budget must be a fraction in (0, 1] or a count >= 1; found {v!r}")
        if isinstance(v, numbers.Integral):
            if v < 1:
                raise ValueError(f"budget must be a fraction in (0, 1] or a count >= 1; found {v}")
        elif not 0 < float(v) <= 1:
            raise ValueError(f"budget fraction must be in (0, 1]; found {v}. Give e.g. 0.7, or an int count")
        return v

    @field_validator("trainable")
    @classmethod
    def _trainable(cls, v: str) -> str:
        from influence_stage.engine.causal_lm import check_lm_trainable

        return check_lm_trainable(v)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "CurateConfig":
        """Read a YAML mapping of the fields; InvalidInputError naming the file on any problem."""
        from influence_stage._checks import read_yaml_mapping

        data = read_yaml_mapping(path)
        return cls.from_mapping(data, where=str(path))

    @classmethod
    def from_mapping(cls, data: dict[str, Any], *, where: str = "curation config") -> "CurateConfig":
        try:
            return cls(**data)
        except Exception as exc:
            raise InvalidInputError(f"{where}: {' '.join(str(exc).split())}") from exc


def _digest(*parts: Any) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:32]


def _cache_key(context: Any, parameters: dict[str, Any]) -> str:
    return f"{context.task.name}-{parameters['key']}"


CACHED = dict(cache_key_fn=_cache_key, persist_result=True)


def _learner(config: CurateConfig) -> Any:
    from influence_stage.engine.causal_lm import CausalLMLearner

    return CausalLMLearner.from_pretrained(config.model, trainable=config.trainable, max_length=config.max_length,
                                           max_chunks=config.max_chunks, batch_size=config.batch_size,
                                           batch_tokens=config.batch_tokens, device=config.device)


@task(name="inventory", cache_policy=NO_CACHE)
def inventory_task(corpus: Corpus, config: CurateConfig) -> pd.DataFrame:
    return inventory(corpus, min_chars=config.min_chars, max_chars=config.max_chars, dedup=config.dedup,
                     skip_invalid=config.skip_invalid, progress=config.progress)


@task(name="adapt-theta", **CACHED)
def adapt_task(corpus: Any, config: CurateConfig, key: str) -> dict[str, Any]:
    """θ* adapted to the corpus (``fit_steps`` AdamW steps); the full state dict is cached."""
    learner = _learner(config)
    get_run_logger().info("adapting θ* to the corpus: %d steps", config.fit_steps)
    learner.fit(corpus, steps=config.fit_steps, lr=config.fit_lr, warmup=max(config.fit_steps // 10, 1),
                seed=config.seed, progress=config.progress)
    return {k: v.detach().clone() for k, v in learner.model.state_dict().items()}


@task(name="members", **CACHED)
def members_task(learner: Any, corpus: Any, config: CurateConfig, key: str) -> list[Any]:
    from influence_stage.engine.causal_lm import lm_members

    return lm_members(learner, corpus, chains=config.chains, cycles=config.cycles, steps=config.cycle_steps,
                      ft_lr=config.ft_lr, seed=config.seed, progress=config.progress)


@task(name="loss-matrix", **CACHED)
def score_task(learner: Any, corpus: Any, members: list[Any], config: CurateConfig, key: str) -> dict[str, Any]:
    from influence_stage.engine.causal_lm import corpus_gex

    res = corpus_gex(learner, corpus, members=members, ft_lr=config.ft_lr, tau=config.tau, progress=config.progress)
    return {"self_influence": res.self_influence, "base_loss": res.base_loss,
            "loss_matrix": np.asarray(res.loss_matrix), "timings": res.timings}


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


@task(name="write-curated", cache_policy=NO_CACHE)
def write_task(corpus: Corpus, manifest: pd.DataFrame, config: CurateConfig, workdir: str) -> Any:
    """The kept documents, every input column plus ``row_id`` and ``self_influence``, as a Dataset
    memory-mapped from Arrow files under ``workdir`` (never held whole in memory)."""
    import datasets

    keep = manifest["status"].eq("kept").to_numpy()
    path = Path(workdir) / "curated.parquet"
    corpus.write_parquet(path, keep, extra={ROW_ID: manifest[ROW_ID].to_numpy(),
                                            "self_influence": manifest["score"].to_numpy()})
    return datasets.Dataset.from_parquet(str(path), cache_dir=str(Path(workdir) / "arrow"))


@task(name="validate-corpus", cache_policy=NO_CACHE)
def validate_task(curated: Any, manifest: pd.DataFrame, n_input: int, n_scored: int, n_keep: int,
                  config: CurateConfig) -> Any:
    from influence_stage.quality.corpus import document_frame, validate_corpus

    report = validate_corpus(document_frame(curated, config.text_column), manifest, n_input=n_input,
                             n_scored=n_scored, budget_fraction=n_keep / max(n_scored, 1)
                             if isinstance(config.budget, numbers.Integral) else float(config.budget),
                             min_chars=config.min_chars, max_chars=config.max_chars, dedup=config.dedup)
    report.raise_if_failed()
    return report


def _texts_of(corpus: Corpus, rows: set[int]) -> dict[int, str]:
    """Texts of a few rows, in one streaming pass."""
    mask = np.zeros(len(corpus), dtype=bool)
    mask[list(rows)] = True
    wanted = sorted(rows)
    return {r: t for r, t in zip(wanted, corpus.iter_texts(rows=mask))}


@task(name="publish", cache_policy=NO_CACHE)
def publish_task(curated: Any, manifest: pd.DataFrame, report: Any, html: str, near: list[list[int]],
                 config: CurateConfig, summary: dict[str, Any], fingerprint: str) -> Any:
    from influence_stage.publish.versions import publish

    extra = {"near_duplicates.json": json.dumps(near).encode()}
    return publish(curated, manifest, root=config.publish_root, name=config.name,
                   config=config.model_dump(mode="json"), validation_reports=[report], report_html=html,
                   extra_files=extra, fingerprint=fingerprint, summary=summary)


def preflight(config: CurateConfig) -> Corpus:
    """The cheap checks before anything is scored: shards and columns, the model folder, the budget."""
    from influence_stage.engine.hf import pretrained_digest
    from influence_stage.publish.versions import check_name

    check_name(config.name)
    corpus = Corpus(config.source, text_column=config.text_column, id_column=config.id_column)
    pretrained_digest(config.model)  # the folder exists
    check_budget(config.budget, len(corpus))  # against the input count; the scored count is checked later
    return corpus


@flow(name="curate-corpus", log_prints=False)
def curate_corpus(config: CurateConfig) -> dict[str, Any]:
    """Curate one corpus end to end; returns a summary (published path, counts, timings)."""
    from influence_stage.engine.hf import pretrained_digest
    from influence_stage.report.corpus import build_corpus_report, sample_rows

    log = get_run_logger()
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    clock = [t0]

    def lap(name: str) -> None:
        now = time.perf_counter()
        timings[name] = round(now - clock[0], 3)
        clock[0] = now

    corpus = preflight(config)
    inv = inventory_task(corpus, config)
    scored = inv["status"].eq("ok").to_numpy()
    n_scored = int(scored.sum())
    if n_scored == 0:
        raise InvalidInputError(f"no document of {config.source} is left to score: {inv['status'].value_counts().to_dict()}.")
    n_keep = check_budget(config.budget, n_scored)
    near = near_duplicate_groups(inv)
    lap("inventory")
    fingerprint = corpus.fingerprint()
    model_digest = pretrained_digest(config.model)
    view = corpus.where(scored)
    cached = dict(result_storage=Path(config.cache_dir).resolve())
    learner = _learner(config)
    data_key = _digest(fingerprint, model_digest, config.min_chars, config.max_chars, config.dedup,
                       config.skip_invalid, config.max_length, config.max_chunks)
    if config.fit_steps:
        state = adapt_task.with_options(**cached)(view, config, key=_digest(data_key, "adapt", config.fit_steps,
                                                                              config.fit_lr, config.seed,
                                                                              config.batch_size, config.trainable))
        learner.model.load_state_dict(state)
    lap("θ*")
    member_key = _digest(data_key, "members", config.fit_steps, config.fit_lr, config.trainable, config.chains,
                         config.cycles, config.cycle_steps, config.ft_lr, config.seed, config.batch_size)
    members = members_task.with_options(**cached)(learner, view, config, key=member_key)
    lap("members")
    scores = score_task.with_options(**cached)(learner, view, members, config,
                                               key=_digest(member_key, "loss", config.tau, config.batch_tokens))
    lap("scores")
    result = prune(scores["self_influence"], n_keep, high_share=config.high_share)
    manifest = build_manifest(inv, scored, scores["self_influence"], scores["base_loss"], result)
    with tempfile.TemporaryDirectory(prefix="curate-") as workdir:
        curated = write_task(corpus, manifest, config, workdir)
        report = validate_task(curated, manifest, len(corpus), n_scored, result.n_keep, config)
        lap("write + validate")
        samples = sample_rows(manifest)
        wanted = {i for ids in samples.values() for i in ids} | {g[0] for g in near[:10]}
        texts = _texts_of(corpus, wanted)
        counts = manifest["status"].value_counts().to_dict()
        summary = {"documents in": int(len(inv)), "documents scored": n_scored, "documents kept": int(result.n_keep),
                   **{f"status {k}": int(v) for k, v in sorted(counts.items())},
                   "budget": config.budget, "high share": config.high_share,
                   "kept fraction of scored": round(result.n_keep / n_scored, 6),
                   "near-duplicate groups": len(near), "members": config.chains * config.cycles,
                   "ft_lr": config.ft_lr, "trainable": config.trainable, "model": config.model,
                   "low cut": result.low_cut, "high cut": result.high_cut}
        html = build_corpus_report(manifest, texts=texts, summary={**summary, **{f"seconds {k}": v for k, v in
                                                                                 timings.items()}},
                                   low_cut=result.low_cut, high_cut=result.high_cut, near_duplicates=near,
                                   title=f"influence_stage curation: {config.name}")
        published = publish_task(curated, manifest, report, html, near, config, summary, fingerprint)
    lap("report + publish")
    summary["published"] = str(published.path)
    summary["report"] = str(Path(published.path) / "report.html")
    summary["timings"] = timings
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    markdown = "\n".join(["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in summary.items()
                                                     if k not in ("timings",)])
    summary["markdown"] = markdown
    create_markdown_artifact(markdown, key="curation-summary", description=f"influence_stage curation of {config.name}")
    log.info("published %s (%d → %d documents)", published.path, len(inv), result.n_keep)
    return summary


# -- command line ------------------------------------------------------------------------------------

_OVERRIDES = ("source", "name", "model", "text_column", "publish_root", "cache_dir")


def add_curate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``curate`` command to the CLI's subparsers; returns its parser."""
    p = subparsers.add_parser("curate", help="curate a text corpus by self-influence under a budget, validate it, "
                              "publish it",
                              description="Score an unlabeled corpus with a causal language model (GEX self-"
                              "influence), keep a budget, validate with the corpus suite, publish a version.")
    p.add_argument("--config", help="YAML file with the CurateConfig fields (flows/corpus.yaml)")
    for name in _OVERRIDES:
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, help=f"override {name}")
    p.add_argument("--budget", help="documents to keep: a fraction in (0, 1] or an integer count")
    p.add_argument("--high-share", type=float, dest="high_share", help="share of removals from the highest scores")
    p.add_argument("--no-dedup", action="store_true", dest="no_dedup", help="keep exact duplicates")
    p.add_argument("--progress", action="store_true", help="show progress bars")
    return p


def _budget_arg(text: str) -> float | int:
    try:
        return int(text) if text.strip().lstrip("+").isdigit() else float(text)
    except ValueError as exc:
        raise InvalidInputError(f"--budget {text!r} is not a number; give a fraction in (0, 1] or a count.") from exc


def curate_config(args: argparse.Namespace) -> CurateConfig:
    """The configuration of a ``curate`` command line: ``--config`` YAML with the flags on top."""
    data: dict[str, Any] = {}
    if getattr(args, "config", None):
        data = CurateConfig.from_yaml(args.config).model_dump()
    for name in _OVERRIDES:
        if getattr(args, name, None) is not None:
            data[name] = getattr(args, name)
    if getattr(args, "budget", None) is not None:
        data["budget"] = _budget_arg(args.budget)
    if getattr(args, "high_share", None) is not None:
        data["high_share"] = args.high_share
    if getattr(args, "no_dedup", False):
        data["dedup"] = False
    if getattr(args, "progress", False):
        data["progress"] = True
    missing = [k for k in ("source", "name", "model", "budget") if k not in data]
    if missing:
        raise InvalidInputError(f"curate needs {missing}: give --config FILE or the flags "
                                f"{['--' + m.replace('_', '-') for m in missing]}.")
    return CurateConfig.from_mapping(data, where="curate")


def run_curate(args: argparse.Namespace) -> int:
    """Run the ``curate`` command; returns the exit code (errors propagate to the CLI's handler)."""
    config = curate_config(args)
    preflight(config)
    summary = curate_corpus(config)
    print(summary["markdown"])
    print(f"\npublished: {summary['published']}\nreport:    {summary['report']}")
    return 0


if __name__ == "__main__":
    import sys

    print(curate_corpus(CurateConfig.from_yaml(sys.argv[1] if len(sys.argv) > 1 else "flows/corpus.yaml"))["markdown"])

"""``CurateConfig``: the settings of the curation flow, what its ``--config`` YAML files hold.

Kept apart from the flow (``influence_stage.orchestration.curate``) so that the CLI builds a flag
for each field, with the field's description as its help, without importing Prefect or torch.
"""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from influence_stage.errors import InvalidInputError


class CurateConfig(BaseModel):
    """Parameters of the curation flow (also what ``--config`` YAML files hold)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(description="Corpus shards: a Parquet / Arrow / JSONL file, a folder of them, or a glob.")
    name: str = Field(description="Name of the published corpus: <publish_root>/<name>/<version>/.")
    model: str = Field(description="Local folder of a causal language model and its tokenizer (θ*).")
    budget: float | int | None = Field(None, description="Documents to keep: a fraction in (0, 1] or a count of "
                                       "the scored documents (None: no count limit; then budget_tokens is needed).")
    budget_tokens: int | None = Field(None, ge=1, description="Most tokens to keep (the model tokenizer's tokens of "
                                      "each kept document, whole): documents are kept in score order until the next "
                                      "one would pass it, beside the document budget (None: no token limit).")
    text_column: str = Field("text", description="Column of the documents.")
    id_column: str | None = Field(None, description="Column of document ids (default: the row number).")
    high_share: float = Field(0.0, ge=0, le=1, description="Share of the removed documents taken from the highest "
                              "self-influence (junk); the rest are the lowest (redundant).")
    dedup: bool = Field(True, description="Leave out exact duplicates (same bytes) before scoring.")
    near_dedup: float | None = Field(None, gt=0, le=1, description="Leave out near duplicates before scoring: "
                                     "MinHash LSH (datasketch) on word 3-grams, a document whose estimated Jaccard "
                                     "similarity to an earlier kept one reaches this threshold is marked "
                                     "'duplicate' of it (None: exact duplicates only).")
    min_chars: int = Field(1, ge=1, description="Fewest characters of a scored document (after stripping).")
    max_chars: int | None = Field(None, ge=1, description="Most characters of a scored document (None: no bound).")
    skip_invalid: bool = Field(False, description="Leave non-string documents out (status 'not text') instead of "
                               "failing.")
    trainable: str = Field("all", description="Parameters the members perturb: 'all' or 'last:N' (last N blocks).")
    max_length: int | None = Field(None, ge=2, description="Tokens per window of the chunking rule.")
    max_chunks: int | None = Field(None, ge=1, description="Windows scored per document (None: all).")
    batch_size: int = Field(16, ge=1, description="Windows per SGD step of the members.")
    batch_tokens: int = Field(8192, ge=2, description="Padded tokens per forward pass when scoring.")
    adapt_steps: int = Field(0, ge=0, validation_alias=AliasChoices("adapt_steps", "fit_steps"),
                             description="Steps of continued pre-training (AdamW, warm-up then cosine) adapting θ* "
                             "to the corpus before the members, a cached step of the plan (0: the model as given is "
                             "θ*; the old key fit_steps is read too).")
    adapt_lr: float = Field(1e-3, gt=0, validation_alias=AliasChoices("adapt_lr", "fit_lr"),
                            description="Peak rate of the adaptation (the old key fit_lr is read too).")
    chains: int = Field(4, ge=1, description="Member chains from θ*.")
    cycles: int = Field(2, ge=1, description="Cycles per chain; each cycle's end is a member.")
    cycle_steps: int = Field(50, ge=1, description="SGD steps per cycle (unless cycle_epochs is given).")
    cycle_epochs: float | None = Field(None, gt=0, description="Documents drawn per cycle as a multiple of the "
                                       "scored documents: ceil(cycle_epochs × n / batch_size) steps, so the steps "
                                       "grow with the corpus (None: cycle_steps).")
    shard_docs: int = Field(4096, ge=1, description="Documents per scoring work unit (a range × one pass, each with "
                            "a done-flag).")
    output_shard_rows: int | None = Field(None, ge=1, description="Most rows per Parquet shard of the curated "
                                          "corpus (None: no row limit).")
    output_shard_bytes: int | None = Field(None, ge=1, description="About the most bytes of Arrow data per Parquet "
                                           "shard of the curated corpus (None: no byte limit).")
    score: Literal["self", "self_or_perplexity", "reference"] = Field(
        "self_or_perplexity", description="The ranking: 'self_or_perplexity' (the larger of the GEX "
        "self-influence's and the loss per character's rank fractions: the self-influence finds boilerplate and "
        "atypical text, the loss per character text every member finds hard, such as random strings; removals "
        "from both ends by high_share), 'self' (GEX self-influence alone) or 'reference' (GEX cross-influence on "
        "the mean loss of the reference corpus under the reference members: the documents whose loss falls "
        "least as θ* moves toward the reference are removed).")
    reference: str | None = Field(None, description="Shards of the reference corpus (score: reference), read in "
                                  "memory: keep it small.")
    reference_members: int = Field(4, ge=2, description="score: reference: members continued from θ* on the "
                                   "reference corpus, one short SGD cycle each with its own batch order; each "
                                   "costs one scoring pass over the corpus.")
    reference_steps: int = Field(300, ge=1, description="score: reference: SGD steps of each reference member "
                                 "(batch_size windows of the reference each).")
    reference_lr: float = Field(0.2, gt=0, description="score: reference: peak SGD rate of each reference member's "
                                "cycle; large enough that the reference's own loss clearly falls (the run's log "
                                "and the reference losses show it), as ft_lr it depends on the model.")
    eval_dtype: Literal["float32", "bfloat16"] = Field("float32", description="Precision of the scoring forward "
                                                       "passes ('bfloat16': torch.autocast).")
    ft_lr: float = Field(0.05, gt=0, description="Peak SGD rate of each cycle.")
    tau: float = Field(0.0, ge=0, description="Floor of the reference loss in self-influence (0: the paper's D = L - L*; "
                       "a language model's losses sit far above any small floor).")
    seed: int = Field(0, description="Seed of the members' window order and dropout.")
    device: str = Field("cpu", description="Torch device.")
    publish_root: str = Field("data/published", description="Root folder of published versions.")
    cache_dir: str = Field("runs/cache", description="Where cached θ*, members and loss matrices live.")
    progress: bool = Field(False, description="Show progress bars.")
    notify_webhook: str | None = Field(None, pattern=r"^https?://\S+$", description="URL that receives a JSON POST "
                                       "when the curation run fails (orchestration.notify's payload).")

    @field_validator("budget", mode="before")
    @classmethod
    def _budget(cls, v: Any) -> Any:
        if v is None:
            return v
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise ValueError(f"budget must be a fraction in (0, 1] or a count >= 1; found {v!r}")
        if isinstance(v, numbers.Integral):
            if v < 1:
                raise ValueError(f"budget must be a fraction in (0, 1] or a count >= 1; found {v}")
        elif not 0 < float(v) <= 1:
            raise ValueError(f"budget fraction must be in (0, 1]; found {v}. Give e.g. 0.7, or an int count")
        return v

    @model_validator(mode="after")
    def _reference(self) -> "CurateConfig":
        if self.budget is None and self.budget_tokens is None:
            raise ValueError("give budget (a fraction or a count of documents), budget_tokens, or both")
        if self.score == "reference" and not self.reference:
            raise ValueError("score: reference needs reference: the shards of a reference corpus")
        if self.score == "reference" and self.high_share:
            raise ValueError(f"score: reference removes the documents that help the reference least (the low end); "
                             f"high_share must be 0, found {self.high_share}")
        return self

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


__all__ = ["CurateConfig"]

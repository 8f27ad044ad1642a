"""A dataset on the Hugging Face Hub (``datasets.load_dataset``), with clear errors offline."""

from __future__ import annotations

from pathlib import Path

import datasets

from influence_stage.data.in_memory import pick_split
from influence_stage.errors import InvalidInputError


def load_hub(source: str, split: str | None, cache_dir: str | None) -> datasets.Dataset:
    transport_errors: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)
    try:  # httpx errors can escape datasets' own wrapping during downloads
        import httpx

        transport_errors += (httpx.TransportError,)
    except ImportError:  # pragma: no cover - httpx ships with huggingface_hub
        pass
    try:
        loaded = datasets.load_dataset(source, split=split, cache_dir=cache_dir)
    except FileNotFoundError as exc:
        raise InvalidInputError(
            f"source {source!r} is neither a local path (nothing at {Path(source).absolute()}) nor a dataset "
            f"on the Hugging Face Hub ({exc}). Fix: check the spelling or pass a local file or folder."
        ) from exc
    except transport_errors as exc:
        raise InvalidInputError(
            f"could not reach the Hugging Face Hub to load {source!r} ({type(exc).__name__}: {exc}); offline "
            "mode (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE) or no network. Fix: pass a local path instead "
            "(a parquet / csv / json file or folder, or a folder written by Dataset.save_to_disk where the hub "
            "is reachable)."
        ) from exc
    except ValueError as exc:  # e.g. 'Unknown split "x". Should be one of [...]'
        raise InvalidInputError(f"could not load {source!r} from the hub: {exc}") from exc
    if isinstance(loaded, datasets.DatasetDict):
        return pick_split(loaded, split, f"hub dataset {source!r}")
    return loaded


__all__ = ["load_hub"]

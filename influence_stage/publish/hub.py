"""Pushing a published version to a Hugging Face Hub dataset repo (an explicit, separate step).

``publish`` runs ``push_to_hub`` only when ``push_to_hub_repo`` is given, after the local
version is complete; ``check_hub_push`` tells before any work whether a push can work at all.
What is uploaded is laid out by ``hub_layout``: the version under ``<name>/<version>/`` and a
root ``README.md`` dataset card whose ``configs`` name that version's ``data.parquet``, so
``datasets.load_dataset("<repo>")`` loads the cleaned rows (not the validation JSON).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import datasets
import pandas as pd
import pyarrow.parquet as pq

from influence_stage.errors import HubPushError, InvalidInputError, InvalidTypeError
from influence_stage.publish.card import dataset_card
from influence_stage.publish.layout import CARD_MD, DATA_PARQUET, DATASET_DIR, MANIFEST_PARQUET, META_JSON, Published

logger = logging.getLogger(__name__)


def _hub_offline() -> bool:
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}
    return env or bool(constants.HF_HUB_OFFLINE)


def _hub_token() -> str | None:
    from huggingface_hub import get_token

    return get_token()


def check_hub_available(repo_id: Any) -> None:
    """Whether the Hub can be reached at all: ``repo_id`` a non-empty string and offline mode off.

    Raises
    ------
    InvalidTypeError
        ``repo_id`` not a non-empty string.
    HubPushError
        Offline mode (``HF_HUB_OFFLINE=1``).
    """
    if not isinstance(repo_id, str) or not repo_id.strip():
        raise InvalidTypeError(f"repo_id must be a non-empty string like 'user/dataset'; found {repo_id!r}.")
    if _hub_offline():
        raise HubPushError(
            f"cannot push to the Hugging Face Hub repo {repo_id!r}: offline mode is on (HF_HUB_OFFLINE=1). "
            "Fix: unset HF_HUB_OFFLINE in an environment with network access, or publish locally only."
        )


def check_hub_push(repo_id: Any, token: str | None = None) -> None:
    """Whether ``push_to_hub`` can work at all, checked before any work: online, a token.

    Raises
    ------
    HubPushError
        Offline mode, or no token (neither ``token`` nor ``HF_TOKEN`` / ``huggingface-cli login``).
    """
    check_hub_available(repo_id)
    if token is None and _hub_token() is None:
        raise HubPushError(
            f"cannot push to the Hugging Face Hub repo {repo_id!r}: no Hugging Face token found. "
            "Fix: set HF_TOKEN or run `huggingface-cli login`, or publish locally only (no --push-to-hub)."
        )


def _link_or_copy(src: str, dst: str) -> None:
    """A hard link where the file system allows one (no bytes copied), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def hub_layout(published: Published, folder: str | os.PathLike[str]) -> Path:
    """Lay out in ``folder`` what ``push_to_hub`` uploads to the repo root.

    ``<name>/<version>/`` holds the version's files but ``dataset/`` (``data.parquet`` holds the
    same rows); ``README.md`` is the version's dataset card with its data paths under
    ``<name>/<version>/``, so the repo loads as this version. Files are hard-linked where possible.

    Parameters
    ----------
    published : Published
    folder : str or path-like
        An empty or missing folder.

    Returns
    -------
    Path
        ``folder``.

    Raises
    ------
    InvalidInputError
        ``published.path`` is not a published version, or ``folder`` is not empty.
    """
    if not (published.path / META_JSON).is_file():
        raise InvalidInputError(f"{str(published.path)!r} is not a published version (no {META_JSON}).")
    root = Path(folder)
    if root.exists() and any(root.iterdir()):
        raise InvalidInputError(f"hub layout folder {str(root)!r} is not empty; expected an empty or new folder.")
    prefix = f"{published.name}/{published.version}/"

    def skip(where: str, names: list[str]) -> set[str]:
        return {DATASET_DIR} if Path(where) == published.path else set()

    shutil.copytree(published.path, root / prefix, ignore=skip, copy_function=_link_or_copy, dirs_exist_ok=True)
    meta = json.loads((published.path / META_JSON).read_text(encoding="utf-8"))
    features = datasets.Features.from_arrow_schema(pq.read_schema(published.path / DATA_PARQUET))
    manifest = pd.read_parquet(published.path / MANIFEST_PARQUET)
    (root / CARD_MD).write_text(dataset_card(meta, features, manifest, prefix=prefix), encoding="utf-8")
    return root


def push_to_hub(published: Published, repo_id: str, *, token: str | None = None, private: bool | None = None) -> str:
    """Upload a published version to a Hugging Face Hub dataset repo.

    The version folder goes to ``<name>/<version>/`` in the repo (``dataset/`` Arrow files left
    out: ``data.parquet`` holds the same rows), and the repo's root ``README.md`` becomes this
    version's dataset card (``hub_layout``), in one commit. The repo is created when missing.
    Nothing is written under the version folder (the upload is staged in a temporary folder).

    Parameters
    ----------
    published : Published
        From ``publish``.
    repo_id : str
        ``"user/dataset"``.
    token : str, optional
        Hub token; default the logged-in user's.
    private : bool, optional
        Visibility of a newly created repo.

    Returns
    -------
    str
        The commit URL.

    Raises
    ------
    HubPushError
        Offline (``HF_HUB_OFFLINE=1``), or the Hub refused or could not be reached.
    """
    if not isinstance(published, Published):
        raise InvalidTypeError(f"published must be a Published; found {type(published).__name__}.")
    check_hub_available(repo_id)
    if not (published.path / META_JSON).is_file():
        raise InvalidInputError(f"{str(published.path)!r} is not a published version (no {META_JSON}).")
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        with tempfile.TemporaryDirectory(prefix="influence-stage-hub-") as staging:
            hub_layout(published, staging)
            api.create_repo(repo_id, repo_type="dataset", exist_ok=True, private=private)
            info = api.upload_folder(
                repo_id=repo_id,
                repo_type="dataset",
                folder_path=staging,
                commit_message=f"Publish {published.name} {published.version}",
            )
    except Exception as exc:
        raise HubPushError(
            f"pushing {published.name} {published.version} ({str(published.path)!r}) to {repo_id!r} failed: {exc}. "
            "The local version is published; retry push_to_hub when the Hub is reachable."
        ) from exc
    url = str(getattr(info, "commit_url", info))
    logger.info("Pushed %s %s to %s: %s", published.name, published.version, repo_id, url)
    return url

"""Pushing a published version to a Hugging Face Hub dataset repo (an explicit, separate step).

``publish`` runs :func:`push_to_hub` only when ``push_to_hub_repo`` is given, after the local
version is complete; :func:`check_hub_push` tells before any work whether a push can work at all.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from influence_stage.errors import HubPushError, InvalidInputError, InvalidTypeError
from influence_stage.publish.layout import DATASET_DIR, META_JSON, Published

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
    """Whether :func:`push_to_hub` can work at all, checked before any work: online, a token.

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


def push_to_hub(published: Published, repo_id: str, *, token: str | None = None, private: bool | None = None) -> str:
    """Upload a published version to a Hugging Face Hub dataset repo.

    The version folder goes to ``<name>/<version>/`` in the repo (``dataset/`` Arrow files left
    out: ``data.parquet`` holds the same rows). The repo is created when missing. Nothing is
    written locally.

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
        api.create_repo(repo_id, repo_type="dataset", exist_ok=True, private=private)
        info = api.upload_folder(
            repo_id=repo_id,
            repo_type="dataset",
            folder_path=published.path,
            path_in_repo=f"{published.name}/{published.version}",
            commit_message=f"Publish {published.name} {published.version}",
            ignore_patterns=[f"{DATASET_DIR}/*"],
        )
    except Exception as exc:
        raise HubPushError(
            f"pushing {published.name} {published.version} ({str(published.path)!r}) to {repo_id!r} failed: {exc}. "
            "The local version is published; retry push_to_hub when the Hub is reachable."
        ) from exc
    url = str(getattr(info, "commit_url", info))
    logger.info("Pushed %s %s to %s: %s", published.name, published.version, repo_id, url)
    return url

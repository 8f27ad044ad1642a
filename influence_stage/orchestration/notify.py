"""The failure notice: a JSON POST to the configuration's ``notify_webhook`` when a cleaning run fails.

``notify_failure`` is the cleaning flow's ``on_failure`` hook.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import Any

logger = logging.getLogger(__name__)


def post_json(url: str, payload: dict[str, Any], *, timeout: float = 10.0) -> int:
    """POST ``payload`` as JSON to ``url``; returns the HTTP status (raises ``OSError`` when unreachable)."""
    request = urllib.request.Request(url, data=json.dumps(payload).encode("utf-8"), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "User-Agent": "influence_stage"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - a URL the config names
        return int(response.status)


def failure_payload(flow_run: Any, state: Any) -> dict[str, Any]:
    """What the failure notice says: run name and id, deployment, dataset, the one-line reason."""
    params = (getattr(flow_run, "parameters", None) or {}).get("params") or {}
    if hasattr(params, "model_dump"):
        params = params.model_dump(mode="json")
    return {"event": "influence_stage.run.failed", "flow_run": getattr(flow_run, "name", None),
            "flow_run_id": str(getattr(flow_run, "id", "")), "deployment_id":
                str(flow_run.deployment_id) if getattr(flow_run, "deployment_id", None) else None,
            "dataset": params.get("name"), "source": params.get("source"),
            "state": getattr(getattr(state, "type", None), "value", None),
            "reason": " ".join(str(getattr(state, "message", "") or "").split())}


def notify_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """``on_failure`` hook of the cleaning flow: post the failure to the config's ``notify_webhook``.

    Does nothing when the run's parameters name no webhook. A webhook that cannot be reached is
    logged, never raised: the run is Failed already, and its state message holds the reason.
    """
    params = (getattr(flow_run, "parameters", None) or {}).get("params") or {}
    url = params.get("notify_webhook") if isinstance(params, dict) else getattr(params, "notify_webhook", None)
    if not url:
        return
    payload = failure_payload(flow_run, state)
    try:
        status = post_json(str(url), payload)
        logger.info("failure notice for %s posted to %s (HTTP %d)", payload["flow_run"], url, status)
    except (OSError, ValueError) as exc:  # URLError, timeouts, a refused connection, a malformed URL
        logger.warning("failure notice for %s could not be posted to %s: %s", payload["flow_run"], url, exc)


__all__ = ["failure_payload", "notify_failure", "post_json"]

"""Deployments of the cleaning flow: a cron-scheduled deployment object (built without a server)
and ``serve`` for a long-running process. For work pools, see ``prefect.yaml`` at the project root.
"""

from __future__ import annotations

from typing import Any

from influence_stage.orchestration.flow import FlowConfig, clean_dataset


def build_deployment(params: FlowConfig, *, cron: str, name: str | None = None) -> Any:
    """A ``RunnerDeployment`` of the cleaning flow on ``cron``; no Prefect server is needed to build it."""
    return clean_dataset.to_deployment(name=name or f"influence-stage-{params.name}", cron=cron,
                                       parameters={"params": params.model_dump(mode="json")},
                                       description=f"Scheduled cleaning of {params.source} → {params.name}",
                                       tags=["influence_stage", params.name])


def serve(params: FlowConfig, *, cron: str, name: str | None = None) -> None:
    """Serve the cleaning flow on ``cron`` in this process (needs a running Prefect server)."""
    clean_dataset.serve(name=name or f"influence-stage-{params.name}", cron=cron,
                        parameters={"params": params.model_dump(mode="json")})

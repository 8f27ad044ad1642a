"""Deployments of the cleaning flow: what ``prefect.yaml`` declares, built and registered from Python.

A scheduled cleaning run is a Prefect deployment of ``clean_dataset`` with a cron schedule, its
parameters (one ``FlowConfig``), the tags ``influence_stage`` and the dataset name, and a
concurrency limit of one run at a time (collisions wait: ``ENQUEUE``). The deployment is named
``influence-stage-<dataset name>``, so the limit is one run at a time per dataset name; a second
trigger waits for the first to finish, then finds the data unchanged and publishes nothing
(``skip_unchanged``, on by default for deployments, checked under the publish lock).

* ``project_deployment`` reads a deployment entry of ``prefect.yaml`` and checks its
  parameters through ``FlowConfig``.
* ``register`` registers one on a work pool of the Prefect server ``PREFECT_API_URL`` names
  (what ``prefect deploy`` does with ``prefect.yaml``), and ``build_deployment`` builds the
  same deployment without a server; ``influence_stage.orchestration.server`` starts a local
  server, pool and worker around them.
* ``serve`` serves the flow from this process instead of a work pool (needs a server too).
* ``notify_failure`` is the flow's ``on_failure`` hook: it posts the run's name, dataset and
  one-line reason to ``notify_webhook`` when the configuration names one.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from influence_stage.errors import InvalidInputError
from influence_stage.orchestration.notify import notify_failure

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
"""The project folder holding ``prefect.yaml`` and ``flows/`` (where a worker runs the flow)."""

PREFECT_YAML = PROJECT_ROOT / "prefect.yaml"
ENTRYPOINT = "flows/clean_dataset.py:clean_dataset"
DEFAULT_POOL = "influence-stage"
"""Work pool the deployments use unless told otherwise (a ``process`` pool)."""
TAG = "influence_stage"

NO_SERVER = ("PREFECT_API_URL is not set, so Prefect would use a temporary in-process server on which schedules "
             "never fire. Fix: start a server with `influence-stage server start` (or `make serve`), or set "
             "PREFECT_API_URL to a running Prefect server (e.g. http://127.0.0.1:4200/api).")


def api_url() -> str | None:
    """The Prefect API this process talks to (``PREFECT_API_URL``), or None for the temporary one."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    return str(url) if url else None


def require_server(what: str = "influence-stage serve") -> str:
    """The API URL of a running Prefect server; a one-line error when only the temporary one exists.

    Raises
    ------
    InvalidInputError
        ``PREFECT_API_URL`` is not set (the CLI exits 2).
    """
    url = api_url()
    if url is None:
        raise InvalidInputError(f"{what} needs a Prefect server: {NO_SERVER}")
    return url


def deployment_name(params: Any) -> str:
    """``influence-stage-<dataset name>``: one deployment, hence one concurrency slot, per dataset name."""
    return f"influence-stage-{params.name}"


def deployment_parameters(params: Any) -> dict[str, Any]:
    """The deployment's ``{"params": ...}``, with ``skip_unchanged`` on unless the config set it.

    A scheduled run on unchanged data publishes nothing; a configuration that says
    ``skip_unchanged: false`` keeps publishing every run.
    """
    data = params.model_dump(mode="json")
    if "skip_unchanged" in type(params).model_fields and "skip_unchanged" not in params.model_fields_set:
        data["skip_unchanged"] = True
    return {"params": data}


def concurrency_limit() -> Any:
    """One run at a time; a run that finds the slot taken waits for it (``ENQUEUE``), never runs twice."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    return ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)


def _schedule(cron: str, timezone: str | None) -> Any:
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.schedules import Schedule

    try:
        CronSchedule(cron=cron, timezone=timezone)
    except Exception as exc:
        raise InvalidInputError(
            f"cron {cron!r} (timezone {timezone!r}) is not a valid schedule; expected five fields 'minute hour day "
            'month weekday\', e.g. "0 3 * * *" (03:00 every day), and an IANA timezone such as UTC.'
        ) from exc
    return Schedule(cron=cron, timezone=timezone or "UTC")


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment of the cleaning flow: what a ``prefect.yaml`` entry says, checked.

    Attributes
    ----------
    name : str
        Deployment name.
    params : FlowConfig
        The flow's parameters.
    cron : str or None
        Cron schedule (None: runs only when triggered).
    timezone : str
        Timezone of the schedule.
    work_pool : str
        Work pool name.
    tags : tuple of str
    description : str
    entrypoint : str
        ``path/to/file.py:flow`` relative to the project folder.
    """

    name: str
    params: Any
    cron: str | None = "0 3 * * *"
    timezone: str = "UTC"
    work_pool: str = DEFAULT_POOL
    tags: tuple[str, ...] = ()
    description: str = ""
    entrypoint: str = ENTRYPOINT

    @classmethod
    def for_params(cls, params: Any, *, cron: str | None = "0 3 * * *", timezone: str = "UTC",
                   work_pool: str = DEFAULT_POOL, name: str | None = None) -> "DeploymentSpec":
        """The deployment of a ``FlowConfig``: named after its dataset, tagged with it."""
        return cls(name=name or deployment_name(params), params=params, cron=cron, timezone=timezone,
                   work_pool=work_pool, tags=(TAG, params.name),
                   description=f"Scheduled cleaning of {params.source} → {params.name}")

    def replace(self, **changes: Any) -> "DeploymentSpec":
        """A copy with some fields changed (a new ``params`` renames and retags it unless ``name`` is given)."""
        import dataclasses

        if "params" in changes and "name" not in changes:
            changes["name"] = deployment_name(changes["params"])
            changes.setdefault("tags", (TAG, changes["params"].name))
            changes.setdefault("description", f"Scheduled cleaning of {changes['params'].source} → "
                                              f"{changes['params'].name}")
        return dataclasses.replace(self, **changes)


def project_deployment(path: str | os.PathLike[str] = PREFECT_YAML, name: str | None = None) -> DeploymentSpec:
    """A deployment entry of ``prefect.yaml``, its parameters checked through ``FlowConfig``.

    Parameters
    ----------
    path : path-like, default the project's ``prefect.yaml``
    name : str, optional
        The deployment's name; default the first entry.

    Returns
    -------
    DeploymentSpec

    Raises
    ------
    InvalidInputError
        The file is missing or not YAML, has no such deployment, its ``params`` are not a valid
        ``FlowConfig``, or its schedule is not a cron schedule.
    """
    from influence_stage._checks import read_yaml_mapping
    from influence_stage.orchestration.flow import FlowConfig

    path = Path(path)
    data = read_yaml_mapping(path, empty_ok=True)
    entries = [d for d in data.get("deployments") or [] if isinstance(d, dict)]
    names = [d.get("name") for d in entries]
    entry = next((d for d in entries if name is None or d.get("name") == name), None)
    if entry is None:
        raise InvalidInputError(f"{path} has no deployment {name!r}; found {names}. Fix: pass one of those names.")
    where = f"{path}: deployment {entry.get('name')!r}"
    raw = ((entry.get("parameters") or {}).get("params"))
    if not isinstance(raw, dict):
        raise InvalidInputError(f"{where} has no parameters.params mapping (the FlowConfig of the run).")
    raw = dict(raw)
    from influence_stage.config import CleanConfig

    clean = CleanConfig.from_mapping(raw.pop("clean", {}) or {}, where=f"{where}: params.clean")
    try:
        params = FlowConfig(clean=clean, **raw)
    except Exception as exc:
        raise InvalidInputError(f"{where}: params: {' '.join(str(exc).split())}") from exc
    schedules = entry.get("schedules") or []
    cron, timezone = None, "UTC"
    if schedules:
        first = schedules[0] or {}
        cron, timezone = first.get("cron"), first.get("timezone") or "UTC"
        if not cron:
            raise InvalidInputError(f"{where}: schedules[0] has no cron; expected e.g. cron: \"0 3 * * *\".")
        _schedule(cron, timezone)
    return DeploymentSpec(name=str(entry["name"]), params=params, cron=cron, timezone=timezone,
                          work_pool=str((entry.get("work_pool") or {}).get("name") or DEFAULT_POOL),
                          tags=tuple(entry.get("tags") or (TAG, params.name)),
                          description=str(entry.get("description") or ""),
                          entrypoint=str(entry.get("entrypoint") or ENTRYPOINT))


def build_deployment(params: Any, *, cron: str, name: str | None = None) -> Any:
    """A ``RunnerDeployment`` of the cleaning flow on ``cron``; no Prefect server is needed to build it.

    It carries the deployment parameters (``deployment_parameters``), the tags and the
    concurrency limit of one run at a time.
    """
    from influence_stage.orchestration.flow import clean_dataset

    return clean_dataset.to_deployment(name=name or deployment_name(params), cron=cron,
                                       parameters=deployment_parameters(params),
                                       description=f"Scheduled cleaning of {params.source} → {params.name}",
                                       tags=[TAG, params.name], concurrency_limit=concurrency_limit())


def register(spec: DeploymentSpec, *, work_pool: str | None = None, project_dir: str | os.PathLike[str] = PROJECT_ROOT,
             create_pool: bool = True) -> str:
    """Register ``spec`` on the Prefect server ``PREFECT_API_URL`` names, for a worker of its pool.

    The flow is loaded from ``project_dir`` (``spec.entrypoint``), and a worker runs it there, so
    relative paths in the parameters are relative to the project folder. Registering again
    updates the deployment in place (same name).

    Parameters
    ----------
    spec : DeploymentSpec
    work_pool : str, optional
        Default ``spec.work_pool``.
    project_dir : path-like
    create_pool : bool, default True
        Create the pool (type ``process``) when the server has none of that name.

    Returns
    -------
    str
        The deployment's id.

    Raises
    ------
    InvalidInputError
        No server (``PREFECT_API_URL`` unset), or the pool is missing and ``create_pool`` is False.
    """
    require_server("registering a deployment")
    from prefect import flow as prefect_flow

    pool = work_pool or spec.work_pool
    ensure_work_pool(pool, create=create_pool)
    loaded = prefect_flow.from_source(source=str(Path(project_dir).resolve()), entrypoint=spec.entrypoint)
    schedules = [_schedule(spec.cron, spec.timezone)] if spec.cron else None
    with contextlib.redirect_stdout(io.StringIO()):  # Prefect prints a table of deployments; callers say what counts
        deployment_id = loaded.deploy(name=spec.name, work_pool_name=pool, build=False, push=False,
                                      schedules=schedules, parameters=deployment_parameters(spec.params),
                                      description=spec.description or None, tags=list(spec.tags),
                                      concurrency_limit=concurrency_limit(), print_next_steps=False,
                                      ignore_warnings=True)
    return str(deployment_id)


def ensure_work_pool(pool: str, *, create: bool = True) -> None:
    """Make sure the server has work pool ``pool`` (created as a ``process`` pool when ``create``)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
            return
        except ObjectNotFound:
            if not create:
                raise InvalidInputError(
                    f"the Prefect server at {api_url()} has no work pool {pool!r}. Fix: create it with `prefect "
                    f"work-pool create {pool} --type process`, or name an existing pool."
                ) from None
        try:
            client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        except ObjectAlreadyExists:  # created meanwhile by a worker starting with --type
            pass


def serve(params: Any, *, cron: str, name: str | None = None) -> None:
    """Serve the cleaning flow on ``cron`` in this process (needs a running Prefect server).

    Raises
    ------
    InvalidInputError
        ``PREFECT_API_URL`` is not set: on Prefect's temporary server the schedule never fires,
        so this refuses at once rather than wait forever.
    """
    require_server()
    from influence_stage.orchestration.flow import clean_dataset

    clean_dataset.serve(name=name or deployment_name(params), cron=cron, parameters=deployment_parameters(params),
                        tags=[TAG, params.name], global_limit=concurrency_limit())

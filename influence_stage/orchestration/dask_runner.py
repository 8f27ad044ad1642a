"""Run the cleaning flow on Dask: chain tasks (and the rest) go to a Dask cluster.

``address=None`` starts a local cluster (``processes=False`` keeps it in this process, which is
what tests use; processes give real parallelism on a multi-core machine); an address such as
``tcp://scheduler:8786`` uses an existing cluster, so chains spread over several machines.
Needs the ``dask`` extra (``prefect-dask``, ``dask[distributed]``).
"""

from __future__ import annotations

from typing import Any

from influence_stage.errors import MissingDependencyError


def dask_task_runner(address: str | None = None, *, n_workers: int = 2, processes: bool = True) -> Any:
    """A ``prefect_dask.DaskTaskRunner`` for a cluster at ``address`` or a new local one."""
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as exc:
        raise MissingDependencyError(
            "running on Dask needs prefect-dask: pip install 'influence_stage[dask]'.") from exc
    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": n_workers, "threads_per_worker": 1,
                                          "processes": processes, "dashboard_address": None})


def clean_on_dask(params: Any, *, address: str | None = None, n_workers: int = 2, processes: bool = True) -> dict:
    """Run ``clean_dataset(params)`` with a Dask task runner; returns the flow's summary."""
    from influence_stage.orchestration.flow import clean_dataset

    runner = dask_task_runner(address, n_workers=n_workers, processes=processes)
    if params.chains_per_task is None:  # one chain per task, so the workers share them
        params = params.model_copy(update={"chains_per_task": 1})
    return clean_dataset.with_options(task_runner=runner)(params)

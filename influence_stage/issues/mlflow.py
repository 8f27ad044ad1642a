"""An optional MLflow log of a run: its parameters, its numbers, and its files as artifacts.

MLflow is an extra (``pip install mlflow``); it is imported only when ``log_run`` is called, and
a clear ``MissingDependencyError`` says how to install it otherwise.
The run goes to MLflow's current tracking URI (``MLFLOW_TRACKING_URI``, or ``tracking_uri=``).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from influence_stage.errors import InvalidInputError, InvalidTypeError, MissingDependencyError


def import_mlflow() -> Any:
    """The ``mlflow`` module, or a MissingDependencyError naming the pip command."""
    try:
        return importlib.import_module("mlflow")
    except ImportError as exc:
        raise MissingDependencyError(
            "logging a run to MLflow needs the mlflow package, which is not installed "
            f"({exc}). Fix: pip install mlflow (or pip install 'influence-stage[mlflow]')."
        ) from exc


def flat_metrics(summary: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numbers of a nested summary as ``{"a.b.c": value}`` (bools as 0/1; lists, strings and
    None left out), the keys MLflow takes as metric names."""
    out: dict[str, float] = {}
    for key, value in summary.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_metrics(value, f"{name}."))
        elif isinstance(value, bool):
            out[name] = float(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value)):
            out[name] = float(value)
        elif hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
            v = value.item()
            if isinstance(v, (int, float)) and math.isfinite(float(v)):
                out[name] = float(v)
    return out


def log_run(params: Mapping[str, Any], metrics: Mapping[str, Any], artifacts: Sequence[Any] = (), *,
            run_name: str | None = None, experiment: str | None = None, tracking_uri: str | None = None,
            tags: Mapping[str, str] | None = None) -> str:
    """Log one run to MLflow; return its run id.

    Parameters
    ----------
    params : mapping
        The run's configuration (e.g. ``CleanConfig.model_dump()``); nested values are logged as strings.
    metrics : mapping
        Numbers, nested allowed (e.g. ``find_data_issues(...).summary``); flattened by ``flat_metrics``.
    artifacts : sequence of paths
        Files or folders (the issue file, the report) logged as artifacts; each must exist.
    run_name, experiment, tracking_uri, tags
        Where and under what name the run is logged.

    Raises
    ------
    MissingDependencyError
        mlflow is not installed.
    InvalidInputError
        An artifact path that does not exist.
    """
    if not isinstance(params, Mapping) or not isinstance(metrics, Mapping):
        raise InvalidTypeError(f"params and metrics must be mappings; found {type(params).__name__} and "
                               f"{type(metrics).__name__}.")
    paths = [Path(a) for a in artifacts]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise InvalidInputError(f"artifact path(s) {missing} do not exist; write the files first (e.g. "
                                "issues.export.write_issue_file) and pass their paths.")
    mlflow = import_mlflow()
    if tracking_uri is not None:
        mlflow.set_tracking_uri(tracking_uri)
    if experiment is not None:
        mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=run_name, tags=dict(tags or {})) as run:
        mlflow.log_params({str(k): (v if isinstance(v, (str, int, float, bool)) or v is None else str(v))
                           for k, v in params.items()})
        numbers = flat_metrics(metrics)
        if numbers:
            mlflow.log_metrics(numbers)
        for path in paths:
            if path.is_dir():
                mlflow.log_artifacts(str(path), artifact_path=path.name)
            else:
                mlflow.log_artifact(str(path))
        return run.info.run_id


__all__ = ["flat_metrics", "import_mlflow", "log_run"]

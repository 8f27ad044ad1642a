"""Shared fixtures: small deterministic datasets and a trained MLP learner."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
# Prefect's temporary server keeps its SQLite database under PREFECT_HOME: each test process gets its own,
# so that pytest-xdist workers never share (and lock) one database.
if "PYTEST_XDIST_WORKER" in os.environ or "PREFECT_HOME" not in os.environ:
    _home = tempfile.mkdtemp(prefix="prefect-home-")
    os.environ["PREFECT_HOME"] = _home
    atexit.register(shutil.rmtree, _home, ignore_errors=True)

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from influence_stage.config import FitConfig
from influence_stage.engine.learner import TensorData, TorchLearner
from influence_stage.engine.models import mlp
from influence_stage.data.noise import flip_labels

torch.set_num_threads(1)

#: Modules that run longest (live Prefect server, flows, console-script subprocesses, notebooks): on
#: pytest-xdist workers they are collected first, so that with ``--dist loadfile --no-loadscope-reorder``
#: they are handed out first and no worker starts one of them when the others are done.
LONGEST_FIRST = (
    "tests/integration/test_server.py",
    "tests/integration/test_flows.py",
    "tests/integration/test_cli_signals.py",
    "tests/integration/test_examples.py",
    "tests/test_readme.py",
    "tests/integration/test_dask.py",
    "tests/integration/test_curation.py",
    "tests/integration/test_orphans.py",
    "tests/integration/test_curation_budget.py",
    "tests/integration/test_null_cells_flow.py",
    "tests/test_downstream.py",
    "tests/integration/test_cli_seed.py",
)


def pytest_collection_modifyitems(config, items):
    """On a pytest-xdist worker, the longest modules come first (a stable sort: the order within a module,
    which the live-server tests rely on, is kept). A plain ``pytest`` run keeps the collection order.

    ``make test`` runs ``-n 3 --dist loadfile``: each module goes to one worker as a whole, so module-scoped
    fixtures (a fitted cleaner, a live Prefect server) are built once. (``--dist loadgroup`` does not group
    with pytest 9, whose items no longer take the ``@group`` suffix that xdist 3.8 appends to node ids.)
    """
    if hasattr(config, "workerinput"):
        rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
        items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


@pytest.fixture(scope="session")
def prefect_server():
    """Prefect's temporary API server of this test process (its SQLite database under the process's own
    PREFECT_HOME), started once: every module that runs flows shares it instead of starting a
    ``prefect_test_harness`` of its own (10-20 s a start on a loaded 2-core machine)."""
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # Prefect's own per-process instance: the one flows use without an API URL
    server.start(timeout=120)
    return server


@pytest.fixture(scope="module")
def prefect_api(prefect_server):
    """``PREFECT_API_URL`` names the process's one server while a module's tests run, as
    ``prefect_test_harness`` does with a server of its own: flows, tasks and Dask workers report to it.
    A module asks for it with ``pytestmark = pytest.mark.usefixtures("prefect_api")``."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}):
        yield prefect_server.api_url


@pytest.fixture(scope="session")
def migrated_prefect_home(tmp_path_factory):
    """A ``PREFECT_HOME`` whose SQLite database Prefect has created and migrated, once per test process.

    A console script started with an empty ``PREFECT_HOME`` runs Prefect's migrations before its temporary
    server answers (about 25 s on a loaded 2-core machine). Tests about something else (signals, exits,
    one-line errors) start from a copy of it (``prefect_home``); ``test_orphans``' killed CLI starts from an
    empty home, so the first run's path stays covered."""
    import subprocess
    import sys

    home = tmp_path_factory.mktemp("prefect-home-migrated")
    env = {**os.environ, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    subprocess.run([sys.executable, "-m", "prefect", "server", "database", "reset", "-y"], env=env, check=True,
                   capture_output=True, timeout=300)
    assert (home / "prefect.db").is_file()
    return home


@pytest.fixture
def prefect_home(tmp_path, migrated_prefect_home):
    """This test's own ``PREFECT_HOME`` (``tmp_path / "prefect"``): a copy of ``migrated_prefect_home``."""
    return Path(shutil.copytree(migrated_prefect_home, tmp_path / "prefect"))


@pytest.fixture(scope="session")
def digits_noisy():
    """Digits pixels standardised, 10% uniform label noise (seed 0): ``(X, y_noisy, flipped, y_true)``."""
    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32)
    X = (X - X.mean(0)) / (X.std(0) + 1e-6)
    y_noisy, flipped = flip_labels(y, 0.1, random_state=0)
    return X, y_noisy, flipped, y


@pytest.fixture()
def small_learner():
    """An MLP learner trained briefly on 300 digits rows, and its data."""
    X, y = load_digits(return_X_y=True)
    X = ((X - X.mean(0)) / (X.std(0) + 1e-6)).astype(np.float32)[:300]
    data = TensorData.from_arrays(X, y[:300])
    learner = TorchLearner(mlp(64, 10, hidden=(32,), seed=0), batch_size=32)
    learner.fit(data, FitConfig(epochs=5, lr=0.05, batch_size=32))
    return learner, data

"""The CLI answers at once: ``--help``, ``--version`` and every ``<command> --help`` import neither
torch, Prefect, Great Expectations nor datasets; a mistyped label column is refused before any of them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "scipy.stats", "prefect", "great_expectations", "datasets")
COMMANDS = ("clean", "serve", "server", "report", "versions", "curate", "cache")
ARGVS = [["--help"], ["--version"], *([c, "--help"] for c in COMMANDS)]

_PROBE = """
import contextlib, io, json, sys
import influence_stage
root = [m for m in %(heavy)r if m in sys.modules]
from influence_stage.cli.main import main
out = {"root": root, "runs": []}
for argv in json.loads(sys.argv[1]):
    code = None
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    out["runs"].append({"argv": argv, "code": code, "err": err.getvalue(),
                        "heavy": [m for m in %(heavy)r if m in sys.modules and m not in root]})
print(json.dumps(out))
""" % {"heavy": HEAVY}


def _probe(argvs: list[list[str]]) -> dict:
    """Run ``main(argv)`` for each of ``argvs`` in one fresh interpreter, in order; what each imported."""
    done = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(argvs)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_help_and_version_import_no_heavy_library_and_a_bad_label_column_none_either(tmp_path):
    import pandas as pd

    path = tmp_path / "d.parquet"
    pd.DataFrame({"x": [1.0, 2.0], "label": [0, 1]}).to_parquet(path)
    bad_label = ["clean", "--source", str(path), "--name", "d", "--label-column", "lable"]
    result = _probe([*ARGVS, bad_label])
    # run in order in one process: the first command that imports one of them is the one named here
    assert [(r["argv"], r["heavy"]) for r in result["runs"] if r["heavy"]] == []
    assert [r["code"] for r in result["runs"]] == [0] * len(ARGVS) + [2]
    assert "label column 'lable' not found" in result["runs"][-1]["err"]
    assert result["root"] == []  # `import influence_stage`: no torch, scipy.stats, Prefect, GX, datasets


def test_the_package_root_does_not_import_torch():
    result = _probe([])
    assert result["root"] == []

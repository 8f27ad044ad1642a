"""Every dotted ``influence_stage.…`` path named in the docs, the README and the package's own text resolves.

Docs, docstrings and error messages tell users where things live; a module that moved must not
leave a path behind that no longer imports.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATH = re.compile(r"\binfluence_stage(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
NOT_PATHS = {"influence_stage.run.failed": "the failure notice's event name (orchestration.notify), not a module path"}


def named_paths() -> dict[str, str]:
    """``{dotted path: first file naming it}`` over README.md, docs/*.md and influence_stage/**/*.py."""
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
             *sorted((ROOT / "influence_stage").rglob("*.py"))]
    found: dict[str, str] = {}
    for f in files:
        for m in PATH.finditer(f.read_text(encoding="utf-8")):
            if m.group(0) not in NOT_PATHS:
                found.setdefault(m.group(0), str(f.relative_to(ROOT)))
    return found


def resolves(path: str) -> bool:
    """The longest importable module prefix of ``path``, then attributes for the rest."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for i, name in enumerate(parts[cut:]):
            if not hasattr(obj, name):  # a field of a dataclass or pydantic model, last in the path
                fields = {**getattr(obj, "__dataclass_fields__", {}), **getattr(obj, "model_fields", {})}
                return name in fields and i == len(parts[cut:]) - 1
            obj = getattr(obj, name)
        return True
    return False


def test_the_scan_finds_paths_and_a_stale_one_fails():
    paths = named_paths()
    assert len(paths) > 50 and "influence_stage.engine.influence" in paths
    assert not resolves("influence_stage.sklearn.InfluenceCleaner")  # a module that moved
    assert not resolves("influence_stage.engine.influence.no_such_function")
    assert resolves("influence_stage.engine.influence.self_influence")


@pytest.mark.parametrize("path,where", sorted(named_paths().items()))
def test_every_named_path_imports(path, where):
    assert resolves(path), f"{where} names {path}, which does not import"

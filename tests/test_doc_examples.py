"""The Examples sections of the public docstrings run, and print what they show (doctest).

mkdocstrings renders an Examples section's ``>>>`` lines as code, so the same text is the docs'
example and this test's input.
"""

from __future__ import annotations

import doctest
import importlib
import os

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import pytest  # noqa: E402

# (module, name, fewest examples: the ``>>>`` lines doctest runs)
DOCUMENTED = [
    ("influence_stage.engine.gex", "gex_self_influence", 8),
    ("influence_stage.engine.gex", "gex", 8),
    ("influence_stage.engine.influence", "self_influence", 4),
    ("influence_stage.engine.influence", "cross_influence", 3),
    ("influence_stage.config.clean", "CleanConfig", 4),
    ("influence_stage.config.fit", "GEXConfig", 4),
    ("influence_stage.config.fit", "FitConfig", 3),
    ("influence_stage.registry", "Registry", 6),
    ("influence_stage.publish.versions", "publish", 7),
    ("influence_stage.publish.read", "load_published", 8),
    ("influence_stage.pipeline.local", "LocalExecutor", 8),
    ("influence_stage.pipeline.step", "Plan", 4),
    ("influence_stage.api.cleaner", "InfluenceCleaner", 10),
    ("influence_stage.api.sampler", "InfluenceSampler", 7),
]


@pytest.mark.parametrize(("module", "name", "fewest"), DOCUMENTED, ids=[n for _, n, _ in DOCUMENTED])
def test_docstring_examples_run(module, name, fewest, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing an example writes lands in the checkout
    obj = getattr(importlib.import_module(module), name)
    doc = obj.__doc__ or ""
    assert "\n    Examples\n    --------\n" in doc or "\nExamples\n--------\n" in doc, f"{module}.{name}: no Examples"
    tests = [t for t in doctest.DocTestFinder(recurse=False).find(obj, name, globs={}) if t.examples]
    assert len(tests) == 1
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    failures = []
    runner.run(tests[0], out=failures.append)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, "".join(failures)
    assert result.attempted >= fewest

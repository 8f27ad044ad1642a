"""docs/extending.md: every Python block of the page runs as it is, so the page and the code cannot drift."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

from influence_stage.data.featurize import FEATURIZER_REGISTRY
from influence_stage.data.sources import DATA_SOURCE_REGISTRY
from influence_stage.decisions.issues import ISSUE_REGISTRY
from influence_stage.decisions.policies import POLICY_REGISTRY
from influence_stage.decisions.thresholds import THRESHOLD_REGISTRY
from influence_stage.engine.scores import SCORE_REGISTRY
from influence_stage.engine.sources import MODEL_SOURCE_REGISTRY

PAGE = Path(__file__).parents[1] / "docs" / "extending.md"
REGISTRIES = (SCORE_REGISTRY, THRESHOLD_REGISTRY, POLICY_REGISTRY, ISSUE_REGISTRY, MODEL_SOURCE_REGISTRY,
              DATA_SOURCE_REGISTRY, FEATURIZER_REGISTRY)


def _sections() -> list[tuple[str, str]]:
    """``(heading, code)`` for every ```python block, under the ``##`` heading it belongs to."""
    text = PAGE.read_text(encoding="utf-8")
    out, heading = [], ""
    for part in re.split(r"(?m)^(## .*)$", text):
        if part.startswith("## "):
            heading = part[3:].strip()
            continue
        out += [(heading, code) for code in re.findall(r"```python\n(.*?)```", part, flags=re.S)]
    return out


SECTIONS = _sections()


def test_the_page_has_one_example_per_plug_point():
    assert [h for h, _ in SECTIONS] == ["A score", "A threshold", "A decision policy", "An issue type",
                                        "A model source", "A learner", "A data source", "A featurizer"]


@pytest.fixture
def clean_registries():
    """Entries the examples register are removed afterwards, so other tests see the built-in names only."""
    before = [r.names() for r in REGISTRIES]
    yield
    for registry, names in zip(REGISTRIES, before):
        for name in set(registry.names()) - set(names):
            registry.unregister(name)


def _run(heading: str, code: str) -> None:
    """Run one block as the body of a fresh module (dataclasses look their module up in sys.modules)."""
    module = types.ModuleType("extending_example")
    sys.modules[module.__name__] = module
    try:
        exec(compile(code, f"{PAGE.name}: {heading}", "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]


@pytest.mark.parametrize("heading, code", SECTIONS, ids=[h for h, _ in SECTIONS])
def test_example_runs(heading, code, clean_registries):
    _run(heading, code)


def test_examples_register_the_names_they_document(clean_registries):
    for heading, code in SECTIONS:
        _run(heading, code)
    assert "loss-spread" in SCORE_REGISTRY and "top-share" in THRESHOLD_REGISTRY
    assert "halve" in POLICY_REGISTRY and "unsure" in ISSUE_REGISTRY and "wide-mlp" in MODEL_SOURCE_REGISTRY
    assert "records" in DATA_SOURCE_REGISTRY and "hashed-words" in FEATURIZER_REGISTRY


def test_the_learner_section_documents_every_capability():
    from influence_stage.engine.learner import CAPABILITIES

    learner_text = PAGE.read_text(encoding="utf-8").split("## A learner")[1].split("## ")[0]
    for protocol in CAPABILITIES:
        assert f"| `{protocol.__name__}` |" in learner_text


def test_every_registry_is_in_the_table():
    text = PAGE.read_text(encoding="utf-8")
    for registry, module in ((DATA_SOURCE_REGISTRY, "influence_stage.data.sources"),
                             (FEATURIZER_REGISTRY, "influence_stage.data.featurize")):
        assert f"`{module}.{registry.kind.upper().replace(' ', '_')}_REGISTRY`" in text

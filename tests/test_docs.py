"""The documentation site builds strictly from the docstrings: a broken reference fails the build."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings")


def _build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(config),
                           "-d", str(site)], capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_the_docs_build_strictly(tmp_path):
    done = _build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 0, done.stderr[-2000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    for name in ("InfluenceCleaner", "InfluenceSampler", "gex_self_influence", "GEXConfig", "CleanConfig"):
        assert name in api
    import re

    role = re.compile(r":(?:func|class|meth|attr|mod|data|exc|obj|ref):`")
    pages = {p: p.read_text(encoding="utf-8") for p in (tmp_path / "site").rglob("*.html")}
    assert [str(p) for p, html in pages.items() if role.search(html)] == []  # docstrings are Markdown here
    # ``θ*`` is written as code in docstrings: a bare ``*`` pairs with the next one into emphasis.
    emphasis = [(str(p), html[max(i - 60, 0):i + 20]) for p, html in pages.items()
                for i in (m.start() for m in re.finditer("θ<em>", html))]
    assert emphasis == []
    # the Examples sections render as code, not as quotes
    assert api.count("&gt;&gt;&gt; ") >= 40 and "<blockquote>\n<blockquote>" not in api


def test_a_broken_reference_fails_the_build(tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs)
    (docs / "api.md").write_text((docs / "api.md").read_text() + "\n::: influence_stage.no_such_module\n")
    config = tmp_path / "mkdocs.yml"
    config.write_text((ROOT / "mkdocs.yml").read_text().replace("docs_dir: docs", f"docs_dir: {docs}"))
    done = _build(config, tmp_path / "site")
    assert done.returncode != 0
    assert "no_such_module" in done.stderr

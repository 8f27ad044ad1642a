"""The package without its optional dependencies, in one fresh interpreter: the core imports with
transformers, safetensors and tokenizers blocked, and ``HFLearner`` then says what to install;
``InfluenceCleaner`` imports with imbalanced-learn blocked, and ``InfluenceSampler`` says what to install."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_core_imports_without_the_optional_packages_and_their_users_say_what_to_install():
    code = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("transformers", "safetensors", "tokenizers"):
                    raise ImportError("blocked " + name)
        sys.meta_path.insert(0, Block())
        sys.modules["imblearn"] = None
        sys.modules["imblearn.base"] = None
        import influence_stage, influence_stage.engine.hf, influence_stage.engine.checkpoint, influence_stage.engine.gex
        from influence_stage.engine.hf import TextData, HFLearner, MissingDependencyError
        TextData(["a"], [0])
        try:
            HFLearner.from_pretrained(".")
        except MissingDependencyError as e:
            print("HF-OK", "pip install" in str(e))
        from influence_stage.api import InfluenceCleaner
        try:
            from influence_stage.api import InfluenceSampler
        except ImportError as exc:
            print("IMPORT-ERROR:", exc)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "HF-OK True", done.stdout
    assert lines[1].startswith("IMPORT-ERROR: InfluenceSampler needs the optional package imbalanced-learn"), lines
    assert "pip install" in lines[1]

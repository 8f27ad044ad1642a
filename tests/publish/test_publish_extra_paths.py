"""``publish(extra_files=...)`` with file paths: copied as files, the same published bytes as when given as bytes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import datasets
import pandas as pd
import pytest

from influence_stage.errors import InvalidInputError, InvalidTypeError
from influence_stage.publish.versions import publish


def _inputs() -> tuple[datasets.Dataset, pd.DataFrame]:
    cleaned = datasets.Dataset.from_dict({"x": [0.0, 1.0, 3.0], "label": ["a", "b", "a"], "row_id": [0, 1, 3]})
    manifest = pd.DataFrame({
        "row_id": [0, 1, 2, 3], "score": [0.1, 0.2, 0.9, 0.3], "gex_influence": [0.1, 0.2, 0.9, 0.3],
        "label_quality": [0.9, 0.8, 0.1, 0.7], "is_issue": [False, False, True, False],
        "action": ["keep", "keep", "drop", "keep"], "given_label": ["a", "b", "b", "a"],
        "suggested_label": ["a", "b", "a", "a"], "weight": [1.0] * 4})
    return cleaned, manifest


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_extra_files_from_paths_publish_the_same_files_as_bytes(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    contents = {"shards/part-0.parquet": bytes(range(256)) * 300, "shards/part-1.parquet": b"",
                "notes/readme.txt": "héllo\n".encode()}
    paths = {}
    for i, (rel, data) in enumerate(contents.items()):
        path = src / "sub" / f"file{i}"
        path.write_bytes(data)
        paths[rel] = path
    cleaned, manifest = _inputs()
    by_bytes = publish(cleaned, manifest, root=tmp_path / "a", name="d", extra_files=contents, fingerprint="f")
    by_path = publish(cleaned, manifest, root=tmp_path / "b", name="d", extra_files=paths, fingerprint="f")
    # meta.json and the card's provenance line hold the publish time; every other file is byte for byte the same
    timed = ("meta.json", "README.md")
    tree_bytes, tree_path = _tree(by_bytes.path), _tree(by_path.path)
    assert set(tree_bytes) == set(tree_path)
    assert {k: v for k, v in tree_bytes.items() if k not in timed} == \
        {k: v for k, v in tree_path.items() if k not in timed}
    meta_bytes = json.loads((by_bytes.path / "meta.json").read_text())
    meta_path = json.loads((by_path.path / "meta.json").read_text())
    assert {k: v for k, v in meta_bytes["files"].items() if k not in timed} == \
        {k: v for k, v in meta_path["files"].items() if k not in timed}
    assert {k: v for k, v in meta_bytes.items() if k not in ("files", "created_utc")} == \
        {k: v for k, v in meta_path.items() if k not in ("files", "created_utc")}
    card_bytes, card_path = ((pub.path / "README.md").read_text().splitlines() for pub in (by_bytes, by_path))
    assert [a == b for a, b in zip(card_bytes, card_path, strict=True)].count(False) <= 1
    assert all(a.startswith("- published: ") for a, b in zip(card_bytes, card_path, strict=True) if a != b)
    for rel, data in contents.items():
        assert (by_path.path / rel).read_bytes() == data
    assert all(p.read_bytes() == contents[rel] for rel, p in paths.items())  # the sources are left as they were


def test_extra_files_path_that_is_not_a_file_is_refused_before_anything_is_written(tmp_path):
    cleaned, manifest = _inputs()
    with pytest.raises(InvalidInputError, match="not a file"):
        publish(cleaned, manifest, root=tmp_path / "pub", name="d", extra_files={"x.bin": tmp_path / "missing"})
    with pytest.raises(InvalidInputError, match="not a file"):
        publish(cleaned, manifest, root=tmp_path / "pub", name="d", extra_files={"x.bin": tmp_path})
    assert not (tmp_path / "pub").exists()


def test_extra_files_value_as_str_is_refused(tmp_path):
    cleaned, manifest = _inputs()
    with pytest.raises(InvalidTypeError, match="bytes or a file path"):
        publish(cleaned, manifest, root=tmp_path / "pub", name="d", extra_files={"x.txt": "text"})

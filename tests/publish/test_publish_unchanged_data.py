"""Same data under another file name, and one appended row, at the publishing layer.

The flow fingerprints the loaded input (``data.fingerprint.dataset_fingerprint`` of what
``data.sources.load_source`` returns, which ``stage.steps.prepare`` keeps as ``Prepared.dataset``);
the run cache key and ``publish(skip_unchanged=True)`` both start from it. These tests answer,
with library calls only (no Prefect server), whether a renamed file is the same data and whether
one appended row is new data.
"""

from __future__ import annotations

import os
import shutil

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import hashlib  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from influence_stage.data.fingerprint import dataset_fingerprint  # noqa: E402
from influence_stage.data.sources import load_source  # noqa: E402
from influence_stage.errors import InvalidInputError  # noqa: E402
from influence_stage.publish.versions import (  # noqa: E402
    check_name,
    list_versions,
    load_published,
    publish,
    unchanged_version,
)

N = 30
CONFIG = "c" * 64  # the configuration fingerprint: the same configuration on every run here


def _frame(n: int = N) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x1": rng.normal(size=n).round(6), "x2": rng.normal(size=n).round(6),
                         "label": np.where(np.arange(n) % 3 == 0, "cat", "dog")})


def _tree(root) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _manifest(ds) -> pd.DataFrame:
    """A manifest keeping every row (what the decisions would be is not the point here)."""
    n = ds.num_rows
    return pd.DataFrame({"row_id": np.asarray(ds["row_id"], dtype=np.int64), "action": ["keep"] * n,
                         "is_issue": np.zeros(n, dtype=bool)})


def _publish_source(path, root, **kwargs):
    ds = load_source(str(path), label_column="label")
    fingerprint = dataset_fingerprint(ds)
    pub = publish(ds, _manifest(ds), root=root, name="d", fingerprint=fingerprint, config_fingerprint=CONFIG,
                  **kwargs)
    return fingerprint, pub


@pytest.fixture()
def files(tmp_path):
    """``data.csv``; the same bytes as ``elsewhere/renamed.csv``; and ``appended.csv`` with one row more."""
    original = tmp_path / "data.csv"
    _frame().to_csv(original, index=False)
    renamed = tmp_path / "elsewhere" / "renamed.csv"
    renamed.parent.mkdir()
    shutil.copyfile(original, renamed)
    appended = tmp_path / "appended.csv"
    with appended.open("w") as f:
        f.write(original.read_text() + "0.5,-0.25,cat\n")
    return original, renamed, appended


def test_a_renamed_file_with_the_same_content_is_the_same_data(files):
    original, renamed, _ = files
    a, b = load_source(str(original), label_column="label"), load_source(str(renamed), label_column="label")
    assert a.num_rows == b.num_rows == N
    assert dataset_fingerprint(a) == dataset_fingerprint(b)
    pd.testing.assert_frame_equal(a.to_pandas(), b.to_pandas())


def test_a_renamed_file_publishes_nothing_with_skip_unchanged(files, tmp_path):
    original, renamed, _ = files
    root = tmp_path / "pub"
    first_fp, first = _publish_source(original, root, skip_unchanged=True)
    assert first.published and first.version == "v0001"
    before = _tree(root)
    renamed_data = load_source(str(renamed), label_column="label")
    same = unchanged_version(root, "d", fingerprint=dataset_fingerprint(renamed_data), config_fingerprint=CONFIG)
    assert same == "v0001"
    renamed_fp, again = _publish_source(renamed, root, skip_unchanged=True)
    assert renamed_fp == first_fp
    assert again.unchanged and not again.published and again.version == "v0001"
    assert _tree(root) == before and list_versions(root, "d") == ["v0001"]


def test_one_appended_row_is_new_data_and_a_new_version(files, tmp_path):
    original, _, appended = files
    root = tmp_path / "pub"
    first_fp, _ = _publish_source(original, root, skip_unchanged=True)
    appended_data = load_source(str(appended), label_column="label")
    same = unchanged_version(root, "d", fingerprint=dataset_fingerprint(appended_data), config_fingerprint=CONFIG)
    assert same is None
    appended_fp, pub = _publish_source(appended, root, skip_unchanged=True)
    assert appended_fp != first_fp
    assert pub.published and pub.version == "v0002" and list_versions(root, "d") == ["v0001", "v0002"]
    ds, manifest, meta = load_published(pub.path, verify=True)
    assert (meta["rows_in"], meta["rows_out"], len(manifest), ds.num_rows) == (N + 1, N + 1, N + 1, N + 1)
    assert meta["fingerprint"] == appended_fp
    assert ds[N] == {"x1": 0.5, "x2": -0.25, "label": "cat", "row_id": N}


def test_one_changed_cell_is_new_data(files):
    original, _, _ = files
    frame = _frame()
    frame.loc[7, "x1"] += 1e-6
    changed = original.with_name("changed.csv")
    frame.to_csv(changed, index=False)
    assert dataset_fingerprint(load_source(str(changed), label_column="label")) != dataset_fingerprint(
        load_source(str(original), label_column="label"))


def test_the_flow_output_fingerprint_does_not_depend_on_the_source_path(files):
    flow = pytest.importorskip("influence_stage.orchestration.flow")
    original, renamed, _ = files
    first = flow.FlowConfig(source=str(original), name="d")
    other = flow.FlowConfig(source=str(renamed), name="d")
    assert flow.output_fingerprint(first) == flow.output_fingerprint(other)


@pytest.mark.parametrize("name", ["abc\n", "abc\r", "ab\tc", "abc\x00", "abc/def", "-abc", ".abc", "LATEST"])
def test_names_with_control_characters_or_separators_are_refused(tmp_path, name):
    with pytest.raises(InvalidInputError, match="is not a valid folder name"):
        check_name(name)
    with pytest.raises(InvalidInputError, match="is not a valid folder name"):
        unchanged_version(tmp_path, name, fingerprint="f", config_fingerprint=CONFIG)
    assert list(tmp_path.iterdir()) == []

"""Tests of influence_stage.publish: versioned atomic publishing, LATEST, reading back, retention, the hub guard."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import influence_stage  # noqa: E402
from influence_stage.publish import store as store_module  # noqa: E402
from influence_stage.publish import versions as publish_module  # noqa: E402
from influence_stage.data.labels import encode_labels
from influence_stage.decisions.apply import apply_decisions  # noqa: E402
from influence_stage.errors import InvalidInputError, ValidationFailedError  # noqa: E402
from influence_stage.publish.versions import (  # noqa: E402
    HubPushError,
    Published,
    config_digest,
    latest_version,
    list_versions,
    load_published,
    prune_versions,
    publish,
    push_to_hub,
    unchanged_version,
)
from influence_stage.quality import validate_output  # noqa: E402

CLASSES = ["a", "b", "c"]
N = 12


@pytest.fixture(scope="module")
def stage():
    """An input of 12 rows, its manifest (1 drop, 1 relabel, 1 reweight), the output and its report."""
    ds = datasets.Dataset.from_dict(
        {"x": np.arange(N, dtype=np.float64), "label": [i % 3 for i in range(N)],
         "row_id": np.arange(N, dtype=np.int64)},
        features=datasets.Features({"x": datasets.Value("float64"), "label": datasets.ClassLabel(names=CLASSES),
                                    "row_id": datasets.Value("int64")}),
    )
    enc = encode_labels(ds, "label")
    action = np.array(["keep"] * N, dtype=object)
    action[[2, 5, 9]] = ["drop", "relabel", "reweight"]
    suggested = enc.codes.copy()
    suggested[5] = (suggested[5] + 1) % 3
    manifest = pd.DataFrame({
        "row_id": np.arange(N, dtype=np.int64), "score": np.linspace(0, 1, N),
        "gex_influence": np.linspace(0, 2, N), "label_quality": np.linspace(1, 0, N), "is_issue": action != "keep",
        "action": action, "given_label": enc.codes, "suggested_label": suggested,
        "weight": np.where(action == "reweight", 0.5, 1.0),
    })
    out = apply_decisions(ds, manifest, label_column="label", encoding=enc)
    # the published manifest holds label values in the class set's terms (here the ClassLabel names)
    manifest = manifest.assign(given_label=np.asarray(CLASSES, dtype=object)[enc.codes],
                               suggested_label=np.asarray(CLASSES, dtype=object)[suggested])
    report = validate_output(out, ds, manifest, label_column="label", class_names=CLASSES, max_drop_fraction=0.5)
    assert report.success, report.failures()
    return ds, manifest, out, report


def _tree(root: Path) -> dict[str, str]:
    """Every file under root (hidden ones too) with its sha256."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _dirs(base: Path) -> list[str]:
    return sorted(p.name for p in base.iterdir() if p.is_dir())


def test_publish_writes_every_file(tmp_path, stage):
    ds, manifest, out, report = stage
    pub = publish(out, manifest, root=tmp_path, name="digits", config={"threshold": "otsu", "seed": np.int64(3)},
                  validation_reports=[report], report_html="<html><body>report</body></html>",
                  extra_files={"extra/notes.txt": b"hello"}, fingerprint="abc123")
    assert isinstance(pub, Published)
    assert pub.path == tmp_path / "digits" / "v0001" and pub.version == "v0001" and pub.name == "digits"
    files = set(pub.files)
    expected = {"data.parquet", "manifest.parquet", "config.json", "meta.json", "report.html", "extra/notes.txt",
                "validation/output.json", "validation/output.html", "README.md"}
    assert expected <= files
    assert {f"validation/output.{b}.html" for b in report.ge_results} <= files
    assert any(f.startswith("dataset/") and f.endswith(".arrow") for f in files)
    assert "dataset/dataset_info.json" in files and "dataset/state.json" in files
    assert files == set(_tree(pub.path))

    meta = json.loads((pub.path / "meta.json").read_text())
    assert meta["version"] == "v0001" and meta["name"] == "digits"
    assert meta["rows_in"] == N and meta["rows_out"] == N - 1
    assert meta["actions"] == {"keep": 9, "drop": 1, "relabel": 1, "reweight": 1}
    assert meta["fingerprint"] == "abc123"
    assert meta["package_version"] == influence_stage.__version__
    assert meta["validation"] == {"output": {"success": True, "suite_version": report.suite_version}}
    created = datetime.fromisoformat(meta["created_utc"].replace("Z", "+00:00"))
    assert created.tzinfo is not None and abs((datetime.now(UTC) - created).total_seconds()) < 120
    # checksums of every other file
    assert set(meta["files"]) == files - {"meta.json"}
    for rel, info in meta["files"].items():
        data = (pub.path / rel).read_bytes()
        assert info == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    assert json.loads((pub.path / "config.json").read_text()) == {"threshold": "otsu", "seed": 3}
    assert (pub.path / "report.html").read_text() == "<html><body>report</body></html>"
    assert (pub.path / "extra" / "notes.txt").read_bytes() == b"hello"
    assert json.loads((pub.path / "validation" / "output.json").read_text())["success"] is True
    assert pd.read_parquet(pub.path / "data.parquet")["row_id"].tolist() == list(out["row_id"])
    assert (tmp_path / "digits" / "LATEST").read_text().strip() == "v0001"
    assert not [p for p in (tmp_path / "digits").iterdir() if p.name.startswith(".tmp-")]


def test_report_html_path_is_copied_and_config_defaults_to_empty(tmp_path, stage):
    _, manifest, out, _ = stage
    src = tmp_path / "my_report.html"
    src.write_text("<html>copied</html>")
    pub = publish(out, manifest, root=tmp_path / "pub", name="d", report_html=src)
    assert (pub.path / "report.html").read_text() == "<html>copied</html>"
    assert json.loads((pub.path / "config.json").read_text()) == {}
    assert not (pub.path / "validation").exists()
    with pytest.raises(InvalidInputError, match="pathlib.Path"):
        publish(out, manifest, root=tmp_path / "pub", name="d", report_html=str(src))


def test_versions_increment_and_latest_points_to_the_newest(tmp_path, stage):
    _, manifest, out, _ = stage
    assert list_versions(tmp_path, "d") == [] and latest_version(tmp_path, "d") is None
    versions = [publish(out, manifest, root=tmp_path, name="d").version for _ in range(3)]
    assert versions == ["v0001", "v0002", "v0003"]
    assert list_versions(tmp_path, "d") == versions
    assert latest_version(tmp_path, "d") == "v0003"
    assert (tmp_path / "d" / "LATEST").read_text() == "v0003\n"
    named = publish(out, manifest, root=tmp_path, name="d", version="2026-11-28")
    assert latest_version(tmp_path, "d") == "2026-11-28"
    # auto numbering continues after the highest vNNNN
    assert publish(out, manifest, root=tmp_path, name="d").version == "v0004"
    assert list_versions(tmp_path, "d") == ["v0001", "v0002", "v0003", "v0004", named.version]
    assert latest_version(tmp_path, "d") == "v0004"


def test_publishing_an_existing_version_errors_and_changes_nothing(tmp_path, stage):
    _, manifest, out, _ = stage
    publish(out, manifest, root=tmp_path, name="d")
    publish(out, manifest, root=tmp_path, name="d")
    before = _tree(tmp_path)
    with pytest.raises(InvalidInputError, match="version 'v0001' of 'd' already exists"):
        publish(out.select([0]), manifest, root=tmp_path, name="d", version="v0001")
    assert _tree(tmp_path) == before
    assert latest_version(tmp_path, "d") == "v0002"


@pytest.mark.parametrize("target", [
    (datasets.Dataset, "to_parquet"),
    (pd.DataFrame, "to_parquet"),
    (store_module, "write_json"),
])
def test_a_failure_halfway_leaves_no_trace(tmp_path, stage, monkeypatch, target):
    _, manifest, out, report = stage
    publish(out, manifest, root=tmp_path, name="d")
    before = _tree(tmp_path)

    def boom(*args, **kwargs):
        raise RuntimeError("disk full (injected)")

    monkeypatch.setattr(*target, boom)
    with pytest.raises(RuntimeError, match="injected"):
        publish(out, manifest, root=tmp_path, name="d", validation_reports=[report])
    assert _dirs(tmp_path / "d") == ["v0001"]  # no v0002, no .tmp-* folder
    assert _tree(tmp_path) == before  # v0001 and LATEST untouched
    assert latest_version(tmp_path, "d") == "v0001"


def test_an_interrupt_is_cleaned_up_too(tmp_path, stage, monkeypatch):
    _, manifest, out, _ = stage

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(datasets.Dataset, "to_parquet", interrupt)
    with pytest.raises(KeyboardInterrupt):
        publish(out, manifest, root=tmp_path, name="d")
    assert _dirs(tmp_path / "d") == []
    assert latest_version(tmp_path, "d") is None


def test_a_failed_validation_report_stops_publishing(tmp_path, stage):
    ds, manifest, out, _ = stage
    bad = validate_output(out, ds, manifest.iloc[1:], label_column="label", class_names=CLASSES,
                          max_drop_fraction=0.5)
    assert not bad.success
    with pytest.raises(ValidationFailedError, match="manifest_covers_input"):
        publish(out, manifest, root=tmp_path, name="d", validation_reports=[bad])
    assert not (tmp_path / "d").exists()


def test_load_published_round_trip(tmp_path, stage):
    _, manifest, out, report = stage
    publish(out, manifest, root=tmp_path, name="d")
    pub = publish(out, manifest, root=tmp_path, name="d", validation_reports=[report], fingerprint="f")
    ds2, manifest2, meta = load_published(pub.path, verify=True)
    assert ds2.features == out.features
    assert ds2.column_names == out.column_names
    pd.testing.assert_frame_equal(ds2.to_pandas(), out.to_pandas())
    pd.testing.assert_frame_equal(manifest2, manifest)
    assert meta == json.loads((pub.path / "meta.json").read_text())
    # <root>/<name> resolves LATEST
    _, _, meta_latest = load_published(tmp_path / "d")
    assert meta_latest["version"] == "v0002"


def test_load_published_verify_detects_a_changed_file(tmp_path, stage):
    _, manifest, out, _ = stage
    pub = publish(out, manifest, root=tmp_path, name="d")
    manifest.iloc[:3].to_parquet(pub.path / "manifest.parquet", index=False)
    load_published(pub.path)  # without verify: reads what is there
    with pytest.raises(InvalidInputError, match="'manifest.parquet' .* differs from meta.json"):
        load_published(pub.path, verify=True)
    with pytest.raises(InvalidInputError, match="not a published version"):
        load_published(tmp_path / "nothing")


def test_latest_pointing_to_a_missing_version_is_an_error(tmp_path, stage):
    _, manifest, out, _ = stage
    publish(out, manifest, root=tmp_path, name="d")
    (tmp_path / "d" / "LATEST").write_text("v0009\n")
    with pytest.raises(InvalidInputError, match="points to 'v0009'"):
        latest_version(tmp_path, "d")


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "../evil"}, "not a valid folder name"),
    ({"name": "d", "version": "LATEST"}, "not a valid folder name"),
    ({"name": "d", "extra_files": {"../x": b""}}, "must be relative"),
    ({"name": "d", "extra_files": {"meta.json": b"{}"}}, "must not be"),
    ({"name": "d", "extra_files": {".": b""}}, "must be relative"),
])
def test_unsafe_names_are_refused_before_writing(tmp_path, stage, kwargs, match):
    _, manifest, out, _ = stage
    with pytest.raises(InvalidInputError, match=match):
        publish(out, manifest, root=tmp_path / "pub", **kwargs)
    assert not (tmp_path / "pub").exists()


@pytest.fixture()
def offline(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_push_to_hub_offline_raises_and_writes_nothing(tmp_path, stage, offline):
    _, manifest, out, _ = stage
    pub = publish(out, manifest, root=tmp_path / "pub", name="d")
    before = _tree(tmp_path)
    with pytest.raises(HubPushError, match="HF_HUB_OFFLINE=1") as info:
        push_to_hub(pub, "someone/some-dataset")
    assert isinstance(info.value, ConnectionError)
    assert _tree(tmp_path) == before


def test_publish_with_a_hub_repo_offline_fails_before_writing(tmp_path, stage, offline):
    _, manifest, out, _ = stage
    with pytest.raises(HubPushError, match="someone/some-dataset"):
        publish(out, manifest, root=tmp_path / "pub", name="d", push_to_hub_repo="someone/some-dataset")
    assert not (tmp_path / "pub").exists()


@pytest.mark.parametrize("where", ["dataset", "data", "manifest", "meta", "fsync", "rename"])
def test_fault_at_each_publish_step_leaves_the_previous_version_and_no_partial_one(tmp_path, stage, monkeypatch,
                                                                                   where):
    """A failure (here a full disk, ENOSPC) at each step before the rename publishes nothing."""
    import errno

    _, manifest, out, report = stage
    publish(out, manifest, root=tmp_path, name="d")
    before = _tree(tmp_path)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device (injected)")

    real_write_json = store_module.write_json
    targets = {
        "dataset": (datasets.Dataset, "save_to_disk", full),
        "data": (datasets.Dataset, "to_parquet", full),
        "manifest": (pd.DataFrame, "to_parquet", full),
        "meta": (store_module, "write_json",
                 lambda path, data: full() if path.name == "meta.json" else real_write_json(path, data)),
        "fsync": (store_module, "fsync_tree", full),
        "rename": (publish_module.os, "rename", full),
    }
    owner, attribute, replacement = targets[where]
    monkeypatch.setattr(owner, attribute, replacement)
    with pytest.raises(OSError, match="No space left on device") as info:
        publish(out, manifest, root=tmp_path, name="d", validation_reports=[report])
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert _dirs(tmp_path / "d") == ["v0001"]  # no v0002, no .tmp-* folder
    assert _tree(tmp_path) == before
    assert list_versions(tmp_path, "d") == ["v0001"] and latest_version(tmp_path, "d") == "v0001"
    load_published(tmp_path / "d" / "v0001", verify=True)


def test_fault_while_moving_latest_keeps_the_previous_latest(tmp_path, stage, monkeypatch):
    import errno

    _, manifest, out, _ = stage
    publish(out, manifest, root=tmp_path, name="d")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device (injected)")

    monkeypatch.setattr(publish_module.os, "replace", full)
    with pytest.raises(OSError, match="No space left"):
        publish(out, manifest, root=tmp_path, name="d")
    monkeypatch.undo()
    # the new version is complete (renamed into place), LATEST still names the previous one
    assert latest_version(tmp_path, "d") == "v0001"
    load_published(tmp_path / "d" / "v0002", verify=True)
    assert not [p for p in (tmp_path / "d").iterdir() if p.name.startswith(".tmp")]


def test_skip_unchanged_publishes_nothing_for_the_same_data_and_configuration(tmp_path, stage):
    _, manifest, out, report = stage
    config = {"clean": {"threshold": "estimate"}, "seed": np.int64(3)}
    first = publish(out, manifest, root=tmp_path, name="d", config=config, fingerprint="data-1",
                    validation_reports=[report], skip_unchanged=True)
    assert first.published and not first.unchanged and first.version == "v0001"
    meta = json.loads((first.path / "meta.json").read_text())
    assert meta["config_fingerprint"] == config_digest(config) == config_digest({"seed": 3, **config})
    before = _tree(tmp_path)
    again = publish(out, manifest, root=tmp_path, name="d", config=dict(reversed(list(config.items()))),
                    fingerprint="data-1", validation_reports=[report], skip_unchanged=True)
    assert again.unchanged and not again.published
    assert again.version == "v0001" and again.path == first.path and again.files == first.files
    assert _tree(tmp_path) == before  # not a byte written
    assert unchanged_version(tmp_path, "d", fingerprint="data-1", config=config) == "v0001"
    # changed data, then a changed configuration: each publishes a new version
    assert publish(out, manifest, root=tmp_path, name="d", config=config, fingerprint="data-2",
                   skip_unchanged=True).version == "v0002"
    assert unchanged_version(tmp_path, "d", fingerprint="data-1", config=config) is None
    changed = {**config, "seed": 4}
    assert publish(out, manifest, root=tmp_path, name="d", config=changed, fingerprint="data-2",
                   skip_unchanged=True).version == "v0003"
    # without skip_unchanged the same inputs publish again (an explicit re-run)
    assert publish(out, manifest, root=tmp_path, name="d", config=changed, fingerprint="data-2").version == "v0004"
    assert latest_version(tmp_path, "d") == "v0004"


def test_skip_unchanged_compares_with_latest_and_a_given_config_fingerprint(tmp_path, stage):
    _, manifest, out, _ = stage
    publish(out, manifest, root=tmp_path, name="d", fingerprint="a", config_fingerprint="cfg")
    publish(out, manifest, root=tmp_path, name="d", fingerprint="b", config_fingerprint="cfg")
    # v0001 holds the same data, but LATEST (v0002) does not: publish
    assert publish(out, manifest, root=tmp_path, name="d", fingerprint="a", config_fingerprint="cfg",
                   skip_unchanged=True).version == "v0003"
    assert publish(out, manifest, root=tmp_path, name="d", fingerprint="a", config_fingerprint="cfg",
                   skip_unchanged=True, config={"ignored": "by the given fingerprint"}).unchanged
    assert unchanged_version(tmp_path, "d", fingerprint="a", config_fingerprint="cfg") == "v0003"
    assert unchanged_version(tmp_path, "d", fingerprint="a", config_fingerprint="other") is None
    # a version published before config_fingerprint was recorded: compared through its config.json
    meta_path = tmp_path / "d" / "v0003" / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["config_fingerprint"]
    meta_path.write_text(json.dumps(meta))
    assert unchanged_version(tmp_path, "d", fingerprint="a", config={}) == "v0003"
    # a damaged LATEST is not "unchanged": the publish goes ahead and repairs it
    (tmp_path / "d" / "LATEST").write_text("v0042\n")
    assert unchanged_version(tmp_path, "d", fingerprint="a", config={}) is None
    assert publish(out, manifest, root=tmp_path, name="d", fingerprint="a", skip_unchanged=True).version == "v0004"
    assert latest_version(tmp_path, "d") == "v0004"


def test_skip_unchanged_still_refuses_a_failed_gate(tmp_path, stage):
    ds, manifest, out, report = stage
    publish(out, manifest, root=tmp_path, name="d", fingerprint="a", validation_reports=[report])
    bad = validate_output(out, ds, manifest.iloc[1:], label_column="label", class_names=CLASSES,
                          max_drop_fraction=0.5)
    with pytest.raises(ValidationFailedError, match="manifest_covers_input"):
        publish(out, manifest, root=tmp_path, name="d", fingerprint="a", validation_reports=[bad],
                skip_unchanged=True)


@pytest.mark.parametrize("kwargs, match", [
    ({"skip_unchanged": True}, "skip_unchanged=True needs the dataset's fingerprint"),
    ({"keep": 0}, "keep must be a whole number of versions >= 1; found 0"),
    ({"keep": 1.5}, "keep must be a whole number of versions >= 1; found 1.5"),
    ({"keep": True}, "keep must be a whole number of versions >= 1; found True"),
])
def test_skip_unchanged_and_keep_arguments_are_checked_before_writing(tmp_path, stage, kwargs, match):
    _, manifest, out, _ = stage
    with pytest.raises(InvalidInputError, match=match):
        publish(out, manifest, root=tmp_path / "pub", name="d", **kwargs)
    assert not (tmp_path / "pub").exists()


def test_unchanged_version_needs_one_config(tmp_path):
    with pytest.raises(InvalidInputError, match="exactly one of config= or config_fingerprint=; found neither"):
        unchanged_version(tmp_path, "d", fingerprint="a")
    with pytest.raises(InvalidInputError, match="found both"):
        unchanged_version(tmp_path, "d", fingerprint="a", config={}, config_fingerprint="x")
    assert unchanged_version(tmp_path, "d", fingerprint="a", config={}) is None  # nothing published yet


def test_keep_retains_the_newest_versions_and_never_the_latest_pointer(tmp_path, stage):
    _, manifest, out, _ = stage
    results = [publish(out, manifest, root=tmp_path, name="d", keep=2) for _ in range(4)]
    assert [r.removed for r in results] == [(), (), ("v0001",), ("v0002",)]
    assert list_versions(tmp_path, "d") == ["v0003", "v0004"] and latest_version(tmp_path, "d") == "v0004"
    assert not [p for p in (tmp_path / "d").iterdir() if p.name.startswith(".tmp")]
    load_published(tmp_path / "d" / "v0004", verify=True)
    # LATEST moved back to an older version: kept even when it is not among the newest
    publish(out, manifest, root=tmp_path, name="d")  # v0005
    (tmp_path / "d" / "LATEST").write_text("v0003\n")
    assert prune_versions(tmp_path, "d", keep=1) == ["v0004"]
    assert list_versions(tmp_path, "d") == ["v0003", "v0005"] and latest_version(tmp_path, "d") == "v0003"
    assert prune_versions(tmp_path, "d", keep=5) == []
    # an unchanged run applies retention too
    publish(out, manifest, root=tmp_path, name="d", fingerprint="f")  # v0006, LATEST
    skipped = publish(out, manifest, root=tmp_path, name="d", fingerprint="f", skip_unchanged=True, keep=1)
    assert skipped.unchanged and skipped.version == "v0006" and skipped.removed == ("v0003", "v0005")
    assert list_versions(tmp_path, "d") == ["v0006"]
    assert prune_versions(tmp_path, "nothing-here", keep=1) == []
    with pytest.raises(InvalidInputError, match="keep must be a whole number"):
        prune_versions(tmp_path, "d", keep=-1)


def test_keep_with_a_damaged_latest_deletes_nothing(tmp_path, stage):
    _, manifest, out, _ = stage
    for _ in range(3):
        publish(out, manifest, root=tmp_path, name="d")
    (tmp_path / "d" / "LATEST").write_text("v0042\n")
    assert prune_versions(tmp_path, "d", keep=1) == []
    assert list_versions(tmp_path, "d") == ["v0001", "v0002", "v0003"]


def test_a_delete_cut_short_by_retention_is_debris_for_the_next_publish(tmp_path, stage, monkeypatch):
    _, manifest, out, _ = stage
    for _ in range(2):
        publish(out, manifest, root=tmp_path, name="d")
    monkeypatch.setattr(publish_module.shutil, "rmtree", lambda *a, **k: None)  # the delete never happens
    assert prune_versions(tmp_path, "d", keep=1) == ["v0001"]
    monkeypatch.undo()
    assert list_versions(tmp_path, "d") == ["v0002"]  # renamed out of sight at once
    assert [p.name.startswith(".tmp-removed-v0001-") for p in publish_module.list_debris(tmp_path, "d")] == [True]
    publish(out, manifest, root=tmp_path, name="d")
    assert publish_module.list_debris(tmp_path, "d") == [] and list_versions(tmp_path, "d") == ["v0002", "v0003"]


def test_a_shuffled_view_is_published_as_its_rows_in_its_order(tmp_path, stage):
    """A selected / shuffled dataset (an indices mapping) is written as one plain table, rows in view order."""
    import pyarrow.parquet as pq

    from influence_stage.data.arrow import flat_dataset

    _, manifest, out, _ = stage
    view = out.shuffle(seed=3).select(range(out.num_rows - 2))
    assert getattr(view, "_indices", None) is not None
    flat = flat_dataset(view)
    assert flat._indices is None and flat.features == view.features
    pd.testing.assert_frame_equal(flat.to_pandas(), view.to_pandas())
    pub = publish(view, manifest, root=tmp_path, name="d")
    back, _, _ = load_published(pub.path, verify=True)
    assert back.features == view.features
    pd.testing.assert_frame_equal(back.to_pandas(), view.to_pandas())
    parquet = pq.read_table(pub.path / "data.parquet")
    pd.testing.assert_frame_equal(parquet.to_pandas(), view.to_pandas())

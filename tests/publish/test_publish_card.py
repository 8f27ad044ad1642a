"""Tests of the dataset card (publish.card), the Hub layout (publish.hub) and the version history (publish.read)."""

from __future__ import annotations

import json
import os

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402

import influence_stage  # noqa: E402
from influence_stage.data.labels import encode_labels  # noqa: E402
from influence_stage.decisions.apply import apply_decisions  # noqa: E402
from influence_stage.errors import InvalidInputError  # noqa: E402
from influence_stage.publish import hub as hub_module  # noqa: E402
from influence_stage.publish.card import dataset_card  # noqa: E402
from influence_stage.publish.hub import hub_layout, push_to_hub  # noqa: E402
from influence_stage.publish.versions import VersionInfo, load_published, publish, version_history  # noqa: E402
from influence_stage.quality import validate_output  # noqa: E402

CLASSES = ["cat", "dog", "bird"]
N = 12
SUMMARY = {"score": "gex", "threshold": 0.8125, "threshold method": "estimate", "estimated noise rate": 0.25,
           "warnings": ["the members barely moved"]}


@pytest.fixture(scope="module")
def stage():
    """12 input rows as string labels: row 2 dropped, row 5 relabeled (bird → cat), row 9 reweighted."""
    ds = datasets.Dataset.from_dict({"x": np.arange(N, dtype=np.float64), "label": [CLASSES[i % 3] for i in range(N)],
                                     "row_id": np.arange(N, dtype=np.int64)})
    enc = encode_labels(ds, "label")
    action = np.array(["keep"] * N, dtype=object)
    action[[2, 5, 9]] = ["drop", "relabel", "reweight"]
    suggested = enc.codes.copy()
    suggested[5] = list(enc.values).index("cat")
    table = pd.DataFrame({
        "row_id": np.arange(N, dtype=np.int64), "score": np.linspace(0, 1, N), "gex_influence": np.linspace(0, 2, N),
        "label_quality": np.linspace(1, 0, N), "is_issue": action != "keep", "action": action,
        "given_label": enc.codes, "suggested_label": suggested,
        "weight": np.where(action == "reweight", 0.5, 1.0),
    })
    out = apply_decisions(ds, table, label_column="label", encoding=enc)
    manifest = table.assign(given_label=enc.decode(enc.codes), suggested_label=enc.decode(suggested))
    report = validate_output(out, ds, manifest, label_column="label", class_names=list(enc.names),
                             max_drop_fraction=0.5)
    assert report.success, report.failures()
    return out, manifest, report, enc


def _publish(root, stage, **kwargs):
    out, manifest, report, enc = stage
    return publish(out, manifest, root=root, name="pets", validation_reports=[report], fingerprint="f" * 64,
                   classes=list(enc.values), class_names=list(enc.names), summary=SUMMARY, **kwargs)


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_load_dataset_on_a_version_folder_returns_the_published_rows(tmp_path, stage):
    """The folder holds validation/*.json next to the data; the card's configs make load_dataset read the data."""
    out, manifest, _, _ = stage
    pub = _publish(tmp_path / "pub", stage)
    assert (pub.path / "validation" / "output.json").is_file() and (pub.path / "README.md").is_file()
    loaded = datasets.load_dataset(str(pub.path), cache_dir=str(tmp_path / "hf-cache"))
    assert list(loaded) == ["train"]
    assert loaded["train"].num_rows == N - 1 == out.num_rows
    assert loaded["train"].features == out.features
    pd.testing.assert_frame_equal(loaded["train"].to_pandas(), out.to_pandas())
    assert loaded["train"]["row_id"] == [0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    rows = datasets.load_dataset(str(pub.path), "manifest", split="train", cache_dir=str(tmp_path / "hf-cache"))
    pd.testing.assert_frame_equal(rows.to_pandas(), manifest.reset_index(drop=True))


def test_the_card_is_checksummed_and_states_counts_decisions_and_provenance(tmp_path, stage):
    pub = _publish(tmp_path, stage)
    text = (pub.path / "README.md").read_text()
    meta = json.loads((pub.path / "meta.json").read_text())
    assert "README.md" in pub.files and "README.md" in meta["files"]
    load_published(pub.path, verify=True)
    front = _front_matter(text)
    assert front["pretty_name"] == "pets v0001" and front["size_categories"] == ["n<1K"]
    assert front["configs"] == [
        {"config_name": "default", "default": True, "data_files": [{"split": "train", "path": "data.parquet"}]},
        {"config_name": "manifest", "data_files": [{"split": "train", "path": "manifest.parquet"}]},
    ]
    assert [f["name"] for f in front["dataset_info"][0]["features"]] == ["x", "label", "row_id", "weight"]
    for line in ["| input | 12 | 100.0% |", "| published | 11 | 91.7% |", "| flagged | 3 | 25.0% |",
                 "| kept | 9 | 75.0% |", "| dropped | 1 | 8.3% |", "| relabeled | 1 | 8.3% |",
                 "| reweighted | 1 | 8.3% |",
                 # by class: bird rows are 2, 5, 8, 11; row 2 dropped, row 5 relabeled to cat
                 "| bird | 4 | 1 | 1 | 0 |", "| cat | 4 | 0 | 0 | 1 |", "| dog | 4 | 0 | 0 | 0 |",
                 "| bird | cat | 1 |", "| `label` | string |", "| `x` | float64 |"]:
        assert line in text.splitlines(), line
    assert "threshold **0.8125** (chosen by `estimate`)" in text and "scored by `gex`" in text
    assert "The estimated share of wrong labels was 25.00%." in text
    assert "> Warning: the members barely moved" in text
    assert f"`{'f' * 64}`" in text and f"`influence_stage` {influence_stage.__version__}" in text
    assert f"configuration fingerprint: `{meta['config_fingerprint']}`" in text
    out, manifest, report, _ = stage
    assert f"validation suite `output` (version {report.suite_version}): passed" in text
    assert meta["flagged"] == 3


def test_a_card_without_a_run_summary_points_to_the_config(tmp_path, stage):
    out, manifest, _, _ = stage
    pub = publish(out, manifest.drop(columns=["is_issue"]), root=tmp_path, name="d")
    text = (pub.path / "README.md").read_text()
    assert "The decision rule of this version is recorded in `config.json`." in text
    assert "| flagged |" not in text and json.loads((pub.path / "meta.json").read_text())["flagged"] is None
    # no classes recorded: the by-class table names the raw values
    assert "| bird | 4 | 1 | 1 | 0 |" in text.splitlines()


def test_a_curation_manifest_gets_its_status_counts_and_no_class_table(stage):
    out, _, _, _ = stage
    manifest = pd.DataFrame({"row_id": np.arange(6), "score": np.linspace(0, 1, 6),
                             "status": ["kept", "kept", "kept", "near_duplicate", "kept", "low_quality"]})
    meta = {"name": "corpus", "version": "v0002", "rows_in": 6, "rows_out": 4, "actions": None}
    lines = dataset_card(meta, out.features, manifest).splitlines()
    for line in ["| input | 6 | 100.0% |", "| published | 4 | 66.7% |", "| kept | 4 | 66.7% |",
                 "| low_quality | 1 | 16.7% |", "| near_duplicate | 1 | 16.7% |"]:
        assert line in lines, line
    assert "## By class" not in lines and not [x for x in lines if x.startswith("| flagged")]


def test_the_card_is_deterministic_for_equal_inputs(stage):
    out, manifest, _, _ = stage
    meta = {"name": "d", "version": "v0001", "rows_in": N, "rows_out": N - 1, "actions": {"keep": 9, "drop": 1}}
    assert dataset_card(meta, out.features, manifest) == dataset_card(dict(meta), out.features, manifest.copy())
    assert _front_matter(dataset_card(meta, out.features, manifest, prefix="d/v0001/"))["configs"][0][
        "data_files"] == [{"split": "train", "path": "d/v0001/data.parquet"}]


def test_extra_files_cannot_replace_the_card(tmp_path, stage):
    out, manifest, _, _ = stage
    with pytest.raises(InvalidInputError, match="must not be one of the published files"):
        publish(out, manifest, root=tmp_path / "pub", name="d", extra_files={"README.md": b"mine"})
    assert not (tmp_path / "pub").exists()


def test_the_hub_layout_loads_as_the_version(tmp_path, stage):
    """What push_to_hub uploads, laid out locally: load_dataset on it returns the cleaned rows."""
    out, _, _, _ = stage
    pub = _publish(tmp_path / "pub", stage)
    staged = hub_layout(pub, tmp_path / "repo")
    files = sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file())
    assert "README.md" in files and "pets/v0001/validation/output.json" in files
    assert "pets/v0001/data.parquet" in files and not [f for f in files if f.startswith("pets/v0001/dataset/")]
    assert len(files) == len([f for f in pub.files if not f.startswith("dataset/")]) + 1
    front = _front_matter((staged / "README.md").read_text())
    assert front["configs"][0]["data_files"] == [{"split": "train", "path": "pets/v0001/data.parquet"}]
    loaded = datasets.load_dataset(str(staged), cache_dir=str(tmp_path / "hf-cache"))
    assert list(loaded) == ["train"]
    pd.testing.assert_frame_equal(loaded["train"].to_pandas(), out.to_pandas())
    assert loaded["train"].features == out.features
    with pytest.raises(InvalidInputError, match="is not empty"):
        hub_layout(pub, staged)


def test_push_to_hub_uploads_the_hub_layout_in_one_commit(tmp_path, stage, monkeypatch):
    import huggingface_hub

    pub = _publish(tmp_path / "pub", stage)
    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, **kwargs):
            calls["repo"] = (repo_id, kwargs)

        def upload_folder(self, *, repo_id, repo_type, folder_path, commit_message, **kwargs):
            root = os.fspath(folder_path)
            calls["files"] = sorted(os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/")
                                    for d, _, names in os.walk(root) for f in names)
            calls["card"] = open(os.path.join(root, "README.md"), encoding="utf-8").read()
            calls["upload"] = (repo_id, repo_type, commit_message, kwargs)
            return type("Info", (), {"commit_url": "https://hub/commit/1"})()

    monkeypatch.setattr(hub_module, "_hub_offline", lambda: False)
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    assert push_to_hub(pub, "me/pets", token="t") == "https://hub/commit/1"
    assert calls["token"] == "t" and calls["repo"] == ("me/pets", {"repo_type": "dataset", "exist_ok": True,
                                                                   "private": None})
    assert calls["upload"] == ("me/pets", "dataset", "Publish pets v0001", {})
    assert calls["files"] == sorted(["README.md"] + [f"pets/v0001/{f}" for f in pub.files
                                                     if not f.startswith("dataset/")])
    assert "path: pets/v0001/data.parquet" in calls["card"]


def test_version_history_lists_dates_counts_and_the_flagged_share(tmp_path, stage):
    out, manifest, _, _ = stage
    assert version_history(tmp_path, "pets") == []
    first = _publish(tmp_path, stage)
    publish(out.select(range(5)), manifest.assign(is_issue=False), root=tmp_path, name="pets")
    history = version_history(tmp_path, "pets")
    assert [h.version for h in history] == ["v0001", "v0002"] and [h.latest for h in history] == [False, True]
    one, two = history
    assert (one.rows_in, one.rows_out, one.flagged, one.flagged_share) == (12, 11, 3, 0.25)
    assert one.actions == {"keep": 9, "drop": 1, "relabel": 1, "reweight": 1} and one.fingerprint == "f" * 64
    assert one.created_utc == json.loads((first.path / "meta.json").read_text())["created_utc"]
    assert (two.rows_in, two.rows_out, two.flagged, two.flagged_share) == (12, 5, 0, 0.0)
    # a version published before meta.json recorded the flagged count: read from its manifest
    meta_path = first.path / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["flagged"]
    meta_path.write_text(json.dumps(meta))
    assert version_history(tmp_path, "pets")[0].flagged == 3
    # an unreadable meta.json is listed without counts; a damaged LATEST marks no version latest
    meta_path.write_text("{torn")
    (tmp_path / "pets" / "LATEST").write_text("v0042\n")
    broken, second = version_history(tmp_path, "pets")
    assert broken == VersionInfo(version="v0001", created_utc=None, rows_in=None, rows_out=None, flagged=None,
                                 latest=False, readable=False)
    assert broken.flagged_share is None and second.readable and not second.latest
    with pytest.raises(InvalidInputError, match="not a valid folder name"):
        version_history(tmp_path, "../x")

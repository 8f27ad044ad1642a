"""Nothing wrong published, nothing left behind.

Stale sources, silent column-role switches, label codes in manifests, writes into published
versions, bad configuration exit codes, late checks, publish debris.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from influence_stage.data.sources import load_source
from influence_stage.errors import InvalidInputError
from influence_stage.data.fingerprint import dataset_fingerprint


# --------------------------------------------------------------------------------------------------
# 1. stale source
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_a_file_rewritten_in_place_is_read_again(tmp_path, suffix):
    path = tmp_path / f"src{suffix}"
    n = 40
    old = pd.DataFrame({"x": np.arange(n, dtype=np.float64), "label": np.arange(n) % 2})
    new = old.assign(label=(np.arange(n) + 1) % 2)

    def write(frame):
        if suffix == ".parquet":
            frame.to_parquet(path, index=False)
        elif suffix == ".csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_json(path, orient="records", lines=True)

    write(old)
    stat = os.stat(path)
    first = load_source(str(path))
    assert list(first["label"]) == old["label"].tolist()
    write(new)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the same modification time, other content
    assert os.stat(path).st_size == stat.st_size
    second = load_source(str(path))
    assert list(second["label"]) == new["label"].tolist()
    assert sum(a != b for a, b in zip(first["label"], second["label"])) == n
    assert dataset_fingerprint(first) != dataset_fingerprint(second)


def test_local_files_are_not_copied_into_the_hf_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    path = tmp_path / "src.parquet"
    pd.DataFrame({"x": [1.0, 2.0, 3.0], "label": [0, 1, 0]}).to_parquet(path, index=False)
    ds = load_source(str(path))
    assert ds.num_rows == 3
    assert not cache.exists() or not any(cache.rglob("*.arrow"))
    assert ds.cache_files == []


# --------------------------------------------------------------------------------------------------
# 2. column roles never change silently
# --------------------------------------------------------------------------------------------------


def _digits_csv(tmp_path, stray: dict[tuple[int, str], str]):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.integers(0, 16, size=(60, 4)).astype(float), columns=[f"px_{j}" for j in range(4)])
    frame["label"] = np.arange(60) % 3
    frame = frame.astype({c: object for c in {c for _, c in stray}})
    for (row, column), value in stray.items():
        frame.loc[row, column] = value
    path = tmp_path / "digits.csv"
    frame.to_csv(path, index=False)
    return str(path)


def test_one_stray_string_in_a_numeric_column_is_an_error_naming_it(tmp_path):
    from influence_stage.stage.steps import CleanConfig, prepare

    source = _digits_csv(tmp_path, {(7, "px_2"): "?"})
    with pytest.raises(InvalidInputError,
                       match=r"column 'px_2' is numeric except for 1 cell.*row 7.*'\?'.*coerce_numeric"):
        prepare(source, CleanConfig())
    source = _digits_csv(tmp_path, {(3, "px_1"): "abc", (5, "px_1"): "abc", (11, "px_1"): "abc"})
    with pytest.raises(InvalidInputError,
                       match=r"column 'px_1' is numeric except for 3 cells.*rows? 3.*5.*11.*'abc'"):
        prepare(source, CleanConfig(feature_columns=("px_*",)))


def test_coerce_numeric_turns_the_stray_cells_into_nulls(tmp_path):
    from influence_stage.stage.steps import CleanConfig, prepare
    from influence_stage.quality import validate_input

    source = _digits_csv(tmp_path, {(3, "px_1"): "abc", (5, "px_1"): "abc", (11, "px_1"): "abc"})
    prepared = prepare(source, CleanConfig(coerce_numeric=True))
    assert prepared.roles.kind == "tabular"
    assert prepared.roles.feature_columns == ("px_0", "px_1", "px_2", "px_3")
    column = prepared.dataset.to_pandas()["px_1"]
    assert column.dtype == np.float64
    assert column.isna().sum() == 3 and list(np.flatnonzero(column.isna())) == [3, 5, 11]
    report = validate_input(prepared.dataset, label_column="label",
                            feature_columns=list(prepared.roles.feature_columns),
                            class_names=list(prepared.encoding.values))
    # null feature cells pass the input suite: they are the null issue type, reported per row downstream
    assert report.failures() == []


def test_a_real_text_column_stays_text(tmp_path):
    from influence_stage.stage.steps import CleanConfig, prepare

    frame = pd.DataFrame({"text": [f"review number {i} is {'good' if i % 2 else 'bad'}" for i in range(20)],
                          "label": np.arange(20) % 2})
    frame.loc[4, "text"] = "5"
    path = tmp_path / "text.csv"
    frame.to_csv(path, index=False)
    assert prepare(str(path), CleanConfig()).roles.kind == "text"


# --------------------------------------------------------------------------------------------------
# 3. manifests speak labels
# --------------------------------------------------------------------------------------------------


def _labelled_source(labels: list):
    """60 rows, 3 well-separated classes with the given label values."""
    rng = np.random.default_rng(1)
    k = np.arange(60) % 3
    x = rng.normal(size=(60, 2)) + 4 * np.eye(3)[k][:, :2]
    return pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "label": np.asarray(labels, dtype=object)[k].tolist()})


QUICK = {"model": "mlp", "action": "relabel", "threshold": "budget:0.1", "fit": {"epochs": 5},
         "gex": {"chains": 2, "cycles": 1, "ft_lr": 0.1}}


@pytest.mark.parametrize("labels", [[0, 5, 7], ["cat", "dog", "eel"]])
def test_published_manifest_holds_the_input_label_values(tmp_path, labels):
    from influence_stage.stage.run import run_pipeline
    from influence_stage.stage.steps import CleanConfig
    from influence_stage.publish.versions import labelled_manifest, load_published, manifest_codes, publish
    from influence_stage.quality import validate_output

    source = _labelled_source(labels)
    result = run_pipeline(source, CleanConfig.from_mapping(QUICK))
    table = result.decisions.table
    assert int((table["action"] == "relabel").sum()) >= 1
    encoding = result.prepared.encoding
    manifest = labelled_manifest(table, encoding)
    report = validate_output(result.cleaned, result.prepared.dataset, manifest, label_column="label",
                             class_names=list(encoding.values), max_drop_fraction=0.5)
    assert report.success, report.failures()
    # the codes table fails the gate where codes are not label values
    if labels[1] != 1:
        bad = validate_output(result.cleaned, result.prepared.dataset, table, label_column="label",
                              class_names=list(encoding.values), max_drop_fraction=0.5)
        assert "manifest_given_label_in_class_set" in {r["key"] for r in bad.results if not r["success"]}
    published = publish(result.cleaned, manifest, root=tmp_path, name="lab", classes=list(encoding.values),
                        class_names=list(encoding.names), validation_reports=[report])
    ds, back, meta = load_published(published.path, verify=True)
    assert meta["classes"] == labels and meta["class_names"] == [str(v) for v in labels]
    data = pd.read_parquet(published.path / "data.parquet")
    source_label = source["label"].to_numpy(dtype=object)  # row_id is the source position
    assert back["given_label"].tolist() == [source_label[r] for r in back["row_id"]]
    assert set(back["suggested_label"].dropna()) <= set(labels)
    relabeled = back[back["action"] == "relabel"]
    by_id = data.set_index("row_id")["label"]
    assert by_id.loc[relabeled["row_id"]].tolist() == relabeled["suggested_label"].tolist()
    assert back["given_label"].dtype == data["label"].dtype
    codes = manifest_codes(back, meta)
    assert codes["given_label"].tolist() == table["given_label"].tolist()
    assert codes["suggested_label"].tolist() == table["suggested_label"].tolist()


def test_publishing_codes_as_labels_is_refused(tmp_path):
    import datasets

    from influence_stage.publish.versions import publish

    ds = datasets.Dataset.from_dict({"x": [1.0, 2.0], "label": [5, 7], "row_id": [0, 1]})
    manifest = pd.DataFrame({"row_id": [0, 1], "given_label": [0, 1], "suggested_label": [0, 1]})
    with pytest.raises(InvalidInputError, match=r"manifest column 'given_label' holds \[0, 1\], not in the classes "
                       r"\[5, 7\].*labelled_manifest"):
        publish(ds, manifest, root=tmp_path, name="x", classes=[5, 7])
    assert not (tmp_path / "x").exists() or list((tmp_path / "x").iterdir()) == []


# --------------------------------------------------------------------------------------------------
# 4-8. the CLI: read-only versions, bad configuration exits 2 with one line, preflight before work
# --------------------------------------------------------------------------------------------------


@pytest.fixture()
def no_flow(monkeypatch):
    """The flow (and with it Prefect and any training) must not start: preflight refuses first."""
    import influence_stage.orchestration.flow as flow_module
    import influence_stage.orchestration.deployments as deployments

    def refuse(*args, **kwargs):
        raise AssertionError("the flow started; preflight should have refused the run first")

    monkeypatch.setattr(flow_module, "clean_dataset", refuse)
    monkeypatch.setattr(deployments, "serve", refuse)


def cli(argv, capsys):
    """``cli.main(argv)``: (exit code, stderr lines)."""
    from influence_stage.cli import main

    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    return code, err.splitlines()


@pytest.fixture()
def src(tmp_path):
    path = tmp_path / "src.csv"
    _labelled_source([0, 1, 2]).to_csv(path, index=False)
    return str(path)


def _args(tmp_path, src, *extra):
    return ["clean", "--source", src, "--name", "demo", "--publish-root", tmp_path / "pub",
            "--cache-dir", tmp_path / "cache", "--model", "mlp", *extra]


def _nothing_written(tmp_path):
    assert not (tmp_path / "pub").exists() and not (tmp_path / "cache").exists()


@pytest.fixture()
def version(tmp_path):
    import datasets

    from influence_stage.publish.versions import publish

    ds = datasets.Dataset.from_dict({"x": [1.0, 2.0, 3.0], "label": [0, 1, 0], "row_id": [0, 1, 2]})
    manifest = pd.DataFrame({"row_id": [0, 1, 2], "score": [0.1, 0.9, 0.2], "gex_influence": [0.1, 0.9, 0.2],
                             "label_quality": [0.9, 0.1, 0.8], "is_issue": [False, True, False],
                             "action": ["keep", "keep", "keep"], "given_label": [0, 1, 0],
                             "suggested_label": [0, 0, 0], "weight": [1.0, 1.0, 1.0]})
    return publish(ds, manifest, root=tmp_path / "published", name="v", report_html="<html>original</html>",
                   classes=[0, 1]).path


@pytest.mark.parametrize("target", ["report.html", "meta.json", "new.html", "dataset/x.html"])
def test_report_into_a_published_version_is_refused(tmp_path, version, capsys, target):
    from influence_stage.publish.versions import load_published

    before = {p: p.read_bytes() for p in version.rglob("*") if p.is_file()}
    code, err = cli(["report", version, "--out", version / target], capsys)
    assert code == 2 and len(err) == 1
    assert err[0].startswith("error: ") and "read-only" in err[0] and str(version.resolve()) in err[0]
    assert {p: p.read_bytes() for p in version.rglob("*") if p.is_file()} == before
    load_published(version, verify=True)


def test_report_default_out_is_beside_the_version_never_inside_nor_here(tmp_path, version, capsys, monkeypatch):
    monkeypatch.chdir(version)  # run from inside the version: the default still writes beside it
    before = {p: p.read_bytes() for p in version.rglob("*") if p.is_file()}
    code, err = cli(["report", "."], capsys)
    assert code == 0 and err == []
    written = version.parent / f"report-{version.name}.html"
    assert written.is_file() and "<html" in written.read_text().lower()
    assert {p: p.read_bytes() for p in version.rglob("*") if p.is_file()} == before


def test_cache_dir_that_is_a_file_exits_2_before_any_work(tmp_path, src, capsys, no_flow):
    cache = tmp_path / "cache"
    cache.write_text("not a folder")
    code, err = cli(_args(tmp_path, src), capsys)
    assert code == 2 and len(err) == 1
    assert "cache dir" in err[0] and str(cache) in err[0] and "is a file" in err[0]
    assert cache.read_text() == "not a folder" and not (tmp_path / "pub").exists()


def test_publish_root_that_is_a_file_exits_2(tmp_path, src, capsys, no_flow):
    (tmp_path / "pub").write_text("x")
    code, err = cli(_args(tmp_path, src), capsys)
    assert code == 2 and len(err) == 1 and "publish root" in err[0] and "is a file" in err[0]
    assert (tmp_path / "pub").read_text() == "x" and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("text", ["source: [unclosed\nname: x\n", "source: x\n  name: : y\n\tbad: 1\n", "a: b: c\n"])
def test_malformed_yaml_exits_2_with_one_line(tmp_path, capsys, no_flow, text):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    code, err = cli(["clean", "--config", config], capsys)
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f"error: configuration file {config} is not valid YAML")
    _nothing_written(tmp_path)


def test_serve_with_a_bad_cron_exits_2(tmp_path, src, capsys, no_flow):
    args = _args(tmp_path, src)
    args[0] = "serve"
    code, err = cli([*args, "--cron", "not a cron"], capsys)
    assert code == 2 and len(err) == 1 and "--cron 'not a cron'" in err[0] and "0 3 * * *" in err[0]
    _nothing_written(tmp_path)


def test_empty_parquet_gets_the_empty_dataset_error(tmp_path, capsys, no_flow):
    path = tmp_path / "empty.parquet"
    pd.DataFrame({"x": pd.Series([], dtype=float), "label": pd.Series([], dtype=int)}).to_parquet(path)
    with pytest.raises(InvalidInputError, match=r"has 0 rows; expected at least one labelled row"):
        load_source(str(path))
    code, err = cli(_args(tmp_path, str(path)), capsys)
    assert code == 2 and len(err) == 1 and "0 rows" in err[0] and "could not read" not in err[0]
    _nothing_written(tmp_path)


@pytest.mark.parametrize("extra, needle", [
    (["--name", "../escape"], "name '../escape' is not a valid folder name"),
    (["--name", "white space"], "name 'white space' is not a valid folder name"),
    (["--ft-lr", "-0.1"], "ft_lr must be 'auto' or a positive number; found -0.1"),
    (["--ft-lr", "0"], "ft_lr must be 'auto' or a positive number; found 0.0"),
    (["--ft-lr", "nan"], "ft_lr must be 'auto' or a positive number; found nan"),
    (["--model", "/no/such/model.pt"], "/no/such/model.pt"),
    (["--model", "resnet9000"], "resnet9000"),
    (["--push-to-hub", "me/data"], "offline"),
])
def test_preflight_refuses_before_any_work(tmp_path, src, capsys, no_flow, extra, needle):
    code, err = cli(_args(tmp_path, src, *extra), capsys)
    assert code == 2 and len(err) == 1, err
    assert needle in err[0]
    _nothing_written(tmp_path)


@pytest.mark.parametrize("gex, needle", [({"ft_lr": 0}, "ft_lr must be 'auto' or a positive number"),
                                         ({"ft_lr": -1.5}, "ft_lr must be 'auto' or a positive number"),
                                         ({"lr_grid": [-0.1, 0.2]}, "lr_grid must hold at least 2 positive rates")])
def test_config_file_with_a_bad_rate_exits_2(tmp_path, src, capsys, no_flow, gex, needle):
    import yaml

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"source": src, "name": "demo", "publish_root": str(tmp_path / "pub"),
                                      "cache_dir": str(tmp_path / "cache"), "clean": {"gex": gex}}))
    code, err = cli(["clean", "--config", config], capsys)
    assert code == 2 and len(err) == 1 and needle in err[0]
    _nothing_written(tmp_path)


def test_push_to_hub_without_a_token_exits_2(tmp_path, src, capsys, no_flow, monkeypatch):
    from influence_stage.publish import hub as hub_module

    monkeypatch.setattr(hub_module, "_hub_offline", lambda: False)
    monkeypatch.setattr(hub_module, "_hub_token", lambda: None)
    code, err = cli(_args(tmp_path, src, "--push-to-hub", "me/data"), capsys)
    assert code == 2 and len(err) == 1 and "no Hugging Face token" in err[0] and "HF_TOKEN" in err[0]
    _nothing_written(tmp_path)


@pytest.mark.parametrize("content, needle", [(b"", "is empty (0 bytes)"), (b"x,label\n", "0 rows")])
def test_an_empty_source_file_exits_2(tmp_path, capsys, no_flow, content, needle):
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    code, err = cli(_args(tmp_path, str(path)), capsys)
    assert code == 2 and len(err) == 1 and needle in err[0] and str(path) in err[0]
    _nothing_written(tmp_path)


def test_unwritable_publish_root_exits_2(tmp_path, src, capsys, no_flow):
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        args = _args(tmp_path, src)
        args[args.index("--publish-root") + 1] = locked / "pub"
        code, err = cli(args, capsys)
        assert code == 2 and len(err) == 1 and "not writable" in err[0] and str(locked) in err[0]
    finally:
        locked.chmod(0o700)


def test_preflight_returns_quickly_and_accepts_a_good_run(tmp_path, src):
    import time

    from influence_stage.orchestration.flow import FlowConfig
    from influence_stage.stage.steps import CleanConfig, preflight

    params = FlowConfig(source=src, name="demo", publish_root=str(tmp_path / "pub"), cache_dir=str(tmp_path / "c"),
                        clean=CleanConfig(model="mlp"))
    start = time.perf_counter()
    preflight(params.source, params.clean, name=params.name, publish_root=params.publish_root,
              cache_dir=params.cache_dir, push_to_hub=params.push_to_hub)
    assert time.perf_counter() - start < 2.0
    _nothing_written(tmp_path)


# --------------------------------------------------------------------------------------------------
# 9. debris of a killed publish
# --------------------------------------------------------------------------------------------------


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _small_version_inputs():
    import datasets

    ds = datasets.Dataset.from_dict({"x": [1.0, 2.0], "label": [0, 1], "row_id": [0, 1]})
    manifest = pd.DataFrame({"row_id": [0, 1], "action": ["keep", "keep"], "given_label": [0, 1],
                             "suggested_label": [0, 1]})
    return ds, manifest


def test_leftover_tmp_folders_of_a_killed_publish_are_removed_by_the_next(tmp_path):
    import json
    import socket

    from influence_stage.publish.versions import OWNER_FILE, list_debris, list_versions, load_published, publish

    ds, manifest = _small_version_inputs()
    publish(ds, manifest, root=tmp_path, name="d")
    base = tmp_path / "d"
    dead = base / ".tmp-v0002-0123456789abcdef"  # killed while writing dataset/
    (dead / "dataset").mkdir(parents=True)
    (dead / "dataset" / "data-00000-of-00001.arrow").write_bytes(b"partial")
    (dead / OWNER_FILE).write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname()}))
    ownerless = base / ".tmp-v0002-fedcba9876543210"  # killed before its owner file was written
    ownerless.mkdir()
    latest_tmp = base / ".tmp-LATEST-00aa"  # killed while replacing LATEST
    latest_tmp.write_text("v0002\n")
    alive = base / ".tmp-v0003-aaaabbbbccccdddd"  # owned by a running process (this one): kept
    alive.mkdir()
    (alive / OWNER_FILE).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    elsewhere = base / ".tmp-v0003-eeeeffff00001111"  # owned by a process on another host: kept
    elsewhere.mkdir()
    (elsewhere / OWNER_FILE).write_text(json.dumps({"pid": 1, "host": "some-other-host.invalid"}))

    assert sorted(p.name for p in list_debris(tmp_path, "d")) == sorted(
        p.name for p in (dead, ownerless, latest_tmp))
    second = publish(ds, manifest, root=tmp_path, name="d")
    assert second.version == "v0002"
    assert not dead.exists() and not ownerless.exists() and not latest_tmp.exists()
    assert alive.is_dir() and elsewhere.is_dir()
    assert list_debris(tmp_path, "d") == []
    assert list_versions(tmp_path, "d") == ["v0001", "v0002"]
    _, _, meta = load_published(second.path, verify=True)
    assert OWNER_FILE not in meta["files"] and not (second.path / OWNER_FILE).exists()


def test_a_publish_in_progress_owns_its_tmp_folder(tmp_path, monkeypatch):
    import json

    from influence_stage.publish import store
    from influence_stage.publish import versions as publish_module

    ds, manifest = _small_version_inputs()
    seen = {}
    real = store.write_json

    def spy(path, data):
        owner = path.parent / publish_module.OWNER_FILE
        if path.name == publish_module.CONFIG_JSON:
            seen.update(json.loads(owner.read_text()))
        real(path, data)

    monkeypatch.setattr(store, "write_json", spy)
    publish_module.publish(ds, manifest, root=tmp_path, name="d")
    assert seen["pid"] == os.getpid()


def test_cli_versions_lists_versions_and_debris(tmp_path, capsys):
    from influence_stage.publish.versions import publish

    ds, manifest = _small_version_inputs()
    publish(ds, manifest, root=tmp_path, name="d")
    publish(ds, manifest, root=tmp_path, name="d")
    (tmp_path / "d" / ".tmp-v0003-0123").mkdir()
    from influence_stage.cli import main

    assert main(["versions", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out[:2]] == ["v0001", "v0002"]
    assert not out[0].endswith("(LATEST)") and out[1].endswith("  (LATEST)")
    assert out[1].split("  ")[2:] == ["rows 2 -> 2", "(LATEST)"] and out[1].split("  ")[1].endswith(" UTC")
    assert out[2].startswith("debris: ") and ".tmp-v0003-0123" in out[2] and "removed by the next publish" in out[2]
    assert main(["versions", str(tmp_path / "nothing")]) == 2
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_a_switch_of_column_roles_since_the_last_version_is_a_warning(tmp_path):
    from influence_stage.orchestration.flow import FlowConfig, roles_change
    from influence_stage.publish.versions import publish

    params = FlowConfig(source="x.parquet", name="d", publish_root=str(tmp_path))
    tabular = {"label": "label", "kind": "tabular", "features": ["px_0", "px_1"]}
    assert roles_change(params, tabular) is None  # nothing published yet
    ds, manifest = _small_version_inputs()
    publish(ds, manifest, root=tmp_path, name="d", summary={"columns": tabular})
    assert roles_change(params, tabular) is None
    text = {"label": "label", "kind": "text", "features": ["px_1"]}
    assert roles_change(params, text) == ("column roles changed since d v0001: label 'label', tabular features "
                                          "['px_0', 'px_1'] then; label 'label', text features ['px_1'] now")


@pytest.mark.parametrize("make", ["folder", "binary"])
def test_unreadable_config_file_exits_2(tmp_path, capsys, no_flow, make):
    config = tmp_path / "c.yaml"
    if make == "folder":
        config.mkdir()
    else:
        config.write_bytes(b"\xff\xfe\x00bad")
    code, err = cli(["clean", "--config", config], capsys)
    assert code == 2 and len(err) == 1 and f"configuration file {config}" in err[0]


def test_source_fingerprint_is_the_bytes_not_the_path_or_mtime(tmp_path):
    import shutil

    from influence_stage.data.sources import read_local_files, source_fingerprint

    a = tmp_path / "a.parquet"
    pd.DataFrame({"x": [1.0, 2.0], "label": [0, 1]}).to_parquet(a, index=False)
    b = tmp_path / "elsewhere" / "b.parquet"
    b.parent.mkdir()
    shutil.copyfile(a, b)
    os.utime(b, (1, 1))
    assert source_fingerprint([a]) == source_fingerprint([b])
    assert read_local_files([str(a)], "parquet")._fingerprint == read_local_files([str(b)], "parquet")._fingerprint
    pd.DataFrame({"x": [1.0, 2.0], "label": [1, 0]}).to_parquet(b, index=False)
    os.utime(b, (1, 1))
    assert source_fingerprint([a]) != source_fingerprint([b])
    assert source_fingerprint([a, b]) != source_fingerprint([b, a])

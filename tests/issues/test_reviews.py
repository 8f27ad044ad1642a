"""Reviewed labels back from review tools (influence_stage.issues.reviews) and ``influence-stage import-reviews``:
every review format, the reviewed version (data, manifest, meta), the base version untouched, each bad input
refused with nothing published, and the round trip from a cleaned and published dataset."""

from __future__ import annotations

import os

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from influence_stage.cli import main  # noqa: E402
from influence_stage.cli import reviews as cli_reviews  # noqa: E402
from influence_stage.data.labels import encode_labels  # noqa: E402
from influence_stage.decisions.apply import apply_decisions  # noqa: E402
from influence_stage.errors import InvalidInputError  # noqa: E402
from influence_stage.issues import reviews  # noqa: E402
from influence_stage.issues.reviews import publish_reviews, read_reviews  # noqa: E402
from influence_stage.publish.read import load_published  # noqa: E402
from influence_stage.publish.versions import list_versions, publish  # noqa: E402

CLASSES = ["cat", "dog", "eel"]
N = 12
DROPPED, RELABELED, COPY = 2, 5, 11  # row 11 is an exact copy of row 1, dropped


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def version(tmp_path):
    """A cleaned version of 12 rows (string labels): row 2 dropped as a label issue, row 5 relabeled eel → cat,
    row 11 dropped as an exact copy of row 1; the source beside it. Returns (root, name, source path)."""
    frame = pd.DataFrame({"x": np.arange(N, dtype=np.float64), "note": [f"row {i}" for i in range(N)],
                          "label": [CLASSES[i % 3] for i in range(N)]})
    frame.loc[COPY, ["x", "label"]] = [1.0, "dog"]
    source = tmp_path / "source.parquet"
    frame.to_parquet(source, index=False)
    ds = datasets.Dataset.from_pandas(frame, preserve_index=False).add_column("row_id", np.arange(N))
    enc = encode_labels(ds, "label")
    action = np.array(["keep"] * N, dtype=object)
    action[[DROPPED, RELABELED, COPY]] = ["drop", "relabel", "drop"]
    suggested = enc.codes.copy()
    suggested[RELABELED] = list(enc.values).index("cat")
    table = pd.DataFrame({"row_id": np.arange(N, dtype=np.int64), "score": np.linspace(0, 1, N),
                          "gex_influence": np.linspace(0, 2, N), "label_quality": np.linspace(1, 0, N),
                          "is_issue": action != "keep", "action": action, "given_label": enc.codes,
                          "suggested_label": suggested, "weight": np.ones(N)})
    out = apply_decisions(ds, table, label_column="label", encoding=enc).remove_columns("row_id")
    copy_of = np.full(N, -1)
    copy_of[COPY] = 1
    manifest = table.assign(given_label=enc.decode(enc.codes), suggested_label=enc.decode(suggested),
                            exact_duplicate_of=copy_of)
    root = tmp_path / "pub"
    publish(out, manifest, root=root, name="pets", fingerprint="f" * 64, classes=list(enc.values),
            class_names=list(enc.names), config={"clean": {"label_column": "label"}}, summary={"flagged": 3})
    return root, "pets", source


def _ls_export(path: Path, chosen: dict) -> Path:
    """A Label Studio JSON export: one task per row id, annotated with the chosen class (None: not annotated)."""
    tasks = []
    for i, (rid, label) in enumerate(chosen.items()):
        task = {"id": i + 1, "data": {"row_id": rid, "note": f"row {rid}"}, "annotations": []}
        if label is not None:
            task["annotations"] = [{"was_cancelled": False, "result": [
                {"from_name": "label", "to_name": "note", "type": "choices", "value": {"choices": [label]}}]}]
        tasks.append(task)
    path.write_text(json.dumps(tasks))
    return path


# ----------------------------------------------------------------------------------------------------
# reading the review formats
# ----------------------------------------------------------------------------------------------------


def test_every_review_format_reads_the_same_labels(tmp_path):
    chosen = {3: "dog", 7: "eel", 9: None}
    ls = read_reviews(_ls_export(tmp_path / "export.json", chosen), CLASSES)
    pd.DataFrame({"row_id": [3, 7, 9], "given_label_name": ["cat"] * 3,
                  "reviewed_label": ["dog", "eel", ""]}).to_csv(tmp_path / "issues.csv", index=False)
    csv = read_reviews(tmp_path / "issues.csv", CLASSES)
    pd.DataFrame({"row_id": [3, 7, 9], "reviewed_label": ["dog", "eel", None]}).to_parquet(tmp_path / "i.parquet")
    parquet = read_reviews(tmp_path / "i.parquet", CLASSES)
    records = [{"id": "3", "responses": {"label": [{"value": "cat", "status": "draft"},
                                                   {"value": "dog", "status": "submitted"}]}},
               {"id": "7", "label.responses": ["eel"]},
               {"id": "9", "responses": {"label": [{"value": "eel", "status": "submitted"}]}, "status": "discarded"},
               {"id": "4", "responses": {}}]
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    argilla = read_reviews(tmp_path / "records.jsonl", CLASSES)
    for table in (ls, csv, parquet, argilla):
        assert [str(r) for r in table["row_id"]] == ["3", "7"]
        assert table["reviewed_label"].tolist() == [1, 2] and table["reviewed_label_name"].tolist() == ["dog", "eel"]


def test_review_files_that_are_not_reviews_are_refused(tmp_path):
    (tmp_path / "dict.json").write_text('{"tasks": []}')
    with pytest.raises(InvalidInputError, match=r"must hold a JSON list of tasks"):
        read_reviews(tmp_path / "dict.json", CLASSES)
    pd.DataFrame({"row_id": [1], "label": ["dog"]}).to_csv(tmp_path / "nocol.csv", index=False)
    with pytest.raises(InvalidInputError, match=r"has no column\(s\) \['reviewed_label'\]"):
        read_reviews(tmp_path / "nocol.csv", CLASSES)
    (tmp_path / "fake.parquet").write_text("row_id,reviewed_label\n1,dog\n")
    with pytest.raises(InvalidInputError, match=r"is not a readable PARQUET file"):
        read_reviews(tmp_path / "fake.parquet", CLASSES)
    with pytest.raises(InvalidInputError, match=r"cannot tell the format .* 'reviews.txt'"):
        read_reviews(tmp_path / "reviews.txt", CLASSES)
    pd.DataFrame({"row_id": [1], "reviewed_label": ["wolf"]}).to_csv(tmp_path / "wolf.csv", index=False)
    with pytest.raises(InvalidInputError, match=r"row_id '1' of wolf.csv was reviewed as 'wolf', which is not a "):
        read_reviews(tmp_path / "wolf.csv", CLASSES)
    pd.DataFrame({"row_id": [1, 1], "reviewed_label": ["dog", "eel"]}).to_csv(tmp_path / "twice.csv", index=False)
    with pytest.raises(InvalidInputError, match=r"row_id '1' is reviewed with different labels"):
        read_reviews(tmp_path / "twice.csv", CLASSES)


def test_the_cli_and_the_library_know_the_same_review_formats():
    assert cli_reviews.REVIEW_FORMATS == reviews.REVIEW_FORMATS


# ----------------------------------------------------------------------------------------------------
# the reviewed version
# ----------------------------------------------------------------------------------------------------


def test_publish_reviews_relabels_puts_back_and_marks_the_reviewed_rows(version, tmp_path):
    root, name, source = version
    before = _files(root / name / "v0001")
    # row 0: kept cat → dog; row 5: relabeled (eel → cat) back to its given eel; row 2: dropped, put back as eel;
    # row 11: a dropped exact copy, reviewed, stays dropped
    export = _ls_export(tmp_path / "export.json", {0: "dog", RELABELED: "eel", DROPPED: "eel", COPY: "dog", 4: None})
    published = publish_reviews(export, root / name, source=source)
    assert published.version == "v0002" and list_versions(root, name) == ["v0001", "v0002"]
    assert (root / name / "LATEST").read_text().strip() == "v0002"
    ds, manifest, meta = load_published(published.path, verify=True)
    data = ds.to_pandas()
    assert data["note"].tolist() == [f"row {i}" for i in range(N) if i != COPY]  # input order, row 2 back
    labels = dict(zip(data["note"], data["label"]))
    assert labels["row 0"] == "dog" and labels["row 2"] == "eel" and labels[f"row {RELABELED}"] == "eel"
    assert labels["row 1"] == "dog" and labels["row 3"] == "cat"  # not reviewed: unchanged
    assert manifest["row_id"][manifest["reviewed"]].tolist() == [0, DROPPED, RELABELED, COPY]
    reviewed_label = [None if pd.isna(v) else v for v in manifest["reviewed_label"]]
    assert reviewed_label == ["dog", None, "eel", None, None, "eel", None, None, None, None, None, "dog"]
    assert manifest["action"].tolist()[:6] == ["relabel", "keep", "keep", "keep", "keep", "keep"]
    assert manifest["action"][COPY] == "drop"
    assert manifest["stage_action"].tolist()[DROPPED] == "drop" and manifest["stage_action"][RELABELED] == "relabel"
    info = meta["summary"]["reviews"]
    assert info["file_name"] == "export.json" and info["from_version"] == "v0001" and info["format"] == "label-studio"
    assert (info["n_reviewed"], info["n_changed"], info["n_restored"], info["n_copies_kept_dropped"]) == (4, 1, 1, 1)
    assert (published.path / "reviews" / "export.json").read_bytes() == export.read_bytes()
    assert meta["rows_out"] == N - 1 and meta["actions"] == {"keep": 10, "relabel": 1, "drop": 1}
    assert meta["fingerprint"] == "f" * 64 and meta["summary"]["flagged"] == 3
    assert _files(root / name / "v0001") == before  # the base version is untouched
    # a second review of the new version keeps the first one's marks; a later review of a row wins
    again = publish_reviews(_ls_export(tmp_path / "again.json", {0: "cat", 7: "eel"}), published.path)
    _, manifest2, _ = load_published(again.path)
    assert manifest2["row_id"][manifest2["reviewed"]].tolist() == [0, DROPPED, RELABELED, 7, COPY]
    assert manifest2["reviewed_label"][0] == "cat" and manifest2["stage_action"][DROPPED] == "drop"


def test_integer_labels_keep_their_type_in_the_reviewed_manifest(tmp_path):
    ds = datasets.Dataset.from_dict({"x": [0.0, 1.0, 2.0, 3.0], "label": [0, 5, 0, 5]})
    manifest = pd.DataFrame({"row_id": [0, 1, 2, 3], "score": [0.0] * 4, "gex_influence": [0.0] * 4,
                             "label_quality": [1.0] * 4, "is_issue": [False] * 4, "action": ["keep"] * 4,
                             "given_label": [0, 5, 0, 5], "suggested_label": [0, 5, 0, 5], "weight": [1.0] * 4})
    publish(ds, manifest, root=tmp_path, name="ints", classes=[0, 5])
    pd.DataFrame({"row_id": [1], "reviewed_label": ["0"]}).to_csv(tmp_path / "r.csv", index=False)
    out = publish_reviews(tmp_path / "r.csv", tmp_path / "ints")
    data, back, _ = load_published(out.path)
    assert data["label"][:] == [0, 0, 0, 5] and str(back["reviewed_label"].dtype) == "Int64"
    assert back["reviewed_label"].isna().tolist() == [True, False, True, True]


# ----------------------------------------------------------------------------------------------------
# the CLI: bad inputs exit 2 with one line and publish nothing
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case, match", [
    ("unknown_row", "names row_id 99, which is not a row of"),
    ("unknown_label", "was labelled 'wolf', which is not a class name"),
    ("wrong_format", "must hold a JSON list of tasks"),
    ("csv_as_json", "is not a readable JSON file"),
    ("no_version", "v0009 does not exist; pets has versions ['v0001']"),
    ("dropped_without_source", "were dropped from v0001 (row_id 2 first); pass the source"),
    ("short_source", "the source has 5 rows, the version's input had 12"),
    ("nothing_reviewed", "export.json holds no reviewed row"),
])
def test_import_reviews_errors_exit_2_and_publish_nothing(version, tmp_path, capsys, case, match):
    root, name, source = version
    export = tmp_path / "export.json"
    extra: list[str] = ["--source", str(source)]
    origin = str(root / name)
    if case == "unknown_row":
        _ls_export(export, {0: "dog", 99: "cat"})
    elif case == "unknown_label":
        _ls_export(export, {0: "wolf"})
    elif case == "wrong_format":
        export.write_text('{"row_id": 0}')
    elif case == "csv_as_json":
        export.write_text("row_id,reviewed_label\n0,dog\n")
    elif case == "no_version":
        _ls_export(export, {0: "dog"})
        origin = str(root / name / "v0009")
    elif case == "dropped_without_source":
        _ls_export(export, {DROPPED: "eel"})
        extra = []
    elif case == "nothing_reviewed":
        _ls_export(export, {0: None, 1: None})
    else:
        _ls_export(export, {DROPPED: "eel"})
        pd.read_parquet(source).iloc[:5].to_parquet(tmp_path / "short.parquet", index=False)
        extra = ["--source", str(tmp_path / "short.parquet")]
    before = _files(root / name)
    code = main(["import-reviews", str(export), "--from", origin, *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and match in err[0], err
    assert list_versions(root, name) == ["v0001"] and _files(root / name) == before


def test_import_reviews_from_a_saved_cleaner_needs_out(tmp_path, capsys):
    (tmp_path / "e.json").write_text("[]")
    code = main(["import-reviews", str(tmp_path / "e.json"), "--from", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is not a published version, so nothing can be published" in err[0]


def test_import_reviews_cli_publishes_and_writes_the_table(version, tmp_path, capsys):
    root, name, source = version
    pd.DataFrame({"row_id": [0, DROPPED, 4], "reviewed_label": ["dog", "eel", ""]}).to_csv(tmp_path / "r.csv",
                                                                                          index=False)
    assert main(["import-reviews", str(tmp_path / "r.csv"), "--from", str(root / name), "--source", str(source),
                 "--version", "reviewed-1", "--out", str(tmp_path / "table.parquet")]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(str(root / name / "reviewed-1")) and "2 reviewed, 1 changed, 1 put back; from v0001" in line
    table = pd.read_parquet(tmp_path / "table.parquet")
    assert table["row_id"].astype(int).tolist() == [0, DROPPED] and table["changed"].tolist() == [True, False]
    _, manifest, meta = load_published(root / name)
    assert meta["version"] == "reviewed-1" and meta["summary"]["reviews"]["format"] == "csv"
    assert manifest["row_id"][manifest["reviewed"]].tolist() == [0, DROPPED]


def test_the_csv_issue_file_goes_out_and_comes_back(version, tmp_path, capsys):
    root, name, _ = version
    assert main(["export", str(root / name), "--out", str(tmp_path / "issues.csv"), "--format", "csv", "--all"]) == 0
    issues = pd.read_csv(tmp_path / "issues.csv", dtype=str, keep_default_na=False)
    assert (issues["reviewed_label"] == "").all()  # the empty column the reviewer fills
    issues.loc[issues["row_id"] == "4", "reviewed_label"] = "eel"
    issues.to_csv(tmp_path / "issues.csv", index=False)
    assert main(["import-reviews", str(tmp_path / "issues.csv"), "--from", str(root / name)]) == 0
    assert "1 reviewed, 1 changed, 0 put back" in capsys.readouterr().out
    ds, manifest, _ = load_published(root / name)
    assert manifest["row_id"][manifest["reviewed"]].tolist() == [4]
    assert dict(zip(ds["note"], ds["label"]))["row 4"] == "eel"


# ----------------------------------------------------------------------------------------------------
# end to end: clean and publish, export to Label Studio, review, import
# ----------------------------------------------------------------------------------------------------


def test_round_trip_clean_export_review_import(tmp_path, capsys):
    from influence_stage.data.arrow import ROW_ID, row_id_was_added
    from influence_stage.publish.versions import labelled_manifest
    from influence_stage.stage.run import run_pipeline
    from influence_stage.stage.steps import CleanConfig

    rng = np.random.default_rng(1)
    k = np.arange(45) % 3
    x = rng.normal(size=(45, 2)) + 4 * np.eye(3)[k][:, :2]
    frame = pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "note": [f"row {i}" for i in range(45)],
                          "label": np.asarray(CLASSES, dtype=object)[k]})
    frame.loc[[3, 7], "label"] = ["eel", "cat"]  # two flipped labels
    source = tmp_path / "source.parquet"
    frame.to_parquet(source, index=False)
    config = CleanConfig.from_mapping({"model": "mlp", "action": "drop", "threshold": "budget:0.1",
                                       "feature_columns": ["x0", "x1"], "issue_types": ["exact_duplicate"],
                                       "fit": {"epochs": 5}, "gex": {"chains": 2, "cycles": 1, "ft_lr": 0.1}})
    result = run_pipeline(str(source), config)
    cleaned = result.cleaned.remove_columns(ROW_ID) if row_id_was_added(result.cleaned) else result.cleaned
    enc = result.prepared.encoding
    root = tmp_path / "pub"
    publish(cleaned, labelled_manifest(result.decisions.table, enc, issues=result.issues), root=root, name="toy",
            config={"clean": config.model_dump(mode="json")}, classes=list(enc.values), class_names=list(enc.names))
    base = _files(root / "toy" / "v0001")
    dropped = set(result.decisions.table.loc[result.decisions.table["action"] == "drop", "row_id"])
    assert dropped

    assert main(["export", str(root / "toy"), "--out", str(tmp_path / "ls"), "--source", str(source)]) == 0
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    # the reviewer: the true class of each of the first three tasks (the note's row position mod 3); the rest skipped
    chosen = {}
    for task in tasks[:3]:
        row = int(task["data"]["note"].split()[1])
        chosen[task["data"]["row_id"]] = CLASSES[row % 3]
        task["annotations"] = [{"was_cancelled": False, "result": [{"from_name": "label", "to_name": "note",
                                                                    "type": "choices",
                                                                    "value": {"choices": [CLASSES[row % 3]]}}]}]
    export = tmp_path / "project-export.json"
    export.write_text(json.dumps(tasks))

    assert main(["import-reviews", str(export), "--from", str(root / "toy"), "--source", str(source)]) == 0
    assert "3 reviewed" in capsys.readouterr().out
    assert list_versions(root, "toy") == ["v0001", "v0002"]
    ds, manifest, meta = load_published(root / "toy", verify=True)
    assert meta["version"] == "v0002" and meta["summary"]["reviews"]["file_name"] == "project-export.json"
    assert set(manifest.loc[manifest["reviewed"], "row_id"]) == set(chosen)
    assert dict(zip(manifest.loc[manifest["reviewed"], "row_id"],
                    manifest.loc[manifest["reviewed"], "reviewed_label"])) == chosen
    data = ds.to_pandas()
    labels = dict(zip(data["note"], data["label"]))
    for rid, label in chosen.items():
        assert labels[f"row {rid}"] == label  # the reviewed rows are in the data, with the reviewed label
    assert ds.num_rows == 45 - len(dropped - set(chosen))
    assert _files(root / "toy" / "v0001") == base

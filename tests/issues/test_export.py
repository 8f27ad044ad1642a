"""The hand-off to review tools (influence_stage.issues.export) and the optional MLflow log
(influence_stage.issues.mlflow): file formats, the Label Studio round trip, images, and every error path."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from influence_stage.decisions import decide
from influence_stage.errors import InvalidInputError, InvalidTypeError, MissingDependencyError
from influence_stage.issues import find_data_issues
from influence_stage.issues import mlflow as issue_mlflow
from influence_stage.issues.export import (
    argilla_records,
    image_columns,
    label_studio_tasks,
    read_label_studio_reviews,
    review_rows,
    write_argilla,
    write_issue_file,
    write_label_studio,
)

NAMES = ["cat", "dog", "fox"]
N = 40


@pytest.fixture(scope="module")
def run():
    """40 rows, 3 classes; rows 3 and 8 over the threshold (row 8 most suspicious), row 20 a copy of row 1;
    harm from a deviation matrix where row 20 is the most harmful."""
    rng = np.random.default_rng(0)
    y = np.arange(N) % 3
    X = rng.normal(size=(N, 4)).astype(np.float32) + y[:, None]
    X[20] = X[1]
    scores = np.zeros(N)
    scores[[3, 8]] = [6.0, 9.0]
    proba = np.full((N, 3), 0.1)
    proba[np.arange(N), (y + 1) % 3] = 0.8
    d = decide(scores, y, threshold=5.0, action="none", proba=proba, row_ids=np.arange(N) + 100)
    D = np.zeros((N, 2))
    D[:, 0] = 1.0
    D[[1, 3, 8, 20], 0] = [-1.0, 1.0, -2.0, -3.0]  # harm of flagged rows: 20 > 8 > 1 > 3
    issues = find_data_issues(X, y, decisions=d.table, types=["exact_duplicate"], deviations=D)
    text = [f"sentence number {i}" for i in range(N)]
    return d.table, issues, pd.DataFrame({"text": text, "source": ["a"] * N})


def test_review_rows_most_harmful_first_with_names_and_content(run):
    table, issues, content = run
    by_score = review_rows(table, issues, content=content)
    assert by_score["row_id"].tolist() == [108, 103, 101, 120]  # score 9, 6, then ties in input order
    rows = review_rows(table, issues, content=content, class_names=NAMES, order="harm")
    assert rows["row_id"].tolist() == [120, 108, 101, 103]
    assert rows["issue_types"].tolist() == ["exact_duplicate", "label", "exact_duplicate", "label"]
    assert rows["given_label_name"].tolist() == ["fox", "fox", "dog", "cat"]
    assert rows["suggested_label_name"].tolist() == ["cat", "cat", "fox", "dog"]
    assert rows["text"].tolist() == ["sentence number 20", "sentence number 8", "sentence number 1",
                                     "sentence number 3"]
    assert rows.index.tolist() == [20, 8, 1, 3]
    everything = review_rows(table, content=content, only_flagged=False, max_rows=5)
    assert everything["row_id"].tolist()[:2] == [108, 103] and len(everything) == 5  # by score without harm


def test_label_studio_round_trip(run, tmp_path):
    table, issues, content = run
    rows = review_rows(table, issues, content=content, class_names=NAMES, order="harm")
    path = write_label_studio(rows, tmp_path / "ls", NAMES)
    tasks = json.loads(path.read_text())
    assert len(tasks) == 4 and set(tasks[0]) == {"data", "predictions"}
    first = tasks[0]
    assert first["data"]["text"] == "sentence number 20" and first["data"]["row_id"] == 120
    pred = first["predictions"][0]
    assert pred["model_version"] == "influence_stage"
    assert pred["result"] == [{"from_name": "label", "to_name": "text", "type": "choices",
                               "value": {"choices": ["cat"]}}]
    assert pred["score"] == pytest.approx(first["data"]["label_quality"])
    config = ET.fromstring((tmp_path / "ls" / "label_config.xml").read_text())
    assert config.find("Text").attrib == {"name": "text", "value": "$text"}
    choices = config.find("Choices")
    assert choices.attrib["name"] == "label" and choices.attrib["toName"] == "text"
    assert [c.attrib["value"] for c in choices] == NAMES
    # a reviewer labels three tasks (one annotation cancelled, one task skipped): Label Studio's export
    for task, answer, cancelled in zip(tasks, ["fox", "cat", "dog"], [False, False, True]):
        task["annotations"] = [{"was_cancelled": cancelled, "result": [
            {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [answer]}}]}]
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks))
    reviews = read_label_studio_reviews(export, NAMES)
    assert reviews.to_dict(orient="list") == {"row_id": [120, 108], "reviewed_label": [2, 0],
                                              "reviewed_label_name": ["fox", "cat"]}
    assert reviews["reviewed_label"].dtype == np.int64


def test_images_are_written_as_png_files(run, tmp_path):
    from PIL import Image

    table, issues, _ = run
    pixels = [np.linspace(0.0, 1.0, 64).reshape(8, 8) * (i + 1) / N for i in range(N)]  # floats, not 0..255
    buf = io.BytesIO()
    Image.fromarray(np.full((5, 7), 200, dtype=np.uint8)).save(buf, format="PNG")
    hub = [{"bytes": buf.getvalue(), "path": None}] * N  # the datasets Image layout
    content = pd.DataFrame({"image": pixels, "thumb": hub})
    rows = review_rows(table, issues, content=content, class_names=NAMES, order="harm")
    assert image_columns(rows) == ["image", "thumb"]
    path = write_label_studio(rows, tmp_path / "ls", NAMES)
    task = json.loads(path.read_text())[0]
    assert task["data"]["image"] == "images/image_120.png" and task["data"]["thumb"] == "images/thumb_120.png"
    assert task["predictions"][0]["result"][0]["to_name"] == "image"
    with Image.open(tmp_path / "ls" / "images" / "image_120.png") as im:
        assert im.size == (8, 8)
        assert np.asarray(im).min() == 0 and np.asarray(im).max() == 255  # stretched to 0..255 for review
    with Image.open(tmp_path / "ls" / "images" / "thumb_120.png") as im:
        assert im.size == (7, 5) and np.asarray(im).max() == 200
    assert ET.fromstring((tmp_path / "ls" / "label_config.xml").read_text()).find("Image") is not None
    out = write_issue_file(rows, tmp_path / "issues.parquet")
    back = pd.read_parquet(out)
    with Image.open(io.BytesIO(back["image"].iloc[0])) as im:
        assert im.size == (8, 8)


def test_argilla_records(run, tmp_path):
    table, issues, content = run
    rows = review_rows(table, issues, content=content, class_names=NAMES, order="harm")
    records = argilla_records(rows, NAMES)
    assert records[0]["id"] == "120" and records[0]["fields"] == {"text": "sentence number 20"}
    assert records[0]["suggestions"] == [{"question_name": "label", "value": "cat", "agent": "influence_stage",
                                          "score": pytest.approx(rows["label_quality"].iloc[0])}]
    assert records[0]["metadata"]["issue_types"] == "exact_duplicate" and records[0]["metadata"]["harm_rank"] == 1
    path = write_argilla(rows, tmp_path / "records.jsonl", NAMES)
    lines = path.read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["120", "108", "101", "103"]


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".csv"])
def test_issue_file_carries_every_column(run, tmp_path, suffix):
    table, issues, content = run
    rows = review_rows(table, issues, content=content, class_names=NAMES, order="harm")
    path = write_issue_file(rows, tmp_path / f"issues{suffix}")
    back = {".parquet": pd.read_parquet, ".csv": pd.read_csv,
            ".jsonl": lambda p: pd.read_json(p, lines=True)}[suffix](path)
    reviewed = ["reviewed_label"] if suffix != ".jsonl" else []  # the empty column a reviewer fills
    assert back.columns.tolist() == rows.columns.tolist() + reviewed
    assert all(back[c].isna().all() for c in reviewed)
    assert back["row_id"].tolist() == [120, 108, 101, 103]
    assert back["text"].tolist() == rows["text"].tolist()
    np.testing.assert_allclose(back["harm"], rows["harm"])


def test_errors(run, tmp_path):
    table, issues, content = run
    rows = review_rows(table, issues, content=content, class_names=NAMES)
    with pytest.raises(InvalidInputError, match=r"must end in one of \['.parquet', '.jsonl', '.csv'\]"):
        write_issue_file(rows, tmp_path / "issues.xlsx")
    with pytest.raises(InvalidTypeError, match="path must be a path"):
        write_issue_file(rows, 3)
    with pytest.raises(InvalidInputError, match="no content column"):
        label_studio_tasks(review_rows(table, issues, class_names=NAMES), NAMES)
    with pytest.raises(InvalidInputError, match="data_column 'nope' is not a column"):
        argilla_records(rows, NAMES, data_column="nope")
    with pytest.raises(InvalidInputError, match="content must have one row per input row: 40 rows expected, found 3"):
        review_rows(table, issues, content=content.iloc[:3])
    with pytest.raises(InvalidTypeError, match="content must be a pandas DataFrame"):
        review_rows(table, issues, content=[1, 2])
    with pytest.raises(InvalidInputError, match="content columns \\['action'\\] clash"):
        review_rows(table, issues, content=content.assign(action=1))
    with pytest.raises(InvalidInputError, match="issues must be find_data_issues' report"):
        review_rows(table, issues.table.iloc[:3])
    with pytest.raises(InvalidInputError, match="only 2 class names were given"):
        review_rows(table, issues, class_names=NAMES[:2])
    with pytest.raises(InvalidTypeError, match="decisions must be the decisions table"):
        review_rows(issues)
    with pytest.raises(InvalidInputError, match="order must be 'score' or 'harm'; found 'size'"):
        review_rows(table, issues, order="size")
    with pytest.raises(InvalidInputError, match="order='harm' needs the column 'harm_rank'"):
        review_rows(table, order="harm")
    with pytest.raises(InvalidInputError, match="no flag column"):
        review_rows(table[["row_id", "score"]])
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(InvalidInputError, match="must hold a JSON list of tasks"):
        read_label_studio_reviews(bad, NAMES)
    bad.write_text("not json")
    with pytest.raises(InvalidInputError, match="is not a readable JSON file"):
        read_label_studio_reviews(bad, NAMES)
    bad.write_text(json.dumps([{"data": {"text": "x"}}]))
    with pytest.raises(InvalidInputError, match="task 0 of .* has no data.row_id"):
        read_label_studio_reviews(bad, NAMES)
    bad.write_text(json.dumps([{"data": {"row_id": 7}, "annotations": [{"result": [
        {"from_name": "label", "type": "choices", "value": {"choices": ["wolf"]}}]}]}]))
    with pytest.raises(InvalidInputError, match="task 0 \\(row_id 7\\) was labelled 'wolf', which is not a class name"):
        read_label_studio_reviews(bad, NAMES)


def test_mlflow_missing_is_a_clear_error(monkeypatch, tmp_path):
    def no_mlflow(name):
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(issue_mlflow.importlib, "import_module", no_mlflow)
    with pytest.raises(MissingDependencyError, match="pip install mlflow"):
        issue_mlflow.log_run({"a": 1}, {"b": 2.0})
    with pytest.raises(InvalidInputError, match="do not exist"):
        issue_mlflow.log_run({}, {}, [tmp_path / "missing.parquet"])
    with pytest.raises(InvalidTypeError, match="params and metrics must be mappings"):
        issue_mlflow.log_run([], {})


def test_mlflow_logs_params_metrics_and_artifacts(monkeypatch, tmp_path):
    """A stand-in mlflow module records the calls (the real one is an optional extra)."""
    calls = []

    class Run:
        info = type("Info", (), {"run_id": "r1"})

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    class FakeMlflow:
        set_tracking_uri = staticmethod(lambda uri: calls.append(("uri", uri)))
        set_experiment = staticmethod(lambda name: calls.append(("experiment", name)))
        start_run = staticmethod(lambda run_name=None, tags=None: calls.append(("run", run_name, tags)) or Run())
        log_params = staticmethod(lambda p: calls.append(("params", p)))
        log_metrics = staticmethod(lambda m: calls.append(("metrics", m)))
        log_artifact = staticmethod(lambda p: calls.append(("artifact", p)))
        log_artifacts = staticmethod(lambda p, artifact_path=None: calls.append(("artifacts", artifact_path)))

    monkeypatch.setattr(issue_mlflow.importlib, "import_module", lambda name: FakeMlflow)
    f = tmp_path / "issues.parquet"
    f.write_bytes(b"x")
    (tmp_path / "report").mkdir()
    summary = {"types": {"outlier": {"n_issues": 4, "datalab_score": 0.5, "rarest": None}}, "ordered": True,
               "ids": [1, 2], "seconds": float("nan")}
    run_id = issue_mlflow.log_run({"action": "drop", "caps": {"a": 1}}, summary, [f, tmp_path / "report"],
                                  run_name="n", experiment="e", tracking_uri="file:/x")
    assert run_id == "r1"
    assert ("params", {"action": "drop", "caps": "{'a': 1}"}) in calls
    assert ("metrics", {"types.outlier.n_issues": 4.0, "types.outlier.datalab_score": 0.5, "ordered": 1.0}) in calls
    assert ("artifact", str(f)) in calls and ("artifacts", "report") in calls
    assert calls[:3] == [("uri", "file:/x"), ("experiment", "e"), ("run", "n", {})]

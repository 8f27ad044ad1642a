"""Review exports and the review import with empty suggestions (flagged rows with no confident other label):
an empty cell in CSV / Parquet / JSON lines, no prediction in Label Studio, no suggestion in Argilla."""

from __future__ import annotations

import os

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json  # noqa: E402

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from influence_stage.data.labels import encode_labels  # noqa: E402
from influence_stage.decisions import decide  # noqa: E402
from influence_stage.decisions.apply import apply_decisions  # noqa: E402
from influence_stage.issues.export import (  # noqa: E402
    argilla_records,
    label_studio_tasks,
    review_rows,
    write_issue_file,
    write_label_studio,
)
from influence_stage.issues.reviews import publish_reviews, read_reviews  # noqa: E402
from influence_stage.publish.manifest import labelled_manifest  # noqa: E402
from influence_stage.publish.read import load_published  # noqa: E402
from influence_stage.publish.versions import publish  # noqa: E402

NAMES = ["cat", "dog", "eel"]
N = 9
CONFIDENT, EMPTY = 0, 1  # the two flagged rows


@pytest.fixture(scope="module")
def run():
    y = np.arange(N) % 3
    proba = np.full((N, 3), 0.1)
    proba[np.arange(N), y] = 0.8
    proba[CONFIDENT] = [0.1, 0.8, 0.1]   # given cat: dog is confident -> relabeled
    proba[EMPTY] = [0.3, 0.4, 0.3]       # given dog: the best other label has 0.3 -> empty, dropped
    scores = np.r_[5.0, 6.0, np.linspace(0.1, 0.5, N - 2)]
    table = decide(scores, y, threshold=1.0, action="relabel", proba=proba, max_fraction_per_class=None).table
    assert table["action"].tolist()[:2] == ["relabel", "drop"] and pd.isna(table["suggested_label"][EMPTY])
    content = pd.DataFrame({"text": [f"sentence {i}" for i in range(N)]})
    rows = review_rows(table, content=content, class_names=NAMES)
    return table, y, rows


def test_review_rows_name_no_suggestion_for_an_empty_one(run):
    _, _, rows = run
    assert rows["row_id"].tolist() == [EMPTY, CONFIDENT]  # score order
    assert rows["suggested_label_name"].tolist() == [None, "dog"]
    assert pd.isna(rows["suggested_label"].iloc[0])


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_issue_files_write_an_empty_cell(run, tmp_path, suffix):
    _, _, rows = run
    path = write_issue_file(rows, tmp_path / f"issues{suffix}")
    if suffix == ".csv":
        back = pd.read_csv(path)
        assert path.read_text().splitlines()[1].split(",")[list(back.columns).index("suggested_label")] == ""
    elif suffix == ".parquet":
        back = pd.read_parquet(path)
    else:
        back = pd.DataFrame([json.loads(line) for line in path.read_text().splitlines()])
        assert json.loads(path.read_text().splitlines()[0])["suggested_label"] is None
    assert back["suggested_label"].isna().tolist() == [True, False]
    assert back["suggested_label_name"].isna().tolist() == [True, False]
    assert int(back["suggested_label"].iloc[1]) == 1


def test_label_studio_and_argilla_have_no_prediction_for_an_empty_suggestion(run, tmp_path):
    _, _, rows = run
    tasks = label_studio_tasks(rows, NAMES)
    assert tasks[0]["predictions"] == []
    assert tasks[1]["predictions"][0]["result"][0]["value"]["choices"] == ["dog"]
    written = json.loads(write_label_studio(rows, tmp_path / "ls", NAMES).read_text())
    assert written[0]["predictions"] == [] and written[0]["data"]["suggested_label"] is None
    records = argilla_records(rows, NAMES)
    assert records[0]["suggestions"] == []
    assert [s["value"] for s in records[1]["suggestions"]] == ["dog"]
    # a review file read back from CSV (NaN for the empty cells) gives the same tasks
    write_issue_file(rows, tmp_path / "issues.csv")
    again = pd.read_csv(tmp_path / "issues.csv")
    assert label_studio_tasks(again, NAMES)[0]["predictions"] == []


def test_a_reviewed_row_with_an_empty_suggestion_is_imported_and_published(run, tmp_path):
    table, y, rows = run
    ds = datasets.Dataset.from_dict({"text": [f"sentence {i}" for i in range(N)], "label": [NAMES[c] for c in y],
                                     "row_id": np.arange(N, dtype=np.int64)})
    source = tmp_path / "source.parquet"
    ds.to_pandas().drop(columns=["row_id"]).to_parquet(source, index=False)
    enc = encode_labels(ds, "label")
    out = apply_decisions(ds, table, label_column="label", encoding=enc)
    publish(out, labelled_manifest(table, enc), root=tmp_path / "pub", name="pets", classes=list(enc.values),
            class_names=list(enc.names), config={"clean": {"label_column": "label"}})
    # the reviewer labels the dropped row with no suggestion as eel in the exported CSV
    path = write_issue_file(rows, tmp_path / "issues.csv")
    frame = pd.read_csv(path)
    frame["reviewed_label"] = ["eel", ""]
    frame.to_csv(path, index=False)
    reviewed = read_reviews(path, NAMES)
    assert [str(r) for r in reviewed["row_id"]] == [str(EMPTY)] and reviewed["reviewed_label_name"].tolist() == ["eel"]
    pub = publish_reviews(path, tmp_path / "pub" / "pets", source=source)
    data, manifest, _ = load_published(pub.path)
    assert dict(zip(data["row_id"], data["label"]))[EMPTY] == "eel"
    assert pd.isna(manifest["suggested_label"][EMPTY])  # the stage's empty suggestion is kept as it was

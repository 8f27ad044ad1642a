"""The corpus gate's frames: the curated documents read without their texts, and the accounting join."""

from __future__ import annotations

import datasets
import numpy as np
import pandas as pd

from fixtures.manifests import corpus_manifest as _manifest
from influence_stage.data.corpus import content_hash
from influence_stage.quality.corpus import _accounting, document_frame, validate_corpus


def test_document_frame_reads_lengths_and_hashes_across_batches():
    texts = ["  a b  ", None, "xyz", "", "hello world"]
    ds = datasets.Dataset.from_dict({"row_id": [4, 7, 9, 11, 12], "text": texts})
    frame = document_frame(ds, "text", batch_size=2)  # three batches, the last one short
    assert frame["row_id"].tolist() == [4, 7, 9, 11, 12]
    assert frame["n_chars"].tolist()[:1] == [3.0] and np.isnan(frame["n_chars"][1])
    assert frame["n_chars"].tolist()[2:] == [3.0, 0.0, 11.0]
    assert frame["content_hash"].dtype != object  # Arrow-backed strings, not a Python object per document
    assert frame["content_hash"].isna().tolist() == [False, True, False, False, False]
    assert [frame["content_hash"][i] for i in (0, 2, 3, 4)] == [content_hash(texts[i]) for i in (0, 2, 3, 4)]


def test_document_frame_hashes_find_duplicates_in_the_gate():
    ds = datasets.Dataset.from_dict({"row_id": [0, 2, 4], "text": ["same", "other", "same"]})
    report = validate_corpus(document_frame(ds, "text"), _manifest(["kept", "junk", "kept", "junk", "kept"]),
                             n_input=5, n_scored=5, budget_fraction=0.6)
    failed = [r for r in report.results if not r["success"]]
    assert [r["key"] for r in failed] == ["no_exact_duplicates"]
    assert failed[0]["unexpected_values"] == [content_hash("same")] * 2


def test_accounting_labels_rows_outside_the_input():
    man = _manifest(["kept", "junk", "kept"])
    man.loc[2, "row_id"] = 9  # not an input row
    docs = pd.DataFrame({"row_id": np.array([0, 9, 5], dtype=np.int64), "n_chars": [1.0, 1.0, 1.0],
                         "content_hash": ["a", "b", "c"]})
    acc = _accounting(3, man, docs)
    assert acc["row_id"].tolist() == [0, 1, 2, 5, 9]
    assert acc["manifest_row_source"].tolist() == ["input", "input", None, None, "not an input row_id"]
    assert acc["output_row_source"].tolist() == ["input", None, None, "not an input row_id", "not an input row_id"]
    assert acc["manifest_count"].tolist()[:3] == [1, 1, 0] and acc["manifest_count"][3:].isna().all()
    assert acc["output_count"].tolist()[:2] == [1, 0] and acc["output_count"][2:].isna().all()
    assert acc["expected_output_count"].tolist()[:2] == [1, 0]


def test_gate_reports_every_batch_in_suite_order():
    man = _manifest(["kept", "redundant", "kept", "junk", "kept"])
    docs = pd.DataFrame({"row_id": np.array([0, 2, 4], dtype=np.int64), "n_chars": [10.0] * 3,
                         "content_hash": ["h0", "h2", "h4"]})
    report = validate_corpus(docs, man, n_input=5, n_scored=5, budget_fraction=0.6)
    assert report.success, report.failures()
    batches = [r["batch"] for r in report.results]
    assert list(dict.fromkeys(batches)) == ["documents", "manifest", "accounting", "budget"]
    assert list(report.ge_results) == ["documents", "manifest", "accounting", "budget"]
    man.loc[3, "row_id"] = 1  # row 1 twice, row 3 missing
    failed = {r["key"] for r in validate_corpus(docs, man, n_input=5, n_scored=5, budget_fraction=0.6).results
              if not r["success"]}
    assert failed == {"manifest_row_id_unique", "manifest_covers_input"}

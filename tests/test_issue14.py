"""Issue 14: nothing wrong published, nothing left behind.

Stale sources, silent column-role switches, label codes in manifests, writes into published
versions, bad configuration exit codes, late checks, publish debris.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from influence_stage.data import load_source
from influence_stage.exceptions import InvalidInputError
from influence_stage.pipeline import dataset_fingerprint


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
    from influence_stage.pipeline import CleanConfig, prepare

    source = _digits_csv(tmp_path, {(7, "px_2"): "?"})
    with pytest.raises(InvalidInputError, match=r"column 'px_2' is numeric except for 1 cell.*row 7.*'\?'.*coerce_numeric"):
        prepare(source, CleanConfig())
    source = _digits_csv(tmp_path, {(3, "px_1"): "abc", (5, "px_1"): "abc", (11, "px_1"): "abc"})
    with pytest.raises(InvalidInputError, match=r"column 'px_1' is numeric except for 3 cells.*rows? 3.*5.*11.*'abc'"):
        prepare(source, CleanConfig(feature_columns=("px_*",)))


def test_coerce_numeric_turns_the_stray_cells_into_nulls(tmp_path):
    from influence_stage.pipeline import CleanConfig, prepare
    from influence_stage.validation import validate_input

    source = _digits_csv(tmp_path, {(3, "px_1"): "abc", (5, "px_1"): "abc", (11, "px_1"): "abc"})
    prepared = prepare(source, CleanConfig(coerce_numeric=True))
    assert prepared.roles.kind == "tabular"
    assert prepared.roles.feature_columns == ("px_0", "px_1", "px_2", "px_3")
    column = prepared.dataset.to_pandas()["px_1"]
    assert column.dtype == np.float64
    assert column.isna().sum() == 3 and list(np.flatnonzero(column.isna())) == [3, 5, 11]
    report = validate_input(prepared.dataset, label_column="label", feature_columns=list(prepared.roles.feature_columns),
                            class_names=list(prepared.encoding.values))
    failures = report.failures()
    assert len(failures) == 1 and "px_1" in failures[0]  # the input suite sees the nulls, as for any null feature


def test_a_real_text_column_stays_text(tmp_path):
    from influence_stage.pipeline import CleanConfig, prepare

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
    from influence_stage.pipeline import CleanConfig, run_pipeline
    from influence_stage.publish import labelled_manifest, load_published, manifest_codes, publish
    from influence_stage.validation import validate_output

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
    assert set(back["suggested_label"]) <= set(labels)
    relabeled = back[back["action"] == "relabel"]
    by_id = data.set_index("row_id")["label"]
    assert by_id.loc[relabeled["row_id"]].tolist() == relabeled["suggested_label"].tolist()
    assert back["given_label"].dtype == data["label"].dtype
    codes = manifest_codes(back, meta)
    assert codes["given_label"].tolist() == table["given_label"].tolist()
    assert codes["suggested_label"].tolist() == table["suggested_label"].tolist()


def test_publishing_codes_as_labels_is_refused(tmp_path):
    import datasets

    from influence_stage.publish import publish

    ds = datasets.Dataset.from_dict({"x": [1.0, 2.0], "label": [5, 7], "row_id": [0, 1]})
    manifest = pd.DataFrame({"row_id": [0, 1], "given_label": [0, 1], "suggested_label": [0, 1]})
    with pytest.raises(InvalidInputError, match=r"manifest column 'given_label' holds \[0, 1\], not in the classes "
                       r"\[5, 7\].*labelled_manifest"):
        publish(ds, manifest, root=tmp_path, name="x", classes=[5, 7])
    assert not (tmp_path / "x").exists() or list((tmp_path / "x").iterdir()) == []

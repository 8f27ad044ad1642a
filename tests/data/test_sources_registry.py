"""Data sources are a registry: one class per kind of input, chosen by what claims the input, listed in errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import datasets

from influence_stage.data.sources import DATA_SOURCE_REGISTRY, DataSource, check_source, data_source, load_source
from influence_stage.errors import InvalidInputError, InvalidTypeError


def test_each_builtin_input_is_claimed_by_its_entry(tmp_path):
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "label": [0, 1, 0]})
    ds = datasets.Dataset.from_pandas(frame)
    frame.to_csv(tmp_path / "rows.csv", index=False)
    (tmp_path / "folder").mkdir()
    frame.to_parquet(tmp_path / "folder" / "part.parquet")
    ds.save_to_disk(str(tmp_path / "saved"))
    cases = {
        "dataset": ds, "dataset-dict": datasets.DatasetDict({"train": ds}), "dataframe": frame,
        "arrays": (np.zeros((3, 2)), np.array([0, 1, 0])), "file": str(tmp_path / "rows.csv"),
        "folder": tmp_path / "folder", "saved": str(tmp_path / "saved"), "hub": "user/name",
    }
    assert set(cases) == set(DATA_SOURCE_REGISTRY.names())
    for name, source in cases.items():
        assert data_source(source).name == name
    for name in ("dataset", "dataframe", "arrays", "file", "folder", "saved"):  # the same rows from each
        loaded = load_source(cases[name])
        assert loaded.num_rows == 3 and loaded["label"] == [0, 1, 0] and loaded["row_id"] == [0, 1, 2]


def test_the_hf_prefix_names_a_hub_dataset_even_when_it_looks_like_a_path():
    assert data_source("hf:user/name/with/slashes").name == "hub"
    assert data_source("./missing/file.csv") is None  # a path that names nothing: no source claims it
    with pytest.raises(InvalidInputError, match="could not reach the Hugging Face Hub to load 'user/name'"):
        load_source("hf:user/name")  # offline in tests: the prefix is stripped before the hub is asked


def test_an_unsupported_input_is_refused_listing_the_registered_forms():
    with pytest.raises(InvalidTypeError) as err:
        load_source(42)
    message = str(err.value)
    assert message.startswith("source of type int is not supported")
    for name, cls in DATA_SOURCE_REGISTRY.items():
        assert f"{cls.form} ({name!r})" in message


def test_check_source_runs_the_claiming_entry_checks_before_any_work(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(InvalidInputError, match="is empty"):
        check_source(str(empty))
    with pytest.raises(InvalidInputError, match="no file or folder at"):
        check_source(str(tmp_path / "nothing.parquet"))
    check_source("user/name")  # a hub id: nothing to check offline
    check_source(pd.DataFrame({"label": [0, 1]}))


def test_a_registered_source_is_used_and_can_be_removed():
    @DATA_SOURCE_REGISTRY.register("records")
    class Records(DataSource):
        help = "a list of dicts"
        form = "a list of dicts"

        @classmethod
        def claims(cls, source):
            return isinstance(source, list) and all(isinstance(r, dict) for r in source)

        def load(self, source, *, split, label_column, cache_dir):
            return datasets.Dataset.from_list(source)

    try:
        loaded = load_source([{"x": 1.0, "label": 0}, {"x": 2.0, "label": 1}])
        assert loaded["label"] == [0, 1] and loaded["row_id"] == [0, 1]
        # the estimators take it too (their input dispatch asks the registry for what it does not know)
        from influence_stage.api.inputs import check_input

        kind, ds, had_row_id = check_input([{"x": 1.0, "label": 0}, {"x": 2.0, "label": 1}], None, method="fit",
                                           label_column="label", split=None, estimator="InfluenceCleaner")
        assert kind == "dataset" and ds["x"] == [1.0, 2.0] and not had_row_id
        with pytest.raises(InvalidTypeError, match="a list of dicts \\('records'\\)"):
            load_source({1, 2})
    finally:
        DATA_SOURCE_REGISTRY.unregister("records")
    assert "records" not in DATA_SOURCE_REGISTRY


def test_a_data_source_must_implement_load():
    class NoLoad(DataSource):
        pass

    with pytest.raises(TypeError, match="abstract"):
        NoLoad()

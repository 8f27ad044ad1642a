"""Tests of influence_stage.quality: the input and output suites, reports, stored suite JSON, Data Docs."""

from __future__ import annotations

import json
import os
import re

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from influence_stage.data.labels import encode_labels
from influence_stage.decisions.apply import apply_decisions  # noqa: E402
from influence_stage.errors import InvalidInputError, InvalidTypeError, ValidationFailedError  # noqa: E402
from influence_stage.quality import (  # noqa: E402
    SUITE_VERSIONS,
    ValidationReport,
    build_input_suites,
    render_data_docs,
    stored_suite,
    suite_document,
    validate_input,
    validate_output,
    write_suite_files,
)

CLASSES = ["bird", "cat", "dog"]  # sorted: the string LabelEncoding's code order
N = 30
DROP, RELABEL, REWEIGHT = (3, 7), (4,), (5, 11)
FEATURES = ["x0", "x1", "n"]


def _input(label_kind: str = "string") -> datasets.Dataset:
    """30 rows, 10 per class; features x0, x1 (float) and n (int); row_id 100..129."""
    rng = np.random.default_rng(0)
    labels = [CLASSES[i % 3] for i in range(N)]
    data = {
        "x0": rng.normal(size=N).round(3),
        "x1": np.arange(N, dtype=np.float64),
        "n": np.arange(N, dtype=np.int64) % 4,
        "label": labels if label_kind == "string" else [CLASSES.index(v) for v in labels],
        "row_id": np.arange(100, 100 + N, dtype=np.int64),
    }
    label_feature = datasets.Value("string") if label_kind == "string" else datasets.ClassLabel(names=CLASSES)
    features = datasets.Features({"x0": datasets.Value("float64"), "x1": datasets.Value("float64"),
                                  "n": datasets.Value("int64"), "label": label_feature,
                                  "row_id": datasets.Value("int64")})
    return datasets.Dataset.from_dict(data, features=features)


def _manifest(ds: datasets.Dataset) -> pd.DataFrame:
    """Drop rows 3 and 7, relabel row 4 (to the next class), reweight rows 5 and 11 (0.25)."""
    codes = encode_labels(ds, "label").codes
    action = np.array(["keep"] * N, dtype=object)
    suggested = codes.copy()
    weight = np.ones(N)
    for i in DROP:
        action[i] = "drop"
    for i in RELABEL:
        action[i] = "relabel"
        suggested[i] = (codes[i] + 1) % 3
    for i in REWEIGHT:
        action[i] = "reweight"
        weight[i] = 0.25
    score = np.linspace(0.0, 1.0, N)
    return pd.DataFrame({
        "row_id": np.asarray(ds["row_id"]),
        "score": score,
        "gex_influence": 2 * score,
        "label_quality": 1 - score,
        "is_issue": action != "keep",
        "action": action,
        "given_label": codes,
        "suggested_label": suggested,
        "weight": weight,
    })


def _case(label_kind: str = "string") -> tuple[datasets.Dataset, pd.DataFrame, datasets.Dataset]:
    ds = _input(label_kind)
    manifest = _manifest(ds)
    out = apply_decisions(ds, manifest, label_column="label", encoding=encode_labels(ds, "label"))
    return ds, manifest, out


@pytest.fixture(scope="module")
def case() -> tuple[datasets.Dataset, pd.DataFrame, datasets.Dataset]:
    return _case("string")


def _failed(report: ValidationReport) -> set[str]:
    return {r["key"] for r in report.results if not r["success"]}


def _result(report: ValidationReport, key: str) -> dict:
    (r,) = [r for r in report.results if r["key"] == key and not r["success"]] or \
        [r for r in report.results if r["key"] == key][:1]
    return r


def _values(manifest: pd.DataFrame) -> pd.DataFrame:
    """A manifest of codes (what apply_decisions reads) as published: label values (CLASSES)."""
    classes = np.asarray(CLASSES, dtype=object)
    return manifest.assign(**{c: classes[manifest[c].to_numpy(dtype=np.int64)]
                              for c in ("given_label", "suggested_label")})


def _validate_out(out, ds, manifest, **kw) -> ValidationReport:
    kw.setdefault("max_drop_fraction", 0.2)
    if isinstance(manifest, pd.DataFrame) and "given_label" in manifest.columns:
        manifest = _values(manifest)
    return validate_output(out, ds, manifest, label_column="label", class_names=CLASSES, **kw)


def _set_column(ds: datasets.Dataset, column: str, values) -> datasets.Dataset:
    feature = ds.features[column]
    order = ds.column_names
    return ds.remove_columns(column).add_column(column, list(values), feature=feature).select_columns(order)


# --------------------------------------------------------------------------------------------------
# input suite
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("label_kind", ["string", "class_label"])
def test_input_suite_passes_on_good_data(label_kind):
    report = validate_input(_input(label_kind), label_column="label", feature_columns=FEATURES,
                            class_names=CLASSES)
    assert report.success, report.failures()
    assert report.failures() == []
    assert report.suite == "input" and report.suite_version == SUITE_VERSIONS["input"]
    # a passing gate: its first pass, one expectation over the check summary, and the checks it counted
    assert [r["key"] for r in report.results] == ["checks_pass"] and set(report.ge_results) == {"checks"}
    first = report.ge_results["checks"].results[0].expectation_config
    assert first.meta["runs_on"] == "check summary" and "summary" in first.notes
    keys = [c["key"] for c in report.checks]
    assert keys[:2] == ["label_column_present", "row_id_present"] and keys[-1] == "rows_per_class"  # suite order
    assert first.meta["checks"] == keys
    # label, row_id and features present, features finite: one each over the column summary, however
    # many feature columns; label x2, row_id x2 on the rows; one per-class check.
    assert len(keys) == 4 + 4 + 1 and all(c["unexpected"] == 0 for c in report.checks)
    assert keys.count("feature_column_present") == 1 and keys.count("feature_finite") == 1
    summary = build_input_suites(label_column="label")["columns"].expectations[0]
    assert summary.meta["per_column"] == "not found" and "summary" in summary.notes
    assert summary.meta["runs_on"] == "column summary" and "column summary" in summary.description
    built = build_input_suites(label_column="label")
    assert built["columns"].meta["runs_on"] == "column summary" and "runs_on" not in built["rows"].meta
    assert report.parameters["class_set"] == CLASSES
    assert report.raise_if_failed() is report


def test_input_suite_accepts_a_dataframe_and_integer_labels_with_string_names():
    df = _input("class_label").to_pandas()  # label: int codes 0..2
    # names as LabelEncoding gives them for integer labels: "0", "1", "2"
    report = validate_input(df, label_column="label", feature_columns=FEATURES, class_names=["0", "1", "2"])
    assert report.success, report.failures()
    report = validate_input(df, label_column="label", feature_columns=FEATURES, class_names=[0, 1])
    assert _failed(report) == {"label_in_class_set"}
    assert _result(report, "label_in_class_set")["unexpected_values"][0] == 2


def test_input_missing_label_column_fails_naming_it():
    ds = _input().remove_columns("label")
    report = validate_input(ds, label_column="label", feature_columns=FEATURES, class_names=CLASSES)
    assert not report.success
    assert {"label_column_present", "label_not_null", "label_in_class_set"} <= _failed(report)
    line = next(f for f in report.failures() if "label_column_present" in f)
    assert "column 'label' not found" in line
    # the per-value checks could not run: they say why
    assert "does not exist" in _result(report, "label_in_class_set")["error"]


def test_input_missing_feature_column_fails_naming_it():
    ds = _input().remove_columns("x1")
    report = validate_input(ds, label_column="label", feature_columns=FEATURES, class_names=CLASSES)
    assert _failed(report) == {"feature_column_present"}
    assert any("column 'x1' not found" in f for f in report.failures())


def test_input_null_label_fails_naming_column_and_row():
    df = _input().to_pandas()
    df.loc[6, "label"] = None
    report = validate_input(df, label_column="label", feature_columns=FEATURES, class_names=CLASSES)
    assert _failed(report) == {"label_not_null"}
    r = _result(report, "label_not_null")
    assert r["column"] == "label" and r["unexpected_count"] == 1
    assert [int(d["row_id"]) for d in r["unexpected_index"]] == [106]
    assert "column 'label'" in report.failures()[0]


def test_input_class_label_minus_one_counts_as_missing():
    ds = _set_column(_input("class_label"), "label", [-1] + [i % 3 for i in range(1, N)])
    report = validate_input(ds, label_column="label", feature_columns=FEATURES, class_names=CLASSES)
    assert _failed(report) == {"label_not_null"}


def test_input_label_outside_class_set_fails_naming_value_and_row():
    ds = _set_column(_input(), "label", ["fish"] + [CLASSES[i % 3] for i in range(1, N)])
    report = validate_input(ds, label_column="label", feature_columns=FEATURES, class_names=CLASSES)
    assert _failed(report) == {"label_in_class_set"}
    r = _result(report, "label_in_class_set")
    assert r["unexpected_values"] == ["fish"] and r["column"] == "label"
    assert "'fish'" in report.failures()[0] and "row_id" in report.failures()[0]


def test_input_class_with_one_row_fails_naming_the_class():
    labels = [CLASSES[i % 2] for i in range(N)]  # bird / cat only ...
    labels[5] = "dog"  # ... and one dog
    ds = _set_column(_input(), "label", labels)
    report = validate_input(ds, label_column="label", feature_columns=FEATURES, class_names=CLASSES)
    assert _failed(report) == {"rows_per_class"}
    r = _result(report, "rows_per_class")
    assert r["unexpected_values"] == [1]
    assert [d["class"] for d in r["unexpected_index"]] == ["dog"]
    assert "'dog'" in report.failures()[0]
    # min_rows_per_class=1 accepts it; 0 rows of a declared class fail at 1
    assert validate_input(ds, label_column="label", feature_columns=FEATURES, class_names=CLASSES,
                          min_rows_per_class=1).success
    ds2 = _set_column(_input(), "label", [CLASSES[i % 2] for i in range(N)])
    report2 = validate_input(ds2, label_column="label", feature_columns=FEATURES, class_names=CLASSES,
                             min_rows_per_class=1)
    assert [d["class"] for d in _result(report2, "rows_per_class")["unexpected_index"]] == ["dog"]


def test_input_duplicated_row_id_fails():
    ids = np.arange(100, 100 + N)
    ids[9] = 102
    ds = _set_column(_input(), "row_id", ids)
    report = validate_input(ds, label_column="label", feature_columns=FEATURES, class_names=CLASSES)
    assert _failed(report) == {"row_id_unique"}
    r = _result(report, "row_id_unique")
    assert r["column"] == "row_id" and r["unexpected_count"] == 2 and set(r["unexpected_values"]) == {102}


def test_input_nan_or_null_in_numeric_features_passes_but_null_label_or_row_id_fails():
    # missing feature cells are the null issue type, reported downstream, not a reason to refuse the data
    df = _input().to_pandas()
    df.loc[3, "x0"] = np.nan
    df["n"] = df["n"].astype("Int64")
    df.loc[[4, 8], "n"] = pd.NA
    report = validate_input(df, label_column="label", feature_columns=FEATURES, class_names=CLASSES)
    assert report.success, report.failures()
    ds = datasets.Dataset.from_pandas(df, preserve_index=False)
    assert ds.features["n"].dtype == "int64" and ds["n"][4] is None
    assert validate_input(ds, label_column="label", feature_columns=FEATURES, class_names=CLASSES).success
    df.loc[6, "label"] = None
    df.loc[9, "row_id"] = None
    report = validate_input(df, label_column="label", feature_columns=FEATURES, class_names=CLASSES)
    assert _failed(report) == {"label_not_null", "row_id_not_null"}
    assert [d["row_id"] for d in _result(report, "label_not_null")["unexpected_index"]] == [106]


def test_input_argument_errors():
    ds = _input()
    with pytest.raises(InvalidTypeError, match="datasets.Dataset or a pandas DataFrame"):
        validate_input([1, 2], label_column="label", feature_columns=FEATURES, class_names=CLASSES)
    with pytest.raises(InvalidInputError, match="class_names is empty"):
        validate_input(ds, label_column="label", feature_columns=FEATURES, class_names=[])
    with pytest.raises(InvalidInputError, match="more than once"):
        validate_input(ds, label_column="label", feature_columns=FEATURES, class_names=["a", "a"])
    with pytest.raises(InvalidInputError, match="min_rows_per_class"):
        validate_input(ds, label_column="label", feature_columns=FEATURES, class_names=CLASSES, min_rows_per_class=-1)


# --------------------------------------------------------------------------------------------------
# output suite
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("label_kind", ["string", "class_label"])
def test_output_suite_passes_on_a_correct_drop_relabel_reweight_output(label_kind):
    ds, manifest, out = _case(label_kind)
    assert out.num_rows == N - len(DROP) and "weight" in out.column_names
    report = _validate_out(out, ds, manifest)
    assert report.success, report.failures()
    assert report.parameters["expected_columns"] == [*ds.column_names, "weight"]
    assert len(report.checks) == 23 and [r["key"] for r in report.results] == ["checks_pass"]
    drop = next(c for c in report.checks if c["key"] == "drop_fraction")
    assert drop["unexpected"] == 0 and drop["observed_value"] == pytest.approx(len(DROP) / N)


def test_output_without_weight_column_passes(case):
    ds, manifest, _ = case
    m = manifest.copy()
    m.loc[m["action"] == "reweight", "action"] = "keep"
    m["weight"] = 1.0
    out = apply_decisions(ds, m, label_column="label", encoding=encode_labels(ds, "label"))
    assert "weight" not in out.column_names
    report = _validate_out(out, ds, m)
    assert report.success, report.failures()


@pytest.mark.parametrize("bad_weight", [0.0, 1.5])
def test_output_weight_out_of_range_fails(case, bad_weight):
    ds, manifest, out = case
    weights = list(out["weight"])
    weights[0] = bad_weight
    report = _validate_out(_set_column(out, "weight", weights), ds, manifest)
    # the range check, and the output no longer agreeing with the manifest's weight (1.0)
    assert _failed(report) == {"weight_in_range", "weights_match_manifest"}
    r = _result(report, "weight_in_range")
    assert r["column"] == "weight" and r["unexpected_values"] == [bad_weight]
    assert int(r["unexpected_index"][0]["row_id"]) == 100


def test_output_unknown_label_fails(case):
    ds, manifest, out = case
    labels = list(out["label"])
    labels[1] = "fish"
    report = _validate_out(_set_column(out, "label", labels), ds, manifest)
    assert _failed(report) == {"label_in_class_set", "labels_match_manifest"}
    assert _result(report, "label_in_class_set")["unexpected_values"] == ["fish"]
    assert any("'fish'" in f and "column 'label'" in f for f in report.failures())


def test_output_relabel_not_applied_fails(case):
    ds, manifest, out = case
    report = _validate_out(out, ds, manifest.assign(suggested_label=manifest["given_label"]))
    assert _failed(report) == {"labels_match_manifest"}
    assert [int(d["row_id"]) for d in _result(report, "labels_match_manifest")["unexpected_index"]] == [104]


def test_output_missing_column_fails_naming_it(case):
    ds, manifest, out = case
    report = _validate_out(out.remove_columns("x1"), ds, manifest)
    assert _failed(report) == {"schema_preserved"}
    line = report.failures()[0]
    assert "missing column(s) ['x1']" in line and "out of order" not in line
    r = _result(report, "schema_preserved")
    assert r["unexpected_count"] == 1 and r["unexpected_index"][0]["column"] == "x1"


def test_output_extra_or_moved_column_fails_naming_it(case):
    ds, manifest, out = case
    extra = out.add_column("w2", [1.0] * out.num_rows)
    report = _validate_out(extra, ds, manifest)
    assert _failed(report) == {"schema_preserved"}
    assert "unexpected column(s) ['w2']" in report.failures()[0]
    moved = out.select_columns(["x1", "x0", "n", "label", "row_id", "weight"])
    report = _validate_out(moved, ds, manifest)
    assert _failed(report) == {"schema_preserved"}
    assert "columns out of order ['x0', 'x1']" in report.failures()[0]
    assert _result(report, "schema_preserved")["unexpected_count"] == 2


def test_output_changed_feature_type_fails(case):
    ds, manifest, out = case
    out2 = out.cast_column("n", datasets.Value("float64"))
    report = _validate_out(out2, ds, manifest)
    assert _failed(report) == {"feature_types_preserved"}
    assert _result(report, "feature_types_preserved")["unexpected_index"][0]["column"] == "n"


def test_output_row_id_not_in_input_fails(case):
    ds, manifest, out = case
    ids = list(out["row_id"])
    ids[0] = 999
    report = _validate_out(_set_column(out, "row_id", ids), ds, manifest)
    # 999 is not an input row, and row 100 (kept) is now missing from the output
    assert _failed(report) == {"output_rows_from_input", "output_matches_manifest"}
    assert [int(d["row_id"]) for d in _result(report, "output_rows_from_input")["unexpected_index"]] == [999]
    assert [int(d["row_id"]) for d in _result(report, "output_matches_manifest")["unexpected_index"]] == [100]


def test_output_duplicated_row_id_fails(case):
    ds, manifest, out = case
    dup = datasets.concatenate_datasets([out, out.select([2])])
    report = _validate_out(dup, ds, manifest)
    assert _failed(report) == {"row_id_unique", "output_matches_manifest"}
    r = _result(report, "row_id_unique")
    assert r["unexpected_count"] == 2 and set(r["unexpected_values"]) == {102}


def test_output_too_many_dropped_fails(case):
    ds, manifest, out = case
    report = _validate_out(out, ds, manifest, max_drop_fraction=0.05)
    assert _failed(report) == {"drop_fraction"}
    r = _result(report, "drop_fraction")
    assert r["observed_value"] == pytest.approx(2 / 30)
    assert "max_value': 0.05" in report.failures()[0]
    assert _validate_out(out, ds, manifest, max_drop_fraction=2 / 30).success


def test_output_manifest_missing_an_input_row_fails(case):
    ds, manifest, out = case
    report = _validate_out(out, ds, manifest.drop(index=8))
    assert _failed(report) == {"manifest_covers_input"}
    r = _result(report, "manifest_covers_input")
    assert r["unexpected_values"] == [0] and [int(d["row_id"]) for d in r["unexpected_index"]] == [108]


def test_a_passing_batch_is_checked_for_success_alone_and_a_failing_one_again_with_its_details(case):
    ds, manifest, out = case
    report = _validate_out(out, ds, manifest.drop(index=8))
    by_batch = {b: r.results for b, r in report.ge_results.items()}
    assert all(not r.result for r in by_batch["rows"])  # passed: GE's BOOLEAN_ONLY result, no details
    assert all(r.result for r in by_batch["accounting"])  # failed: validated again with its details
    passing = next(r for r in report.results if r["key"] == "output_rows_from_input")
    assert passing["success"] and passing["unexpected_count"] == 0
    assert _result(report, "drop_fraction")["observed_value"] == pytest.approx(len(DROP) / N)  # an aggregate


def test_output_manifest_with_an_extra_or_duplicated_row_fails(case):
    ds, manifest, out = case
    extra = pd.concat([manifest, manifest.iloc[[0]].assign(row_id=555)], ignore_index=True)
    assert _failed(_validate_out(out, ds, extra)) == {"manifest_rows_from_input"}
    dup = pd.concat([manifest, manifest.iloc[[0]]], ignore_index=True)
    assert _failed(_validate_out(out, ds, dup)) == {"manifest_row_id_unique", "manifest_covers_input"}


def test_output_manifest_accounting_disagrees_with_output_fails(case):
    ds, manifest, out = case
    m = manifest.copy()
    m.loc[0, "action"] = "drop"  # row 100 is still in the output
    report = _validate_out(out, ds, m)
    assert _failed(report) == {"output_matches_manifest"}
    assert _result(report, "output_matches_manifest")["unexpected_values"] == [[1, 0]]


def test_output_argument_errors(case):
    ds, manifest, out = case
    with pytest.raises(InvalidInputError, match="max_drop_fraction"):
        _validate_out(out, ds, manifest, max_drop_fraction=1.5)
    with pytest.raises(InvalidTypeError, match="manifest must be a pandas DataFrame"):
        _validate_out(out, ds, manifest.to_dict())


# --------------------------------------------------------------------------------------------------
# reports
# --------------------------------------------------------------------------------------------------


def test_raise_if_failed_lists_each_failed_expectation(case):
    ds, manifest, out = case
    weights = list(out["weight"])
    weights[0] = 0.0
    bad = _set_column(out, "weight", weights).remove_columns("x1")
    report = _validate_out(bad, ds, manifest.drop(index=8), max_drop_fraction=0.01)
    expected = {"schema_preserved", "weight_in_range", "weights_match_manifest", "manifest_covers_input",
                "drop_fraction"}
    assert _failed(report) == expected
    failed_five = rf"suite 'output' \(version {SUITE_VERSIONS['output']}\) failed 5 of \d+"
    with pytest.raises(ValidationFailedError, match=failed_five) as info:
        report.raise_if_failed()
    message = str(info.value)
    for key in expected:
        assert f": {key} (" in message
    assert len(report.failures()) == 5
    assert all(f"  - {line}" in message for line in report.failures())


def test_to_json_holds_ge_results_per_batch(case):
    ds, manifest, out = case
    report = _validate_out(out, ds, manifest.drop(index=8))
    data = json.loads(report.to_json())
    assert data["suite"] == "output" and data["success"] is False and data["suite_version"] == SUITE_VERSIONS["output"]
    assert set(data["batches"]) == {"columns", "rows", "manifest", "accounting", "drop"}
    acc = data["batches"]["accounting"]
    assert acc["suite_name"] == "output.accounting" and acc["success"] is False
    failed = [r for r in acc["results"] if not r["success"]]
    assert [r["expectation_config"]["type"] for r in failed] == ["expect_column_values_to_be_in_set"]
    assert data["parameters"]["max_drop_fraction"] == 0.2
    assert data["failures"] == report.failures()
    n_results = sum(len(b["results"]) for b in data["batches"].values())
    assert n_results == len(report.results)


def test_render_data_docs_writes_pages(tmp_path, case):
    ds, manifest, out = case
    report = _validate_out(out, ds, manifest, max_drop_fraction=0.01)
    index = render_data_docs(report, tmp_path / "docs")
    assert index == tmp_path / "docs" / "output.html"
    pages = sorted(p.name for p in (tmp_path / "docs").iterdir())
    assert pages == sorted(["output.html"] + [f"output.{b}.html" for b in report.ge_results])
    text = index.read_text()
    assert "FAILED" in text and "drop_fraction" in text and 'href="output.accounting.html"' in text
    batch_page = (tmp_path / "docs" / "output.accounting.html").read_text()
    assert "output.accounting" in batch_page and "Great Expectations" in batch_page


def _links(page: str) -> list[tuple[str, str, str]]:
    """``(tag, attribute, target)`` of every ``href`` / ``src`` on a page."""
    return re.findall(r"""<(\w+)\b[^>]*?\b(href|src)=["']([^"']*)["']""", page, flags=re.S)


def test_data_docs_load_nothing_from_outside_and_link_only_to_files_that_exist(tmp_path, case):
    ds, manifest, out = case
    report = _validate_out(out, ds, manifest, max_drop_fraction=0.01)
    render_data_docs(report, tmp_path / "docs")
    pages = sorted((tmp_path / "docs").iterdir())
    assert len(pages) == 1 + len(report.ge_results) == 6
    n_checked = 0
    for page in pages:
        text = page.read_text(encoding="utf-8")
        ids = set(re.findall(r"""\bid=["']?([^"'\s>]+)""", text))
        for tag, attr, target in _links(text):
            if re.match(r"(https?:)?//", target):
                # an outside address is only ever a link to follow, never a stylesheet, script or image
                assert tag == "a", (page.name, tag, target)
                continue
            path, _, fragment = target.partition("#")
            if path:
                assert (page.parent / path).is_file(), (page.name, target)
            else:
                assert fragment in ids, (page.name, target)
            n_checked += 1
        # what GE's template needs jQuery or a site for is gone; the buttons still work
        assert "jquery" not in text.lower() and "cdn" not in text.lower() and "../" not in text
        if page.name != "output.html":
            assert 'href="output.html"' in text and "function hideSucceededValidations" in text
    assert n_checked >= 40


# --------------------------------------------------------------------------------------------------
# stored suites
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suite", ["input", "output"])
def test_stored_suite_json_equals_what_the_code_builds(suite):
    stored = stored_suite(suite)
    assert stored["version"] == SUITE_VERSIONS[suite]
    assert stored == json.loads(json.dumps(suite_document(suite))), (
        f"influence_stage/suites/{suite}.json is stale: run write_suite_files() and bump SUITE_VERSIONS"
    )
    # loadable by Great Expectations itself
    import great_expectations as gx

    for batch, doc in stored["batches"].items():
        ge_suite = gx.ExpectationSuite(**doc)
        assert ge_suite.name == f"{suite}.{batch}"
        assert len(ge_suite.expectations) == len(doc["expectations"]) > 0


def test_write_suite_files_refuses_a_change_without_a_version_bump(tmp_path):
    written = write_suite_files(tmp_path)
    assert sorted(p.name for p in written) == ["input.json", "output.json"]
    assert json.loads((tmp_path / "output.json").read_text()) == stored_suite("output")
    doc = json.loads((tmp_path / "input.json").read_text())
    doc["batches"]["rows"]["expectations"].pop()
    (tmp_path / "input.json").write_text(json.dumps(doc))
    stale = rf"suite 'input' changed but its version is still {SUITE_VERSIONS['input']}"
    with pytest.raises(InvalidInputError, match=stale):
        write_suite_files(tmp_path)


def test_output_manifest_missing_a_column_fails_naming_it(case):
    ds, manifest, out = case
    report = _validate_out(out, ds, manifest.drop(columns=["label_quality"]))
    assert "manifest_columns_present" in _failed(report)
    line = next(f for f in report.failures() if "manifest_columns_present" in f)
    assert "missing column(s) ['label_quality']" in line


def test_a_published_version_links_only_to_files_it_holds(tmp_path, case):
    """The published folder as a whole: its report and its validation/ pages need nothing from outside."""
    from influence_stage.publish.versions import publish
    from influence_stage.report import build_report

    ds, manifest, out = case
    report = _validate_out(out, ds, manifest, max_drop_fraction=0.5)
    page = build_report(manifest, class_names=CLASSES, threshold=0.5, summary={"issue types": {"outlier": 2}})
    pub = publish(out, _values(manifest), root=tmp_path, name="q", validation_reports=[report], report_html=page)
    pages = sorted(pub.path.rglob("*.html"))
    assert [p.relative_to(pub.path).as_posix() for p in pages] == sorted(
        ["report.html", "validation/output.html"] + [f"validation/output.{b}.html" for b in report.ge_results])
    for page_path in pages:
        text = page_path.read_text(encoding="utf-8")
        ids = set(re.findall(r"""\bid=["']?([^"'\s>]+)""", text))
        for tag, _, target in _links(text):
            if target.startswith("data:image/png;base64,") or (re.match(r"https?://", target) and tag == "a"):
                continue
            assert not re.match(r"(https?:)?//", target), (page_path.name, tag, target)
            path, _, fragment = target.partition("#")
            assert (page_path.parent / path).is_file() if path else fragment in ids, (page_path.name, target)

"""Wide tables through loading, column roles and both gates: one expectation per property whatever the width,
and every property still fails on a planted violation, naming the column."""

from __future__ import annotations

import os

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from influence_stage.data.columns import check_numeric_columns, resolve_columns  # noqa: E402
from influence_stage.data.labels import encode_labels  # noqa: E402
from influence_stage.data.sources import load_source  # noqa: E402
from influence_stage.decisions.apply import apply_decisions  # noqa: E402
from influence_stage.errors import InvalidInputError  # noqa: E402
from influence_stage.quality import validate_input, validate_output  # noqa: E402
from influence_stage.quality.summaries import (  # noqa: E402
    infinite_values,
    missing_values,
    numeric_columns,
    output_column_summary,
    type_names,
)

N, D = 40, 300
NAMES = [f"px{j}" for j in range(D)]


def _wide(d: int = D) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.random((N, d)).astype(np.float32), columns=NAMES[:d])
    return df.assign(label=np.arange(N) % 4)


def _failed(report) -> set[str]:
    return {r["key"] for r in report.results if not r["success"]}


def _result(report, key):
    return next(r for r in report.results if r["key"] == key)


def _check_in(ds, **kw):
    return validate_input(ds, label_column="label", feature_columns=kw.pop("features", NAMES),
                          class_names=[0, 1, 2, 3], **kw)


def _output(ds):
    codes = encode_labels(ds, "label").codes
    action = np.array(["keep"] * N, dtype=object)
    action[[3, 9]] = "drop"
    manifest = pd.DataFrame({"row_id": np.arange(N), "score": np.linspace(0, 1, N), "gex_influence": np.zeros(N),
                             "label_quality": np.ones(N), "is_issue": action != "keep", "action": action,
                             "given_label": codes, "suggested_label": codes, "weight": np.ones(N)})
    out = apply_decisions(ds, manifest, label_column="label", encoding=encode_labels(ds, "label"))
    published = manifest.assign(given_label=codes, suggested_label=codes)  # int labels: values == codes
    return out, published


def _check_out(out, ds, manifest):
    return validate_output(out, ds, manifest, label_column="label", class_names=[0, 1, 2, 3], max_drop_fraction=0.2)


def test_a_wide_table_loads_and_resolves_with_its_columns_in_order():
    ds = load_source(_wide())
    assert ds.column_names == [*NAMES, "label", "row_id"]
    assert ds.features["row_id"].id == "influence_stage:added" and ds["row_id"] == list(range(N))
    roles = resolve_columns(ds, "label")
    assert roles.kind == "tabular" and roles.feature_columns == tuple(NAMES)
    assert resolve_columns(ds, "label", ["px1*"]).feature_columns == tuple(c for c in NAMES if c.startswith("px1"))
    arrays = load_source((_wide().drop(columns="label").to_numpy(), np.arange(N) % 4))
    assert arrays.column_names == [f"x{j}" for j in range(D)] + ["label", "row_id"]
    assert np.array_equal(np.asarray(arrays["x7"], dtype=np.float32), _wide()["px7"].to_numpy())


def test_gates_pass_on_a_wide_table_with_as_many_expectations_as_a_narrow_one():
    ds = load_source(_wide())
    narrow = load_source(_wide(3))
    wide_in, narrow_in = _check_in(ds), _check_in(narrow, features=NAMES[:3])
    assert wide_in.success and narrow_in.success, wide_in.failures()
    assert len(wide_in.checks) == len(narrow_in.checks) == 9  # counted on the check summary
    assert len(wide_in.results) == len(narrow_in.results) == 1  # the first pass: one expectation
    out, manifest = _output(ds)
    report = _check_out(out, ds, manifest)
    assert report.success, report.failures()
    narrow_out, narrow_manifest = _output(narrow)
    assert len(report.checks) == len(_check_out(narrow_out, narrow, narrow_manifest).checks) == 23


def test_nans_in_many_feature_columns_pass_the_input_gate():
    # null / NaN feature cells are the null issue type, found downstream; the gate refuses nothing for them
    df = _wide()
    df.loc[[5, 17], "px217"] = np.nan
    df.loc[:, "px299"] = np.nan
    report = _check_in(load_source(df))
    assert report.success, report.failures()


def test_a_missing_feature_column_among_many_fails_naming_it():
    ds = load_source(_wide().drop(columns=["px42", "px250"]))
    report = _check_in(ds)
    assert _failed(report) == {"feature_column_present"}
    assert "column 'px42' not found; column 'px250' not found" in report.failures()[0]


def test_an_out_of_range_label_in_a_wide_table_fails_naming_value_and_row():
    df = _wide()
    df.loc[11, "label"] = 9
    report = _check_in(load_source(df))
    assert _failed(report) == {"label_in_class_set"}
    r = _result(report, "label_in_class_set")
    assert r["unexpected_values"] == [9] and [int(d["row_id"]) for d in r["unexpected_index"]] == [11]


def test_a_wrong_type_in_a_wide_table_is_refused_or_fails_the_output_gate():
    df = _wide()
    df["px123"] = df["px123"].astype(str)  # a CSV column read as text because of one stray cell
    df.loc[7, "px123"] = "?"
    ds = load_source(df)
    with pytest.raises(InvalidInputError, match=r"column 'px123' is numeric except for 1 cell.*row 7"):
        check_numeric_columns(ds, "label")
    clean = load_source(_wide())
    out, manifest = _output(clean)
    report = _check_out(out.cast_column("px100", datasets.Value("float64")), clean, manifest)
    assert _failed(report) == {"feature_types_preserved"}
    assert [d["column"] for d in _result(report, "feature_types_preserved")["unexpected_index"]] == ["px100"]


def test_a_missing_extra_or_moved_output_column_fails_naming_it():
    clean = load_source(_wide())
    out, manifest = _output(clean)
    report = _check_out(out.remove_columns("px200"), clean, manifest)
    assert _failed(report) == {"schema_preserved"} and "missing column(s) ['px200']" in report.failures()[0]
    order = list(out.column_names)
    order[10], order[11] = order[11], order[10]
    report = _check_out(out.select_columns(order), clean, manifest)
    assert _failed(report) == {"schema_preserved"} and "columns out of order ['px10', 'px11']" in report.failures()[0]


def test_column_summaries_equal_a_per_column_loop():
    df = _wide()
    df.loc[[2, 30], "px3"] = np.nan
    df.loc[39, "px299"] = np.nan
    df["txt"] = "a"
    ds = load_source(df)
    assert numeric_columns(ds, [*NAMES, "txt", "label"]) == [*NAMES, "label"]
    assert numeric_columns(df, [*NAMES, "txt"]) == NAMES
    counts, first = missing_values(ds, NAMES)
    loop = [int(df[c].isna().sum()) for c in NAMES]
    firsts = [int(np.flatnonzero(df[c].isna())[0]) if df[c].isna().any() else None for c in NAMES]
    assert counts.tolist() == loop and list(first) == firsts


def test_an_infinite_value_in_column_700_of_784_fails_naming_column_and_row():
    names = [f"px{j}" for j in range(784)]
    df = pd.DataFrame(np.random.default_rng(1).random((N, 784)).astype(np.float32), columns=names)
    df["label"] = np.arange(N) % 4
    df.loc[[9, 21], "px700"] = np.inf
    df.loc[3, "px5"] = np.nan  # a missing cell beside it: the null issue type, not a gate failure
    report = _check_in(load_source(df), features=names)
    assert _failed(report) == {"feature_finite"}
    r = _result(report, "feature_finite")
    assert r["unexpected_count"] == 1 and r["meta"]["runs_on"] == "column summary"
    assert "column 'px700' has 2 infinite value(s), the first at row_id 9" in report.failures()[0]
    df.loc[[9, 21], "px700"] = 0.5
    assert _check_in(load_source(df), features=names).success


def test_an_infinite_value_inside_an_embedding_column_fails_naming_it():
    emb = np.random.default_rng(2).random((N, 16)).astype(np.float32)
    emb[13, 7] = -np.inf
    features = datasets.Features({"emb": datasets.Sequence(datasets.Value("float32")),
                                  "label": datasets.Value("int64")})
    ds = load_source(datasets.Dataset.from_dict({"emb": list(emb), "label": np.arange(N) % 4}, features=features))
    report = _check_in(ds, features=["emb"])
    assert _failed(report) == {"feature_finite"}
    assert "column 'emb' has 1 infinite value(s), the first at row_id 13" in report.failures()[0]


def test_infinite_values_equal_a_per_column_loop():
    df = _wide()
    df.loc[[2, 30], "px3"] = np.inf
    df.loc[39, "px299"] = -np.inf
    df.loc[5, "px299"] = np.nan
    df["n"] = np.arange(N)  # integers hold no infinite value: counted 0
    ds = load_source(df)
    counts, first = infinite_values(ds, [*NAMES, "n"])
    loop = [int(np.isinf(df[c].to_numpy(dtype=float)).sum()) for c in [*NAMES, "n"]]
    firsts = [int(np.flatnonzero(np.isinf(df[c].to_numpy(dtype=float)))[0]) if n else None
              for c, n in zip([*NAMES, "n"], loop)]
    assert counts.tolist() == loop and list(first) == firsts
    frame_counts, _ = infinite_values(df.assign(px3=df["px3"].astype("Float64")), NAMES)
    assert frame_counts.tolist() == loop[:-1]


def test_output_column_summary_equals_a_per_column_loop():
    ds = load_source(_wide())
    order = [c for c in ds.column_names if c != "px7"]
    order[3], order[20] = order[20], order[3]
    out = ds.select_columns(order).add_column("extra", list(range(N))).cast_column("px9", datasets.Value("float64"))
    expected = list(ds.column_names)
    summary = output_column_summary(ds, out, expected)
    found = list(out.column_names)
    names = expected + [c for c in found if c not in expected]
    common_e, common_f = [c for c in expected if c in found], [c for c in found if c in expected]
    rank_e = [common_e.index(c) if c in common_e else -1 if c in expected else None for c in names]
    rank_f = [common_f.index(c) if c in common_f else -1 if c in found else None for c in names]
    in_types, out_types = type_names(ds), type_names(out)
    assert summary["column"].tolist() == names
    assert summary["expected_rank"].tolist() == rank_e and summary["output_rank"].tolist() == rank_f
    assert summary["input_feature"].tolist() == [in_types.get(c) for c in names]
    assert summary["output_feature"].tolist() == [out_types.get(c) if c in in_types else None for c in names]
    assert summary.loc[summary["column"] == "px9", "output_feature"].item() != in_types["px9"]

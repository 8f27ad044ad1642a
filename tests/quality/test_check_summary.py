"""The gates' first pass (influence_stage.quality.checks): the check summary counts what Great Expectations flags,
a passing one stands for the batches, and anything it cannot count sends the gate to its batches."""

from __future__ import annotations

import logging
import os

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import influence_stage.quality.gate as gate  # noqa: E402
from influence_stage.data.labels import encode_labels  # noqa: E402
from influence_stage.data.sources import load_source  # noqa: E402
from influence_stage.decisions.apply import apply_decisions  # noqa: E402
from influence_stage.quality import build_input_suites, build_output_suites, render_data_docs  # noqa: E402
from influence_stage.quality.checks import check_summary, compile_checks  # noqa: E402
from influence_stage.quality.runner import validate_batches  # noqa: E402
from influence_stage.quality.suites import gx_modules, make_suite, with_check_summary  # noqa: E402

N = 24
CLASSES = [0, 1, 2]


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.random(N), "b": rng.random(N).astype(np.float32), "label": np.arange(N) % 3})


def _manifest(ds) -> pd.DataFrame:
    codes = encode_labels(ds, "label").codes
    action = np.array(["keep"] * N, dtype=object)
    action[[2, 9]] = "drop"
    action[4] = "reweight"
    weight = np.where(action == "reweight", 0.5, 1.0)
    return pd.DataFrame({"row_id": np.arange(N), "score": np.linspace(0, 1, N), "gex_influence": np.zeros(N),
                         "label_quality": np.linspace(1, 0, N), "is_issue": action != "keep", "action": action,
                         "given_label": codes, "suggested_label": codes, "weight": weight})


def _parts():
    ds = load_source(_frame())
    manifest = _manifest(ds)
    out = apply_decisions(ds, manifest, label_column="label", encoding=encode_labels(ds, "label"))
    return ds, manifest, out


def _spy(monkeypatch) -> list[tuple]:
    """Record each gate's (suite, suites, batches, parameters, checks) as the gate hands them to run_suite."""
    seen = []

    def recording(suite, suites, batches, parameters, columns_used, checks=None):
        seen.append((suite, suites, batches, parameters, checks))
        return real(suite, suites, batches, parameters, columns_used, checks)

    real = gate.run_suite
    monkeypatch.setattr(gate, "run_suite", recording)
    return seen


def _input(df, features=("a", "b")):
    return gate.validate_input(df, label_column="label", feature_columns=list(features), class_names=CLASSES,
                               min_rows_per_class=3)


def _output(out, ds, manifest, limit=0.2):
    return gate.validate_output(out, ds, manifest, label_column="label", class_names=CLASSES,
                                max_drop_fraction=limit)


def _with_row(df, **cells):
    return pd.concat([df, pd.DataFrame([cells])], ignore_index=True)


def _input_cases():
    df = _frame().assign(row_id=np.arange(N))
    inf = df.copy()
    inf.loc[5, "b"] = np.inf
    outside = df.copy()
    outside.loc[3, "label"] = 7
    few = df[df["label"] != 2].pipe(_with_row, a=0.1, b=0.2, label=2, row_id=50)
    return {
        "good": (load_source(df.drop(columns="row_id")), ("a", "b")),
        "missing feature": (df, ("a", "b", "c")),
        "infinite value": (inf, ("a", "b")),
        "label outside the set": (outside, ("a", "b")),
        "null label": (df.assign(label=df["label"].astype(float).where(df.index != 6)), ("a", "b")),
        "repeated row_id": (df.assign(row_id=np.r_[np.arange(N - 1), 0]), ("a", "b")),
        "too few rows in a class": (few, ("a", "b")),
    }


def _output_cases():
    ds, manifest, out = _parts()
    weights = list(out["weight"])
    weights[0] = 0.0
    bad_weight = out.remove_columns("weight").add_column("weight", weights)
    relabel = manifest.copy()
    relabel.loc[0, "suggested_label"] = 5
    relabel.loc[0, "action"] = "relabel"
    return {
        "good": (out, ds, manifest, 0.2),
        "weight 0": (bad_weight, ds, manifest, 0.2),
        "missing output column": (out.remove_columns("a"), ds, manifest, 0.2),
        "repeated manifest row": (out, ds, pd.concat([manifest, manifest.iloc[[3]]], ignore_index=True), 0.2),
        "manifest row not in input": (out, ds, _with_row(manifest, **{**manifest.iloc[0].to_dict(), "row_id": 99}),
                                      0.2),
        "unknown action": (out, ds, manifest.assign(action=manifest["action"].replace("reweight", "shrink")), 0.2),
        "suggested label outside the set": (out, ds, relabel, 0.2),
        "manifest column missing": (out, ds, manifest.drop(columns=["label_quality"]), 0.2),
        "too many drops": (out, ds, manifest, 0.05),
        "output disagrees with manifest": (out, ds, manifest.assign(action=manifest["action"].replace("keep", "drop")),
                                           0.9),
    }


def _agreement(seen):
    """Per expectation: (batch, key, summary count, GE success, GE unexpected_count), GE validating the batches."""
    suite, suites, batches, parameters, checks = seen[-1]
    summary = check_summary(checks, {b.name: b.frame for b in batches}, parameters)
    results, _ = validate_batches(suite, suites, batches, parameters)
    assert [(r["batch"], r["key"]) for r in results] == list(zip(summary["batch"], summary["key"]))
    return [(r["batch"], r["key"], int(n), r["success"], r["unexpected_count"])
            for r, n in zip(results, summary["unexpected"])]


@pytest.mark.parametrize("name", list(_input_cases()))
def test_the_input_check_summary_counts_what_great_expectations_flags(monkeypatch, name):
    seen = _spy(monkeypatch)
    ds, features = _input_cases()[name]
    report = _input(ds, features)
    assert report.success == (name == "good"), report.failures()
    for batch, key, count, success, unexpected in _agreement(seen):
        assert (count == 0) == success, (name, batch, key, count)
        if unexpected is not None and not success:
            assert count == unexpected, (name, batch, key)


@pytest.mark.parametrize("name", list(_output_cases()))
def test_the_output_check_summary_counts_what_great_expectations_flags(monkeypatch, name):
    seen = _spy(monkeypatch)
    out, ds, manifest, limit = _output_cases()[name]
    report = _output(out, ds, manifest, limit)
    assert report.success == (name == "good"), report.failures()
    rows = _agreement(seen)
    assert len(rows) == 23
    for batch, key, count, success, unexpected in rows:
        assert (count == 0) == success, (name, batch, key, count)
        if unexpected is not None and not success:
            assert count == unexpected, (name, batch, key)
    if name != "good":  # a failed first pass: the report is the batches', naming values and rows
        assert "checks" not in report.ge_results and report.checks == () and len(report.results) == 23


def test_every_expectation_of_the_batches_is_a_check_and_the_first_pass_lists_them():
    for suites in (build_input_suites(label_column="y"), build_output_suites(label_column="y", weight_column="w")):
        others = {b: s for b, s in suites.items() if b != "checks"}
        checks = compile_checks(suites)
        assert len(checks) == sum(len(s.expectations) for s in others.values())
        (first,) = suites["checks"].expectations
        assert first.meta["checks"] == [c.key for c in checks] and first.meta["runs_on"] == "check summary"
        assert suites["checks"].meta["runs_on"] == "check summary" and "not the data" in suites["checks"].notes


def test_a_check_the_summary_cannot_count_sends_the_gate_to_its_batches(caplog):
    # weights held as Python objects: Great Expectations compares them one by one and passes them; the summary
    # compares only numeric columns, counts the check 1, and the gate's batches decide
    out, ds, manifest, _ = _output_cases()["good"]
    with caplog.at_level(logging.WARNING, logger="influence_stage.quality.runner"):
        report = _output(out, ds, manifest.astype({"weight": object}))
    assert report.success and report.checks == () and len(report.results) == 23
    assert "checks" not in report.ge_results and "the batches' results stand" in caplog.text


def test_a_suite_with_an_expectation_the_summary_does_not_count_has_no_first_pass():
    gx, gxe = gx_modules()
    suites = {"rows": make_suite(gx, "input", "rows", [gxe.ExpectColumnValuesToMatchRegex(column="s", regex="^a")])}
    assert compile_checks(suites) is None
    assert set(with_check_summary(gx, gxe, "input", suites)) == {"rows"}


def test_a_passing_gate_docs_list_every_counted_check(tmp_path):
    out, ds, manifest, _ = _output_cases()["good"]
    report = _output(out, ds, manifest)
    assert report.success and len(report.checks) == 23
    index = render_data_docs(report, tmp_path).read_text()
    assert "the 23 expectations of the batches, counted, flag no value" in index
    for check in report.checks:
        assert f"<code>{check['key']}</code>" in index
    assert (tmp_path / "output.checks.html").is_file()
    assert report.to_dict()["checks"][-1]["key"] == "drop_fraction"


def test_counts_err_towards_failing_where_the_engine_would_raise_or_tolerate():
    gx, gxe = gx_modules()
    expectations = [
        gxe.ExpectColumnValuesToBeBetween(column="x", min_value=2, max_value=1),  # the engine raises
        gxe.ExpectColumnValuesToBeInSet(column="missing", value_set=[1]),  # no such column
        gxe.ExpectColumnValuesToBeInSet(column="x", value_set=[1], mostly=0.5),  # one of two is tolerated
        gxe.ExpectColumnValuesToBeBetween(column="x", min_value=0, max_value=5),
    ]
    checks = compile_checks({"t": make_suite(gx, "input", "t", expectations)})
    summary = check_summary(checks, {"t": pd.DataFrame({"x": [1, 3, None]})}, {})
    assert summary["unexpected"].tolist() == [1, 1, 1, 0]

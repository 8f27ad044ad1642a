"""The issue types wired into the stage: the issues step and its policy, the estimators' views, export and the
review round trip, save / load, the manifest and card, and the CLI's export and import-reviews."""

from __future__ import annotations

import os

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from influence_stage.api import InfluenceCleaner  # noqa: E402
from influence_stage.cli import main  # noqa: E402
from influence_stage.config import FitConfig, GEXConfig  # noqa: E402
from influence_stage.decisions import TABLE_COLUMNS  # noqa: E402
from influence_stage.decisions.decide import decide  # noqa: E402
from influence_stage.errors import InvalidInputError, InvalidTypeError  # noqa: E402
from influence_stage.pipeline.issues import Issues  # noqa: E402
from influence_stage.publish.card import dataset_card  # noqa: E402
from influence_stage.publish.manifest import labelled_manifest  # noqa: E402
from influence_stage.stage.issues import ISSUE_MAX_ROWS, issue_types_for, issues_step  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PX = [f"px_{j}" for j in range(64)]
N = 200
COPIES = (0, 5)  # rows appended again at the end: exact duplicates at N, N + 1


# ----------------------------------------------------------------------------------------------------
# the step and its policy
# ----------------------------------------------------------------------------------------------------


def _run(n=60, copies=((3, 10), (3, 40)), issue_types=("exact_duplicate", "outlier")):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    y = np.arange(n) % 3
    for src, dst in copies:
        X[dst], y[dst] = X[src], y[src]
    decisions = decide(rng.random(n), y, threshold=10.0, action="none")
    features = SimpleNamespace(X=X, y=y, store=None)
    result = SimpleNamespace(oos_proba=None, loss_matrix=rng.normal(size=(n, 4)).astype(np.float32),
                             base_loss=np.abs(rng.normal(size=n)).astype(np.float32))
    config = SimpleNamespace(issue_types=issue_types, gex=GEXConfig())
    return result, features, decisions, config


def test_the_policy_drops_exact_copies_after_the_first_and_reports_the_rest():
    result, features, decisions, config = _run()
    report, out = issues_step(result, features, decisions, config)
    assert list(out.table.columns) == list(TABLE_COLUMNS)  # the decisions table keeps its columns
    assert list(np.flatnonzero(out.table["action"].to_numpy() == "drop")) == [10, 40]
    assert (decisions.table["action"] == "keep").all()  # the input is not changed
    assert report.table["exact_duplicate_of"].tolist()[10] == 3 and report.table["exact_duplicate_of"][40] == 3
    assert list(np.flatnonzero(report.table["issue_action"].to_numpy() == "exact_duplicate")) == [10, 40]
    assert report.summary["policy"] == {"drop": ["exact_duplicate"], "n_dropped": 2}
    assert "harm_rank" in report.table and report.table.loc[10, "harm_rank"] >= 1
    # report only: the same decisions object
    report, same = issues_step(result, features, decisions, config, apply_policy=False)
    assert same is decisions and report.summary["policy"]["n_dropped"] == 0


def test_without_copies_the_decisions_are_the_same_object_and_no_types_means_no_report():
    result, features, decisions, config = _run(copies=())
    report, out = issues_step(result, features, decisions, config)
    assert out is decisions and int(report.table["is_exact_duplicate_issue"].sum()) == 0
    assert issues_step(result, features, decisions, SimpleNamespace(issue_types=(), gex=GEXConfig())) == (None,
                                                                                                         decisions)


def test_copies_with_another_label_or_too_many_copies_are_reported_not_dropped():
    result, features, decisions, config = _run()
    features.y[40] = (features.y[3] + 1) % 3  # a label conflict: the same features, another label
    report, out = issues_step(result, features, decisions, config)
    assert list(np.flatnonzero(out.table["action"].to_numpy() == "drop")) == [10]
    assert report.table["exact_duplicate_of"][40] == 3 and report.table["issue_action"][40] == ""
    # 4 copies of 60 rows (6.7% > 5%): few distinct feature values, nothing dropped, a note says why
    result, features, decisions, config = _run(copies=((3, 10), (3, 40), (4, 11), (4, 41)))
    report, out = issues_step(result, features, decisions, config)
    assert out is decisions and "4 exact copies (> 5% of the rows)" in report.summary["note"]
    assert report.summary["policy"] == {"drop": [], "n_dropped": 0}


def test_the_default_skips_datalab_types_that_fail_on_tiny_data_and_named_types_fail_loudly():
    result, features, decisions, _ = _run(n=4, copies=())
    report, out = issues_step(result, features, decisions, SimpleNamespace(issue_types=None, gex=GEXConfig()))
    # the neighbour-graph types cannot run on 4 rows; the types that need no neighbours still run
    assert report.types == ("exact_duplicate", "null", "class_imbalance") and out is decisions
    assert "issue types ['outlier', 'near_duplicate', 'non_iid'] failed on these features and were skipped" \
        in report.summary["note"]
    assert {"is_null_issue", "is_class_imbalance_issue"} <= set(report.table.columns)
    assert "is_outlier_issue" not in report.table.columns
    with pytest.raises(InvalidInputError, match="Datalab found no result for issue type"):
        issues_step(result, features, decisions, SimpleNamespace(issue_types=["outlier"], gex=GEXConfig()))


def test_a_failure_that_names_no_type_leaves_the_cheap_types(monkeypatch):
    import influence_stage.stage.issues as stage_issues

    real = stage_issues._find
    calls = []

    def failing(X, y, oos, table, deviations, types):
        calls.append(types)
        if types != ("exact_duplicate",):
            raise InvalidInputError("Datalab could not run")  # no ``failed`` list: every costly type goes
        return real(X, y, oos, table, deviations, types)

    monkeypatch.setattr(stage_issues, "_find", failing)
    result, features, decisions, _ = _run(copies=())
    report, _ = issues_step(result, features, decisions, SimpleNamespace(issue_types=None, gex=GEXConfig()))
    assert report.types == ("exact_duplicate",) and calls[-1] == ("exact_duplicate",) and len(calls) == 2
    assert "failed on these features and were skipped (Datalab could not run)" in report.summary["note"]


def test_cells_a_featurizer_imputed_are_reported_as_nulls():
    result, features, decisions, _ = _run(copies=())
    missing = np.zeros(features.X.shape, dtype=bool)
    missing[[7, 21], [0, 3]] = True
    features = SimpleNamespace(X=features.X, y=features.y, store=None, missing=missing)
    report, _ = issues_step(result, features, decisions, SimpleNamespace(issue_types=["null"], gex=GEXConfig()))
    assert list(np.flatnonzero(report.table["is_null_issue"].to_numpy())) == [7, 21]
    assert not np.isnan(features.X).any()  # the features themselves are not changed


def test_the_step_leaves_no_filter_that_ignores_every_warning():
    import subprocess
    import sys

    code = ("import warnings, numpy as np; from types import SimpleNamespace as S\n"
            "from influence_stage.decisions.decide import decide\n"
            "from influence_stage.config import GEXConfig\n"
            "from influence_stage.stage.issues import issues_step\n"
            "X = np.random.default_rng(0).normal(size=(60, 4)).astype('float32'); y = np.arange(60) % 2\n"
            "before = list(warnings.filters)\n"
            "issues_step(S(oos_proba=None, loss_matrix=None, base_loss=None), S(X=X, y=y, store=None),\n"
            "            decide(np.random.default_rng(0).random(60), y, threshold=10.0, action='none'),\n"
            "            S(issue_types=None, gex=GEXConfig()))\n"
            "print(not [f for f in warnings.filters if f[0] == 'ignore' and f[1] is None and f[2] is Warning])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip().splitlines()[-1] == "True", done.stderr[-2000:]


def test_the_estimators_take_the_plans_report_when_the_plan_ran_the_step():
    from influence_stage.api.issue_data import fit_issues

    result, features, decisions, config = _run()
    ran = SimpleNamespace(timings={"issues": 0.01}, issues=None, gex_result=result, features=features,
                          decisions=decisions)
    assert fit_issues(ran, config) is None  # the plan ran no type: nothing is computed again
    ran.issues = "the plan's report"
    assert fit_issues(ran, config) == "the plan's report"
    computed = fit_issues(SimpleNamespace(timings={}, gex_result=result, features=features, decisions=decisions),
                          config)
    assert computed.summary["policy"]["n_dropped"] == 0  # report only: these rows were already applied
    assert list(np.flatnonzero(computed.table["exact_duplicate_of"].to_numpy() >= 0)) == [10, 40]


def test_which_types_run():
    everything, note = issue_types_for(None, ISSUE_MAX_ROWS, has_proba=True)
    assert note is None and "underperforming_group" in everything and "outlier" in everything
    assert "underperforming_group" not in issue_types_for(None, 100, has_proba=False)[0]
    big, note = issue_types_for(None, ISSUE_MAX_ROWS + 1, has_proba=True)
    assert big == ("exact_duplicate",) and f"{ISSUE_MAX_ROWS + 1} rows > {ISSUE_MAX_ROWS}" in note and "'outlier'" in note
    assert issue_types_for(SimpleNamespace(issue_types=["outlier"]), 10**6, True) == (("outlier",), None)
    with pytest.raises(InvalidInputError, match=r"unknown issue type 'dupes'.*'label'.*'outlier'"):
        issue_types_for(SimpleNamespace(issue_types=["dupes"]), 10, True)
    with pytest.raises(InvalidTypeError, match=r"issue_types must be a list.*Fix: issue_types=\['outlier'\]"):
        issue_types_for(SimpleNamespace(issue_types="outlier"), 10, True)


def test_the_plan_step_reads_and_writes_by_name():
    result, features, decisions, config = _run()
    step = Issues()
    assert (step.name, step.reads, step.writes) == ("issues", ("result", "features", "decisions"),
                                                    ("issues", "decisions"))

    class Context(dict):
        pass

    context = Context(result=result, features=features, decisions=decisions)
    context.config = config
    report, out = step.run(context)
    assert int((out.table["action"] == "drop").sum()) == 2 and report.types[0] == "exact_duplicate"


def test_features_the_step_cannot_read_skip_the_types_with_a_note():
    result, features, decisions, config = _run()
    report, out = issues_step(result, SimpleNamespace(X=np.empty((60, 0), np.float32), y=features.y, store=None),
                              decisions, config)
    assert report is None and out is decisions


# ----------------------------------------------------------------------------------------------------
# the estimator
# ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    df = pd.read_parquet(ROOT / "data" / "digits" / "train.parquet").drop(columns=["row_id"]).iloc[:N]
    return pd.concat([df, df.iloc[list(COPIES)]], ignore_index=True)


@pytest.fixture(scope="module")
def fitted(frame):
    ds = datasets.Dataset.from_pandas(frame, preserve_index=False)
    cleaner = InfluenceCleaner(feature_columns=PX, gex_config=GEXConfig(chains=2, cycles=2, ft_lr=0.4),
                               fit_config=FitConfig(epochs=10), random_state=0)
    return cleaner.fit(ds), ds


def test_issues_carry_every_type_beside_the_label_columns(fitted):
    cleaner, _ = fitted
    issues = cleaner.issues_
    pd.testing.assert_frame_equal(issues[list(TABLE_COLUMNS)], cleaner.decisions_.table)
    for name in ("outlier", "near_duplicate", "exact_duplicate", "null", "class_imbalance", "non_iid",
                 "underperforming_group"):
        assert f"{name}_score" in issues and issues[f"is_{name}_issue"].dtype == bool
    # every copy is flagged; exact_duplicate_of names the first copy of the later ones
    assert list(np.flatnonzero(issues["is_exact_duplicate_issue"].to_numpy())) == [*COPIES, N, N + 1]
    assert issues["exact_duplicate_of"].tolist()[N:] == list(COPIES)
    assert (issues["exact_duplicate_of"].to_numpy()[:N] == -1).all()
    dupes = cleaner.get_issues("exact_duplicate")
    assert sorted(dupes.index) == [*COPIES, N, N + 1]
    pd.testing.assert_frame_equal(cleaner.get_issues("label"), cleaner.get_issues("issues"))
    outliers = cleaner.get_issues("outlier")
    assert len(outliers) == int(issues["is_outlier_issue"].sum())
    assert (np.diff(outliers["outlier_score"].to_numpy()) <= 0).all()
    summary = cleaner.issue_type_summary()
    assert summary.index[0] == "label" and summary.loc["label", "n_issues"] == int(issues["is_issue"].sum())
    # the plan's issues step drops a later copy that carries its first copy's label; a copy with another label
    # is a label conflict, reported and kept
    assert summary.loc["exact_duplicate", "n_issues"] == 4 and summary.loc["exact_duplicate", "n_dropped"] == 1
    assert summary.loc["exact_duplicate", "share"] == pytest.approx(4 / (N + 2))


def test_get_issues_errors_name_the_registry(fitted):
    cleaner, _ = fitted
    with pytest.raises(InvalidInputError, match=r"one of \['label', .*'outlier'.*found 'outliers'"):
        cleaner.get_issues("outliers")
    original = cleaner.issues_
    try:
        cleaner.issues_ = original.drop(columns=["is_outlier_issue", "outlier_score"])
        with pytest.raises(InvalidInputError, match=r"issue type 'outlier' was not run in this fit; its types: "
                                                    r"\['label', 'near_duplicate'"):
            cleaner.get_issues("outlier")
    finally:
        cleaner.issues_ = original


@pytest.fixture()
def cleaner(fitted):
    return fitted


def _review(tasks_path: Path, names: list[str]) -> tuple[Path, dict]:
    """A fake Label Studio export of the tasks: every task reviewed, as the class after its given label."""
    tasks = json.loads(tasks_path.read_text())
    chosen = {}
    for i, task in enumerate(tasks):
        given = names.index(task["data"]["given_label_name"])
        label = names[(given + 1) % len(names)]
        chosen[task["data"]["row_id"]] = label
        task["id"] = i + 1
        task["annotations"] = [{"was_cancelled": False, "result": [
            {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [label]}}]}]
    out = tasks_path.parent.parent / "project-export.json"
    out.write_text(json.dumps(tasks))
    return out, chosen


def test_label_studio_export_and_the_reviews_read_back(tmp_path, cleaner):
    from influence_stage.issues.export import read_label_studio_reviews

    c, _ = cleaner
    folder = c.export(tmp_path / "review")
    tasks = json.loads((folder / "tasks.json").read_text())
    assert len(tasks) == int(c.issues_["is_any_issue"].sum()) > 0
    assert (folder / "label_config.xml").is_file() and len(list((folder / "images").iterdir())) == len(tasks)
    first = tasks[0]["data"]
    assert first["image"].startswith("images/") and "exact_duplicate_score" in first
    names = [str(n) for n in c.classes_]
    export, chosen = _review(folder / "tasks.json", names)
    reviews = read_label_studio_reviews(export, names)
    assert len(reviews) == len(tasks)
    assert dict(zip(reviews["row_id"], reviews["reviewed_label_name"])) == chosen
    # an existing folder is refused; overwrite replaces it
    with pytest.raises(InvalidInputError, match=r"review exists; the export does not replace it"):
        c.export(tmp_path / "review")
    assert c.export(tmp_path / "review", overwrite=True, max_rows=3) == folder
    assert len(json.loads((folder / "tasks.json").read_text())) == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".review")]  # no temporary folder left


def test_issue_files_and_their_errors(tmp_path, cleaner):
    c, _ = cleaner
    path = c.export(tmp_path / "all.parquet", "parquet", only_flagged=False)
    back = pd.read_parquet(path)
    assert len(back) == N + 2 and {"is_outlier_issue", "exact_duplicate_of", "issue_types", "image"} <= set(back)
    assert set(back.loc[back["exact_duplicate_of"] >= 0, "row_id"]) == {N, N + 1}
    records = c.export(tmp_path / "argilla.jsonl", "argilla").read_text().splitlines()
    assert len(records) == int(c.issues_["is_any_issue"].sum())
    assert json.loads(records[0])["suggestions"][0]["question_name"] == "label"
    with pytest.raises(InvalidInputError, match=r"format must be one of \['label-studio', 'argilla', 'parquet', "
                                                r"'jsonl', 'csv'\]; found 'xlsx'"):
        c.export(tmp_path / "x.xlsx", "xlsx")
    with pytest.raises(InvalidInputError, match=r"format 'csv' writes a .csv file; found path 'x.parquet'"):
        c.export(tmp_path / "x.parquet", "csv")
    with pytest.raises(InvalidInputError, match=r"all.parquet exists"):
        c.export(tmp_path / "all.parquet", "parquet")


def test_save_and_load_keep_the_issue_columns_under_the_checksums(tmp_path, cleaner):
    c, ds = cleaner
    folder = c.save(tmp_path / "saved")
    loaded = InfluenceCleaner.load(folder)
    pd.testing.assert_frame_equal(loaded.issues_, c.issues_)
    pd.testing.assert_frame_equal(loaded.issue_type_summary(), c.issue_type_summary())
    # after load the content comes from the fitted data, checked by fingerprint
    with pytest.raises(InvalidInputError, match=r"no content column"):
        loaded.export(tmp_path / "nocontent")
    assert json.loads((loaded.export(tmp_path / "r", dataset=ds) / "tasks.json").read_text())
    with open(folder / "issues.parquet", "ab") as fh:
        fh.write(b"x")
    with pytest.raises(InvalidInputError, match=r"issues.parquet changed since it was saved"):
        InfluenceCleaner.load(folder)


def test_the_manifest_carries_the_flags_and_the_card_lists_the_types(cleaner):
    c, ds = cleaner
    manifest = labelled_manifest(c.decisions_.table, c.encoding_, issues=c.issues_)
    assert list(manifest.columns[:len(TABLE_COLUMNS)]) == list(TABLE_COLUMNS)
    assert "is_outlier_issue" in manifest and "exact_duplicate_of" in manifest
    assert "harm" not in manifest and "is_any_issue" not in manifest
    assert manifest["exact_duplicate_of"].tolist()[N:] == list(COPIES)
    pd.testing.assert_frame_equal(labelled_manifest(c.decisions_.table, c.encoding_),
                                  manifest[list(TABLE_COLUMNS)])
    meta = {"name": "digits", "version": "v0001", "rows_in": N + 2, "rows_out": N}
    card = dataset_card(meta, ds.features, manifest)
    assert "## Issue types" in card and "| exact duplicate | 4 | 2.0% |" in card
    assert "Exact copies of an earlier row: 2" in card
    assert "## Issue types" not in dataset_card(meta, ds.features, manifest[list(TABLE_COLUMNS)])
    with pytest.raises(InvalidInputError, match=r"the issue table has 3 rows for 202 manifest rows"):
        labelled_manifest(c.decisions_.table, c.encoding_, issues=c.issues_.iloc[:3])


def test_mlflow_log_of_a_fit(tmp_path, cleaner, monkeypatch):
    import sys
    from contextlib import contextmanager

    from influence_stage.errors import MissingDependencyError

    c, _ = cleaner
    monkeypatch.setitem(sys.modules, "mlflow", None)  # not installed
    with pytest.raises(MissingDependencyError, match=r"Fix: pip install mlflow"):
        c.log_mlflow()
    logged: dict = {"artifacts": []}

    @contextmanager
    def start_run(run_name=None, tags=None):
        logged.update(run_name=run_name, tags=tags)
        yield SimpleNamespace(info=SimpleNamespace(run_id="r1"))

    fake = SimpleNamespace(start_run=start_run, set_tracking_uri=lambda u: logged.update(uri=u),
                           set_experiment=lambda e: logged.update(experiment=e),
                           log_params=lambda p: logged.update(params=p), log_metrics=lambda m: logged.update(metrics=m),
                           log_artifact=lambda p: logged["artifacts"].append(Path(p).name),
                           log_artifacts=lambda p, artifact_path=None: logged["artifacts"].append(artifact_path))
    monkeypatch.setitem(sys.modules, "mlflow", fake)
    issue_file = c.export(tmp_path / "issues.csv", "csv")
    assert c.log_mlflow(artifacts=[issue_file], run_name="digits", tracking_uri="file:/x") == "r1"
    assert logged["uri"] == "file:/x" and logged["run_name"] == "digits"
    assert logged["artifacts"] == ["report.html", "issues.csv"]
    assert logged["params"]["action"] == "drop" and json.loads(logged["params"]["gex"])["chains"] == 2
    metrics = logged["metrics"]
    assert metrics["n_rows"] == N + 2 and metrics["n_flagged"] == int(c.issues_["is_issue"].sum())
    assert metrics["issues.types.exact_duplicate.n_issues"] == 4


# ----------------------------------------------------------------------------------------------------
# the CLI
# ----------------------------------------------------------------------------------------------------


def test_cli_export_and_import_reviews_round_trip(tmp_path, cleaner, frame, capsys):
    c, _ = cleaner
    saved = c.save(tmp_path / "saved")
    source = tmp_path / "source.parquet"
    frame.to_parquet(source, index=False)
    assert main(["export", str(saved), "--out", str(tmp_path / "flagged.csv"), "--format", "csv"]) == 0
    flagged = pd.read_csv(tmp_path / "flagged.csv")
    assert len(flagged) == int(c.issues_["is_any_issue"].sum())
    assert main(["export", str(saved), "--out", str(tmp_path / "ls"), "--source", str(source)]) == 0
    names = [str(n) for n in c.classes_]
    export, chosen = _review(tmp_path / "ls" / "tasks.json", names)
    assert main(["import-reviews", str(export), "--from", str(saved), "--out", str(tmp_path / "reviews.csv")]) == 0
    reviews = pd.read_csv(tmp_path / "reviews.csv", dtype={"reviewed_label_name": str, "given_label_name": str})
    assert dict(zip(reviews["row_id"], reviews["reviewed_label_name"])) == chosen
    assert reviews["changed"].all()  # every fake review chose another class
    given = c.issues_.set_index("row_id").loc[reviews["row_id"], "given_label"].to_numpy()
    np.testing.assert_array_equal(reviews["given_label"].to_numpy(), given)
    assert "reviewed" in capsys.readouterr().out


@pytest.mark.parametrize("argv, match", [
    (["export", "{tmp}/nowhere", "--out", "{tmp}/o.csv", "--format", "csv"], "is neither a published version"),
    (["export", "{saved}", "--out", "{tmp}/o"], "--format label-studio shows each row's content"),
    (["export", "{saved}", "--out", "{tmp}/o.csv", "--format", "parquet"], "format 'parquet' writes a .parquet"),
    (["export", "{saved}", "--out", "{tmp}/o.csv", "--format", "csv", "--max-rows", "0"], "--max-rows must be"),
    (["export", "{saved}", "--out", "{tmp}/o", "--source", "{tmp}/short.parquet"], "--source has 5 rows"),
    (["import-reviews", "{tmp}/e.json", "--from", "{saved}", "--out", "{tmp}/r.txt"], "--out must end in one of"),
    (["import-reviews", "{tmp}/missing.json", "--from", "{saved}", "--out", "{tmp}/r.csv"],
     "missing.json does not exist"),
    (["import-reviews", "{tmp}/e.json", "--from", "{saved}", "--out", "{tmp}/exists.csv"], "exists; import-reviews"),
])
def test_cli_errors_exit_2_with_one_line(tmp_path, cleaner, frame, capsys, argv, match):
    c, _ = cleaner
    saved = c.save(tmp_path / "saved")
    frame.iloc[:5].to_parquet(tmp_path / "short.parquet", index=False)
    (tmp_path / "exists.csv").write_text("x\n")
    (tmp_path / "e.json").write_text("[]")
    code = main([a.format(tmp=tmp_path, saved=saved) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and match in err[0]


def test_the_issues_step_in_the_library_plan_drops_the_copies_before_apply_and_the_gate(frame):
    """The plan the library runs, ``Issues()`` right after ``Decide()``: the copies are dropped from the output
    and the output gate accepts it."""
    from influence_stage.pipeline.clean import CLEAN_LIBRARY, Apply, Decide
    from influence_stage.pipeline.context import RunContext
    from influence_stage.pipeline.local import LocalExecutor
    from influence_stage.stage.steps import CleanConfig

    steps = list(CLEAN_LIBRARY.steps)
    at = next(i for i, s in enumerate(steps) if isinstance(s, Decide)) + 1
    assert isinstance(steps[at], Issues) and isinstance(steps[at + 1], Apply)
    plan = CLEAN_LIBRARY
    config = CleanConfig(feature_columns=tuple(PX), gex=GEXConfig(chains=2, cycles=2, ft_lr=0.4),
                         fit=FitConfig(epochs=10))
    context = RunContext(config=config, source=datasets.Dataset.from_pandas(frame, preserve_index=False))
    LocalExecutor().run(plan, context)
    action = context["decisions"].table["action"].to_numpy()
    assert action[N] == action[N + 1] == "drop"
    assert context["issues"].summary["policy"]["drop"] == ["exact_duplicate"]
    assert context["cleaned"].num_rows == int((action != "drop").sum())
    assert context["output_report"].success


def test_the_cli_export_formats_are_the_apis():
    from influence_stage.api.issue_data import EXPORT_FORMATS
    from influence_stage.cli import export

    assert export.EXPORT_FORMATS == EXPORT_FORMATS

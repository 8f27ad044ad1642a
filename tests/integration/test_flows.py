"""The Prefect flow end to end, its cache, the publish gate, the deployment and the CLI."""

from __future__ import annotations

import errno
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from datasets import load_dataset

pytest.importorskip("prefect")
pytestmark = pytest.mark.usefixtures("prefect_api")  # the test process's one Prefect server (tests/conftest.py)

import influence_stage.orchestration.flow as flow_module
import influence_stage.stage.scoring as stage_scoring
from influence_stage.orchestration.flow import FlowConfig, clean_dataset
from influence_stage.orchestration.deployments import build_deployment
from influence_stage import ValidationFailedError
from influence_stage.cli import main
from influence_stage.config import FitConfig, GEXConfig
from influence_stage.stage.run import run_pipeline
from influence_stage.config import CleanConfig
from influence_stage.publish.versions import list_versions, load_published

ROOT = Path(__file__).resolve().parents[2]
DIGITS = str(ROOT / "data" / "digits" / "train.parquet")
NOISE_MASK = str(ROOT / "data" / "digits" / "noise_mask.parquet")


@pytest.fixture(scope="module")
def small_source(tmp_path_factory):
    """400 demo rows as a parquet file."""
    path = tmp_path_factory.mktemp("src") / "small.parquet"
    load_dataset("parquet", data_files=DIGITS, split="train").select(range(400)).to_parquet(str(path))
    return str(path)


def params(tmp_path, source, **overrides) -> FlowConfig:
    clean = CleanConfig.from_mapping({
        "label_column": "label", "feature_columns": ["px_*"], "model": "mlp", "action": "drop",
        "gex": {"chains": 3, "cycles": 2, "ft_lr": "auto", "probe_chains": 2, "lr_grid": [0.1, 0.4, 1.6]},
        "fit": {"epochs": 20}, **overrides.pop("clean", {})})
    return FlowConfig(source=source, name="small", clean=clean, publish_root=str(tmp_path / "pub"),
                      cache_dir=str(tmp_path / "cache"), **overrides)


def test_flow_end_to_end_then_cached_rerun(tmp_path, small_source, monkeypatch):
    calls = []
    real = stage_scoring.build_chains
    monkeypatch.setattr(stage_scoring, "build_chains",
                        lambda *a, **k: calls.append((k["chain_ids"], [len(p) for p in k["prefixes"]]))
                        or real(*a, **k))
    p = params(tmp_path, small_source)
    first = clean_dataset(p)
    # one task trains the chains together: 0 and 1 continue the auto-scale probe's first cycle, 2 starts at θ*
    assert calls == [([0, 1, 2], [1, 1, 0])]
    ds, manifest, meta = load_published(first["published"])
    assert len(manifest) == 400 and sorted(manifest.row_id) == list(range(400))
    assert len(ds) == first["rows out"] == (manifest.action != "drop").sum()
    assert (manifest.action == "drop").sum() == first.get("action drop", 0) > 0
    for name in ("report.html", "manifest.parquet", "config.json", "meta.json"):
        assert (tmp_path / "pub" / "small" / "v0001" / name).is_file()
    from influence_stage.orchestration.cache_folder import is_marked

    assert is_marked(p.cache_dir)  # the flow marks the cache it creates, so `cache clear` may delete it
    html = (tmp_path / "pub" / "small" / "v0001" / "report.html").read_text()
    assert "Issue types" in html and "harm rank" in html.lower()  # the issues step's counts and harm table

    # the flow's chain task (probe chains continued, the rest from θ*) gives the library's scores
    library = run_pipeline(small_source, p.clean)
    order = np.argsort(manifest.row_id.to_numpy())
    np.testing.assert_allclose(manifest.score.to_numpy()[order], library.gex_result.scores, rtol=1e-4, atol=1e-7)
    assert first["theta fit"] == pytest.approx(library.gex_result.theta_fit, abs=1e-4) and first["theta fit"] > 0.8

    calls.clear()
    second = clean_dataset(p)
    assert calls == []  # the member-building tasks did not run again
    _, manifest2, _ = load_published(second["published"])
    assert second["published"].endswith("v0002")
    np.testing.assert_array_equal(manifest.score.to_numpy(), manifest2.score.to_numpy())


def test_chains_per_task_groups_chains_and_keeps_the_scores(tmp_path, small_source, monkeypatch):
    calls = []
    real = stage_scoring.build_chains
    monkeypatch.setattr(stage_scoring, "build_chains", lambda *a, **k: calls.append(list(k["chain_ids"])) or real(*a, **k))
    fixed = {"clean": {"gex": {"chains": 3, "cycles": 1, "ft_lr": 0.4}}}
    together = clean_dataset(params(tmp_path, small_source, **fixed))
    assert calls == [[0, 1, 2]]
    calls.clear()
    split = clean_dataset(params(tmp_path, small_source, chains_per_task=2, **fixed))
    assert sorted(calls) == [[0, 1], [2]]  # a new grouping: new chain and loss-matrix cache entries
    _, a, _ = load_published(together["published"])
    _, b, _ = load_published(split["published"])
    np.testing.assert_allclose(a.score.to_numpy(), b.score.to_numpy(), rtol=1e-5, atol=1e-8)
    with pytest.raises(ValueError, match="chains_per_task"):
        params(tmp_path, small_source, chains_per_task=0)


def test_failed_output_suite_publishes_nothing(tmp_path, small_source):
    good = params(tmp_path, small_source, clean={"gex": {"chains": 2, "cycles": 1, "ft_lr": 0.4}})
    clean_dataset(good)
    before = list_versions(tmp_path / "pub", "small")
    latest = (tmp_path / "pub" / "small" / "LATEST").read_text()
    strict = good.model_copy(update={"max_drop_fraction": 0.001})  # any drop fails the gate
    with pytest.raises(ValidationFailedError, match="drop"):
        clean_dataset(strict)
    assert list_versions(tmp_path / "pub", "small") == before
    assert (tmp_path / "pub" / "small" / "LATEST").read_text() == latest
    assert not [p for p in (tmp_path / "pub" / "small").iterdir() if p.name.startswith(".tmp")]


def test_deployment_builds_with_cron(tmp_path, small_source):
    deployment = build_deployment(params(tmp_path, small_source), cron="0 3 * * *")
    assert deployment.name == "influence-stage-small"
    assert [s.schedule.cron for s in deployment.schedules] == ["0 3 * * *"]
    assert deployment.parameters["params"]["source"] == small_source


def test_flow_config_yaml(tmp_path):
    cfg = FlowConfig.from_yaml(ROOT / "flows" / "digits.yaml")
    assert cfg.clean.feature_columns == ("px_*",) and cfg.clean.action == "relabel"
    bad = tmp_path / "bad.yaml"
    bad.write_text("source: x\nname: y\nclean:\n  chainz: 3\n")
    with pytest.raises(ValueError, match="chainz"):
        FlowConfig.from_yaml(bad)


def test_cli_exit_codes_and_messages(tmp_path, small_source, capsys):
    common = ["--name", "small", "--publish-root", str(tmp_path / "pub"), "--cache-dir", str(tmp_path / "cache"),
              "--feature-columns", "px_*", "--model", "mlp", "--ft-lr", "0.4"]
    assert main(["clean", "--source", str(tmp_path / "nope.parquet"), *common]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "nope.parquet" in err and "\n" not in err

    assert main(["clean", "--source", small_source, "--label-column", "target", *common]) == 2
    err = capsys.readouterr().err.strip()
    assert "target" in err and "label" in err  # names the missing column and lists what exists

    assert main(["clean", "--source", small_source, "--max-drop-fraction", "0.001", *common]) == 3
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: validation failed, nothing published") and "\n" not in err
    assert list_versions(tmp_path / "pub", "small") == []

    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0 and "influence-stage clean --config" in capsys.readouterr().out
    assert main(["clean", "--source", small_source, *common[:-2], "--ft-lr", "fast"]) == 2
    assert "--ft-lr must be 'auto' or a positive number" in capsys.readouterr().err


@pytest.mark.slow  # in make test: reweight decisions and weights (tests/pipeline, tests/api), publishing (this module)
def test_reweight_flow_publishes_weights_matching_the_manifest(tmp_path, small_source):
    p = params(tmp_path, small_source, truth=NOISE_MASK,
               clean={"action": "reweight", "gex": {"chains": 2, "cycles": 1, "ft_lr": 0.4}})
    summary = clean_dataset(p)
    ds, manifest, _ = load_published(summary["published"])
    assert len(ds) == len(manifest) == 400 and summary.get("action reweight", 0) > 0
    weights = dict(zip(ds["row_id"], ds["weight"]))
    np.testing.assert_allclose([weights[r] for r in manifest.row_id], manifest.weight.to_numpy())
    assert ((manifest.weight < 1) == (manifest.action == "reweight")).all()

    # With ground truth: the distributional-bias figure in the report, rates in the markdown.
    report = (Path(summary["published"]) / "report.html").read_text()
    assert '<section id="bias">' in report and '<section id="confusion">' in report
    md = summary["markdown"]
    n_true = int(pd.read_parquet(NOISE_MASK).set_index("row_id").loc[range(400), "is_flipped"].sum())
    assert f"Score **{summary['score']}**; threshold method **{summary['threshold method']}**" in md
    if summary["threshold method"] == "estimate":
        rate = summary["estimated noise rate"]
        assert f"estimated noise rate **{100 * rate:.1f}%** ({round(rate * 400)} rows)" in md
        assert f"true noise rate **{100 * n_true / 400:.1f}%** ({n_true} rows)" in md
    assert "| bias scores (report) |" in md


def test_bias_scores_three_estimators_or_a_logged_skip(small_learner, caplog):
    from influence_stage.engine.baselines import gradient_norm_influence, linearized_influence

    learner, data = small_learner
    features = SimpleNamespace(tensor_data=lambda device="cpu": data)  # what learner_data reads for a TorchLearner
    gex_influence = np.linspace(0.0, 1.0, len(data))
    result = SimpleNamespace(learner=learner, gex_influence=gex_influence)
    scores = flow_module.bias_scores(result, None, features)
    assert list(scores) == ["identity-curvature IF", "damped linearized IF", "GEX"]
    np.testing.assert_allclose(scores["identity-curvature IF"], gradient_norm_influence(learner, data))
    np.testing.assert_allclose(scores["damped linearized IF"], np.clip(linearized_influence(learner, data), 0, None))
    np.testing.assert_array_equal(scores["GEX"], gex_influence)
    assert all((s >= 0).all() and s.shape == (len(data),) for s in scores.values())

    caplog.set_level(logging.INFO, logger="influence_stage.pipeline.publishing")
    assert flow_module.bias_scores(SimpleNamespace(learner=object(), gex_influence=gex_influence), None,
                                   features) is None
    assert "not a TorchLearner" in caplog.text


@pytest.mark.slow  # in make test: test_dask.py's two worker processes, test_curation.py's curate on Dask
def test_flow_on_dask_gives_the_same_scores(tmp_path, small_source):
    pytest.importorskip("prefect_dask")
    from influence_stage.orchestration.dask_runner import clean_on_dask

    p = params(tmp_path, small_source, clean={"gex": {"chains": 3, "cycles": 1, "ft_lr": 0.4}})
    threads = clean_dataset(p)
    on_dask = clean_on_dask(p.model_copy(update={"cache_dir": str(tmp_path / "cache-dask")}), n_workers=2)
    _, a, _ = load_published(threads["published"])
    _, b, _ = load_published(on_dask["published"])
    # threads: the chains trained together in one task; Dask: 2 worker processes, one chain per task
    # (vmapped over 1 vs 3 chains, so equal up to float rounding), loss shards reading their own rows
    np.testing.assert_allclose(a.score.to_numpy(), b.score.to_numpy(), rtol=1e-5, atol=1e-8)
    assert list(a.action) == list(b.action)


def test_cli_report_rebuilds_without_touching_the_version(tmp_path, small_source, capsys):
    summary = clean_dataset(params(tmp_path, small_source, clean={"gex": {"chains": 2, "cycles": 1, "ft_lr": 0.4}}))
    version = Path(summary["published"])
    before = {p.name: p.read_bytes() for p in version.iterdir() if p.is_file()}
    out = tmp_path / "again.html"
    assert main(["report", str(version), "--out", str(out)]) == 0
    assert "Score distribution" in out.read_text() and str(out.resolve()) in capsys.readouterr().out
    again, original = out.read_text(), (version / "report.html").read_text()
    for recorded in ("threshold method", "estimated noise rate", "members", "ft_lr"):  # meta.json's summary
        assert recorded in original and recorded in again
    assert {p.name: p.read_bytes() for p in version.iterdir() if p.is_file()} == before
    load_published(version, verify=True)  # checksums still hold
    assert main(["report", str(tmp_path / "nothing-here")]) == 2


def test_flow_publishes_label_values_column_roles_and_the_class_list(tmp_path, small_source, capsys):
    """Labels {7, 12, ..., 52} (not codes 0..9) in the published manifest; roles in meta.json."""
    frame = pd.read_parquet(small_source)
    frame["label"] = frame["label"] * 5 + 7
    source = tmp_path / "shifted.parquet"
    frame.to_parquet(source, index=False)
    summary = clean_dataset(params(tmp_path, str(source), clean={"action": "relabel",
                                                                 "gex": {"chains": 2, "cycles": 1, "ft_lr": 0.4}}))
    assert summary["columns"] == {"label": "label", "kind": "tabular",
                                  "features": [c for c in frame.columns if c.startswith("px_")]}
    version = Path(summary["published"])
    ds, manifest, meta = load_published(version, verify=True)
    assert meta["classes"] == [5 * k + 7 for k in range(10)]
    assert meta["class_names"] == [str(5 * k + 7) for k in range(10)]
    assert meta["summary"]["columns"] == summary["columns"]
    given = frame.set_index("row_id")["label"] if "row_id" in frame.columns else frame["label"]
    assert manifest["given_label"].tolist() == given.loc[manifest["row_id"]].tolist()
    assert set(manifest["suggested_label"].dropna()) <= set(meta["classes"])
    assert summary.get("action relabel", 0) > 0
    relabeled = manifest[manifest["action"] == "relabel"]
    out_labels = dict(zip(ds["row_id"], ds["label"]))
    assert [out_labels[r] for r in relabeled["row_id"]] == relabeled["suggested_label"].tolist()
    out = tmp_path / "again.html"
    assert main(["report", str(version), "--out", str(out)]) == 0
    capsys.readouterr()
    assert "Score distribution" in out.read_text() and "52" in out.read_text()


def test_the_flow_run_pipeline_and_the_cleaner_give_the_same_scores(tmp_path, small_source):
    """One orchestration: the cleaner, run_pipeline and the Prefect flow score one dataset the same way."""
    from influence_stage import InfluenceCleaner

    cleaner = InfluenceCleaner(feature_columns=["px_*"], model="mlp", random_state=3,
                               gex_config=GEXConfig(chains=2, cycles=2, ft_lr="auto", probe_chains=2,
                                                    lr_grid=(0.1, 0.4, 1.6)),
                               fit_config=FitConfig(epochs=20)).fit(small_source)
    config = cleaner.config_
    library = run_pipeline(small_source, config)
    flowed = clean_dataset(FlowConfig(source=small_source, name="same", clean=config,
                                      publish_root=str(tmp_path / "pub"), cache_dir=str(tmp_path / "cache")))
    _, manifest, _ = load_published(flowed["published"])
    manifest = manifest.sort_values("row_id")
    np.testing.assert_array_equal(cleaner.scores_, library.gex_result.scores)
    np.testing.assert_allclose(manifest.score.to_numpy(), library.gex_result.scores, rtol=1e-6, atol=1e-9)
    assert list(manifest.action) == list(library.decisions.table.action) == list(cleaner.issues_.action)
    assert flowed["rows out"] == library.summary["rows out"] == library.cleaned.num_rows


def test_skip_unchanged_publishes_only_what_changed_and_keep_retains(tmp_path, small_source, monkeypatch, capsys):
    fast = {"clean": {"gex": {"chains": 2, "cycles": 1, "ft_lr": 0.4}}}
    p = params(tmp_path, small_source, skip_unchanged=True, keep=2, **fast)
    first = clean_dataset(p)
    assert first["published"].endswith("v0001") and not first.get("unchanged")
    pub = tmp_path / "pub"
    again = clean_dataset(p.model_copy(update={"progress": True}))  # a run-control field is no change
    assert again["unchanged"] and again["latest"] == "v0001"
    assert again["markdown"] == "unchanged, nothing published (latest v0001)"
    assert list_versions(pub, "small") == ["v0001"]
    # another run published the same data while this one was scoring: publish sees it under the lock
    monkeypatch.setattr("influence_stage.publish.versions.unchanged_version", lambda *a, **k: None)
    raced = clean_dataset(p)
    assert raced["unchanged"] and list_versions(pub, "small") == ["v0001"]
    monkeypatch.undo()
    # a changed source, then a changed setting: new versions; keep=2 removes the oldest
    changed = tmp_path / "changed.parquet"
    frame = pd.read_parquet(small_source)
    frame.loc[frame.index[:3], "label"] = (frame.loc[frame.index[:3], "label"] + 1) % 10
    frame.to_parquet(changed, index=False)
    second = clean_dataset(p.model_copy(update={"source": str(changed)}))
    assert second["published"].endswith("v0002")
    third = clean_dataset(p.model_copy(update={"source": str(changed), "max_drop_fraction": 0.9}))
    assert third["published"].endswith("v0003") and third["removed"] == ["v0001"]
    assert list_versions(pub, "small") == ["v0002", "v0003"]
    # the CLI says so and exits 0
    import yaml

    config = tmp_path / "third.yaml"
    config.write_text(yaml.safe_dump(p.model_copy(update={"source": str(changed), "max_drop_fraction": 0.9})
                                     .model_dump(mode="json")))
    capsys.readouterr()
    assert main(["clean", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("unchanged, nothing published (latest v0003)\nlatest:    ") and "v0003" in out
    assert list_versions(pub, "small") == ["v0002", "v0003"]


def test_the_same_rows_under_another_file_name_publish_nothing(tmp_path, small_source, monkeypatch):
    p = params(tmp_path, small_source, skip_unchanged=True, clean={"gex": {"chains": 2, "cycles": 1, "ft_lr": 0.4}})
    first = clean_dataset(p)
    assert first["published"].endswith("v0001")
    calls = []
    real = stage_scoring.build_chains
    monkeypatch.setattr(stage_scoring, "build_chains", lambda *a, **k: calls.append(k["chain_ids"]) or real(*a, **k))
    copy = tmp_path / "elsewhere" / "renamed.parquet"
    copy.parent.mkdir()
    copy.write_bytes(Path(small_source).read_bytes())
    moved = p.model_copy(update={"source": str(copy), "cache_dir": str(tmp_path / "other-cache")})
    out = clean_dataset(moved)
    assert calls == [] and out["unchanged"] and out["latest"] == "v0001"
    assert list_versions(tmp_path / "pub", "small") == ["v0001"]
    # one appended row with a new row_id is new data: a new version, with that row in its manifest
    frame = pd.read_parquet(copy)
    extra = frame.iloc[[0]].assign(row_id=int(frame.row_id.max()) + 1)
    pd.concat([frame, extra], ignore_index=True).to_parquet(copy, index=False)
    grown = clean_dataset(moved)
    assert grown["published"].endswith("v0002") and not grown.get("unchanged") and calls == [[0, 1]]
    assert list_versions(tmp_path / "pub", "small") == ["v0001", "v0002"]
    _, manifest, _ = load_published(grown["published"])
    assert len(manifest) == 401 and manifest.row_id.max() == frame.row_id.max() + 1


def test_a_failed_run_is_failed_with_its_one_line_reason(tmp_path, small_source):
    strict = params(tmp_path, small_source, max_drop_fraction=0.001,
                    clean={"gex": {"chains": 2, "cycles": 1, "ft_lr": 0.4}})
    state = clean_dataset(strict, return_state=True)
    assert state.is_failed()
    assert state.message.startswith("validation failed, nothing published: suite 'output'")
    assert "\n" not in state.message and "drop" in state.message
    with pytest.raises(ValidationFailedError):
        state.result()
    assert list_versions(tmp_path / "pub", "small") == []
    bad = params(tmp_path, str(tmp_path / "missing.parquet"))
    state = clean_dataset(bad, return_state=True)
    assert state.is_failed() and "missing.parquet" in state.message and "\n" not in state.message


def test_the_published_data_has_the_inputs_columns_and_the_ids_live_in_the_manifest(tmp_path, small_source):
    """The source has no row_id: the stage adds one to track rows, publishes it in the manifest only."""
    frame = pd.read_parquet(small_source).drop(columns=["row_id"], errors="ignore")
    source = tmp_path / "no_ids.parquet"
    frame.to_parquet(source)
    summary = clean_dataset(params(tmp_path, str(source), clean={"gex": {"chains": 2, "cycles": 1, "ft_lr": 0.4}}))
    ds, manifest, _ = load_published(summary["published"])
    assert ds.column_names == list(frame.columns)
    assert sorted(manifest.row_id) == list(range(len(frame))) and len(ds) == (manifest.action != "drop").sum()
    kept = manifest.loc[manifest.action != "drop"].sort_values("row_id")
    np.testing.assert_array_equal(np.asarray(ds["px_0"]), frame["px_0"].to_numpy()[kept.row_id.to_numpy()])


def test_load_retries_a_transient_error_and_fails_a_permanent_one_at_once(tmp_path, monkeypatch):
    import influence_stage.stage.steps as steps
    from influence_stage.orchestration.prefect_executor import PrefectExecutor
    from influence_stage.pipeline import RunContext
    from influence_stage.pipeline.clean import Load
    from influence_stage.stage.steps import CleanConfig

    load_task = PrefectExecutor().step_task(Load())  # the flow's load task: retried on transient I/O errors

    source = tmp_path / "s.parquet"
    pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "label": [0, 1, 0, 1]}).to_parquet(source)
    real, calls = steps.prepare, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OSError(errno.EIO, "input/output error")
        return real(*args, **kwargs)

    monkeypatch.setattr(steps, "prepare", flaky)
    prepared = load_task.with_options(retry_delay_seconds=0)(Load(), RunContext(CleanConfig(), str(source)))
    assert prepared.dataset.num_rows == 4 and len(calls) == 2

    def missing(*args, **kwargs):
        calls.append(1)
        raise FileNotFoundError(errno.ENOENT, "gone", str(source))

    calls.clear()
    monkeypatch.setattr(steps, "prepare", missing)
    with pytest.raises(FileNotFoundError):
        load_task.with_options(retry_delay_seconds=0)(Load(), RunContext(CleanConfig(), str(source)))
    assert len(calls) == 1


def _unit(i):
    return i * 10


def test_prefect_units_stop_on_the_steps_check_between_units():
    """A mapped step's check (e.g. a corpus shard changed under the run) also stops the Prefect executor."""
    from prefect import flow

    from influence_stage.orchestration.prefect_executor import PrefectExecutor
    from influence_stage.pipeline import RunContext
    from influence_stage.pipeline.step import MappedStep, WorkUnits

    checked = []

    def check():
        checked.append(1)
        if len(checked) >= 2:
            raise RuntimeError("shard 0 changed during the run")

    class Units(MappedStep):
        name, unit_name, writes = "units", "unit", ("values",)
        checks = False

        def run(self, context):
            return [_unit(i) for i in range(4)]

        def units(self, context):
            return WorkUnits(fn=_unit, shared={}, items=[{"i": i} for i in range(4)],
                             names=[f"unit {i}" for i in range(4)], check=check if self.checks else None)

        def gather(self, context, units, results):
            return results

    class Checked(Units):
        checks = True

    @flow
    def mapped(with_check):
        step = Checked() if with_check else Units()
        return PrefectExecutor().map_units(step, RunContext(CleanConfig(), "unused"))

    assert mapped(False) == [0, 10, 20, 30]
    with pytest.raises(RuntimeError, match="shard 0 changed"):
        mapped(True)
    assert len(checked) == 2

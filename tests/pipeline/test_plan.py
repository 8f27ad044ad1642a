"""The plan layer: steps, plans, the run context and the in-process executor."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from influence_stage import InvalidInputError
from influence_stage.config import CleanConfig, config_fingerprint
from influence_stage.pipeline import CLEAN, CLEAN_LIBRARY, SCORE, LocalExecutor, Plan, RunContext, Step
from influence_stage.pipeline.context import digest

#: What the runs put in the context before the first step.
INPUTS = {"fingerprint"}


class Add(Step):
    name, reads, writes, timing = "add", ("x",), ("y",), "arithmetic"

    def run(self, context):
        return context["x"] + 1


class Twice(Step):
    name, reads, writes, timing = "twice", ("y",), ("z", "w"), "arithmetic"

    def run(self, context):
        return 2 * context["y"], -context["y"]


class Never(Step):
    name, writes = "never", ("v",)

    def applies(self, context):
        return False

    def run(self, context):  # pragma: no cover - must not run
        raise AssertionError("a step that does not apply ran")


class Late(Add):
    name = "late"


class Halt(Step):
    name = "halt"

    def run(self, context):
        context.stop({"halted at": context["z"]})


def test_the_local_executor_runs_steps_in_order_and_skipped_steps_write_none():
    context = RunContext(config=CleanConfig(), values={"x": 3})
    LocalExecutor().run(Plan("toy", (Add(), Never(), Twice(), Halt(), Late())), context)
    assert (context["y"], context["z"], context["w"], context["v"]) == (4, 8, -4, None)
    assert context.stopped and context.outcome == {"halted at": 8}
    assert list(context.step_seconds) == ["add", "twice", "halt"]  # 'late' never ran: the run was stopped
    assert list(context.timings) == ["arithmetic", "halt"]  # add and twice add up under one label


def test_the_local_executor_hands_freed_memory_back_after_each_step_that_ran(monkeypatch):
    from influence_stage.pipeline import local

    calls = []
    monkeypatch.setattr(local, "release_free_memory", lambda: calls.append(sorted(context.values)))
    context = RunContext(config=CleanConfig(), values={"x": 3})
    LocalExecutor().run(Plan("toy", (Add(), Never(), Twice())), context)
    assert calls == [["x", "y"], ["v", "w", "x", "y", "z"]]  # after add and after twice (stored), not after never


def test_mapped_steps_run_their_units_in_process_with_the_check_between():
    from influence_stage.pipeline.step import MappedStep, WorkUnits

    seen = []

    class Squares(MappedStep):
        name, writes = "squares", ("s",)

        def units(self, context):
            return WorkUnits(fn=lambda base, i: base + i * i, shared={"base": 10}, items=[{"i": i} for i in range(3)],
                             names=["a", "b", "c"], check=lambda: seen.append("check"))

        def gather(self, context, units, results):
            return results

    context = RunContext(config=CleanConfig(), values={})
    LocalExecutor().run(Plan("toy", (Squares(),)), context)
    assert context["s"] == [10, 11, 14] and seen == ["check"] * 3


def test_a_missing_value_and_a_missing_cache_dir_are_clear_errors():
    context = RunContext(config=CleanConfig(), values={"x": 1})
    with pytest.raises(InvalidInputError, match=r"holds no 'learner'; it holds \['x'\].*Fix: run the plan"):
        context["learner"]
    with pytest.raises(InvalidInputError, match="run folder under cache_dir.*RunContext\\(cache_dir=...\\)"):
        RunContext(config=CleanConfig(), values={"fingerprint": "f"}).run_folder
    with pytest.raises(InvalidInputError, match="names a step twice: \\['add', 'add'\\]"):
        Plan("dup", (Add(), Add()))


def test_cache_keys_are_the_data_fingerprint_the_scoring_config_and_the_tag():
    config = CleanConfig(model="mlp")
    context = RunContext(config=config, values={"fingerprint": "abc"})
    fit, scale = CLEAN_LIBRARY.steps[3], SCORE.steps[0]
    assert (fit.name, fit.cached, scale.name, scale.cached) == ("fit-theta", True, "auto-scale", True)
    base = hashlib.sha256(f"abc|{config_fingerprint(config)}".encode()).hexdigest()[:32]
    assert fit.cache_key(context) == hashlib.sha256(f"{base}|theta".encode()).hexdigest()[:32]
    assert scale.cache_key(context) == digest(base, "scale") != fit.cache_key(context)
    # a decision setting does not touch the key; a scoring setting and other data do
    same = RunContext(config=config.model_copy(update={"threshold": "otsu", "action": "relabel"}),
                      values={"fingerprint": "abc"})
    assert fit.cache_key(same) == fit.cache_key(context)
    assert fit.cache_key(RunContext(config=CleanConfig(model="cnn"), values={"fingerprint": "abc"})) != \
        fit.cache_key(context)
    assert fit.cache_key(RunContext(config=config, values={"fingerprint": "abd"})) != fit.cache_key(context)
    with_dir = RunContext(config=config, values={"fingerprint": "abc"}, cache_dir=Path("/c"))
    assert with_dir.run_folder == Path("/c/runs") / base  # units of one data and scoring config share a folder


def test_the_plans_hold_the_step_order_once_and_every_read_is_written_before():
    assert CLEAN_LIBRARY.names == ["load", "validate-input", "featurize", "fit-theta", "auto-scale", "members",
                                   "losses", "decide", "issues", "apply", "validate-output"]
    assert CLEAN.names == ["preflight", "load", "validate-input", "featurize", "skip-unchanged", "fit-theta",
                           "auto-scale", "members", "losses", "decide", "issues", "apply", "validate-output", "summarize",
                           "bias-scores", "publish", "outcome"]
    assert [s.name for s in SCORE] == CLEAN_LIBRARY.names[4:7]
    for plan in (CLEAN_LIBRARY, CLEAN):
        written = set(INPUTS)
        for step in plan:
            missing = set(step.reads) - written
            assert not missing, f"{plan.name}: {step.name} reads {missing} before any step writes it"
            written |= set(step.writes)
    assert [s.name for s in CLEAN if s.cached] == ["fit-theta", "auto-scale"]
    assert [s.name for s in CLEAN if s.io] == ["load", "publish"]


def test_the_library_plan_gives_run_pipelines_scores(small_frame):
    from influence_stage.stage.run import run, score_step

    config = CleanConfig.from_mapping({"label_column": "label", "model": "mlp", "fit": {"epochs": 3},
                                       "gex": {"chains": 2, "cycles": 1, "ft_lr": 0.4}})
    result = run(small_frame, config, validate=False)
    context = LocalExecutor().run(CLEAN_LIBRARY, RunContext(config=config, source=small_frame, validate=False))
    np.testing.assert_array_equal(context["result"].scores, result.gex_result.scores)
    assert context["input_report"] is None and context["auto"] is None
    assert list(result.timings) == ["prepare", "featurize", "model", "score", "decide", "issues", "apply"]
    again = score_step(result.learner, result.features, config, prepared=result.prepared)
    np.testing.assert_array_equal(again.scores, result.gex_result.scores)


@pytest.fixture(scope="module")
def small_frame():
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=120, n_features=6, n_informative=4, n_classes=3, n_clusters_per_class=1,
                               random_state=0)
    frame = pd.DataFrame(X.astype(np.float32), columns=[f"f{i}" for i in range(6)])
    frame["label"] = y
    return frame

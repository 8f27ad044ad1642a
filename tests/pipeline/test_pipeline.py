"""Tests of influence_stage.stage.steps and influence_stage.config: CleanConfig, fingerprints, each step and their chaining."""

from __future__ import annotations

import os

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from influence_stage.config import FitConfig, GEXConfig  # noqa: E402
from influence_stage.errors import InvalidInputError, InvalidTypeError, ValidationFailedError  # noqa: E402
from influence_stage.engine.learner import TensorData, TorchLearner  # noqa: E402
from influence_stage.engine.losses import mean_member_proba  # noqa: E402
from influence_stage.engine.models import mlp  # noqa: E402
from influence_stage.stage.run import run_pipeline, score_step
from influence_stage.config import SCORE_KEYS, CleanConfig, config_fingerprint  # noqa: E402
from influence_stage.stage.steps import apply_step, decide_step, featurize_step, make_model_step, prepare  # noqa: E402
from influence_stage.data.fingerprint import column_fingerprints, dataset_fingerprint
from influence_stage.decisions import decide  # noqa: E402

DIGITS = Path(__file__).resolve().parents[2] / "data" / "digits"
PX = tuple(f"px_{j}" for j in range(64))
SMALL_GEX = GEXConfig(chains=2, cycles=2, ft_lr=0.4)
SMALL_FIT = FitConfig(epochs=20)


@pytest.fixture(scope="module")
def digits() -> datasets.Dataset:
    """The bundled demo (1797 rows, 10% flipped labels): row_id, image, px_0..px_63, label (ClassLabel)."""
    return datasets.Dataset.from_parquet(str(DIGITS / "train.parquet"))


@pytest.fixture(scope="module")
def small(digits) -> datasets.Dataset:
    return digits.select(range(400))


@pytest.fixture(scope="module")
def small_config() -> CleanConfig:
    return CleanConfig(feature_columns=PX, gex=SMALL_GEX, fit=SMALL_FIT)


@pytest.fixture(scope="module")
def small_run(small, small_config):
    return run_pipeline(small, small_config)


# --------------------------------------------------------------------------------------------------
# CleanConfig
# --------------------------------------------------------------------------------------------------


def test_config_round_trips_through_json_and_yaml(tmp_path):
    config = CleanConfig(feature_columns=["px_0", "px_1"], action="relabel", threshold="budget:0.1",
                         drop_cap=0.2, gex=GEXConfig(chains=3, ft_lr=0.2, lr_grid=(0.1, 0.2)),
                         fit=FitConfig(epochs=7), seed=5)
    assert config.feature_columns == ("px_0", "px_1")
    assert CleanConfig.model_validate(config.model_dump(mode="json")) == config
    path = tmp_path / "clean.yaml"
    config.to_yaml(path)
    assert CleanConfig.from_yaml(path) == config
    numeric = CleanConfig(threshold=0.25)
    numeric.to_yaml(path)
    assert CleanConfig.from_yaml(path).threshold == 0.25


def test_config_from_hand_written_yaml(tmp_path):
    path = tmp_path / "clean.yaml"
    path.write_text("label_column: target\nfeature_columns: [a, b]\naction: reweight\nthreshold: 3.5\n"
                    "gex:\n  chains: 2\n  cycles: 3\n  ft_lr: 0.1\nfit:\n  epochs: 5\n")
    config = CleanConfig.from_yaml(path)
    assert (config.label_column, config.feature_columns, config.action, config.threshold) == \
        ("target", ("a", "b"), "reweight", 3.5)
    assert (config.gex.chains, config.gex.cycles, config.gex.ft_lr, config.fit.epochs) == (2, 3, 0.1, 5)
    assert config.gex.tau == GEXConfig().tau  # unspecified nested fields keep their defaults
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert CleanConfig.from_yaml(empty) == CleanConfig()


def test_config_unknown_keys_are_named(tmp_path):
    path = tmp_path / "clean.yaml"
    path.write_text("actoin: drop\ngex:\n  chainz: 2\n")
    with pytest.raises(InvalidInputError, match=r"unknown key\(s\) \['actoin', 'gex.chainz'\]") as info:
        CleanConfig.from_yaml(path)
    assert "'action'" in str(info.value) and "'chains'" in str(info.value)  # the allowed keys are listed


def test_config_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="missing.yaml does not exist"):
        CleanConfig.from_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("action: [unclosed\n")
    with pytest.raises(InvalidInputError, match="not valid YAML"):
        CleanConfig.from_yaml(bad)
    bad.write_text("- a\n- b\n")
    with pytest.raises(InvalidInputError, match="must hold a mapping; found list"):
        CleanConfig.from_yaml(bad)
    with pytest.raises(InvalidInputError, match="threshold.*unknown threshold 'median'"):
        CleanConfig.from_mapping({"threshold": "median"})
    with pytest.raises(InvalidInputError, match="at least 2 members"):
        CleanConfig.from_mapping({"gex": {"chains": 1, "cycles": 1}})
    with pytest.raises(InvalidInputError, match="action"):
        CleanConfig.from_mapping({"action": "delete"})
    with pytest.raises(InvalidInputError, match="found bool"):
        CleanConfig.from_mapping({"threshold": True})


def test_config_fingerprint_covers_only_score_fields():
    base = CleanConfig()
    fp = config_fingerprint(base)
    assert len(fp) == 64 and fp == config_fingerprint(CleanConfig())
    # Decision settings do not change members or scores.
    assert config_fingerprint(base.model_copy(update={"action": "relabel", "threshold": "gmm"})) == fp
    # Score settings do.
    assert config_fingerprint(base.model_copy(update={"gex": GEXConfig(chains=2)})) != fp
    assert config_fingerprint(base.model_copy(update={"fit": FitConfig(epochs=3)})) != fp
    assert config_fingerprint(base.model_copy(update={"feature_columns": ("a",)})) != fp
    assert config_fingerprint(base, keys=["action"]) != config_fingerprint(
        base.model_copy(update={"action": "relabel"}), keys=["action"])
    assert "action" not in SCORE_KEYS
    with pytest.raises(InvalidInputError, match="unknown.*'nope'"):
        config_fingerprint(base, keys=["gex", "nope"])
    with pytest.raises(InvalidTypeError, match="CleanConfig"):
        config_fingerprint({"gex": {}})


# --------------------------------------------------------------------------------------------------
# dataset fingerprint
# --------------------------------------------------------------------------------------------------


def test_dataset_fingerprint_is_content_based(small):
    fp = dataset_fingerprint(small)
    assert len(fp) == 64
    # Same content built three other ways: an indices mapping, chunks, a round trip through pandas.
    assert dataset_fingerprint(small.select(range(small.num_rows))) == fp
    halves = datasets.concatenate_datasets([small.select(range(150)).flatten_indices(),
                                            small.select(range(150, 400)).flatten_indices()])
    assert dataset_fingerprint(halves) == fp
    assert dataset_fingerprint(datasets.Dataset.from_pandas(small.to_pandas(), features=small.features)) == fp
    # datasets' own fingerprint is not content-based: that is why we hash.
    assert small.select(range(small.num_rows))._fingerprint != small._fingerprint


def test_dataset_fingerprint_changes_with_one_label_a_name_or_the_order(small):
    fp = dataset_fingerprint(small)
    labels = np.array(small["label"])
    labels[7] = (labels[7] + 1) % 10
    one_label = small.remove_columns("label").add_column("label", labels.tolist(), feature=small.features["label"])
    assert dataset_fingerprint(one_label) != fp
    digests, changed = column_fingerprints(small), column_fingerprints(one_label)
    assert [c for c in digests if digests[c] != changed[c]] == ["label"]
    assert dataset_fingerprint(small.rename_column("px_0", "px_zero")) != fp
    assert dataset_fingerprint(small.select(range(399, -1, -1))) != fp
    renamed_classes = small.cast_column("label", datasets.ClassLabel(names=[f"d{i}" for i in range(10)]))
    assert dataset_fingerprint(renamed_classes) != fp  # same codes, other class names


def test_dataset_fingerprint_of_array_images():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3, 8, 8)).astype(np.float32), np.arange(20) % 2
    a = prepare((X, y), CleanConfig()).dataset
    b = prepare((X.copy(), y.copy()), CleanConfig()).dataset
    assert dataset_fingerprint(a) == dataset_fingerprint(b)
    X[3, 0, 0, 0] += 1.0
    assert dataset_fingerprint(prepare((X, y), CleanConfig()).dataset) != dataset_fingerprint(a)


# --------------------------------------------------------------------------------------------------
# prepare: input checks
# --------------------------------------------------------------------------------------------------


def test_prepare_adds_row_ids_and_encodes_labels(small):
    prepared = prepare(small.remove_columns("row_id"), CleanConfig(feature_columns=PX))
    assert prepared.dataset["row_id"] == list(range(400))
    assert prepared.roles.feature_columns == PX and prepared.roles.kind == "tabular"
    assert prepared.encoding.names == tuple(str(i) for i in range(10))
    np.testing.assert_array_equal(prepared.encoding.codes, np.array(small["label"]))


def test_prepare_errors():
    frame = pd.DataFrame({"x": [0.1, 0.2, 0.3, 0.4, 0.5], "label": ["a", "a", "b", "b", "c"]})
    with pytest.raises(InvalidInputError, match=r"single row: class 'c' \(row_id 4\)"):
        prepare(frame, CleanConfig())
    with pytest.raises(InvalidInputError, match=r"1 class\(es\) \['a'\]; expected at least 2"):
        prepare(frame.assign(label="a"), CleanConfig())
    missing = r"label column 'target' not found; available columns: \['x', 'label'\]"
    with pytest.raises(InvalidInputError, match=missing):
        prepare(frame, CleanConfig(label_column="target"))
    with pytest.raises(InvalidInputError, match="0 rows"):
        prepare(frame.iloc[:0], CleanConfig())
    with pytest.raises(InvalidTypeError, match="CleanConfig"):
        prepare(frame, {"label_column": "label"})


# --------------------------------------------------------------------------------------------------
# steps and chaining
# --------------------------------------------------------------------------------------------------


def test_run_pipeline_accounts_for_every_row(small, small_run):
    table = small_run.decisions.table
    np.testing.assert_array_equal(table["row_id"].to_numpy(), np.array(small["row_id"]))
    np.testing.assert_array_equal(table["score"].to_numpy(), small_run.gex_result.scores)
    assert small_run.gex_result.loss_matrix.shape == (400, 4) and len(small_run.gex_result.members) == 4
    dropped = set(table.loc[table["action"] == "drop", "row_id"])
    assert 0 < len(dropped) < 200
    assert set(small_run.cleaned["row_id"]) == set(small["row_id"]) - dropped
    assert small_run.cleaned.num_rows == 400 - len(dropped)
    assert list(small_run.timings) == ["prepare", "validate input", "featurize", "model", "score", "decide",
                                       "issues", "apply", "validate output"]
    assert all(t >= 0 for t in small_run.timings.values())
    assert [r.suite for r in small_run.reports] == ["input", "output"] and all(r.success for r in small_run.reports)
    assert small_run.summary["rows in"] == 400 and small_run.summary["rows out"] == small_run.cleaned.num_rows


def test_the_library_path_stops_when_the_output_gate_fails(small, small_config):
    """The gates run in run_pipeline too: more dropped rows than the gate allows is an error, no result."""
    with pytest.raises(ValidationFailedError, match="(?s)suite 'output'.*drop_fraction"):
        run_pipeline(small, small_config, max_drop_fraction=0.001)


def test_run_pipeline_is_deterministic(small, small_config, small_run):
    again = run_pipeline(small, small_config)
    np.testing.assert_array_equal(again.gex_result.scores, small_run.gex_result.scores)
    pd.testing.assert_frame_equal(again.decisions.table, small_run.decisions.table)


def test_steps_compose_to_run_pipeline(small, small_config, small_run):
    prepared = prepare(small, small_config)
    features = featurize_step(prepared, small_config)
    assert features.X.dtype == np.float32 and features.X.shape == (400, 64)
    assert features.y.dtype == np.int64 and features.n_classes == 10
    np.testing.assert_allclose(features.X.mean(0), 0, atol=1e-5)  # standardised
    learner = make_model_step(features, small_config)
    result = score_step(learner, features, small_config)
    np.testing.assert_array_equal(result.scores, small_run.gex_result.scores)
    decisions = decide_step(result, features, small_config)
    pd.testing.assert_frame_equal(decisions.table, small_run.decisions.table)


def test_decide_step_suggests_the_members_consensus(small_run, small_config):
    from influence_stage.decisions.suggest import confident_suggestions, suggest_labels, suggestion_proba

    config = small_config.model_copy(update={"action": "relabel"})
    result = small_run.gex_result
    decisions = decide_step(result, small_run.features, config)
    members = mean_member_proba(small_run.learner, result.members,
                                TensorData.from_arrays(small_run.features.X, small_run.features.y))
    proba = suggestion_proba(members, result.oos_proba, result.auxiliary)
    table = decisions.table
    flagged = table["is_issue"].to_numpy()
    # the shown suggestion is the best other label where it is confident (min_agreement, a lead over the given
    # label, and a higher floor when the cross-fitted model is weak), else empty
    best = suggest_labels(proba, small_run.features.y, flagged)
    shown = table["suggested_label"].notna().to_numpy()
    np.testing.assert_array_equal(table["suggested_label"].to_numpy(dtype=np.int64, na_value=-1)[shown], best[shown])
    confident = confident_suggestions(proba, small_run.features.y, best, min_proba=config.min_agreement,
                                      oos_proba=result.oos_proba)
    assert (proba[np.arange(len(best)), best][confident] >= config.min_agreement).all()
    np.testing.assert_array_equal(shown[flagged], confident[flagged])
    assert not (table.loc[flagged, "suggested_label"] == table.loc[flagged, "given_label"]).any()
    relabeled = table["action"] == "relabel"
    assert relabeled.sum() > 0
    assert (table.loc[relabeled, "suggested_label"] != table.loc[relabeled, "given_label"]).all()
    assert (proba[relabeled.to_numpy(), table.loc[relabeled, "suggested_label"]] >= config.min_agreement).all()


def test_decide_step_passes_the_relabel_rule_settings(small_run, small_config, monkeypatch):
    """relabel_margin, weak_min_agreement and reverse_flip_alpha of the configuration reach the relabel rule,
    and a larger margin relabels a subset of the default's rows, each leading its given label by the margin."""
    from influence_stage.decisions import policies
    from influence_stage.decisions.suggest import suggestion_proba

    result, y = small_run.gex_result, small_run.features.y
    default = decide_step(result, small_run.features, small_config.model_copy(update={"action": "relabel"}))
    strict = decide_step(result, small_run.features, small_config.model_copy(
        update={"action": "relabel", "relabel_margin": 0.8}))
    members = mean_member_proba(small_run.learner, result.members, TensorData.from_arrays(small_run.features.X, y))
    proba = suggestion_proba(members, result.oos_proba, result.auxiliary)
    before = (default.table["action"] == "relabel").to_numpy()
    after = (strict.table["action"] == "relabel").to_numpy()
    lead = proba[np.arange(len(y)), default.table["suggested_label"].to_numpy(dtype=np.int64, na_value=0)] \
        - proba[np.arange(len(y)), y]
    assert not (after & ~before).any() and (lead[after] >= 0.8 - 1e-9).all()
    assert (before & (lead < 0.8)).any()  # the default relabels rows the larger margin leaves out

    seen = {}
    real = policies.confident_suggestions

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(policies, "confident_suggestions", spy)
    decide_step(result, small_run.features, small_config.model_copy(
        update={"action": "relabel", "relabel_margin": 0.4, "weak_min_agreement": 0.9, "reverse_flip_alpha": None}))
    assert (seen["margin"], seen["weak_min_proba"], seen["reverse_flip_alpha"]) == (0.4, 0.9, None)


def test_apply_step_relabel_and_reweight(small_run, small_config):
    prepared, scores, y = small_run.prepared, small_run.gex_result.scores, small_run.features.y
    proba = np.eye(10)[(y + 1) % 10] * 0.9 + 0.01  # members "say" the next class, p = 0.91
    decisions = decide(scores, y, threshold="budget:0.1", action="relabel", proba=proba,
                       row_ids=small_run.features.row_ids)
    relabel_config = small_config.model_copy(update={"action": "relabel"})
    out = apply_step(prepared, decisions, relabel_config)
    assert out.num_rows == 400 and out.features["label"] == prepared.dataset.features["label"]
    changed = np.array(out["label"]) != y
    np.testing.assert_array_equal(changed, decisions.table["action"].to_numpy() == "relabel")
    assert changed.sum() == 40
    np.testing.assert_array_equal(np.array(out["label"])[changed], (y[changed] + 1) % 10)

    reweight_config = small_config.model_copy(update={"action": "reweight"})
    nothing = decide(scores, y, threshold=1e12, action="reweight", row_ids=small_run.features.row_ids)
    assert not nothing.table["is_issue"].any()
    out = apply_step(prepared, nothing, reweight_config)
    assert out.column_names[-1] == "weight" and out["weight"] == [1.0] * 400  # schema fixed by the action
    with pytest.raises(InvalidInputError, match="'px_0' already exists"):
        apply_step(prepared, nothing, reweight_config.model_copy(update={"weight_column": "px_0"}))


def test_make_model_step_uses_a_given_module_as_trained(small_run, small_config):
    module = mlp(64, 10, hidden=(16,), seed=3)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    learner = make_model_step(small_run.features, small_config, module)
    assert isinstance(learner, TorchLearner) and learner.module is module
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())  # not retrained
    assert make_model_step(small_run.features, small_config, learner) is learner
    with pytest.raises(InvalidTypeError, match="model must be"):
        make_model_step(small_run.features, small_config, 42)
    with pytest.raises(InvalidInputError, match="unknown model name 'resnet'"):
        make_model_step(small_run.features, small_config.model_copy(update={"model": "resnet"}))


# --------------------------------------------------------------------------------------------------
# The guard: binding caps, a flagged share far above the noise estimate, the drop gate
# --------------------------------------------------------------------------------------------------


def test_a_loose_threshold_and_a_binding_cap_are_named_in_the_summary(small, small_config, caplog):
    """budget:0.6 flags 60% of rows, far above the estimated noise; the per-class cap (0.5) binds."""
    config = small_config.model_copy(update={"threshold": "budget:0.6"})
    with caplog.at_level("WARNING", logger="influence_stage"):
        result = run_pipeline(small, config, max_drop_fraction=1.0)
    warnings = result.summary["warnings"]
    assert any(w.startswith("per-class cap on class") for w in warnings)
    assert any("far above the estimated noise rate" in w and "'budget'" in w for w in warnings)
    assert result.decisions.caps and all(c in warnings for c in result.decisions.caps)
    logged = [r.getMessage() for r in caplog.records]
    assert all(w in logged for w in warnings)


def test_the_guard_measures_a_loose_threshold_against_the_configured_count():
    """Under a threshold other than 'estimate' the guard counts the run's out-of-sample probabilities itself,
    with the count GEXConfig.estimate_count names (the one 'estimate' would have flagged)."""
    from types import SimpleNamespace

    from influence_stage.decisions.estimate import both_count, confident_joint_count
    from influence_stage.stage.summary import guard_warnings

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 100)
    P = rng.dirichlet(np.ones(3), size=300) * 0.4
    P[np.arange(300), y] += 0.6
    wrong = rng.choice(300, 45, replace=False)
    P[wrong] = P[wrong][:, ::-1]  # the model leans to another class on 45 rows
    flagged = np.zeros(300, bool)
    flagged[:200] = True
    decisions = SimpleNamespace(caps=(), table=pd.DataFrame({"is_issue": flagged, "given_label": y}),
                                threshold=SimpleNamespace(n_estimated=None, method="budget"))
    result = SimpleNamespace(oos_proba=P)
    for count, n in (("both", both_count(y, P)), ("confident_joint", confident_joint_count(y, P))):
        [line] = guard_warnings(result, decisions, estimate_count=count)
        assert f"({n / 300:.1%}, {n} rows)" in line and "'budget'" in line
    assert both_count(y, P) != confident_joint_count(y, P)  # so the two lines differ


def test_the_default_threshold_raises_no_guard_warning(small_run):
    assert "warnings" not in small_run.summary
    assert small_run.decisions.caps == ()


def test_the_drop_gate_stops_a_mass_drop_and_says_how_to_raise_it(small, small_config):
    from influence_stage import InfluenceCleaner

    config = small_config.model_copy(update={"threshold": "budget:0.45", "max_fraction_per_class": None})
    with pytest.raises(ValidationFailedError, match=r"(?s)drop_fraction.*raise max_drop_fraction"):
        run_pipeline(small, config)  # the gate's default is 0.3
    cleaner = InfluenceCleaner(feature_columns=PX, gex_config=SMALL_GEX, fit_config=SMALL_FIT, threshold="budget:0.45",
                               max_fraction_per_class=None, random_state=0)
    with pytest.raises(ValidationFailedError, match="raise max_drop_fraction"):
        cleaner.fit(small)
    assert len(cleaner.issues_) == small.num_rows  # the refused fit stays for inspection (transform refuses)
    with pytest.raises(InvalidInputError, match=r"max_drop_fraction must be in \(0, 1\]; found 0"):
        InfluenceCleaner(feature_columns=PX, max_drop_fraction=0).fit(small)


def test_a_prune_budget_is_not_bounded_by_the_drop_gate(small, small_config):
    """Keeping 50% by self-influence drops half the rows on purpose: the gate's 0.3 does not stop it."""
    config = small_config.model_copy(update={"action": "prune", "prune_keep": 0.5})
    result = run_pipeline(small, config)
    assert (result.decisions.table["action"] == "drop").sum() == 200
    assert result.cleaned.num_rows == 200 and all(r.success for r in result.reports)

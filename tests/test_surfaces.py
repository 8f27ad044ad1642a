"""One configuration, three surfaces: every field of the stage configuration is reachable from the estimator's
parameters, from the CLI's flags (or its ``--config`` YAML, for whole sections) and from YAML keys, or it is listed
in an ``EXCLUDED`` dict with the reason.

Each surface's reachable set is computed by setting a non-default value through it and reading it back from the
configuration built, so a listed route that stops working fails here; the reachable set plus the exclusions must
equal the fields exactly, so a field added to ``CleanConfig``, one of its sections or ``FlowConfig`` without a
surface (or an exclusion) fails here too.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from typing import Any  # noqa: E402

import pytest  # noqa: E402
import yaml  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from influence_stage.config import CleanConfig, FitConfig, GEXConfig  # noqa: E402
from influence_stage.config.featurize import FeaturizeConfig  # noqa: E402
from influence_stage.orchestration.flow import FlowConfig  # noqa: E402

SECTIONS: dict[str, type[BaseModel]] = {"gex": GEXConfig, "fit": FitConfig, "featurize": FeaturizeConfig}
SEED_FIELDS = ("seed", "gex.seed", "fit.seed", "featurize.seed")

#: Fields the estimator does not reach, with the reason.
EXCLUDED_ESTIMATOR: dict[str, str] = {
    **{f: "derived from random_state by influence_stage.seeds (the same rule as --seed)" for f in SEED_FIELDS},
    "flow.source": "the data is fit()'s argument",
    "flow.name": "the estimators publish nothing (save() / export() write files)",
    "flow.publish_root": "the estimators publish nothing",
    "flow.push_to_hub": "the estimators publish nothing",
    "flow.skip_unchanged": "the estimators publish nothing",
    "flow.keep": "retention of published versions: the estimators publish nothing",
    "flow.cache_dir": "the estimators keep no cache between fits (the fitted attributes are the result)",
    "flow.cache_expiration_days": "the estimators keep no cache between fits",
    "flow.truth": "the demo's ground truth for the published report; an estimator is scored by its caller",
    "flow.chains_per_task": "flow task layout: an estimator runs in one process",
    "flow.task_timeout_s": "flow task timeouts: an estimator runs in one process",
    "flow.notify_webhook": "flow failure notices: an estimator raises in the caller's process",
    "flow.clean": "the estimator's parameters build it (build_config)",
}

#: Fields the CLI does not reach by a flag or the --config YAML, with the reason.
EXCLUDED_CLI: dict[str, str] = {
    "flow.clean": "the clean flags and the --config YAML's clean section build it",
}

#: The estimator's routes: field -> (parameter, value given, value in the configuration).
ESTIMATOR_ROUTES: dict[str, tuple[str, Any, Any]] = {
    "label_column": ("label_column", "y", "y"),
    "feature_columns": ("feature_columns", ["a", "b"], ("a", "b")),
    "split": ("split", "train", "train"),
    "coerce_numeric": ("coerce_numeric", True, True),
    "normalize_labels": ("normalize_labels", ["strip"], ("strip",)),
    "issue_types": ("issue_types", ["outlier"], ("outlier",)),
    "model": ("model", "mlp", "mlp"),
    "fit_loaded": ("fit_loaded", True, True),
    "hf_trainable": ("hf_trainable", "all", "all"),
    "action": ("action", "relabel", "relabel"),
    "prune_keep": ("prune_keep", 0.5, 0.5),
    "prune_high_share": ("prune_high_share", 0.25, 0.25),
    "prune_per_class": ("prune_per_class", True, True),
    "prune_tau": ("prune_tau", 0.1, 0.1),
    "threshold": ("threshold", "quantile:0.9", "quantile:0.9"),
    "min_agreement": ("min_agreement", 0.7, 0.7),
    "relabel_margin": ("relabel_margin", 0.4, 0.4),
    "weak_min_agreement": ("weak_min_agreement", 0.9, 0.9),
    "reverse_flip_alpha": ("reverse_flip_alpha", None, None),
    "relabel_fallback": ("relabel_fallback", "keep", "keep"),
    "relabel_rule": ("relabel_rule", "soft", "soft"),
    "max_fraction_per_class": ("max_fraction_per_class", 0.2, 0.2),
    "drop_cap": ("drop_cap", 0.1, 0.1),
    "min_weight": ("min_weight", 0.2, 0.2),
    "weight_column": ("weight_column", "w", "w"),
    "gex.score": ("score", "gex", "gex"),
    "flow.max_drop_fraction": ("max_drop_fraction", 0.5, None),  # the gate: checked by run_gated, not a config field
    "flow.progress": ("progress", True, None),
}
#: Checkpoint-only: ``model_builder`` needs a checkpoint model (validated with the model string).
ESTIMATOR_PAIRS: dict[str, dict[str, Any]] = {"model_builder": {"model": "net.pt", "model_builder": "cnn"}}

#: The CLI's routes: field -> (flags, value in the FlowConfig).
CLI_ROUTES: dict[str, tuple[list[str], Any]] = {
    "label_column": (["--label-column", "y"], "y"),
    "feature_columns": (["--feature-columns", "a", "b"], ("a", "b")),
    "split": (["--split", "train"], "train"),
    "coerce_numeric": (["--coerce-numeric"], True),
    "normalize_labels": (["--normalize-labels", "strip"], ("strip",)),
    "issue_types": (["--issue-types", "outlier"], ("outlier",)),
    "model": (["--model", "mlp"], "mlp"),
    "model_builder": (["--model", "net.pt", "--model-builder", "cnn"], "cnn"),
    "fit_loaded": (["--fit-loaded"], True),
    "hf_trainable": (["--hf-trainable", "all"], "all"),
    "action": (["--action", "relabel"], "relabel"),
    "prune_keep": (["--prune-keep", "0.5"], 0.5),
    "prune_high_share": (["--prune-high-share", "0.25"], 0.25),
    "prune_per_class": (["--prune-per-class"], True),
    "prune_tau": (["--prune-tau", "0.1"], 0.1),
    "threshold": (["--threshold", "quantile:0.9"], "quantile:0.9"),
    "min_agreement": (["--min-agreement", "0.7"], 0.7),
    "relabel_margin": (["--relabel-margin", "0.4"], 0.4),
    "weak_min_agreement": (["--weak-min-agreement", "0.9"], 0.9),
    "reverse_flip_alpha": (["--reverse-flip-alpha", "none"], None),
    "relabel_fallback": (["--relabel-fallback", "keep"], "keep"),
    "relabel_rule": (["--relabel-rule", "soft"], "soft"),
    "max_fraction_per_class": (["--max-fraction-per-class", "0.2"], 0.2),
    "drop_cap": (["--drop-cap", "0.1"], 0.1),
    "min_weight": (["--min-weight", "0.2"], 0.2),
    "weight_column": (["--weight-column", "w"], "w"),
    "seed": (["--seed", "3"], None),  # derived: checked against influence_stage.seeds below
    "gex.seed": (["--seed", "3"], None),
    "fit.seed": (["--seed", "3"], None),
    "featurize.seed": (["--seed", "3"], None),
    "gex.ft_lr": (["--ft-lr", "0.3"], 0.3),
    "gex.device": (["--device", "auto"], "auto"),
    "gex.score": (["--score", "gex"], "gex"),
    "featurize.text_model": (["--text-model", "enc"], "enc"),
    "featurize.featurizer": (["--featurizer", "tabular"], "tabular"),
    "flow.source": (["--source", "elsewhere"], "elsewhere"),
    "flow.name": (["--name", "other"], "other"),
    "flow.publish_root": (["--publish-root", "pub"], "pub"),
    "flow.cache_dir": (["--cache-dir", "c"], "c"),
    "flow.max_drop_fraction": (["--max-drop-fraction", "0.5"], 0.5),
    "flow.truth": (["--truth", "t.parquet"], "t.parquet"),
    "flow.progress": (["--progress"], True),
    "flow.chains_per_task": (["--chains-per-task", "2"], 2),
    "flow.push_to_hub": (["--push-to-hub", "me/d"], "me/d"),
    "flow.skip_unchanged": (["--skip-unchanged"], True),
    "flow.keep": (["--keep", "3"], 3),
    "flow.notify_webhook": (["--notify-webhook", "https://x.test/h"], "https://x.test/h"),
    "flow.task_timeout_s": (["--task-timeout-s", "60"], 60.0),
    "flow.cache_expiration_days": (["--cache-expiration-days", "none"], None),
}

#: Non-default section values, for the section routes (estimator section objects, the --config YAML).
SECTION_VALUES: dict[str, dict[str, Any]] = {
    "gex": {"chains": 3, "cycles": 2, "cycle_epochs": 0.5, "min_cycle_steps": 4, "ft_lr": 0.3, "lr_grid": [0.1, 0.2],
            "holdout_epochs": 3, "probe_chains": 1, "probe_cycles": 2, "batch_size": 32, "momentum": 0.5,
            "weight_decay": 0.0, "tau": 0.1, "score": "gex", "trim": 2, "eval_batch_size": 99, "member_chunk": 4,
            "seed": 7, "device": "auto", "floored_aux_share": 0.5, "floored_aux_first": 0.5,
            "image_lr_grid": [0.01, 0.02], "image_min_cycle_steps": 5, "image_eval_batch_size": 64,
            "image_aux_shift": 3, "image_aux_views": 9, "aux_folds": 3,
            "image_aux_lr_scale": 2.0, "image_aux_batch_size": 32, "cnn_blocks": 3, "image_gex_rank": True,
            "image_chains": 3,
            "estimate_count": "confident_joint"},
    "fit": {"epochs": 3, "lr": 0.1, "batch_size": 16, "momentum": 0.5, "weight_decay": 0.0, "seed": 7,
            "max_steps": None, "min_steps": 500, "min_steps_inputs": "all", "shift_pixels": 1},
    "featurize": {"image_size": [8, 8], "text_max_features": 99, "text_components": 9, "text_model": "enc",
                  "featurizer": "tabular", "seed": 7, "on_disk": True, "on_disk_above": 99},
}


def all_fields() -> set[str]:
    """Every field: CleanConfig's (sections by ``section.field``) and FlowConfig's as ``flow.field``."""
    fields = {f for f in CleanConfig.model_fields if f not in SECTIONS}
    fields |= {f"{s}.{f}" for s, cls in SECTIONS.items() for f in cls.model_fields}
    return fields | {f"flow.{f}" for f in FlowConfig.model_fields}


def _get(config: CleanConfig, field: str) -> Any:
    section, _, name = field.rpartition(".")
    return getattr(getattr(config, section) if section else config, name)


def estimator_reachable() -> set[str]:
    """The fields an ``InfluenceCleaner`` parameter sets, each checked through ``build_config``."""
    from influence_stage.api import InfluenceCleaner

    reached = set()
    for field, (param, given, expected) in ESTIMATOR_ROUTES.items():
        cleaner = InfluenceCleaner(**{param: given})
        assert param in cleaner.get_params()
        if field.startswith("flow."):
            assert cleaner.get_params()[param] == given
        else:
            config, _ = cleaner._config()
            assert _get(config, field) == expected, field
        reached.add(field)
    for field, params in ESTIMATOR_PAIRS.items():
        config, _ = InfluenceCleaner(**params)._config()
        assert _get(config, field) == params[field]
        reached.add(field)
    for section, cls in SECTIONS.items():  # a section object: every field but the seed goes through as given
        given = cls.model_validate(SECTION_VALUES[section])
        config, _ = InfluenceCleaner(**{f"{section}_config": given}, random_state=0)._config()
        got = getattr(config, section)
        assert got == given.model_copy(update={"seed": got.seed})
        reached |= {f"{section}.{f}" for f in cls.model_fields if f != "seed"}
    return reached


def cli_reachable(tmp_path) -> set[str]:
    """The fields a ``clean`` flag or the ``--config`` YAML's sections set, each checked through ``flow_config``."""
    from influence_stage.cli.clean import flow_config
    from influence_stage.cli.main import _parser
    from influence_stage.seeds import derive_seeds

    base = ["clean", "--source", str(tmp_path), "--name", "t"]
    reached = set()
    for field, (flags, expected) in CLI_ROUTES.items():
        params = flow_config(_parser().parse_args([*base, *flags]))
        if field.endswith("seed"):
            seeds = derive_seeds(3)
            want = {"seed": seeds.run, "gex.seed": seeds.gex, "fit.seed": seeds.fit, "featurize.seed": seeds.featurize}
            assert _get(params.clean, field) == want[field]
        elif field.startswith("flow."):
            assert getattr(params, field[5:]) == expected, field
        else:
            assert _get(params.clean, field) == expected, field
        reached.add(field)
    path = tmp_path / "flow.yaml"
    path.write_text(yaml.safe_dump({"source": str(tmp_path), "name": "t", "clean": SECTION_VALUES}), "utf-8")
    params = flow_config(_parser().parse_args(["clean", "--config", str(path)]))
    for section, cls in SECTIONS.items():
        assert getattr(params.clean, section) == cls.model_validate(SECTION_VALUES[section])
        reached |= {f"{section}.{f}" for f in cls.model_fields}
    return reached


def yaml_reachable(tmp_path) -> set[str]:
    """The fields a ``--config`` YAML file sets: every key of a non-default FlowConfig round-trips."""
    clean = CleanConfig.model_validate({"label_column": "y", "feature_columns": ["a"], "split": "train",
                                        "coerce_numeric": True, "normalize_labels": ["strip"],
                                        "issue_types": ["outlier"], "model": "net.pt", "model_builder": "cnn",
                                        "fit_loaded": True, "hf_trainable": "all", "action": "prune",
                                        "prune_keep": 0.5, "prune_high_share": 0.2, "prune_per_class": True,
                                        "prune_tau": 0.1, "threshold": "quantile:0.9", "min_agreement": 0.7,
                                        "relabel_margin": 0.4, "weak_min_agreement": 0.9,
                                        "reverse_flip_alpha": 0.01, "relabel_fallback": "keep", "relabel_rule": "soft",
                                        "max_fraction_per_class": 0.2, "drop_cap": 0.1, "min_weight": 0.2,
                                        "weight_column": "w", "seed": 5, **SECTION_VALUES})
    flow = FlowConfig(source="s", name="n", clean=clean, publish_root="p", cache_dir="c", max_drop_fraction=0.5,
                      truth="t", progress=True, chains_per_task=2, push_to_hub="me/d", skip_unchanged=True, keep=3,
                      notify_webhook="https://x.test/h", task_timeout_s=60, cache_expiration_days=None)
    path = tmp_path / "round.yaml"
    path.write_text(yaml.safe_dump(flow.model_dump(mode="json")), "utf-8")
    back = FlowConfig.from_yaml(path)
    assert back == flow
    default = FlowConfig(source="elsewhere", name="other")  # required fields: any other value
    differs = {f"flow.{f}" for f in FlowConfig.model_fields if getattr(flow, f) != getattr(default, f)}
    differs |= {f for f in all_fields() if not f.startswith("flow.") and _get(clean, f) != _get(default.clean, f)}
    return differs


def test_every_field_is_reached_from_the_estimator_or_excluded_with_a_reason():
    reached = estimator_reachable()
    assert reached | set(EXCLUDED_ESTIMATOR) == all_fields()
    assert not reached & set(EXCLUDED_ESTIMATOR)  # an excluded field that has a route: drop the exclusion
    assert all(reason.strip() for reason in EXCLUDED_ESTIMATOR.values())


def test_every_field_is_reached_from_the_cli_or_excluded_with_a_reason(tmp_path):
    reached = cli_reachable(tmp_path)
    assert reached | set(EXCLUDED_CLI) == all_fields()
    assert not reached & set(EXCLUDED_CLI)


def test_every_field_is_a_yaml_key(tmp_path):
    assert yaml_reachable(tmp_path) == all_fields()


def test_a_new_field_without_a_surface_fails_the_check(monkeypatch, tmp_path):
    from pydantic import Field, create_model

    grown = create_model("CleanConfig", __base__=CleanConfig, new_knob=(int, Field(1, description="new")))
    monkeypatch.setattr(f"{__name__}.CleanConfig", grown)
    assert "new_knob" in all_fields()
    with pytest.raises(AssertionError, match="new_knob"):
        test_every_field_is_reached_from_the_estimator_or_excluded_with_a_reason()
    with pytest.raises(AssertionError, match="new_knob"):
        test_every_field_is_reached_from_the_cli_or_excluded_with_a_reason(tmp_path)


# -- the curation flow: every CurateConfig field has a curate flag and a YAML key ---------------------

#: A non-default value of every CurateConfig field (the required ones: any value).
CURATE_VALUES: dict[str, Any] = {
    "source": "shards", "name": "corpus", "model": "lm", "budget": 0.5, "budget_tokens": 9000, "text_column": "body",
    "id_column": "doc", "high_share": 0.25, "dedup": False, "near_dedup": 0.8, "min_chars": 5, "max_chars": 900,
    "skip_invalid": True, "trainable": "last:1", "max_length": 64, "max_chunks": 2, "batch_size": 8,
    "batch_tokens": 4096, "adapt_steps": 30, "adapt_lr": 0.003, "chains": 3, "cycles": 3, "cycle_steps": 7,
    "cycle_epochs": 0.5, "shard_docs": 100, "output_shard_rows": 50, "output_shard_bytes": 10_000,
    "score": "reference", "reference": "ref", "eval_dtype": "bfloat16", "ft_lr": 0.02, "tau": 0.1, "seed": 3,
    "device": "cuda", "publish_root": "pub", "cache_dir": "c", "progress": True,
    "notify_webhook": "https://x.test/h", "reference_members": 6, "reference_steps": 50, "reference_lr": 0.1,
}
#: CurateConfig fields without a curate flag or YAML key, with the reason (none: every field has both).
EXCLUDED_CURATE: dict[str, str] = {}


def _curate_fields() -> set[str]:
    from influence_stage.orchestration.curate_config import CurateConfig

    return set(CurateConfig.model_fields)


def test_every_curate_field_is_a_flag_or_excluded_with_a_reason():
    from influence_stage.cli.curate import field_flags
    from influence_stage.cli.main import _parser
    from influence_stage.orchestration.curate import curate_config
    from influence_stage.orchestration.curate_config import CurateConfig

    assert set(CURATE_VALUES) | set(EXCLUDED_CURATE) == _curate_fields()
    default = CurateConfig(source="s0", name="n0", model="m0", budget=1.0)
    flags = field_flags()
    reached = set()
    for field, value in CURATE_VALUES.items():
        if field in EXCLUDED_CURATE:
            continue
        assert value != getattr(default, field), field  # a value that shows the flag did something
        given = [flags[field]] if isinstance(value, bool) else [flags[field], str(value)]
        base = ["curate", "--source", "s0", "--name", "n0", "--model", "m0", "--budget", "1.0"]
        extra = ["--reference", "ref"] if field == "score" else []
        config = curate_config(_parser().parse_args([*base, *extra, *given]))
        assert getattr(config, field) == value, field
        reached.add(field)
    assert reached | set(EXCLUDED_CURATE) == _curate_fields()
    assert all(reason.strip() for reason in EXCLUDED_CURATE.values())


def test_every_curate_field_is_a_yaml_key(tmp_path):
    from influence_stage.orchestration.curate_config import CurateConfig

    config = CurateConfig(**{**CURATE_VALUES, "high_share": 0.0})  # score: reference takes no high_share
    path = tmp_path / "corpus.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")), "utf-8")
    assert CurateConfig.from_yaml(path) == config
    default = CurateConfig(source="s0", name="n0", model="m0", budget=1.0)
    assert {f for f in _curate_fields() if getattr(config, f) != getattr(default, f)} == _curate_fields() - {
        "high_share"}


def test_curate_reads_the_old_adaptation_keys(tmp_path):
    from influence_stage.orchestration.curate_config import CurateConfig

    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({"source": "s", "name": "n", "model": "m", "budget": 0.5, "fit_steps": 12,
                                    "fit_lr": 0.01}), "utf-8")
    config = CurateConfig.from_yaml(path)
    assert (config.adapt_steps, config.adapt_lr) == (12, 0.01)

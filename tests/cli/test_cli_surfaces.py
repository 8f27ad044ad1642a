"""The CLI reaches every field of the stage configuration: the new flags, the registry-driven choices and help,
the label-spelling pre-check before Prefect, and ``curate --dask``."""

from __future__ import annotations

import sys

import pandas as pd
import pytest

from influence_stage.cli.main import _parser, main
from influence_stage.errors import InvalidInputError


def _config(tmp_path, *flags: str):
    from influence_stage.cli.clean import flow_config

    args = _parser().parse_args(["clean", "--source", str(tmp_path), "--name", "t", *flags])
    return flow_config(args).clean


def _subparser(name: str):
    parser = _parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices[name]


@pytest.mark.parametrize("flags, field, value", [
    (["--drop-cap", "0.2"], "drop_cap", 0.2),
    (["--drop-cap", "none"], "drop_cap", None),
    ([], "drop_cap", None),
    (["--normalize-labels", "strip,casefold"], "normalize_labels", {"strip", "casefold"}),
    (["--normalize-labels", " NFC "], "normalize_labels", {"nfc"}),
    (["--issue-types"], "issue_types", ()),
    (["--issue-types", "exact_duplicate", "outlier"], "issue_types", ("exact_duplicate", "outlier")),
    ([], "issue_types", None),
    (["--reverse-flip-alpha", "0.01"], "reverse_flip_alpha", 0.01),
    (["--reverse-flip-alpha", "None"], "reverse_flip_alpha", None),
    ([], "reverse_flip_alpha", 0.05),
])
def test_the_new_flags_set_their_clean_fields(tmp_path, flags, field, value):
    got = getattr(_config(tmp_path, *flags), field)
    assert (set(got) if isinstance(value, set) else got) == value


def test_text_model_sets_the_featurize_section_and_keeps_its_other_fields(tmp_path):
    featurize = _config(tmp_path, "--text-model", "models/encoder").featurize
    assert featurize.text_model == "models/encoder" and featurize.text_max_features == 2048


def test_drop_cap_is_the_decision_cap_and_max_drop_fraction_the_gate(tmp_path):
    from influence_stage.cli.clean import flow_config

    args = _parser().parse_args(["clean", "--source", str(tmp_path), "--name", "t", "--drop-cap", "0.1",
                                 "--max-drop-fraction", "0.4"])
    params = flow_config(args)
    assert (params.clean.drop_cap, params.max_drop_fraction) == (0.1, 0.4)


@pytest.mark.parametrize("flags, words", [
    (["--drop-cap", "lots"], "--drop-cap must be a number in [0, 1] or 'none'; found 'lots'"),
    (["--drop-cap", "1.5"], "drop_cap"),
    (["--normalize-labels", "strip,upper"], "--normalize-labels must be a comma list of nfc, casefold, strip; "
                                            "found ['upper']"),
    (["--issue-types", "typo"], "typo"),
    (["--reverse-flip-alpha", "often"], "--reverse-flip-alpha must be a number in (0, 1) or 'none'; found 'often'"),
    (["--reverse-flip-alpha", "1"], "reverse_flip_alpha"),
    (["--relabel-margin", "2"], "relabel_margin"),
])
def test_bad_values_of_the_new_flags_are_named(tmp_path, flags, words):
    with pytest.raises(InvalidInputError, match=None) as info:
        _config(tmp_path, *flags)
    assert words in str(info.value)


def test_action_choices_and_help_come_from_the_registries():
    from influence_stage.decisions.policies import POLICY_REGISTRY, action_help
    from influence_stage.decisions.thresholds import threshold_help
    from influence_stage.engine.scores import score_help

    actions = {a.dest: a for a in _subparser("clean")._actions}
    assert list(actions["action"].choices) == list(POLICY_REGISTRY.names()) == ["drop", "relabel", "reweight",
                                                                                 "none", "prune"]
    assert action_help() in actions["action"].help
    assert actions["score"].help == score_help()
    assert threshold_help() in actions["threshold"].help
    assert "hf:PATH" in actions["model"].help and "checkpoint:PATH" in actions["model"].help


def _flag_help(text: str, flag: str) -> str:
    """The help of ``flag`` in a ``--help`` text (its line and the lines that continue it)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith(f"{flag} ") or line.strip() == flag)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("-")
                or not lines[i].strip()), len(lines))
    return " ".join(line.strip() for line in lines[start:end])


@pytest.mark.parametrize("command", ["clean", "serve"])
def test_every_registered_name_of_every_registry_is_in_its_flags_help(command, monkeypatch, capsys):
    import influence_stage.issues  # noqa: F401  (registers the data issue types)
    from influence_stage.data.featurize import FEATURIZER_REGISTRY
    from influence_stage.data.sources import DATA_SOURCE_REGISTRY
    from influence_stage.decisions.issues import ISSUE_REGISTRY
    from influence_stage.decisions.policies import POLICY_REGISTRY
    from influence_stage.decisions.thresholds import THRESHOLD_REGISTRY
    from influence_stage.engine.scores import SCORE_REGISTRY
    from influence_stage.engine.sources import MODEL_SOURCE_REGISTRY

    monkeypatch.setenv("COLUMNS", "100000")  # one line per flag
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    for flag, registry in [("--action", POLICY_REGISTRY), ("--score", SCORE_REGISTRY),
                           ("--threshold", THRESHOLD_REGISTRY), ("--issue-types", ISSUE_REGISTRY),
                           ("--model", MODEL_SOURCE_REGISTRY), ("--source", DATA_SOURCE_REGISTRY),
                           ("--featurizer", FEATURIZER_REGISTRY)]:
        names = registry.names()
        assert len(names) >= 3, (flag, names)
        help_text = _flag_help(text, flag)
        missing = [name for name in names if name not in help_text]
        assert not missing, f"{command} {flag} help lacks {missing}: {help_text}"


def test_a_registered_data_source_or_featurizer_is_in_the_help_at_once(monkeypatch, capsys):
    from influence_stage.data import sources
    from influence_stage.data.featurize import FEATURIZER_REGISTRY

    class Shelf:  # the help reads an entry's name and its class's one-line help, nothing else
        help = "rows from the shelf"

    monkeypatch.setattr(sources.DATA_SOURCE_REGISTRY, "items", lambda: [("shelf", Shelf)])
    monkeypatch.setattr(FEATURIZER_REGISTRY, "items", lambda: [("pixels-v2", object)])
    monkeypatch.setenv("COLUMNS", "100000")
    with pytest.raises(SystemExit):
        main(["clean", "--help"])
    text = capsys.readouterr().out
    assert _flag_help(text, "--source").endswith("claims it: shelf (rows from the shelf)")
    assert _flag_help(text, "--featurizer").endswith("(featurize.featurizer): pixels-v2")


def test_a_registered_policy_is_an_action_choice_at_once(monkeypatch):
    from influence_stage.decisions import policies

    monkeypatch.setattr(policies.POLICY_REGISTRY, "names", lambda: ("drop", "quarantine"))
    actions = {a.dest: a for a in _subparser("clean")._actions}
    assert list(actions["action"].choices) == ["drop", "quarantine"]


@pytest.fixture()
def spelled(tmp_path):
    """A parquet file whose labels are 'cat', 'Cat ' and 'dog' (two spellings of one class)."""
    path = tmp_path / "spelled.parquet"
    pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "label": ["cat", "Cat ", "dog", "dog"]}).to_parquet(path)
    return path


def test_a_label_spelling_collision_exits_2_before_prefect(spelled, capsys, monkeypatch):
    for name in ("prefect", "great_expectations"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert main(["clean", "--source", str(spelled), "--name", "t"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "'Cat '" in lines[0] and "'cat'" in lines[0]
    assert "normalize_labels" in lines[0]
    assert "prefect" not in sys.modules and "great_expectations" not in sys.modules


def test_normalize_labels_that_merge_the_spellings_pass_the_pre_check(spelled):
    from influence_stage.cli.schema import check_args

    args = _parser().parse_args(["clean", "--source", str(spelled), "--name", "t",
                                 "--normalize-labels", "strip,casefold"])
    assert check_args(args) is None
    args = _parser().parse_args(["clean", "--source", str(spelled), "--name", "t", "--normalize-labels", "strip"])
    with pytest.raises(InvalidInputError, match="casefold"):
        check_args(args)


def test_the_pre_check_reads_the_distinct_labels_of_a_csv_too(tmp_path):
    from influence_stage.cli.schema import label_values

    path = tmp_path / "d.csv"
    path.write_text("x,label\n1,cat\n2,Cat\n3,cat\n", encoding="utf-8")
    assert sorted(label_values(path, "label")) == ["Cat", "cat"]
    numeric = tmp_path / "n.parquet"
    pd.DataFrame({"x": [1.0], "label": [3]}).to_parquet(numeric)
    assert label_values(numeric, "label") is None  # integer labels: no spelling to check


@pytest.mark.parametrize("flags, dask, workers", [
    ([], None, None),
    (["--dask"], "local", None),
    (["--dask", "tcp://10.0.0.1:8786"], "tcp://10.0.0.1:8786", None),
    (["--dask-workers", "3"], None, 3),
])
def test_curate_takes_dask_flags(flags, dask, workers):
    args = _parser().parse_args(["curate", "--source", "s", *flags])
    assert (args.dask, args.dask_workers) == (dask, workers)


def test_curate_refuses_an_address_and_a_local_worker_count_together(monkeypatch):
    from influence_stage.orchestration import curate

    monkeypatch.setattr(curate, "curate_config", lambda args: object())
    monkeypatch.setattr(curate, "preflight", lambda config: None)
    monkeypatch.setattr(curate, "curate_on_dask", lambda *a, **k: pytest.fail("no cluster may start"))
    args = _parser().parse_args(["curate", "--dask", "tcp://10.0.0.1:8786", "--dask-workers", "2"])
    with pytest.raises(InvalidInputError, match=r"--dask tcp://10.0.0.1:8786 names an existing cluster and "
                                                r"--dask-workers 2 asks for a local one. Fix: give one of them."):
        curate.run_curate(args)


def test_curate_dask_flags_reach_the_dask_runner(monkeypatch, capsys):
    from influence_stage.orchestration import curate

    seen = {}
    summary = {"markdown": "done", "published": "p", "report": "r"}
    monkeypatch.setattr(curate, "curate_config", lambda args: "config")
    monkeypatch.setattr(curate, "preflight", lambda config: None)
    monkeypatch.setattr(curate, "curate_on_dask", lambda config, **kw: seen.update(kw) or summary)
    assert curate.run_curate(_parser().parse_args(["curate", "--dask-workers", "3"])) == 0
    assert seen == {"address": None, "n_workers": 3}
    assert curate.run_curate(_parser().parse_args(["curate", "--dask"])) == 0
    assert seen == {"address": None, "n_workers": 2}
    assert curate.run_curate(_parser().parse_args(["curate", "--dask", "tcp://h:8786"])) == 0
    assert seen == {"address": "tcp://h:8786", "n_workers": 2}
    assert capsys.readouterr().out.count("published: p") == 3


def test_the_built_in_source_and_featurizer_entries_listed_before_import_are_the_registries():
    """``--help`` lists the declared built-in entries while the registries are not imported (no torch, no
    ``datasets``): they must be exactly the registries' own."""
    from influence_stage.cli.clean import DATA_SOURCES, FEATURIZERS
    from influence_stage.cli.common import RegistryNames

    for module, registry, builtin in [("influence_stage.data.sources", "DATA_SOURCE_REGISTRY", DATA_SOURCES),
                                      ("influence_stage.data.featurize", "FEATURIZER_REGISTRY", FEATURIZERS)]:
        __import__(module)
        assert RegistryNames(module, registry).entries() == list(builtin), registry

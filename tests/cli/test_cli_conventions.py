"""The CLI's flags for the cleaning configuration, the cache command, the curate command, and the
flow's Prefect conventions (which errors are retried, a task timeout, cache expiry; a retried load task runs in
tests/integration/test_flows.py, beside the other tests that need a Prefect API)."""

from __future__ import annotations

import errno
from pathlib import Path

import pandas as pd
import pytest
from prefect.states import Failed

from influence_stage.cli import _parser, flow_config, main
from influence_stage.errors import InvalidInputError
from influence_stage.orchestration.flow import FlowConfig, output_fingerprint, transient_io


def _config(*flags: str) -> FlowConfig:
    return flow_config(_parser().parse_args(["clean", "--source", "x.parquet", "--name", "x", *flags]))


def test_flags_for_split_seed_fallback_caps_and_prune_reach_the_configuration():
    params = _config("--split", "validation", "--seed", "7", "--relabel-fallback", "keep",
                     "--max-fraction-per-class", "0.2")
    clean = params.clean
    from influence_stage.seeds import derive_seeds

    seeds = derive_seeds(7)  # --seed follows the one rule: every sub-seed derived from it
    assert (clean.split, clean.seed, clean.relabel_fallback, clean.max_fraction_per_class) == (
        "validation", seeds.run, "keep", 0.2)
    assert (clean.gex.seed, clean.fit.seed, clean.featurize.seed) == (seeds.gex, seeds.fit, seeds.featurize)
    assert _config("--max-fraction-per-class", "none").clean.max_fraction_per_class is None
    pruned = _config("--action", "prune", "--prune-keep", "700", "--prune-high-share", "0.1", "--prune-per-class")
    assert (pruned.clean.action, pruned.clean.prune_keep, pruned.clean.prune_high_share,
            pruned.clean.prune_per_class) == ("prune", 700, 0.1, True)
    assert _config("--action", "prune", "--prune-keep", "0.5").clean.prune_keep == 0.5


@pytest.mark.parametrize("flags, match", [
    (["--max-fraction-per-class", "half"], r"--max-fraction-per-class must be a number in \[0, 1\] or 'none'"),
    (["--max-fraction-per-class", "1.5"], "max_fraction_per_class"),
    (["--action", "prune", "--prune-keep", "most"], r"--prune-keep must be a fraction in \(0, 1\] or a count"),
])
def test_bad_flags_are_named(flags, match):
    with pytest.raises(InvalidInputError, match=match):
        _config(*flags)


def test_a_bad_seed_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["clean", "--source", "x", "--name", "x", "--seed", "zero"])
    assert exit_info.value.code == 2 and "--seed: invalid int value: 'zero'" in capsys.readouterr().err


def test_cache_info_and_clear(tmp_path, capsys):
    from influence_stage.cli.cache import mark_cache_dir

    cache = tmp_path / "cache"
    assert mark_cache_dir(cache)  # what a cleaning run does first
    (cache / "runs" / "abc").mkdir(parents=True)
    (cache / "theta-1").write_bytes(b"x" * 2048)
    (cache / "runs" / "abc" / "losses.npy").write_bytes(b"y" * 1024)
    assert main(["cache", "info", "--cache-dir", str(cache)]) == 0
    assert f"{cache}: 2 cached files" in capsys.readouterr().out
    assert main(["cache", "clear", "--cache-dir", str(cache)]) == 0
    assert "cleared" in capsys.readouterr().out and not cache.exists()
    assert main(["cache", "clear", "--cache-dir", str(cache)]) == 0  # nothing to clear is not an error
    (tmp_path / "file").write_text("x")
    assert main(["cache", "clear", "--cache-dir", str(tmp_path / "file")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_curate_is_a_command_with_its_own_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["curate", "--help"])
    assert exit_info.value.code == 0 and "--budget" in capsys.readouterr().out
    missing = tmp_path / "nowhere.yaml"
    assert main(["curate", "--config", str(missing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nowhere.yaml" in err[0]


def test_timeouts_and_cache_expiry_are_configuration_and_do_not_change_the_output_fingerprint():
    base = FlowConfig(source="x.parquet", name="x")
    assert base.task_timeout_s is None and base.cache_expiration_days == 30
    tuned = base.model_copy(update={"task_timeout_s": 60.0, "cache_expiration_days": 1.0})
    assert output_fingerprint(tuned) == output_fingerprint(base)
    with pytest.raises(ValueError, match="task_timeout_s"):
        FlowConfig(source="x", name="x", task_timeout_s=0)


@pytest.mark.parametrize("exc, retried", [
    (OSError(errno.EIO, "input/output error"), True),
    (ConnectionResetError(errno.ECONNRESET, "reset"), True),
    (FileNotFoundError(errno.ENOENT, "missing"), False),
    (PermissionError(errno.EACCES, "denied"), False),
    (OSError(errno.ENOSPC, "no space left on device"), False),
    (InvalidInputError("bad source"), False),
    (ValueError("bad value"), False),
])
def test_only_transient_io_errors_are_retried(exc, retried):
    assert transient_io(None, None, Failed(data=exc)) is retried


def test_the_demo_configuration_ships_with_the_package_and_matches_flows_digits():
    from influence_stage.cli import demo_config

    root = Path(__file__).resolve().parents[2]
    assert demo_config().is_file()
    assert demo_config().read_text() == (root / "flows" / "digits.yaml").read_text()
    params = flow_config(_parser().parse_args(["clean", "--config", "demo", "--name", "other"]))
    assert params.source == "data/digits/train.parquet" and params.name == "other"
    assert params.clean.action == "relabel"


def test_the_cli_prints_every_warning_of_the_summary(tmp_path, monkeypatch, capsys):
    """Guard warnings (binding caps, a loose threshold) and a roles change reach the terminal, one line each."""
    import influence_stage.orchestration.flow as flow_module

    source = tmp_path / "s.csv"
    pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "label": [0, 1, 0, 1]}).to_csv(source, index=False)
    summary = {"markdown": "summary", "published": "p", "report": "r", "columns": {},
               "warnings": ["per-class cap on class 3: 9 rows flagged", "column roles changed since d v0001"]}
    monkeypatch.setattr(flow_module, "clean_dataset", lambda params: summary)
    assert main(["clean", "--source", str(source), "--name", "d", "--publish-root", str(tmp_path / "pub"),
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "warning:   per-class cap on class 3: 9 rows flagged" in out
    assert "warning:   column roles changed since d v0001" in out

"""The CLI's one-line promise and its checks before anything starts: usage errors, the source's schema,
names, aggregated warnings, plain progress lines, the cache marker, grouped help."""

from __future__ import annotations

import argparse
import io
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from influence_stage._checks import check_safe_name
from influence_stage.cli import console
from influence_stage.cli.cache import MARKER, mark_cache_dir
from influence_stage.cli.main import _parser, main
from influence_stage.cli.schema import source_columns
from influence_stage.errors import InvalidInputError


def _err_lines(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


@pytest.fixture()
def tiny(tmp_path) -> Path:
    """A 12-row parquet file: label ``y``, features ``f0..f2``."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(12, 3)), columns=["f0", "f1", "f2"]).assign(y=np.arange(12) % 2)
    path = tmp_path / "tiny.parquet"
    df.to_parquet(path)
    return path


# ---------------------------------------------------------------------------------------- usage errors


@pytest.mark.parametrize("argv, words", [
    (["clean", "--action", "explode"], "argument --action: invalid choice: 'explode'"),
    (["clean", "--seed", "zero"], "--seed: invalid int value: 'zero'"),
    (["explode"], "invalid choice: 'explode'"),
    (["clean", "--source", "x", "--bogus"], "unrecognized arguments: --bogus"),
    (["curate", "--high-share", "lots"], "--high-share: invalid float value: 'lots'"),
])
def test_usage_errors_are_one_line_with_a_hint_to_help(argv, words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    lines = _err_lines(capsys)
    assert exit_info.value.code == 2 and len(lines) == 1, lines
    assert words in lines[0] and lines[0].endswith("--help)") and "error:" in lines[0]


# ------------------------------------------------------------------------- the schema, before Prefect


@pytest.mark.parametrize("flags, words", [
    (["--label-column", "lable"], "label column 'lable' not found; available columns: ['f0', 'f1', 'f2', 'y']"),
    (["--label-column", "y", "--feature-columns", "g_*"], "feature column pattern 'g_*' matches no column"),
    (["--label-column", "y", "--feature-columns", "f0", "f9"], "feature column 'f9' not found"),
    (["--label-column", "y", "--name", "abc\n"], "name 'abc\\n' is not a valid folder name"),
])
def test_schema_and_name_mistakes_are_one_line_exit_2_before_any_machinery(tiny, flags, words, capsys, monkeypatch):
    import sys

    for name in ("prefect", "great_expectations"):  # a fresh view: what this command imports
        monkeypatch.delitem(sys.modules, name, raising=False)
    argv = ["clean", "--source", str(tiny), "--name", "t", *flags]
    assert main(argv) == 2
    lines = _err_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], lines
    assert "prefect" not in sys.modules and "great_expectations" not in sys.modules


def test_a_wide_source_lists_a_few_columns_and_the_count(tmp_path, capsys):
    path = tmp_path / "wide.parquet"
    pd.DataFrame(np.zeros((2, 785)), columns=[f"px_{i}" for i in range(784)] + ["label"]).to_parquet(path)
    assert main(["clean", "--source", str(path), "--name", "w", "--label-column", "y"]) == 2
    line = _err_lines(capsys)[0]
    assert "'px_11', … (785 in all)]" in line and "'px_12'" not in line and len(line) < 400


def test_schema_of_csv_json_lines_and_save_to_disk_and_unreadable_files(tmp_path, tiny):
    df = pd.read_parquet(tiny)
    df.to_csv(tmp_path / "d.csv", index=False)
    df.to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    (tmp_path / "folder").mkdir()
    df.to_parquet(tmp_path / "folder" / "train.parquet")
    assert source_columns(tmp_path / "d.csv") == ["f0", "f1", "f2", "y"]
    assert source_columns(tmp_path / "d.jsonl") == ["f0", "f1", "f2", "y"]
    assert source_columns(tmp_path / "folder") == ["f0", "f1", "f2", "y"]
    import datasets

    datasets.Dataset.from_pandas(df).save_to_disk(str(tmp_path / "saved"))
    assert source_columns(tmp_path / "saved") == ["f0", "f1", "f2", "y"]
    assert source_columns("user/some-hub-id") is None  # left to the loader
    (tmp_path / "bad.parquet").write_bytes(b"not a parquet file at all")
    with pytest.raises(InvalidInputError, match=r"bad.parquet cannot be read as parquet"):
        source_columns(tmp_path / "bad.parquet")


@pytest.mark.parametrize("name", ["abc\n", "a\tb", "a b", "../up", "LATEST", ".hidden", "x" * 129, "ok\r"])
def test_names_with_control_characters_or_unsafe_shapes_are_refused(name):
    with pytest.raises(InvalidInputError, match="is not a valid folder name"):
        check_safe_name(name, "name")


def test_safe_names_pass_unchanged():
    assert [check_safe_name(n, "name") for n in ("digits", "a.b_c-1", "x" * 128)] == ["digits", "a.b_c-1", "x" * 128]


# ------------------------------------------------------------------------------------------ warnings


def test_repeated_warnings_are_one_line_per_kind_with_the_count_and_the_first_three():
    caps = [f"per-class cap on class {c}: {c + 3} rows flagged for removal, 2 allowed" for c in range(200)]
    lines = console.aggregate([*caps, "the threshold flags many rows"])
    assert len(lines) == 2 and lines[1] == "the threshold flags many rows"
    assert lines[0].startswith("per-class cap on class # (200 times): per-class cap on class 0: 3 rows")
    assert "class 2: 5 rows" in lines[0] and "class 3:" not in lines[0] and lines[0].endswith("; …")


def test_the_gate_failure_is_not_logged_as_well_as_the_error_line():
    import warnings

    loggers = [logging.getLogger(n) for n in ("influence_stage", "py.warnings")]
    propagate = [lg.propagate for lg in loggers]
    collector = console.collect_warnings()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("a library's own warning", UserWarning, stacklevel=1)
        logging.getLogger("influence_stage.quality.gate").warning("Suite %r failed %d of %d expectation(s): %s",
                                                                  "output", 1, 9, "too many rows dropped")
        logging.getLogger("influence_stage.stage.run").warning("per-class cap on class 1: 7 rows")
        logging.getLogger("influence_stage.stage.run").warning("per-class cap on class 2: 8 rows")
        logging.getLogger("influence_stage.stage.steps").warning("model names its classes differently")
    finally:
        logging.captureWarnings(False)
        for lg, prop in zip(loggers, propagate):
            lg.removeHandler(collector)
            lg.propagate = prop
    assert collector.lines() == ["UserWarning: a library's own warning",
                                 "per-class cap on class # (2 times): per-class cap on class 1: 7 rows; "
                                 "per-class cap on class 2: 8 rows", "model names its classes differently"]
    # what the summary already printed on stdout is not repeated on stderr
    assert collector.lines(["per-class cap on class 1: 7 rows", "per-class cap on class 2: 8 rows"]) == [
        "UserWarning: a library's own warning", "model names its classes differently"]


# ------------------------------------------------------------------------------------------ progress


def test_progress_bars_in_a_file_are_plain_lines_one_per_bar():
    from tqdm import tqdm

    out = io.StringIO()
    plain = console.PlainLines(out)
    for desc, leave in (("fit θ*", True), ("members", False), ("loss matrix", True)):
        bar = tqdm(total=50, desc=desc, file=plain, leave=leave, mininterval=0, ascii=False)
        for _ in range(50):
            bar.update(1)
        bar.close()
    plain.write("a plain message\n")
    plain.close_bars()
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert [line.split(":")[0] for line in lines] == ["fit θ*", "members", "loss matrix", "a plain message"], lines
    assert "50/50" in lines[0] and "50/50" in lines[1] and "50/50" in lines[2]


# ------------------------------------------------------------------------------------------- cache


def test_cache_clear_refuses_a_folder_the_stage_did_not_create(tmp_path, capsys):
    mine = tmp_path / "mine"
    (mine / "sub").mkdir(parents=True)
    (mine / "sub" / "important.txt").write_text("keep me")
    assert not mark_cache_dir(mine)  # a folder with files is never marked
    assert main(["cache", "clear", "--cache-dir", str(mine)]) == 2
    lines = _err_lines(capsys)
    assert len(lines) == 1 and f"no {MARKER} file in it" in lines[0]
    assert (mine / "sub" / "important.txt").read_text() == "keep me"


def test_cache_clear_refuses_the_working_folder_even_when_marked(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / MARKER).write_text("x")
    (tmp_path / "data.csv").write_text("a,b\n")
    assert main(["cache", "clear", "--cache-dir", "."]) == 2
    assert len(_err_lines(capsys)) == 1 and (tmp_path / "data.csv").is_file()


def test_a_new_or_empty_cache_folder_is_marked_and_can_be_cleared(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert mark_cache_dir(tmp_path / "new" / "cache") and mark_cache_dir(empty)
    (empty / "theta").write_bytes(b"x" * 10)
    assert main(["cache", "clear", "--cache-dir", str(empty)]) == 0
    assert not empty.exists() and "cleared" in capsys.readouterr().out


# -------------------------------------------------------------------------------------------- help


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_flag_of_every_command_has_help():
    parser = _parser()
    missing = [(name, a.dest) for name, sub in {"": parser, **_subparsers(parser)}.items() for a in sub._actions
               if not (a.help and a.help.strip()) and not isinstance(a, argparse._SubParsersAction)]
    assert missing == []


def test_clean_help_groups_its_flags():
    clean = _subparsers(_parser())["clean"]
    groups = {g.title: [a.dest for a in g._group_actions] for g in clean._action_groups}
    assert [t for t in groups if t not in ("positional arguments", "options")] == [
        "source", "model", "scoring", "decisions", "publishing", "run"]
    assert groups["options"] == ["help"]  # every flag is in a group
    assert "label_column" in groups["source"] and "action" in groups["decisions"] and "seed" in groups["run"]


def test_curate_flags_match_the_flow_parser():
    from influence_stage.orchestration.curate import add_curate_parser

    flow = argparse.ArgumentParser()
    flow_sub = add_curate_parser(flow.add_subparsers())
    ours = _subparsers(_parser())["curate"]
    assert sorted(a.dest for a in ours._actions) == sorted(a.dest for a in flow_sub._actions)


def test_versions_describes_each_version_from_its_meta(tmp_path):
    import json

    from influence_stage.cli.versions import describe

    (tmp_path / "v0001").mkdir()
    (tmp_path / "v0001" / "meta.json").write_text(json.dumps({"created_utc": "2026-12-05T03:44:23.01Z",
                                                              "rows_in": 150, "rows_out": 110, "flagged": 43}))
    assert describe(tmp_path / "v0001") == "2026-12-05 03:44 UTC  rows 150 -> 110  flagged 43 (28.7%)"
    (tmp_path / "v0002").mkdir()
    assert describe(tmp_path / "v0002") == "(meta.json unreadable)"

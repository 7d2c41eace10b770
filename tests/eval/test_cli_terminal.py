"""The terminal side of the CLI: help readable at 80 columns, missing options are errors, no width dependence.

Runs through the top-level ``vinaforge`` app (as a user types it), without loading any model.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from vinaforge.cli import app


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["tokenizer", "extend", "--help"], ["--pad-to-multiple-of", "--max-new-tokens", "--no-progress"]),
        (["eval", "--help"], ["--submission-dir", "--chat-template", "--num-fewshot"]),
        (["eval", "judge", "run", "--help"], ["--max-answer-chars", "--skip-missing", "--chat-template"]),
    ],
)
def test_help_fits_80_columns_and_names_every_option_whole(args, names):
    res = CliRunner(env={"COLUMNS": "80"}).invoke(app, args)
    assert res.exit_code == 0, res.output
    assert max(len(line) for line in res.output.splitlines()) <= 80
    for name in names:
        assert name in res.output
    assert "…" not in res.output


def test_missing_model_is_an_error_not_help():
    res = CliRunner().invoke(app, ["eval", "--tasks", "arc_vi"])
    assert res.exit_code == 2
    assert "missing option --model" in res.output and "Usage:" not in res.output


def test_missing_required_option_of_a_subcommand_exits_2():
    res = CliRunner().invoke(app, ["eval", "bpb", "--text", "x.txt"])
    assert res.exit_code == 2 and "Missing option '--model'" in res.output


def test_bare_group_shows_its_help():
    res = CliRunner().invoke(app, ["eval"])
    assert res.exit_code == 0 and "Usage: " in res.output and "--model" in res.output


@pytest.mark.parametrize("columns", ["40", "200"])
def test_error_messages_do_not_depend_on_the_terminal_width(tmp_path, columns):
    missing = tmp_path / ("a-rather-long-folder-name-" * 4) / "model"
    res = CliRunner(env={"COLUMNS": columns}).invoke(app, ["eval", "--model", str(missing), "--tasks", "arc_vi"])
    assert res.exit_code == 2 and str(missing) in res.output

"""`vinaforge export verify` on damaged export folders: a clear error naming the file, no traceback.

These checks run before the llama.cpp runtime is needed, so they hold with or without it.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from vinaforge.cli import app


def _verify(*args: str):
    return CliRunner().invoke(app, ["export", "verify", *args])


def test_damaged_export_record(tmp_path):
    (tmp_path / "export.json").write_text('{"hf": {', encoding="utf-8")
    result = _verify(str(tmp_path))
    assert result.exit_code != 0 and "export.json is damaged" in result.output and "Traceback" not in result.output


def test_record_that_is_not_an_export(tmp_path):
    (tmp_path / "export.json").write_text("[1, 2]", encoding="utf-8")
    result = _verify(str(tmp_path))
    assert result.exit_code != 0 and "not an export record" in result.output


def test_missing_gguf_file_is_named(tmp_path):
    record = {"hf": {}, "gguf": [{"file": "gguf/model-f16.gguf", "type": "f16"}], "verification": []}
    (tmp_path / "export.json").write_text(json.dumps(record), encoding="utf-8")
    result = _verify(str(tmp_path))
    assert result.exit_code != 0 and "gguf/model-f16.gguf" in result.output and "missing" in result.output


@pytest.mark.parametrize("value", ["0", "-3"])
def test_max_new_tokens_must_be_positive(tmp_path, value):
    result = _verify(str(tmp_path), "--max-new-tokens", value)
    assert result.exit_code == 2 and "max-new-tokens" in result.output

"""`vinaforge train cpt`: bad settings fail before any work with the file, key and reason."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from vinaforge.cli import app


def _text(res) -> str:
    return " ".join(res.output.split())  # rich wraps long lines


def test_cli_reports_bad_keys_and_missing_files(tmp_path, base_config, tiny_model_dir, corpus_dir):
    cfg_file = tmp_path / "cpt.yaml"
    cfg_file.write_text(yaml.safe_dump(base_config(tiny_model_dir, corpus_dir)), encoding="utf-8")
    runner = CliRunner()
    out = tmp_path / "out"
    res = runner.invoke(
        app, ["train", "cpt", "--config", str(cfg_file), "--output", str(out), "--set", "phases.0.lr=-1"]
    )
    assert res.exit_code == 2
    assert "phases.0.lr" in _text(res) and "greater than 0" in _text(res)
    res = runner.invoke(
        app, ["train", "cpt", "--config", str(cfg_file), "--output", str(out), "--set", "batch=4"]
    )
    assert res.exit_code == 2 and "batch: unknown key" in _text(res)
    res = runner.invoke(app, ["train", "cpt", "--config", str(tmp_path / "nope.yaml"), "--output", str(out)])
    assert res.exit_code == 2 and "nope.yaml: file not found" in _text(res)
    bad = base_config(tiny_model_dir, corpus_dir)
    bad["data"]["sources"]["high"]["paths"] = [str(tmp_path / "missing")]
    cfg_file.write_text(yaml.safe_dump(bad), encoding="utf-8")
    res = runner.invoke(app, ["train", "cpt", "--config", str(cfg_file), "--output", str(out)])
    assert res.exit_code == 2 and "data.sources.high.paths" in _text(res)

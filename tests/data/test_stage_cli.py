"""The ``curate`` recipe stage and the ``vinaforge data curate`` command, on our example corpus."""

from __future__ import annotations

import json
import logging

import pytest
from typer.testing import CliRunner

from vinaforge.data.cli import app
from vinaforge.recipe import RecipeError, load_stage_config
from vinaforge.stage import StageContext, load_stage_module

from .helpers import EXAMPLES, read_folder

pytestmark = pytest.mark.slow


def test_stage_outputs_metrics_report_and_figure(tmp_path):
    module = load_stage_module("curate")
    assert module.RESUMABLE is True
    run_dir = tmp_path / "run"
    work = run_dir / ".curate.partial"
    work.mkdir(parents=True)
    ctx = StageContext(
        name="curate",
        kind="curate",
        run_dir=run_dir,
        work_dir=work,
        final_dir=run_dir / "curate",
        upstream={},
        log=logging.getLogger("vinaforge.test"),
    )
    result = module.run(module.Config(inputs=[str(EXAMPLES)]), ctx)
    stats = json.loads((work / "stats.json").read_text())
    assert result.metrics["input"] == stats["input"] == 199
    assert result.metrics["kept"] == stats["kept"] == len(read_folder(work / "kept"))
    assert result.metrics["funnel_balanced"] is True
    assert set(result.outputs) >= {"kept", "rejected", "stats"}
    for rel in result.outputs.values():
        assert (work / rel).exists(), rel
    assert "| flagged_words |" in result.report and "Example rejected documents" in result.report
    assert result.figures and (work / result.figures[0].path).is_file()
    # the example corpus's planted problems are all caught
    reasons = stats["rejected_reasons"]
    assert reasons["flagged_words"]["flagged_words"] >= 2
    assert reasons["input"]["empty"] == 2
    assert stats["duplicates"] >= 5
    assert stats["redactions"]["phone"] >= 5 and stats["redactions"]["email"] >= 3
    assert stats["languages"]["en"] >= 20


def test_config_errors_name_the_key(tmp_path):
    from vinaforge.data.config import Config

    bad = tmp_path / "c.yaml"
    bad.write_text("language:\n  keep: {vi: 2.0}\n")
    with pytest.raises(RecipeError, match="keep"):
        load_stage_config(Config, bad, [])
    with pytest.raises(RecipeError, match="gopher_quality"):
        load_stage_config(Config, None, ["gopher_quality.min_doc_wordz=3"])
    cfg = load_stage_config(Config, None, ["gopher_quality.min_doc_words=3", "tiers.method=threshold"])
    assert cfg.gopher_quality.min_doc_words == 3 and cfg.tiers.method == "threshold"


def test_cli_curate_and_clear_errors(tmp_path):
    runner = CliRunner()
    out = tmp_path / "out"
    res = runner.invoke(
        app,
        [
            "curate",
            str(EXAMPLES / "vi_docs.jsonl"),
            "--output",
            str(out),
            "--set",
            "dedup.minhash.enabled=false",
            "--set",
            "tiers.method=threshold",
        ],
    )
    assert res.exit_code == 0, res.output
    stats = json.loads((out / "stats.json").read_text())
    assert stats["input"] == 127 and stats["tier_thresholds"]["method"] == "threshold"
    assert "kept" in res.output

    res = runner.invoke(app, ["curate", str(tmp_path / "missing.jsonl"), "--output", str(tmp_path / "o2")])
    assert res.exit_code == 2 and "matches no file" in res.output
    res = runner.invoke(
        app,
        [
            "curate",
            str(EXAMPLES / "vi_docs.jsonl"),
            "--output",
            str(tmp_path / "o3"),
            "--set",
            "text_field=body",
        ],
    )
    assert res.exit_code == 2 and "no record has the text field 'body'" in res.output
    res = runner.invoke(app, ["curate", str(EXAMPLES / "vi_docs.jsonl"), "--output", str(out)])
    assert res.exit_code == 2 and "other settings" in res.output

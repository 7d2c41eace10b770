"""The ``vinaforge tokenizer`` commands and the ``tokenizer`` recipe stage."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vinaforge.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "corpus"
VI_DOCS = EXAMPLES / "vi_docs.jsonl"
EN_DOCS = EXAMPLES / "en_docs.jsonl"

runner = CliRunner()


def test_cli_extend_fertility_inspect(tmp_path):
    out = tmp_path / "ext"
    res = runner.invoke(
        app,
        [
            "tokenizer",
            "extend",
            "--base",
            "mistral-v0.1",
            "--corpus",
            str(VI_DOCS),
            "--output",
            str(out),
            "--max-new-tokens",
            "256",
            "--set",
            "pad_to_multiple_of=64",
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "32000 -> 32256" in res.output
    js = tmp_path / "f.json"
    res = runner.invoke(
        app,
        [
            "tokenizer",
            "fertility",
            "--tokenizer",
            "mistral-v0.1",
            "--tokenizer",
            str(out),
            "--vi-text",
            str(VI_DOCS),
            "--en-text",
            str(EN_DOCS),
            "--json",
            str(js),
            "--plot",
            str(tmp_path / "f.png"),
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(js.read_text())
    assert set(data) == {"mistral-v0.1", str(out)}
    for fig in data.values():
        assert (
            fig["vi_tokens_per_syllable"] > 0 and fig["en_tokens_per_word"] > 0 and fig["chars_per_token"] > 0
        )
    assert data[str(out)]["vi_tokens_per_syllable"] < data["mistral-v0.1"]["vi_tokens_per_syllable"]
    assert (tmp_path / "f.png").stat().st_size > 1000
    res = runner.invoke(
        app,
        [
            "tokenizer",
            "inspect",
            "--tokenizer",
            "mistral-v0.1",
            "--tokenizer",
            str(out),
            "--text",
            "Người Việt",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "Người" in res.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["extend", "--base", "no-such-tokenizer", "--corpus", str(VI_DOCS)], "not found"),
        (["extend", "--base", "mistral-v0.1"], "--corpus"),
        (["extend", "--base", "mistral-v0.1", "--corpus", "missing/*.jsonl"], "matches no file"),
        (
            ["extend", "--base", "mistral-v0.1", "--corpus", str(VI_DOCS), "--set", "strategy=magic"],
            "strategy",
        ),
        (["fertility", "--tokenizer", "mistral-v0.1"], "--vi-text"),
        (["train", "--corpus", str(VI_DOCS), "--set", "min_frequency=2"], "min_frequency"),
    ],
    ids=["unknown-base", "no-source", "missing-corpus", "bad-setting", "no-texts", "wrong-backend-option"],
)
def test_cli_errors_are_one_clean_line(tmp_path, args, message):
    res = runner.invoke(
        app,
        ["tokenizer", *args, "--output", str(tmp_path / "o")]
        if args[0] != "fertility"
        else ["tokenizer", *args],
    )
    assert res.exit_code == 2, res.output
    assert "error:" in res.output and message in res.output
    assert "Traceback" not in res.output


def test_cli_corrupt_model_base(tmp_path):
    bad = tmp_path / "tokenizer.model"
    bad.write_bytes(b"\x0a\x05hello" * 40)
    res = runner.invoke(
        app,
        [
            "tokenizer",
            "extend",
            "--base",
            str(bad),
            "--corpus",
            str(VI_DOCS),
            "--output",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code == 2 and "SentencePiece" in res.output and "Traceback" not in res.output


def test_stage_runs_and_resumes(tmp_path, caplog):
    from vinaforge.stage import StageContext
    from vinaforge.tokenizer import stage

    cfg = stage.Config(
        corpus=[str(VI_DOCS)], max_new_tokens=256, pad_to_multiple_of=64, en_eval=[str(EN_DOCS)]
    )
    work = tmp_path / ".tokenizer.partial"
    work.mkdir()
    ctx = StageContext(
        name="tokenizer",
        kind="tokenizer",
        run_dir=tmp_path,
        work_dir=work,
        final_dir=tmp_path / "tokenizer",
        upstream={},
        log=logging.getLogger("vinaforge.test"),
    )
    result = stage.run(cfg, ctx)
    assert result.outputs == {"tokenizer": "tokenizer", "fertility": "fertility.json"}
    assert (work / "tokenizer" / "vinaforge_extension.json").is_file()
    assert (work / result.figures[0].path).is_file()
    m = result.metrics
    assert m["vocab_size"] == 32256 and m["new_tokens"] == 256
    assert m["vi_tokens_per_syllable"] < m["base_vi_tokens_per_syllable"] / 1.5
    assert m["en_tokens_per_word"] <= m["base_en_tokens_per_word"] * 1.005
    assert "| extended | 32,256 |" in result.report
    mtime = (work / "tokenizer" / "tokenizer.model").stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="vinaforge"):
        stage.run(cfg, ctx)  # resumed: the finished tokenizer is reused, not rebuilt
    assert "reusing" in caplog.text
    assert (work / "tokenizer" / "tokenizer.model").stat().st_mtime_ns == mtime


def test_stage_config_needs_one_source():
    from pydantic import ValidationError

    from vinaforge.tokenizer import stage

    with pytest.raises(ValidationError, match="exactly one"):
        stage.Config()


def test_stage_advise_adds_a_table_and_a_plot(tmp_path):
    from vinaforge.stage import StageContext
    from vinaforge.tokenizer import stage

    cfg = stage.Config(corpus=[str(VI_DOCS)], max_new_tokens=256, pad_to_multiple_of=64, en_eval=[str(EN_DOCS)],
                       advise={"sizes": [128, 256]})  # fmt: skip
    work = tmp_path / ".tokenizer.partial"
    work.mkdir()
    ctx = StageContext(name="tokenizer", kind="tokenizer", run_dir=tmp_path, work_dir=work,
                       final_dir=tmp_path / "tokenizer", upstream={}, log=logging.getLogger("vinaforge.test"))  # fmt: skip
    result = stage.run(cfg, ctx)
    assert "Should this base be extended?" in result.report and "**Recommendation:" in result.report
    assert [f.path for f in result.figures] == ["fertility.png", "advise/advise.png"]
    assert (work / "advise" / "advise.png").is_file() and "advised_new_tokens" in result.metrics


def test_stage_advise_needs_a_corpus(tmp_path):
    from pydantic import ValidationError

    from vinaforge.tokenizer import stage

    with pytest.raises(ValidationError, match="advise sweeps"):
        stage.Config(vocab=str(tmp_path), advise={"sizes": [128]})
    with pytest.raises(ValidationError, match="must not be negative"):
        stage.Config(corpus=[str(VI_DOCS)], advise={"sizes": [-1]})

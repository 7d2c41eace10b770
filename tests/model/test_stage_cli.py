"""The `model` stage through the run engine, and the `vinaforge model` commands."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from vinaforge.model.cli import app


def write_recipe(path, ext_tok_dir, **extra) -> None:
    stage = {
        "kind": "model",
        "tiny": {"arch": "mistral", "layers": 1, "hidden": 32, "heads": 2},
        "base_tokenizer": "mistral-v0.1",
        "tokenizer": str(ext_tok_dir),
        "init": "mean",
        **extra,
    }
    path.write_text(json.dumps({"name": "m", "seed": 0, "stages": {"model": stage}}), encoding="utf-8")


def test_model_stage_in_a_recipe(tmp_path, ext_tok_dir, ext_tok):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from vinaforge.recipe import load_recipe
    from vinaforge.runner import run_recipe

    recipe = tmp_path / "r.yaml"
    write_recipe(recipe, ext_tok_dir)
    run_dir = run_recipe(load_recipe(recipe), run_root=tmp_path / "runs")
    stage_dir = run_dir / "model"
    model = AutoModelForCausalLM.from_pretrained(stage_dir / "model")
    tok = AutoTokenizer.from_pretrained(stage_dir / "model")
    assert len(tok) == len(ext_tok)
    resize = json.loads((stage_dir / "resize.json").read_text())
    assert model.config.vocab_size == resize["num_rows"] and resize["num_rows"] % 64 == 0
    new_tokens = (stage_dir / "new_tokens.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(new_tokens) == resize["num_new_tokens"] == len(ext_tok) - 32000
    first = json.loads(new_tokens[0])
    assert first["id"] == 32000 and first["base_ids"] and first["how"] == "model-vocab"
    assert (stage_dir / "new_token_pieces.png").is_file()
    report = (run_dir / "report.md").read_text(encoding="utf-8")
    assert "randomly initialised" in report
    assert "`mean`" in report and "32,000 → " in report


def test_model_stage_config_errors(tmp_path, ext_tok_dir):
    from vinaforge.recipe import RecipeError, load_recipe

    recipe = tmp_path / "r.yaml"
    write_recipe(recipe, ext_tok_dir, base="some/model")
    with pytest.raises(RecipeError, match="exactly one of `base`"):
        load_recipe(recipe)
    write_recipe(recipe, ext_tok_dir, init="zeros")
    with pytest.raises(RecipeError, match=r"stages\.model\.init"):
        load_recipe(recipe)


def test_cli_tiny_extend_info(tmp_path, base_tok_dir, ext_tok_dir, ext_tok):
    runner = CliRunner()
    tiny = tmp_path / "tiny"
    res = runner.invoke(
        app,
        [
            "tiny",
            "--arch",
            "llama",
            "--tokenizer",
            str(base_tok_dir),
            "--layers",
            "1",
            "--hidden",
            "32",
            "--heads",
            "2",
            "--output",
            str(tiny),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "randomly initialised" in res.output
    cfg = json.loads((tiny / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"] and cfg["vinaforge"]["random_init"]

    ext = tmp_path / "ext"
    res = runner.invoke(
        app,
        [
            "extend",
            "--model",
            str(tiny),
            "--tokenizer",
            str(ext_tok_dir),
            "--init",
            "random",
            "--output",
            str(ext),
        ],
    )
    assert res.exit_code == 0, res.output
    cfg = json.loads((ext / "config.json").read_text())
    assert cfg["vocab_size"] % 64 == 0 and cfg["vocab_size"] >= len(ext_tok)
    assert cfg["vinaforge"]["resize"]["init"] == "random"

    res = runner.invoke(app, ["info", str(ext)])
    assert res.exit_code == 0 and "randomly initialised" in res.output and '"init": "random"' in res.output


def test_cli_extend_refuses_a_tokenizer_that_does_not_fit(tmp_path, base_tok_dir, ext_tok_dir):
    runner = CliRunner()
    tiny = tmp_path / "tiny"
    runner.invoke(
        app,
        [
            "tiny",
            "--tokenizer",
            str(base_tok_dir),
            "--layers",
            "1",
            "--hidden",
            "32",
            "--heads",
            "2",
            "--output",
            str(tiny),
        ],
    )
    res = runner.invoke(
        app,
        [
            "extend",
            "--model",
            str(tiny),
            "--tokenizer",
            str(ext_tok_dir),
            "--base-tokenizer",
            str(ext_tok_dir),
            "--output",
            str(tmp_path / "out"),
        ],
    )
    assert res.exit_code == 2
    out = " ".join(res.output.split())  # rich wraps long lines
    assert "has only 32000 embedding rows" in out and "does not belong to this model" in out
    assert not (tmp_path / "out").exists()
    res = runner.invoke(
        app,
        [
            "extend",
            "--model",
            str(tmp_path / "nope"),
            "--tokenizer",
            str(ext_tok_dir),
            "--output",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code == 2 and "does not exist" in " ".join(res.output.split())

"""``vinaforge eval`` on the command line, ``eval compare``, and the ``eval`` recipe stage."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from vinaforge.eval.cli import app

runner = CliRunner()


def test_eval_command_writes_task_split_metrics(tiny_model_dir, fixtures_dir, tmp_path):
    out = tmp_path / "out.json"
    res = runner.invoke(
        app,
        [
            "--model",
            str(tiny_model_dir),
            "--tasks",
            "vmlu,arc_vi",
            "--data-dir",
            str(fixtures_dir),
            "--limit",
            "3",
            "--output",
            str(out),
            "--device",
            "cpu",
            "--batch-size",
            "4",
        ],
    )
    assert res.exit_code == 0, res.output
    got = json.loads(out.read_text())
    assert set(got["vmlu"]) == {"dev", "valid", "test"}
    assert got["vmlu"]["dev"]["n"] == 3 and got["vmlu"]["dev"]["n_total"] == 10
    assert {"acc", "acc_stderr", "acc_norm", "acc_norm_stderr"} <= set(got["arc_vi"]["test"])
    assert (tmp_path / "vmlu_test_submission.csv").is_file()


def test_eval_command_config_file_and_set(tiny_model_dir, fixtures_dir, tmp_path):
    cfg = tmp_path / "eval.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "model": str(tiny_model_dir),
                "tasks": ["xcopa_vi"],
                "device": "cpu",
                "data_dir": str(fixtures_dir),
                "batch_size": 2,
                "system_instruction": "Trả lời bằng một chữ cái.",  # keys the command used to lack
                "seed": 7,
                "cache": str(tmp_path / "lm-cache"),
            }
        )
    )
    out = tmp_path / "o.json"
    res = runner.invoke(app, ["--config", str(cfg), "--set", "template=en", "--output", str(out)])
    assert res.exit_code == 0, res.output
    got = json.loads(out.read_text())
    assert got["xcopa_vi"]["test"]["n"] == 3 and got["_meta"]["template"] == "en"
    res = runner.invoke(app, ["--config", str(cfg), "--set", "templat=en"])
    assert res.exit_code == 2 and "templat" in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tasks", "vmlu_xx"], "unknown task 'vmlu_xx'"),
        (["--tasks", "arc_vi", "--data-dir", "/no/such/dir"], "data_dir: Value error, file or folder not found: '/no/such/dir'"),
    ],
)
def test_eval_command_bad_input(tiny_model_dir, args, message):
    res = runner.invoke(app, ["--model", str(tiny_model_dir), *args])
    assert res.exit_code == 2
    assert message in " ".join(res.output.split())


def test_eval_command_model_that_does_not_load(fixtures_dir, tmp_path):
    res = runner.invoke(
        app, ["--model", str(tmp_path / "gone"), "--tasks", "arc_vi", "--data-dir", str(fixtures_dir)]
    )
    assert res.exit_code == 2 and "model: Value error, file or folder not found" in res.output
    assert str(tmp_path / "gone") in res.output  # whole, whatever the terminal width


def test_compare_writes_markdown_html_and_chart(tmp_path):
    a = {
        "vmlu": {"dev": {"acc": 0.31, "acc_stderr": 0.02, "n": 303}},
        "bpb": {"bits_per_byte": 1.2, "token_perplexity": 9.0, "n_texts": 1, "n_bytes": 9, "n_tokens": 3},
    }
    b = {
        "vmlu": {"dev": {"acc": 0.42, "acc_stderr": 0.03, "n": 303}},
        "bpb": {"bits_per_byte": 1.0, "token_perplexity": 7.0, "n_texts": 1, "n_bytes": 9, "n_tokens": 3},
    }
    (tmp_path / "base.json").write_text(json.dumps(a))
    run = tmp_path / "runs" / "sft-v2" / "eval"
    run.mkdir(parents=True)
    (run / "results.json").write_text(json.dumps(b))
    res = runner.invoke(
        app,
        [
            "compare",
            str(tmp_path / "base.json"),
            str(tmp_path / "runs" / "sft-v2"),
            "--output",
            str(tmp_path / "cmp.md"),
        ],
    )
    assert res.exit_code == 0, res.output
    md = (tmp_path / "cmp.md").read_text()
    assert "| metric | base | sft-v2 |" in md
    assert "| vmlu/dev acc | 0.3100 ± 0.0200 | **0.4200 ± 0.0300** |" in md
    assert "| held-out bits_per_byte | 1.2000 | **1.0000** |" in md  # lower is better
    html = (tmp_path / "cmp.html").read_text()
    assert "<b>0.4200 ± 0.0300</b>" in html and "data:image/png;base64," in html
    assert (tmp_path / "cmp.png").stat().st_size > 1000
    res = runner.invoke(app, ["compare", str(tmp_path / "nothing.json")])
    assert res.exit_code == 2 and "nothing.json: no such run folder" in " ".join(res.output.split())


def _recipe(tmp_path, stage: dict) -> object:
    from vinaforge.recipe import load_recipe

    path = tmp_path / "recipe.yaml"
    path.write_text(
        yaml.safe_dump({"name": "evaltest", "run_dir": str(tmp_path / "runs"), "stages": {"eval": stage}})
    )
    return load_recipe(path)


def test_eval_stage_runs_resumes_and_reports(tiny_model_dir, fixtures_dir, repo_root, tmp_path):
    from vinaforge.runner import PARTIAL_MARK, HashCache, run_recipe, stage_inputs

    stage = {
        "model": str(tiny_model_dir),
        "heldout": [str(repo_root / "examples" / "heldout_vi.txt")],
        "fertility": [str(repo_root / "examples" / "heldout_vi.txt")],
        "tasks": ["vmlu", "xcopa_vi"],
        "data_dir": str(fixtures_dir),
        "batch_size": 4,
        "device": "cpu",
        "translation": {
            "pairs": str(repo_root / "examples" / "parallel" / "en_vi.jsonl"),
            "directions": ["en-vi"],
            "max_pairs": 3,
            "max_new_tokens": 4,
        },
    }
    recipe = _recipe(tmp_path, stage)
    # an earlier, interrupted attempt of the same config left its finished bits-per-byte part behind
    partial = tmp_path / "runs" / "evaltest" / ".eval.partial"
    (partial / "parts").mkdir(parents=True)
    spec = recipe.stage("eval")  # the engine resumes only work started with the same config and inputs
    inputs = stage_inputs(spec, {"stages": {}}, HashCache({}))
    mark = {"config_hash": spec.config_hash(), "kind": spec.kind, "inputs": inputs}
    (partial / PARTIAL_MARK).write_text(json.dumps(mark))
    earlier = {
        "bits_per_byte": 14.5,
        "token_perplexity": 30000.0,
        "nll_nats": 1.0,
        "n_bytes": 1,
        "n_tokens": 1,
        "n_texts": 40,
    }
    (partial / "parts" / "bpb.json").write_text(json.dumps(earlier))
    run_dir = run_recipe(recipe)
    results = json.loads((run_dir / "eval" / "results.json").read_text())
    assert results["bpb"]["bits_per_byte"] == 14.5  # reused, not recomputed
    assert set(results["vmlu"]) == {"dev", "valid", "test"} and results["xcopa_vi"]["test"]["n"] == 3
    assert results["translation"]["en-vi"]["n"] == 3
    assert 1.5 < results["fertility"]["vi_tokens_per_syllable"] < 4  # Mistral-v0.1 on Vietnamese
    assert (run_dir / "eval" / "submissions" / "vmlu_test_submission.csv").is_file()
    assert (run_dir / "eval" / "scores.png").is_file()
    card = (run_dir / "report.md").read_text()
    assert "14.5000 bits per byte" in card and "| vmlu | dev | 10 |" in card and "by category" in card


def test_cli_and_recipe_share_one_config(tmp_path, tiny_model_dir):
    """Every setting of `vinaforge eval` is a key of the `eval` stage (one Config for both)."""
    import typer

    from vinaforge.eval.stage import Config

    command = typer.main.get_command(app)
    flags = {p.name for p in command.params} - {"config", "set_", "output", "submission_dir"}
    flags -= {"install_completion", "show_completion"}  # typer's own
    assert flags <= set(Config.model_fields)
    extra = {"fewshot_as_multiturn": True, "system_instruction": "Trả lời.", "seed": 3, "cache": "c"}
    recipe = _recipe(tmp_path, {"model": str(tiny_model_dir), "tasks": ["vmlu_mini"], **extra})
    assert recipe.stage("eval").config.model_dump(include=set(extra)) == extra


def test_eval_stage_config_errors(tmp_path, tiny_model_dir):
    from vinaforge.recipe import RecipeError

    with pytest.raises(RecipeError, match="unknown task 'vmlu_xx'"):
        _recipe(tmp_path, {"model": str(tiny_model_dir), "tasks": ["vmlu_xx"]})
    with pytest.raises(RecipeError, match="heldout"):
        _recipe(tmp_path, {"model": str(tiny_model_dir), "heldout": [str(tmp_path / "missing.txt")]})

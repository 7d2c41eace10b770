"""Issue 22: wrong inputs the tune commands accepted silently or answered with a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from .conftest import small_tokenizer

GOOD = {"messages": [{"role": "user", "content": "Xin chào"}, {"role": "assistant", "content": "Chào bạn!"}]}


def _with_tokenizer(tiny_dir: Path, out: Path, vocab_size: int) -> Path:
    """The tiny model's folder with another model's tokenizer saved over its own."""
    shutil.copytree(tiny_dir, out)
    for f in out.glob("tokenizer*"):
        f.unlink()
    small_tokenizer(vocab_size).save_pretrained(out)
    return out


def _data(tmp_path: Path) -> dict:
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps(GOOD, ensure_ascii=False) + "\n", encoding="utf-8")
    return {"sources": {"a": {"paths": [str(path)]}}}


@pytest.mark.parametrize("vocab_size", [2000, 600])
def test_sft_and_reward_refuse_a_tokenizer_of_another_model(tiny_dir, tmp_path, vocab_size):
    from vinaforge.checks import InputCheckError
    from vinaforge.tune.common import load_model_for_training
    from vinaforge.tune.reward import Config as RewardConfig
    from vinaforge.tune.reward import load_reward_model_for_training
    from vinaforge.tune.sft import Config

    folder = _with_tokenizer(tiny_dir, tmp_path / "mixed", vocab_size)
    with pytest.raises(InputCheckError, match=r"mixed: tokenizer .* ids but the model has .*embedding rows"):
        load_model_for_training(Config.model_validate({"model": str(folder), "data": _data(tmp_path)}))
    with pytest.raises(InputCheckError, match="embedding rows"):
        load_reward_model_for_training(RewardConfig.model_validate({"model": str(folder), "data": [str(tmp_path)]}))


def test_max_steps_zero_is_refused(tiny_dir, tmp_path):
    from vinaforge.tune.sft import Config

    with pytest.raises(ValidationError, match="max_steps 0 trains nothing"):
        Config.model_validate({"model": str(tiny_dir), "data": _data(tmp_path), "training": {"max_steps": 0}})


def test_output_that_is_a_file_is_one_line_not_a_traceback(tiny_dir, tmp_path):
    from typer.testing import CliRunner

    from vinaforge.cli import app

    cfg = tmp_path / "sft.yaml"
    cfg.write_text(f"model: {tiny_dir}\ndata: {json.dumps(_data(tmp_path))}\n", encoding="utf-8")
    taken = tmp_path / "taken"
    taken.write_text("not a folder", encoding="utf-8")
    for out, message in ((taken, "exists and is a file"), (taken / "sub", "is a file, so the folder cannot be created")):
        res = CliRunner().invoke(app, ["tune", "sft", "--config", str(cfg), "--output", str(out)])
        assert res.exit_code != 0 and message in res.output, res.output
        assert "Traceback" not in res.output and res.exception is None or isinstance(res.exception, SystemExit)


def test_check_output_dir_accepts_new_and_existing_folders(tmp_path):
    from vinaforge.checks import check_output_dir

    assert check_output_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert check_output_dir(tmp_path) == tmp_path


@pytest.mark.parametrize("command", [["merge", "run", "cfg.yaml"], ["export", "run", "model"]])
def test_merge_and_export_outputs_under_a_file_are_one_line(tmp_path, command):
    from typer.testing import CliRunner

    from vinaforge.cli import app

    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    res = CliRunner().invoke(app, [*command, "--output", str(blocker / "out")])
    assert res.exit_code != 0 and "is a file, so the folder cannot be created" in res.output, res.output
    assert not isinstance(res.exception, OSError)


def test_tune_prints_a_short_summary_and_writes_the_json(tiny_dir, tmp_path):
    """Issue 22: the tune commands printed their whole result JSON (prompts, every field)."""
    from typer.testing import CliRunner

    from vinaforge.cli import app

    rows = [GOOD, {"messages": [{"role": "user", "content": "Phở là gì?"},
                                {"role": "assistant", "content": "Phở là món ăn Việt Nam."}]}]  # fmt: skip
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows * 4), encoding="utf-8")
    cfg = tmp_path / "sft.yaml"
    cfg.write_text(f"model: {tiny_dir}\nmode: full\ndata: {{sources: {{a: {{paths: [{data}]}}}}}}\n"
                   "prompts: ['Xin chào']\ntraining: {max_steps: 2, batch_size: 2, max_length: 64}\n",
                   encoding="utf-8")  # fmt: skip
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["tune", "sft", "--config", str(cfg), "--output", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["steps"] == 2 and summary["prompts"] == ["Xin chào"]
    printed = [line for line in res.output.splitlines() if line.startswith(("sft:", "model:", "summary:"))]
    assert printed[0].startswith("sft: steps 2, final loss") and printed[-1] == f"summary: {out / 'summary.json'}"
    assert '"before"' not in res.output and '"prompts"' not in res.output


def test_tune_sft_loss_turns_from_the_command_line(tiny_dir, tmp_path):
    """``--set loss_turns=last`` trains the final replies only; an unknown value names the key."""
    from typer.testing import CliRunner

    from vinaforge.cli import app

    two_turns = {"messages": [{"role": "user", "content": "Chào bạn"}, {"role": "assistant", "content": "Chào!"},
                              {"role": "user", "content": "Phở là gì?"},
                              {"role": "assistant", "content": "Phở là món ăn Việt Nam."}]}  # fmt: skip
    data = tmp_path / "chat.jsonl"
    data.write_text((json.dumps(two_turns, ensure_ascii=False) + "\n") * 8, encoding="utf-8")
    cfg = tmp_path / "sft.yaml"
    cfg.write_text(f"model: {tiny_dir}\nmode: full\ndata: {{sources: {{a: {{paths: [{data}]}}}}}}\nprompts: []\n"
                   "safety_eval: false\ntraining: {max_steps: 1, batch_size: 2, max_length: 64}\n",
                   encoding="utf-8")  # fmt: skip
    runner = CliRunner()
    res = runner.invoke(app, ["tune", "sft", "-c", str(cfg), "-o", str(tmp_path / "out"), "--set", "loss_turns=last"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))["loss_turns"] == "last"
    bad = runner.invoke(app, ["tune", "sft", "-c", str(cfg), "-o", str(tmp_path / "bad"), "--set", "loss_turns=first"])
    assert bad.exit_code != 0 and "loss_turns" in bad.output and "Traceback" not in bad.output


def test_self_preference_with_a_larger_tokenizer_is_one_line(tiny_dir, tmp_path):
    """It used to crash with an IndexError in the embedding when sampling began."""
    from typer.testing import CliRunner

    from vinaforge.cli import app

    folder = _with_tokenizer(tiny_dir, tmp_path / "mixed", 2000)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "Xin chào"}, ensure_ascii=False) + "\n", encoding="utf-8")
    cfg = tmp_path / "sp.yaml"
    cfg.write_text(json.dumps({"prompts": [str(prompts)], "backend": {"model": str(folder)}, "n": 2,
                               "judge": {"kind": "rules"}}), encoding="utf-8")  # fmt: skip
    res = CliRunner().invoke(app, ["tune", "self-preference", "--config", str(cfg), "--output", str(tmp_path / "o")])
    assert res.exit_code != 0 and "embedding rows" in res.output and "does not belong" in res.output, res.output
    assert "IndexError" not in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("weight", [-1.0, 0.0])
def test_rl_reward_weights_must_be_positive(weight):
    from vinaforge.tune.rl import RewardSpec

    with pytest.raises(ValidationError, match=r"weights must be > 0"):
        RewardSpec(kind="vietnamese", weight=weight)

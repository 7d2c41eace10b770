"""Each bad input gives one clear message, and no output folder is left behind."""

from __future__ import annotations

import shutil

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from vinaforge.merge.checks import MergeInputError
from vinaforge.merge.config import Config, merge_models


def _linear(a, b, **extra) -> Config:
    return Config(merge_method="linear", models=[{"model": str(a), "parameters": {"weight": 0.5}},
                                                 {"model": str(b), "parameters": {"weight": 0.5}}], **extra)  # fmt: skip


def test_different_architectures(family, tmp_path):
    from vinaforge.model.load import load_tokenizer
    from vinaforge.model.tiny import save_model, tiny_model_for

    tok = load_tokenizer(str(family["base_tokenizer"]))
    save_model(tiny_model_for(tok, "llama", 2, 64, 4), tok, tmp_path / "llama")
    with pytest.raises(MergeInputError, match=r"different architectures: .*base is MistralForCausalLM.*llama is LlamaForCausalLM"):
        merge_models(_linear(family["base"], tmp_path / "llama"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_tensors(family, tmp_path):
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    shutil.copytree(family["instruct"], broken)
    weights = load_file(str(broken / "model.safetensors"))
    del weights["model.layers.1.mlp.down_proj.weight"]
    save_file(weights, str(broken / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(MergeInputError, match=r"broken is missing tensors .*model\.layers\.1\.mlp\.down_proj\.weight"):
        merge_models(_linear(family["base"], broken), tmp_path / "out")


def test_missing_model_folder(family, tmp_path):
    with pytest.raises(MergeInputError, match=r"model folder .*nowhere does not exist"):
        merge_models(_linear(family["base"], tmp_path / "nowhere"), tmp_path / "out")


def test_mismatched_vocabularies(family, tmp_path):
    with pytest.raises(MergeInputError, match="vocabularies differ"):
        merge_models(_linear(family["vi"], family["base"]), tmp_path / "out")


@pytest.mark.parametrize("lam", [-0.5, 2.5])
def test_lambda_out_of_range(family, lam):
    with pytest.raises(ValidationError, match=r"λ = .* is outside \[0, 2\]"):
        Config(chat_vector={"vi_base": str(family["vi"]), "instruct": str(family["instruct"]),
                            "base": str(family["base"]), "lam": lam})  # fmt: skip
    with pytest.raises(ValidationError, match="outside"):
        Config(chat_vector={"vi_base": "a", "instruct": "b", "base": "c", "groups": [{"match": "mlp", "lam": lam}]})


def test_unknown_method():
    with pytest.raises(ValidationError, match=r"unknown merge method 'avg'; mergekit methods: .*linear"):
        Config(merge_method="avg", models=[{"model": "a"}])


def test_output_folder_exists(family, tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(MergeInputError, match=r"output folder .*out exists"):
        merge_models(_linear(family["base"], family["instruct"]), tmp_path / "out")


def test_cli_messages_are_one_line(family, tmp_path):
    from vinaforge.cli import app

    (tmp_path / "taken").mkdir()
    runner = CliRunner()
    args = ["merge", "chat-vector", "--vi-base", str(family["vi"]), "--instruct", str(family["instruct"]),
            "--base", str(family["base"])]  # fmt: skip
    res = runner.invoke(app, [*args, "--output", str(tmp_path / "taken")])
    assert res.exit_code == 2 and "exists" in res.output
    res = runner.invoke(app, [*args, "--lambda", "3", "--output", str(tmp_path / "new")])
    assert res.exit_code == 2 and "chat_vector.lam" in res.output and "outside [0, 2]" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "new").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text("merge_method: average\nmodels: []\n", encoding="utf-8")
    res = runner.invoke(app, ["merge", "run", str(bad), "--output", str(tmp_path / "o")])
    assert res.exit_code == 2 and f"{bad}:1: merge_method" in res.output.replace("\n", "") and "unknown merge method" in res.output


def test_cli_adapter_weight_must_be_a_number(tmp_path):
    from typer.testing import CliRunner

    from vinaforge.cli import app

    result = CliRunner().invoke(app, ["merge", "lora", "--base", str(tmp_path), "--adapter", f"{tmp_path}:abc",
                                      "-o", str(tmp_path / "out")])  # fmt: skip
    assert result.exit_code == 2 and "must be a number" in result.output and "Traceback" not in result.output

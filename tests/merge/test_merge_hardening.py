"""Issue 22: merge inputs that used to be accepted silently or end in a traceback."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import torch

from vinaforge.merge.checks import MergeInputError
from vinaforge.merge.config import Config, merge_models


def _linear(a, b, wa: float = 0.5, wb: float = 0.5) -> Config:
    return Config(merge_method="linear", models=[{"model": str(a), "parameters": {"weight": wa}},
                                                 {"model": str(b), "parameters": {"weight": wb}}])  # fmt: skip


def _truncate(folder, name: str = "model.safetensors", keep: int = 4096) -> None:
    f = folder / name
    f.write_bytes(f.read_bytes()[:keep])


def test_same_size_but_different_tokenizers_are_refused(family, tmp_path):
    """Two vocabularies of one size, another token at the same id: averaging rows is meaningless."""
    other = tmp_path / "other"
    shutil.copytree(family["instruct"], other)
    tj = json.loads((other / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = tj["model"]["vocab"]
    a, b = "▁Việt", "▁Nam"
    if a in vocab and b in vocab:
        vocab[a], vocab[b] = vocab[b], vocab[a]
    else:  # swap any two ordinary tokens
        keys = [k for k in vocab if k.startswith("▁")][:2]
        vocab[keys[0]], vocab[keys[1]] = vocab[keys[1]], vocab[keys[0]]
    (other / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(MergeInputError, match="different tokenizers"):
        merge_models(_linear(family["base"], other), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_truncated_safetensors_is_one_line(family, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(family["instruct"], broken)
    _truncate(broken)
    with pytest.raises(MergeInputError, match=r"broken/model\.safetensors: truncated or damaged"):
        merge_models(_linear(family["base"], broken), tmp_path / "out")
    with pytest.raises(MergeInputError, match="truncated or damaged"):
        merge_models(Config(chat_vector={"vi_base": str(family["vi"]), "instruct": str(broken),
                                         "base": str(family["base"])}), tmp_path / "cv")  # fmt: skip


def test_negative_weights_only_in_task_vector_methods(family, tmp_path, caplog):
    with pytest.raises(MergeInputError, match=r"weight -0\.5 in a 'linear' merge.*task_arithmetic"):
        merge_models(_linear(family["base"], family["instruct"], 1.5, -0.5), tmp_path / "lin")
    with caplog.at_level(logging.WARNING):
        merge_models(Config(merge_method="task_arithmetic", base_model=str(family["base"]),
                            models=[{"model": str(family["instruct"]), "parameters": {"weight": -0.5}}]),
                     tmp_path / "ta")  # fmt: skip
    assert "task vector is subtracted" in caplog.text
    assert (tmp_path / "ta" / "config.json").is_file()


@pytest.fixture(scope="module")
def adapter(family, tmp_path_factory):
    from peft import LoraConfig, get_peft_model

    from vinaforge.model.load import load_causal_lm

    torch.manual_seed(5)
    model = load_causal_lm(str(family["base"]), dtype="float32")
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False))  # fmt: skip
    folder = tmp_path_factory.mktemp("adapter")
    peft.save_pretrained(folder)
    return folder


def test_lora_adapter_of_another_kind_or_truncated_is_refused(family, adapter, tmp_path):
    from vinaforge.model.load import load_tokenizer
    from vinaforge.model.tiny import save_model, tiny_model_for

    tok = load_tokenizer(str(family["base_tokenizer"]))
    llama = tmp_path / "llama"
    save_model(tiny_model_for(tok, "llama", 2, 64, 4), tok, llama)  # same module names and shapes as the base
    with pytest.raises(MergeInputError, match="a model of another kind"):
        merge_models(Config(lora={"base": str(llama), "adapters": [{"path": str(adapter)}]}), tmp_path / "x")
    reward = tmp_path / "reward-adapter"
    shutil.copytree(adapter, reward)
    cfg = json.loads((reward / "adapter_config.json").read_text(encoding="utf-8"))
    (reward / "adapter_config.json").write_text(json.dumps({**cfg, "task_type": "SEQ_CLS"}), encoding="utf-8")
    with pytest.raises(MergeInputError, match="SEQ_CLS"):
        merge_models(Config(lora={"base": str(family["base"]), "adapters": [{"path": str(reward)}]}), tmp_path / "y")
    cut = tmp_path / "cut-adapter"
    shutil.copytree(adapter, cut)
    _truncate(cut, "adapter_model.safetensors", 200)
    with pytest.raises(MergeInputError, match="adapter .*truncated or damaged"):
        merge_models(Config(lora={"base": str(family["base"]), "adapters": [{"path": str(cut)}]}), tmp_path / "z")
    for out in ("x", "y", "z"):
        assert not (tmp_path / out).exists()


def test_negative_lora_weight_subtracts_the_update(family, adapter, tmp_path, caplog):
    from vinaforge.merge.testing import load_tensors

    with caplog.at_level(logging.WARNING):
        merge_models(Config(lora={"base": str(family["base"]), "adapters": [{"path": str(adapter), "weight": -1.0}]}),
                     tmp_path / "neg")  # fmt: skip
    merge_models(Config(lora={"base": str(family["base"]), "adapters": [{"path": str(adapter)}]}), tmp_path / "pos")
    assert "is subtracted" in caplog.text
    name = "model.layers.0.self_attn.q_proj.weight"
    base, pos, neg = (load_tensors(p)[name] for p in (family["base"], tmp_path / "pos", tmp_path / "neg"))
    torch.testing.assert_close(neg - base, -(pos - base), rtol=0, atol=1e-5)


def test_a_reward_model_is_not_exported_or_merged_as_a_causal_lm(family, tmp_path):
    """`export run` and `merge lora` loaded a sequence-classification folder as a causal LM."""
    from transformers import AutoModelForSequenceClassification
    from typer.testing import CliRunner

    from vinaforge.cli import app

    reward = tmp_path / "reward"
    model = AutoModelForSequenceClassification.from_pretrained(str(family["base"]), num_labels=1)
    model.save_pretrained(reward)
    shutil.copy(family["base"] / "tokenizer.json", reward / "tokenizer.json")
    res = CliRunner().invoke(app, ["export", "run", str(reward), "--output", str(tmp_path / "exp")])
    assert res.exit_code == 2, res.output
    assert "ForSequenceClassification" in res.output and "causal LM" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "exp").exists()

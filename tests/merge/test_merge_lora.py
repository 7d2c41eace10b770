"""LoRA: fold one adapter into its base, and combine two with PEFT's add_weighted_adapter (exact for cat)."""

from __future__ import annotations

import pytest
import torch

from vinaforge.merge.checks import MergeInputError
from vinaforge.merge.config import Config, merge_models
from vinaforge.merge.testing import load_tensors as tensors

TARGETS = ("q_proj", "v_proj")


@pytest.fixture(scope="module")
def adapters(family, tmp_path_factory) -> list:
    """Two LoRA adapters on the base model with non-zero (random) B, as after training."""
    from peft import LoraConfig, get_peft_model

    from vinaforge.model.load import load_causal_lm

    out = []
    for seed in (11, 12):
        torch.manual_seed(seed)
        model = load_causal_lm(str(family["base"]), dtype="float32")
        peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=list(TARGETS),
                                                init_lora_weights=False))  # fmt: skip
        folder = tmp_path_factory.mktemp(f"adapter{seed}")
        peft.save_pretrained(folder)
        out.append(folder)
    return out


def _delta(adapter_dir, name: str) -> torch.Tensor:
    """scale · B · A of one adapter for the base weight ``name``."""
    from safetensors.torch import load_file

    w = load_file(str(adapter_dir / "adapter_model.safetensors"))
    stem = "base_model.model." + name.removesuffix(".weight")
    return (8 / 4) * w[f"{stem}.lora_B.weight"] @ w[f"{stem}.lora_A.weight"]


def test_single_adapter_is_folded_into_the_base(family, adapters, tmp_path):
    info = merge_models(Config(lora={"base": str(family["base"]), "adapters": [{"path": str(adapters[0])}]}),
                        tmp_path / "m")  # fmt: skip
    assert info["combination"] == "merge"
    out, base = tensors(tmp_path / "m"), tensors(family["base"])
    name = "model.layers.1.self_attn.q_proj.weight"
    torch.testing.assert_close(out[name], base[name] + _delta(adapters[0], name), rtol=0, atol=1e-6)
    assert torch.equal(out["model.layers.1.mlp.up_proj.weight"], base["model.layers.1.mlp.up_proj.weight"])
    assert not any("lora" in k for k in out)


def test_weighted_combination_cat_is_exact(family, adapters, tmp_path):
    cfg = Config(lora={"base": str(family["base"]), "combination": "cat",
                       "adapters": [{"path": str(adapters[0]), "weight": 0.7}, {"path": str(adapters[1]), "weight": 0.3}]})  # fmt: skip
    merge_models(cfg, tmp_path / "m")
    out, base = tensors(tmp_path / "m"), tensors(family["base"])
    for name in ("model.layers.0.self_attn.v_proj.weight", "model.layers.1.self_attn.q_proj.weight"):
        expect = base[name] + 0.7 * _delta(adapters[0], name) + 0.3 * _delta(adapters[1], name)
        torch.testing.assert_close(out[name], expect, rtol=0, atol=1e-5)
    assert (tmp_path / "m" / "adapter").is_dir()  # the combined adapter is kept too


def test_lora_bad_inputs(family, tmp_path):
    with pytest.raises(MergeInputError, match="no adapter_config.json"):
        merge_models(Config(lora={"base": str(family["base"]), "adapters": [{"path": str(family["base"])}]}), tmp_path / "x")
    with pytest.raises(ValueError, match="needs `density`"):
        Config(lora={"base": "b", "combination": "ties", "adapters": [{"path": "a"}]})

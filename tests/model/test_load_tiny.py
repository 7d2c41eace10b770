"""Building tiny models, saving them atomically, loading models and tokenizers (with clear errors)."""

from __future__ import annotations

import json

import pytest
import torch

from vinaforge.model.load import ModelLoadError, load_causal_lm, load_tokenizer
from vinaforge.model.tiny import build_tiny_model, is_random_init, save_model


@pytest.mark.parametrize("arch", ["mistral", "llama"])
def test_tiny_model_is_labelled_random_and_round_trips(arch, base_tok, tmp_path):
    from transformers import AutoModelForCausalLM

    model = build_tiny_model(
        arch, vocab_size=len(base_tok), layers=2, hidden=64, heads=4, kv_heads=2, eos_token_id=2, seed=3
    )
    assert type(model).__name__ == f"{arch.capitalize()}ForCausalLM"
    assert model.config.num_key_value_heads == 2 and model.config.intermediate_size == 192
    assert is_random_init(model)

    out = save_model(model, base_tok, tmp_path / "tiny")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]  # no temporary folder left behind
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["vinaforge"]["random_init"] is True and cfg["vinaforge"]["seed"] == 3
    assert is_random_init(out)

    loaded = AutoModelForCausalLM.from_pretrained(out)
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert len(load_tokenizer(str(out))) == len(base_tok)


def test_same_seed_same_weights_and_global_rng_untouched():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = build_tiny_model("llama", vocab_size=256, layers=1, hidden=32, heads=2, seed=5)
    assert torch.equal(torch.rand(1), expected_next)  # building does not consume the caller's RNG
    b = build_tiny_model("llama", vocab_size=256, layers=1, hidden=32, heads=2, seed=5)
    c = build_tiny_model("llama", vocab_size=256, layers=1, hidden=32, heads=2, seed=6)
    assert torch.equal(a.lm_head.weight, b.lm_head.weight)
    assert not torch.equal(a.lm_head.weight, c.lm_head.weight)


def test_tiny_model_checks_its_shape():
    with pytest.raises(ValueError, match=r"hidden \(100\) must be divisible by heads \(3\)"):
        build_tiny_model("mistral", vocab_size=256, layers=1, hidden=100, heads=3)
    with pytest.raises(ValueError, match=r"heads \(4\) must be divisible by kv_heads \(3\)"):
        build_tiny_model("mistral", vocab_size=256, layers=1, hidden=64, heads=4, kv_heads=3)
    with pytest.raises(ValueError, match="unknown architecture 'gpt2'"):
        build_tiny_model("gpt2", vocab_size=256, layers=1, hidden=64, heads=4)


def test_load_causal_lm_from_folder_with_dtype(tmp_path):
    model = build_tiny_model("mistral", vocab_size=256, layers=1, hidden=32, heads=2)
    save_model(model, None, tmp_path / "m")
    loaded = load_causal_lm(str(tmp_path / "m"), dtype="bf16")
    assert loaded.dtype == torch.bfloat16
    assert loaded.config._attn_implementation == "sdpa"
    assert is_random_init(loaded)
    assert load_causal_lm(str(tmp_path / "m"), dtype="auto").dtype == torch.float32


def test_load_errors_name_the_source(tmp_path):
    with pytest.raises(ModelLoadError, match=f"model folder {tmp_path / 'missing'} does not exist"):
        load_causal_lm(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="has no config.json"):
        load_causal_lm(str(tmp_path / "empty"))
    (tmp_path / "empty" / "config.json").write_text('{"model_type": "no-such-architecture"}')
    with pytest.raises(ModelLoadError, match="cannot load a causal LM from"):
        load_causal_lm(str(tmp_path / "empty"))
    with pytest.raises(ModelLoadError, match="cannot load a causal LM from 'nobody/no-such-model'"):
        load_causal_lm("nobody/no-such-model")  # offline hub id
    with pytest.raises(ValueError, match="unknown dtype 'fp8'"):
        load_causal_lm(str(tmp_path / "empty"), dtype="fp8")
    with pytest.raises(ModelLoadError, match="tokenizer folder .* does not exist"):
        load_tokenizer(str(tmp_path / "missing"))

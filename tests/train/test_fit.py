"""Fitting larger models: bf16 weights, save dtype, 8-bit AdamW and QLoRA CPT, on tiny real models (CPU)."""

from __future__ import annotations

import json

import pytest
import torch


def _train(tmp_path, base_config, model_dir, corpus, name, **overrides):
    from vinaforge.train.config import CptConfig
    from vinaforge.train.engine import train_cpt

    cfg = base_config(model_dir, corpus, save_every=100, **overrides)
    cfg["phases"] = overrides.pop("phases", None) or [
        {"name": "all", "trainable": "all", "max_steps": 4, "lr": 3e-3, "warmup_steps": 1}
    ]
    out = tmp_path / name
    summary = train_cpt(CptConfig.model_validate(cfg), out)
    return out, summary


def _saved_dtypes(folder) -> set:
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as fh:
        return {fh.get_slice(k).get_dtype() for k in fh.keys()}


def test_final_model_is_saved_in_the_training_dtype(tmp_path, base_config, tiny_model_dir, corpus_dir):
    out, summary = _train(tmp_path, base_config, tiny_model_dir, corpus_dir, "bf16", model_dtype="bf16")
    assert _saved_dtypes(out / "final") == {"BF16"}
    assert json.loads((out / "final" / "config.json").read_text())["dtype"] == "bfloat16"
    assert summary["final_loss"] < summary["first_loss"]
    out, _ = _train(tmp_path, base_config, tiny_model_dir, corpus_dir, "fp32")
    assert _saved_dtypes(out / "final") == {"F32"}
    out, _ = _train(tmp_path, base_config, tiny_model_dir, corpus_dir, "chosen", save_dtype="bf16")
    assert _saved_dtypes(out / "final") == {"BF16"}


def test_8bit_adamw_trains(tmp_path, base_config, tiny_model_dir, corpus_dir):
    pytest.importorskip("bitsandbytes")
    from vinaforge.train.engine import build_optimizer

    out, summary = _train(tmp_path, base_config, tiny_model_dir, corpus_dir, "adam8", optimizer="adamw_8bit")
    assert summary["final_loss"] < summary["first_loss"] - 0.05
    from vinaforge.train.config import CptConfig, PhaseConfig

    cfg = CptConfig.model_validate(base_config(tiny_model_dir, corpus_dir, optimizer="paged_adamw_8bit"))
    p = torch.nn.Parameter(torch.zeros(8, 300))
    opt = build_optimizer([{"params": [p]}], PhaseConfig(name="x", max_steps=1), cfg, "cpu")
    assert type(opt).__name__ == "PagedAdamW8bit"


def test_qlora_cpt_trains_new_rows_and_merges_into_the_full_precision_base(
    tmp_path, base_config, tiny_model_dir, corpus_dir
):
    pytest.importorskip("bitsandbytes")
    from transformers import AutoModelForCausalLM

    phases = [
        {"name": "qlora", "trainable": "lora", "max_steps": 4, "lr": 1e-2, "warmup_steps": 1, "lora": {"r": 4, "alpha": 8}}
    ]
    out, summary = _train(
        tmp_path, base_config, tiny_model_dir, corpus_dir, "qlora", qlora=True, num_base_rows=700, phases=phases
    )
    assert summary["final_loss"] < summary["first_loss"]
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict()
    final = AutoModelForCausalLM.from_pretrained(out / "final").state_dict()
    emb = "model.embed_tokens.weight"
    assert torch.equal(final[emb][:700], base[emb][:700])  # base rows: bit-identical
    assert not torch.allclose(final[emb][700:], base[emb][700:])  # new rows: trained
    q = "model.layers.0.self_attn.q_proj.weight"
    # the adapters were merged into the fp32 base, not into the 4-bit copy: the change is low-rank
    delta = final[q] - base[q]
    assert 0 < torch.linalg.matrix_rank(delta, atol=1e-6) <= 4


def test_qlora_needs_one_lora_phase(base_config, tiny_model_dir, corpus_dir):
    from pydantic import ValidationError

    from vinaforge.train.config import CptConfig

    with pytest.raises(ValidationError, match="qlora: needs exactly one phase with trainable: lora"):
        CptConfig.model_validate(base_config(tiny_model_dir, corpus_dir, qlora=True))


def test_updates_clipped_to_nothing_stop_the_run(tmp_path, base_config, tokenizer, corpus_dir):
    """Zero embedding rows make the gradient norm overflow (each RMSNorm backward at a near-zero
    residual multiplies by ~1/sqrt(eps)); clipping then zeroes every update. The run stops naming
    the cause instead of finishing untrained (measured first on ``init: zero`` in bench/adaptation)."""
    from vinaforge.model.tiny import save_model, tiny_model_for
    from vinaforge.train.engine import TrainingError

    model = tiny_model_for(tokenizer, "mistral", layers=6, hidden=64, heads=4)
    model.config.rms_norm_eps = 1e-12  # a tiny random model amplifies less than a trained one: help it
    with torch.no_grad():
        model.get_input_embeddings().weight.zero_()
    save_model(model, tokenizer, tmp_path / "zero")
    with pytest.raises(TrainingError, match="gradient norm was inf for 3 steps in a row.*init: zero"):
        _train(tmp_path, base_config, tmp_path / "zero", corpus_dir, "run")

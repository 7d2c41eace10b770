"""Phases: schedules, a LoRA phase merged into the model, document masking with gradient checkpointing."""

from __future__ import annotations

import pytest
import torch

from vinaforge.train.config import CptConfig, PhaseConfig
from vinaforge.train.engine import build_scheduler, train_cpt


def _lrs(phase: PhaseConfig, steps: int) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=phase.lr)
    sched = build_scheduler(opt, phase, steps)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_cosine_and_wsd_schedules():
    cos = _lrs(PhaseConfig(name="c", max_steps=20, lr=1.0, warmup_steps=4, min_lr_ratio=0.1), 20)
    assert cos[0] == 0.0 and cos[4] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(cos[4:], cos[5:], strict=False)) and cos[-1] > 0.1
    wsd = _lrs(
        PhaseConfig(
            name="w", max_steps=20, lr=1.0, schedule="wsd", warmup_steps=2, decay_ratio=0.25, min_lr_ratio=0.0
        ),
        20,
    )
    assert wsd[2:15] == [1.0] * 13  # stable
    assert 0.0 < wsd[-1] < wsd[16] < wsd[15] == 1.0  # 1-sqrt decay over the last 5 steps


def test_lora_then_layers_with_document_masking(tmp_path, base_config, tiny_model_dir, corpus_dir):
    from transformers import AutoModelForCausalLM

    cfg = base_config(tiny_model_dir, corpus_dir, doc_masking=True, gradient_checkpointing=True)
    cfg["phases"] = [
        {"name": "lora", "trainable": "lora", "max_steps": 2, "lr": 1e-3, "lora": {"r": 4, "alpha": 8}},
        {"name": "layers", "trainable": "layers", "max_steps": 2, "lr": 1e-3},
    ]
    summary = train_cpt(CptConfig.model_validate(cfg), tmp_path / "run")
    lora, layers = summary["phases"]
    # LoRA adapters + the (full, since the model was not extended) embeddings; layers: all but embeddings
    assert (
        lora["trainable_params"] < lora["total_params"]
        and layers["trainable_params"] < layers["total_params"]
    )
    assert lora["total_params"] > layers["total_params"]  # the adapters exist only during the LoRA phase
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "final")  # merged: a plain HF model
    assert type(model).__name__ == "MistralForCausalLM"
    assert model.config.vinaforge["cpt"]["phases"] == ["lora:lora", "layers:layers"]
    assert model.config.vinaforge["random_init"] is True

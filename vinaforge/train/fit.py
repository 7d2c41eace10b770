"""Fitting large models: weight dtype, 8-bit optimizers, QLoRA for continued pretraining, save dtype.

- ``model_dtype: bf16`` loads the weights in bf16 (2 bytes each instead of 4; gradients and
  AdamW's two moments follow the weights' dtype), for models that would not fit in fp32;
  ``model_dtype: fp32`` + ``precision: bf16`` is the usual mixed precision (fp32 master weights).
- ``optimizer: adamw_8bit | paged_adamw_8bit``: bitsandbytes' block-wise 8-bit AdamW (2 bytes of
  state per parameter instead of 8); the paged variant lets the state spill to CPU memory under
  pressure (CUDA only; on CPU bitsandbytes falls back to the plain 8-bit one).
- ``qlora: true``: the base is loaded in 4-bit NF4 (bitsandbytes, through transformers'
  ``BitsAndBytesConfig``) and only LoRA adapters train (PEFT); the rows of new tokens stay
  trainable through PEFT's ``trainable_token_indices`` (``lora.embeddings: auto``). At the end the
  adapters are merged into the base re-loaded in ``save_dtype``, not into the 4-bit weights, so
  ``final/`` carries no quantisation error beyond the adapters' own.
- ``save_dtype``: the final model is written in the training dtype by default (bf16 when trained
  with ``precision: bf16`` or ``model_dtype: bf16``), or as chosen.

Hand-written glue; the quantisation and 8-bit optimizers are bitsandbytes', LoRA is PEFT's.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def check_qlora_phases(phases) -> None:
    """QLoRA keeps one 4-bit base for the whole run: a single phase that trains LoRA adapters."""
    if len(phases) != 1 or phases[0].trainable != "lora":
        kinds = ", ".join(f"{p.name}: {p.trainable}" for p in phases)
        raise ValueError(
            f"qlora: needs exactly one phase with trainable: lora (got {kinds}); "
            "run the other phases as a separate cpt stage without qlora"
        )


def training_torch_dtype(cfg):
    import torch

    return torch.bfloat16 if cfg.model_dtype == "bf16" else torch.float32


def save_torch_dtype(cfg, precision: str):
    """``save_dtype: auto`` is the dtype the model trained in: bf16 under bf16 autocast or weights."""
    import torch

    choice = cfg.save_dtype
    if choice == "auto":
        choice = "bf16" if (cfg.model_dtype == "bf16" or precision == "bf16") else "fp32"
    return torch.bfloat16 if choice == "bf16" else torch.float32


def load_training_model(cfg, model_path: str):
    """The model to train: fp32 or bf16 weights, or a 4-bit NF4 base for QLoRA."""
    from vinaforge.model.load import ModelLoadError, load_causal_lm

    if not cfg.qlora:
        return load_causal_lm(model_path, dtype=cfg.model_dtype, attn_implementation=cfg.attn_implementation)
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as err:
        raise ModelLoadError("qlora: needs bitsandbytes (pip install 'vinaforge[fit]')") from err
    import torch
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    compute = torch.bfloat16 if (cfg.precision == "bf16" or cfg.model_dtype == "bf16") else torch.float32
    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute,
    )
    try:
        model = AutoModelForCausalLM.from_pretrained(
            model_path,
            quantization_config=quant,
            dtype=compute,
            attn_implementation=cfg.attn_implementation,
            device_map={"": _local_device()},
        )
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"qlora: cannot load {model_path!r} in 4-bit: {err}") from err
    # norms and embeddings in fp32, input gradients on (for gradient checkpointing): PEFT's recipe
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    log.info("qlora: %s loaded in 4-bit NF4 (compute dtype %s)", model_path, compute)
    return model


def _local_device() -> Any:
    import os

    import torch

    if torch.cuda.is_available():
        return int(os.environ.get("LOCAL_RANK", "0"))
    return "cpu"


def build_8bit_optimizer(param_groups: list[dict], name: str, lr: float, betas, eps: float):
    try:
        import bitsandbytes as bnb
    except ImportError as err:
        raise ValueError(f"optimizer: {name} needs bitsandbytes (pip install 'vinaforge[fit]')") from err
    cls = bnb.optim.PagedAdamW8bit if name == "paged_adamw_8bit" else bnb.optim.AdamW8bit
    return cls(param_groups, lr=lr, betas=betas, eps=eps)


def merge_qlora_into_base(peft_model, model_path: str, dtype, attn_implementation: str):
    """Apply the trained adapters (and token rows) to the full-precision base and merge them."""
    from peft import get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

    from vinaforge.model.load import load_causal_lm

    adapters = {k: v.detach().to("cpu") for k, v in get_peft_model_state_dict(peft_model).items()}
    config = peft_model.peft_config["default"]
    base = load_causal_lm(model_path, dtype="fp32", attn_implementation=attn_implementation)
    fresh = get_peft_model(base, config)
    set_peft_model_state_dict(fresh, adapters)
    merged = fresh.merge_and_unload()
    log.info("qlora: adapters merged into the base reloaded from %s", model_path)
    return merged.to(dtype)


def cast_state_dict(state_dict: dict | None, dtype) -> dict | None:
    """Floating tensors of a gathered (FSDP/DeepSpeed) state dict in the save dtype."""
    if state_dict is None:
        return None
    return {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in state_dict.items()}

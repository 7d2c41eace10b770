"""LoRA adapters: merge one into its base, or combine several with PEFT's ``add_weighted_adapter``.

PEFT does the work: ``PeftModel.from_pretrained`` + ``load_adapter`` load the adapters,
``add_weighted_adapter`` combines them (``cat`` keeps every adapter's update exactly:
ΔW = Σ wᵢ·Bᵢ·Aᵢ·scaleᵢ; ``linear``, ``svd``, ``ties``… approximate it at one rank), and
``merge_and_unload`` folds the result into the base weights, so the output folder loads with
plain ``AutoModelForCausalLM``. This module checks the inputs (each adapter folder, its base
model matching ours in architecture) and writes atomically.

Hand-written glue only.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from vinaforge.merge.checks import MergeInputError
from vinaforge.stage import StageConfig

log = logging.getLogger(__name__)

Combination = Literal[
    "cat", "linear", "svd", "ties", "ties_svd", "dare_ties", "dare_linear", "magnitude_prune"
]


class AdapterSpec(StageConfig):
    path: str
    weight: float = 1.0


class LoraMergeConfig(StageConfig):
    """A base model and the adapters to fold into it."""

    base: str
    adapters: list[AdapterSpec] = Field(min_length=1)
    combination: Combination = "cat"
    density: float | None = Field(None, gt=0, le=1)  # ties/dare/magnitude_prune
    save_adapter: bool = True  # also keep the combined adapter (adapter/) next to the merged model
    dtype: str = "auto"

    @model_validator(mode="after")
    def _density_when_needed(self):
        if self.combination in ("ties", "ties_svd", "dare_ties", "dare_linear", "magnitude_prune"):
            if self.density is None:
                raise ValueError(f"combination {self.combination!r} needs `density` (0 < density <= 1)")
        return self


def check_adapter(path: str | Path) -> dict:
    """The adapter's ``adapter_config.json`` (a clear error for anything that is not a LoRA adapter)."""
    p = Path(path)
    cfg = p / "adapter_config.json"
    if not p.is_dir():
        raise MergeInputError(f"adapter folder {p} does not exist")
    if not cfg.is_file():
        raise MergeInputError(f"adapter folder {p} has no adapter_config.json; is it a PEFT adapter?")
    data = json.loads(cfg.read_text(encoding="utf-8"))
    if data.get("peft_type") not in ("LORA", None):
        raise MergeInputError(f"adapter {p} is a {data.get('peft_type')} adapter; only LoRA adapters merge here")
    return data


def merge_lora(cfg: LoraMergeConfig, out_dir: str | Path, overwrite: bool = False) -> dict:
    """Fold the adapter(s) into the base and save a plain HF model folder."""
    from peft import PeftModel

    from vinaforge.io import atomic_path
    from vinaforge.model.load import ModelLoadError, load_causal_lm, load_tokenizer

    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise MergeInputError(f"output folder {out} exists; remove it or choose another --output")
    for spec in cfg.adapters:
        check_adapter(spec.path)
    started = time.time()
    try:
        model = load_causal_lm(cfg.base, dtype=cfg.dtype)
        tokenizer = load_tokenizer(cfg.adapters[0].path if _has_tokenizer(cfg.adapters[0].path) else cfg.base)
    except ModelLoadError as err:
        raise MergeInputError(str(err)) from None
    names = [f"a{i}" for i in range(len(cfg.adapters))]
    try:
        peft_model = PeftModel.from_pretrained(model, cfg.adapters[0].path, adapter_name=names[0])
        for name, spec in zip(names[1:], cfg.adapters[1:], strict=True):
            peft_model.load_adapter(spec.path, adapter_name=name)
    except (RuntimeError, ValueError, KeyError) as err:
        raise MergeInputError(f"cannot load the adapters onto {cfg.base}: {str(err).splitlines()[0]}") from None
    single = len(names) == 1 and cfg.adapters[0].weight == 1.0
    active = names[0]
    if not single:
        active = "combined"
        kwargs = {"density": cfg.density} if cfg.density is not None else {}
        peft_model.add_weighted_adapter(
            adapters=names,
            weights=[s.weight for s in cfg.adapters],
            adapter_name=active,
            combination_type=cfg.combination,
            **kwargs,
        )
    peft_model.set_adapter(active)
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        if cfg.save_adapter and not single:
            peft_model.save_pretrained(tmp / "adapter", selected_adapters=[active])
        merged = peft_model.merge_and_unload(adapter_names=[active])
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    seconds = round(time.time() - started, 2)
    log.info("merged %d adapter(s) into %s (%s) in %.1f s", len(names), cfg.base, cfg.combination, seconds)
    return {
        "method": "lora",
        "combination": cfg.combination if not single else "merge",
        "adapters": [s.path for s in cfg.adapters],
        "weights": [s.weight for s in cfg.adapters],
        "base": cfg.base,
        "seconds": seconds,
        "output": str(out),
    }


def _has_tokenizer(folder: str) -> bool:
    p = Path(folder)
    return (p / "tokenizer.json").is_file() or (p / "tokenizer_config.json").is_file()

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
    try:
        data = json.loads(cfg.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise MergeInputError(f"{cfg}: not valid JSON ({err})") from None
    if data.get("peft_type") not in ("LORA", None):
        raise MergeInputError(f"adapter {p} is a {data.get('peft_type')} adapter; only LoRA adapters merge here")
    if data.get("task_type") not in ("CAUSAL_LM", None):
        raise MergeInputError(f"adapter {p} was trained for {data.get('task_type')} (a reward or classifier head), "
                              "not CAUSAL_LM; it cannot be folded into a causal language model")  # fmt: skip
    from vinaforge.checks import InputCheckError, check_safetensors_complete

    try:
        check_safetensors_complete(p, "adapter")
    except InputCheckError as err:
        raise MergeInputError(str(err)) from None
    return data


def check_adapter_base(adapter: str | Path, adapter_cfg: dict, base: str | Path) -> None:
    """The adapter was trained on a model of the base's kind: same architecture and shapes.

    PEFT loads an adapter onto any model whose module names and shapes happen to match (a
    Mistral adapter onto a Llama of the same size) and exited 0; when the adapter's recorded base
    is a local folder, its config must agree with ours.
    """
    from vinaforge.merge.checks import SHAPE_KEYS

    recorded = adapter_cfg.get("base_model_name_or_path")
    if not recorded or not (Path(recorded) / "config.json").is_file() or not (Path(base) / "config.json").is_file():
        return
    if Path(recorded).resolve() == Path(base).resolve():
        return
    theirs = json.loads((Path(recorded) / "config.json").read_text(encoding="utf-8"))
    ours = json.loads((Path(base) / "config.json").read_text(encoding="utf-8"))
    keys = ("model_type", *SHAPE_KEYS)
    diff = [k for k in keys if theirs.get(k) != ours.get(k)]
    if diff or (theirs.get("architectures") or [None])[0] != (ours.get("architectures") or [None])[0]:
        detail = ", ".join(f"{k} {theirs.get(k)} vs {ours.get(k)}" for k in diff) or "architectures differ"
        raise MergeInputError(f"adapter {adapter} was trained on {recorded}, a model of another kind than the base "
                              f"{base} ({detail}); fold it into the model it was trained on")  # fmt: skip


def merge_lora(cfg: LoraMergeConfig, out_dir: str | Path, overwrite: bool = False) -> dict:
    """Fold the adapter(s) into the base and save a plain HF model folder."""
    from peft import PeftModel

    from vinaforge.io import atomic_path
    from vinaforge.model.load import ModelLoadError, load_causal_lm, load_tokenizer

    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise MergeInputError(f"output folder {out} exists; remove it or choose another --output")
    from vinaforge.merge.checks import read_model_info

    if Path(cfg.base).is_dir():
        read_model_info(cfg.base)  # a config and whole weights (a hub id is loaded as it is)
    for spec in cfg.adapters:
        check_adapter_base(spec.path, check_adapter(spec.path), cfg.base)
        if spec.weight < 0:
            log.warning("adapter %s has weight %s: its update is subtracted (task-vector negation)", spec.path,
                        spec.weight)  # fmt: skip
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
        from vinaforge.model.load import save_tokenizer

        save_tokenizer(tokenizer, tmp)
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

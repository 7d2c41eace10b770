"""Settings of a continued-pretraining run: data sources, mixture/curriculum, EEVE-style phases.

One pydantic model (:class:`CptConfig`) serves the ``vinaforge train cpt --config`` YAML file and the
``cpt`` stage of a recipe. Unknown keys are errors; every cross-field check (a mixture weight for a
source that does not exist, a phase with neither a step nor a token budget) names the key path.

Hand-written: the schema is ours (the phases, mixture and curriculum of the VBD-LLaMA2, SeaLLMs,
VinaSmol recipes); pydantic does the validation.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from vinaforge.model.trainable import LoraSettings
from vinaforge.recipe import InputPaths
from vinaforge.stage import StageConfig

# Keys that change how a run is watched, not what it computes: a checkpoint written under one value
# may be resumed under another.
OPERATIONAL_KEYS = frozenset(
    {
        "log_every",
        "eval_every",
        "save_every",
        "keep_checkpoints",
        "keep_checkpoints_after_success",
        "report_to",
        "heldout",
        "peak_tflops",
        "progress",
        "run_name",
        "cpu_threads",
    }
)


class SourceConfig(StageConfig):
    """One data source: files, folders or globs of one kind of record."""

    paths: InputPaths = Field(min_length=1, description="files, folders or globs; `@stage/...` in recipes")
    kind: Literal["text", "parallel", "instruct", "packed"] = Field(
        "text", description="packed: one folder written by `vinaforge train tokenize`"
    )
    field: str = Field("text", description="text field of JSONL/parquet records (kind: text)")
    # kind: parallel (En<->Vi pairs -> translation examples in both directions)
    src_field: str = "en"
    tgt_field: str = "vi"
    directions: list[Literal["forward", "backward"]] = Field(default_factory=lambda: ["forward", "backward"])
    # kind: instruct (hybrid pretraining: conversations read by vinaforge.chat, rendered with a chat
    # template; everything but the assistant replies is masked from the loss)
    format: str = Field(
        "auto", description="instruct: messages, sharegpt, alpaca, prompt_response, preference or auto"
    )
    chat_template: str = Field(
        "vi_qa", description="instruct: a vinaforge.chat template name (vi_qa, chatml, mistral...) or .jinja file"
    )
    prompt_field: str = Field("prompt", description="instruct: field read as the prompt when not 'prompt'")
    response_field: str = Field("response", description="instruct: field read as the reply when not 'response'")
    prompt_template: str | None = Field(
        None, description="parallel: template of the prompt side (default in examples.py)"
    )
    mask_prompt: bool | None = Field(None, description="label prompt tokens -100; default: true for instruct")

    @model_validator(mode="after")
    def _instruct_settings(self) -> SourceConfig:
        if self.kind == "instruct" and self.prompt_template is not None:
            raise ValueError(
                "prompt_template: instruct sources are rendered with a chat template; "
                "set chat_template (e.g. vi_qa) instead"
            )
        if self.kind == "instruct":
            from vinaforge.chat import FORMATS

            if self.format not in FORMATS:
                raise ValueError(f"format: {self.format!r} is not one of {', '.join(FORMATS)}")
        return self
    max_docs: int | None = Field(None, gt=0, description="read at most this many records")
    max_tokens: int | None = Field(None, gt=0, description="stop packing once this many tokens are written")

    def masks_prompt(self) -> bool:
        if self.mask_prompt is not None:
            return self.mask_prompt
        return self.kind == "instruct"


class MixtureSegment(StageConfig):
    """Source weights used until ``until`` (a fraction of the tokens of the run or phase)."""

    until: float = Field(1.0, gt=0.0, le=1.0)
    weights: dict[str, float] = Field(min_length=1)

    @field_validator("weights")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        for name, w in v.items():
            if not math.isfinite(w) or w < 0:
                raise ValueError(f"weight of {name!r} must be a finite number >= 0, got {w}")
        if sum(v.values()) <= 0:
            raise ValueError("weights must not all be 0")
        return v

    def normalised(self) -> dict[str, float]:
        total = sum(self.weights.values())
        return {k: w / total for k, w in self.weights.items() if w > 0}


def _as_segments(value: Any) -> Any:
    """``{vi: 0.6, en: 0.4}`` is shorthand for one segment covering the whole run."""
    if isinstance(value, dict) and "weights" not in value:
        return [{"weights": value}]
    if isinstance(value, dict):
        return [value]
    return value


def _check_segments(segments: list[MixtureSegment]) -> list[MixtureSegment]:
    last = 0.0
    for i, seg in enumerate(segments):
        if seg.until <= last:
            raise ValueError(f"segment {i}: until={seg.until} must be larger than the previous one ({last})")
        last = seg.until
    if segments and segments[-1].until != 1.0:
        raise ValueError(f"the last segment must reach until=1.0 (got {segments[-1].until})")
    return segments


Mixture = Annotated[list[MixtureSegment], BeforeValidator(_as_segments), AfterValidator(_check_segments)]
"""Weights per source, or a curriculum of segments; a plain ``{source: weight}`` is one segment."""


class DataConfig(StageConfig):
    """Where the tokens come from and in which proportions."""

    sources: dict[str, SourceConfig] = Field(min_length=1)
    mixture: Mixture | None = Field(
        None, description="weights per source, optionally as a curriculum; default: by token count"
    )
    add_bos: bool = Field(False, description="start every document with BOS (documents always end with EOS)")
    cache_dir: str | None = Field(None, description="where packed token files go (default OUTPUT/packed)")
    tokenize_batch: int = Field(512, gt=0)

    @model_validator(mode="after")
    def _known_sources(self) -> DataConfig:
        if self.mixture:
            check_mixture_sources(self.mixture, self.sources, "data.mixture")
        return self


def check_mixture_sources(segments: list[MixtureSegment], sources: dict[str, Any], where: str) -> None:
    names = ", ".join(sorted(sources))
    for i, seg in enumerate(segments):
        for name in seg.weights:
            if name not in sources:
                raise ValueError(
                    f"{where}.{i}.weights.{name}: no data source named {name!r} (sources: {names})"
                )


class PhaseConfig(StageConfig):
    """One EEVE-style stage of training: what is trainable, for how long, at which learning rate."""

    name: str
    trainable: Literal["new_embeddings", "embeddings", "embeddings+lm_head", "all", "layers", "lora"] = "all"
    max_steps: int | None = Field(None, gt=0)
    tokens: int | None = Field(None, gt=0, description="token budget; converted to optimizer steps")
    lr: float = Field(3e-4, gt=0)
    schedule: Literal["cosine", "wsd", "constant"] = "cosine"
    warmup_steps: int | None = Field(None, ge=0)
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    min_lr_ratio: float = Field(0.1, ge=0.0, le=1.0)
    decay_ratio: float = Field(0.2, gt=0.0, le=1.0, description="wsd: fraction of steps spent decaying")
    decay_type: Literal["linear", "cosine", "1-sqrt"] = "1-sqrt"
    weight_decay: float = Field(0.1, ge=0.0)
    mixture: Mixture | None = Field(None, description="this phase's own weights/curriculum")
    lora: LoraSettings | None = None

    @model_validator(mode="after")
    def _budget(self) -> PhaseConfig:
        if (self.max_steps is None) == (self.tokens is None):
            raise ValueError(f"phase {self.name!r}: set exactly one of max_steps or tokens")
        return self

    def num_steps(self, tokens_per_step: int) -> int:
        if self.max_steps is not None:
            return self.max_steps
        return max(1, math.ceil(self.tokens / tokens_per_step))

    def num_warmup(self, steps: int) -> int:
        if self.warmup_steps is not None:
            return min(self.warmup_steps, steps)
        return int(self.warmup_ratio * steps)


class HeldoutConfig(StageConfig):
    """Held-out Vietnamese texts scored (loss and bits per byte) every ``eval_every`` steps."""

    paths: InputPaths = Field(min_length=1)
    field: str = "text"
    max_texts: int = Field(256, gt=0)
    max_length: int | None = Field(None, gt=0, description="window length; default: seq_len")
    batch_size: int = Field(8, gt=0)


class CptConfig(StageConfig):
    """A continued-pretraining run (``vinaforge train cpt`` and the ``cpt`` recipe stage)."""

    model: str = Field(description="HF model folder or hub id (in recipes, e.g. `@model/model`)")
    tokenizer: str | None = Field(None, description="default: the model's own folder")
    allow_vocab_mismatch: bool = Field(
        False, description="accept a tokenizer much smaller than the model's vocabulary (never a larger one)"
    )
    num_base_rows: int | None = Field(
        None, gt=0, description="rows of the base vocabulary (new_embeddings); default: from the model folder"
    )
    data: DataConfig
    heldout: HeldoutConfig | None = None
    phases: list[PhaseConfig] = Field(min_length=1)

    seq_len: int = Field(2048, gt=1)
    micro_batch_size: int = Field(8, gt=0)
    grad_accum: int = Field(1, gt=0)
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    attn_implementation: str = Field(
        "sdpa", description="sdpa, eager, flash_attention_2, flex_attention, ..."
    )
    doc_masking: bool = Field(False, description="no attention across documents (position ids reset per doc)")
    gradient_checkpointing: bool = False
    compile: bool = Field(False, description="torch.compile the model")
    # memory and speed levers (docs/training.md "Fitting large models" and "Speed levers")
    model_dtype: Literal["fp32", "bf16"] = Field(
        "fp32", description="dtype of the weights while training; bf16 halves weight/grad/optimizer memory"
    )
    save_dtype: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="dtype of final/; auto: bf16 when trained in bf16 (precision or model_dtype)"
    )
    optimizer: Literal["adamw", "adamw_8bit", "paged_adamw_8bit"] = Field(
        "adamw", description="8-bit variants: bitsandbytes (optimizer state in 2 bytes per parameter)"
    )
    qlora: bool = Field(
        False, description="load the base in 4-bit NF4 (bitsandbytes) and train LoRA: one phase, trainable: lora"
    )
    fused_loss: Literal["none", "chunked", "liger"] = Field(
        "none", description="LM head + cross-entropy without the full logits (chunked: any device; liger: GPU)"
    )
    loss_chunk_size: int = Field(1024, gt=0, description="positions per chunk for fused_loss: chunked")
    liger_kernels: bool = Field(False, description="Liger's RMSNorm/SwiGLU/RoPE Triton kernels (GPU)")
    max_grad_norm: float = Field(1.0, gt=0)
    adam_beta1: float = Field(0.9, ge=0, lt=1)
    adam_beta2: float = Field(0.95, ge=0, lt=1)
    adam_eps: float = Field(1e-8, gt=0)
    fused_adamw: bool | None = Field(
        None, description="default: fused on CUDA and CPU (torch kernels), foreach elsewhere"
    )
    seed: int | None = Field(None, description="default 0 (in recipes: the recipe's seed)")
    cpu_threads: int | None = Field(
        None,
        gt=0,
        description="torch intra-op threads on CPU (default: torch's); 1 suits tiny models on busy CPUs",
    )

    log_every: int = Field(1, gt=0)
    eval_every: int = Field(100, gt=0)
    save_every: int = Field(500, gt=0)
    keep_checkpoints: int = Field(2, gt=0)
    keep_checkpoints_after_success: bool = True
    report_to: list[Literal["tensorboard", "wandb", "trackio"]] = Field(
        default_factory=lambda: ["tensorboard"]
    )
    run_name: str = "cpt"
    peak_tflops: float | None = Field(
        None, gt=0, description="peak TFLOP/s per device for MFU; default: known GPUs, measured GEMM on CPU"
    )
    progress: bool = True

    @model_validator(mode="after")
    def _cross_checks(self) -> CptConfig:
        names = [p.name for p in self.phases]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"phases: names must be unique, repeated: {', '.join(dupes)}")
        for i, phase in enumerate(self.phases):
            if phase.mixture:
                check_mixture_sources(phase.mixture, self.data.sources, f"phases.{i}.mixture")
            if phase.lora is not None and phase.trainable != "lora":
                raise ValueError(f"phases.{i}.lora: only used with trainable: lora (got {phase.trainable!r})")
        if self.qlora:
            from vinaforge.train.fit import check_qlora_phases

            check_qlora_phases(self.phases)
        return self

    @property
    def tokens_per_micro_batch(self) -> int:
        return self.micro_batch_size * self.seq_len

    def trajectory_dict(self) -> dict:
        """The settings that determine the computed trajectory (what a resume must match)."""
        data = self.model_dump(mode="json")
        for key in OPERATIONAL_KEYS:
            data.pop(key, None)
        data.get("data", {}).pop("cache_dir", None)
        return data

    def trajectory_hash(self) -> str:
        blob = json.dumps(self.trajectory_dict(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()


def diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Key paths whose values differ between two nested dicts (for resume-mismatch errors)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b), key=str):
            out.extend(diff_keys(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out.extend(diff_keys(x, y, f"{prefix}.{i}"))
        return out
    return [] if a == b else [prefix or "(root)"]

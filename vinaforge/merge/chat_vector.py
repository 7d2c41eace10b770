"""Chat vector (instruct residual): θ = θ_vi_base + λ·(θ_instruct − θ_base), as a mergekit merge.

The cheap path from a Vietnamese continued-pretrained base to a chat model with no SFT
(Huang et al., "Chat Vector", 2023; VinaSmol's "instruct residual"). It is exactly mergekit's
``task_arithmetic`` with ``base_model: base`` and two task models — the Vietnamese base with
weight 1 and the instruct model with weight λ:

    base + 1·(vi − base) + λ·(instruct − base) = vi + λ·(instruct − base)

so this module only writes that config:

- **extended rows.** The Vietnamese base usually has an extended vocabulary that the instruct
  and base models lack. Its tokenizer is the merge's tokenizer (``tokenizer: {source: vi_base}``):
  mergekit then gives every model the Vietnamese row for a new token, so its delta is zero and
  the row comes out unchanged — new tokens have no instruct residual to add;
- **λ per layer group.** ``groups`` turn into mergekit conditional parameters (first match wins):
  a ``[start, end)`` layer range, a tensor-name substring (``mlp``, ``self_attn``,
  ``embed_tokens``, ``lm_head``), or both (``model.layers.{i}.{match}``);
- **chat template.** The instruct model's template goes into the merged tokenizer.

Hand-written: the config translation; the arithmetic is mergekit's.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from vinaforge.stage import StageConfig

LAMBDA_RANGE = (0.0, 2.0)


def _check_lambda(value: float) -> float:
    lo, hi = LAMBDA_RANGE
    if not lo <= value <= hi:
        raise ValueError(
            f"λ = {value} is outside [{lo:g}, {hi:g}]: 0 keeps the Vietnamese base, 1 adds the whole "
            "instruct residual, more than 2 overshoots it"
        )
    return value


class LambdaGroup(StageConfig):
    """A λ for some tensors: a layer range, a tensor-name substring, or both."""

    layers: tuple[int, int] | None = None  # [start, end) layer indices
    match: str | None = None  # tensor-name substring: mlp, self_attn, embed_tokens, lm_head, norm...
    lam: float

    @field_validator("lam")
    @classmethod
    def _lam_range(cls, value: float) -> float:
        return _check_lambda(value)

    @model_validator(mode="after")
    def _has_target(self):
        if self.layers is None and not self.match:
            raise ValueError("a λ group needs `layers: [start, end]`, `match: <tensor-name part>`, or both")
        if self.layers is not None and not 0 <= self.layers[0] < self.layers[1]:
            raise ValueError(f"layers {list(self.layers)}: expected [start, end) with 0 <= start < end")
        return self

    def filters(self) -> list[str]:
        """mergekit filter strings (substrings of tensor names) this group covers."""
        if self.layers is None:
            return [str(self.match)]
        suffix = f"{self.match}" if self.match else ""
        return [f"model.layers.{i}.{suffix}" for i in range(*self.layers)]


class ChatVectorConfig(StageConfig):
    """The three models and the λs of a chat-vector merge."""

    vi_base: str  # Vietnamese continued-pretrained model (may have an extended vocabulary)
    instruct: str  # the original instruct/chat model
    base: str  # the original base model that the instruct model was tuned from
    lam: float = Field(1.0, description="λ for tensors in no group")
    groups: list[LambdaGroup] = []
    chat_template: str | None = None  # default: the instruct model's own
    dtype: str = "float32"  # arithmetic precision; the output keeps vi_base's dtype

    @field_validator("lam")
    @classmethod
    def _lam_range(cls, value: float) -> float:
        return _check_lambda(value)


def chat_template_of(folder: str | Path) -> str | None:
    """The chat template saved with a tokenizer folder, if any."""
    p = Path(folder)
    if (p / "chat_template.jinja").is_file():
        return (p / "chat_template.jinja").read_text(encoding="utf-8")
    cfg = p / "tokenizer_config.json"
    if cfg.is_file():
        template = json.loads(cfg.read_text(encoding="utf-8")).get("chat_template")
        if isinstance(template, list):  # named templates: the default one
            template = next((t["template"] for t in template if t.get("name") == "default"), None)
        return template or None
    return None


def lambda_setting(cfg: ChatVectorConfig) -> float | list[dict]:
    """The instruct model's mergekit ``weight``: λ, or conditional λs with the default last."""
    if not cfg.groups:
        return cfg.lam
    conditions = [{"filter": f, "value": g.lam} for g in cfg.groups for f in g.filters()]
    return [*conditions, {"value": cfg.lam}]


def to_mergekit(cfg: ChatVectorConfig) -> dict:
    """The mergekit ``task_arithmetic`` config that computes θ_vi + λ·(θ_instruct − θ_base)."""
    out = {
        "merge_method": "task_arithmetic",
        "base_model": cfg.base,
        "models": [
            {"model": cfg.vi_base, "parameters": {"weight": 1.0}},
            {"model": cfg.instruct, "parameters": {"weight": lambda_setting(cfg)}},
        ],
        "parameters": {"normalize": False, "lambda": 1.0},
        "tokenizer": {"source": cfg.vi_base},
        "dtype": cfg.dtype,
    }
    vi_cfg = Path(cfg.vi_base) / "config.json"
    if vi_cfg.is_file():
        meta = json.loads(vi_cfg.read_text(encoding="utf-8"))
        if meta.get("dtype") or meta.get("torch_dtype"):
            out["out_dtype"] = meta.get("dtype") or meta.get("torch_dtype")
    template = cfg.chat_template or chat_template_of(cfg.instruct)
    if template:
        out["chat_template"] = template
    return out

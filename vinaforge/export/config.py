"""The one ``export`` config, shared by ``vinaforge export`` and the recipe stage."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from vinaforge.recipe import InputPath, InputPaths
from vinaforge.stage import StageConfig


class CardSettings(StageConfig):
    """What the model card cannot find in the run's records."""

    name: str | None = None  # default: the stage or output folder name
    description: str | None = None
    base_model: str | None = None  # default: from the run's model stage
    licence: str | None = None  # the model's licence (card metadata)
    intended_use: str | None = None
    data_licences: dict[str, str] = {}  # path prefix -> licence, for inputs without a README saying it


class Config(StageConfig):
    model: InputPath  # HF folder (or "@merge/model")
    tokenizer: InputPath | None = None  # default: the model's own
    dtype: Literal["bf16", "fp16", "fp32"] = "bf16"  # safetensors dtype of the HF folder
    chat_template: str | None = None  # registry name, .jinja file or Jinja; default: the model's own
    gguf: list[str] = ["f16"]  # f16, bf16, q8_0, f32; k-quants (q4_k_m...) need llama-quantize or the runtime
    ollama: bool = True  # write a Modelfile next to the first GGUF
    verify: bool = True
    verify_texts: InputPaths = []  # more Vietnamese texts for the tokenization check (plain lines or JSONL)
    require_verified: bool = False  # fail, instead of reporting "not verified", when the runtime is absent
    max_new_tokens: int = Field(16, ge=1, le=256)
    first_new_id: int | None = Field(None, ge=0)  # first extended-vocabulary id (default: from config.json)
    card: CardSettings = CardSettings()

    @field_validator("gguf")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        from vinaforge.export.llamacpp import GGUF_TYPES

        for t in value:
            if t.lower() not in GGUF_TYPES:
                raise ValueError(f"unknown GGUF type {t!r}; expected one of {', '.join(GGUF_TYPES)}")
        return [t.lower() for t in dict.fromkeys(value)]

"""The backend settings stages embed in their recipe config, and the one factory for backends.

A stage that generates (``self_preference``, ``translate``, ``synth``, ``judge``, the collection
app) takes ``backend: {kind: local, model: PATH}`` or
``backend: {kind: openai, base_url: URL, model: NAME, api_key_env: VAR}``. Keys never appear in
a recipe: only the name of the environment variable that holds one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vinaforge.generate.base import Backend, SamplingParams


class SamplingConfig(BaseModel):
    """Recipe form of :class:`~vinaforge.generate.base.SamplingParams`."""

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0)
    seed: int | None = 0
    stop: list[str] = []
    n: int = Field(1, ge=1)

    def params(self) -> SamplingParams:
        return SamplingParams(**self.model_dump())


class BackendConfig(BaseModel):
    """Where texts come from: a local HF model folder, or an OpenAI-compatible endpoint."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["local", "openai"] = "local"
    model: str = Field(..., description="local: model folder or hub id; openai: the served model name")
    base_url: str | None = Field(None, description="openai: e.g. http://127.0.0.1:8000/v1")
    api_key_env: str | None = Field(None, description="openai: name of the env var holding the key")
    device: str | None = None
    dtype: str = "auto"
    batch_size: int = Field(8, ge=1)
    chat_template: str | None = Field(None, description="local: override the model's chat template")
    timeout: float = Field(60.0, gt=0)
    max_retries: int = Field(4, ge=0)
    concurrency: int = Field(4, ge=1)
    requests_per_minute: float | None = Field(None, gt=0)

    @field_validator("api_key_env")
    @classmethod
    def _looks_like_a_name(cls, v: str | None) -> str | None:
        if v and (v.startswith("sk-") or not v.replace("_", "").isalnum()):
            raise ValueError("api_key_env is the NAME of an environment variable (e.g. OPENAI_API_KEY), not a key")
        return v

    def build(self) -> Backend:
        return load_backend(self)


def load_backend(spec: BackendConfig | str) -> Backend:
    """A backend from a config, or from a string: a local model path / hub id."""
    cfg = spec if isinstance(spec, BackendConfig) else BackendConfig(model=str(spec))
    if cfg.kind == "openai":
        from vinaforge.generate.endpoint import EndpointBackend

        return EndpointBackend(cfg.base_url or "", cfg.model, api_key_env=cfg.api_key_env, timeout=cfg.timeout,
                               max_retries=cfg.max_retries, concurrency=cfg.concurrency,
                               requests_per_minute=cfg.requests_per_minute)  # fmt: skip
    from vinaforge.generate.local import LocalBackend

    return LocalBackend(cfg.model, device=cfg.device, dtype=cfg.dtype, batch_size=cfg.batch_size,
                        chat_template=cfg.chat_template)  # fmt: skip

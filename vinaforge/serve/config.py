"""Settings of ``vinaforge serve`` (and of the demo's ``serve_smoke`` stage): one pydantic model.

The API key is never part of the config a recipe or manifest records: it is read from the
environment variable named in ``api_key_env`` (default ``VINAFORGE_API_KEY``), or given on the
command line with ``--api-key``, which only lives in memory.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class ServeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    model: str = Field("", description="local: HF model folder; gguf: .gguf file; openai: served model name")
    backend: Literal["local", "gguf", "openai"] = "local"
    upstream: str | None = Field(None, description="openai backend: base URL, e.g. http://127.0.0.1:8000/v1")
    upstream_key_env: str | None = Field(None, description="env var holding the upstream's API key")
    served_name: str | None = Field(None, description="model id the API reports (default: folder name)")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_key_env: str = "VINAFORGE_API_KEY"
    api_key: SecretStr | None = Field(None, exclude=True, repr=False)
    cors_origins: list[str] = []
    device: str | None = None
    dtype: str = "auto"
    chat_template: str | None = None
    torch_threads: int | None = Field(None, ge=1, description="CPU threads for the local model; default: "
                                      "half the usable cores (see default_torch_threads)")  # fmt: skip
    # dynamic batching (local backend)
    batching: Literal["continuous", "wave"] = Field("continuous", description="rows join a running batch, or "
                                                     "wait for the next one")  # fmt: skip
    max_batch_size: int = Field(16, ge=1)
    batch_window_ms: float = Field(5.0, ge=0)
    # limits
    max_concurrency: int = Field(64, ge=1, description="requests in flight; more get 429")
    max_request_bytes: int = Field(1_000_000, ge=1024)
    max_prompt_tokens: int | None = Field(None, ge=1, description="default: the model's context")
    max_tokens_limit: int = Field(2048, ge=1)
    default_max_tokens: int = Field(512, ge=1)
    max_n: int = Field(8, ge=1)
    request_timeout: float = Field(300.0, gt=0, description="seconds a request may take")
    shutdown_grace: float = Field(30.0, ge=0, description="seconds in-flight streams get to finish on shutdown")
    # retrieval
    rag_index: str | None = None
    rag_k: int = Field(5, ge=1, le=20)
    embedding_model: str | None = Field(None, description="local sentence-embedding model folder")

    @model_validator(mode="after")
    def _backend_needs(self) -> ServeConfig:
        if self.backend == "openai" and not self.upstream:
            raise ValueError("backend 'openai' needs upstream (the base URL of the OpenAI-compatible server)")
        if self.backend != "openai" and not self.model:
            raise ValueError(f"backend {self.backend!r} needs model (a path)")
        if self.default_max_tokens > self.max_tokens_limit:
            self.default_max_tokens = self.max_tokens_limit
        return self

    def resolved_torch_threads(self) -> int:
        return self.torch_threads or default_torch_threads()

    def resolved_api_key(self) -> str | None:
        """``--api-key`` if given, else the environment variable; ``None`` means no key is required."""
        if self.api_key is not None and self.api_key.get_secret_value():
            return self.api_key.get_secret_value()
        return os.environ.get(self.api_key_env) or None

    @property
    def model_id(self) -> str:
        if self.served_name:
            return self.served_name
        if self.backend == "openai":
            return self.model or "upstream"
        return os.path.basename(os.path.normpath(self.model)) or "model"


def default_torch_threads() -> int:
    """Half the cores this process may use, at least one.

    torch's default (every core) leaves nothing for the HTTP loop and tokenisation, and its OpenMP
    threads spin on each other when another job shares the box: on a busy 2-core machine issue 22
    measured 42 tokens/s with 2 threads against 539 with 1. Half the cores keeps one free for
    the server and for neighbours; ``--torch-threads`` overrides it on a machine of its own.
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 1
    return max(1, usable // 2)

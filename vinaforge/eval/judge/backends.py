"""Which model answers or judges: a spec → a :mod:`vinaforge.generate` backend, and the calls.

A model is named by a string (a local HF folder or hub id, or ``openai:MODEL`` for any
OpenAI-compatible endpoint) or by a full :class:`~vinaforge.generate.BackendConfig`. Generation
itself is :mod:`vinaforge.generate` (transformers for local models, the official ``openai``
client with retries, Retry-After and concurrency for endpoints); a model without a chat template
is prompted in ``vinaforge.chat``'s default ``vi_qa`` format. This module only maps specs and
environment variables to backend settings, and runs a batch of :class:`Prompt` requests so that
every item comes back with its text or its error (one failure never stops the evaluation).

Hand-written glue: the ``openai:`` shorthand and its environment variables are the judge's CLI
conventions.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any, Literal

from vinaforge.eval.judge.prompts import Prompt
from vinaforge.generate import Backend, BackendConfig, Completion, GenRequest, SamplingParams, load_backend

log = logging.getLogger(__name__)

ENDPOINT_PREFIX = "openai:"
Role = Literal["judge", "answer"]
ModelSpec = str | BackendConfig


class BackendConfigError(ValueError):
    """A backend that cannot be set up (missing base URL, bad model spec, unset key variable)."""


def env_names(role: Role) -> tuple[list[str], list[str]]:
    """Environment variables read for an endpoint's base URL and API key, in order."""
    prefix = "VINAFORGE_JUDGE" if role == "judge" else "VINAFORGE_ANSWER"
    return [f"{prefix}_BASE_URL", "OPENAI_BASE_URL"], [f"{prefix}_API_KEY", "OPENAI_API_KEY"]


def is_endpoint_spec(spec: ModelSpec) -> bool:
    if isinstance(spec, BackendConfig):
        return spec.kind == "openai"
    return spec.startswith(ENDPOINT_PREFIX)


def backend_config(
    spec: ModelSpec,
    role: Role,
    *,
    base_url: str | None = None,
    device: str | None = None,
    dtype: str = "auto",
    batch_size: int = 4,
    chat_template: str | None = None,
    concurrency: int = 4,
    timeout_s: float = 120.0,
    max_retries: int = 4,
) -> BackendConfig:
    """The backend settings of a spec; ``openai:MODEL`` reads its URL and key variable from the env."""
    if isinstance(spec, BackendConfig):
        return spec
    if not is_endpoint_spec(spec):
        return BackendConfig(kind="local", model=spec, device=device, dtype=dtype, batch_size=batch_size,
                             chat_template=chat_template)  # fmt: skip
    name = spec[len(ENDPOINT_PREFIX) :]
    if not name:
        raise BackendConfigError(f"endpoint spec {spec!r} has no model name; write openai:MODEL_NAME")
    url_vars, key_vars = env_names(role)
    base_url = base_url or next((os.environ[v] for v in url_vars if os.environ.get(v)), None)
    if not base_url:
        raise BackendConfigError(
            f"{spec!r} needs the endpoint's base URL: set {url_vars[0]} (e.g. http://localhost:8000/v1) "
            "or pass --base-url"
        )
    if not base_url.startswith(("http://", "https://")):
        raise BackendConfigError(f"endpoint base URL must start with http:// or https://, got {base_url!r}")
    key_env = next((v for v in key_vars if os.environ.get(v)), None)  # the NAME; the key stays in the env
    return BackendConfig(kind="openai", model=name, base_url=base_url, api_key_env=key_env, timeout=timeout_s,
                         max_retries=max_retries, concurrency=concurrency)  # fmt: skip


def make_backend(spec: ModelSpec, role: Role, **settings: Any) -> Backend:
    """A ready backend for ``spec`` (see :func:`backend_config` for ``settings``)."""
    from vinaforge.generate.endpoint import EndpointConfigError

    cfg = backend_config(spec, role, **settings)
    try:
        return load_backend(cfg)
    except EndpointConfigError as err:
        raise BackendConfigError(str(err)) from None


def chunk_size(backend: Backend) -> int:
    """Prompts handed over per call: a local batch, or enough to keep an endpoint's workers busy."""
    return int(getattr(backend, "batch_size", 0) or 4 * getattr(backend, "concurrency", 1))


def merge_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Fold a leading system message into the first user turn (for templates without a system role)."""
    if not messages or messages[0]["role"] != "system":
        return messages
    system, rest = messages[0]["content"], [dict(m) for m in messages[1:]]
    if rest and rest[0]["role"] == "user":
        rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
        return rest
    return [{"role": "user", "content": system}, *rest]


def accepts_system(backend: Backend) -> bool:
    """Whether a local model's chat template takes a system message (many Mistral ones raise)."""
    prompt_of = getattr(backend, "prompt_of", None)
    if prompt_of is None:  # an endpoint: the server applies its own template
        return True
    probe = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    try:
        prompt_of(GenRequest(messages=probe))
    except Exception as err:  # jinja's raise_exception, or a template error
        log.debug("chat template refused a system message (%s); it will be merged into the user turn", err)
        return False
    return True


def complete(backend: Backend, prompts: Sequence[Prompt], params: SamplingParams,
             system_ok: bool = True) -> list[Completion]:  # fmt: skip
    """One completion per prompt, in order; failures come back with ``error`` set."""
    requests = [GenRequest(messages=p.messages if system_ok else merge_system(p.messages)) for p in prompts]
    return backend.generate(requests, params)


def describe(backend: Backend, params: SamplingParams) -> dict[str, Any]:
    """What produced a record: the backend (never a key) and its decoding settings."""
    return {**backend.describe(), "max_new_tokens": params.max_new_tokens, "temperature": params.temperature,
            "top_p": params.top_p, "seed": params.seed}  # fmt: skip

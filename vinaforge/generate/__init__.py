"""Text generation for every stage: one interface over local HF models and OpenAI-compatible endpoints.

Importing this package does not import torch or openai; the backends load them when built.
"""

from vinaforge.generate.base import (
    Backend,
    Completion,
    GenRequest,
    SamplingParams,
    StreamEvent,
    Usage,
    as_request,
    group_samples,
    truncate_at_stop,
)
from vinaforge.generate.config import BackendConfig, SamplingConfig, load_backend

__all__ = [
    "Backend", "BackendConfig", "Completion", "GenRequest", "SamplingConfig", "SamplingParams", "StreamEvent",
    "Usage", "as_request", "group_samples", "load_backend", "truncate_at_stop",
]  # fmt: skip

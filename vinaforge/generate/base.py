"""The one generation interface: conversations or prompts plus sampling settings → completions.

Every stage that talks to a model (SFT before/after tables, self-preference sampling, the
judge, translation, synthesis, serving, RAG, the collection app, RL rollouts outside TRL) calls
a :class:`Backend`: a local Hugging Face model (:mod:`vinaforge.generate.local`) or any
OpenAI-compatible endpoint (:mod:`vinaforge.generate.endpoint`). Backends never raise for one
bad item: a failed call comes back as a :class:`Completion` with ``error`` set, so one timeout
is recorded and the batch goes on.

Hand-written glue (nanochat's ``engine.py`` idea: one engine for every script); the model work
is transformers' ``generate`` or the ``openai`` client.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class SamplingParams:
    """Decoding settings (greedy when ``temperature`` is 0). ``n`` samples per request."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = 0
    stop: list[str] = field(default_factory=list)
    n: int = 1

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass
class GenRequest:
    """Either chat ``messages`` (rendered with the model's chat template) or a raw ``prompt``."""

    messages: list[dict[str, str]] | None = None
    prompt: str | None = None
    id: str | None = None

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("a request needs exactly one of messages or prompt")


RequestLike = GenRequest | list | str


def continuation_context(request: GenRequest, prompt_ids: list[int]) -> list[int]:
    """Prompt tokens to decode a raw completion against, so its first word keeps its space.

    SentencePiece decoders drop the leading space of the first token decoded ("ăn" + "▁và" gives
    "và"), which is right at the start of a chat reply but wrong for a continuation of a raw
    prompt: decoding the last prompt token with the new ones and cutting its text off keeps " và",
    as llama.cpp's server and vLLM return it. Chat replies decode on their own (no leading space).
    """
    return prompt_ids[-1:] if request.prompt is not None else []


def decode_after(tokenizer, context: list[int], new_ids: list[int]) -> str:
    """``new_ids`` decoded as they read after ``context`` (see :func:`continuation_context`)."""
    if not context:
        return tokenizer.decode(new_ids, skip_special_tokens=True)
    head = tokenizer.decode(context, skip_special_tokens=True)
    full = tokenizer.decode([*context, *new_ids], skip_special_tokens=True)
    if full.startswith(head):
        return full[len(head) :]
    return tokenizer.decode(new_ids, skip_special_tokens=True)


def as_request(item: RequestLike) -> GenRequest:
    """Accept a :class:`GenRequest`, a message list, or a raw prompt string."""
    if isinstance(item, GenRequest):
        return item
    if isinstance(item, str):
        return GenRequest(prompt=item)
    if isinstance(item, list):
        return GenRequest(messages=item)
    if hasattr(item, "messages"):  # a vinaforge.chat Conversation
        return GenRequest(messages=item.prompt_messages, id=getattr(item, "id", None))
    raise TypeError(f"cannot make a generation request from {type(item).__name__}")


@dataclass
class Completion:
    """One sample's outcome: ``text`` on success, else ``error`` (``finish_reason == "error"``)."""

    text: str | None
    finish_reason: str | None = None  # "stop" | "length" | "error"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    attempts: int = 1
    seconds: float = 0.0
    request_index: int = 0
    sample_index: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None and self.text is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StreamEvent:
    """A piece of streamed text; the last event carries the finished :class:`Completion`."""

    delta: str = ""
    completion: Completion | None = None


@dataclass
class Usage:
    """Running token and call accounting of a backend (thread-safe)."""

    requests: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempts: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, c: Completion) -> None:
        with self._lock:
            self.requests += 1
            self.failures += int(not c.ok)
            self.prompt_tokens += c.prompt_tokens
            self.completion_tokens += c.completion_tokens
            self.attempts += c.attempts

    def to_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("requests", "failures", "prompt_tokens", "completion_tokens", "attempts")}


def truncate_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the earliest stop string; report whether one was found."""
    cut = min((i for s in stops if s and (i := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def group_samples(completions: list[Completion], n_requests: int) -> list[list[Completion]]:
    """Request-major grouping of a flat ``generate`` result with ``n`` samples each."""
    groups: list[list[Completion]] = [[] for _ in range(n_requests)]
    for c in completions:
        groups[c.request_index].append(c)
    return groups


class Backend(ABC):
    """What every caller needs from a model, local or remote."""

    name: str = "backend"

    def __init__(self) -> None:
        self.usage = Usage()

    @abstractmethod
    def generate(self, requests: Sequence[RequestLike], params: SamplingParams | None = None) -> list[Completion]:
        """Completions for every request, request-major with ``params.n`` samples each."""

    @abstractmethod
    def stream(self, request: RequestLike, params: SamplingParams | None = None) -> Iterator[StreamEvent]:
        """Text deltas of one request as they are produced, then a final event with the completion."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What produced the texts, for manifests and reports; never holds a secret."""

    def chat(self, messages: list[dict[str, str]], params: SamplingParams | None = None) -> Completion:
        """One conversation, one reply."""
        return self.generate([GenRequest(messages=messages)], params)[0]

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the model or connection pool."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""The model behind the API: one small interface over the three backends.

- ``local``: a Hugging Face model in this process, continuously batched
  (:class:`~vinaforge.generate.batching.ContinuousBatchingEngine`; ``batching: wave`` for the
  simpler :class:`~vinaforge.generate.batching.BatchingEngine`);
- ``gguf``: a GGUF file through llama-cpp-python (one request at a time: llama.cpp's context
  is not shared between threads);
- ``openai``: any OpenAI-compatible server (vLLM on a GPU, llama.cpp's server, another vinaforge)
  through :class:`~vinaforge.generate.endpoint.EndpointBackend`, so the page and RAG run in front
  of an engine that cannot live in this venv.

Every engine answers ``submit(request, params, sink) -> Ticket``: events (text deltas and a final
completion per sample) go to ``sink`` from a worker thread, and ``Ticket.cancel()`` stops the work
for a client that went away.

Hand-written glue.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from vinaforge.generate.base import Backend, Completion, GenRequest, SamplingParams
from vinaforge.generate.batching import BatchingEngine, ContinuousBatchingEngine, Ticket, TicketEvent
from vinaforge.generate.logprobs import ScoringUnavailable
from vinaforge.serve.config import ServeConfig

log = logging.getLogger(__name__)
Sink = Callable[[TicketEvent], None]


class Engine(ABC):
    """What the API needs from a model."""

    context_length: int | None = None

    def count_prompt(self, request: GenRequest) -> int | None:
        """Prompt tokens, or None when only the upstream knows."""
        return None

    @abstractmethod
    def submit(self, request: GenRequest, params: SamplingParams, sink: Sink | None = None) -> Ticket:
        """Queue a request; its events go to ``sink`` (streaming) and its ticket resolves when done."""

    def queued(self) -> int:
        return 0

    # Scoring, for ``logprobs`` and ``echo``: backends that can (local, GGUF) have these methods;
    # an upstream OpenAI-compatible server cannot be asked for them here.
    backend: Any = None

    def _scoring(self, name: str):
        fn = getattr(self.backend, name, None)
        if fn is None:
            raise ScoringUnavailable(f"the {getattr(self.backend, 'name', 'configured')} backend gives no logprobs")
        return fn

    def tokenize(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return self._scoring("token_ids")(text, add_special_tokens)

    def detokenize(self, ids: list[int]) -> str:
        return self._scoring("detokenize")(ids)

    def prompt_text(self, request: GenRequest) -> str:
        """The exact text the model continues for ``request`` (chat messages in its template)."""
        fn = getattr(self.backend, "prompt_text", None) or self._scoring("prompt_of")
        return fn(request)

    def score(self, sequences: list[list[int]], top: int = 0) -> list:
        return self._scoring("score")(sequences, top)

    def describe(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class LocalEngine(Engine):
    """A local HF model with dynamic batching; prompts are tokenised once, on submission."""

    def __init__(self, backend, max_batch_size: int = 16, window_ms: float = 5.0, batching: str = "continuous") -> None:
        self.backend = backend
        kind = ContinuousBatchingEngine if batching == "continuous" else BatchingEngine
        self.batcher = kind(backend, max_batch_size=max_batch_size, window_ms=window_ms).start()
        self.context_length = backend.context_length

    def count_prompt(self, request: GenRequest) -> int | None:
        return len(self.backend.encode(request))

    def submit(self, request: GenRequest, params: SamplingParams, sink: Sink | None = None) -> Ticket:
        return self.batcher.submit(request, params, sink)

    def queued(self) -> int:
        return self.batcher.queued

    def describe(self) -> dict[str, Any]:
        return self.backend.describe() | {"batching": type(self.batcher).__name__,
                                          "max_batch_size": self.batcher.max_batch_size,
                                          "batches": self.batcher.batches, "rows": self.batcher.rows_run}  # fmt: skip

    def close(self) -> None:
        self.batcher.stop()


class BackendEngine(Engine):
    """Any :class:`Backend` run in worker threads (GGUF, OpenAI-compatible upstreams)."""

    def __init__(self, backend: Backend, workers: int = 8) -> None:
        self.backend = backend
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vinaforge-engine")
        self.context_length = getattr(backend, "context_length", None)
        self._queued = 0

    def count_prompt(self, request: GenRequest) -> int | None:
        count = getattr(self.backend, "count_tokens", None)
        return count(request) if count else None

    def submit(self, request: GenRequest, params: SamplingParams, sink: Sink | None = None) -> Ticket:
        ticket = Ticket(params.n, sink)
        self.pool.submit(self._work, ticket, request, params)
        return ticket

    def _work(self, ticket: Ticket, request: GenRequest, params: SamplingParams) -> None:
        try:
            if params.n == 1 and request.messages is not None:
                self._stream(ticket, request, params)
            else:
                for c in self.backend.generate([request], params):
                    if c.ok and c.text:
                        ticket.emit(TicketEvent(c.sample_index, c.text))
                    ticket.emit(TicketEvent(c.sample_index, "", c))
        except Exception as err:  # the client gets an error completion, the server keeps going
            log.error("backend call failed: %s", err)
            for s in range(params.n):
                if not ticket.finished.is_set():
                    ticket.emit(TicketEvent(s, "", Completion(None, "error", 0, 0, f"{type(err).__name__}: {err}",
                                                              sample_index=s)))  # fmt: skip

    def _stream(self, ticket: Ticket, request: GenRequest, params: SamplingParams) -> None:
        events = self.backend.stream(request, params)
        try:
            for ev in events:
                if ticket.cancelled:
                    ticket.emit(TicketEvent(0, "", Completion("", "cancelled")))
                    return
                if ev.delta:
                    ticket.emit(TicketEvent(0, ev.delta))
                if ev.completion is not None:
                    ticket.emit(TicketEvent(0, "", ev.completion))
        finally:
            events.close()  # stops the upstream stream / the local generation

    def describe(self) -> dict[str, Any]:
        return self.backend.describe()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.backend.close()


def build_engine(cfg: ServeConfig) -> Engine:
    """The engine a config asks for (loads the model)."""
    if cfg.backend == "openai":
        from vinaforge.generate.endpoint import EndpointBackend

        backend = EndpointBackend(cfg.upstream or "", cfg.model or "default", api_key_env=cfg.upstream_key_env,
                                  timeout=cfg.request_timeout, max_retries=1, concurrency=cfg.max_concurrency)  # fmt: skip
        return BackendEngine(backend, workers=min(cfg.max_concurrency, 64))
    if cfg.backend == "gguf":
        from vinaforge.generate.gguf import GGUFBackend

        return BackendEngine(GGUFBackend(cfg.model), workers=2)
    from vinaforge.generate.local import LocalBackend

    backend = LocalBackend(cfg.model, device=cfg.device, dtype=cfg.dtype, batch_size=cfg.max_batch_size,
                           chat_template=cfg.chat_template)  # fmt: skip
    return LocalEngine(backend, cfg.max_batch_size, cfg.batch_window_ms, cfg.batching)


def set_torch_threads(cfg: ServeConfig) -> int:
    """Limit torch's CPU threads before the local model loads (see ``default_torch_threads``).

    Called by ``vinaforge serve`` (a process of its own); a server started inside another process
    (the ``serve_smoke`` stage, tests) leaves that process's setting alone.
    """
    import torch

    threads = cfg.resolved_torch_threads()
    if torch.get_num_threads() != threads:
        log.info("torch CPU threads: %d (of %d); set --torch-threads to change it", threads, torch.get_num_threads())
        torch.set_num_threads(threads)
    return threads

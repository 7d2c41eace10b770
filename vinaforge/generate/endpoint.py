"""OpenAI-compatible endpoint backend: vLLM, llama.cpp server, OpenAI, vinaforge's own server.

Built on the official ``openai`` client. The client's own retries are switched off and done here
instead, because callers need to know how many attempts each item took and need a failure
recorded per item rather than raised: timeouts, connection errors, 408/409/425/429/5xx and
malformed responses are retried with exponential backoff and jitter, honouring ``Retry-After``
(seconds or ``retry-after-ms``); what still fails comes back as a :class:`Completion` with
``error``. A thread pool bounds concurrency and an optional requests-per-minute limit spaces
calls. The API key is read from an environment variable named in the config, never from the
config itself, and :meth:`EndpointBackend.describe` redacts credentials from the URL.

Hand-written glue over ``openai``.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from vinaforge.generate.base import (
    Backend,
    Completion,
    GenRequest,
    RequestLike,
    SamplingParams,
    StreamEvent,
    as_request,
    truncate_at_stop,
)
from vinaforge.redact import redact_text, redact_url

log = logging.getLogger(__name__)
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
NO_KEY = "EMPTY"  # what local servers (vLLM, llama.cpp) accept when no key is configured


class EndpointConfigError(ValueError):
    """An endpoint that cannot be used (no URL, unset key variable, refused credentials)."""


class _RateLimiter:
    """Space calls so that at most ``per_minute`` start in any minute (simple interval pacing)."""

    def __init__(self, per_minute: float | None) -> None:
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


def resolve_api_key(api_key_env: str | None) -> str:
    """The key from the named environment variable; a named but unset variable is an error."""
    if not api_key_env:
        return NO_KEY
    value = os.environ.get(api_key_env)
    if not value:
        raise EndpointConfigError(f"environment variable {api_key_env} (api_key_env) is not set")
    return value


def _retry_after(err: Exception) -> float | None:
    response = getattr(err, "response", None)
    headers = getattr(response, "headers", None) or {}
    try:
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000
        if "retry-after" in headers:
            return float(headers["retry-after"])
    except ValueError:
        return None
    return None


class EndpointBackend(Backend):
    """Any server that speaks the OpenAI chat/completions API."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 4,
        concurrency: int = 4,
        requests_per_minute: float | None = None,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
    ) -> None:
        super().__init__()
        import openai

        if not base_url:
            raise EndpointConfigError("an endpoint backend needs base_url (e.g. http://127.0.0.1:8000/v1)")
        self.base_url, self.model = base_url.rstrip("/"), model
        self.api_key_env = api_key_env
        self.max_retries, self.backoff, self.max_backoff = max_retries, backoff, max_backoff
        self.concurrency = max(1, int(concurrency))
        self.limiter = _RateLimiter(requests_per_minute)
        self.client = openai.OpenAI(base_url=self.base_url, api_key=resolve_api_key(api_key_env),
                                    timeout=timeout, max_retries=0)  # fmt: skip
        self._openai = openai

    # ------------------------------------------------------------------ one call with retries

    def _retryable(self, err: Exception) -> bool:
        o = self._openai
        if isinstance(err, o.AuthenticationError | o.PermissionDeniedError | o.NotFoundError | o.BadRequestError):
            return False
        if isinstance(err, o.APIStatusError):
            return err.status_code in RETRY_STATUS
        return isinstance(err, o.APITimeoutError | o.APIConnectionError | o.APIResponseValidationError | ValueError)

    def _call(self, fn, *args: Any, **kwargs: Any) -> tuple[Any, int, str | None]:
        attempts, last = 0, None
        while attempts <= self.max_retries:
            attempts += 1
            self.limiter.wait()
            try:
                return fn(*args, **kwargs), attempts, None
            except Exception as err:  # classify, then retry or record
                last = f"{type(err).__name__}: {redact_text(str(err))[:300]}"
                if isinstance(err, self._openai.AuthenticationError):
                    raise EndpointConfigError(f"{redact_url(self.base_url)} refused the API key "
                                              f"(from {self.api_key_env or 'no key variable'})") from None  # fmt: skip
                if not self._retryable(err) or attempts > self.max_retries:
                    break
                delay = _retry_after(err)
                if delay is None:
                    delay = self.backoff * (2 ** (attempts - 1)) * (1 + random.random() * 0.25)
                log.debug("endpoint call failed (%s); retry %d in %.2fs", last, attempts, delay)
                time.sleep(min(delay, self.max_backoff))
        return None, attempts, last

    def _kwargs(self, params: SamplingParams) -> dict[str, Any]:
        kw: dict[str, Any] = {"model": self.model, "max_tokens": params.max_new_tokens,
                              "temperature": params.temperature, "top_p": params.top_p, "n": params.n}  # fmt: skip
        if params.seed is not None:
            kw["seed"] = params.seed
        if params.stop:
            kw["stop"] = params.stop[:4]  # the OpenAI API takes at most 4
        return kw

    def _one(self, index: int, req: GenRequest, params: SamplingParams) -> list[Completion]:
        t0 = time.perf_counter()
        if req.messages is not None:
            resp, attempts, error = self._call(self.client.chat.completions.create, messages=req.messages,
                                               **self._kwargs(params))  # fmt: skip
        else:
            resp, attempts, error = self._call(self.client.completions.create, prompt=req.prompt,
                                               **self._kwargs(params))  # fmt: skip
        seconds = time.perf_counter() - t0
        if error is not None or resp is None:
            return [Completion(None, "error", 0, 0, error or "no response", attempts, seconds, index, s)
                    for s in range(params.n)]  # fmt: skip
        usage = getattr(resp, "usage", None)
        prompt_tokens = getattr(usage, "prompt_tokens", 0) or 0
        total_completion = getattr(usage, "completion_tokens", 0) or 0
        out = []
        choices = sorted(resp.choices or [], key=lambda c: c.index)
        for s in range(params.n):
            if s >= len(choices):
                out.append(Completion(None, "error", prompt_tokens, 0, "endpoint returned fewer choices than n",
                                      attempts, seconds, index, s))  # fmt: skip
                continue
            ch = choices[s]
            text = ch.message.content if req.messages is not None else ch.text
            text, hit = truncate_at_stop(text or "", params.stop[4:])
            finish = "stop" if hit else (ch.finish_reason or "stop")
            out.append(Completion(text, finish, prompt_tokens if s == 0 else 0,
                                  total_completion // max(1, len(choices)), None, attempts, seconds, index, s))  # fmt: skip
        return out

    def generate(self, requests: Sequence[RequestLike], params: SamplingParams | None = None) -> list[Completion]:
        params = params or SamplingParams()
        reqs = [as_request(r) for r in requests]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            groups = list(pool.map(lambda ir: self._one(ir[0], ir[1], params), enumerate(reqs)))
        flat = [c for g in groups for c in g]
        for c in flat:
            self.usage.add(c)
        return flat

    def stream(self, request: RequestLike, params: SamplingParams | None = None) -> Iterator[StreamEvent]:
        params = params or SamplingParams()
        req = as_request(request)
        if req.messages is None:
            raise EndpointConfigError("streaming is for chat requests (messages)")
        t0 = time.perf_counter()
        kw = self._kwargs(params) | {"stream": True, "stream_options": {"include_usage": True}}
        stream, attempts, error = self._call(self.client.chat.completions.create, messages=req.messages, **kw)
        if error is not None:
            c = Completion(None, "error", 0, 0, error, attempts, time.perf_counter() - t0)
            self.usage.add(c)
            yield StreamEvent("", c)
            return
        text, finish, usage = "", None, None
        try:
            for chunk in stream:
                if getattr(chunk, "usage", None):
                    usage = chunk.usage
                for ch in chunk.choices or []:
                    delta = ch.delta.content or ""
                    if delta:
                        text += delta
                        yield StreamEvent(delta)
                    if ch.finish_reason:
                        finish = ch.finish_reason
        except Exception as err:  # a truncated stream is recorded, not raised
            c = Completion(text or None, "error", 0, 0, f"stream broke: {type(err).__name__}: {redact_text(str(err))[:200]}",
                           attempts, time.perf_counter() - t0)  # fmt: skip
            self.usage.add(c)
            yield StreamEvent("", c)
            return
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()
        if finish is None:  # the connection closed before the server said the reply was finished
            c = Completion(text or None, "error", 0, 0, "stream broke: ended without a finish reason (truncated)",
                           attempts, time.perf_counter() - t0)  # fmt: skip
            self.usage.add(c)
            yield StreamEvent("", c)
            return
        c = Completion(text, finish, getattr(usage, "prompt_tokens", 0) or 0,
                       getattr(usage, "completion_tokens", 0) or 0, None, attempts, time.perf_counter() - t0)  # fmt: skip
        self.usage.add(c)
        yield StreamEvent("", c)

    def describe(self) -> dict[str, Any]:
        return {"kind": "openai", "base_url": redact_url(self.base_url), "model": self.model,
                "api_key_env": self.api_key_env, "concurrency": self.concurrency}  # fmt: skip

    def close(self) -> None:
        self.client.close()

"""A minimal OpenAI-compatible HTTP server around any :class:`Backend`, with fault injection.

For tests and benchmarks of everything that talks to endpoints (the endpoint backend,
translation, synthesis, the judge): a real HTTP server on 127.0.0.1 in front of a real model,
which can also misbehave on request — time out, answer 429 with ``Retry-After``, 500, send
malformed JSON or cut a stream short — and counts every call it receives. Users serve models
with ``vinaforge serve`` (FastAPI, batching, auth); this one is deliberately small and
dependency-free (standard library ``http.server``).

Hand-written: fault injection against a real model is test infrastructure no library ships.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from vinaforge.generate.base import Backend, GenRequest, SamplingParams

FAULTS = ("timeout", "429", "500", "malformed", "truncate", "401")


@dataclass
class FaultPlan:
    """Faults to inject, by the 1-based number of the call that receives them."""

    by_call: dict[int, str] = field(default_factory=dict)
    retry_after: float = 0.2
    timeout_sleep: float = 3.0

    def __post_init__(self) -> None:
        bad = {f for f in self.by_call.values() if f not in FAULTS}
        if bad:
            raise ValueError(f"unknown faults {sorted(bad)}; known: {', '.join(FAULTS)}")


class _Handler(BaseHTTPRequestHandler):
    server: _Server  # type: ignore[assignment]
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet
        pass

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout fault)
            pass

    def _send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(obj, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        if self.path.rstrip("/").endswith("/models"):
            self._send_json(200, {"object": "list", "data": [{"id": self.server.model_name, "object": "model"}]})
        else:
            self._send_json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        srv = self.server
        n = srv.count_call(self.path)
        fault = srv.faults.by_call.get(n)
        if srv.api_key and self.headers.get("Authorization") != f"Bearer {srv.api_key}":
            fault = "401"
        if fault == "401":
            return self._send_json(401, {"error": {"message": "invalid api key", "type": "authentication_error"}})
        if fault == "429":
            return self._send_json(429, {"error": {"message": "slow down", "type": "rate_limit"}},
                                   {"Retry-After": str(srv.faults.retry_after)})  # fmt: skip
        if fault == "500":
            return self._send_json(500, {"error": {"message": "boom", "type": "server_error"}})
        if fault == "timeout":
            time.sleep(srv.faults.timeout_sleep)
            return self._send_json(500, {"error": {"message": "too late", "type": "server_error"}})
        if fault == "malformed":
            body = b'{"id": "x", "choices": [ {"message": '
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        try:
            req = json.loads(raw)
        except json.JSONDecodeError:
            return self._send_json(400, {"error": {"message": "malformed JSON", "type": "invalid_request_error"}})
        chat = self.path.rstrip("/").endswith("/chat/completions")
        params = SamplingParams(
            max_new_tokens=int(req.get("max_tokens") or 16), temperature=float(req.get("temperature") or 0.0),
            top_p=float(req.get("top_p") or 1.0), seed=req.get("seed", 0), n=int(req.get("n") or 1),
            stop=[req["stop"]] if isinstance(req.get("stop"), str) else list(req.get("stop") or []),
        )  # fmt: skip
        gen = GenRequest(messages=req["messages"]) if chat else GenRequest(prompt=req["prompt"])
        if req.get("stream"):
            return self._stream(gen, params, truncate=fault == "truncate")
        with srv.model_lock:
            outs = srv.backend.generate([gen], params)
        srv.count_success()
        choices = [
            {"index": c.sample_index, "finish_reason": c.finish_reason if c.ok else "stop",
             **({"message": {"role": "assistant", "content": c.text or ""}} if chat else {"text": c.text or ""})}
            for c in outs
        ]  # fmt: skip
        usage = {"prompt_tokens": outs[0].prompt_tokens, "completion_tokens": sum(c.completion_tokens for c in outs)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        self._send_json(200, {"id": f"cmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion" if chat else
                              "text_completion", "created": int(time.time()), "model": srv.model_name,
                              "choices": choices, "usage": usage})  # fmt: skip

    def _stream(self, gen: GenRequest, params: SamplingParams, truncate: bool) -> None:
        srv = self.server
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        cid = f"chatcmpl-{uuid.uuid4().hex[:12]}"

        def event(obj: dict) -> None:
            self.wfile.write(f"data: {json.dumps(obj, ensure_ascii=False)}\n\n".encode())
            self.wfile.flush()

        base = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": srv.model_name}
        with srv.model_lock:
            for i, ev in enumerate(srv.backend.stream(gen, params)):
                if truncate and i >= 2:
                    self.wfile.write(b"data: {\"id\": \"")
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if ev.delta:
                    event(base | {"choices": [{"index": 0, "delta": {"content": ev.delta}, "finish_reason": None}]})
                if ev.completion is not None:
                    c = ev.completion
                    event(base | {"choices": [{"index": 0, "delta": {}, "finish_reason": c.finish_reason}]})
                    event(base | {"choices": [], "usage": {"prompt_tokens": c.prompt_tokens,
                                  "completion_tokens": c.completion_tokens,
                                  "total_tokens": c.prompt_tokens + c.completion_tokens}})  # fmt: skip
        srv.count_success()
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, backend: Backend, model_name: str, faults: FaultPlan, api_key: str | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.backend, self.model_name, self.faults, self.api_key = backend, model_name, faults, api_key
        self.model_lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.successes = 0
        self._count_lock = threading.Lock()

    def count_call(self, path: str) -> int:
        with self._count_lock:
            self.calls[path] += 1
            return sum(self.calls.values())

    def count_success(self) -> None:
        with self._count_lock:
            self.successes += 1


@dataclass
class RunningServer:
    """Handle to a started server: its base URL and call counters."""

    server: _Server

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def calls(self) -> int:
        return sum(self.server.calls.values())

    @property
    def successes(self) -> int:
        return self.server.successes


@contextmanager
def serve_backend(
    backend: Backend, *, model_name: str = "tiny", faults: FaultPlan | None = None, api_key: str | None = None
) -> Iterator[RunningServer]:
    """Run an OpenAI-compatible server for ``backend`` on a free loopback port, then stop it."""
    srv = _Server(backend, model_name, faults or FaultPlan(), api_key)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield RunningServer(srv)
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)

"""The OpenAI-compatible HTTP API and the web page, as one FastAPI app.

Routes: ``GET /v1/models``, ``GET /v1/models/{id}``, ``POST /v1/chat/completions`` (SSE streaming, ``n``, ``stop``,
``max_tokens``, ``temperature``, ``top_p``, ``seed``, ``usage``), ``POST /v1/completions``,
``POST /v1/embeddings``, ``POST /v1/rag/search``, ``GET /health`` and the chat page at ``/``.
Clients that speak the OpenAI API (the ``openai`` package, LangChain, …) work unchanged.

Retrieval is an extension field: ``"rag": true`` (or ``{"k": 3}``) in a chat request retrieves
passages for the last user message, asks in the VBD prompt format, and adds
``"vinaforge": {"passages": [...], "citations": {...}}`` to the response (to the last chunk of
a stream); the ``openai`` client passes it with ``extra_body={"rag": True}``.

Production behaviour: every error is OpenAI's JSON shape (``{"error": {"message", "type",
"param", "code"}}``) with a 4xx status for bad input; a bearer API key when one is configured
(compared in constant time); limits on body size, prompt tokens, ``max_tokens`` and ``n``; a
request timeout; a concurrency limit that answers 429; CORS only for the configured origins;
a Content-Security-Policy on every response. A client that disconnects mid-stream cancels its
generation (its batch row is dropped at the next decoding step) and frees its slot.

Hand-written glue over FastAPI and sse-starlette; the generation is :mod:`vinaforge.generate`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from vinaforge.generate.base import Completion, GenRequest, SamplingParams
from vinaforge.generate.batching import Ticket, TicketEvent
from vinaforge.generate.local import GenerationError
from vinaforge.generate.logprobs import MAX_TOP_LOGPROBS, ScoringUnavailable, TokenLogprobs
from vinaforge.serve.config import ServeConfig
from vinaforge.serve.engines import Engine

log = logging.getLogger(__name__)

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")  # fmt: skip
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
ROLES = {"system", "user", "assistant"}


class APIError(Exception):
    """An error the client caused (or a limit it hit), answered in OpenAI's shape."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code

    def response(self) -> JSONResponse:
        return error_response(self.status, self.message, self.type, self.param, self.code)


def error_response(status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
                   code: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:  # fmt: skip
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})


# ---------------------------------------------------------------------- ASGI middleware


class BodyLimit:
    """Reject bodies over ``limit`` bytes (413) before any JSON parsing, chunked or not."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        too_big = error_response(413, f"request body over {self.limit} bytes", code="request_too_large")
        length = dict(scope["headers"]).get(b"content-length")
        if length and length.isdigit() and int(length) > self.limit:
            await too_big(scope, receive, send)
            return
        body, more = b"", True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
            if len(body) > self.limit:
                await too_big(scope, receive, send)
                return
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later calls: the client's disconnect

        await self.app(scope, replay, send)


class SecurityHeaders:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                for k, v in SECURITY_HEADERS.items():
                    if k.encode() not in present:
                        headers.append((k.encode(), v.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


# ---------------------------------------------------------------------- request parsing


def _content_text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts: only text is supported
        parts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise APIError(400, f"{where}.content[{i}]: only text parts are supported", param=f"{where}.content")
            parts.append(part["text"])
        return "".join(parts)
    raise APIError(400, f"{where}.content must be a string or a list of text parts", param=f"{where}.content")


def parse_messages(raw: Any) -> list[dict[str, str]]:
    if not isinstance(raw, list) or not raw:
        raise APIError(400, "messages must be a non-empty list", param="messages")
    out = []
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise APIError(400, f"{where} must be an object", param=where)
        role = m.get("role")
        if role == "developer":
            role = "system"
        if role not in ROLES:
            raise APIError(400, f"{where}.role must be one of system, user, assistant (got {role!r})",
                           param=f"{where}.role")  # fmt: skip
        out.append({"role": role, "content": _content_text(m.get("content"), where)})
    if out[-1]["role"] == "assistant":
        raise APIError(400, "the last message must be from the user (or system)", param="messages")
    return out


def _number(body: dict, key: str, kind: type, default: Any, lo: float | None = None, hi: float | None = None) -> Any:
    value = body.get(key, default)
    if value is None:
        return default
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise APIError(400, f"{key} must be an integer", param=key)
    if kind is float and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise APIError(400, f"{key} must be a number", param=key)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise APIError(400, f"{key} must be between {lo} and {hi}, got {value}", param=key)
    return kind(value)


#: OpenAI request fields this server does not implement, with the values that mean "off". A request
#: that sets one to anything else gets 400 naming the field: ignoring it silently would hand the
#: client a reply it did not ask for (no tool call, no JSON mode, no penalty).
UNSUPPORTED_UNLESS_OFF: dict[str, tuple[Any, ...]] = {
    "tools": (None, []),
    "functions": (None, []),
    "tool_choice": (None, "none"),
    "function_call": (None, "none"),
    "response_format": (None, {"type": "text"}),
    "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0),
    "logit_bias": (None, {}),
    "repeat_penalty": (None, 1, 1.0),
    "repetition_penalty": (None, 1, 1.0),
    "suffix": (None, ""),
}


def refuse_unsupported(body: dict) -> None:
    """400 for a field set to a value this server would otherwise ignore (see the table above)."""
    for key, off in UNSUPPORTED_UNLESS_OFF.items():
        if key not in body:
            continue
        value = body[key]
        if any(value == v and type(value) is type(v) or (value is None and v is None) for v in off):
            continue
        raise APIError(400, f"{key} is not supported by this server (got {json.dumps(value)[:80]}); leave it out",
                       param=key, code="unsupported_parameter")  # fmt: skip
    best_of = body.get("best_of")
    if best_of is not None and best_of != body.get("n", 1):
        raise APIError(400, "best_of is not supported by this server (use n)", param="best_of",
                       code="unsupported_parameter")  # fmt: skip


@dataclass
class LogprobsRequest:
    """What a request asks of scoring: ``top`` alternatives per token, and the prompt echoed back."""

    top: int = 0
    echo: bool = False


def parse_completion_logprobs(body: dict) -> LogprobsRequest | None:
    """``/v1/completions``: ``logprobs`` is the number of alternatives (0–20); ``echo`` a boolean."""
    echo = body.get("echo", False)
    if echo is None:
        echo = False
    if not isinstance(echo, bool):
        raise APIError(400, "echo must be true or false", param="echo")
    lp = body.get("logprobs")
    if lp is not None and (isinstance(lp, bool) or not isinstance(lp, int) or not 0 <= lp <= MAX_TOP_LOGPROBS):
        raise APIError(400, f"logprobs must be an integer from 0 to {MAX_TOP_LOGPROBS} on /v1/completions",
                       param="logprobs")  # fmt: skip
    if lp is None and not echo:
        return None
    return LogprobsRequest(top=lp or 0, echo=echo)


def parse_chat_logprobs(body: dict) -> LogprobsRequest | None:
    """``/v1/chat/completions``: ``logprobs`` is a boolean; ``top_logprobs`` (0–20) needs it."""
    lp, top = body.get("logprobs"), body.get("top_logprobs")
    if lp is not None and not isinstance(lp, bool):
        raise APIError(400, "logprobs must be true or false on /v1/chat/completions", param="logprobs")
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= MAX_TOP_LOGPROBS):
        raise APIError(400, f"top_logprobs must be an integer from 0 to {MAX_TOP_LOGPROBS}", param="top_logprobs")
    if top and not lp:
        raise APIError(400, "top_logprobs needs logprobs: true", param="top_logprobs")
    return LogprobsRequest(top=top or 0) if lp else None


def parse_sampling(body: dict, cfg: ServeConfig, allow_zero_tokens: bool = False) -> SamplingParams:
    """Sampling settings; ``max_tokens: 0`` only where it means "score the prompt" (``echo``)."""
    refuse_unsupported(body)
    key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    if allow_zero_tokens and body.get(key) == 0:
        body = {**body, key: 1}  # the caller generates nothing; the rest of the settings are checked
    max_tokens = _number(body, key, int, cfg.default_max_tokens, 1)
    if max_tokens > cfg.max_tokens_limit:
        raise APIError(400, f"{key} is {max_tokens}, over this server's limit of {cfg.max_tokens_limit}", param=key,
                       code="max_tokens_over_limit")  # fmt: skip
    stop = body.get("stop")
    if stop is None:
        stops: list[str] = []
    elif isinstance(stop, str):
        stops = [stop]
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop) and len(stop) <= 4:
        stops = [s for s in stop if s]
    else:
        raise APIError(400, "stop must be a string or a list of at most 4 strings", param="stop")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise APIError(400, "seed must be an integer", param="seed")
    return SamplingParams(
        max_new_tokens=max_tokens,
        temperature=_number(body, "temperature", float, 0.7, 0, 2),
        top_p=_number(body, "top_p", float, 1.0, 1e-6, 1),
        top_k=0,
        seed=seed,
        stop=stops,
        n=_number(body, "n", int, 1, 1, cfg.max_n),
    )


MAX_PROMPTS = 64


def parse_prompts(prompt: Any) -> list[str | list[int]]:
    """``prompt`` as OpenAI takes it: a string, a list of strings, token ids, or lists of token ids."""
    def is_ids(x: Any) -> bool:
        return isinstance(x, list) and bool(x) and all(isinstance(t, int) and not isinstance(t, bool) and t >= 0
                                                      for t in x)  # fmt: skip

    if isinstance(prompt, str):
        prompts: list = [prompt]
    elif is_ids(prompt):
        prompts = [prompt]
    elif isinstance(prompt, list) and prompt and all(isinstance(p, str) or is_ids(p) for p in prompt):
        prompts = list(prompt)
    else:
        raise APIError(400, "prompt must be a non-empty string, a list of strings, a list of token ids or a list "
                            "of lists of token ids", param="prompt")  # fmt: skip
    if any(isinstance(p, str) and not p for p in prompts):
        raise APIError(400, "prompt must not be empty", param="prompt")
    if len(prompts) > MAX_PROMPTS:
        raise APIError(400, f"at most {MAX_PROMPTS} prompts per request, got {len(prompts)}", param="prompt")
    return prompts


# ---------------------------------------------------------------------- the app


class ServerState:
    """Everything the routes share: config, engine, optional RAG index and embedder, counters."""

    def __init__(self, cfg: ServeConfig, engine: Engine, rag=None, embedder=None) -> None:
        self.cfg = cfg
        self.engine = engine
        self.rag = rag
        self.embedder = embedder
        self.api_key = cfg.resolved_api_key()
        self.in_flight = 0
        self.served = 0
        self.cancelled = 0
        self.started = time.time()

    def check_key(self, request: Request) -> None:
        if not self.api_key:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise APIError(401, "missing API key: send 'Authorization: Bearer <key>'", code="invalid_api_key")
        if not hmac.compare_digest(given.strip().encode(), self.api_key.encode()):
            raise APIError(401, "incorrect API key", code="invalid_api_key")

    def check_model(self, name: Any, embedding: bool = False) -> None:
        known = {self.embedding_id} if embedding else {self.cfg.model_id}
        if embedding and self.embedder is None:
            raise APIError(400, "this server has no embedding model (start it with --embedding-model PATH)",
                           param="model", code="no_embedding_model")  # fmt: skip
        if not isinstance(name, str) or name not in known:
            raise APIError(404, f"the model {name!r} does not exist; this server serves {', '.join(sorted(known))}",
                           param="model", code="model_not_found")  # fmt: skip

    @property
    def embedding_id(self) -> str:
        if self.embedder is None:
            return ""
        import os

        return os.path.basename(os.path.normpath(self.embedder.path))

    def acquire(self) -> None:
        if self.in_flight >= self.cfg.max_concurrency:
            raise APIError(429, f"server busy: {self.in_flight} requests in flight (limit {self.cfg.max_concurrency})",
                           type_="rate_limit_error", code="rate_limit_exceeded")  # fmt: skip
        self.in_flight += 1

    def release(self) -> None:
        self.in_flight -= 1


def _static_dir():
    return resources.files("vinaforge.serve") / "static"


def create_app(cfg: ServeConfig, engine: Engine, rag=None, embedder=None) -> FastAPI:
    """The ASGI app; the engine (and index) are built by the caller and closed on shutdown."""
    state = ServerState(cfg, engine, rag, embedder)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await asyncio.to_thread(engine.close)

    app = FastAPI(title="vinaforge", version="1", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.vf = state
    if cfg.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=cfg.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["authorization", "content-type"])  # fmt: skip
    app.add_middleware(BodyLimit, limit=cfg.max_request_bytes)
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(APIError)
    async def _api_error(request: Request, err: APIError):
        return err.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError):
        return error_response(400, "request body is not valid JSON", param=None, code="invalid_json")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code)
        return error_response(err.status_code, str(err.detail), code=code)

    @app.exception_handler(Exception)
    async def _crash(request: Request, err: Exception):
        log.exception("unexpected error on %s", request.url.path)
        return error_response(500, "internal server error", type_="server_error")

    async def json_body(request: Request) -> dict:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise APIError(400, f"request body is not valid JSON: {err}", code="invalid_json") from None
        if not isinstance(body, dict):
            raise APIError(400, "request body must be a JSON object", code="invalid_json")
        return body

    # ------------------------------------------------------------------ plain routes

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(str(_static_dir() / "index.html"), media_type="text/html; charset=utf-8")

    app.mount("/static", StaticFiles(directory=str(_static_dir())), name="static")

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": cfg.model_id, "in_flight": state.in_flight, "queued": engine.queued(),
                "served": state.served, "cancelled": state.cancelled, "rag": state.rag is not None,
                "auth": bool(state.api_key)}  # fmt: skip

    @app.get("/v1/models")
    async def models(request: Request):
        state.check_key(request)
        data = [{"id": cfg.model_id, "object": "model", "created": int(state.started), "owned_by": "vinaforge"}]
        if embedder is not None:
            data.append({"id": state.embedding_id, "object": "model", "created": int(state.started),
                         "owned_by": "vinaforge"})  # fmt: skip
        return {"object": "list", "data": data}

    @app.get("/v1/models/{model_id:path}")
    async def model_card(model_id: str, request: Request):
        state.check_key(request)
        listed = (await models(request))["data"]
        for card in listed:
            if card["id"] == model_id:
                return card
        raise APIError(404, f"the model {model_id!r} does not exist; this server serves "
                            f"{', '.join(c['id'] for c in listed)}", param="model", code="model_not_found")  # fmt: skip

    @app.post("/v1/embeddings")
    async def embeddings(request: Request):
        state.check_key(request)
        body = await json_body(request)
        state.check_model(body.get("model"), embedding=True)
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) for t in inputs):
            raise APIError(400, "input must be a string or a non-empty list of strings", param="input")
        if len(inputs) > 2048:
            raise APIError(400, "at most 2048 inputs per request", param="input")
        vecs = await asyncio.to_thread(embedder.encode, inputs)
        tokens = await asyncio.to_thread(embedder.count_tokens, inputs)
        data = [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vecs)]
        return {"object": "list", "data": data, "model": state.embedding_id,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}  # fmt: skip

    @app.post("/v1/rag/search")
    async def rag_search(request: Request):
        state.check_key(request)
        body = await json_body(request)
        if state.rag is None:
            raise APIError(400, "this server has no RAG index (start it with --rag-index DIR)", code="no_rag_index")
        query = body.get("query")
        if not isinstance(query, str) or not query.strip():
            raise APIError(400, "query must be a non-empty string", param="query")
        k = _number(body, "k", int, cfg.rag_k, 1, 20)
        hits = await asyncio.to_thread(state.rag.search, query, k)
        return {"object": "list", "data": [h.to_dict() for h in hits]}

    # ------------------------------------------------------------------ generation

    def retrieve(body: dict, messages: list[dict[str, str]]) -> tuple[list[dict[str, str]], list[dict] | None]:
        spec = body.get("rag")
        if not spec:
            return messages, None
        if state.rag is None:
            raise APIError(400, "this server has no RAG index (start it with --rag-index DIR)", param="rag",
                           code="no_rag_index")  # fmt: skip
        k = _number(spec, "k", int, cfg.rag_k, 1, 20) if isinstance(spec, dict) else cfg.rag_k
        from vinaforge.rag.prompt import build_prompt

        last = max(i for i, m in enumerate(messages) if m["role"] != "assistant")
        question = messages[last]["content"]
        hits = state.rag.search(question, k)
        passages = [h.to_dict() | {"k": i} for i, h in enumerate(hits)]
        asked = [*messages]
        asked[last] = {"role": messages[last]["role"], "content": build_prompt(question, [h.passage.text for h in hits])}
        return asked, passages

    def check_prompt(req: GenRequest, params: SamplingParams) -> int:
        n = engine.count_prompt(req)
        if n is None:
            return 0
        limit = cfg.max_prompt_tokens
        if limit and n > limit:
            raise APIError(400, f"prompt is {n} tokens, over this server's limit of {limit}", param="messages",
                           code="context_length_exceeded")  # fmt: skip
        ctx = engine.context_length
        if ctx and n + params.max_new_tokens > ctx:
            raise APIError(400, f"this model's context is {ctx} tokens; the prompt has {n} and max_tokens asks "
                                f"for {params.max_new_tokens}", param="messages", code="context_length_exceeded")  # fmt: skip
        return n

    async def start(req: GenRequest, params: SamplingParams) -> tuple[Ticket, asyncio.Queue]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[TicketEvent] = asyncio.Queue()

        def sink(ev: TicketEvent) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, ev)
            except RuntimeError:  # the loop is gone (server stopped): nobody is listening
                pass

        try:  # tokenising the prompt happens here: off the event loop
            return await asyncio.to_thread(engine.submit, req, params, sink), queue
        except GenerationError as err:
            raise APIError(400, str(err), code="invalid_request") from None

    async def admit(req: GenRequest, params: SamplingParams) -> tuple[Ticket, asyncio.Queue]:
        """Take a concurrency slot (429 when full) and start the request; the slot is freed if it cannot start."""
        state.acquire()
        try:
            return await start(req, params)
        except BaseException:
            state.release()
            raise

    async def next_event(queue: asyncio.Queue, deadline: float) -> TicketEvent:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        return await asyncio.wait_for(queue.get(), remaining)

    async def collect(ticket: Ticket, queue: asyncio.Queue, n: int) -> list[Completion]:
        deadline = time.monotonic() + cfg.request_timeout
        done: dict[int, Completion] = {}
        try:
            while len(done) < n:
                ev = await next_event(queue, deadline)
                if ev.completion is not None:
                    done[ev.index] = ev.completion
        except TimeoutError:
            ticket.cancel()
            raise APIError(504, f"generation took longer than {cfg.request_timeout:g} s", type_="timeout_error",
                           code="timeout") from None  # fmt: skip
        except asyncio.CancelledError:
            ticket.cancel()  # the client went away
            state.cancelled += 1
            raise
        return [done[i] for i in range(n)]

    def usage_of(completions: list[Completion], prompt_tokens: int) -> dict[str, int]:
        out = sum(c.completion_tokens for c in completions)
        prompt = prompt_tokens or max((c.prompt_tokens for c in completions), default=0)
        return {"prompt_tokens": prompt, "completion_tokens": out, "total_tokens": prompt + out}

    def failed(completions: list[Completion]) -> None:
        bad = [c for c in completions if c.finish_reason == "error"]
        if bad:
            raise APIError(502 if cfg.backend == "openai" else 500, f"generation failed: {bad[0].error}",
                           type_="server_error", code="generation_failed")  # fmt: skip

    def rag_extra(passages: list[dict] | None, texts: list[str]) -> dict:
        if passages is None:
            return {}
        from vinaforge.rag.prompt import check_citations

        return {"vinaforge": {"passages": passages,
                              "citations": [check_citations(t, len(passages)).to_dict() for t in texts]}}  # fmt: skip

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        state.check_key(request)
        body = await json_body(request)
        state.check_model(body.get("model"))
        messages = parse_messages(body.get("messages"))
        params = parse_sampling(body, cfg)
        lpreq = parse_chat_logprobs(body)
        stream = bool(body.get("stream"))
        if stream and lpreq is not None:
            raise APIError(400, "logprobs are not supported with stream", param="stream")
        messages, passages = await asyncio.to_thread(retrieve, body, messages)
        req = GenRequest(messages=messages)
        prompt_tokens = await asyncio.to_thread(check_prompt, req, params)
        ticket, queue = await admit(req, params)
        rid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if stream:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return sse(chat_stream(ticket, queue, params, rid, created, prompt_tokens, include_usage, passages))
        try:
            comps = await collect(ticket, queue, params.n)
        finally:
            state.release()
        failed(comps)
        state.served += 1
        choices = [{"index": i, "message": {"role": "assistant", "content": c.text or ""}, "logprobs": None,
                    "finish_reason": _finish(c)} for i, c in enumerate(comps)]  # fmt: skip
        if lpreq is not None:
            try:
                prompt_text = await asyncio.to_thread(engine.prompt_text, req)
            except ScoringUnavailable as err:
                raise APIError(400, str(err), param="logprobs", code="unsupported_parameter") from None
            for choice, c in zip(choices, comps, strict=True):
                scored = await asyncio.to_thread(score_reply, prompt_text, c.text or "", lpreq, False)
                choice["logprobs"] = scored.chat_shape()
        return {"id": rid, "object": "chat.completion", "created": created, "model": cfg.model_id,
                "choices": choices, "usage": usage_of(comps, prompt_tokens),
                **rag_extra(passages, [c.text or "" for c in comps])}  # fmt: skip

    async def chat_stream(ticket: Ticket, queue: asyncio.Queue, params: SamplingParams, rid: str, created: int,
                          prompt_tokens: int, include_usage: bool, passages: list[dict] | None):  # fmt: skip
        def chunk(choices: list[dict], **extra: Any) -> str:
            return json.dumps({"id": rid, "object": "chat.completion.chunk", "created": created,
                               "model": cfg.model_id, "choices": choices, **extra}, ensure_ascii=False)  # fmt: skip

        deadline = time.monotonic() + cfg.request_timeout
        done: dict[int, Completion] = {}
        texts: dict[int, str] = {i: "" for i in range(params.n)}
        finished = False
        try:
            first = [{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                     for i in range(params.n)]  # fmt: skip
            yield chunk(first)
            while len(done) < params.n:
                try:
                    ev = await next_event(queue, deadline)
                except TimeoutError:
                    ticket.cancel()
                    yield json.dumps({"error": {"message": f"generation took longer than {cfg.request_timeout:g} s",
                                                "type": "timeout_error", "param": None, "code": "timeout"}})  # fmt: skip
                    finished = True
                    return
                if ev.delta:
                    texts[ev.index] += ev.delta
                    yield chunk([{"index": ev.index, "delta": {"content": ev.delta}, "finish_reason": None}])
                if ev.completion is not None:
                    done[ev.index] = ev.completion
                    if ev.completion.finish_reason == "error":
                        yield json.dumps({"error": {"message": f"generation failed: {ev.completion.error}",
                                                    "type": "server_error", "param": None, "code": "generation_failed"}})  # fmt: skip
                        finished = True
                        return
                    extra = rag_extra(passages, [texts[ev.index]]) if len(done) == params.n else {}
                    yield chunk([{"index": ev.index, "delta": {}, "finish_reason": _finish(ev.completion)}], **extra)
            if include_usage:
                yield chunk([], usage=usage_of(list(done.values()), prompt_tokens))
            yield "[DONE]"
            finished = True
            state.served += 1
        finally:
            if not finished:
                ticket.cancel()  # client disconnected (or the server is stopping): free the batch row
                state.cancelled += 1
            state.release()

    def score_reply(prompt: str | list[int], reply: str, lpreq: LogprobsRequest, raw: bool) -> TokenLogprobs:
        """Token logprobs of ``reply`` after ``prompt``, and of the prompt too when echoing.

        ``raw``: a /v1/completions prompt, tokenised with the tokenizer's usual specials (BOS) as
        generation tokenises it; a chat prompt is the rendered template, which has its BOS.
        """
        try:
            head = None  # the prompt's tokens without specials, when already known
            if isinstance(prompt, str):
                prompt_ids, prompt_text = engine.tokenize(prompt, raw), prompt
                head = None if raw else prompt_ids
            else:
                prompt_ids, prompt_text = list(prompt), engine.detokenize(prompt)
            scored = engine.score([prompt_ids + reply_ids(prompt_text, reply, head)], lpreq.top)[0]
        except ScoringUnavailable as err:
            raise APIError(400, str(err), param="logprobs", code="unsupported_parameter") from None
        except IndexError:
            raise APIError(400, "a prompt token id is outside the model's vocabulary", param="prompt") from None
        except (GenerationError, ValueError) as err:
            raise APIError(400, str(err), param="prompt", code="context_length_exceeded") from None
        return scored if lpreq.echo else scored.tail(len(prompt_ids))

    def reply_ids(prompt_text: str, reply: str, head: list[int] | None = None) -> list[int]:
        """``reply``'s tokens as they follow ``prompt_text`` (so " và" keeps its space)."""
        if not reply:
            return []
        head = engine.tokenize(prompt_text) if head is None else head
        full = engine.tokenize(prompt_text + reply)
        if full[: len(head)] == head and len(full) > len(head):
            return full[len(head) :]
        return engine.tokenize(reply)

    @app.post("/v1/completions")
    async def completions(request: Request):
        state.check_key(request)
        body = await json_body(request)
        state.check_model(body.get("model"))
        prompts = parse_prompts(body.get("prompt"))
        lpreq = parse_completion_logprobs(body)
        echoing = lpreq is not None and lpreq.echo
        key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
        score_only = echoing and body.get(key) == 0  # OpenAI's legacy way to score a text
        params = parse_sampling(body, cfg, allow_zero_tokens=echoing)
        if body.get("stream"):
            if lpreq is not None:
                raise APIError(400, "logprobs and echo are not supported with stream", param="stream")
            if len(prompts) != 1 or not isinstance(prompts[0], str):
                raise APIError(400, "a streamed completion takes one string prompt", param="prompt")
        rid, created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        choices, comps_all, prompt_total = [], [], 0
        for p_index, prompt in enumerate(prompts):
            text = prompt if isinstance(prompt, str) else await asyncio.to_thread(token_prompt_text, prompt)
            req = GenRequest(prompt=text)
            prompt_tokens = len(prompt) if isinstance(prompt, list) else await asyncio.to_thread(check_prompt, req, params)
            if isinstance(prompt, list):
                check_token_prompt(prompt, params, score_only)
            if score_only:
                comps = [Completion("", "length", prompt_tokens, 0, sample_index=j) for j in range(params.n)]
            else:
                ticket, queue = await admit(req, params)
                if body.get("stream"):
                    return sse(completion_stream(ticket, queue, params, rid, created))
                try:
                    comps = await collect(ticket, queue, params.n)
                finally:
                    state.release()
                failed(comps)
            prompt_total += prompt_tokens
            comps_all.extend(comps)
            for j, c in enumerate(comps):
                choice = {"index": p_index * params.n + j, "text": c.text or "", "logprobs": None,
                          "finish_reason": _finish(c)}  # fmt: skip
                if lpreq is not None:
                    scored = await asyncio.to_thread(score_reply, prompt, c.text or "", lpreq, True)
                    choice["logprobs"] = scored.completion_shape(0 if echoing else len(text))
                    if echoing:
                        choice["text"] = text + (c.text or "")
                choices.append(choice)
        state.served += 1
        out = sum(c.completion_tokens for c in comps_all)
        return {"id": rid, "object": "text_completion", "created": created, "model": cfg.model_id, "choices": choices,
                "usage": {"prompt_tokens": prompt_total, "completion_tokens": out, "total_tokens": prompt_total + out}}  # fmt: skip

    def token_prompt_text(ids: list[int]) -> str:
        try:
            return engine.detokenize(ids)
        except ScoringUnavailable as err:
            raise APIError(400, f"{err}: send the prompt as text", param="prompt") from None
        except (IndexError, ValueError, TypeError, OverflowError):
            raise APIError(400, "a prompt token id is outside the model's vocabulary", param="prompt") from None

    def check_token_prompt(ids: list[int], params: SamplingParams, score_only: bool) -> None:
        ctx = engine.context_length
        need = len(ids) + (0 if score_only else params.max_new_tokens)
        if ctx and need > ctx:
            raise APIError(400, f"this model's context is {ctx} tokens; the prompt has {len(ids)} and max_tokens asks "
                                f"for {0 if score_only else params.max_new_tokens}", param="prompt",
                           code="context_length_exceeded")  # fmt: skip

    async def completion_stream(ticket: Ticket, queue: asyncio.Queue, params: SamplingParams, rid: str, created: int):
        deadline = time.monotonic() + cfg.request_timeout
        left, finished = params.n, False
        try:
            while left:
                ev = await next_event(queue, deadline)
                finish = _finish(ev.completion) if ev.completion is not None else None
                left -= ev.completion is not None
                if ev.delta or finish:
                    yield json.dumps({"id": rid, "object": "text_completion", "created": created, "model": cfg.model_id,
                                      "choices": [{"index": ev.index, "text": ev.delta, "logprobs": None,
                                                   "finish_reason": finish}]}, ensure_ascii=False)  # fmt: skip
            yield "[DONE]"
            finished = True
            state.served += 1
        except TimeoutError:
            ticket.cancel()
            yield json.dumps({"error": {"message": "timeout", "type": "timeout_error", "param": None, "code": "timeout"}})
            finished = True
        finally:
            if not finished:
                ticket.cancel()
                state.cancelled += 1
            state.release()

    def sse(gen):
        from sse_starlette.sse import EventSourceResponse

        return EventSourceResponse(gen, sep="\n", ping=15, shutdown_grace_period=cfg.shutdown_grace,
                                   headers={"x-accel-buffering": "no"})  # fmt: skip

    return app


def _finish(c: Completion | None) -> str | None:
    if c is None:
        return None
    return {"cancelled": "stop", "error": "stop"}.get(c.finish_reason or "stop", c.finish_reason or "stop")

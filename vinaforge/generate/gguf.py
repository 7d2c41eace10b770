"""GGUF backend: a llama.cpp model in this process through llama-cpp-python (when installed).

What ``vinaforge export`` writes as GGUF runs here with the chat template stored in the file
(llama-cpp-python reads ``tokenizer.chat_template`` from the GGUF metadata). llama.cpp's context
is not thread-safe, so calls are serialised with a lock; the server runs them in worker threads.

Hand-written glue over ``llama_cpp.Llama``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from vinaforge.generate.base import (
    Backend,
    Completion,
    GenRequest,
    RequestLike,
    SamplingParams,
    StreamEvent,
    as_request,
)
from vinaforge.generate.logprobs import ScoringUnavailable


class GGUFUnavailable(ImportError):
    """llama-cpp-python is not installed (``pip install llama-cpp-python``)."""


class GGUFBackend(Backend):
    name = "gguf"

    def __init__(self, path: str | Path, n_ctx: int = 2048, n_threads: int | None = None) -> None:
        super().__init__()
        try:
            import llama_cpp
        except ImportError as err:
            raise GGUFUnavailable("the gguf backend needs llama-cpp-python: pip install llama-cpp-python") from err
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such GGUF file")
        self.path = str(p)
        self.n_threads = n_threads
        self.llm = llama_cpp.Llama(model_path=self.path, n_ctx=n_ctx, n_threads=n_threads, verbose=False)
        self.context_length = int(self.llm.n_ctx())
        self._lock = threading.Lock()

    def count_tokens(self, request: RequestLike) -> int:
        """Prompt tokens as llama.cpp will see them: chat messages rendered with the GGUF's template.

        Counting the bare message texts undercounted (10 instead of 24 tokens for one short turn),
        so a prompt over the context got past the server's check and failed inside llama.cpp.
        """
        req = as_request(request)
        if req.prompt is not None:
            return len(self.llm.tokenize(req.prompt.encode("utf-8"), add_bos=True))
        formatter = self._formatter()
        if formatter is None:  # no template in the file: llama.cpp's guessed format; an estimate
            text = "\n".join(m["content"] for m in req.messages or [])
            return len(self.llm.tokenize(text.encode("utf-8"), add_bos=True))
        rendered = formatter(messages=req.messages)
        return len(self.llm.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special,
                                     special=True))  # fmt: skip

    def _formatter(self):
        """llama-cpp-python's own Jinja formatter of ``tokenizer.chat_template`` (what it generates with)."""
        if not hasattr(self, "_chat_formatter"):
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            template = self.llm.metadata.get("tokenizer.chat_template")
            self._chat_formatter = None
            if template:
                eos, bos = self.llm.token_eos(), self.llm.token_bos()
                text = self.llm._model.token_get_text
                self._chat_formatter = Jinja2ChatFormatter(template=template, eos_token=text(eos) if eos != -1 else "",
                                                           bos_token=text(bos) if bos != -1 else "")  # fmt: skip
        return self._chat_formatter

    def _kwargs(self, params: SamplingParams, seed_offset: int = 0) -> dict[str, Any]:
        kw: dict[str, Any] = {"max_tokens": params.max_new_tokens, "temperature": params.temperature,
                              "top_p": params.top_p, "top_k": params.top_k or 0, "stop": params.stop or None}  # fmt: skip
        if params.seed is not None:
            kw["seed"] = params.seed + seed_offset
        return kw

    def _call(self, req: GenRequest, params: SamplingParams, stream: bool, seed_offset: int = 0):
        kw = self._kwargs(params, seed_offset) | {"stream": stream}
        if req.messages is not None:
            return self.llm.create_chat_completion(messages=req.messages, **kw)
        return self.llm.create_completion(prompt=req.prompt, **kw)

    def generate(self, requests: Sequence[RequestLike], params: SamplingParams | None = None) -> list[Completion]:
        params = params or SamplingParams()
        out = []
        for i, item in enumerate(requests):
            req = as_request(item)
            for s in range(params.n):
                t0 = time.perf_counter()
                try:
                    with self._lock:
                        resp = self._call(req, params, False, s)
                    ch = resp["choices"][0]
                    text = ch["message"]["content"] if req.messages is not None else ch["text"]
                    usage = resp.get("usage") or {}
                    c = Completion(text or "", ch.get("finish_reason") or "stop", usage.get("prompt_tokens", 0),
                                   usage.get("completion_tokens", 0), None, 1, time.perf_counter() - t0, i, s)  # fmt: skip
                except Exception as err:  # recorded per item, like every backend
                    c = Completion(None, "error", 0, 0, f"{type(err).__name__}: {err}", 1, time.perf_counter() - t0, i, s)
                self.usage.add(c)
                out.append(c)
        return out

    def stream(self, request: RequestLike, params: SamplingParams | None = None) -> Iterator[StreamEvent]:
        params = params or SamplingParams()
        req = as_request(request)
        t0, text, finish, n = time.perf_counter(), "", "stop", 0
        with self._lock:
            chunks = self._call(req, params, True)
            try:
                for chunk in chunks:
                    ch = chunk["choices"][0]
                    delta = (ch.get("delta") or {}).get("content") if req.messages is not None else ch.get("text")
                    if delta:
                        n += 1
                        text += delta
                        yield StreamEvent(delta)
                    finish = ch.get("finish_reason") or finish
            finally:
                close = getattr(chunks, "close", None)
                if close:
                    close()
        c = Completion(text, finish, self.count_tokens(req), n, None, 1, time.perf_counter() - t0)
        self.usage.add(c)
        yield StreamEvent("", c)

    # ------------------------------------------------------------------ scoring (logprobs, echo)

    def token_ids(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=add_special_tokens, special=True))

    def detokenize(self, ids: Sequence[int]) -> str:
        specials = {self.llm.token_bos(), self.llm.token_eos()}
        return self.llm.detokenize([i for i in ids if i not in specials]).decode("utf-8", errors="replace")

    def piece(self, token_id: int) -> str:
        return self.llm.detokenize([token_id]).decode("utf-8", errors="replace")

    def prompt_text(self, request: RequestLike) -> str:
        """The text llama.cpp continues: a raw prompt, or the messages in the GGUF's chat template."""
        req = as_request(request)
        if req.prompt is not None:
            return req.prompt
        formatter = self._formatter()
        if formatter is None:
            raise ScoringUnavailable(f"{self.path} has no chat template: chat logprobs need one")
        return formatter(messages=req.messages).prompt

    def score(self, sequences: Sequence[Sequence[int]], top: int = 0) -> list[Any]:
        """Teacher-forced token log-probabilities, from a second llama.cpp context that keeps the
        logits of every position (``logits_all``: the generating one keeps only the last)."""
        import llama_cpp
        import numpy as np

        from vinaforge.generate.logprobs import from_log_softmax

        out = []
        with self._lock:
            if getattr(self, "_scorer", None) is None:
                self._scorer = llama_cpp.Llama(model_path=self.path, n_ctx=self.context_length, logits_all=True,
                                               n_threads=self.n_threads, verbose=False)  # fmt: skip
            for ids in sequences:
                ids = list(ids)
                if not ids or len(ids) > self.context_length:
                    raise ValueError(f"{len(ids)} tokens to score; this model takes 1 to {self.context_length}")
                self._scorer.reset()
                self._scorer.eval(ids)
                logits = np.asarray(self._scorer.scores[: len(ids)], dtype=np.float32)
                shifted = logits - logits.max(axis=-1, keepdims=True)
                logprobs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
                out.append(from_log_softmax(ids, logprobs, top, self.piece))
        return out

    def describe(self) -> dict[str, Any]:
        return {"kind": "gguf", "model": self.path, "context": self.context_length}

    def close(self) -> None:
        self.llm = None
        self._scorer = None

"""Model calls of the factory: :mod:`vinaforge.generate` behind the call cache, with accounting.

Identical prompts in a batch are sent once; prompts already answered (same model, sampling,
template and text) come from the cache; the rest go to the backend in one ``generate`` call,
which the backend spreads over its concurrency limit and rate limit. A failed call comes back as
an error string for that item, never as an exception. Hand-written glue.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vinaforge.factory.cache import CallCache
from vinaforge.generate import BackendConfig, SamplingConfig


class Caller:
    """One backend, one cache, running token/call counts (``usage``)."""

    def __init__(
        self, backend: BackendConfig, sampling: SamplingConfig, cache_path: str | Path, stream: bool = False
    ) -> None:
        self.backend_cfg, self.sampling = backend, sampling
        self.model_id = json.dumps({"kind": backend.kind, "model": backend.model, "base_url": backend.base_url,
                                    "sampling": sampling.model_dump()}, sort_keys=True)  # fmt: skip
        self.cache = CallCache(cache_path)
        self.usage: Counter = Counter()
        self._backend = None
        self._lock = threading.Lock()
        self.stream = stream and backend.kind == "openai"

    @property
    def backend(self):
        if self._backend is None:
            self._backend = self.backend_cfg.build()
        return self._backend

    def complete(
        self, template: str, prompts: list[str], salts: list[str] | None = None
    ) -> list[tuple[str | None, str | None]]:
        """``(text, None)`` or ``(None, error)`` per prompt; ``template`` is part of the cache key.

        ``salts`` tell apart samples of one prompt (synthesis at temperature > 0): each salt is
        its own cache entry and its own call.
        """
        salts = salts or [""] * len(prompts)
        keys = [
            CallCache.key(self.model_id, template, p + "\x00" + s)
            for p, s in zip(prompts, salts, strict=True)
        ]
        answers: dict[str, tuple[str | None, str | None]] = {}
        todo: dict[str, str] = {}
        for k, p in zip(keys, prompts, strict=True):
            if k in answers or k in todo:
                continue
            hit = self.cache.get(k)
            if hit is not None:
                answers[k] = (hit["text"], None)
                self.usage["cache_hits"] += 1
            else:
                todo[k] = p
        items = list(todo.items())
        if self.backend_cfg.kind == "openai":
            # one request per thread, stored the moment it is answered: a kill loses only calls in flight
            with ThreadPoolExecutor(max_workers=self.backend_cfg.concurrency) as pool:
                for (k, _), c in zip(items, pool.map(self._one, [p for _, p in items]), strict=True):
                    answers[k] = self._record(k, c)
        else:  # a local model: one batch at a time
            step = self.backend_cfg.batch_size
            for start in range(0, len(items), step):
                wave = items[start : start + step]
                results = self.backend.generate(
                    [[{"role": "user", "content": p}] for _, p in wave], self.sampling.params()
                )
                for (k, _), c in zip(wave, results, strict=True):
                    answers[k] = self._record(k, c)
        return [answers[k] for k in keys]

    def _one(self, prompt: str):
        msgs = [{"role": "user", "content": prompt}]
        if self.stream:  # a stream cut short comes back as an error completion, recorded like any failure
            return list(self.backend.stream(msgs, self.sampling.params()))[-1].completion
        return self.backend.generate([msgs], self.sampling.params())[0]

    def _record(self, key: str, c) -> tuple[str | None, str | None]:
        with self._lock:
            self.usage["calls"] += 1
            self.usage["attempts"] += c.attempts
            self.usage["prompt_tokens"] += c.prompt_tokens
            self.usage["completion_tokens"] += c.completion_tokens
            if not c.ok:
                self.usage["failed_calls"] += 1
        if c.ok:
            self.cache.put(key, c.text, c.prompt_tokens, c.completion_tokens)
            return c.text, None
        return None, c.error or "no text"

    def take_usage(self) -> dict[str, int]:
        out, self.usage = dict(self.usage), Counter()
        return out

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
        self.cache.close()


def cost(usage: dict[str, int], price_prompt: float, price_completion: float) -> float:
    """Cost in the price unit (per 1,000 tokens) of what was actually called (cache hits are free)."""
    return (
        usage.get("prompt_tokens", 0) / 1000 * price_prompt
        + usage.get("completion_tokens", 0) / 1000 * price_completion
    )


def tiny_model_note(backend: BackendConfig) -> str:
    """A report-card warning when texts come from a tiny demo model (hidden size <= 256)."""
    cfg_file = Path(backend.model) / "config.json"
    if backend.kind != "local" or not cfg_file.is_file():
        return ""
    hidden = json.loads(cfg_file.read_text(encoding="utf-8")).get("hidden_size", 4096)
    if hidden > 256:
        return ""
    return (
        f"\n\n*The model is a tiny demo model (hidden size {hidden}): its output is gibberish at this scale, "
        "so the checks reject nearly everything. This run shows the machinery, not data quality.*"
    )

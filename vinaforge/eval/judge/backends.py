"""Chat-completion backends: a local Hugging Face model, or any OpenAI-compatible endpoint.

Both the models under test and the judge are called through these. The local backend is
``transformers`` generation (chat template when the tokenizer has one, else a plain Vietnamese
prompt format), batched with left padding. The endpoint backend posts to
``{base_url}/chat/completions`` with ``httpx`` (timeouts, retries with exponential backoff on
timeouts, connection errors, 429 and 5xx, honouring ``Retry-After``). A call that still fails
returns a :class:`Completion` carrying the error instead of raising, so one bad item is recorded
and the evaluation goes on. Hand-written glue: there is no library for "the same request to a
local model or an endpoint" that also records failures per item; the ``openai`` client is not a
dependency, and its retry policy is not ours to tune per run.
"""

from __future__ import annotations

import copy
import logging
import os
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

from vinaforge.eval.judge.prompts import Prompt

log = logging.getLogger(__name__)

ENDPOINT_PREFIX = "openai:"
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
"""HTTP statuses worth retrying: overload, rate limit, transient server errors."""

Role = Literal["judge", "answer"]


class BackendConfigError(ValueError):
    """A backend that cannot be set up (missing base URL, bad model spec)."""


@dataclass
class GenerationSettings:
    """Decoding settings shared by both backends (greedy when ``temperature`` is 0)."""

    max_new_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0


@dataclass
class Completion:
    """One model call's outcome: ``text`` on success, else ``error`` (never both missing)."""

    text: str | None
    error: str | None = None
    attempts: int = 1
    finish_reason: str | None = None
    new_tokens: int | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and self.text is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ChatBackend(Protocol):
    """What answer generation and judging need from a model."""

    batch_size: int

    def describe(self) -> dict[str, Any]: ...

    def complete(self, prompts: list[Prompt]) -> list[Completion]: ...

    def close(self) -> None: ...


# ----------------------------------------------------------------------------- local HF model


class HFChatBackend:
    """A local (or hub) causal LM driven by ``transformers`` ``generate``."""

    def __init__(
        self,
        model: str,
        settings: GenerationSettings | None = None,
        device: str | None = None,
        dtype: str = "auto",
        batch_size: int = 4,
    ) -> None:
        import torch

        from vinaforge.model.load import load_causal_lm, load_tokenizer
        from vinaforge.model.tiny import is_random_init

        self.source = str(model)
        self.settings = settings or GenerationSettings()
        self.batch_size = max(1, int(batch_size))
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype == "auto" and self.device == "cpu":
            dtype = "float32"  # bf16 matmuls are slow on most CPUs
        self.model = load_causal_lm(self.source, dtype=dtype, device=self.device)
        self.tokenizer = load_tokenizer(self.source)
        self.model.eval()
        self.random_init = is_random_init(self.model)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            fallback = self.tokenizer.eos_token or self.tokenizer.unk_token
            if fallback is None:
                raise BackendConfigError(
                    f"{self.source}: tokenizer has no pad, eos or unk token to pad batches"
                )
            self.tokenizer.pad_token = fallback
        self.uses_chat_template = bool(getattr(self.tokenizer, "chat_template", None))
        self.context = getattr(self.model.config, "max_position_embeddings", None)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "hf",
            "model": self.source,
            "prompt_format": "chat_template" if self.uses_chat_template else "plain",
            "random_init": self.random_init,
            **asdict(self.settings),
        }

    def render(self, prompt: Prompt) -> tuple[str, bool]:
        """The prompt text, and whether it already holds the special tokens (chat template)."""
        if not self.uses_chat_template:
            return prompt.plain, False
        try:
            text = self.tokenizer.apply_chat_template(
                prompt.messages, tokenize=False, add_generation_prompt=True
            )
        except Exception as err:  # jinja raises for templates without a system role
            if prompt.messages and prompt.messages[0]["role"] == "system":
                log.debug("chat template refused a system message (%s); merging it into the user turn", err)
                text = self.tokenizer.apply_chat_template(
                    merge_system(prompt.messages), tokenize=False, add_generation_prompt=True
                )
            else:
                raise
        return text, True

    def encode(self, prompt: Prompt) -> list[int]:
        text, templated = self.render(prompt)
        return self.tokenizer(text, add_special_tokens=not templated)["input_ids"]

    def _generation_config(self):
        s = self.settings
        gc = copy.deepcopy(self.model.generation_config)
        sample = s.temperature > 0
        gc.update(
            max_new_tokens=s.max_new_tokens,
            do_sample=sample,
            pad_token_id=self.tokenizer.pad_token_id,
            temperature=s.temperature if sample else None,
            top_p=s.top_p if sample else None,
            top_k=None,
        )
        if gc.eos_token_id is None:
            gc.eos_token_id = self.tokenizer.eos_token_id
        return gc

    def complete(self, prompts: list[Prompt]) -> list[Completion]:
        import torch

        results: list[Completion | None] = [None] * len(prompts)
        encoded: dict[int, list[int]] = {}
        for i, prompt in enumerate(prompts):
            ids = self.encode(prompt)
            need = len(ids) + self.settings.max_new_tokens
            if self.context is not None and need > self.context:
                results[i] = Completion(
                    text=None,
                    error=(
                        f"prompt has {len(ids)} tokens; with max_new_tokens={self.settings.max_new_tokens} "
                        f"it exceeds the model's context of {self.context} tokens"
                    ),
                )
            else:
                encoded[i] = ids
        order = sorted(encoded, key=lambda i: len(encoded[i]))
        gc = self._generation_config()
        eos = gc.eos_token_id if isinstance(gc.eos_token_id, list) else [gc.eos_token_id]
        torch.manual_seed(self.settings.seed)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            t0 = time.perf_counter()
            batch = self.tokenizer.pad({"input_ids": [encoded[i] for i in chunk]}, return_tensors="pt")
            batch = {k: v.to(self.model.device) for k, v in batch.items()}
            with torch.inference_mode():
                out = self.model.generate(**batch, generation_config=gc)
            new = out[:, batch["input_ids"].shape[1] :].tolist()
            seconds = (time.perf_counter() - t0) / len(chunk)
            for i, tokens in zip(chunk, new, strict=True):
                results[i] = self._completion(tokens, eos, seconds)
        return [r for r in results if r is not None]

    def _completion(self, tokens: list[int], eos: list[int | None], seconds: float) -> Completion:
        stopped = False
        kept: list[int] = []
        for t in tokens:
            if t in eos:
                stopped = True
                break
            kept.append(t)
        # a row that never stopped ran to max_new_tokens (only rows that stopped get padded)
        text = self.tokenizer.decode(kept, skip_special_tokens=True).strip()
        finish = "stop" if stopped else "length"
        return Completion(text=text, finish_reason=finish, new_tokens=len(kept), seconds=seconds)

    def close(self) -> None:
        del self.model


def merge_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Fold a leading system message into the first user turn (for templates without a system role)."""
    if not messages or messages[0]["role"] != "system":
        return messages
    system, rest = messages[0]["content"], [dict(m) for m in messages[1:]]
    if rest and rest[0]["role"] == "user":
        rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
        return rest
    return [{"role": "user", "content": system}, *rest]


# ----------------------------------------------------------------------------- endpoint


class EndpointBackend:
    """Any server speaking OpenAI's ``/v1/chat/completions`` (vLLM, TGI, llama.cpp, OpenAI...)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        settings: GenerationSettings | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        jitter: float = 0.1,
        concurrency: int = 4,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import httpx

        if not base_url.startswith(("http://", "https://")):
            raise BackendConfigError(
                f"endpoint base URL must start with http:// or https://, got {base_url!r}"
            )
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.settings = settings or GenerationSettings()
        self.timeout_s = timeout_s
        self.max_retries = max(0, int(max_retries))
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.jitter = jitter
        self.batch_size = max(1, int(concurrency)) * 4
        self.concurrency = max(1, int(concurrency))
        self._sleep = sleep
        self._rng = random.Random(self.settings.seed)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout_s, headers=headers)

    def describe(self) -> dict[str, Any]:
        return {"kind": "openai", "model": self.model, "base_url": self.base_url, **asdict(self.settings)}

    def payload(self, prompt: Prompt) -> dict[str, Any]:
        s = self.settings
        body: dict[str, Any] = {
            "model": self.model,
            "messages": prompt.messages,
            "max_tokens": s.max_new_tokens,
            "temperature": s.temperature,
        }
        if s.temperature > 0:
            body["top_p"] = s.top_p
        return body

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based): doubling, capped, jittered."""
        delay = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        if retry_after is not None:
            delay = min(self.max_backoff_s, max(delay, retry_after))
        return delay * (1 + self.jitter * self._rng.random())

    def complete_one(self, prompt: Prompt) -> Completion:
        import httpx

        body = self.payload(prompt)
        t0 = time.perf_counter()
        error = "no attempt made"
        for attempt in range(1, self.max_retries + 2):
            retry_after: float | None = None
            try:
                resp = self._client.post("/chat/completions", json=body)
            except httpx.TimeoutException:
                error = f"timed out after {self.timeout_s:g} s"
            except httpx.TransportError as err:
                error = f"connection error: {err}"
            else:
                if resp.status_code == 200:
                    try:
                        return self._parse(resp.json(), attempt, time.perf_counter() - t0)
                    except (ValueError, KeyError, IndexError, TypeError) as err:
                        error = f"malformed response ({err}): {resp.text[:200]!r}"
                elif resp.status_code in RETRY_STATUS:
                    error = f"HTTP {resp.status_code}: {resp.text[:200]}"
                    retry_after = _retry_after(resp.headers.get("retry-after"))
                else:  # 400, 401, 404...: retrying will not help
                    return Completion(
                        text=None,
                        error=f"HTTP {resp.status_code} from {self.base_url}/chat/completions: {resp.text[:300]}",
                        attempts=attempt,
                        seconds=time.perf_counter() - t0,
                    )
            if attempt <= self.max_retries:
                delay = self.backoff(attempt, retry_after)
                log.warning(
                    "%s: %s; retry %d/%d in %.1f s", self.base_url, error, attempt, self.max_retries, delay
                )
                self._sleep(delay)
        return Completion(
            text=None,
            error=f"{error} (gave up after {self.max_retries + 1} attempts)",
            attempts=self.max_retries + 1,
            seconds=time.perf_counter() - t0,
        )

    @staticmethod
    def _parse(data: dict, attempt: int, seconds: float) -> Completion:
        choice = data["choices"][0]
        content = choice["message"]["content"]
        if isinstance(content, list):  # content parts
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        if not isinstance(content, str):
            raise TypeError(f"message content is {type(content).__name__}, not text")
        usage = data.get("usage") or {}
        return Completion(
            text=content.strip(),
            attempts=attempt,
            finish_reason=choice.get("finish_reason"),
            new_tokens=usage.get("completion_tokens"),
            seconds=seconds,
        )

    def complete(self, prompts: list[Prompt]) -> list[Completion]:
        if self.concurrency == 1 or len(prompts) <= 1:
            return [self.complete_one(p) for p in prompts]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self.complete_one, prompts))

    def close(self) -> None:
        self._client.close()


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:  # an HTTP date: fall back to our own backoff
        return None


# ----------------------------------------------------------------------------- factory


def env_names(role: Role) -> tuple[list[str], list[str]]:
    """Environment variables read for an endpoint's base URL and API key, in order."""
    prefix = "VINAFORGE_JUDGE" if role == "judge" else "VINAFORGE_ANSWER"
    return [f"{prefix}_BASE_URL", "OPENAI_BASE_URL"], [f"{prefix}_API_KEY", "OPENAI_API_KEY"]


def is_endpoint_spec(spec: str) -> bool:
    return spec.startswith(ENDPOINT_PREFIX)


def make_backend(
    spec: str,
    role: Role,
    settings: GenerationSettings | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    device: str | None = None,
    dtype: str = "auto",
    batch_size: int = 4,
    concurrency: int = 4,
    timeout_s: float = 120.0,
    max_retries: int = 4,
    backoff_s: float = 1.0,
) -> ChatBackend:
    """``openai:MODEL`` → endpoint (base URL and key from options or the environment);
    anything else → a local model folder or hub id loaded with transformers."""
    if is_endpoint_spec(spec):
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
        api_key = api_key or next((os.environ[v] for v in key_vars if os.environ.get(v)), None)
        return EndpointBackend(
            base_url,
            name,
            api_key=api_key,
            settings=settings,
            timeout_s=timeout_s,
            max_retries=max_retries,
            backoff_s=backoff_s,
            concurrency=concurrency,
        )
    return HFChatBackend(spec, settings=settings, device=device, dtype=dtype, batch_size=batch_size)

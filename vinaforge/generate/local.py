"""Local Hugging Face backend: batched, left-padded ``generate`` with a KV cache, and streaming.

Chat requests are rendered with the tokenizer's chat template (the one vinaforge saved with the
model); a model without one is prompted in :data:`vinaforge.chat.DEFAULT_TEMPLATE`, so base
models and chat models go through the same code. Stop strings come from the template (its
end-of-turn marker and format cues) plus the caller's, and are enforced inside ``generate``
(transformers' ``stop_strings``) and again on the decoded text.

Requests are sorted by length before batching so that padding stays small; greedy batched output
equals batch-1 output (tested). Hand-written glue over ``transformers.generate``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from vinaforge.chat.templates import DEFAULT_TEMPLATE, TEMPLATES, TemplateError, known_equivalent, render
from vinaforge.generate.base import (
    Backend,
    Completion,
    GenRequest,
    RequestLike,
    SamplingParams,
    StreamEvent,
    as_request,
    continuation_context,
    decode_after,
    truncate_at_stop,
)

log = logging.getLogger(__name__)


class GenerationError(ValueError):
    """A request this model cannot serve (prompt longer than its context, no pad token)."""


class LocalBackend(Backend):
    """A causal LM in this process (CPU or GPU)."""

    name = "local"

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        *,
        device: str | None = None,
        dtype: str = "auto",
        batch_size: int = 8,
        chat_template: str | None = None,
    ) -> None:
        super().__init__()
        import torch

        from vinaforge.model.load import load_causal_lm, load_tokenizer

        self.source = str(model) if isinstance(model, str) or hasattr(model, "__fspath__") else getattr(
            getattr(model, "config", None), "_name_or_path", ""
        ) or "in-memory model"
        if isinstance(model, str) or hasattr(model, "__fspath__"):
            self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
            if dtype == "auto" and self.device == "cpu":
                dtype = "float32"  # bf16 matmuls are slow on most CPUs
            self.model = load_causal_lm(str(model), dtype=dtype, device=self.device)
            self.tokenizer = tokenizer or load_tokenizer(str(model))
        else:
            self.model, self.tokenizer = model, tokenizer
            self.device = str(next(model.parameters()).device)
            if tokenizer is None:
                raise GenerationError("an in-memory model needs its tokenizer")
        self.model.eval()
        self._check_tokenizer()
        self.batch_size = max(1, int(batch_size))
        self._lock = threading.Lock()
        self._stop_cache: dict[tuple[str, ...], list] = {}
        tok = self.tokenizer
        tok.padding_side = "left"
        if tok.pad_token_id is None:
            fallback = tok.eos_token or tok.unk_token
            if fallback is None:
                raise GenerationError(f"{self.source}: tokenizer has no pad, eos or unk token to pad batches")
            tok.pad_token = fallback
        self.template, self.template_name = self._pick_template(chat_template)
        self.template_stops = self._template_stops()
        self.context_length = getattr(self.model.config, "max_position_embeddings", None)

    def _check_tokenizer(self) -> None:
        """A tokenizer with more ids than the model has rows is another model's: generating with it
        crashed with an IndexError deep in the embedding (self-preference, serve)."""
        from vinaforge.checks import InputCheckError, check_tokenizer_fits

        try:
            check_tokenizer_fits(self.model, self.tokenizer, self.source, allow_smaller=True)
        except InputCheckError as err:
            raise GenerationError(str(err)) from None

    # ------------------------------------------------------------------ prompts

    def _pick_template(self, override: str | None) -> tuple[str, str]:
        if override:
            from vinaforge.chat.templates import resolve_template_text

            name, jinja = resolve_template_text(override)
            return jinja, name
        own = getattr(self.tokenizer, "chat_template", None)
        if isinstance(own, dict):
            own = own.get("default")
        if own:
            return own, known_equivalent(own, self._bos or "<s>", self._eos or "</s>") or "own"
        return TEMPLATES[DEFAULT_TEMPLATE].jinja, DEFAULT_TEMPLATE

    @property
    def _bos(self) -> str:
        return self.tokenizer.bos_token or ""

    @property
    def _eos(self) -> str:
        return self.tokenizer.eos_token or ""

    def _template_stops(self) -> list[str]:
        tpl = TEMPLATES.get(self.template_name)
        stops = tpl.stop_strings(self._eos) if tpl else [self._eos]
        return [s for s in stops if s]

    def prompt_of(self, request: GenRequest) -> str:
        """The exact text the model continues."""
        if request.prompt is not None:
            return request.prompt
        try:
            return render(request.messages, self.template, bos_token=self._bos, eos_token=self._eos,
                          add_generation_prompt=True).text  # fmt: skip
        except TemplateError:
            if not request.messages or request.messages[0]["role"] != "system" or len(request.messages) < 2:
                raise
            # templates that refuse a system role (Gemma-style): fold it into the first user turn
            system, first, *rest = request.messages
            merged = [{"role": first["role"], "content": f"{system['content']}\n\n{first['content']}"}, *rest]
            return render(merged, self.template, bos_token=self._bos, eos_token=self._eos,
                          add_generation_prompt=True).text  # fmt: skip

    def encode(self, request: GenRequest) -> list[int]:
        text = self.prompt_of(request)
        # chat templates write BOS themselves; raw prompts get the tokenizer's usual specials
        return list(self.tokenizer(text, add_special_tokens=request.prompt is not None)["input_ids"])

    def count_tokens(self, request: RequestLike) -> int:
        return len(self.encode(as_request(request)))

    def _check_length(self, ids: list[int], params: SamplingParams) -> str | None:
        if self.context_length and len(ids) + params.max_new_tokens > self.context_length:
            return (f"prompt of {len(ids)} tokens + max_new_tokens {params.max_new_tokens} exceeds the model's "
                    f"context of {self.context_length} tokens")  # fmt: skip
        return None

    # ------------------------------------------------------------------ batched generation

    def _generation_kwargs(self, params: SamplingParams, stops: list[str]) -> dict[str, Any]:
        from transformers import GenerationConfig

        cfg = GenerationConfig(
            max_new_tokens=params.max_new_tokens,
            do_sample=not params.greedy,
            temperature=params.temperature if not params.greedy else None,
            top_p=params.top_p if not params.greedy else None,
            top_k=(params.top_k or None) if not params.greedy else None,
            num_return_sequences=params.n,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
            use_cache=True,
        )
        return {"generation_config": cfg, "stopping_criteria": self._stop_criteria(stops)}

    def _stop_criteria(self, stops: list[str]):
        """transformers' stop-string check, built once per set of stops.

        Building it walks the whole vocabulary (about a second for 32k tokens), so it is cached
        instead of being rebuilt by every ``generate`` call.
        """
        from transformers import StoppingCriteriaList
        from transformers.generation.stopping_criteria import StopStringCriteria

        key = tuple(stops)
        if key not in self._stop_cache:
            self._stop_cache[key] = [StopStringCriteria(self.tokenizer, list(key))] if key else []
        return StoppingCriteriaList(self._stop_cache[key])

    def _finish(
        self, new_ids: list[int], stops: list[str], params: SamplingParams, context: list[int] | None = None
    ) -> tuple[str, str, int]:
        """Text, finish reason and completion tokens (the EOS token ends a reply but is not counted)."""
        eos = self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id
        hit_eos = False
        kept: list[int] = []
        for t in new_ids:
            if t == eos:
                hit_eos = True
                kept.append(t)
                break
            kept.append(t)
        if not hit_eos and pad is not None and pad != eos:
            while kept and kept[-1] == pad:
                kept.pop()
        text = decode_after(self.tokenizer, context or [], kept)
        text, hit_stop = truncate_at_stop(text, stops)
        finish = "stop" if hit_eos or hit_stop else ("length" if len(kept) >= params.max_new_tokens else "stop")
        return text, finish, len(kept) - int(hit_eos)

    def _run_batch(
        self, batch: list[list[int]], params: SamplingParams, contexts: list[list[int]] | None = None
    ) -> list[tuple[str, str, int]]:
        import torch

        stops = list(dict.fromkeys([*self.template_stops, *params.stop]))
        width = max(len(ids) for ids in batch)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in batch], device=self.device)
        attention = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=self.device)
        if params.seed is not None:
            torch.manual_seed(params.seed)
        with torch.inference_mode():
            out = self.model.generate(input_ids=input_ids, attention_mask=attention,
                                      **self._generation_kwargs(params, stops))  # fmt: skip
        contexts = contexts or [[] for _ in batch]
        per_row = [c for c in contexts for _ in range(params.n)]  # generate returns n rows per prompt
        return [self._finish(row[width:].tolist(), stops, params, ctx) for row, ctx in zip(out, per_row, strict=True)]

    def generate(self, requests: Sequence[RequestLike], params: SamplingParams | None = None) -> list[Completion]:
        params = params or SamplingParams()
        reqs = [as_request(r) for r in requests]
        encoded = [self.encode(r) for r in reqs]
        results: dict[tuple[int, int], Completion] = {}
        runnable = []
        for i, ids in enumerate(encoded):
            problem = self._check_length(ids, params) if ids else "empty prompt"
            if problem:
                for s in range(params.n):
                    results[(i, s)] = Completion(None, "error", len(ids), 0, problem, 1, 0.0, i, s)
            else:
                runnable.append(i)
        order = sorted(runnable, key=lambda i: -len(encoded[i]))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            t0 = time.perf_counter()
            with self._lock:
                contexts = [continuation_context(reqs[i], encoded[i]) for i in chunk]
                outs = self._run_batch([encoded[i] for i in chunk], params, contexts)
            seconds = (time.perf_counter() - t0) / max(1, len(outs))
            for j, (text, finish, ntok) in enumerate(outs):
                i, s = chunk[j // params.n], j % params.n
                results[(i, s)] = Completion(text, finish, len(encoded[i]), ntok, None, 1, seconds, i, s)
        flat = [results[(i, s)] for i in range(len(reqs)) for s in range(params.n)]
        for c in flat:
            self.usage.add(c)
        return flat

    # ------------------------------------------------------------------ streaming

    def stream(self, request: RequestLike, params: SamplingParams | None = None) -> Iterator[StreamEvent]:
        """Yield text as it is generated; closing the iterator stops generation (frees the model)."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        params = params or SamplingParams()
        if params.n != 1:
            raise GenerationError("streaming supports n=1 only")
        req = as_request(request)
        ids = self.encode(req)
        problem = self._check_length(ids, params) if ids else "empty prompt"
        if problem:
            c = Completion(None, "error", len(ids), 0, problem)
            self.usage.add(c)
            yield StreamEvent("", c)
            return
        stops = list(dict.fromkeys([*self.template_stops, *params.stop]))
        cancel = threading.Event()

        class _Cancel(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):  # noqa: ANN001
                return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool, device=input_ids.device)

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        kwargs = self._generation_kwargs(params, stops)
        kwargs["stopping_criteria"] = StoppingCriteriaList([*kwargs["stopping_criteria"], _Cancel()])
        counted: list[int] = []

        def work() -> None:
            try:
                if params.seed is not None:
                    torch.manual_seed(params.seed)
                with torch.inference_mode():
                    out = self.model.generate(
                        input_ids=torch.tensor([ids], device=self.device),
                        attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=self.device),
                        streamer=streamer, **kwargs,
                    )  # fmt: skip
                counted.extend(out[0, len(ids) :].tolist())
            except Exception as err:  # surfaced to the consumer below
                counted.append(-1)
                log.error("generation failed: %s", err)
                streamer.end()

        t0 = time.perf_counter()
        sent, buffer, stopped, drained = 0, "", False, False
        holdback = max((len(s) for s in stops), default=0)
        with self._lock:
            thread = threading.Thread(target=work, daemon=True)
            thread.start()
            try:
                for piece in streamer:
                    buffer += piece
                    text, hit = truncate_at_stop(buffer, stops)
                    if hit:
                        stopped = True
                        cancel.set()
                        if len(text) > sent:
                            yield StreamEvent(text[sent:])
                        sent = len(text)
                        break
                    safe = len(buffer) - holdback
                    if safe > sent:
                        yield StreamEvent(buffer[sent:safe])
                        sent = safe
                else:
                    drained = True
            finally:
                cancel.set()  # a consumer that stops listening (client gone) frees the model
                if not drained:
                    for _ in streamer:  # drain so the worker thread can finish
                        pass
                thread.join()
        if counted and counted[-1] == -1:
            c = Completion(None, "error", len(ids), 0, "generation failed (see log)")
            self.usage.add(c)
            yield StreamEvent("", c)
            return
        text, finish, ntok = self._finish(counted, stops, params)
        if stopped:
            finish = "stop"
        if len(text) > sent:
            yield StreamEvent(text[sent:])
        c = Completion(text, finish, len(ids), ntok, None, 1, time.perf_counter() - t0)
        self.usage.add(c)
        yield StreamEvent("", c)

    # ------------------------------------------------------------------ scoring (logprobs, echo)

    def token_ids(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """``text`` as this model's token ids (a chat prompt's BOS is in its text already)."""
        return list(self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def piece(self, token_id: int) -> str:
        """A token's text as OpenAI lists it: with its leading space (" và", not "và")."""
        text = self.tokenizer.decode([token_id])
        raw = self.tokenizer.convert_ids_to_tokens(token_id) or ""
        if raw.startswith("\u2581") and not text.startswith(" "):
            text = " " + text
        return text

    def score(self, sequences: Sequence[Sequence[int]], top: int = 0) -> list[Any]:
        """Teacher-forced token log-probabilities of each sequence (:mod:`vinaforge.generate.logprobs`)."""
        import torch

        from vinaforge.generate.logprobs import from_log_softmax

        out = []
        for ids in sequences:
            ids = list(ids)
            if not ids:
                raise GenerationError("cannot score an empty token sequence")
            if self.context_length and len(ids) > self.context_length:
                raise GenerationError(f"{len(ids)} tokens to score, over the model's context of {self.context_length}")
            with self._lock, torch.inference_mode():
                logits = self.model(torch.tensor([ids], device=self.device)).logits[0].float()
            out.append(from_log_softmax(ids, logits.log_softmax(-1).cpu(), top, self.piece))
        return out

    def describe(self) -> dict[str, Any]:
        from vinaforge.model.tiny import is_random_init

        return {
            "kind": "local",
            "model": self.source,
            "chat_template": self.template_name,
            "device": self.device,
            "batch_size": self.batch_size,
            "random_init": bool(is_random_init(self.model)),
        }

    def close(self) -> None:
        self.model = None

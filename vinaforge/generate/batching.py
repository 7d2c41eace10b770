"""Dynamic batching over a :class:`~vinaforge.generate.local.LocalBackend`, with per-request streams.

A server gets requests one at a time from many clients. Running them one after another leaves
the model underused (one decoding step over sixteen rows costs far less than sixteen one-row steps), so a
scheduler thread collects the requests that arrive within a few milliseconds of each other (and
everything that queued while the previous batch ran) and runs them as **one** left-padded
``model.generate`` call with a KV cache. Each row of the batch is a request (or one of its ``n``
samples) with its own prompt, ``max_tokens``, stop strings and cancellation flag.

Per-row bookkeeping happens in a ``StoppingCriteria`` that transformers calls once per decoding
step with every sequence: it reads each row's new token, decodes the row's text, cuts it at the
row's stop strings, pushes the new text to the request's sink, and tells ``generate`` which rows
are finished (their end-of-sequence, stop string, own ``max_tokens``, or a client that went
away). Rows that finish early stop costing anything visible to the client, and the batch ends when
every row is done. Because the tokens come from the same ``generate`` call as
:meth:`LocalBackend.generate`, streamed greedy text equals non-streamed greedy text (tested).

Batches are formed per *wave*: a request that arrives while a batch is decoding waits for the
next one (at most one batch's duration). Sampled requests share a batch only with requests of the
same temperature/top-p/top-k; a sampled request with a ``seed`` runs alone so that its seed
means something.

:class:`ContinuousBatchingEngine` (the server's default) removes the wave: requests join and
leave a running batch at every decoding step. transformers also ships a continuous-batching
manager (``model.init_continuous_batching``); it manages its own paged cache and attention
implementations and takes no per-request stop strings, so both schedulers here drive the model's
ordinary ``generate``/forward instead.

Hand-written: the schedulers and per-row stream bookkeeping; the model work is transformers'.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from vinaforge.generate.base import (
    Completion,
    RequestLike,
    SamplingParams,
    as_request,
    continuation_context,
    decode_after,
    truncate_at_stop,
)
from vinaforge.generate.local import GenerationError, LocalBackend

log = logging.getLogger(__name__)

_DONE = object()


@dataclass
class TicketEvent:
    """A piece of text for sample ``index`` of a request; ``completion`` is set on its last event."""

    index: int
    delta: str = ""
    completion: Completion | None = None


class Ticket:
    """Handle of one submitted request: iterate its events, or :meth:`cancel` it (client gone).

    Events go to ``sink`` when one is given (a server hands in a thread-safe callback into its
    event loop); otherwise they queue up for :meth:`events` / :meth:`result`.
    """

    _ids = itertools.count()

    def __init__(self, n: int, sink: Callable[[TicketEvent], None] | None = None) -> None:
        self.id = next(self._ids)
        self.n = n
        self._queue: queue.Queue[TicketEvent] = queue.Queue()
        self._sink = sink or self._queue.put
        self._cancelled = threading.Event()
        self._open = n
        self._lock = threading.Lock()
        self.finished = threading.Event()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Stop generating for this request; its rows leave the batch at the next decoding step."""
        self._cancelled.set()

    def emit(self, event: TicketEvent) -> None:
        self._sink(event)
        if event.completion is not None:
            with self._lock:
                self._open -= 1
                if self._open == 0:
                    self.finished.set()

    def events(self, timeout: float | None = None) -> Iterator[TicketEvent]:
        """Events as they come (only without a sink); ``timeout`` bounds the wait for each one."""
        remaining = self.n
        while remaining:
            try:
                ev = self._queue.get(timeout=timeout)
            except queue.Empty:
                self.cancel()
                raise TimeoutError(f"no output for {timeout} s") from None
            remaining -= ev.completion is not None
            yield ev

    def result(self, timeout: float | None = None) -> list[Completion]:
        """Wait for every sample; completions in sample order."""
        done = [ev.completion for ev in self.events(timeout) if ev.completion is not None]
        return sorted(done, key=lambda c: c.sample_index)


@dataclass
class _Row:
    ticket: Ticket
    index: int
    ids: list[int]
    params: SamplingParams
    stops: list[str]
    tokens: list[int] = field(default_factory=list)
    sent: int = 0
    done: bool = False
    t0: float = field(default_factory=time.perf_counter)
    generator: Any = None  # torch.Generator of a sampled row (continuous batching)
    context: list[int] = field(default_factory=list)  # prompt tokens a raw completion decodes after

    @property
    def holdback(self) -> int:
        return max((len(s) for s in self.stops), default=1) - 1


@dataclass
class _Pending:
    ticket: Ticket
    ids: list[int]
    params: SamplingParams
    key: tuple
    context: list[int] = field(default_factory=list)


def batch_key(params: SamplingParams, ticket_id: int) -> tuple:
    """Requests with equal keys can share one ``generate`` call."""
    if params.greedy:
        return ("greedy",)
    alone = ticket_id if params.seed is not None else None
    return ("sample", params.temperature, params.top_p, params.top_k, alone)


class BatchingEngine:
    """Runs concurrent requests on one local model as batched, streamed ``generate`` calls.

    ``max_batch_size=1`` gives the one-request-at-a-time baseline with the same code path.
    """

    def __init__(self, backend: LocalBackend, *, max_batch_size: int = 16, window_ms: float = 5.0) -> None:
        self.backend = backend
        self.max_batch_size = max(1, int(max_batch_size))
        self.window = max(0.0, window_ms) / 1000
        self._pending: deque[_Pending] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.rows_run = 0
        self.busy_rows = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> BatchingEngine:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="vinaforge-batcher", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 30.0) -> None:
        """Finish what is queued and running, then end the scheduler thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> BatchingEngine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def queued(self) -> int:
        return len(self._pending)

    # ------------------------------------------------------------------ submission

    def prompt_ids(self, request: RequestLike) -> list[int]:
        return self.backend.encode(as_request(request))

    def submit(
        self,
        request: RequestLike,
        params: SamplingParams | None = None,
        sink: Callable[[TicketEvent], None] | None = None,
        *,
        ids: list[int] | None = None,
    ) -> Ticket:
        """Queue one request (``params.n`` samples). Raises :class:`GenerationError` if it cannot fit."""
        params = params or SamplingParams()
        ids = ids if ids is not None else self.prompt_ids(request)
        if not ids:
            raise GenerationError("empty prompt")
        problem = self.backend._check_length(ids, params)
        if problem:
            raise GenerationError(problem)
        ticket = Ticket(params.n, sink)
        with self._cond:
            if self._stopping:
                raise GenerationError("the server is shutting down")
            context = continuation_context(as_request(request), ids) if request is not None else []
            self._pending.append(_Pending(ticket, ids, params, batch_key(params, ticket.id), context))
            self._cond.notify()
        return ticket

    def generate(self, requests: list[RequestLike], params: SamplingParams | None = None,
                 timeout: float | None = None) -> list[Completion]:  # fmt: skip
        """Blocking convenience: submit all, wait for all (request-major, like ``Backend.generate``)."""
        tickets = [self.submit(r, params) for r in requests]
        out = []
        for i, t in enumerate(tickets):
            for c in t.result(timeout):
                c.request_index = i
                out.append(c)
        return out

    # ------------------------------------------------------------------ scheduling

    def _take_batch(self) -> list[_Pending]:
        """The oldest request and every queued one that can share its batch, up to the row limit."""
        first = self._pending.popleft()
        batch, rows = [first], first.params.n
        keep: deque[_Pending] = deque()
        while self._pending:
            p = self._pending.popleft()
            if p.key == first.key and rows + p.params.n <= self.max_batch_size:
                batch.append(p)
                rows += p.params.n
            else:
                keep.append(p)
        self._pending.extendleft(reversed(keep))
        return batch

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if not self._pending and self._stopping:
                    return
            if self.window:
                time.sleep(self.window)  # let the requests that arrive together share the batch
            with self._cond:
                batch = self._take_batch()
            live = [p for p in batch if not p.ticket.cancelled]
            for p in batch:
                if p.ticket.cancelled:
                    for s in range(p.params.n):
                        p.ticket.emit(TicketEvent(s, "", Completion("", "cancelled", len(p.ids), 0, None, 1, 0.0, 0, s)))
            if live:
                self._run(live)

    # ------------------------------------------------------------------ one batched generate call

    def _rows(self, batch: list[_Pending]) -> list[_Row]:
        template_stops = self.backend.template_stops
        rows = []
        for p in batch:
            stops = list(dict.fromkeys([*template_stops, *p.params.stop]))
            rows += [_Row(p.ticket, s, p.ids, p.params, stops, context=p.context) for s in range(p.params.n)]
        return rows

    def _run(self, batch: list[_Pending]) -> None:
        import torch
        from transformers import GenerationConfig, StoppingCriteriaList

        rows = self._rows(batch)
        self.batches += 1
        self.rows_run += len(rows)
        self.busy_rows = len(rows)
        tok, model, device = self.backend.tokenizer, self.backend.model, self.backend.device
        width = max(len(r.ids) for r in rows)
        pad = tok.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(r.ids)) + r.ids for r in rows], device=device)
        attention = torch.tensor([[0] * (width - len(r.ids)) + [1] * len(r.ids) for r in rows], device=device)
        params = batch[0].params
        cfg = GenerationConfig(
            max_new_tokens=max(r.params.max_new_tokens for r in rows),
            do_sample=not params.greedy,
            temperature=params.temperature if not params.greedy else None,
            top_p=params.top_p if not params.greedy else None,
            top_k=(params.top_k or None) if not params.greedy else None,
            pad_token_id=pad,
            eos_token_id=tok.eos_token_id,
            use_cache=True,
        )
        tracker = _RowTracker(rows, tok)
        try:
            if not params.greedy and params.seed is not None:
                torch.manual_seed(params.seed)
            with self.backend._lock, torch.inference_mode():
                model.generate(input_ids=input_ids, attention_mask=attention, generation_config=cfg,
                               stopping_criteria=StoppingCriteriaList([tracker]))  # fmt: skip
            tracker.finish_all("length")
        except Exception as err:  # every unfinished row gets the error; the scheduler keeps going
            log.error("batched generation failed: %s", err)
            tracker.fail_all(f"generation failed: {type(err).__name__}: {err}")
        finally:
            self.busy_rows = 0


def _criterion_base():
    from transformers import StoppingCriteria

    return StoppingCriteria


class _RowTracker(_criterion_base()):  # type: ignore[misc]
    """Called by ``generate`` after every step: stream each row's new text, say which rows are done."""

    def __init__(self, rows: list[_Row], tokenizer: Any) -> None:
        self.rows = rows
        self.tok = tokenizer
        self.eos = tokenizer.eos_token_id

    def __call__(self, input_ids, scores, **kwargs):  # noqa: ANN001 - transformers' signature
        import torch

        new = input_ids[:, -1].tolist()
        for row, t in zip(self.rows, new, strict=True):
            if not row.done:
                self._step(row, t)
        return torch.tensor([r.done for r in self.rows], dtype=torch.bool, device=input_ids.device)

    def _text(self, row: _Row) -> str:
        return decode_after(self.tok, row.context, row.tokens)

    def _step(self, row: _Row, token: int) -> None:
        if row.ticket.cancelled:
            self._close(row, "cancelled", self._text(row)[: row.sent])
            return
        row.tokens.append(token)
        text = self._text(row)
        if token == self.eos:
            self._close(row, "stop", truncate_at_stop(text, row.stops)[0])
            return
        cut, hit = truncate_at_stop(text, row.stops)
        if hit:
            self._close(row, "stop", cut)
            return
        if len(row.tokens) >= row.params.max_new_tokens:
            self._close(row, "length", text)
            return
        safe = len(text) - row.holdback
        while safe > row.sent and text[safe - 1] == "\ufffd":  # half of a multi-byte character
            safe -= 1
        if safe > row.sent:
            row.ticket.emit(TicketEvent(row.index, text[row.sent : safe]))
            row.sent = safe

    def _close(self, row: _Row, finish: str, text: str, error: str | None = None) -> None:
        row.done = True
        if error is None and len(text) > row.sent and finish != "cancelled":
            row.ticket.emit(TicketEvent(row.index, text[row.sent :]))
        counted = len(row.tokens) - int(bool(row.tokens) and row.tokens[-1] == self.eos)  # EOS is not counted
        c = Completion(None if error else text, "error" if error else finish, len(row.ids), counted, error,
                       1, time.perf_counter() - row.t0, 0, row.index)  # fmt: skip
        row.ticket.emit(TicketEvent(row.index, "", c))

    def finish_all(self, finish: str) -> None:
        for row in self.rows:
            if not row.done:
                self._close(row, "cancelled" if row.ticket.cancelled else finish, self._text(row))

    def fail_all(self, error: str) -> None:
        for row in self.rows:
            if not row.done:
                self._close(row, "error", "", error)


class ContinuousBatchingEngine(BatchingEngine):
    """Continuous batching: requests join and leave a running batch at every decoding step.

    The batch's KV cache (transformers' ``DynamicCache``, left-padded) lives across steps. A new
    request is prefilled on its own (with the others that arrived with it), its cache is
    left-padded to the batch's length (or the batch's to its length) and concatenated along the
    batch dimension; a finished or cancelled row is removed with an index-select, and cache columns
    that are padding in every row are trimmed. Each row keeps its own position ids (the number of
    real tokens before it, as ``generate`` computes them), so left padding changes nothing, and its
    own sampling settings and seed (a ``torch.Generator`` per row). A request no longer waits for
    the batch in front of it to finish, which is what the wave scheduler costs closed-loop clients.

    Hand-written (see the module docstring for why not transformers' manager); numerically the
    same forward as ``generate``: greedy output equals :meth:`LocalBackend.generate` (tested).
    """

    def _loop(self) -> None:
        import torch

        self._state = _BatchState()
        while True:
            with self._cond:
                while not self._pending and not self._state.rows and not self._stopping:
                    self._cond.wait()
                if not self._pending and not self._state.rows and self._stopping:
                    return
                idle = not self._state.rows
            if idle and self.window:
                time.sleep(self.window)
            with self._cond:
                admitted = self._admit()
            try:
                with self.backend._lock, torch.inference_mode():
                    if admitted:
                        self._prefill(admitted)
                    if self._state.rows:
                        self._step()
            except Exception as err:  # fail the rows in flight; the scheduler keeps going
                log.error("continuous batching step failed: %s", err)
                for row in self._state.rows:
                    if not row.done:
                        _RowTracker([row], self.backend.tokenizer)._close(row, "error", "", f"generation failed: {err}")
                self._state = _BatchState()
            finally:
                self.busy_rows = len(self._state.rows)

    def _admit(self) -> list[_Pending]:
        room = self.max_batch_size - len(self._state.rows)
        taken: list[_Pending] = []
        while self._pending and (self._pending[0].params.n <= room or (not taken and not self._state.rows)):
            p = self._pending.popleft()
            room -= p.params.n
            if p.ticket.cancelled:
                for s in range(p.params.n):
                    p.ticket.emit(TicketEvent(s, "", Completion("", "cancelled", len(p.ids), 0, None, 1, 0.0, 0, s)))
                continue
            taken.append(p)
        return taken

    # ------------------------------------------------------------------ model calls

    def _forward(self, input_ids, mask, cache):
        import inspect

        model = self.backend.model
        if not hasattr(self, "_cache_kw"):
            params = inspect.signature(model.forward).parameters
            self._cache_kw = "cache" if "cache" in params else "past_key_values"
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)[:, -input_ids.shape[1] :]
        out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True,
                    **{self._cache_kw: cache})  # fmt: skip
        return out.logits[:, -1].float()

    def _pick(self, logits, rows: list[_Row]):
        import torch

        tokens = logits.argmax(-1)
        for i, row in enumerate(rows):
            p = row.params
            if p.greedy:
                continue
            scores = logits[i] / p.temperature
            if p.top_k:
                kth = torch.topk(scores, min(p.top_k, scores.numel())).values[-1]
                scores = scores.masked_fill(scores < kth, float("-inf"))
            probs = torch.softmax(scores, -1)
            if p.top_p < 1:
                sorted_p, order = torch.sort(probs, descending=True)
                drop = sorted_p.cumsum(-1) - sorted_p > p.top_p
                sorted_p = sorted_p.masked_fill(drop, 0)
                probs = torch.zeros_like(probs).scatter(0, order, sorted_p)
            tokens[i] = torch.multinomial(probs / probs.sum(), 1, generator=row.generator)[0]
        return tokens

    def _prefill(self, batch: list[_Pending]) -> None:
        import torch
        from transformers import DynamicCache

        rows = self._rows(batch)
        device = self.backend.device
        for row in rows:
            if not row.params.greedy:
                row.generator = torch.Generator(device=device)
                if row.params.seed is not None:
                    row.generator.manual_seed(row.params.seed + row.index)
                else:
                    row.generator.seed()
        self.batches += 1
        self.rows_run += len(rows)
        pad = self.backend.tokenizer.pad_token_id
        width = max(len(r.ids) for r in rows)
        ids = torch.tensor([[pad] * (width - len(r.ids)) + r.ids for r in rows], device=device)
        mask = torch.tensor([[0] * (width - len(r.ids)) + [1] * len(r.ids) for r in rows], device=device)
        cache = DynamicCache()
        logits = self._forward(ids, mask, cache)
        first = self._pick(logits, rows)
        self._advance(rows, first)  # the new rows' first token; rows already running got theirs
        self._state.merge(rows, cache, mask, first)
        self._state.drop_finished()

    def _step(self) -> None:
        import torch

        st = self._state
        st.mask = torch.cat([st.mask, torch.ones_like(st.mask[:, :1])], dim=1)
        logits = self._forward(st.last.view(-1, 1), st.mask, st.cache)
        st.last = self._pick(logits, st.rows)
        self._advance(st.rows, st.last)
        st.drop_finished()

    def _advance(self, rows: list[_Row], tokens) -> None:
        """Hand each row its newest token: stream the text, apply its stops and limits."""
        tracker = _RowTracker(rows, self.backend.tokenizer)
        for row, t in zip(rows, tokens.tolist(), strict=True):
            if not row.done:
                tracker._step(row, t)


class _BatchState:
    """The running batch: rows, their left-padded KV cache and mask, and each row's pending token."""

    def __init__(self) -> None:
        self.rows: list[_Row] = []
        self.cache = None
        self.mask = None
        self.last = None

    def merge(self, rows: list[_Row], cache, mask, last) -> None:
        import torch
        import torch.nn.functional as F

        if not self.rows:
            self.rows, self.cache, self.mask, self.last = rows, cache, mask, last
            return
        t_old, t_new = self.mask.shape[1], mask.shape[1]
        width = max(t_old, t_new)
        for old, new in zip(self.cache.layers, cache.layers, strict=True):
            old.keys = torch.cat([F.pad(old.keys, (0, 0, width - t_old, 0)), F.pad(new.keys, (0, 0, width - t_new, 0))])
            old.values = torch.cat([F.pad(old.values, (0, 0, width - t_old, 0)),
                                    F.pad(new.values, (0, 0, width - t_new, 0))])  # fmt: skip
        self.mask = torch.cat([F.pad(self.mask, (width - t_old, 0)), F.pad(mask, (width - t_new, 0))])
        self.last = torch.cat([self.last, last])
        self.rows = self.rows + rows

    def drop_finished(self) -> None:
        import torch

        keep = [i for i, r in enumerate(self.rows) if not r.done]
        if len(keep) == len(self.rows):
            return
        if not keep:
            self.__init__()
            return
        index = torch.tensor(keep, device=self.mask.device)
        used = self.mask.index_select(0, index).sum(0) > 0
        start = int(used.nonzero()[0]) if used.any() else 0  # columns that are padding in every kept row
        for layer in self.cache.layers:
            layer.keys = layer.keys.index_select(0, index)[:, :, start:]
            layer.values = layer.values.index_select(0, index)[:, :, start:]
        self.mask = self.mask.index_select(0, index)[:, start:]
        self.last = self.last.index_select(0, index)
        self.rows = [self.rows[i] for i in keep]

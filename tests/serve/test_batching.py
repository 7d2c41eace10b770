"""Dynamic batching on a real tiny model: streamed output equals ``LocalBackend.generate``."""

from __future__ import annotations

import time

import pytest

from vinaforge.generate.base import SamplingParams


@pytest.fixture(scope="module")
def backend(local_engine):
    return local_engine.backend


@pytest.mark.parametrize("kind", ["continuous", "wave"])
def test_staggered_requests_stream_the_same_greedy_text(backend, kind):
    from vinaforge.generate.batching import BatchingEngine, ContinuousBatchingEngine

    prompts = [[{"role": "user", "content": f"Câu {i}: Hà Nội có gì? " * (1 + i % 3)}] for i in range(6)]
    limits = [4, 20, 9, 14, 2, 11]
    expected = [backend.generate([p], SamplingParams(max_new_tokens=m, temperature=0))[0]
                for p, m in zip(prompts, limits, strict=True)]  # fmt: skip
    engine_cls = ContinuousBatchingEngine if kind == "continuous" else BatchingEngine
    with engine_cls(backend, max_batch_size=4) as engine:
        tickets = []
        for p, m in zip(prompts, limits, strict=True):
            tickets.append(engine.submit(p, SamplingParams(max_new_tokens=m, temperature=0)))
            time.sleep(0.02)  # arrive while others are decoding
        for ref, ticket in zip(expected, tickets, strict=True):
            deltas, final = [], None
            for ev in ticket.events(timeout=60):
                deltas.append(ev.delta)
                final = ev.completion or final
            assert "".join(deltas) == final.text == ref.text
            assert (final.completion_tokens, final.finish_reason) == (ref.completion_tokens, ref.finish_reason)
        assert engine.batches >= 2 if kind == "wave" else engine.batches >= 1


def test_continuous_stops_cancel_and_seeds(backend):
    from vinaforge.generate.batching import ContinuousBatchingEngine

    msg = [{"role": "user", "content": "Kể chuyện cổ tích."}]
    full = backend.generate([msg], SamplingParams(max_new_tokens=16, temperature=0))[0].text
    stop = full.split()[1]
    with ContinuousBatchingEngine(backend, max_batch_size=8) as engine:
        cut = engine.submit(msg, SamplingParams(max_new_tokens=16, temperature=0, stop=[stop])).result(60)[0]
        assert cut.text == full[: full.index(stop)] and cut.finish_reason == "stop"
        long = engine.submit(msg, SamplingParams(max_new_tokens=1500, temperature=0))
        next(iter(long.events(timeout=60)))
        long.cancel()
        events = list(long.events(timeout=60))
        assert events[-1].completion.finish_reason == "cancelled"
        assert events[-1].completion.completion_tokens < 1500
        params = SamplingParams(max_new_tokens=10, temperature=1.0, seed=3, n=2)
        a = [c.text for c in engine.submit(msg, params).result(60)]
        b = [c.text for c in engine.submit(msg, params).result(60)]
        assert a == b and a[0] != a[1]  # per-row generators: seeded, and the samples differ

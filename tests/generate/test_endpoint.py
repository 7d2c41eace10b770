"""EndpointBackend (official openai client) against a real HTTP server in front of the tiny model.

The server injects timeouts, 429 with Retry-After, 500s, malformed JSON and truncated streams;
every failure is retried or recorded, and no call is lost or repeated (server call counts equal
the attempts the backend reports).
"""

from __future__ import annotations

import pytest

from vinaforge.generate import BackendConfig, SamplingParams, load_backend
from vinaforge.generate.endpoint import EndpointBackend, EndpointConfigError
from vinaforge.generate.testserver import FaultPlan, serve_backend

CHAT = [{"role": "user", "content": "Xin chào, bạn khỏe không?"}]
P = SamplingParams(max_new_tokens=8)


def _client(url: str, **kw) -> EndpointBackend:
    kw.setdefault("backoff", 0.01)
    return EndpointBackend(url, "tiny", **kw)


def test_same_text_as_the_local_model(backend):
    local = backend.generate([CHAT, "Hôm nay trời"], P)
    with serve_backend(backend) as srv:
        remote = _client(srv.base_url).generate([CHAT, "Hôm nay trời"], P)
        assert srv.calls == 2 and srv.successes == 2
    assert [c.text for c in remote] == [c.text for c in local]
    assert remote[0].prompt_tokens == local[0].prompt_tokens and remote[0].completion_tokens == local[0].completion_tokens


def test_faults_are_retried_and_counted_exactly(backend):
    faults = FaultPlan({1: "429", 2: "500", 4: "malformed", 6: "timeout"}, retry_after=0.05, timeout_sleep=2.0)
    with serve_backend(backend, faults=faults) as srv:
        client = _client(srv.base_url, concurrency=1, timeout=1.0)
        out = client.generate([CHAT, CHAT, CHAT], P)
        assert all(c.ok for c in out)
        assert sum(c.attempts for c in out) == srv.calls, "every call the server saw is accounted for"
        assert srv.successes == 3, "each request succeeded exactly once: nothing repeated"
        assert [c.attempts for c in out] == [3, 2, 2]
        assert client.usage.requests == 3 and client.usage.failures == 0 and client.usage.attempts == srv.calls


def test_exhausted_retries_are_recorded_not_raised(backend):
    faults = FaultPlan({1: "500", 2: "500", 3: "500"})
    with serve_backend(backend, faults=faults) as srv:
        out = _client(srv.base_url, max_retries=2).generate([CHAT], P)
        assert srv.calls == 3
    assert not out[0].ok and out[0].finish_reason == "error" and "InternalServerError" in out[0].error
    assert out[0].attempts == 3


def test_streaming_and_truncated_stream(backend):
    local = backend.generate([CHAT], P)[0].text
    with serve_backend(backend, faults=FaultPlan({2: "truncate"})) as srv:
        client = _client(srv.base_url)
        events = list(client.stream(CHAT, P))
        assert "".join(e.delta for e in events) == local and events[-1].completion.ok
        broken = list(client.stream(CHAT, SamplingParams(max_new_tokens=20)))
        assert not broken[-1].completion.ok and "stream broke" in broken[-1].completion.error


def test_api_key_from_environment(backend, monkeypatch):
    with serve_backend(backend, api_key="sk-test-secret-123456") as srv:
        monkeypatch.delenv("VF_TEST_KEY", raising=False)
        with pytest.raises(EndpointConfigError, match="VF_TEST_KEY .* is not set"):
            _client(srv.base_url, api_key_env="VF_TEST_KEY")
        monkeypatch.setenv("VF_TEST_KEY", "sk-wrong-key-000000")
        with pytest.raises(EndpointConfigError, match="refused the API key"):
            _client(srv.base_url, api_key_env="VF_TEST_KEY").generate([CHAT], P)
        monkeypatch.setenv("VF_TEST_KEY", "sk-test-secret-123456")
        ok = load_backend(BackendConfig(kind="openai", base_url=srv.base_url, model="tiny", api_key_env="VF_TEST_KEY"))
        assert ok.generate([CHAT], P)[0].ok
        assert "sk-test" not in str(ok.describe())


def test_describe_redacts_credentials_in_url():
    client = EndpointBackend("http://user:sk-abcdefghijklmnop@127.0.0.1:9/v1", "m")
    assert "sk-abcdefghijklmnop" not in str(client.describe())


def test_config_rejects_a_key_in_place_of_a_variable_name():
    with pytest.raises(ValueError, match="NAME of an environment variable"):
        BackendConfig(kind="openai", model="m", base_url="http://127.0.0.1:9/v1", api_key_env="sk-abc123456789")


def test_concurrency(backend):
    with serve_backend(backend) as srv:
        out = _client(srv.base_url, concurrency=4).generate([CHAT] * 8, P)
        assert srv.calls == 8
    assert len({c.text for c in out}) == 1 and all(c.ok for c in out)

"""Reliability on a real server: concurrent streams with disconnects, OpenAI-shaped 4xx errors,
the concurrency limit, and a graceful shutdown. Every loop is bounded; loopback only."""

from __future__ import annotations

import json
import threading
import time

import httpx
import openai
import pytest


def _stream_chat(url: str, disconnect_after: int | None, out: list, i: int) -> None:
    body = {"model": "tiny", "messages": [{"role": "user", "content": f"Câu hỏi số {i}: Hà Nội có gì đẹp?"}],
            "max_tokens": 40, "temperature": 0, "stream": True}  # fmt: skip
    chunks, done = 0, False
    try:
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=60) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith("data: "):
                    if line == "data: [DONE]":
                        done = True
                        break
                    json.loads(line[6:])
                    chunks += 1
                    if disconnect_after is not None and chunks >= disconnect_after:
                        break  # leaving the block closes the connection mid-stream
        out[i] = ("done" if done else "left", chunks)
    except Exception as err:  # recorded, asserted below
        out[i] = ("error", repr(err))


def test_16_streams_a_quarter_disconnect(server, client):
    before = httpx.get(server.url + "/health", timeout=10).json()
    out: list = [None] * 16
    threads = [threading.Thread(target=_stream_chat, args=(server.url, 3 if i % 4 == 0 else None, out, i))
               for i in range(16)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert [o[0] for i, o in enumerate(out) if i % 4 == 0] == ["left"] * 4
    assert all(o[0] == "done" and o[1] >= 2 for i, o in enumerate(out) if i % 4), out
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # disconnected clients free their slots
        health = httpx.get(server.url + "/health", timeout=10).json()
        if health["in_flight"] == 0:
            break
        time.sleep(0.1)
    assert health["in_flight"] == 0
    assert health["cancelled"] - before["cancelled"] >= 4
    r = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Còn đó không?"}],
                                       max_tokens=4, temperature=0)  # fmt: skip
    assert r.choices[0].message.content is not None  # the server keeps answering


def _error(resp: httpx.Response, status: int, code: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    if code:
        assert err["code"] == code
    return err


def test_bad_requests_get_openai_shaped_4xx(server):
    url = server.url + "/v1/chat/completions"
    ok = {"model": "tiny", "messages": [{"role": "user", "content": "xin chào"}], "max_tokens": 4}
    _error(httpx.post(url, content=b'{"model": "tiny", "messages": [', headers={"content-type": "application/json"},
                      timeout=10), 400, "invalid_json")  # fmt: skip
    _error(httpx.post(url, content="không phải JSON".encode(), timeout=10), 400, "invalid_json")
    _error(httpx.post(url, json=ok | {"model": "gpt-9"}, timeout=10), 404, "model_not_found")
    _error(httpx.post(url, json=ok | {"max_tokens": 10**6}, timeout=10), 400, "max_tokens_over_limit")
    long = {"role": "user", "content": "xin chào " * 3000}
    _error(httpx.post(url, json=ok | {"messages": [long]}, timeout=30), 400, "context_length_exceeded")
    _error(httpx.post(url, json=ok | {"messages": [{"role": "robot", "content": "x"}]}, timeout=10), 400)
    _error(httpx.post(url, json=ok | {"temperature": "hot"}, timeout=10), 400)
    _error(httpx.post(url, json=ok | {"messages": []}, timeout=10), 400)
    _error(httpx.post(url, content=b"x" * 2_000_000, timeout=10), 413, "request_too_large")
    _error(httpx.get(server.url + "/v1/nothing", timeout=10), 404)
    assert httpx.post(url, json=ok, timeout=30).status_code == 200  # and it still works


def test_api_key_required_when_set(make_server):
    s = make_server(api_key="s3cret-key")
    url = s.url + "/v1/chat/completions"
    ok = {"model": "tiny", "messages": [{"role": "user", "content": "xin chào"}], "max_tokens": 2}
    _error(httpx.post(url, json=ok, timeout=10), 401, "invalid_api_key")
    _error(httpx.post(url, json=ok, headers={"authorization": "Bearer wrong"}, timeout=10), 401, "invalid_api_key")
    _error(httpx.get(s.url + "/v1/models", timeout=10), 401)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=s.url + "/v1", api_key="wrong", max_retries=0).models.list()
    good = openai.OpenAI(base_url=s.url + "/v1", api_key="s3cret-key", max_retries=0)
    assert good.chat.completions.create(**ok).choices
    assert httpx.get(s.url + "/health", timeout=10).status_code == 200  # health stays open for probes


def test_concurrency_limit_answers_429(make_server):
    s = make_server(max_concurrency=1)
    body = {"model": "tiny", "messages": [{"role": "user", "content": "Viết dài"}], "max_tokens": 600,
            "temperature": 0, "stream": True}  # fmt: skip
    with httpx.stream("POST", s.url + "/v1/chat/completions", json=body, timeout=60) as r:
        assert r.status_code == 200
        lines = r.iter_lines()  # keep the iterator: dropping it closes the connection
        next(lines)
        _error(httpx.post(s.url + "/v1/chat/completions", json=body | {"stream": False}, timeout=10), 429,
               "rate_limit_exceeded")  # fmt: skip
    deadline = time.monotonic() + 20
    while httpx.get(s.url + "/health", timeout=10).json()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert httpx.post(s.url + "/v1/chat/completions", json=body | {"stream": False, "max_tokens": 2},
                      timeout=30).status_code == 200  # fmt: skip


def test_graceful_shutdown_finishes_the_stream(make_server):
    s = make_server()
    body = {"model": "tiny", "messages": [{"role": "user", "content": "Kể chuyện"}], "max_tokens": 60,
            "temperature": 0, "stream": True}  # fmt: skip
    lines = []
    with httpx.stream("POST", s.url + "/v1/chat/completions", json=body, timeout=60) as r:
        it = r.iter_lines()
        lines.append(next(it))
        stopper = threading.Thread(target=s.stop, kwargs={"timeout": 30})
        stopper.start()
        lines.extend(it)
    stopper.join(30)
    assert "data: [DONE]" in lines
    with pytest.raises(httpx.HTTPError):
        httpx.get(s.url + "/health", timeout=2)

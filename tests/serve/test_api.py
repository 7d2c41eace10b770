"""The OpenAI-compatible API, driven by the official ``openai`` client against a real server."""

from __future__ import annotations

import pytest


def test_models_and_health(client, server):
    import httpx

    assert [m.id for m in client.models.list().data] == ["tiny"]
    health = httpx.get(server.url + "/health", timeout=10).json()
    assert health["status"] == "ok" and health["rag"] is True


def test_chat_completion_usage_and_stream_equal_greedy(client):
    messages = [{"role": "user", "content": "Thủ đô của Việt Nam là gì?"}]
    full = client.chat.completions.create(model="tiny", messages=messages, max_tokens=12, temperature=0)
    text = full.choices[0].message.content
    assert full.usage.completion_tokens >= 1 and full.usage.prompt_tokens > 5
    assert full.usage.total_tokens == full.usage.prompt_tokens + full.usage.completion_tokens
    assert full.choices[0].finish_reason in {"stop", "length"}
    pieces, finish, usage = [], None, None
    stream = client.chat.completions.create(model="tiny", messages=messages, max_tokens=12, temperature=0,
                                            stream=True, stream_options={"include_usage": True})  # fmt: skip
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for ch in chunk.choices:
            pieces.append(ch.delta.content or "")
            finish = ch.finish_reason or finish
    assert "".join(pieces) == text  # streamed greedy == non-streamed greedy
    assert len([p for p in pieces if p]) >= 2  # really streamed, not one blob
    assert finish == full.choices[0].finish_reason
    assert usage.completion_tokens == full.usage.completion_tokens


def test_n_stop_seed_and_completions(client):
    messages = [{"role": "user", "content": "Kể một câu chuyện ngắn."}]
    r = client.chat.completions.create(model="tiny", messages=messages, max_tokens=8, temperature=1.0, n=3, seed=7)
    assert len(r.choices) == 3 and [c.index for c in r.choices] == [0, 1, 2]
    again = client.chat.completions.create(model="tiny", messages=messages, max_tokens=8, temperature=1.0, n=3, seed=7)
    assert [c.message.content for c in again.choices] == [c.message.content for c in r.choices]  # seeded
    base = client.chat.completions.create(model="tiny", messages=messages, max_tokens=16, temperature=0)
    text = base.choices[0].message.content
    stop = text.split()[2] if len(text.split()) > 2 else text[3:6]
    cut = client.chat.completions.create(model="tiny", messages=messages, max_tokens=16, temperature=0, stop=[stop])
    assert cut.choices[0].message.content == text[: text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"
    comp = client.completions.create(model="tiny", prompt="Hà Nội là", max_tokens=6, temperature=0)
    assert comp.choices[0].text and comp.usage.completion_tokens >= 1
    pieces = [c.choices[0].text for c in client.completions.create(model="tiny", prompt="Hà Nội là", max_tokens=6,
                                                                   temperature=0, stream=True) if c.choices]  # fmt: skip
    assert "".join(pieces) == comp.choices[0].text


def test_rag_answer_has_passages_and_checked_citations(client):
    r = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "Đồng bằng sông Cửu Long được bồi đắp bởi gì?"}],
        max_tokens=8, temperature=0, extra_body={"rag": {"k": 3}},
    )
    extra = r.model_extra["vinaforge"]
    assert len(extra["passages"]) == 3
    assert "Cửu Long" in extra["passages"][0]["text"]
    check = extra["citations"][0]
    assert set(check) >= {"cited", "invalid", "refused", "ok", "flag"}


def test_embeddings_need_a_model(client):
    import openai
    import pytest

    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="x", input="xin chào")
    assert err.value.body["code"] == "no_embedding_model"


def test_openai_backend_proxies_an_upstream_with_rag_in_front(server, client, rag_index_dir):
    """`--backend openai --upstream URL`: how vinaforge's page and RAG sit in front of vLLM."""
    import openai

    from vinaforge.serve.config import ServeConfig
    from vinaforge.serve.server import ServerThread, build_app

    cfg = ServeConfig(backend="openai", upstream=server.url + "/v1", model="tiny", served_name="proxy", port=0,
                      rag_index=str(rag_index_dir), api_key_env="VINAFORGE_TEST_NO_KEY")  # fmt: skip
    messages = [{"role": "user", "content": "Phở bò nấu thế nào?"}]
    direct = client.chat.completions.create(model="tiny", messages=messages, max_tokens=10, temperature=0)
    with ServerThread(build_app(cfg), cfg) as proxy:
        front = openai.OpenAI(base_url=proxy.url + "/v1", api_key="unused", max_retries=0, timeout=60)
        via = front.chat.completions.create(model="proxy", messages=messages, max_tokens=10, temperature=0)
        assert via.choices[0].message.content == direct.choices[0].message.content
        streamed = "".join(c.choices[0].delta.content or "" for c in front.chat.completions.create(
            model="proxy", messages=messages, max_tokens=10, temperature=0, stream=True) if c.choices)  # fmt: skip
        assert streamed == direct.choices[0].message.content
        rag = front.chat.completions.create(model="proxy", messages=messages, max_tokens=4, temperature=0,
                                            extra_body={"rag": True})  # fmt: skip
        assert "phở" in rag.model_extra["vinaforge"]["passages"][0]["text"].lower()


def test_model_card_and_unsupported_fields_answer_400(client, server):
    """Issue 22: GET /v1/models/{id}; fields we do not implement are refused by name, never ignored."""
    import httpx
    import openai

    assert client.models.retrieve("tiny").id == "tiny"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4")
    messages = [{"role": "user", "content": "Xin chào"}]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    refused = {
        "tools": tools,
        "response_format": {"type": "json_object"},
        "presence_penalty": 0.5,
        "frequency_penalty": 1.0,
        "logit_bias": {"5": 10},
    }
    for key, value in refused.items():
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model="tiny", messages=messages, max_tokens=2, **{key: value})
        assert err.value.body["param"] == key and err.value.body["code"] == "unsupported_parameter"
    for key, value in {"repeat_penalty": 1.3, "suffix": "x", "best_of": 3}.items():
        r = httpx.post(server.url + "/v1/completions", json={"model": "tiny", "prompt": "Tôi", "max_tokens": 2,
                                                              key: value}, timeout=30)  # fmt: skip
        assert r.status_code == 400 and r.json()["error"]["param"] == key, (key, r.text)
    off = client.chat.completions.create(model="tiny", messages=messages, max_tokens=2, presence_penalty=0,
                                         response_format={"type": "text"}, logprobs=False)  # fmt: skip
    assert off.choices[0].finish_reason in {"stop", "length"}

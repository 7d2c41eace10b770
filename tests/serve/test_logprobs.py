"""Issue 22: ``logprobs``/``echo`` on /v1/completions and ``logprobs``/``top_logprobs`` on chat, so
that clients we did not write (lm-eval's ``local-completions``, the ``openai`` client) can score
text against ``vinaforge serve``. Checked against lm-eval's own ``hf`` model on the same folder."""

from __future__ import annotations

import math

import pytest

PAIRS = [
    ("Hà Nội là thủ đô của", " Việt Nam"),
    ("Tôi thích ăn", " phở bò"),
    ("The capital of France is", " Paris"),
]


def test_lm_eval_local_completions_matches_its_hf_model(server, tiny_model_dir):
    """lm-eval's client against our server gives the loglikelihoods lm-eval's HFLM computes itself."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    def requests():
        return [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(PAIRS)]

    api = LocalCompletionsAPI(model="tiny", base_url=server.url + "/v1/completions", tokenizer_backend="huggingface",
                              tokenizer=str(tiny_model_dir), batch_size=1, max_retries=1, num_concurrent=1,
                              add_bos_token=True)  # fmt: skip  (HFLM adds BOS for this tokenizer)
    ours = api.loglikelihood(requests(), disable_tqdm=True)
    hf = HFLM(pretrained=str(tiny_model_dir), device="cpu", batch_size=1)
    theirs = hf.loglikelihood(requests(), disable_tqdm=True)
    assert len(ours) == len(theirs) == len(PAIRS)
    for (lp, greedy), (want, want_greedy) in zip(ours, theirs, strict=True):
        assert lp == pytest.approx(want, abs=1e-3)
        assert greedy == want_greedy


def test_echo_logprobs_shape_and_score_only(server):
    import httpx

    r = httpx.post(server.url + "/v1/completions", json={"model": "tiny", "prompt": "Tôi thích ăn phở",
                                                          "max_tokens": 0, "echo": True, "logprobs": 2}, timeout=60)  # fmt: skip
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    lp = choice["logprobs"]
    assert choice["text"] == "Tôi thích ăn phở" and r.json()["usage"]["completion_tokens"] == 0
    assert lp["token_logprobs"][0] is None and all(v <= 0 for v in lp["token_logprobs"][1:])
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == len(lp["text_offset"])
    for value, top in zip(lp["token_logprobs"][1:], lp["top_logprobs"][1:], strict=True):
        assert 1 <= len(top) <= 2 and max(top.values()) >= value - 1e-5
    # token-id prompts, batched: one choice per prompt, in order
    ids = [[1, 415, 5565], [1, 1824, 349, 264]]
    r = httpx.post(server.url + "/v1/completions", json={"model": "tiny", "prompt": ids, "max_tokens": 1,
                                                          "echo": True, "logprobs": 1, "temperature": 0}, timeout=60)  # fmt: skip
    assert r.status_code == 200, r.text
    choices = r.json()["choices"]
    assert [c["index"] for c in choices] == [0, 1]
    for c, prompt in zip(choices, ids, strict=True):
        assert len(c["logprobs"]["token_logprobs"]) >= len(prompt)


def test_completion_and_chat_logprobs_with_the_openai_client(client):
    """Generated tokens' logprobs: the greedy reply's tokens are each the most likely one."""
    out = client.completions.create(model="tiny", prompt="Xin chào", max_tokens=4, temperature=0, logprobs=3)
    lp = out.choices[0].logprobs
    assert "".join(lp.tokens) == out.choices[0].text
    for value, top in zip(lp.token_logprobs, lp.top_logprobs, strict=True):
        assert value == pytest.approx(max(top.values()), abs=1e-4)  # greedy: the top token
    chat = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Xin chào"}],
                                          max_tokens=4, temperature=0, logprobs=True, top_logprobs=2)  # fmt: skip
    content = chat.choices[0].logprobs.content
    assert content and "".join(t.token for t in content).strip() == chat.choices[0].message.content.strip()
    for t in content:
        assert len(t.top_logprobs) <= 2 and t.logprob <= 0 and math.isfinite(t.logprob)
        assert t.logprob == pytest.approx(max(a.logprob for a in t.top_logprobs), abs=1e-4)


@pytest.mark.parametrize(("path", "body", "param"), [
    ("/v1/completions", {"prompt": "Tôi", "logprobs": 99}, "logprobs"),
    ("/v1/completions", {"prompt": "Tôi", "logprobs": True}, "logprobs"),
    ("/v1/completions", {"prompt": "Tôi", "echo": "yes"}, "echo"),
    ("/v1/completions", {"prompt": "Tôi", "logprobs": 1, "stream": True}, "stream"),
    ("/v1/completions", {"prompt": "Tôi", "max_tokens": 0}, "max_tokens"),
    ("/v1/completions", {"prompt": [[1, 10 ** 9]], "echo": True, "max_tokens": 0}, "prompt"),
    ("/v1/completions", {"prompt": [1.5]}, "prompt"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "a"}], "logprobs": 2}, "logprobs"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "a"}], "top_logprobs": 2}, "top_logprobs"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "a"}], "logprobs": True, "stream": True},
     "stream"),
])  # fmt: skip
def test_bad_logprobs_requests_are_400_naming_the_field(server, path, body, param):
    import httpx

    r = httpx.post(server.url + path, json={"model": "tiny", "max_tokens": 2, **body}, timeout=60)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


def test_an_openai_upstream_cannot_score_and_says_so(server):
    """``--backend openai`` proxies generation only: logprobs/echo are refused with a 400, not a 500."""
    import httpx

    from vinaforge.serve.api import create_app
    from vinaforge.serve.config import ServeConfig
    from vinaforge.serve.engines import build_engine
    from vinaforge.serve.server import ServerThread

    cfg = ServeConfig(backend="openai", upstream=server.url + "/v1", model="tiny", port=0,
                      api_key_env="VINAFORGE_TEST_NO_KEY")  # fmt: skip
    proxy = ServerThread(create_app(cfg, build_engine(cfg)), cfg).start()
    try:
        url = proxy.url
        ok = httpx.post(url + "/v1/completions", json={"model": "tiny", "prompt": "Xin", "max_tokens": 2}, timeout=60)
        assert ok.status_code == 200, ok.text
        for path, body in (("/v1/completions", {"prompt": "Xin chào", "echo": True, "logprobs": 1, "max_tokens": 0}),
                           ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Xin chào"}],
                                                     "logprobs": True, "max_tokens": 2})):  # fmt: skip
            r = httpx.post(url + path, json={"model": "tiny", **body}, timeout=60)
            assert r.status_code == 400, r.text
            assert r.json()["error"]["param"] == "logprobs" and "gives no logprobs" in r.json()["error"]["message"]
    finally:
        proxy.stop(timeout=10)

"""The GGUF backend (llama-cpp-python) behind the same API; skipped without the runtime or converter."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def gguf_file(tiny_model_dir, tmp_path_factory):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python (the gguf extra) is not installed")
    from vinaforge.export.llamacpp import ExportError, convert, converter_dir

    try:
        converter_dir(download=False)
    except ExportError as err:
        pytest.skip(f"llama.cpp's converter is not cached: {err}")
    out = tmp_path_factory.mktemp("gguf") / "tiny-f16.gguf"
    convert(tiny_model_dir, out, "f16")
    return out


def test_gguf_backend_serves_chat_and_streams(gguf_file):
    import openai

    from vinaforge.serve.config import ServeConfig
    from vinaforge.serve.server import ServerThread, build_app

    cfg = ServeConfig(model=str(gguf_file), backend="gguf", served_name="tiny-gguf", port=0,
                      api_key_env="VINAFORGE_TEST_NO_KEY")  # fmt: skip
    with ServerThread(build_app(cfg), cfg) as s:
        client = openai.OpenAI(base_url=s.url + "/v1", api_key="unused", max_retries=0, timeout=60)
        messages = [{"role": "user", "content": "Xin chào, bạn là ai?"}]
        full = client.chat.completions.create(model="tiny-gguf", messages=messages, max_tokens=8, temperature=0)
        assert full.choices[0].message.content and full.usage.completion_tokens >= 1
        pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="tiny-gguf", messages=messages, max_tokens=8, temperature=0, stream=True) if c.choices]  # fmt: skip
        assert "".join(pieces) == full.choices[0].message.content
        assert len([p for p in pieces if p]) >= 2
        comp = client.completions.create(model="tiny-gguf", prompt="Hà Nội là", max_tokens=4, temperature=0)
        assert comp.choices[0].text


@pytest.fixture(scope="module")
def templated_gguf(gguf_file, tiny_model_dir, tmp_path_factory):
    """The tiny model with a Vicuna chat template, exported: the template travels in the GGUF."""
    from transformers import AutoTokenizer

    from vinaforge.chat import apply_chat_template
    from vinaforge.export.llamacpp import convert

    folder = tmp_path_factory.mktemp("templated")
    for f in tiny_model_dir.iterdir():
        if f.is_file():
            (folder / f.name).write_bytes(f.read_bytes())
    tok = AutoTokenizer.from_pretrained(folder)
    apply_chat_template(tok, "vicuna")
    tok.save_pretrained(folder)
    out = folder.parent / "templated-f16.gguf"
    convert(folder, out, "f16")
    return out


def test_gguf_prompt_tokens_include_the_chat_template(templated_gguf):
    """Issue 22: counted without the template (10 instead of 24), a too-long prompt got a 500."""
    import httpx

    from vinaforge.generate.base import GenRequest
    from vinaforge.generate.gguf import GGUFBackend
    from vinaforge.serve.config import ServeConfig
    from vinaforge.serve.server import ServerThread, build_app

    backend = GGUFBackend(templated_gguf)
    messages = [{"role": "system", "content": "Bạn là trợ lý."}, {"role": "user", "content": "Xin chào, bạn là ai?"}]
    assert backend._formatter() is not None  # the exported file carries its template
    told = backend.llm.create_chat_completion(messages=messages, max_tokens=1, temperature=0)["usage"]
    assert backend.count_tokens(GenRequest(messages=messages)) == told["prompt_tokens"]
    # the shortest conversation over the 2048-token context once rendered, whose bare texts still fit
    n, system = 350, "Bạn là trợ lý tiếng Việt, trả lời ngắn gọn và lịch sự. " * 4
    while backend.count_tokens(GenRequest(messages=long_chat(system, n))) + 8 <= backend.context_length:
        n += 1
    chat = long_chat(system, n)
    bare = backend.llm.tokenize("\n".join(m["content"] for m in chat).encode("utf-8"), add_bos=True)
    assert len(bare) + 8 <= backend.context_length  # the old count let it through
    backend.close()

    cfg = ServeConfig(model=str(templated_gguf), backend="gguf", served_name="g", port=0,
                      api_key_env="VINAFORGE_TEST_NO_KEY")  # fmt: skip
    with ServerThread(build_app(cfg), cfg) as s:
        r = httpx.post(s.url + "/v1/chat/completions", timeout=60, json={"model": "g", "max_tokens": 8, "messages": chat})
        assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded", r.text


def long_chat(system: str, words: int) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": " ".join(["chào"] * words)}]


def test_gguf_echo_logprobs_serve_lm_eval(gguf_file, tiny_model_dir, templated_gguf):
    """Issue 22: lm-eval's local-completions loglikelihoods against the GGUF backend agree with
    lm-eval's hf model on the folder it was exported from (f16 weights: to a small tolerance)."""
    import openai
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    from vinaforge.serve.config import ServeConfig
    from vinaforge.serve.server import ServerThread, build_app

    pairs = [("Hà Nội là thủ đô của", " Việt Nam"), ("The capital of France is", " Paris")]
    hf = HFLM(pretrained=str(tiny_model_dir), device="cpu", batch_size=1)
    want = hf.loglikelihood([Instance("loglikelihood", {}, p, i) for i, p in enumerate(pairs)], disable_tqdm=True)
    cfg = ServeConfig(model=str(gguf_file), backend="gguf", served_name="tiny-gguf", port=0,
                      api_key_env="VINAFORGE_TEST_NO_KEY")  # fmt: skip
    with ServerThread(build_app(cfg), cfg) as s:
        api = LocalCompletionsAPI(model="tiny-gguf", base_url=s.url + "/v1/completions", tokenizer_backend="huggingface",
                                  tokenizer=str(tiny_model_dir), batch_size=1, max_retries=1, num_concurrent=1,
                                  add_bos_token=True)  # fmt: skip
        got = api.loglikelihood([Instance("loglikelihood", {}, p, i) for i, p in enumerate(pairs)], disable_tqdm=True)
    for (lp, _), (ref, _) in zip(got, want, strict=True):
        assert lp == pytest.approx(ref, rel=0.02, abs=0.05)
    cfg = ServeConfig(model=str(templated_gguf), backend="gguf", served_name="t", port=0,
                      api_key_env="VINAFORGE_TEST_NO_KEY")  # fmt: skip
    with ServerThread(build_app(cfg), cfg) as s:
        client = openai.OpenAI(base_url=s.url + "/v1", api_key="unused", max_retries=0, timeout=60)
        chat = client.chat.completions.create(model="t", messages=[{"role": "user", "content": "Xin chào"}],
                                              max_tokens=4, temperature=0, logprobs=True, top_logprobs=1)  # fmt: skip
        for t in chat.choices[0].logprobs.content:
            assert t.logprob <= 0 and len(t.top_logprobs) == 1

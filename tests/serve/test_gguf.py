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

"""A real tiny model (random weights) on the real Mistral-v0.1 tokenizer, for generation tests."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    from vinaforge.chat import apply_chat_template
    from vinaforge.model.tiny import build_tiny_model, save_model
    from vinaforge.tokenizer.resolve import resolve_tokenizer

    tok = resolve_tokenizer("mistral-v0.1")
    apply_chat_template(tok, "mistral")
    model = build_tiny_model("mistral", vocab_size=len(tok), layers=2, hidden=64, heads=4,
                             bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, seed=0)  # fmt: skip
    out = tmp_path_factory.mktemp("tiny_chat")
    save_model(model, tok, out)
    return out


@pytest.fixture(scope="session")
def backend(tiny_dir):
    from vinaforge.generate import load_backend

    return load_backend(str(tiny_dir))

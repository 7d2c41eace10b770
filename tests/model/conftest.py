"""Fixtures for the model tests: the real Mistral-v0.1 tokenizer, a real extension of it, tiny models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_CORPUS = REPO / "examples" / "corpus" / "vi_docs.jsonl"


@pytest.fixture(scope="session")
def vi_texts() -> list[str]:
    """Vietnamese example documents we wrote ourselves (shipped in the repo)."""
    from vinaforge.io import iter_texts

    texts = list(iter_texts(EXAMPLE_CORPUS))
    assert len(texts) >= 20
    return texts


@pytest.fixture(scope="session")
def base_tok_dir(tmp_path_factory) -> Path:
    """Mistral-7B-v0.1's tokenizer (from the mistral-common package), saved as a HF folder."""
    from vinaforge.tokenizer.resolve import resolve_tokenizer

    out = tmp_path_factory.mktemp("mistral_tok")
    resolve_tokenizer("mistral-v0.1").save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def base_tok(base_tok_dir):
    from vinaforge.model.load import load_tokenizer

    return load_tokenizer(str(base_tok_dir))


@pytest.fixture(scope="session")
def ext_tok_dir(tmp_path_factory, vi_texts) -> Path:
    """Mistral-v0.1 extended (real BPE merges) with 300 tokens learnt from the example corpus.

    Not padded by the tokenizer (multiple of 1), so the model side's padding rows get exercised.
    """
    from vinaforge.tokenizer.testing import extended_mistral

    return extended_mistral(tmp_path_factory.mktemp("mistral_ext"), vi_texts, 300, pad_to_multiple_of=1)


@pytest.fixture(scope="session")
def ext_tok(ext_tok_dir):
    from vinaforge.model.load import load_tokenizer

    return load_tokenizer(str(ext_tok_dir))


@pytest.fixture
def make_tiny(base_tok):
    """Build a tiny random Mistral model on the base tokenizer's vocabulary."""
    from vinaforge.model.tiny import build_tiny_model

    def make(tie: bool = False, hidden: int = 64, layers: int = 2, seed: int = 0, arch: str = "mistral"):
        return build_tiny_model(
            arch,
            vocab_size=len(base_tok),
            layers=layers,
            hidden=hidden,
            heads=4,
            tie_word_embeddings=tie,
            bos_token_id=base_tok.bos_token_id,
            eos_token_id=base_tok.eos_token_id,
            seed=seed,
        )

    return make


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared 2-core machine two threads
    thrash: measured 0.57 s vs 3-4 s per training step of the tiny model under load."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

"""Fixtures for the tokenizer tests: our own example texts, and tokenizers built once per session.

The base tokenizer of the small tests is Mistral-7B-v0.1's, shipped in the ``mistral-common``
package (no network); the real-data tests (``test_tokenizer_real_data.py``) read
``../shared/data`` and skip without it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[2]
VI_DOCS = REPO / "examples" / "corpus" / "vi_docs.jsonl"
EN_DOCS = REPO / "examples" / "corpus" / "en_docs.jsonl"


def _lines(path: Path) -> list[str]:
    from vinaforge.io import iter_texts

    return [line.strip() for doc in iter_texts(path) for line in doc.split("\n") if line.strip()]


@pytest.fixture(scope="session")
def vi_lines() -> list[str]:
    """Lines of the Vietnamese example documents (text we wrote ourselves)."""
    lines = _lines(VI_DOCS)
    assert len(lines) > 100
    return lines


@pytest.fixture(scope="session")
def en_lines() -> list[str]:
    return _lines(EN_DOCS)


@pytest.fixture(scope="session")
def mistral_model_file() -> Path:
    from vinaforge.tokenizer.resolve import packaged_path

    return packaged_path("mistral-v0.1")


@pytest.fixture(scope="session")
def base_tok():
    from vinaforge.tokenizer.resolve import resolve_tokenizer

    return resolve_tokenizer("mistral-v0.1")


@pytest.fixture(scope="session")
def ext_dir(tmp_path_factory) -> Path:
    """Mistral-v0.1 extended with 512 tokens learnt from the example corpus."""
    from vinaforge.io import iter_texts
    from vinaforge.tokenizer.testing import extended_mistral

    texts = list(iter_texts(VI_DOCS))
    return extended_mistral(tmp_path_factory.mktemp("ext"), texts, max_new_tokens=512, pad_to_multiple_of=128)


@pytest.fixture(scope="session")
def ext_tok(ext_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(ext_dir))


@pytest.fixture(scope="session")
def ext_record(ext_dir) -> dict:
    from vinaforge.tokenizer.extend import read_extension

    return read_extension(ext_dir)


@pytest.fixture(scope="session")
def byte_bpe_dir(tmp_path_factory) -> Path:
    """A small byte-level BPE (GPT-2 style) trained on our English example texts."""
    from vinaforge.tokenizer.train import TrainSettings, train_tokenizer

    out = tmp_path_factory.mktemp("bbpe") / "tok"
    settings = TrainSettings(backend="tokenizers", model_type="bpe", vocab_size=600, normalize=None)
    train_tokenizer([EN_DOCS], out, settings, progress=False)
    return out

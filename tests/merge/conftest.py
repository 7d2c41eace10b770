"""Fixtures for the merge tests: a family of tiny real models (base, instruct, extended-vocabulary vi)."""

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
def vi_sentence() -> str:
    return "Hôm nay trời đẹp quá, chúng tôi đi học ở trường đại học Việt Nam và gặp nhiều người bạn mới."


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads on a shared 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


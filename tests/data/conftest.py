"""Fixtures of the curation tests."""

from __future__ import annotations

import os

import pytest

from .helpers import EXAMPLES, read_jsonl

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def example_docs() -> list[dict]:
    """Vietnamese example documents shipped in the repository (written for the project)."""
    return read_jsonl(EXAMPLES / "vi_docs.jsonl")

"""Fixtures for the evaluation tests: a tiny real model, known-answer scorers, benchmark files.

The tiny model is a real, randomly initialised Mistral (2 layers, hidden 64) with the real
Mistral-v0.1 tokenizer shipped in ``mistral-common``. The known-answer scorers are lm-eval
``LM`` subclasses that answer every choice by a rule on the document (the gold answer, or a fixed
letter): they drive the whole scoring path of ``vinaforge.eval`` without a model's noise.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "benchmarks"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 2-layer, hidden-64 random Mistral with the Mistral-v0.1 tokenizer, as a HF folder."""
    from vinaforge.model.tiny import save_model, tiny_model_for
    from vinaforge.tokenizer.resolve import resolve_tokenizer

    root = tmp_path_factory.mktemp("tiny_eval")
    tok = resolve_tokenizer("mistral-v0.1")
    model = tiny_model_for(
        tok, "mistral", layers=2, hidden=64, heads=4, kv_heads=2, max_position=2048, seed=0
    )
    return save_model(model, tok, root / "model")


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """Small benchmark files in each public format, written by us (tests/eval/fixtures)."""
    return FIXTURES


@pytest.fixture(scope="session")
def benchmarks_dir(shared_data) -> Path:
    path = shared_data / "benchmarks"
    if not (path / "vmlu" / "dev.jsonl").is_file():
        pytest.skip(f"{path} has no VMLU files")
    return path


def known_answer_lm(score):
    """An lm-eval LM whose log-likelihood for choice ``idx`` of ``doc`` is ``score(doc, idx)``."""
    from lm_eval.api.model import LM

    class KnownAnswerLM(LM):
        def loglikelihood(self, requests, disable_tqdm: bool = False):
            return [(float(score(req.doc, req.idx)), False) for req in requests]

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
            return [0.0 for _ in requests]

        def generate_until(self, requests, disable_tqdm: bool = False):
            return ["" for _ in requests]

    return KnownAnswerLM()


def gold_score(doc: dict, idx: int) -> float:
    """0 for a true answer, -1e4 for a false one (``labels`` for TruthfulQA, else ``gold``)."""
    if "labels" in doc:
        return 0.0 if doc["labels"][idx] == 1 else -1e4
    return 0.0 if idx == doc["gold"] else -1e4


@pytest.fixture
def known_answer():
    """Factory: ``known_answer(score)`` is an LM scoring choice ``idx`` of ``doc`` as ``score(doc, idx)``."""
    return known_answer_lm


@pytest.fixture
def oracle_lm():
    return known_answer_lm(gold_score)


@pytest.fixture
def fixed_choice_lm():
    """Always prefers choice ``k`` (letter A for k=0); returns a factory."""
    return lambda k: known_answer_lm(lambda doc, idx: 0.0 if idx == k else -1e4)

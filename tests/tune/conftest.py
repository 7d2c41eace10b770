"""Tiny fixtures for the tune tests: a small byte-level BPE tokenizer learnt from our example
data (a 32k vocabulary would make every CPU step 30x slower) and a 2-layer Llama on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def example_texts() -> list[str]:
    texts = []
    for path in sorted((REPO / "examples" / "instruct").glob("*.jsonl")) + sorted(
        (REPO / "vinaforge" / "tune" / "resources").glob("*.jsonl")
    ):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                texts.append(json.dumps(json.loads(line), ensure_ascii=False))
    return texts


def small_tokenizer(vocab_size: int = 1200):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(example_texts() + ["### Câu hỏi:\n### Trả lời:"], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>")


def build_tiny(out: Path, *, hidden: int = 64, seed: int = 0) -> Path:
    from vinaforge.model.tiny import save_model, tiny_model_for

    tok = small_tokenizer()
    model = tiny_model_for(tok, "llama", layers=2, hidden=hidden, heads=4, seed=seed)
    save_model(model, tok, out)
    return out


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("tune") / "tiny")

"""Training Vietnamese tokenizers with sentencepiece and HF tokenizers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sentencepiece as spm
from transformers import AutoTokenizer

from vinaforge.tokenizer.resolve import TokenizerError
from vinaforge.tokenizer.train import TrainSettings, train_tokenizer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "corpus"
VI_DOCS = EXAMPLES / "vi_docs.jsonl"


@pytest.mark.parametrize(
    "backend, model_type",
    [
        ("sentencepiece", "bpe"),
        ("sentencepiece", "unigram"),
        ("tokenizers", "bpe"),
        ("tokenizers", "unigram"),
    ],
)
def test_train_backends(tmp_path, vi_lines, backend, model_type):
    out = tmp_path / "tok"
    settings = TrainSettings(backend=backend, model_type=model_type, vocab_size=500, sample_bytes=60_000)
    rec = train_tokenizer([VI_DOCS], out, settings, progress=False)
    assert rec["vocab_size"] == 500
    assert rec["corpus_sample"]["bytes_read"] <= 80_000  # the sample cap was honoured
    assert json.loads((out / "vinaforge_train.json").read_text())["settings"]["backend"] == backend
    tok = AutoTokenizer.from_pretrained(str(out))
    ids = tok(vi_lines, add_special_tokens=False)["input_ids"]
    assert [tok.decode(x) for x in ids] == vi_lines
    if backend == "sentencepiece":  # the fast tokenizer.json reproduces the SentencePiece model
        sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
        assert ids == sp.encode(vi_lines)
    # digits are split one by one
    assert all(
        len(tok.decode([i]).strip()) <= 1 for i in tok("năm 2024", add_special_tokens=False).input_ids[-4:]
    )


def test_options_of_the_other_backend_are_refused(tmp_path):
    with pytest.raises(TokenizerError, match="min_frequency"):
        train_tokenizer([VI_DOCS], tmp_path / "a", TrainSettings(min_frequency=3), progress=False)
    with pytest.raises(TokenizerError, match="character_coverage"):
        train_tokenizer(
            [VI_DOCS],
            tmp_path / "b",
            TrainSettings(backend="tokenizers", character_coverage=0.99),
            progress=False,
        )


def test_empty_corpus(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(TokenizerError, match="empty"):
        train_tokenizer([empty], tmp_path / "o", TrainSettings(vocab_size=500), progress=False)
    assert not (tmp_path / "o").exists()

"""Fixtures for the training tests: a small real BPE tokenizer and tiny real models, built on the fly.

The tokenizer is a byte-level BPE trained with the ``tokenizers`` library on the Vietnamese example
documents we wrote ourselves (examples/corpus); the models are transformers' Mistral architecture
with random weights (``vinaforge.model.tiny``). Both are small so that a training step takes
milliseconds on a CPU.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_CORPUS = REPO / "examples" / "corpus" / "vi_docs.jsonl"


def train_bpe_tokenizer(texts: list[str], out_dir: Path, vocab_size: int = 768):
    """A byte-level BPE tokenizer (<s>, </s>, <pad>) trained on ``texts``, saved as a HF folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    fast.save_pretrained(out_dir)
    return fast


def save_tiny_model(tokenizer, out_dir: Path, hidden: int = 64, layers: int = 2, seed: int = 0) -> Path:
    from vinaforge.model.tiny import build_tiny_model, save_model

    model = build_tiny_model(
        "mistral",
        vocab_size=len(tokenizer),
        layers=layers,
        hidden=hidden,
        heads=4,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        seed=seed,
    )
    save_model(model, tokenizer, out_dir)
    return out_dir


@pytest.fixture(scope="session")
def vi_texts() -> list[str]:
    from vinaforge.io import iter_texts

    return list(iter_texts(EXAMPLE_CORPUS))


@pytest.fixture(scope="session")
def tok_dir(tmp_path_factory, vi_texts) -> Path:
    out = tmp_path_factory.mktemp("bpe_tok")
    train_bpe_tokenizer(vi_texts, out)
    return out


@pytest.fixture(scope="session")
def tokenizer(tok_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tok_dir)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer) -> Path:
    return save_tiny_model(tokenizer, tmp_path_factory.mktemp("tiny_model") / "model")


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory, vi_texts) -> Path:
    """The example documents split into two quality tiers, as the curation stage writes them."""
    import gzip

    root = tmp_path_factory.mktemp("kept")
    for tier, docs in (("high", vi_texts[::2]), ("low", vi_texts[1::2])):
        (root / tier).mkdir()
        with gzip.open(root / tier / "00000.jsonl.gz", "wt", encoding="utf-8") as fh:
            for i, text in enumerate(docs):
                fh.write(json.dumps({"text": text, "id": f"{tier}-{i}"}, ensure_ascii=False) + "\n")
    return root


@pytest.fixture(scope="session")
def heldout_file(tmp_path_factory, vi_texts) -> Path:
    path = tmp_path_factory.mktemp("heldout") / "heldout_vi.txt"
    lines = [line for t in vi_texts[-6:] for line in t.split("\n") if line.strip()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def base_config():
    """Factory of small CptConfig dicts: two tiers, two phases, 64-token sequences."""
    return make_config


def make_config(model_dir: Path, corpus: Path, heldout: Path | None = None, **overrides) -> dict:
    """A small CptConfig dict: two tiers, two phases, 64-token sequences."""
    cfg = {
        "model": str(model_dir),
        "data": {
            "sources": {"high": {"paths": [str(corpus / "high")]}, "low": {"paths": [str(corpus / "low")]}},
            "mixture": {"high": 0.7, "low": 0.3},
        },
        "phases": [
            {"name": "warm", "trainable": "embeddings", "max_steps": 3, "lr": 3e-3, "warmup_steps": 1},
            {
                "name": "all",
                "trainable": "all",
                "max_steps": 5,
                "lr": 3e-3,
                "schedule": "wsd",
                "warmup_steps": 1,
            },
        ],
        "seq_len": 64,
        "micro_batch_size": 4,
        "grad_accum": 2,
        "eval_every": 4,
        "save_every": 2,
        "report_to": [],
        "progress": False,
        "seed": 0,
        "cpu_threads": 1,
    }
    if heldout is not None:
        cfg["heldout"] = {"paths": [str(heldout)], "max_texts": 20}
    cfg.update(overrides)
    return cfg


@pytest.fixture(scope="session")
def train_tokenizer():
    """``train_tokenizer(texts, out_dir, vocab_size)``: a byte-level BPE saved as a HF folder."""
    return train_bpe_tokenizer


@pytest.fixture(scope="session")
def make_tiny_model():
    """``make_tiny_model(tokenizer, out_dir, hidden, layers)``: a tiny random Mistral saved with its tokenizer."""
    return save_tiny_model

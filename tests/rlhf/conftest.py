"""Tiny policy/reward models and rule-labelled preference data (Vietnamese ≻ English)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    from vinaforge.chat import apply_chat_template
    from vinaforge.model.tiny import build_tiny_model, save_model
    from vinaforge.tokenizer.resolve import resolve_tokenizer

    tok = resolve_tokenizer("mistral-v0.1")
    apply_chat_template(tok, "mistral")
    model = build_tiny_model("mistral", vocab_size=len(tok), layers=2, hidden=64, heads=4,
                             bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, seed=0)  # fmt: skip
    out = tmp_path_factory.mktemp("tiny_policy")
    save_model(model, tok, out)
    return out


def parallel_pairs() -> list[dict]:
    with open(REPO / "examples" / "parallel" / "en_vi.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@pytest.fixture(scope="session")
def vi_over_en(tmp_path_factory) -> Path:
    """Preference pairs with a known rule: for a Vietnamese prompt, the Vietnamese reply wins."""
    out = tmp_path_factory.mktemp("prefs") / "vi_over_en.jsonl"
    with open(out, "w", encoding="utf-8") as fh:
        for i, p in enumerate(parallel_pairs()):
            rec = {"prompt": f"Hãy viết câu số {i} cho tôi.", "chosen": p["vi"], "rejected": p["en"]}
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return out


@pytest.fixture(scope="session")
def small_policy_dir(tmp_path_factory) -> Path:
    """A tiny random policy on a 400-piece Vietnamese SentencePiece vocabulary (fast to sample on CPU)."""
    from vinaforge.chat import apply_chat_template
    from vinaforge.model.load import load_tokenizer
    from vinaforge.model.tiny import build_tiny_model, save_model
    from vinaforge.tokenizer.train import TrainSettings, train_tokenizer

    root = tmp_path_factory.mktemp("small_policy")
    train_tokenizer([REPO / "examples" / "corpus" / "vi_docs.jsonl"], root / "tok", TrainSettings(vocab_size=400),
                    progress=False)  # fmt: skip
    tok = load_tokenizer(str(root / "tok"))
    apply_chat_template(tok, "vi_qa")
    model = build_tiny_model("mistral", vocab_size=len(tok), layers=2, hidden=64, heads=4,
                             bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, seed=0)  # fmt: skip
    save_model(model, tok, root / "policy")
    return root / "policy"


@pytest.fixture(scope="session")
def vi_prompts(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    with open(out, "w", encoding="utf-8") as fh:
        for p in parallel_pairs()[:48]:
            fh.write(json.dumps({"prompt": p["vi"]}, ensure_ascii=False) + "\n")
    return out

"""Our safety data: well-formed, split train/test, and the refusal detector agrees with it."""

from __future__ import annotations

from vinaforge.chat import read_conversations
from vinaforge.eval.safety import is_refusal
from vinaforge.tune import safety


def test_safety_sets_and_refusal_detector(tmp_path):
    harmful, benign = safety.items()
    assert len(safety.system_prompts()) == 5 and len(harmful) == 20 and len(benign) == 16
    assert {r["split"] for r in harmful + benign} == {"train", "test"}
    assert all(is_refusal(r["response"]) for r in harmful)  # every refusal reads as one
    assert not any(is_refusal(r["response"]) for r in benign)  # helpful answers do not
    assert not is_refusal("Thủ đô của Việt Nam là Hà Nội. Tôi không thể quên nơi này.")
    h, b = safety.heldout_prompts()
    train_prompts = {r["prompt"] for r in safety.items("train")[0] + safety.items("train")[1]}
    assert h and b and not (set(h) | set(b)) & train_prompts  # rates are measured on prompts never trained on


def test_safety_sft_file_is_valid_chat_data(tmp_path):
    path = safety.write_safety_sft(tmp_path / "s.jsonl")
    res = read_conversations(path)
    assert not res.rejected and len(res.kept) == 20
    assert any(c.system for c in res.kept)

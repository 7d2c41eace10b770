"""Held-out assistant loss and answer quality (``eval`` stage ``chat``), on the tiny real model."""

from __future__ import annotations

import json
import math

import pytest

from vinaforge.eval import chat_quality
from vinaforge.eval.stage import Config, evaluate

CONVS = [
    {"prompt": "Thủ đô của Việt Nam là gì?", "response": "Thủ đô của Việt Nam là Hà Nội."},
    {"prompt": "Kể tên một loại trái cây.", "response": "Xoài là một loại trái cây nhiệt đới."},
]


def test_longest_run_and_distinct_2():
    assert chat_quality.longest_run([]) == 0
    assert chat_quality.longest_run([1, 2, 2, 2, 3, 3]) == 3
    assert chat_quality.distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    assert chat_quality.distinct_n(["một hai ba", "bốn năm sáu"], 2) == 1.0
    assert chat_quality.distinct_n(["một"], 2) == 0.0


def test_answer_quality_counts_vietnamese_and_degenerate_answers(tiny_model_dir):
    from vinaforge.model.load import load_tokenizer

    tok = load_tokenizer(str(tiny_model_dir))
    answers = [
        "Hà Nội là thủ đô của nước Cộng hòa xã hội chủ nghĩa Việt Nam.",
        "và và và và và và và và",
        "The capital of Vietnam is Hanoi, a city in the north.",
    ]
    q = chat_quality.answer_quality(answers, tok, max_run=4)
    assert q["languages"] == ["vi", "vi", "en"]
    assert q["vietnamese_share"] == pytest.approx(2 / 3)
    assert q["degenerate_share"] == pytest.approx(1 / 3)
    assert q["max_run"] >= 8


def test_assistant_loss_scores_only_assistant_bytes(tiny_model_dir):
    from vinaforge.model.load import load_causal_lm, load_tokenizer

    model, tok = load_causal_lm(str(tiny_model_dir)), load_tokenizer(str(tiny_model_dir))
    convs = [[{"role": "user", "content": c["prompt"]}, {"role": "assistant", "content": c["response"]}] for c in CONVS]
    out = chat_quality.assistant_loss(model, tok, convs, "vicuna")
    assert out["n_conversations"] == 2
    reply_bytes = sum(len(c["response"].encode()) for c in CONVS)
    # the assistant span is the reply plus its end-of-turn marker, never the prompt or system text
    assert reply_bytes - 4 <= out["n_bytes"] <= reply_bytes + 16
    # a random model is near uniform over its vocabulary
    assert abs(out["loss"] - math.log(tok.vocab_size)) < 1.5
    assert out["bits_per_byte"] == pytest.approx(out["loss"] * out["n_tokens"] / math.log(2) / out["n_bytes"])


def test_last_turn_loss_scores_the_final_reply_alone(tiny_model_dir):
    """A two-turn conversation's last-turn loss equals the loss of its final reply's tokens, taken
    in context: the difference between the whole conversation's and its first turn's token sums."""
    from vinaforge.model.load import load_causal_lm, load_tokenizer

    model, tok = load_causal_lm(str(tiny_model_dir)), load_tokenizer(str(tiny_model_dir))
    first = [{"role": "user", "content": CONVS[0]["prompt"]}, {"role": "assistant", "content": CONVS[0]["response"]}]
    both = first + [{"role": "user", "content": CONVS[1]["prompt"]},
                    {"role": "assistant", "content": CONVS[1]["response"]}]  # fmt: skip
    whole = chat_quality.assistant_loss(model, tok, [both], "vicuna")
    one = chat_quality.assistant_loss(model, tok, [first], "vicuna")
    assert one["last_turn_tokens"] == one["n_tokens"] and one["last_turn_loss"] == pytest.approx(one["loss"])
    assert whole["last_turn_tokens"] == whole["n_tokens"] - one["n_tokens"] > 0
    last_sum = whole["loss"] * whole["n_tokens"] - one["loss"] * one["n_tokens"]  # same prefix, same first reply
    assert whole["last_turn_loss"] == pytest.approx(last_sum / whole["last_turn_tokens"], rel=1e-4)


def test_eval_stage_reports_named_heldout_sets_samples_and_chat(tiny_model_dir, tmp_path):
    (tmp_path / "vi.txt").write_text("Hà Nội là thủ đô của Việt Nam.\nMùa thu trời mát.\n")
    (tmp_path / "en.txt").write_text("The cat sat on the mat.\nIt rained all day.\n")
    (tmp_path / "convs.jsonl").write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in CONVS))
    (tmp_path / "prompts.jsonl").write_text(json.dumps({"prompt": "Xin chào!"}, ensure_ascii=False) + "\n")
    cfg = Config(
        model=str(tiny_model_dir),
        heldout_sets={"vi": [str(tmp_path / "vi.txt")], "en": [str(tmp_path / "en.txt")]},
        samples=["The weather today is"],
        sample_max_new_tokens=4,
        chat={"conversations": [str(tmp_path / "convs.jsonl")], "prompts": [str(tmp_path / "prompts.jsonl")],
              "answer_template": "vicuna", "max_new_tokens": 4},  # fmt: skip
        batch_size=2,
    )
    results = evaluate(cfg, tmp_path / "work", seed=0)
    assert set(results["bpb_sets"]) == {"vi", "en"}
    assert results["bpb_sets"]["vi"]["n_texts"] == 2
    assert results["samples"][0]["prompt"] == "The weather today is"
    assert results["chat"]["answers"]["n"] == 1 and results["chat"]["answers"]["template"] == "vicuna"
    assert results["chat"]["assistant_loss"]["n_conversations"] == 2
    from vinaforge.eval import report

    flat = report.flatten(results)
    assert {"held-out vi bits_per_byte", "held-out en bits_per_byte", "held-out assistant bits_per_byte",
            "answers vietnamese_share"} <= set(flat)  # fmt: skip
    md = report.results_markdown(results)
    assert "| vi |" in md and "Greedy answers to 1 held-out prompts" in md and "The weather today is" in md

"""RL on a real tiny policy: GRPO with a rule reward raises rule satisfaction on held-out prompts
with a bounded KL; RLOO and online DPO run through the same stage; bad input is refused."""

from __future__ import annotations

import json

import pytest

from vinaforge.tune.common import TrainSettings, TuneError
from vinaforge.tune.rl import Config, RewardSpec, plot_curves, train_rl

SHORT = RewardSpec(kind="length", min_syllables=1, max_syllables=2)  # "answer in at most 2 syllables"


def test_grpo_raises_rule_satisfaction_with_bounded_kl(small_policy_dir, vi_prompts, tmp_path):
    cfg = Config(model=str(small_policy_dir), mode="full", prompts=[str(vi_prompts)], rewards=[SHORT],
                 num_generations=4, max_completion_length=24, beta=0.04, eval_fraction=0.25, eval_samples=4,
                 eval_max_new_tokens=24,
                 training=TrainSettings(learning_rate=2e-2, batch_size=16, max_steps=8, threads=2, save_steps=1000))  # fmt: skip
    s = train_rl(cfg, tmp_path, seed=0)
    before, after = s["eval_before"]["length"], s["eval_after"]["length"]
    assert after > before + 0.1, (before, after)
    assert s["max_kl"] is not None and s["max_kl"] < 5.0
    history = json.loads((tmp_path / "history.json").read_text(encoding="utf-8"))
    assert plot_curves(history, tmp_path / "curves.png").is_file()
    assert (tmp_path / "final" / "config.json").is_file() and (tmp_path / "final" / "chat_template.jinja").is_file()


@pytest.mark.parametrize("algorithm", ["rloo", "online_dpo"])
def test_other_algorithms_run(algorithm, small_policy_dir, vi_prompts, tmp_path):
    cfg = Config(model=str(small_policy_dir), mode="lora", algorithm=algorithm, prompts=[str(vi_prompts)],
                 rewards=[SHORT, RewardSpec(kind="vietnamese", weight=0.5)], num_generations=2,
                 max_completion_length=8, eval_max_new_tokens=8,
                 training=TrainSettings(learning_rate=1e-3, batch_size=4, max_steps=1, threads=2, save_steps=1000))  # fmt: skip
    s = train_rl(cfg, tmp_path, seed=0)
    assert s["steps"] == 1 and "weighted_total" in s["eval_after"]


def test_empty_prompt_set(small_policy_dir, tmp_path):
    empty = tmp_path / "p.jsonl"
    empty.write_text('{"messages": [{"role": "assistant", "content": "không có câu hỏi"}]}\n', encoding="utf-8")
    cfg = Config(model=str(small_policy_dir), mode="full", prompts=[str(empty)], rewards=[SHORT])
    with pytest.raises(TuneError, match="empty prompt set"):
        train_rl(cfg, tmp_path / "out")


def test_reward_model_with_foreign_tokenizer_is_refused(small_policy_dir, tmp_path):
    from vinaforge.model.load import load_tokenizer
    from vinaforge.tokenizer.resolve import resolve_tokenizer
    from vinaforge.tune.rl import check_reward_tokenizer

    policy_tok = load_tokenizer(str(small_policy_dir))
    check_reward_tokenizer(policy_tok, resolve_tokenizer("mistral-v0.1"), "rm")  # byte fallback covers Vietnamese
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    ascii_only = Tokenizer(models.WordLevel({"[UNK]": 0, "the": 1, "a": 2}, unk_token="[UNK]"))
    ascii_only.pre_tokenizer = pre_tokenizers.Whitespace()
    foreign = PreTrainedTokenizerFast(tokenizer_object=ascii_only, unk_token="[UNK]")
    with pytest.raises(TuneError, match="maps Vietnamese text to unknown tokens"):
        check_reward_tokenizer(policy_tok, foreign, "runs/rm")

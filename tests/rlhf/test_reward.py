"""Reward model: ranked-list expansion, bad input, and ≥0.9 held-out accuracy on a known rule."""

from __future__ import annotations

import json

import pytest

from vinaforge.chat import ConversationError
from vinaforge.tune.common import TuneError
from vinaforge.tune.reward import Config, ranked_list_pairs, read_reward_data


def _write(path, recs):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), encoding="utf-8")
    return path


def test_ranked_list_expansion_pairs_ties_weights():
    rec = {"prompt": "Câu hỏi?", "replies": ["A", "B", "C", "D"], "ranks": [1, 2, 2, 3]}
    allp = ranked_list_pairs(rec)
    assert {(p.chosen, p.rejected) for p in allp} == {("A", "B"), ("A", "C"), ("A", "D"), ("B", "D"), ("C", "D")}
    adj = ranked_list_pairs(rec, pairs="adjacent")
    assert {(p.chosen, p.rejected) for p in adj} == {("A", "B"), ("A", "C"), ("B", "D"), ("C", "D")}
    half = ranked_list_pairs(rec, ties="half")
    tie = [p for p in half if p.tie]
    assert len(tie) == 1 and len(tie[0].rows()) == 2 and tie[0].rows()[0]["weight"] == 0.5
    gaps = {(p.chosen, p.rejected): p.weight for p in ranked_list_pairs(rec, weighting="rank_gap")}
    assert gaps[("A", "D")] == 2 and gaps[("A", "B")] == 1
    per = ranked_list_pairs(rec, weighting="per_prompt")
    assert sum(p.weight for p in per) == pytest.approx(1.0)
    best_first = ranked_list_pairs({"prompt": "Q?", "ranked": ["tốt", "vừa", "kém"]})
    assert [(p.chosen, p.rejected, p.gap) for p in best_first][0] == ("tốt", "vừa", 1.0)


def test_bad_rankings(tmp_path):
    with pytest.raises(ConversationError, match="at least two replies"):
        ranked_list_pairs({"prompt": "Q?", "ranked": ["một mình"]})
    with pytest.raises(ConversationError, match="every reply is tied"):
        ranked_list_pairs({"prompt": "Q?", "replies": ["a", "b"], "ranks": [1, 1]})
    cfg = Config(model=str(tmp_path), data=[str(tmp_path)])
    f = _write(tmp_path / "r.jsonl", [
        {"prompt": "Q?", "ranked": ["một mình"]},
        {"prompt": "Q?", "replies": ["x", "y"], "ranks": [1, 2]},
    ])  # fmt: skip
    data = read_reward_data([str(f)], cfg)
    assert len(data.pairs) == 1 and data.rejected[0].source.endswith(":1")
    bad = _write(tmp_path / "dup.jsonl", [
        {"prompt": "Q?", "replies": ["x", "y"], "ranks": [1, 2]},
        {"prompt": "Q?", "chosen": "y", "rejected": "x"},
    ])  # fmt: skip
    with pytest.raises(TuneError, match="inconsistent duplicate rankings.*dup.jsonl:1 and .*dup.jsonl:2"):
        read_reward_data([str(bad)], cfg)
    same_rater = _write(tmp_path / "same.jsonl", [
        {"prompt": "Q?", "replies": ["x", "y"], "ranks": [1, 2], "ranked_by": "r1"},
        {"prompt": "Q?", "replies": ["x", "y"], "ranks": [2, 1], "ranked_by": "r1"},
    ])  # fmt: skip
    with pytest.raises(TuneError, match="same.jsonl:1 and .*same.jsonl:2.*both by rater 'r1'"):
        read_reward_data([str(same_rater)], cfg)
    empty = _write(tmp_path / "empty.jsonl", [{"prompt": "Q?", "ranked": ["a"]}])
    with pytest.raises(TuneError, match="no usable pairs"):
        read_reward_data([str(empty)], cfg)


def test_raters_may_disagree(tmp_path):
    """Simulated raters (``ranked_by``) and the app's export (``rater``) each rank on their own."""
    cfg = Config(model=str(tmp_path), data=[str(tmp_path)])
    f = _write(tmp_path / "raters.jsonl", [
        {"prompt": "Q?", "replies": ["x", "y", "z"], "ranks": [1, 2, 3], "ranked_by": "simulated-rater-0"},
        {"prompt": "Q?", "replies": ["y", "x", "z"], "ranks": [1, 2, 3], "ranked_by": "simulated-rater-1"},
        {"prompt": "Q?", "replies": ["x", "y", "z"], "ranks": [1, 2, 3], "ranked_by": "simulated-rater-2"},
        {"prompt": "P?", "chosen": "a", "rejected": "b", "rater": "u1"},
        {"prompt": "P?", "chosen": "b", "rejected": "a", "rater": "u2"},
    ])  # fmt: skip
    data = read_reward_data([str(f)], cfg)
    assert len(data.pairs) == 3 * 3 + 2 and not data.rejected
    assert data.rater_disagreements == 2  # (x, y) of Q? and (a, b) of P?
    xy = [p.chosen for p in data.pairs if {p.chosen, p.rejected} == {"x", "y"}]
    assert sorted(xy) == ["x", "x", "y"]  # the majority still wins two votes to one


def test_reward_model_learns_vietnamese_over_english(tiny_dir, vi_over_en, tmp_path):
    from vinaforge.generate.reward import RewardModel
    from vinaforge.tune.common import TrainSettings
    from vinaforge.tune.reward import train_reward

    cfg = Config(model=str(tiny_dir), data=[str(vi_over_en)], mode="full", eval_fraction=0.25,
                 training=TrainSettings(learning_rate=1e-3, epochs=4, batch_size=8, threads=2))  # fmt: skip
    summary = train_reward(cfg, tmp_path, seed=0)
    ev = summary["eval"]
    assert ev["pairs"] == summary["eval_pairs"] >= 15
    assert ev["accuracy"] >= 0.9, ev
    assert ev["calibration"] and 0 <= ev["ece"] <= 1
    rm = RewardModel(str(tmp_path / "final"))
    vi, en = rm.score([
        [{"role": "user", "content": "Bạn khỏe không?"}, {"role": "assistant", "content": "Tôi khỏe, cảm ơn bạn nhiều."}],
        [{"role": "user", "content": "Bạn khỏe không?"}, {"role": "assistant", "content": "I am fine, thank you very much."}],
    ])  # fmt: skip
    assert vi > en


def test_eval_data_holds_out_its_own_pairs(tiny_dir, vi_over_en, tmp_path):
    """With ``eval_data``, every pair of ``data`` trains and the held-out pairs are exactly those
    of ``eval_data`` (unseen prompts), counted and measured before and after training."""
    from vinaforge.tune.common import TrainSettings
    from vinaforge.tune.reward import train_reward

    held = _write(tmp_path / "held.jsonl", [{"prompt": f"Câu hỏi mới {i}?", "chosen": "Đây là câu trả lời đúng.",
                                             "rejected": "This is an answer."} for i in range(5)]
                  + [{"prompt": "x", "chosen": "một", "rejected": "một"}])  # fmt: skip
    n_train = sum(1 for _ in open(vi_over_en, encoding="utf-8"))
    cfg = Config(model=str(tiny_dir), data=[str(vi_over_en)], eval_data=[str(held)], mode="full",
                 training=TrainSettings(max_steps=1, batch_size=8, threads=2))  # fmt: skip
    summary = train_reward(cfg, tmp_path / "out", seed=0)
    assert summary["eval_source"] == "eval_data"
    assert (summary["train_pairs"], summary["eval_pairs"]) == (n_train, 5)
    assert summary["eval_before"]["pairs"] == summary["eval"]["pairs"] == 5
    assert summary["records_in"] == n_train + 6 and summary["rejected"] == 1  # identical replies, kept with a reason


def test_nan_reward_is_a_clear_error(tiny_dir):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from vinaforge.generate.reward import RewardError, RewardModel

    model = AutoModelForSequenceClassification.from_pretrained(tiny_dir, num_labels=1)
    with torch.no_grad():
        model.score.weight.fill_(float("nan"))
    rm = RewardModel(model, AutoTokenizer.from_pretrained(tiny_dir))
    with pytest.raises(RewardError, match="NaN"):
        rm.score([[{"role": "user", "content": "Chào"}, {"role": "assistant", "content": "Chào bạn"}]])


def test_a_causal_lm_is_refused_as_a_reward_model(tiny_dir):
    from vinaforge.generate.reward import RewardError, RewardModel
    from vinaforge.tune.self_preference import JudgeConfig, make_scorer

    with pytest.raises(RewardError, match="not a reward model"):
        RewardModel(str(tiny_dir))
    with pytest.raises(RewardError, match="not a reward model"):
        make_scorer(JudgeConfig(kind="reward_model", reward_model=str(tiny_dir)), policy=None)

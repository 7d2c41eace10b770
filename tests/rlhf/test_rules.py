"""Rule rewards of the rl stage on real Vietnamese/English text, and their bad-input checks."""

from __future__ import annotations

import math

import pytest

from vinaforge.tune.rl import (
    Config,
    RewardSpec,
    citation_score,
    length_score,
    make_reward_funcs,
    vietnamese_score,
)


def test_vietnamese_score_separates_languages():
    vi = vietnamese_score("Hôm nay trời đẹp, chúng tôi đi dạo quanh hồ Hoàn Kiếm.")
    en = vietnamese_score("Today the weather is nice, we walk around the lake.")
    assert vi > 0.9 and en < 0.4
    assert vietnamese_score("!!! ...") == 0.0


def test_length_band_and_citations():
    assert length_score("một hai ba bốn năm", 3, 10) == 1.0
    assert 0 < length_score("một", 3, 10) < 1
    assert length_score(" ".join(["từ"] * 20), 3, 10) < length_score(" ".join(["từ"] * 12), 3, 10)
    prompt = "Câu hỏi: ai?\nĐoạn 0: Nguyễn Du viết Truyện Kiều.\nĐoạn 1: Hà Nội là thủ đô."
    assert citation_score(prompt, "Nguyễn Du [đoạn 0].") == 1.0
    assert citation_score(prompt, "Theo [đoạn 0] và [đoạn 5].") == 0.5
    assert citation_score(prompt, "Nguyễn Du.") == 0.0
    assert citation_score(prompt, "Thật tiếc, câu hỏi của bạn Vivi không biết.") == 1.0


def test_weighted_funcs_and_nan_guard():
    funcs, weights = make_reward_funcs([RewardSpec(kind="vietnamese", weight=2.0), RewardSpec(kind="length")])
    assert [f.__name__ for f in funcs] == ["vietnamese", "length"] and weights == [2.0, 1.0]
    vals = funcs[0](["q"], [[{"role": "assistant", "content": "Xin chào các bạn"}]])
    assert len(vals) == 1 and math.isfinite(vals[0])


def test_config_errors(tmp_path):
    with pytest.raises(ValueError, match="needs `model:`"):
        RewardSpec(kind="model")
    with pytest.raises(ValueError, match="min_syllables must not exceed"):
        RewardSpec(kind="length", min_syllables=10, max_syllables=5)
    with pytest.raises(ValueError):
        Config(model=str(tmp_path), prompts=[str(tmp_path)], rewards=[])


def test_rules_reward_ranks_a_looping_reply_below_a_fluent_one():
    (fn,), _ = make_reward_funcs([RewardSpec(kind="rules")])
    fluent, looping = fn(["q", "q"], [[{"role": "assistant", "content": "Hà Nội là thủ đô của Việt Nam."}],
                                       [{"role": "assistant", "content": "và và và và và và"}]])  # fmt: skip
    assert fn.__name__ == "rules" and fluent == 1.0 and looping < 0.5

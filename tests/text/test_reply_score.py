"""The rule score that ranks replies offline: Vietnamese, not looping, not empty."""

from __future__ import annotations

from vinaforge.text.reply_score import bigram_diversity, reply_score


def test_fluent_vietnamese_beats_loops_english_and_empty():
    good = reply_score("Hà Nội là thủ đô của Việt Nam.")
    looping = reply_score("Việt Nam là một nước. Việt Nam là một nước. Việt Nam là một nước.")
    stutter = reply_score("và và và và và và")
    english = reply_score("Hanoi is the capital of Vietnam.")
    assert good == 1.0
    assert good > looping > stutter > 0.0
    assert english < 0.3 and reply_score("") == 0.0 and reply_score("   ") == 0.0


def test_short_replies_are_scaled_down():
    assert reply_score("Vâng.") < reply_score("Vâng, tôi hiểu rồi ạ.")


def test_bigram_diversity():
    assert bigram_diversity("một") == 1.0
    assert bigram_diversity("a b a b a b") == 2 / 5

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


def test_a_character_loop_inside_one_word_is_a_loop():
    # what SFT + self-preference DPO learned from this judge before the character-loop factor:
    # "Một có" + 45 zeros scored 0.75, against 0.17 for a stutter of words
    digit_loop = reply_score("Một có 100000000000000000000000000000000000000000000")
    assert digit_loop < reply_score("và và và và và và") < reply_score("Năm 2000 có 1000000 người dự.")
    assert reply_score("Năm 2000 có 1000000 người dự.") == 1.0  # a number of 7 characters is no loop

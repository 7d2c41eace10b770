"""Normalization: tone-mark styles, NFC, invisible characters, whitespace, punctuation."""

from __future__ import annotations

import gzip
import itertools
import json
import unicodedata

import pytest

from vinaforge.text.normalize import (
    NormalizeConfig,
    fix_punctuation,
    fix_whitespace,
    normalize_text,
    place_tone,
    strip_invisible,
    unify_tone_marks,
)

OLD_NEW = [
    ("hòa", "hoà"),
    ("thúy", "thuý"),
    ("khỏe", "khoẻ"),
    ("Hòa Bình", "Hoà Bình"),
    ("HÒA", "HOÀ"),
    ("THỦY", "THUỶ"),
    ("xõa", "xoã"),
    ("lòe xòe", "loè xoè"),
    ("ngùy", "nguỳ"),
]
SAME_IN_BOTH = [
    "hoàng",  # final consonant: the mark is on the last vowel in both styles
    "toán",
    "khoét",
    "quý",  # the u of qu belongs to the onset
    "quá",
    "quyết",
    "già",  # the i of gi belongs to the onset
    "giữ",
    "gìn",
    "người",  # shaped vowels take the mark
    "được",
    "thuở",
    "khuỷu",  # three vowels: the middle one
    "ngoài",
    "khuya",
    "múa",  # ua without qu: first vowel
    "kìa",
    "Việt Nam",
]


@pytest.mark.parametrize(("old", "new"), OLD_NEW)
def test_old_and_new_styles(old: str, new: str) -> None:
    assert unify_tone_marks(old, "new") == new
    assert unify_tone_marks(new, "old") == old
    assert unify_tone_marks(old, "old") == old
    assert unify_tone_marks(new, "new") == new
    assert unify_tone_marks(new, "keep") == new


@pytest.mark.parametrize("word", SAME_IN_BOTH)
def test_words_where_styles_agree(word: str) -> None:
    assert unify_tone_marks(word, "old") == word
    assert unify_tone_marks(word, "new") == word


@pytest.mark.parametrize(
    ("wrong", "right"),
    [("tơì", "tời"), ("ngừơi", "người"), ("qúa", "quá"), ("gìa", "già"), ("mưà", "mừa"), ("QÚA", "QUÁ")],
)
def test_misplaced_marks_are_fixed(wrong: str, right: str) -> None:
    assert unify_tone_marks(wrong, "old") == right
    assert unify_tone_marks(wrong, "new") == right


def test_place_tone_leaves_non_syllables_alone() -> None:
    assert place_tone("Hoà_Bình", "old") == "Hoà_Bình"  # two tone marks: not one syllable
    assert place_tone("abc", "old") == "abc"
    assert unify_tone_marks("hoà.", "old") == "hòa."
    assert unify_tone_marks("(thuý)", "old") == "(thúy)"


def test_nfc_of_decomposed_input() -> None:
    decomposed = unicodedata.normalize("NFD", "Tiếng Việt có dấu")
    assert decomposed != "Tiếng Việt có dấu"
    assert normalize_text(decomposed) == "Tiếng Việt có dấu"


def test_invisible_and_control_characters_are_removed() -> None:
    assert strip_invisible("Hà\u200bNội\ufeff\u00ad\x00\x07") == "HàNội"
    assert strip_invisible("a\tb\nc") == "a\tb\nc"
    assert strip_invisible("👨\u200d👩") == "👨\u200d👩"  # ZWJ kept for emoji


def test_whitespace() -> None:
    assert fix_whitespace("a \u00a0 b\t c  \r\n\r\n\r\n\r\nd  ") == "a b c\n\nd"
    assert fix_whitespace("a\u2028b\u3000c") == "a\nb c"
    assert fix_whitespace("clean text\nsecond line") == "clean text\nsecond line"
    # indentation is kept (code in instruction data), trailing spaces go
    assert fix_whitespace("def f():\n    return  1  \n\tpass\t") == "def f():\n    return 1\n\tpass"


def test_punctuation_variants() -> None:
    assert fix_punctuation("“Xin chào” – ‘bạn’ — ok…") == "\"Xin chào\" - 'bạn' - ok..."
    assert fix_punctuation("ＡＢＣ！１２３") == "ABC!123"
    assert fix_punctuation("«Paris»") == '"Paris"'


def test_config_switches() -> None:
    text = "  “Hoà”  "
    assert normalize_text(text, NormalizeConfig(tone_style="keep", fix_whitespace=False)) == '  "Hoà"  '
    assert normalize_text(text, NormalizeConfig(fix_punctuation=False)) == "  “Hòa”"
    assert normalize_text("") == ""
    with pytest.raises(ValueError):
        NormalizeConfig(tone_style="modern")


SAMPLES = [
    "Thủ tướng  yêu cầu “khẩn trương” hoàn thành…\n\n\n\nHoà bình, khoẻ mạnh, QUÝ khách.",
    "Tr\u00adêng §¹i häc B¸ch khoa",  # TCVN3 mojibake
    "Vie^.t Nam ddu+o+.c tho^'ng nha^'t",  # VIQR
    "中文 và tiếng Việt \u200b mixed\x00",
    "",
]


@pytest.mark.parametrize("style", ["old", "new", "keep"])
@pytest.mark.parametrize("text", SAMPLES)
def test_idempotent(text: str, style: str) -> None:
    cfg = NormalizeConfig(tone_style=style)
    once = normalize_text(text, cfg)
    assert normalize_text(once, cfg) == once


@pytest.mark.shared_data
def test_viet74k_old_new_old_round_trip(shared_data) -> None:
    """old -> new -> old gives back every entry written in the old style, and
    old(new(x)) == old(x) for the entries written in the new style."""
    entries = [
        line.rstrip("\n")
        for line in (shared_data / "lexicons" / "Viet74K.txt").open(encoding="utf-8")
        if line.strip()
    ]
    assert len(entries) > 70_000
    new_style = 0
    for entry in entries:
        old = unify_tone_marks(entry, "old")
        new = unify_tone_marks(entry, "new")
        assert unify_tone_marks(new, "old") == old, entry
        assert unify_tone_marks(old, "new") == new, entry
        if old == entry:
            assert unify_tone_marks(new, "old") == entry
        else:
            new_style += 1
    # the lexicon mixes styles: about 2% of its entries are written in the new style
    assert new_style < 0.05 * len(entries)


@pytest.mark.shared_data
def test_idempotent_on_news_corpus(shared_data) -> None:
    path = shared_data / "vi_text" / "news_baomoi_magizbox.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        docs = [json.loads(line)["text"] for line in itertools.islice(fh, 400)]
    for style in ("old", "new"):
        cfg = NormalizeConfig(tone_style=style)
        for doc in docs:
            once = normalize_text(doc, cfg)
            assert normalize_text(once, cfg) == once
            assert unicodedata.is_normalized("NFC", once)

"""Sentence splitting, word segmentation (pyvi) and text statistics."""

from __future__ import annotations

import pytest

from vinaforge.text.sentences import split_sentences
from vinaforge.text.stats import TextStats, doc_stats, text_stats
from vinaforge.text.wordseg import WordSegmenterUnavailable, available_backends, segment_words


def test_sentences_keep_abbreviations_and_numbers_together() -> None:
    text = (
        'TP. Hồ Chí Minh có hơn 9.000.000 dân. PGS. TS. Nguyễn Văn A nói: "Tỷ lệ là 3,5%!" '
        "Ông Trần V. B. đồng ý? Có… Giá vàng tăng 1.5 lần.\nDòng mới không có dấu chấm"
    )
    assert split_sentences(text) == [
        "TP. Hồ Chí Minh có hơn 9.000.000 dân.",
        'PGS. TS. Nguyễn Văn A nói: "Tỷ lệ là 3,5%!"',
        "Ông Trần V. B. đồng ý?",
        "Có…",
        "Giá vàng tăng 1.5 lần.",
        "Dòng mới không có dấu chấm",
    ]


def test_sentences_edge_cases() -> None:
    assert split_sentences("") == []
    assert split_sentences("   \n\n ") == []
    assert split_sentences("Xin chào. tôi là An.") == ["Xin chào. tôi là An."]  # no capital: one sentence
    assert split_sentences("Hết rồi!!! Thật sao?") == ["Hết rồi!!!", "Thật sao?"]


def test_word_segmentation_with_pyvi() -> None:
    if "pyvi" not in available_backends():
        pytest.skip("pyvi is not installed")
    words = segment_words("Hà Nội là thủ đô của Việt Nam")
    assert words == ["Hà_Nội", "là", "thủ_đô", "của", "Việt_Nam"]
    assert segment_words("   ") == []


def test_word_segmentation_backend_errors() -> None:
    with pytest.raises(ValueError, match="unknown word segmentation backend"):
        segment_words("xin chào", backend="vncorenlp")  # type: ignore[arg-type]
    if "underthesea" not in available_backends():
        with pytest.raises(WordSegmenterUnavailable, match="pip install underthesea"):
            segment_words("xin chào", backend="underthesea")


def test_doc_and_total_stats() -> None:
    d = doc_stats("Xin chào Việt Nam 2024")
    assert (d.chars, d.syllables, d.countable_syllables, d.valid_syllables) == (22, 5, 4, 4)
    assert d.language == "vi" and d.valid_ratio == 1.0 and d.diacritic_ratio == 0.5
    total = text_stats(["Xin chào Việt Nam", "The weather is nice today in London", ""])
    out = total.to_dict()
    assert out["docs"] == 3 and out["empty_docs"] == 1
    assert out["languages"] == {"en": 1, "other": 1, "vi": 1}
    assert sum(out["language_shares"].values()) == pytest.approx(1.0, abs=1e-3)
    assert out["utf8_bytes"] > out["chars"]
    merged = TextStats().merge(total).merge(total)
    assert merged.docs == 6 and merged.valid_syllables == 2 * total.valid_syllables


def test_stats_without_langid_and_on_mixed_scripts() -> None:
    st = text_stats(["Tiếng Việt và 中文 trộn lẫn"], langid=False)
    out = st.to_dict()
    assert out["languages"] == {} and out["language_shares"] == {}
    assert 0.5 < out["valid_syllable_ratio"] < 1.0

"""Unit tests of the syllable measures and the filters, on texts we wrote."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
from datatrove.data import Document

from vinaforge.data import filters as F
from vinaforge.data.config import (
    FineWebQualityConfig,
    FlaggedWordsConfig,
    GopherQualityConfig,
    GopherRepetitionConfig,
    InputCheckConfig,
    LanguageConfig,
)
from vinaforge.data.textstats import dup_ngram_char_frac, ngram_keys, tokens_of, top_ngram_char_frac

VI = (
    "Hà Nội là thủ đô của nước Cộng hòa xã hội chủ nghĩa Việt Nam. Thành phố nằm bên bờ sông Hồng, "
    "có lịch sử hơn một nghìn năm. Người dân ở đây rất thân thiện và mến khách.\n"
    "Mùa thu Hà Nội được nhiều du khách yêu thích vì thời tiết mát mẻ, trời trong xanh. "
    "Các món ăn như phở, bún chả và cốm làng Vòng đã trở thành đặc sản nổi tiếng.\n"
    "Ngoài ra, thành phố còn có nhiều di tích như Văn Miếu, Hoàng thành Thăng Long và Hồ Gươm, "
    "thu hút hàng triệu lượt khách mỗi năm."
)
EN = (
    "The committee met on Tuesday to review the budget for the coming year. Members agreed that "
    "spending on public transport should increase, and that the new bus lines would be tested in "
    "two districts before the end of the summer. A final vote is expected next month."
)


def doc(text: str, **md) -> Document:
    return Document(text=text, id="t", metadata=dict(md))


def naive_dup_frac(words: list[str], n: int, text_len: int) -> float:
    grams = [tuple(w.lower() for w in words[i : i + n]) for i in range(len(words) - n + 1)]
    seen, covered = set(), [False] * len(words)
    for i, g in enumerate(grams):
        if g in seen:
            for k in range(i, i + n):
                covered[k] = True
        seen.add(g)
    return sum(len(w) for w, c in zip(words, covered, strict=True) if c) / text_len


def naive_top_frac(words: list[str], n: int, text_len: int) -> float:
    grams = Counter(tuple(w.lower() for w in words[i : i + n]) for i in range(len(words) - n + 1))
    c = max(grams.values())
    longest = max(len(" ".join(g)) for g, k in grams.items() if k == c)
    return 0.0 if c < 2 else longest * c / text_len


def test_ngram_measures_match_a_naive_implementation():
    rng = random.Random(3)
    vocab = "một hai ba bốn năm sáu bảy tám chín mười Hà Nội".split()
    for _ in range(30):
        words = [rng.choice(vocab) for _ in range(rng.randrange(20, 120))]
        text = " ".join(words)
        tok = tokens_of(text)
        for n in (2, 3, 5, 7):
            assert dup_ngram_char_frac(tok, n, len(text)) == pytest.approx(
                naive_dup_frac(tok.words, n, len(text))
            )
            assert top_ngram_char_frac(tok, n, len(text)) == pytest.approx(
                naive_top_frac(tok.words, n, len(text))
            )


def test_ngram_keys_equal_iff_ngrams_equal():
    tok = tokens_of("a b c a b c d a b c a b x y a b")
    for n in (1, 2, 3, 4):
        keys = ngram_keys(tok.ids, n).tolist()
        grams = [tuple(tok.lower[i : i + n]) for i in range(len(tok.lower) - n + 1)]
        for i in range(len(keys)):
            for j in range(len(keys)):
                assert (keys[i] == keys[j]) == (grams[i] == grams[j])


def test_dup_fraction_never_grows_with_n():
    tok = tokens_of(VI + "\n" + VI[:200])
    values = [dup_ngram_char_frac(tok, n, len(VI) + 201) for n in range(3, 15)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_input_check():
    f = F.InputCheckFilter(InputCheckConfig(max_chars=1000))
    assert f.check(doc(VI)) is None
    assert f.check(doc("   \n ")) == ("empty", 5)
    assert f.check(doc("x" * 1001))[0] == "too_long"
    assert f.check(doc(VI, bad_char_ratio=0.3)) == ("not_text", 0.3)
    assert f.check(doc("{bad json", read_error="malformed_json", read_error_value="x")) == (
        "malformed_json",
        "x",
    )


def test_language_filter_labels_english_and_keeps_vietnamese_with_english_terms():
    f = F.LanguageFilter(LanguageConfig())
    d = doc(EN)
    assert f.check(d) is None and d.metadata["language"] == "en"
    mixed = doc(
        "Công ty vừa ra mắt smartphone mới hỗ trợ 5G, camera AI và sạc nhanh USB-C. Theo CEO của hãng, "
        "sản phẩm được thiết kế cho người dùng trẻ thích chơi game và livestream trên TikTok, Facebook."
    )
    assert f.check(mixed) is None and mixed.metadata["language"] == "vi"
    only_vi = F.LanguageFilter(LanguageConfig(keep={"vi": 0.5}))
    assert only_vi.check(doc(EN))[0] == "language_en"
    strict = F.LanguageFilter(LanguageConfig(keep={"vi": 0.5, "en": 1.01 - 0.01}))
    res = strict.check(doc("Hello there friend"))
    assert res is None or res[0].startswith(("low_confidence_en", "language_"))


def test_gopher_repetition_rejects_repeated_lines_and_ngrams():
    f = F.GopherRepetitionFilter(GopherRepetitionConfig())
    assert f.check(doc(VI)) is None
    spam = "\n".join(["Mua ngay! Giảm giá 50% cho mọi sản phẩm."] * 10 + [VI])
    assert f.check(doc(spam))[0] in ("dup_line_frac", "dup_line_char_frac")
    words = "giày thể thao giá rẻ " * 40
    assert f.check(doc(words))[0].startswith(("top_", "duplicated_"))


def test_gopher_repetition_windows_long_documents():
    # a long text whose repeats are far apart: whole-document measure is high, windows are not
    rng = random.Random(1)
    vocab = [w for w in set(tokens_of(VI).lower) if w.isalpha()]
    parts = [" ".join(rng.choice(vocab) for _ in range(400)) for _ in range(6)]
    text = ". ".join(parts + parts[:3])
    whole = F.GopherRepetitionFilter(GopherRepetitionConfig(window_syllables=None)).check(doc(text))
    windowed = F.GopherRepetitionFilter(GopherRepetitionConfig(window_syllables=1000)).check(doc(text))
    assert whole is not None and whole[0].startswith("duplicated_")
    assert windowed is None


def test_gopher_quality_rules():
    f = F.GopherQualityFilter(GopherQualityConfig())
    assert f.check(doc(VI, language="vi")) is None
    assert f.check(doc("Xin chào các bạn.", language="vi")) == ("gopher_short_doc", 4)
    numbers = " ".join(str(i) for i in range(200)) + " " + VI
    assert f.check(doc(numbers, language="vi"))[0] == "gopher_below_alpha_threshold"
    no_stop = " ".join(["thủ đô sông Hồng phở bún chả cốm Văn Miếu"] * 10)
    assert f.check(doc(no_stop, language="vi"))[0] == "gopher_enough_stop_words"
    assert f.check(doc(EN + " " + EN, language="en")) is None  # English stopwords for English
    bullets = "\n".join(f"- mục số {i} trong danh sách của chúng tôi và các bạn" for i in range(30))
    assert f.check(doc(bullets, language="vi"))[0] == "gopher_too_many_bullets"


def test_fineweb_quality_rules():
    f = F.FineWebQualityFilter(FineWebQualityConfig())
    assert f.check(doc(VI)) is None
    menu = "\n".join(["Trang chủ", "Tin tức", "Thể thao", "Giải trí", "Liên hệ"] * 3) + "\n" + VI
    assert f.check(doc(menu))[0] in ("line_punct_ratio", "char_dup_ratio", "list_ratio")


def test_flagged_words_threshold():
    f = F.FlaggedWordsFilter(FlaggedWordsConfig())
    spam = "Nhà cái uy tín, soi kèo chuẩn, nổ hũ đổi thưởng, tài xỉu online, casino trực tuyến. " * 3
    assert f.check(doc(spam, language="vi"))[0] == "flagged_words"
    news = VI + " Công an vừa triệt phá một đường dây cá độ bóng đá qua mạng với nhà cái nước ngoài."
    assert f.check(doc(news, language="vi")) is None  # a mention in a news story stays
    assert f.flagged_ratio("vãi cả lồn".split()) == 1.0  # the longest phrase wins, counted once


def test_stopword_list_is_ours_and_loaded():
    stops = F.stop_words_for(GopherQualityConfig(), "vi")
    assert {"là", "và", "của", "những"} <= stops
    assert "năm" not in stops
    custom = F.stop_words_for(GopherQualityConfig(stop_words={"vi": ["Xin"]}), "vi")
    assert custom == frozenset({"xin"})


def test_funnel_filter_counts_add_up():
    f = F.GopherQualityFilter(GopherQualityConfig())
    docs = [doc(VI, language="vi"), doc("Ngắn quá.", language="vi"), doc(VI + " " + VI, language="vi")]
    kept = list(f.run(iter(docs)))
    assert len(kept) == 2
    stats = {k: v.total for k, v in f.stats.stats.items()}
    for m in ("docs", "chars", "syllables"):
        assert stats[f"in_{m}"] == stats[f"kept_{m}"] + stats[f"rejected_{m}"]
    assert docs[1].metadata["reason"] == "gopher_short_doc" and docs[1].metadata["value"] == 2
    assert np.isclose(stats["in_chars"], sum(len(d.text) for d in docs))

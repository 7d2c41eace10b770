"""Legacy encodings: our own TCVN3, VNI and VIQR tables, round trips and detection."""

from __future__ import annotations

import gzip
import itertools
import json
import shutil
import subprocess

import pytest

from vinaforge.text._letters import LOWER_LETTERS, UPPER_LETTERS
from vinaforge.text.legacy import (
    ENCODINGS,
    convert_legacy,
    decode_legacy,
    detect_legacy,
    encode_legacy,
    encode_legacy_bytes,
)
from vinaforge.text.normalize import fix_punctuation, normalize_text

ALL_LETTERS = "".join(LOWER_LETTERS + UPPER_LETTERS)
SENTENCE = "Trường Đại học Bách khoa Hà Nội tổ chức lễ khai giảng năm học mới cho sinh viên."


def test_known_mojibake_decodes() -> None:
    # how these documents look when a legacy file is opened as Windows-1252 / Latin-1
    assert decode_legacy("Tr\u00adêng §¹i häc B¸ch khoa Hµ Néi", "tcvn3") == "Trường Đại học Bách khoa Hà Nội"
    assert decode_legacy("Tieáng Vieät", "vni") == "Tiếng Việt"
    assert decode_legacy("ngöôøi ñöôïc", "vni") == "người được"
    assert decode_legacy("VIEÄT NAM", "vni") == "VIỆT NAM"
    assert decode_legacy("Vie^.t Nam ddu+o+.c", "viqr") == "Việt Nam được"
    assert decode_legacy("DDi dda^u\\?", "viqr") == "Đi đâu?"


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_letter_round_trips(encoding: str) -> None:
    encoded = encode_legacy(ALL_LETTERS, encoding)
    assert decode_legacy(encoded, encoding) == ALL_LETTERS
    assert decode_legacy(encode_legacy(SENTENCE, encoding), encoding) == SENTENCE


@pytest.mark.parametrize("encoding", ["tcvn3", "vni"])
def test_bytes_round_trip(encoding: str) -> None:
    raw = encode_legacy_bytes(SENTENCE, encoding)
    assert all(b < 0x80 or b >= 0x80 for b in raw) and isinstance(raw, bytes)
    assert decode_legacy(raw, encoding) == SENTENCE


def test_tcvn3_agrees_with_glibc_iconv() -> None:
    iconv = shutil.which("iconv")
    if iconv is None:
        pytest.skip("iconv is not installed")
    raw = encode_legacy_bytes(ALL_LETTERS + " " + SENTENCE, "tcvn3")
    out = subprocess.run(
        [iconv, "-f", "TCVN5712-1", "-t", "UTF-8"], input=raw, capture_output=True, check=False
    )
    if out.returncode != 0:
        pytest.skip("this iconv has no TCVN5712-1")
    assert out.stdout.decode("utf-8") == ALL_LETTERS + " " + SENTENCE


def test_viqr_escapes_literal_marks() -> None:
    tricky = "Đi đâu? Hà Nội. add dd \\ a^ C++ e.g. I'm (a) â."
    encoded = encode_legacy(tricky, "viqr")
    assert encoded.isascii()
    assert decode_legacy(encoded, "viqr") == tricky


def test_unrepresentable_characters() -> None:
    with pytest.raises(ValueError, match="offset 1"):
        encode_legacy("x«y", "tcvn3")
    assert encode_legacy("Müller", "vni", errors="replace") == "M?ller"
    with pytest.raises(ValueError, match="unknown legacy encoding"):
        decode_legacy("abc", "utf-7")


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_detection_finds_each_encoding(encoding: str) -> None:
    encoded = encode_legacy(SENTENCE, encoding)
    assert detect_legacy(encoded) == encoding
    assert convert_legacy(encoded, "auto") == SENTENCE
    assert normalize_text(encoded) == SENTENCE


@pytest.mark.parametrize(
    "text",
    [
        SENTENCE,
        "Hoà bình và khoẻ mạnh, «Paris» © 2020, 30°C, £5.",
        "I'm sure you're right: e.g. the C++ code (a) is fine.",
        "Der Müller aß Würstchen in München, ça va très bien.",
        "Liên kết DDE (chỉ dưới Windows)",
        "Aïn Témouchent",
        "  %s (len=%u+%u):",
        "The club currently owes £423m .",
        "It should cost $ 72,000 ( $ 20 × 3,600 ) .",
        "中文 và tiếng Việt",
        "",
    ],
)
def test_detection_leaves_ordinary_text_alone(text: str) -> None:
    assert detect_legacy(text) is None
    assert convert_legacy(text, "auto") == text


def _corpus_docs(shared_data, n: int) -> list[str]:
    path = shared_data / "vi_text" / "news_baomoi_magizbox.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line in itertools.islice(fh, n)]


@pytest.mark.shared_data
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_corpus_text_round_trips_exactly(shared_data, encoding: str) -> None:
    """News articles encoded with our tables convert back exactly (and are detected).

    Curly quotes have no TCVN3 code (their cp1252 bytes are capitals there), so punctuation is
    unified first; articles holding other characters the encoding lacks (ü, ö in foreign
    names) are counted, not silently passed.
    """
    docs = [fix_punctuation(d) for d in _corpus_docs(shared_data, 300)]
    checked = unrepresentable = detected = 0
    for doc in docs:
        try:
            encoded = encode_legacy(doc, encoding)
        except ValueError:
            unrepresentable += 1
            continue
        assert decode_legacy(encoded, encoding) == doc
        checked += 1
        detected += detect_legacy(encoded) == encoding
    assert unrepresentable <= 0.02 * len(docs)
    assert detected >= 0.98 * checked


@pytest.mark.shared_data
def test_no_false_detection_on_real_unicode_text(shared_data) -> None:
    docs = _corpus_docs(shared_data, 1000)
    with gzip.open(shared_data / "parallel" / "evbnews_v1_en_vi.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in itertools.islice(fh, 3000):
            rec = json.loads(line)
            docs += [rec["en"], rec["vi"]]
    assert [d for d in docs if detect_legacy(d)] == []

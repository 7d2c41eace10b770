"""Legacy Vietnamese encodings: TCVN3 (ABC), VNI-Windows and VIQR, with detection.

Hand-written: Python has no codec for any of them (glibc's iconv knows TCVN 5712 but not VNI
or VIQR, and is not reachable from pure Python). The tables are our own and are checked by
round-trip tests on corpus text; the TCVN3 table agrees byte for byte with glibc's
``TCVN5712-1``.

How each arrives in a Unicode corpus, and what this module decodes:

- **TCVN3 / ABC** (TCVN 5712:1993, the VN3 font table plus the VN1 capitals): one byte per
  letter, so the text shows up as Latin-1/cp1252 mojibake, e.g. ``Tr­êng §¹i häc`` for
  "Trường Đại học". Both the Latin-1 and the cp1252 reading of bytes 0x80-0x9F decode.
  Documents typed with an ABC *capitals* font (.VnTimeH) store capitals as the lowercase codes;
  no decoder can recover that case. Bytes 0xB0-0xB4 (decomposed tone marks, unused by ABC
  fonts) are left alone because they collide with the common ``°`` sign.
- **VNI-Windows**: a base letter followed by a mark byte, shown as cp1252, e.g. ``Vieät Nam``.
- **VIQR** (RFC 1456): ASCII marks after the vowel, ``Vie^.t Nam``; ``dd`` is đ and a backslash
  escapes a literal mark (``\\.``).

Encoders write the same form that decoding accepts (a ``str``; for the byte encodings its
Latin-1 view), so ``decode_legacy(encode_legacy(t, e), e) == t`` for any text whose characters
the encoding can represent; others raise ``ValueError`` (``errors="strict"``) or become ``?``.
"""

from __future__ import annotations

import re
from typing import Literal

from vinaforge.text._letters import SPLIT, TONED, VOWELS

LegacyEncoding = Literal["tcvn3", "vni", "viqr"]
ENCODINGS: tuple[str, ...] = ("tcvn3", "vni", "viqr")

# ---------------------------------------------------------------------------------------------
# TCVN3: byte -> letter. Rows of 16 bytes from 0x80; "." marks a byte we do not decode.
# ---------------------------------------------------------------------------------------------
_TCVN3_HIGH = (
    "ÀẢÃÁẠẶẬÈẺẼÉẸỆÌỈĨ"  # 0x80
    "ÍỊÒỎÕÓỌỘỜỞỠỚỢÙỦŨ"  # 0x90
    ".ĂÂÊÔƠƯĐăâêôơưđẰ"  # 0xA0
    ".....àảãáạẲằẳẵắẴ"  # 0xB0
    "ẮẦẨẪẤỀặầẩẫấậèỂẻẽ"  # 0xC0
    "éẹềểễếệìỉỄẾỒĩíịò"  # 0xD0
    "Ổỏõóọồổỗốộờởỡớợù"  # 0xE0
    "ỖủũúụừửữứựỳỷỹýỵỐ"  # 0xF0
)
_TCVN3_LOW = {0x01: "Ú", 0x02: "Ụ", 0x04: "Ừ", 0x05: "Ử", 0x06: "Ữ", 0x11: "Ứ", 0x12: "Ự",
              0x13: "Ỳ", 0x14: "Ỷ", 0x15: "Ỹ", 0x16: "Ý", 0x17: "Ỵ"}  # fmt: skip


def _tcvn3_tables() -> tuple[dict[int, str], dict[str, str]]:
    byte_to_letter: dict[int, str] = dict(_TCVN3_LOW)
    for i, ch in enumerate(_TCVN3_HIGH):
        if ch != ".":
            byte_to_letter[0x80 + i] = ch
    decode: dict[int, str] = {}
    encode: dict[str, str] = {}
    for byte, letter in byte_to_letter.items():
        decode[byte] = letter  # Latin-1 view of the byte
        if 0x80 <= byte <= 0x9F:
            try:
                decode[ord(bytes([byte]).decode("cp1252"))] = letter  # cp1252 view
            except UnicodeDecodeError:
                pass
        encode[letter] = chr(byte)
    return decode, encode


_TCVN3_DECODE, _TCVN3_ENCODE = _tcvn3_tables()
_TCVN3_CODE_CHARS = frozenset(chr(c) for c in _TCVN3_DECODE)
assert len(_TCVN3_ENCODE) == 134, len(_TCVN3_ENCODE)

# ---------------------------------------------------------------------------------------------
# VNI-Windows: letter = base + mark byte (shown as cp1252), a few letters are one byte.
# ---------------------------------------------------------------------------------------------
# Tone bytes (lower, upper) for huyền, sắc, hỏi, ngã, nặng.
_VNI_TONES = ("øùûõï", "ØÙÛÕÏ")
# Circumflex + tone (â ấ ầ ẩ ẫ ậ in tone order ngang, huyền, sắc, hỏi, ngã, nặng).
_VNI_HAT = ("âàáåãä", "ÂÀÁÅÃÄ")
_VNI_BREVE = ("êèéúüë", "ÊÈÉÚÜË")
# Single-byte letters: i with tones, ỵ, ơ, ư, đ.
_VNI_SINGLE = {
    "ì": "ì", "í": "í", "ỉ": "æ", "ĩ": "ó", "ị": "ò", "ỵ": "î", "ơ": "ô", "ư": "ö", "đ": "ñ",
    "Ì": "Ì", "Í": "Í", "Ỉ": "Æ", "Ĩ": "Ó", "Ị": "Ò", "Ỵ": "Î", "Ơ": "Ô", "Ư": "Ö", "Đ": "Ñ",
}  # fmt: skip


def _vni_tables() -> tuple[dict[str, str], dict[str, str]]:
    encode: dict[str, str] = dict(_VNI_SINGLE)
    for case, upper in ((0, False), (1, True)):
        for base in VOWELS:
            for tone in range(6):
                letter = TONED[(base.upper() if upper else base, tone)]
                if letter in _VNI_SINGLE:
                    continue
                if base in "âêô":
                    seq = _ascii_base(base, upper) + _VNI_HAT[case][tone]
                elif base == "ă":
                    seq = _ascii_base(base, upper) + _VNI_BREVE[case][tone]
                elif tone:
                    head = _VNI_SINGLE.get(TONED[(base.upper() if upper else base, 0)], letter[0])
                    if base not in "ơư":
                        head = _ascii_base(base, upper)
                    seq = head + _VNI_TONES[case][tone - 1]
                else:
                    continue  # a plain ASCII vowel is itself
                encode[letter] = seq
    decode = {seq: letter for letter, seq in encode.items()}
    # Mark bytes are also accepted in the other case (title-case VNI text exists).
    for seq, letter in list(decode.items()):
        if len(seq) == 2:
            mark = seq[1]
            decode.setdefault(seq[0] + (mark.lower() if mark.isupper() else mark.upper()), letter)
    return decode, encode


def _ascii_base(base: str, upper: bool) -> str:
    plain = {"â": "a", "ă": "a", "ê": "e", "ô": "o"}.get(base, base)
    return plain.upper() if upper else plain


_VNI_DECODE, _VNI_ENCODE = _vni_tables()
_VNI_DECODE_RE = re.compile("|".join(re.escape(s) for s in sorted(_VNI_DECODE, key=len, reverse=True)))
#: Characters used as VNI codes: such a character in the input cannot be represented.
_VNI_CODE_CHARS = frozenset(c for seq in _VNI_DECODE for c in seq if not c.isascii())

# ---------------------------------------------------------------------------------------------
# VIQR (RFC 1456)
# ---------------------------------------------------------------------------------------------
_VIQR_TONES = "`'?~."  # huyền, sắc, hỏi, ngã, nặng
_VIQR_SHAPE = {"ă": "a(", "â": "a^", "ê": "e^", "ô": "o^", "ơ": "o+", "ư": "u+"}
_VIQR_ESCAPABLE = "\\'`?~.^(+dD"
_VIQR_DECODE_RE = re.compile(
    r"\\(?P<esc>[\\'`?~.^(+dD])"
    r"|(?P<v>[aA][\^(]|[eE]\^|[oO][\^+]|[uU]\+|[aAeEiIoOuUyY])(?P<t>['`?~.])"
    r"|(?P<s>[aA][\^(]|[eE]\^|[oO][\^+]|[uU]\+)"
    r"|(?P<dd>[dD][dD])"
)
_VIQR_FROM_SHAPE = {v: k for k, v in _VIQR_SHAPE.items()}


def _viqr_letter(seq: str, tone_char: str | None) -> str:
    base_ascii = seq[0]
    up = base_ascii.isupper()
    base = _VIQR_FROM_SHAPE[base_ascii.lower() + seq[1]] if len(seq) == 2 else base_ascii.lower()
    tone = _VIQR_TONES.index(tone_char) + 1 if tone_char else 0
    return TONED[(base.upper() if up else base, tone)]


def _viqr_decode_match(m: re.Match[str]) -> str:
    if m.group("esc") is not None:
        return m.group("esc")
    if m.group("v") is not None:
        return _viqr_letter(m.group("v"), m.group("t"))
    if m.group("s") is not None:
        return _viqr_letter(m.group("s"), None)
    return "Đ" if m.group("dd")[0] == "D" else "đ"


def _viqr_encode(text: str, errors: str) -> str:
    out: list[str] = []
    n = len(text)
    for i, ch in enumerate(text):
        info = SPLIT.get(ch)
        if info is not None and not ch.isascii():
            base, tone = info
            low = base.lower()
            seq = _VIQR_SHAPE.get(low, low)
            if base.isupper():
                seq = seq[0].upper() + seq[1:]
            out.append(seq + (_VIQR_TONES[tone - 1] if tone else ""))
        elif ch == "đ" or ch == "Đ":
            out.append("dd" if ch == "đ" else "DD")
        elif ch == "\\":
            out.append("\\\\")
        elif ch in _VIQR_ESCAPABLE and out and out[-1] and out[-1][-1] in "aeiouyAEIOUY^(+":
            out.append("\\" + ch)
        elif ch in "dD" and i + 1 < n and text[i + 1] in "dDđĐ":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def _check_encoding(encoding: str) -> None:
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown legacy encoding {encoding!r}; expected one of {', '.join(ENCODINGS)}")


def decode_legacy(text: str | bytes, encoding: str) -> str:
    """Convert legacy-encoded text (mojibake ``str`` or raw ``bytes``) to Unicode (NFC)."""
    _check_encoding(encoding)
    if isinstance(text, bytes):
        text = text.decode("ascii" if encoding == "viqr" else "latin-1", errors="replace")
    if encoding == "tcvn3":
        return text.translate(_TCVN3_DECODE)
    if encoding == "vni":
        return _VNI_DECODE_RE.sub(lambda m: _VNI_DECODE[m.group()], text)
    return _VIQR_DECODE_RE.sub(_viqr_decode_match, text)


def encode_legacy(text: str, encoding: str, errors: Literal["strict", "replace"] = "strict") -> str:
    """Encode Unicode ``text`` with our own tables; the inverse of :func:`decode_legacy`.

    Returns the form a legacy document takes in a Unicode corpus (Latin-1 view of the bytes
    for TCVN3/VNI, ASCII for VIQR). A character the encoding cannot hold without changing its
    meaning on decoding raises ``ValueError`` naming it and its offset, or becomes ``?`` with
    ``errors="replace"``.
    """
    _check_encoding(encoding)
    if encoding == "viqr":
        return _viqr_encode(text, errors)
    table, clashes = (
        (_TCVN3_ENCODE, _TCVN3_CODE_CHARS) if encoding == "tcvn3" else (_VNI_ENCODE, _VNI_CODE_CHARS)
    )
    out: list[str] = []
    for i, ch in enumerate(text):
        code = table.get(ch)
        if code is not None:
            out.append(code)
        elif ch in clashes:
            if errors == "strict":
                raise ValueError(f"character {ch!r} at offset {i} cannot be represented in {encoding}")
            out.append("?")
        else:
            out.append(ch)
    return "".join(out)


def encode_legacy_bytes(text: str, encoding: str, errors: Literal["strict", "replace"] = "strict") -> bytes:
    """Encode to the bytes a legacy file holds (characters beyond one byte become ``?``)."""
    return encode_legacy(text, encoding, errors).encode(
        "ascii" if encoding == "viqr" else "latin-1", errors="replace"
    )


# ---------------------------------------------------------------------------------------------
# Detection
# ---------------------------------------------------------------------------------------------
# Characters that only a legacy encoding puts in Vietnamese text (never a Unicode Vietnamese
# letter). Their presence only *suggests* an encoding: the decision compares the share of
# valid Vietnamese syllables before and after decoding.
_VI_LETTERS = frozenset("".join(SPLIT) + "đĐ")
_TCVN3_TELLS = "".join(
    sorted(chr(c) for c in _TCVN3_DECODE if 0xA1 <= c <= 0xFF and chr(c) not in _VI_LETTERS)
)
_VNI_TELLS = "".join(sorted(c for c in _VNI_CODE_CHARS if c not in _VI_LETTERS))
_TELLS_RE = {
    "tcvn3": re.compile(f"[{re.escape(_TCVN3_TELLS)}]"),
    "vni": re.compile(f"[{re.escape(_VNI_TELLS)}]"),
    # shape marks right after their vowel (rare characters first: the scan stays fast)
    "viqr": re.compile(r"(?=[\^(+])(?:(?<=[aAeEoO])\^|(?<=[aA])\(|(?<=[oOuU])\+)"),
}
# One fast scan for any of them decides whether the detailed look is needed at all.
_ANY_TELL_RE = re.compile(f"[{re.escape(_TCVN3_TELLS + _VNI_TELLS)}^]")
_VIQR_PAIRS = ("a(", "A(", "o+", "O+", "u+", "U+")
_VIQR_DD_RE = re.compile(r"\b(?:dd|DD|Dd)[aeiouyAEIOUY]")
_MIN_GAIN = 0.15
_MIN_AFTER = 0.3
_MIN_WORDS = 2
_MIN_MARKED_WORDS = 3
#: Detection looks at this many leading characters (a legacy file is legacy throughout).
DETECT_SAMPLE_CHARS = 20_000
_WORD_RE = re.compile(r"[^\W\d_]+")
# Letters only Unicode Vietnamese has (ă ơ ư đ ĩ ũ and U+1EA0-U+1EF9): never in legacy text.
_UNICODE_VI_RE = re.compile("[ăĂơƠưƯđĐĩĨũŨ\u1ea0-\u1ef9]")


def _vietnamese_words(text: str) -> tuple[int, int, int, set[str]]:
    """``(valid syllables, valid ones with a diacritic, letter runs, distinct valid ones)``.

    Fragments count as words on purpose: legacy text splits words into fragments
    (``Vie^.t`` -> ``Vie``, ``t``) that must count as misses.
    """
    from vinaforge.text.validate import is_valid_syllable

    words = _WORD_RE.findall(text)
    valid = [w for w in words if is_valid_syllable(w)]
    marked = sum(1 for w in valid if not w.isascii())
    return len(valid), marked, len(words), {w.lower() for w in valid}


def detect_legacy(text: str) -> str | None:
    """The legacy encoding ``text`` is written in (``"tcvn3"``, ``"vni"``, ``"viqr"``) or ``None``.

    Characters or sequences typical of an encoding only make it a suspect. It is reported when
    decoding raises, by at least 15 points, the share of words that are valid Vietnamese
    syllables, or the share of valid syllables with diacritics when at least three distinct
    words gain one (news about cars or films is full of English names: the first share alone
    moves little there); decoding must turn at least two distinct words into valid syllables
    and leave at least 30% of the words valid. A line holding a single legacy word is thus
    left alone (name the encoding to convert it). Text that already holds letters only Unicode Vietnamese has (ơ, ư, ạ ...) is
    not legacy. So ordinary Vietnamese, English, German or French text with a stray ``«``,
    ``ö``, ``DDE`` or ``I'm`` is left alone. Looks at the first 20,000 characters.
    """
    sample = text[:DETECT_SAMPLE_CHARS]
    has_dd = "dd" in sample or "DD" in sample or "Dd" in sample
    if not has_dd and _ANY_TELL_RE.search(sample) is None and not any(p in sample for p in _VIQR_PAIRS):
        return None
    suspects = [(enc, len(rx.findall(sample))) for enc, rx in _TELLS_RE.items()]
    if has_dd:
        suspects[-1] = ("viqr", suspects[-1][1] + len(_VIQR_DD_RE.findall(sample)))
    unicode_letters = len(_UNICODE_VI_RE.findall(sample))
    valid, marked, total, known = _vietnamese_words(sample)
    before = (valid / total, marked / total) if total else (0.0, 0.0)
    best, best_gain = None, _MIN_GAIN
    for enc, hits in suspects:
        if not hits or unicode_letters * 5 > hits:
            continue
        new_valid, new_marked, new_total, new_known = _vietnamese_words(decode_legacy(sample, enc))
        gained = new_known - known  # distinct words that decoding made Vietnamese
        if not new_total or len(gained) < _MIN_WORDS or new_valid / new_total < _MIN_AFTER:
            continue
        gain = new_valid / new_total - before[0]
        if sum(1 for w in gained if not w.isascii()) >= _MIN_MARKED_WORDS:
            gain = max(gain, new_marked / new_total - before[1])
        if gain >= best_gain:
            best, best_gain = enc, gain
    return best


def convert_legacy(text: str, choice: str = "auto") -> str:
    """Decode ``text`` from ``choice`` (an encoding, ``auto`` to detect, ``none`` to keep)."""
    if choice == "none":
        return text
    if choice == "auto":
        found = detect_legacy(text)
        return decode_legacy(text, found) if found else text
    return decode_legacy(text, choice)

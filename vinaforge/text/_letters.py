"""Vietnamese letter tables shared by normalization, validation and legacy encodings.

Hand-written: these are facts of Vietnamese orthography (12 vowel letters x 6 tones, the
special consonant đ), which no maintained library exposes as data. Everything is built once at
import from ``unicodedata`` so the tables cannot drift from Unicode.
"""

from __future__ import annotations

import unicodedata

#: Base vowel letters (no tone mark), lowercase.
VOWELS = "aăâeêioôơuưy"
#: Tone marks as combining characters, indexed by tone number (0 = ngang, no mark).
TONE_MARKS = ("", "\u0300", "\u0301", "\u0309", "\u0303", "\u0323")
#: Tone names, same index as TONE_MARKS.
TONE_NAMES = ("ngang", "huyen", "sac", "hoi", "nga", "nang")
SAC, NANG = 2, 5


def _compose(base: str, tone: int) -> str:
    return unicodedata.normalize("NFC", base + TONE_MARKS[tone])


#: (base vowel, tone) -> precomposed letter, both cases.
TONED: dict[tuple[str, int], str] = {}
#: any vowel letter (toned or not, both cases) -> (base vowel in the same case, tone)
SPLIT: dict[str, tuple[str, int]] = {}
for _base in VOWELS + VOWELS.upper():
    for _tone in range(6):
        _ch = _compose(_base, _tone)
        assert len(_ch) == 1, (_base, _tone)
        TONED[(_base, _tone)] = _ch
        SPLIT[_ch] = (_base, _tone)

#: Every vowel letter of Vietnamese, toned or not, both cases.
ALL_VOWEL_CHARS = "".join(SPLIT)
#: Vowel letters that carry a tone mark.
TONED_VOWEL_CHARS = "".join(ch for ch, (_, t) in SPLIT.items() if t)
#: Letters that only Vietnamese (among Latin-script languages we meet) writes this way:
#: everything non-ASCII in the alphabet, i.e. đ, the shaped vowels and all toned vowels.
VIETNAMESE_NON_ASCII = "".join(sorted({ch for ch in ALL_VOWEL_CHARS + "đĐ" if not ch.isascii()}))

#: Vowel letters carrying a shape mark (circumflex, breve, horn).
SHAPED_VOWELS = "ăâêôơư"

#: The 12 lowercase bases with their 6 tones: handy for tests and encoders.
LOWER_LETTERS = [TONED[(b, t)] for b in VOWELS for t in range(6)] + ["đ"]
UPPER_LETTERS = [TONED[(b.upper(), t)] for b in VOWELS for t in range(6)] + ["Đ"]


def split_tone(word: str) -> tuple[str, int, int]:
    """``(word without tone mark, tone, index of the toned letter or -1)``.

    Raises ``ValueError`` when the word carries more than one tone mark: such a word is not a
    single Vietnamese syllable and callers leave it alone.
    """
    tone, pos = 0, -1
    chars = list(word)
    for i, ch in enumerate(chars):
        info = SPLIT.get(ch)
        if info is not None and info[1]:
            if tone:
                raise ValueError(f"more than one tone mark in {word!r}")
            tone, pos = info[1], i
            chars[i] = info[0]
    return "".join(chars), tone, pos

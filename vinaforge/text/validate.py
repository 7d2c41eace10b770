"""Is this a Vietnamese syllable? Phonotactic validation, and Vietnamese-ness ratios of a text.

Hand-written: no maintained library checks Vietnamese syllable structure. A syllable is valid
when it splits into an onset (one of the 27 written initials, or none), a rhyme from the closed
inventory of Vietnamese rhymes, and one tone, with the spelling and tone rules of the
orthography:

- ``k``, ``gh``, ``ngh`` before e, ê, i, y; ``c``, ``g``, ``ng`` elsewhere; ``q`` only as ``qu``;
- rhymes ending in a stop (p, t, c, ch) carry only the sắc or nặng tone;
- at most one tone mark; its position inside the vowel group is not judged (both the ``old``
  and ``new`` placements are valid Vietnamese, see :mod:`vinaforge.text.normalize`).

This is a structural test, not a lexicon lookup: it accepts well-formed syllables that no
dictionary lists, and rejects most English words (``that`` fails because a stop final needs a
tone; ``the`` passes because it is a Vietnamese word too).

What counts in the ratios (see :func:`is_countable`): numbers, identifiers, consonant-only
abbreviations and units (km, CSGT) and all-capital acronyms (UBND, HIV) are not syllables and
are left out of :func:`valid_syllable_ratio`'s denominator. Proper names and loanwords are
counted: a Vietnamese name is made of valid syllables; a foreign name (``James``) or an
unadapted loanword (``taxi``, ``karaoke``) is not a Vietnamese syllable and counts as invalid.
CJK and other non-Latin runs count too (as invalid), so Vietnamese mixed with Chinese scores
lower than clean Vietnamese.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator

from vinaforge.text._letters import SPLIT, VIETNAMESE_NON_ASCII
from vinaforge.text.syllables import SYLLABLE_RE

_STOP_CODAS = ("p", "t", "c", "ch")
_TONES_AFTER_STOP = (2, 5)  # sắc, nặng

_RHYME_SPEC = {
    # nucleus (with glides written as vowels): allowed codas ("" = open)
    "a": " m n ng nh p t c ch",
    "ai ao au ay âu ây eo êu ia iu oi ôi ơi ua ui ưa ưi ưu uôi ươi ươu iêu yêu": "",
    "oai oay oao oeo uây uya uyu uơ": "",
    "ă": "m n ng p t c k",  # k: Tây Nguyên place names written the local way (Đắk Lắk)
    "â": "m n ng p t c",
    "e": " m n ng p t c",
    "ê": " m n nh p t ch",
    "i": " m n nh p t ch",
    "o": " m n ng p t c",
    "ô": " m n ng p t c",
    "ơ": " m n p t",
    "u": " m n ng p t c k",  # Krông Búk
    "ư": " m ng t c",
    "y": "",
    "iê": "m n ng p t c",
    "yê": "m n ng t",
    "uô": "m n ng t c",
    "ươ": "m n ng p t c",
    "oa": " m n ng nh p t c ch",
    "oă": "m n ng t c",
    "oe": " m n t",
    "uâ": "n ng t",
    "uê": " n nh ch",
    "uy": " nh t ch",
    "uyê": "n t",
    "oo": "ng c",
}


def _build_rhymes() -> frozenset[str]:
    rhymes: set[str] = set()
    for nuclei, codas in _RHYME_SPEC.items():
        coda_list = codas.split(" ") if codas else [""]
        for nucleus in nuclei.split():
            rhymes.update(nucleus + coda for coda in coda_list)
    return frozenset(rhymes)


#: Every written Vietnamese rhyme (medial + vowel + final), toneless, lowercase.
RHYMES: frozenset[str] = _build_rhymes()
_FRONT = frozenset("eêiy")
_ONSETS = ("ngh", "ng", "nh", "ch", "gh", "gi", "kh", "ph", "qu", "th", "tr",
           "b", "c", "d", "đ", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "x", "")  # fmt: skip


def _onset_fits(onset: str, rhyme: str) -> bool:
    """Spelling rules tying an initial to the vowel after it."""
    first = rhyme[0]
    front = first in _FRONT
    if onset in ("gh", "ngh"):
        return front
    if onset == "k":
        return True  # k before a/o/u only in official place names: Bắc Kạn, Kon Tum, Đắk Lắk
    if onset in ("c", "ng"):
        return not front
    if onset == "g":
        return first not in "eê"  # g + i is the gi- initial: gì, gìn, giếng
    if onset == "qu":
        return first in "aăâeêiyơô" and not rhyme.startswith(("oa", "oe", "oă", "oo"))
    if onset == "gi":
        return first != "i"
    if rhyme.startswith("yê"):
        return onset == ""  # yên, yêu; after an initial it is written iê
    if rhyme.startswith("iê"):
        return onset != ""
    return True


def _split_tone(word: str) -> tuple[str, int] | None:
    tone = 0
    chars = []
    for ch in word:
        info = SPLIT.get(ch)
        if info is not None and info[1]:
            if tone:
                return None
            tone = info[1]
            chars.append(info[0])
        else:
            chars.append(ch)
    return "".join(chars), tone


def _check(syllable: str) -> bool:
    split = _split_tone(syllable.lower())
    if split is None:
        return False
    bare, tone = split
    for onset in _ONSETS:
        if not bare.startswith(onset):
            continue
        rhyme = bare[len(onset) :]
        if onset == "qu" and rhyme and "u" + rhyme in RHYMES:
            pass  # qu + y/ynh/ê/ân...: the u is the medial of the rhyme
        elif rhyme not in RHYMES or not _onset_fits(onset, rhyme):
            continue
        if rhyme.endswith(_STOP_CODAS) and tone not in _TONES_AFTER_STOP:
            continue
        return True
    return False


_ASCII_FOLD = str.maketrans({ch: SPLIT[ch][0] for ch in SPLIT} | {"đ": "d", "Đ": "D"})
_SHAPE_FOLD = str.maketrans("ăâêôơưĂÂÊÔƠƯ", "aaeoouAAEOOU")


def strip_marks(word: str) -> str:
    """``word`` without any Vietnamese mark: tones, shapes, đ (``Việt`` -> ``Viet``)."""
    return word.translate(_ASCII_FOLD).translate(_SHAPE_FOLD)


def _unaccented_forms() -> frozenset[str]:
    forms = set()
    for onset in _ONSETS:
        for rhyme in RHYMES:
            if _onset_fits(onset, rhyme) or (onset == "qu" and "u" + rhyme in RHYMES):
                forms.add(strip_marks(onset + rhyme))
    return frozenset(forms)


#: Every Vietnamese syllable with its marks removed ("viet", "nguoi", "duoc").
UNACCENTED_SYLLABLES: frozenset[str] = _unaccented_forms()


def is_valid_unaccented(word: str) -> bool:
    """True if ``word`` is a Vietnamese syllable once marks are ignored (typed without them)."""
    return strip_marks(word.lower()) in UNACCENTED_SYLLABLES


_MEMO: dict[str, bool] = {}
_MEMO_LIMIT = 500_000


def is_valid_syllable(s: str) -> bool:
    """True if ``s`` is a well-formed Vietnamese syllable (any case, NFC)."""
    out = _MEMO.get(s)
    if out is None:
        out = _check(s) if s and len(s) <= 8 else False
        if len(_MEMO) < _MEMO_LIMIT:
            _MEMO[s] = out
    return out


_NOT_SYLLABLE_RE = re.compile(r"[\d_]|^[b-df-hj-np-tv-zđB-DF-HJ-NP-TV-ZĐ]+$")


def is_countable(token: str) -> bool:
    """Tokens that take part in syllable ratios.

    Left out: tokens with a digit or underscore (numbers, identifiers), tokens made only of
    consonant letters (units and abbreviations: km, TP, CSGT, a lone ``g``), and all-capital
    tokens that are not valid syllables (acronyms read letter by letter: UBND, HIV, TNHH).
    """
    if _NOT_SYLLABLE_RE.search(token) is not None:
        return False
    return not (len(token) > 1 and token.isupper() and not is_valid_syllable(token))


_DIACRITIC_RE = re.compile(f"[{re.escape(VIETNAMESE_NON_ASCII)}]")
# token -> -1 (not countable) or valid (bit 0) | carries a Vietnamese diacritic (bit 1)
_TOKEN_CODE: dict[str, int] = {}


def _token_code(tok: str) -> int:
    if not is_countable(tok):
        code = -1
    else:
        code = int(is_valid_syllable(tok)) | (2 if _DIACRITIC_RE.search(tok) else 0)
    if len(_TOKEN_CODE) < _MEMO_LIMIT:
        _TOKEN_CODE[tok] = code
    return code


def syllable_profile(text: str) -> tuple[int, int, int, int]:
    """``(syllables, countable syllables, valid ones, ones with a diacritic)`` in one pass.

    The per-token work is a memo lookup done by ``map`` and ``Counter`` in C; only tokens never
    seen before go through the validator.
    """
    if len(text) > _CHUNK_CHARS:  # a 50 MB line: count it in pieces, never hold 10M tokens
        parts = [syllable_profile(chunk) for chunk in _chunks(text)]
        return tuple(map(sum, zip(*parts, strict=True)))  # type: ignore[return-value]
    tokens = SYLLABLE_RE.findall(text)
    codes = list(map(_TOKEN_CODE.get, tokens))
    if None in codes:
        codes = [_token_code(t) if c is None else c for c, t in zip(codes, tokens, strict=True)]
    by_code = Counter(codes)
    valid = by_code[1] + by_code[3]
    marked = by_code[2] + by_code[3]
    return len(tokens), len(tokens) - by_code[-1], valid, marked


_CHUNK_CHARS = 1 << 20


def _chunks(text: str) -> Iterator[str]:
    """Pieces of about ``_CHUNK_CHARS`` characters, cut at a space where there is one."""
    start, n = 0, len(text)
    while start < n:
        end = min(start + _CHUNK_CHARS, n)
        if end < n:
            space = text.rfind(" ", start, end)
            if space > start:
                end = space
        yield text[start:end]
        start = end


def syllable_counts(text: str) -> tuple[int, int]:
    """``(countable syllables, valid syllables)`` of ``text``."""
    _, countable, valid, _ = syllable_profile(text)
    return countable, valid


def valid_syllable_ratio(text: str) -> float:
    """Share of the syllables of ``text`` that are valid Vietnamese (0.0 for none)."""
    _, countable, valid, _ = syllable_profile(text)
    return valid / countable if countable else 0.0


def diacritic_counts(text: str) -> tuple[int, int]:
    """``(countable syllables, syllables with a Vietnamese diacritic or đ)``."""
    _, countable, _, marked = syllable_profile(text)
    return countable, marked


def diacritic_ratio(text: str) -> float:
    """Share of syllables carrying a Vietnamese diacritic (tone, shape mark or đ).

    Around 0.7-0.8 for Vietnamese prose, near 0 for English or Vietnamese typed without marks.
    """
    _, countable, _, marked = syllable_profile(text)
    return marked / countable if countable else 0.0

"""Vietnamese text normalization: NFC, tone-mark placement, invisible characters, whitespace,
punctuation variants and legacy encodings, in one fast pass.

Hand-written for the Vietnamese parts: no maintained library places tone marks by the
Vietnamese orthography rules (``old`` hòa/thúy/khỏe vs ``new`` hoà/thuý/khoẻ), and general
fixers such as ``ftfy`` are several times slower on Vietnamese news text (see
``bench/text_core.py``). Unicode normalization itself is the standard library's
``unicodedata``. The hot paths are C-level ``re`` scans and substring tests that skip text
needing no change; the Python code that places tone marks runs only on the few words a
candidate pattern finds (a handful per document), with a memo.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

from pydantic import BaseModel, ConfigDict

from vinaforge.text._letters import ALL_VOWEL_CHARS, SHAPED_VOWELS, SPLIT, TONED, VOWELS

ToneStyle = Literal["old", "new", "keep"]
LegacyChoice = Literal["auto", "tcvn3", "vni", "viqr", "none"]


class NormalizeConfig(BaseModel):
    """What :func:`normalize_text` does. The defaults are the project's canonical form."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tone_style: ToneStyle = "old"
    from_legacy: LegacyChoice = "auto"
    nfc: bool = True
    strip_invisible: bool = True
    fix_whitespace: bool = True
    fix_punctuation: bool = True


DEFAULT_CONFIG = NormalizeConfig()

# ---------------------------------------------------------------------------------------------
# Tone-mark placement
# ---------------------------------------------------------------------------------------------

_VOWEL_SET = frozenset(ALL_VOWEL_CHARS)
#: The open rhymes whose tone position differs between styles (old: first vowel).
_STYLE_RHYMES = frozenset({"oa", "oe", "uy"})


def tone_position(word: str, style: Literal["old", "new"]) -> int | None:
    """Index of the letter that should carry the tone mark of ``word``, or ``None``.

    ``None`` means "not a single Vietnamese syllable we can place a tone on" (several vowel
    groups, no vowel, a loanword): callers leave such words unchanged.

    Rules: the ``u`` of ``qu`` and the ``i`` of ``gi`` (before another vowel) belong to the
    onset; a shaped vowel (ă â ê ô ơ ư) takes the mark, the last one when there are two (ươ);
    otherwise with a final consonant the last vowel; three vowels the middle one; two vowels
    the first one, except the open rhymes oa, oe, uy where ``old`` picks the first and ``new``
    the second.
    """
    lower = word.lower()
    n = len(lower)
    start = 0
    while start < n and lower[start] not in _VOWEL_SET:
        start += 1
    if start == n:
        return None
    end = start
    while end < n and lower[end] in _VOWEL_SET:
        end += 1
    if any(ch in _VOWEL_SET for ch in lower[end:]):
        return None
    onset = lower[:start]
    nucleus = [SPLIT[ch][0].lower() for ch in lower[start:end]]
    if len(nucleus) > 1 and ((onset == "q" and nucleus[0] == "u") or (onset == "g" and nucleus[0] == "i")):
        start += 1
        nucleus = nucleus[1:]
    shaped = [i for i, ch in enumerate(nucleus) if ch in SHAPED_VOWELS]
    if shaped:
        return start + shaped[-1]
    size = len(nucleus)
    if end < n or size == 1:
        return start + size - 1
    if size == 2:
        if "".join(nucleus) in _STYLE_RHYMES and style == "new":
            return start + 1
        return start
    if size == 3:
        return start + 1
    return None


def place_tone(word: str, style: Literal["old", "new"]) -> str:
    """``word`` with its tone mark moved to where ``style`` puts it (unchanged if unsure)."""
    tone = 0
    pos = -1
    for i, ch in enumerate(word):
        info = SPLIT.get(ch)
        if info is not None and info[1]:
            if tone:
                return word  # two tone marks: not one syllable, leave it
            tone, pos = info[1], i
    if not tone:
        return word
    target = tone_position(word, style)
    if target is None or target == pos:
        return word
    chars = list(word)
    chars[pos] = SPLIT[chars[pos]][0]
    base = SPLIT[chars[target]][0]
    chars[target] = TONED[(base, tone)]
    return "".join(chars)


def _cls(chars: str) -> str:
    return "[" + re.escape(chars) + "]"


def _toned(bases: str) -> str:
    """All toned forms (both cases) of the given base vowels."""
    return "".join(TONED[(b, t)] + TONED[(b.upper(), t)] for b in bases for t in range(1, 6))


def _any_tone(bases: str) -> str:
    return "".join(TONED[(b, t)] + TONED[(b.upper(), t)] for b in bases for t in range(6))


_V = _cls(ALL_VOWEL_CHARS)
_SHAPED_ANY = _cls(_any_tone(SHAPED_VOWELS))
_PLAIN_TONED = _cls(_toned("aeiouy"))
_STYLE_PATTERNS = {
    # old: the mark goes on the first vowel of open oa, oe, uy (hòa, khỏe, thủy)
    "old": (
        f"(?<=[oO]){_cls(_toned('ae'))}(?!\\w)",
        f"(?<=[uU]){_cls(_toned('y'))}(?!\\w)",
    ),
    # new: on the second one (hoà, khoẻ, thuỷ)
    "new": (
        f"{_cls(_toned('o'))}(?=[aAeE](?!\\w))",
        f"{_cls(_toned('u'))}(?=[yY](?!\\w))",
    ),
}
# Marks in a non-canonical place next to a shaped vowel (tơì, mưà, ngừơi) or on the u of qu
# and the i of gi (qúa, gìa).
_MISPLACED = (
    f"{_PLAIN_TONED}(?={_SHAPED_ANY})",
    f"(?<={_SHAPED_ANY}){_PLAIN_TONED}",
    f"{_cls(_toned('ư'))}(?=[ơƠ])",
    f"(?<=[qQ]){_cls(_toned('u'))}(?={_V})",
    f"(?<=[gG]){_cls(_toned('i'))}(?={_V})",
)
# Every alternative matches one toned vowel; the leading look-ahead lets the scan skip all
# other characters quickly. The whole word around a hit is then checked by ``place_tone``.
_CANDIDATE_RES = {
    style: re.compile(f"(?={_cls(_toned(VOWELS))})(?:{'|'.join(pats + _MISPLACED)})")
    for style, pats in _STYLE_PATTERNS.items()
}
_MEMO_LIMIT = 200_000
_MEMOS: dict[str, dict[str, str]] = {"old": {}, "new": {}}


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def unify_tone_marks(text: str, style: ToneStyle = "old") -> str:
    """Put every tone mark of ``text`` where ``style`` wants it (``keep`` returns ``text``).

    Handles the old/new rhymes (oa, oe, uy) and misplaced marks next to a shaped vowel or in
    ``qu``/``gi``; any other word is left as written.
    """
    if style == "keep":
        return text
    rx = _CANDIDATE_RES[style]
    first = rx.search(text)
    if first is None:
        return text
    memo = _MEMOS[style]
    out: list[str] = []
    last = 0
    n = len(text)
    for m in rx.finditer(text, first.start()):
        start = m.start()
        if start < last:
            continue  # inside a word already handled
        while start > last and _is_word_char(text[start - 1]):
            start -= 1
        end = m.end()
        while end < n and _is_word_char(text[end]):
            end += 1
        word = text[start:end]
        new = memo.get(word)
        if new is None:
            new = place_tone(word, style)
            if len(memo) < _MEMO_LIMIT:
                memo[word] = new
        out.append(text[last:start])
        out.append(new)
        last = end
    out.append(text[last:])
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# Invisible characters, whitespace, punctuation
# ---------------------------------------------------------------------------------------------

# Control characters (except tab/newline/CR), C1 controls, zero-width and bidi marks, BOM,
# soft hyphen, variation selectors are deleted. ZWJ (U+200D) is kept: emoji sequences need it.
_INVISIBLE_RE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180e"
    "\u200b\u200c\u200e\u200f\u202a-\u202e\u2060-\u206f\ufe00-\ufe0f\ufeff\ufff9-\ufffb]"
)
# Every horizontal space variant (NBSP, en/em spaces, thin, ideographic ...) becomes a space.
_ODD_SPACES = "\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000"
_ODD_SPACE_RE = re.compile(f"[{_ODD_SPACES}]")
_LINE_SEPS_RE = re.compile("\r\n?|[\u2028\u2029\x85]")
# Runs of spaces or tabs between two visible characters; indentation at a line start is kept
# (code in instruction data needs it). The space pattern starts with a literal "  " so the
# scan is fast; tabs are rare and get the general pattern.
_SPACE_RUN_RE = re.compile(r"  (?<=\S  ) *(?=\S)")
_TAB_RUN_RE = re.compile(r"(?<=\S)[ \t]*\t[ \t]*(?=\S)")
_TRAILING_RE = re.compile(r"[ \t]+\n")
_BLANK_LINES_RE = re.compile("\n{3,}")

_PUNCT_MAP: dict[int, str] = {
    **dict.fromkeys(map(ord, "\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb\u301d\u301e"), '"'),
    **dict.fromkeys(map(ord, "\u2018\u2019\u201a\u201b\u2032\u02bc"), "'"),
    **dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63"), "-"),
    ord("\u2026"): "...",
}
# Full-width ASCII forms (U+FF01..U+FF5E) map to ASCII.
_PUNCT_MAP.update({cp: chr(cp - 0xFEE0) for cp in range(0xFF01, 0xFF5F)})
_PUNCT_STR = {chr(k): v for k, v in _PUNCT_MAP.items()}


def _punct_replacement(match: re.Match[str]) -> str:
    return _PUNCT_STR[match.group()]


_PUNCT_RE = re.compile("[" + "".join(re.escape(chr(c)) for c in sorted(_PUNCT_MAP)) + "]")


def strip_invisible(text: str) -> str:
    """Delete control, zero-width, bidi and other invisible characters (keeps \\t \\n \\r)."""
    return _INVISIBLE_RE.sub("", text)


def fix_whitespace(text: str) -> str:
    """One space between words, ``\\n`` line ends, no trailing spaces, at most one blank line.

    Indentation at the start of a line is kept. Each rewrite runs only when a cheap substring
    test shows it is needed.
    """
    if "\r" in text or "\u2028" in text or "\u2029" in text or "\x85" in text:
        text = _LINE_SEPS_RE.sub("\n", text)
    if _ODD_SPACE_RE.search(text) is not None:
        text = _ODD_SPACE_RE.sub(" ", text)
    if "  " in text:
        text = _SPACE_RUN_RE.sub(" ", text)
    if "\t" in text:
        text = _TAB_RUN_RE.sub(" ", text)
    if " \n" in text or "\t\n" in text:
        text = _TRAILING_RE.sub("\n", text)
    if text.endswith((" ", "\t")):
        text = text.rstrip(" \t")
    if "\n\n\n" in text:
        text = _BLANK_LINES_RE.sub("\n\n", text)
    return text


def fix_punctuation(text: str) -> str:
    """Curly quotes, guillemets, dashes, ellipsis and full-width forms to their ASCII forms."""
    if _PUNCT_RE.search(text) is None:
        return text
    return _PUNCT_RE.sub(_punct_replacement, text)


def to_nfc(text: str) -> str:
    if unicodedata.is_normalized("NFC", text):
        return text
    return unicodedata.normalize("NFC", text)


def normalize_text(text: str, cfg: NormalizeConfig | None = None) -> str:
    """Normalize one text. Idempotent: ``normalize_text(normalize_text(t)) == normalize_text(t)``."""
    cfg = cfg or DEFAULT_CONFIG
    if not text:
        return text
    if cfg.from_legacy != "none":
        from vinaforge.text.legacy import convert_legacy

        text = convert_legacy(text, cfg.from_legacy)
    if cfg.nfc:
        text = to_nfc(text)
    if cfg.strip_invisible:
        text = _INVISIBLE_RE.sub("", text)
    if cfg.fix_punctuation:
        text = fix_punctuation(text)
    if cfg.fix_whitespace:
        text = fix_whitespace(text)
    if cfg.tone_style != "keep":
        text = unify_tone_marks(text, cfg.tone_style)
    return text

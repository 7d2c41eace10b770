"""Sentence splitting for Vietnamese.

Hand-written: the usual splitters (NLTK punkt, spaCy's sentencizer) ship no Vietnamese model
and break on Vietnamese abbreviations (``TP. Hồ Chí Minh``, ``PGS. TS.``, ``v.v.``). The rule is
small and predictable: a sentence ends at ``.``, ``!``, ``?`` or ``…`` (plus closing quotes or
brackets) followed by white space and a capital letter, digit, quote, bracket or dash, unless
the word before the period is a known abbreviation or a single capital (an initial). Line
breaks always end a sentence. Numbers such as ``1.000.000`` or ``3,5`` never split because
there is no space after their period.
"""

from __future__ import annotations

import re

#: Words that end with a period without ending a sentence (compared case-sensitively).
ABBREVIATIONS = frozenset(
    """TP Tp tp TX Tx TT Q P X H ThS Th.S TS PGS GS BS BSCK CN KS LS NCS NXB Nxb NSND NSƯT
    ThN Mr Mrs Ms Dr Prof St Sr Jr Co Corp Inc Ltd vs etc v.v v.v.. tr Tr TrN Ths pgs gs ts
    Đ/c đ/c Ô B Số số No Vol Fig Tel ĐT Đt Tp.HCM TP.HCM""".split()
)

_END_RE = re.compile(r"(?:\.{2,}|…|[.!?])+[\"'”’»)\]]*(?=\s)")
_STARTER_RE = re.compile(r"\s*([\"'“‘«(\[\-–—]|\d|[^\W\d_])")


def _previous_word(text: str, end: int) -> str:
    start = end
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    return text[start:end]


def _is_boundary(text: str, match: re.Match[str]) -> bool:
    nxt = _STARTER_RE.match(text, match.end())
    if nxt is None:
        return False
    first = nxt.group(1)
    if first.isalpha() and not first.isupper():
        return False
    punct = match.group()
    if punct.startswith(".") and not punct.startswith(".."):
        word = _previous_word(text, match.start())
        if word in ABBREVIATIONS or word.rstrip(".") in ABBREVIATIONS:
            return False
        if len(word) == 1 and word.isupper():
            return False  # an initial: "Nguyễn V. A."
    return True


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``, stripped, without empty ones, in order."""
    out: list[str] = []
    for line in text.splitlines():
        start = 0
        for m in _END_RE.finditer(line):
            if _is_boundary(line, m):
                piece = line[start : m.end()].strip()
                if piece:
                    out.append(piece)
                start = m.end()
        rest = line[start:].strip()
        if rest:
            out.append(rest)
    return out

"""Syllable segmentation: the unit for every fertility figure in vinaforge.

Hand-written on purpose: Vietnamese writes one syllable per space-separated token, so a
syllable is simply a run of word characters (``\\w+``: letters, digits, underscore). This is
the same definition the project's reference fertility figures use, and ``re`` scans it in C.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

#: A syllable is a run of word characters.
SYLLABLE_RE = re.compile(r"\w+")


def iter_syllables(text: str) -> Iterator[str]:
    """Yield the syllables of ``text`` in order."""
    for m in SYLLABLE_RE.finditer(text):
        yield m.group()


def split_syllables(text: str) -> list[str]:
    """All syllables of ``text`` as a list."""
    return SYLLABLE_RE.findall(text)


def count_syllables(text: str) -> int:
    """Number of syllables in ``text`` (``\\w+`` runs)."""
    return len(SYLLABLE_RE.findall(text))

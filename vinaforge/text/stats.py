"""Text statistics: characters, syllables, Vietnamese-ness and language shares.

Hand-written glue over :mod:`vinaforge.text.validate` and :mod:`vinaforge.text.langid`: the
figures are defined by this project (syllable = ``\\w+`` run, see
:mod:`vinaforge.text.syllables`), so no library computes them. Used by ``vinaforge text stats``
and by the ``text`` stage.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from vinaforge.text.validate import syllable_profile

#: Language ID looks at this many leading characters of a document: enough to decide, and it
#: keeps a 50 MB single-line "document" from costing minutes.
LANGID_PREFIX_CHARS = 4096


@dataclass(frozen=True)
class DocStats:
    """Figures for one document."""

    chars: int
    utf8_bytes: int
    syllables: int
    countable_syllables: int
    valid_syllables: int
    diacritic_syllables: int
    language: str | None = None
    language_score: float | None = None

    @property
    def valid_ratio(self) -> float:
        return self.valid_syllables / self.countable_syllables if self.countable_syllables else 0.0

    @property
    def diacritic_ratio(self) -> float:
        return self.diacritic_syllables / self.countable_syllables if self.countable_syllables else 0.0


def doc_stats(text: str, langid: bool = True) -> DocStats:
    """Compute :class:`DocStats` for one text."""
    syllables, countable, valid, marked = syllable_profile(text)
    lang = score = None
    if langid:
        from vinaforge.text.langid import identify

        lang, score = identify(text[:LANGID_PREFIX_CHARS])
    return DocStats(
        chars=len(text),
        utf8_bytes=len(text.encode("utf-8", errors="surrogatepass")),
        syllables=syllables,
        countable_syllables=countable,
        valid_syllables=valid,
        diacritic_syllables=marked,
        language=lang,
        language_score=score,
    )


@dataclass
class TextStats:
    """Running totals over many documents (add them one by one, or merge two totals)."""

    docs: int = 0
    empty_docs: int = 0
    chars: int = 0
    utf8_bytes: int = 0
    syllables: int = 0
    countable_syllables: int = 0
    valid_syllables: int = 0
    diacritic_syllables: int = 0
    languages: Counter = field(default_factory=Counter)
    language_chars: Counter = field(default_factory=Counter)

    def add(self, text: str, langid: bool = True) -> DocStats:
        """Count one document and return its own figures."""
        d = doc_stats(text, langid=langid)
        self.add_doc(d)
        return d

    def add_doc(self, d: DocStats) -> None:
        self.docs += 1
        self.empty_docs += d.syllables == 0
        self.chars += d.chars
        self.utf8_bytes += d.utf8_bytes
        self.syllables += d.syllables
        self.countable_syllables += d.countable_syllables
        self.valid_syllables += d.valid_syllables
        self.diacritic_syllables += d.diacritic_syllables
        if d.language is not None:
            self.languages[d.language] += 1
            self.language_chars[d.language] += d.chars

    def merge(self, other: TextStats) -> TextStats:
        for name in ("docs", "empty_docs", "chars", "utf8_bytes", "syllables", "countable_syllables",
                     "valid_syllables", "diacritic_syllables"):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.languages.update(other.languages)
        self.language_chars.update(other.language_chars)
        return self

    @property
    def valid_syllable_ratio(self) -> float:
        return self.valid_syllables / self.countable_syllables if self.countable_syllables else 0.0

    @property
    def diacritic_ratio(self) -> float:
        return self.diacritic_syllables / self.countable_syllables if self.countable_syllables else 0.0

    def language_shares(self) -> dict[str, float]:
        """Share of documents per language label."""
        n = sum(self.languages.values())
        return {k: v / n for k, v in sorted(self.languages.items())} if n else {}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (counts and ratios, rounded to 4 decimals)."""
        n_lang_chars = sum(self.language_chars.values())
        return {
            "docs": self.docs,
            "empty_docs": self.empty_docs,
            "chars": self.chars,
            "utf8_bytes": self.utf8_bytes,
            "syllables": self.syllables,
            "countable_syllables": self.countable_syllables,
            "valid_syllables": self.valid_syllables,
            "valid_syllable_ratio": round(self.valid_syllable_ratio, 4),
            "diacritic_ratio": round(self.diacritic_ratio, 4),
            "syllables_per_doc": round(self.syllables / self.docs, 2) if self.docs else 0.0,
            "languages": dict(sorted(self.languages.items())),
            "language_shares": {k: round(v, 4) for k, v in self.language_shares().items()},
            "language_char_shares": (
                {k: round(v / n_lang_chars, 4) for k, v in sorted(self.language_chars.items())}
                if n_lang_chars
                else {}
            ),
        }


def text_stats(texts: Iterable[str], langid: bool = True) -> TextStats:
    """Totals over ``texts``."""
    stats = TextStats()
    for t in texts:
        stats.add(t, langid=langid)
    return stats

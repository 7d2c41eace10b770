"""Our datatrove filters: input sanity, language, Gopher/FineWeb rules on syllables, flagged words.

Built on datatrove's ``BaseFilter`` (its ``exclusion_writer`` keeps every rejected document).
Hand-written because the stock Gopher/FineWeb filters count words with spaCy + pyvi (slow, and
not what a Vietnamese syllable-level tokenizer sees), report no measured value, and know no
Vietnamese stopwords. Each filter here returns ``(reason, value)`` for a rejected document, and
counts documents, characters and syllables in / kept / rejected so that the funnel in
``stats.json`` adds up exactly.
"""

from __future__ import annotations

import contextlib
import re
from abc import abstractmethod
from collections import Counter
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.filters.base_filter import BaseFilter

from vinaforge.data.config import (
    FineWebQualityConfig,
    FlaggedWordsConfig,
    GopherQualityConfig,
    GopherRepetitionConfig,
    InputCheckConfig,
    LanguageConfig,
)
from vinaforge.data.textstats import (
    dup_ngram_char_frac,
    duplicate_stats,
    tokens_of,
    top_ngram_char_frac,
    windowed,
    windows,
)
from vinaforge.text.syllables import SYLLABLE_RE

Rejection = tuple[str, Any]

# Gopher's English stopwords (Rae et al. 2021), as in datatrove.
EN_STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
TERMINAL_PUNCTUATION = (".", "!", "?", "…", '"', "'", "”", "’", ":", ";", ")", "»", "。", "！", "？")
_PARAGRAPH_RE = re.compile(r"\n{2,}")
_LINES_RE = re.compile(r"\n+")


def read_word_list(path: str | Path) -> list[str]:
    """Entries of a word list file: one a line, ``#`` comments and blank lines skipped."""
    text = Path(path).read_text(encoding="utf-8")
    return [ln.strip().lower() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


@lru_cache(maxsize=4)
def builtin_word_list(name: str) -> tuple[str, ...]:
    """A word list shipped in ``vinaforge/data/resources``."""
    with resources.as_file(resources.files("vinaforge.data") / "resources" / name) as p:
        return tuple(read_word_list(p))


def syllable_count(text: str) -> int:
    return len(SYLLABLE_RE.findall(text))


class FunnelFilter(BaseFilter):
    """A datatrove filter that measures what it keeps and rejects.

    Subclasses implement :meth:`check`. A rejected document gets ``filter``, ``reason`` and
    ``value`` metadata and goes to the exclusion writer (``rejected/<row>/``).
    """

    type = "🔻 - FILTER"

    def __init__(self, row: str, exclusion_writer=None):
        self.name = f"vf/{row}"  # set before super().__init__: datatrove names the stats after it
        self.row = row
        super().__init__(exclusion_writer)

    @abstractmethod
    def check(self, doc: Document) -> Rejection | None:
        """``None`` to keep the document, or ``(reason, value)`` to reject it."""

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        res = self.check(doc)
        return True if res is None else (False, res[0])

    def _count_syllables(self, text: str) -> int:
        return len(tokens_of(text).words)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        counts: Counter = Counter()
        writer_ctx = self.exclusion_writer if self.exclusion_writer else contextlib.nullcontext()
        with writer_ctx as writer:
            for doc in data:
                with self.track_time():
                    n_chars, n_syl = len(doc.text), self._count_syllables(doc.text)
                    res = self.check(doc)
                counts["in_docs"] += 1
                counts["in_chars"] += n_chars
                counts["in_syllables"] += n_syl
                if res is None:
                    counts["kept_docs"] += 1
                    counts["kept_chars"] += n_chars
                    counts["kept_syllables"] += n_syl
                    yield doc
                    continue
                reason, value = res
                counts["rejected_docs"] += 1
                counts["rejected_chars"] += n_chars
                counts["rejected_syllables"] += n_syl
                counts[f"reason/{reason}"] += 1
                doc.metadata["filter"] = self.row
                doc.metadata["reason"] = reason
                doc.metadata["value"] = value
                if writer is not None:
                    writer.write(doc, rank)
        from vinaforge.data.blocks import written_totals

        for key, val in written_totals(self.exclusion_writer).items():
            counts[f"written_{key}"] += val
        for key, val in counts.items():
            self.stat_update(key, value=val)


class InputCheckFilter(FunnelFilter):
    """Records the reader could not use, empty or oversized documents, binary junk.

    Runs right after the normalizer, which leaves unusable and oversized records untouched and
    measures the raw text's share of control/replacement characters (``bad_char_ratio``).
    """

    def __init__(self, cfg: InputCheckConfig, exclusion_writer=None):
        super().__init__("input", exclusion_writer)
        self.cfg = cfg

    def _count_syllables(self, text: str) -> int:
        if len(text) > self.cfg.max_chars:  # possibly huge: count without building the token list
            return sum(1 for _ in SYLLABLE_RE.finditer(text))
        return len(tokens_of(text).words)

    def check(self, doc: Document) -> Rejection | None:
        md = doc.metadata
        if "read_error" in md:
            return md.pop("read_error"), md.pop("read_error_value", None)
        bad = md.pop("bad_char_ratio", 0.0)
        text = doc.text
        if not text.strip():
            return "empty", len(text)
        if len(text) > self.cfg.max_chars:
            return "too_long", len(text)
        if bad > self.cfg.max_bad_char_ratio:
            return "not_text", bad
        return None


class LanguageFilter(FunnelFilter):
    """Label each document ``vi``/``en``/``other``; keep the configured languages above threshold."""

    def __init__(self, cfg: LanguageConfig, exclusion_writer=None):
        super().__init__("language", exclusion_writer)
        self.cfg = cfg

    def check(self, doc: Document) -> Rejection | None:
        from vinaforge.text.langid import identify

        label, score = identify(doc.text[: self.cfg.max_chars])
        score = round(float(score), 4)
        doc.metadata["language"] = label
        doc.metadata["language_score"] = score
        if label not in self.cfg.keep:
            return f"language_{label}", score
        if score < self.cfg.keep[label]:
            return f"low_confidence_{label}", score
        return None


class GopherRepetitionFilter(FunnelFilter):
    """Repeated paragraphs, lines and syllable n-grams (Gopher table A1)."""

    def __init__(self, cfg: GopherRepetitionConfig, exclusion_writer=None):
        super().__init__("gopher_repetition", exclusion_writer)
        self.cfg = cfg

    def check(self, doc: Document) -> Rejection | None:
        cfg, text = self.cfg, doc.text
        n = len(text)
        paragraphs = _PARAGRAPH_RE.split(text.strip())
        dup_n, dup_chars = duplicate_stats(paragraphs)
        if cfg.dup_para_frac is not None and (v := dup_n / len(paragraphs)) > cfg.dup_para_frac:
            return "dup_para_frac", round(v, 4)
        if cfg.dup_para_char_frac is not None and (v := dup_chars / n) > cfg.dup_para_char_frac:
            return "dup_para_char_frac", round(v, 4)
        lines = _LINES_RE.split(text)
        dup_n, dup_chars = duplicate_stats(lines)
        if cfg.dup_line_frac is not None and (v := dup_n / len(lines)) > cfg.dup_line_frac:
            return "dup_line_frac", round(v, 4)
        if cfg.dup_line_char_frac is not None and (v := dup_chars / n) > cfg.dup_line_char_frac:
            return "dup_line_char_frac", round(v, 4)
        parts = windows(tokens_of(text), cfg.window_syllables)
        for size, thr in sorted(cfg.top_n_grams.items()):
            if (v := windowed(top_ngram_char_frac, parts, size, n, threshold=thr)) > thr:
                return f"top_{size}_gram", round(v, 4)
        dup = sorted(cfg.dup_n_grams.items())
        for i, (size, thr) in enumerate(dup):
            if (v := windowed(dup_ngram_char_frac, parts, size, n)) > thr:
                return f"duplicated_{size}_n_grams", round(v, 4)
            if all(v <= t for _, t in dup[i + 1 :]):
                break  # longer n-grams repeat no more than this one
        return None


def stop_words_for(cfg: GopherQualityConfig, language: str) -> frozenset[str]:
    if language in cfg.stop_words:
        return frozenset(w.lower() for w in cfg.stop_words[language])
    if language == "vi":
        return frozenset(builtin_word_list("stopwords_vi.txt"))
    return frozenset(EN_STOP_WORDS)


class GopherQualityFilter(FunnelFilter):
    """Gopher quality rules, words = syllables, with the document's language's stopwords."""

    def __init__(self, cfg: GopherQualityConfig, exclusion_writer=None):
        super().__init__("gopher_quality", exclusion_writer)
        self.cfg = cfg
        self._stop: dict[str, frozenset[str]] = {}

    def stop_words(self, language: str) -> frozenset[str]:
        if language not in self._stop:
            self._stop[language] = stop_words_for(self.cfg, language)
        return self._stop[language]

    def check(self, doc: Document) -> Rejection | None:
        cfg, text = self.cfg, doc.text
        tok = tokens_of(text)
        n_words = len(tok.words)
        if cfg.min_doc_words is not None and n_words < cfg.min_doc_words:
            return "gopher_short_doc", n_words
        if cfg.max_doc_words is not None and n_words > cfg.max_doc_words:
            return "gopher_long_doc", n_words
        avg = float(tok.lengths.mean()) if n_words else 0.0
        if cfg.min_avg_word_length is not None and avg < cfg.min_avg_word_length:
            return "gopher_below_avg_threshold", round(avg, 3)
        if cfg.max_avg_word_length is not None and avg > cfg.max_avg_word_length:
            return "gopher_above_avg_threshold", round(avg, 3)
        if cfg.max_symbol_word_ratio is not None:
            if (v := text.count("#") / n_words) > cfg.max_symbol_word_ratio:
                return "gopher_too_many_hashes", round(v, 4)
            if (v := (text.count("...") + text.count("…")) / n_words) > cfg.max_symbol_word_ratio:
                return "gopher_too_many_ellipsis", round(v, 4)
        lines = text.splitlines() or [text]
        if cfg.max_bullet_lines_ratio is not None:
            bullets = sum(1 for s in lines if s.lstrip().startswith(("•", "-", "*", "·", "+")))
            if (v := bullets / len(lines)) > cfg.max_bullet_lines_ratio:
                return "gopher_too_many_bullets", round(v, 4)
        if cfg.max_ellipsis_lines_ratio is not None:
            ell = sum(1 for s in lines if s.rstrip().endswith(("...", "…")))
            if (v := ell / len(lines)) > cfg.max_ellipsis_lines_ratio:
                return "gopher_too_many_end_ellipsis", round(v, 4)
        if cfg.max_non_alpha_words_ratio is not None:
            alpha = n_words - sum(map(str.isdigit, tok.words))
            if (v := alpha / n_words) < cfg.max_non_alpha_words_ratio:
                return "gopher_below_alpha_threshold", round(v, 4)
        if cfg.min_stop_words is not None:
            stops = self.stop_words(doc.metadata.get("language", "vi"))
            found = len(stops.intersection(tok.lower))
            if found < cfg.min_stop_words:
                return "gopher_enough_stop_words", found
        return None


class FineWebQualityFilter(FunnelFilter):
    """FineWeb's line-level rules: punctuation at line ends, short lines, duplicated lines, lists."""

    def __init__(self, cfg: FineWebQualityConfig, exclusion_writer=None):
        super().__init__("fineweb_quality", exclusion_writer)
        self.cfg = cfg

    def check(self, doc: Document) -> Rejection | None:
        cfg, text = self.cfg, doc.text
        lines = [ln for ln in text.split("\n") if ln.strip()]
        if not lines:
            return "empty", 0
        if cfg.line_punct_thr is not None:
            v = sum(1 for ln in lines if ln.rstrip().endswith(TERMINAL_PUNCTUATION)) / len(lines)
            if v < cfg.line_punct_thr and not (v == 0 and cfg.line_punct_exclude_zero):
                return "line_punct_ratio", round(v, 4)
        if cfg.short_line_thr is not None:
            v = sum(1 for ln in lines if len(ln) <= cfg.short_line_length) / len(lines)
            if v > cfg.short_line_thr:
                return "short_line_ratio", round(v, 4)
        if cfg.char_duplicates_ratio is not None:
            v = duplicate_stats(lines)[1] / max(1, len(text) - text.count("\n"))
            if v > cfg.char_duplicates_ratio:
                return "char_dup_ratio", round(v, 4)
        if cfg.new_line_ratio is not None:
            n_words = len(tokens_of(text).words)
            v = text.count("\n") / max(1, n_words)
            if v > cfg.new_line_ratio:
                return "list_ratio", round(v, 4)
        return None


class FlaggedWordsFilter(FunnelFilter):
    """Share of syllables inside flagged words or phrases (ours, plus an optional user list)."""

    def __init__(self, cfg: FlaggedWordsConfig, exclusion_writer=None):
        super().__init__("flagged_words", exclusion_writer)
        self.cfg = cfg
        entries = list(builtin_word_list("flagged_words_vi.txt"))
        if cfg.extra_words_file:
            entries += read_word_list(cfg.extra_words_file)
        phrases = {tuple(SYLLABLE_RE.findall(entry)) for entry in entries}
        self.phrases = sorted((p for p in phrases if p), key=lambda p: (-len(p), p))
        self.syllables = frozenset(w for p in self.phrases for w in p)

    def flagged_ratio(self, lower: list[str]) -> float:
        """Share of ``lower`` (a document's lower-cased syllables) covered by flagged phrases."""
        if not lower:
            return 0.0
        present = self.syllables.intersection(lower)
        if not present:
            return 0.0
        # only phrases whose every syllable occurs in the document can match
        candidates = [p for p in self.phrases if present.issuperset(p)]
        if not candidates:
            return 0.0
        firsts = {p[0] for p in candidates}
        covered = [False] * len(lower)
        for i, w in enumerate(lower):
            if w not in firsts:
                continue
            for p in candidates:  # longest first, so "vãi cả lồn" wins over "lồn"
                k = len(p)
                if p[0] == w and tuple(lower[i : i + k]) == p:
                    covered[i : i + k] = [True] * k
                    break
        return sum(covered) / len(lower)

    def check(self, doc: Document) -> Rejection | None:
        if doc.metadata.get("language") not in self.cfg.languages:
            return None
        v = self.flagged_ratio(tokens_of(doc.text).lower)
        if v > self.cfg.max_ratio:
            return "flagged_words", round(v, 4)
        return None

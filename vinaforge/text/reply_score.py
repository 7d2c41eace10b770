"""A rule score for one Vietnamese chat reply: is it Vietnamese, and does it say something new?

Small chat models fail in two ways that a rule sees at once: they answer in the wrong language, or
they loop ("và và và", the same clause again and again). This score multiplies the share of valid
Vietnamese syllables (:func:`vinaforge.text.validate.valid_syllable_ratio`; a quarter of it when
the project's language ID does not say Vietnamese, since many English words are valid syllables
too) by the reply's own
word-bigram diversity (unique bigrams / bigrams, the per-reply form of distinct-2), and scales
replies shorter than ``min_words`` down, so that an empty or one-word reply never wins a ranking.
A run of one character longer than ``max_char_run`` ("1000000000000000…", "!!!!!!!!!!!") scales
the score down by ``max_char_run / run``: a loop inside one "word" has no bigrams to repeat, and
the self-preference bench found DPO learning exactly that loop from this judge when it was missing.

It is the cheap judge that self-preference (``judge: {kind: rules}``), the community loop's
simulated raters (``ranker: {kind: simulated}``) and GRPO (``rewards: [{kind: rules}]``) share, so
that the seed recipes can rank replies offline. It knows nothing of correctness: a real judge or
real raters replace it wherever one is available. Hand-written (Vietnamese-specific rule).
"""

from __future__ import annotations

from vinaforge.text.langid import identify
from vinaforge.text.validate import valid_syllable_ratio


def bigram_diversity(text: str) -> float:
    """Unique word bigrams / word bigrams of one text (1.0 when it has fewer than two words)."""
    words = text.lower().split()
    bigrams = list(zip(words, words[1:], strict=False))
    return len(set(bigrams)) / len(bigrams) if bigrams else 1.0


def longest_char_run(text: str) -> int:
    """The longest run of one non-space character in ``text``."""
    best = run = 0
    prev = None
    for ch in text:
        run = run + 1 if ch == prev and not ch.isspace() else 1
        prev = ch
        best = max(best, run)
    return best


def reply_score(text: str, min_words: int = 4, max_char_run: int = 8) -> float:
    """0–1: Vietnamese share × bigram diversity × min(1, words / ``min_words``) × the
    character-loop factor min(1, ``max_char_run`` / longest run of one character)."""
    words = text.split()
    if not words:
        return 0.0
    length = min(1.0, len(words) / max(min_words, 1))
    vietnamese = valid_syllable_ratio(text) * (1.0 if identify(text)[0] == "vi" else 0.25)
    char_loop = min(1.0, max_char_run / max(longest_char_run(text), 1))
    return vietnamese * bigram_diversity(text) * length * char_loop

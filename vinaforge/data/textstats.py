"""Fast per-document measurements on syllables for the quality filters and the score.

Hand-written: datatrove's Gopher and FineWeb filters tokenize Vietnamese words with spaCy +
pyvi (92% of the stock pipeline's time) and rebuild every n-gram as a joined string. Here a word
is a syllable (``\\w+`` run, :data:`vinaforge.text.syllables.SYLLABLE_RE`), the syllables of a
document are computed once and shared by every filter (a one-entry cache keyed by the text
object, which flows unchanged from step to step), and n-gram repetition is measured with numpy
on integer ids: one sort per n instead of millions of string joins.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vinaforge.text.syllables import SYLLABLE_RE

_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd: invertible modulo 2**64
_BASE_INV = np.uint64(pow(int(_BASE), -1, 1 << 64))
_MIX = np.uint64(0xFF51AFD7ED558CCD)


@dataclass
class Tokens:
    """The syllables of one text: as written, lower-cased, 64-bit ids and character lengths.

    ``ids`` only need to be consistent within one process (they come from Python's string
    hash); anything stored or compared across processes hashes the words itself.
    """

    words: list[str]
    lower: list[str]
    ids: np.ndarray
    lengths: np.ndarray
    _prefix: np.ndarray | None = None
    memo: dict = field(default_factory=dict)  # measures already computed on this text

    def prefix(self) -> np.ndarray:
        """Prefix sums of ``mix(id[j]) * B**j`` (modulo 2**64), shared by every n-gram size."""
        if self._prefix is None:
            self._prefix = polynomial_prefix(self.ids)
        return self._prefix


_cache_text: str | None = None
_cache_tokens: Tokens | None = None


def tokens_of(text: str) -> Tokens:
    """Syllables of ``text`` (cached for the last text seen: each filter asks for the same one)."""
    global _cache_text, _cache_tokens
    if text is _cache_text and _cache_tokens is not None:
        return _cache_tokens
    words = SYLLABLE_RE.findall(text)
    # one C-level pass instead of a Python loop; NUL never occurs inside a \w+ run
    lower = "\x00".join(words).lower().split("\x00") if words else []
    ids = np.fromiter(map(hash, lower), dtype=np.int64, count=len(lower)).view(np.uint64)
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    _cache_text, _cache_tokens = text, Tokens(words, lower, ids, lengths)
    return _cache_tokens


def syllables_of(doc) -> int:
    """Syllable count of a datatrove document: the ``syllables`` metadata the scorer set, or counted."""
    n = doc.metadata.get("syllables")
    return n if isinstance(n, int) else len(tokens_of(doc.text).words)


_POWERS = np.ones(1, dtype=np.uint64)
_INV_POWERS = np.ones(1, dtype=np.uint64)


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``B**j`` and ``B**-j`` modulo 2**64 for ``j < n`` (grown on demand, then sliced)."""
    global _POWERS, _INV_POWERS
    if len(_POWERS) < n:
        size = max(n, 2 * len(_POWERS), 4096)
        with np.errstate(over="ignore"):
            p = np.full(size, _BASE, dtype=np.uint64)
            p[0] = 1
            _POWERS = np.cumprod(p, dtype=np.uint64)
            q = np.full(size, _BASE_INV, dtype=np.uint64)
            q[0] = 1
            _INV_POWERS = np.cumprod(q, dtype=np.uint64)
    return _POWERS[:n], _INV_POWERS[:n]


def polynomial_prefix(ids: np.ndarray) -> np.ndarray:
    powers, _ = _powers(len(ids))
    prefix = np.zeros(len(ids) + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = (ids ^ (ids >> np.uint64(31))) * _MIX  # spread the bits of small or structured ids
        np.cumsum(x * powers, dtype=np.uint64, out=prefix[1:])
    return prefix


def ngram_keys(ids: np.ndarray, n: int, prefix: np.ndarray | None = None) -> np.ndarray:
    """One 64-bit key per n-gram of ``ids``: a polynomial hash modulo 2**64.

    With ``P[i]`` the sum of ``x[j] * B**j`` for ``j < i``, the n-gram at ``i`` is
    ``(P[i+n] - P[i]) * B**-i``: two array operations whatever ``n`` is.
    """
    m = len(ids) - n + 1
    if m <= 0:
        return np.empty(0, dtype=np.uint64)
    if prefix is None:
        prefix = polynomial_prefix(ids)
    _, inv = _powers(m)
    with np.errstate(over="ignore"):
        return (prefix[n:] - prefix[:m]) * inv


def top_ngram_char_frac(tok: Tokens, n: int, text_len: int, threshold: float = 0.0) -> float:
    """Characters in the most frequent n-gram (all occurrences) / text length (Gopher).

    When a cheap upper bound shows the value cannot exceed ``threshold``, returns 0.0 instead
    of the exact value (callers only compare it with the threshold).
    """
    keys = ngram_keys(tok.ids, n, tok.prefix())
    if len(keys) < 2 or text_len == 0:
        return 0.0
    # cheap upper bound first: counts in 4096 hash buckets can only over-count
    longest = int(np.max(tok.lengths)) * n + n - 1
    if (
        int(np.bincount((keys & np.uint64(4095)).astype(np.intp), minlength=4096).max()) * longest
        <= threshold * text_len
    ):
        return 0.0
    sk = np.sort(keys)
    change = np.flatnonzero(sk[1:] != sk[:-1])
    bounds = np.concatenate(([0], change + 1, [len(sk)]))
    runs = np.diff(bounds)
    count = int(runs.max())
    if count < 2:
        return 0.0
    chars = 0  # among equally frequent n-grams, the longest (words joined by single spaces)
    for b in np.flatnonzero(runs == count)[:64].tolist():
        start = int(np.flatnonzero(keys == sk[bounds[b]])[0])
        chars = max(chars, int(tok.lengths[start : start + n].sum()) + n - 1)
    return chars * count / text_len


def dup_ngram_char_frac(tok: Tokens, n: int, text_len: int) -> float:
    """Characters of words covered by repeated occurrences of any n-gram / text length (Gopher).

    Overlapping repeats are counted once, as the Gopher paper prescribes. Never increases
    with ``n`` (a repeated (n+1)-gram contains a repeated n-gram), which lets callers stop early.
    """
    memo_key = ("dup", n, text_len)
    if memo_key in tok.memo:
        return tok.memo[memo_key]
    keys = ngram_keys(tok.ids, n, tok.prefix())
    if len(keys) < 2 or text_len == 0:
        return 0.0
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    later = order[1:][sk[1:] == sk[:-1]]  # occurrences after the first one
    if len(later) == 0:
        return 0.0
    reach = np.full(len(tok.ids), -1, dtype=np.int64)
    reach[later] = later + (n - 1)
    covered = np.maximum.accumulate(reach) >= np.arange(len(tok.ids))
    value = tok.memo[memo_key] = int(tok.lengths[covered].sum()) / text_len
    return value


def windows(tok: Tokens, size: int | None) -> list[Tokens]:
    """``tok`` cut into about-equal windows of ``size`` syllables (whole if under 1.5 windows).

    Gopher's n-gram rules were designed for web pages; on a 50,000-syllable law they measure
    the formulaic phrases shared by distant articles, not local repetition.
    """
    n = len(tok.words)
    if size is None or n < 1.5 * size:
        return [tok]
    bounds = np.linspace(0, n, round(n / size) + 1).astype(int)
    return [
        Tokens(tok.words[a:b], tok.lower[a:b], tok.ids[a:b], tok.lengths[a:b])
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]


def windowed(measure, parts: list[Tokens], n: int, text_len: int, **kwargs) -> float:
    """``measure`` of one window, or the syllable-weighted mean over windows."""
    if len(parts) == 1:
        return measure(parts[0], n, text_len, **kwargs)
    values = [measure(p, n, int(p.lengths.sum()) + len(p.words)) for p in parts]
    return float(np.average(values, weights=[len(p.words) for p in parts]))


def duplicate_stats(items: list[str]) -> tuple[int, int]:
    """(number of repeated items, their characters), counting each repeat after the first."""
    seen: set[str] = set()
    dup_n = dup_chars = 0
    for it in items:
        if it in seen:
            dup_n += 1
            dup_chars += len(it)
        else:
            seen.add(it)
    return dup_n, dup_chars

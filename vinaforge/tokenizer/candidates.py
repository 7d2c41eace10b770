"""Choose the tokens to add to a base tokenizer: count syllable units, filter junk, plan merges.

A *unit* is a syllable (a ``\\w+`` run) with its leading space when it starts a
whitespace-separated chunk (``▁người``), or bare when it follows punctuation inside a chunk
(``người`` in ``(người``). Units that can only be junk are filtered by rule and counted with a
reason: digits (SentencePiece bases split numbers into single digits; a digit-run token would
also break that), ``_``, URL and e-mail fragments, over-long strings.

Two planners, both working from the *base tokenizer's own segmentation* of each unit (replayed
by :mod:`.simulate`), so every new token is reachable by the base algorithm and nothing the base
already has is added again:

- ``bpe`` (default): continue BPE training on the unit counts: repeatedly add the merge of the
  most frequent adjacent pair of current tokens (ties broken by the pair's text, so runs are
  reproducible), re-segmenting exactly the units it touches. Each step saves the most tokens
  on the sample that one vocabulary slot can save.
- ``syllables``: take whole units in order of corpus frequency and add, for each, the chain of
  merges that makes it one token, preferring intermediate pieces shared by many other units
  (usually rhymes such as ``ười``). Also used with ``--vocab`` (a trained vocabulary's pieces,
  in its own order).

Before either, letters of the Vietnamese alphabet that the base lacks (Mistral has no ``Ờ``) are
added as single characters, so that merges never start from byte-fallback pieces.

Hand-written: no library continues a foreign tokenizer's BPE training under its own encoding
rules; ``sentencepiece`` and ``tokenizers`` only train from scratch.
"""

from __future__ import annotations

import heapq
import logging
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vinaforge.tokenizer.simulate import SentencePieceBpe, TokenizersBpe

log = logging.getLogger(__name__)

SPACE = "▁"
UNIT_RE = re.compile(r"\w+")
URL_CHUNK_RE = re.compile(
    r"(?i)https?://|www\.|\S@\S+\.\w|\.(?:com|vn|net|org|edu|gov|html?|php|aspx?|jpe?g|png|pdf)(?:\W|$)"
)
URL_WORDS = frozenset({"http", "https", "www", "html", "htm", "php", "asp", "aspx"})

#: Reasons a unit is not a candidate, in the order the rules are checked.
REASONS = ("url", "digits", "underscore", "too-long", "unknown-chars", "not-vietnamese")


def vietnamese_alphabet() -> list[str]:
    """Every letter of the Vietnamese alphabet with every tone, lower then upper case (NFC)."""
    vowels = "aăâeêioôơuưy"
    tones = ("", "\u0300", "\u0301", "\u0309", "\u0303", "\u0323")
    lower = [unicodedata.normalize("NFC", v + t) for v in vowels for t in tones]
    lower += list("bcdđghklmnpqrstvx")
    return lower + [c.upper() for c in lower]


@dataclass
class UnitCounts:
    """Syllable units of a corpus sample: the accepted ones and the rejected ones by reason."""

    counts: Counter = field(default_factory=Counter)
    rejected: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    chunks: int = 0
    stats: Any = None
    """The corpus sample these counts come from (a :class:`~.corpus.CorpusStats`), if known."""

    @property
    def total(self) -> int:
        return sum(self.counts.values()) + sum(sum(c.values()) for c in self.rejected.values())

    def reject(self, unit: str, reason: str, n: int) -> None:
        self.rejected[reason][unit] += n

    def summary(self, examples: int = 8) -> dict:
        """Counts that add up: total = accepted + each rejection reason (occurrences)."""
        return {
            "total_occurrences": self.total,
            "accepted_occurrences": sum(self.counts.values()),
            "accepted_distinct": len(self.counts),
            "rejected_occurrences": {r: sum(c.values()) for r, c in self.rejected.items()},
            "rejected_examples": {
                r: [u for u, _ in c.most_common(examples)] for r, c in self.rejected.items()
            },
        }


def keep_vietnamese(units: UnitCounts) -> None:
    """Move units that are not valid Vietnamese syllables to the rejected counts."""
    from vinaforge.text.validate import is_valid_syllable

    for unit, n in list(units.counts.items()):
        if not is_valid_syllable(unit.lstrip(SPACE)):
            del units.counts[unit]
            units.reject(unit, "not-vietnamese", n)


def unit_reason(word: str, max_chars: int) -> str | None:
    """Why a bare word (no space marker) cannot be a candidate, or None."""
    if any(ch.isdigit() for ch in word):
        return "digits"
    if "_" in word:
        return "underscore"
    if word.lower() in URL_WORDS:
        return "url"
    if len(word) > max_chars:
        return "too-long"
    return None


def count_units(texts: Iterable[str], max_chars: int = 16) -> UnitCounts:
    """Count syllable units in ``texts``; whitespace chunks are counted first (fast, in C)."""
    chunks: Counter = Counter()
    for text in texts:
        chunks.update(text.split())
    out = UnitCounts(chunks=sum(chunks.values()))
    for chunk, n in chunks.items():
        is_url = URL_CHUNK_RE.search(chunk) is not None
        for m in UNIT_RE.finditer(chunk):
            word = m.group()
            unit = SPACE + word if m.start() == 0 else word
            reason = "url" if is_url else unit_reason(word, max_chars)
            if reason:
                out.reject(unit, reason, n)
            else:
                out.counts[unit] += n
    return out


# ----------------------------------------------------------------------------- alphabets


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map used by byte-level BPE."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs, strict=True)}


class Alphabet:
    """Maps unit text (``▁`` = a preceding space) to a model's token alphabet and back."""

    def __init__(self, byte_level: bool, space: str = SPACE):
        self.byte_level = byte_level
        self.space = space
        if byte_level:
            self.enc = _bytes_to_unicode()
            self.dec = {c: b for b, c in self.enc.items()}

    def to_model(self, unit: str) -> str:
        if not self.byte_level:
            return unit.replace(SPACE, self.space) if self.space != SPACE else unit
        text = unit.replace(SPACE, " ")
        return "".join(self.enc[b] for b in text.encode("utf-8"))

    def to_text(self, token: str) -> str:
        """Readable text of a token (``▁`` for a space); partial UTF-8 shows as U+FFFD."""
        if not self.byte_level:
            return token.replace(self.space, SPACE) if self.space != SPACE else token
        raw = bytes(self.dec[c] for c in token if c in self.dec)
        return raw.decode("utf-8", errors="replace").replace(" ", SPACE)

    def symbols(self, unit: str) -> list[str]:
        """The model-alphabet characters a unit starts from."""
        return list(self.to_model(unit))


# ----------------------------------------------------------------------------- planning


@dataclass
class NewToken:
    """One planned addition, in order: a merge (``left`` + ``right``) or a single character."""

    token: str
    left: str | None
    right: str | None
    gain: int
    """Occurrences of the pair in the sample when it was chosen (tokens it saves there)."""
    new_entry: bool = True
    """False for a merge that produces a token the base already has but could not reach."""


class Planner:
    """Shared state of a plan: the simulator, the additions so far and the vocabulary budget."""

    def __init__(
        self, sim: SentencePieceBpe | TokenizersBpe, alphabet: Alphabet, budget: int, max_chars: int = 16
    ):
        self.sim = sim
        self.alphabet = alphabet
        self.budget = budget
        self.max_chars = max_chars
        self.added: list[NewToken] = []
        self.used = 0

    @property
    def left(self) -> int:
        return self.budget - self.used

    def allowed(self, token: str) -> bool:
        text = self.alphabet.to_text(token).lstrip(SPACE)
        return unit_reason(text.replace("\ufffd", ""), self.max_chars) is None

    def add(self, token: str, left: str | None, right: str | None, gain: int) -> bool:
        new_entry = self.sim.add(token, left, right)
        self.added.append(NewToken(token, left, right, gain, new_entry))
        self.used += int(new_entry)
        return new_entry

    # -- alphabet completion ---------------------------------------------------------------

    def complete_alphabet(self, units: Counter, letters: Iterable[str]) -> int:
        """Add the letters (as single-character tokens) the base lacks and the units use."""
        freq: Counter = Counter()
        wanted = set(letters)
        for unit, n in units.items():
            for ch in unit:
                if ch in wanted:
                    freq[ch] += n
        added = 0
        for ch, n in sorted(freq.items(), key=lambda kv: (-kv[1], kv[0])):
            model = self.alphabet.to_model(ch)
            if len(model) != 1 or self.sim.is_token(model) or self.left <= 0:
                continue
            self.add(model, None, None, n)
            added += 1
        return added

    def usable(self, units: UnitCounts) -> Counter:
        """Units in model form whose characters are all tokens; the others move to the rejected
        counts as ``unknown-chars`` (a merge cannot start from a byte-fallback piece)."""
        out: Counter = Counter()
        for unit, n in list(units.counts.items()):
            model = self.alphabet.to_model(unit)
            if all(self.sim.is_token(ch) for ch in model):
                out[model] += n
            else:
                del units.counts[unit]
                units.reject(unit, "unknown-chars", n)
        return out

    # -- strategy "bpe" ----------------------------------------------------------------------

    def continue_bpe(self, words: Counter, min_count: int = 2, progress: Callable | None = None) -> None:
        """Greedy BPE on ``words`` (model form -> count) from the base's own segmentation."""
        sim = self.sim
        vocab_words = list(words)
        freq = [words[w] for w in vocab_words]
        segs = [sim.segment(w) for w in vocab_words]
        counts: dict = defaultdict(int)
        where: dict = defaultdict(set)
        halves: dict = {}
        for i, seg in enumerate(segs):
            for a, b in zip(seg, seg[1:], strict=False):
                key = sim.merge_key(a, b)
                counts[key] += freq[i]
                where[key].add(i)
                halves.setdefault(key, (a, b))
        heap = [(-c, sim.key_token(k), k) for k, c in counts.items()]
        heapq.heapify(heap)
        banned: set = set()
        while self.left > 0 and heap:
            neg, _, key = heapq.heappop(heap)
            count = counts.get(key, 0)
            if count != -neg:
                if count > 0:
                    heapq.heappush(heap, (-count, sim.key_token(key), key))
                continue
            if count < min_count:
                break
            token = sim.key_token(key)
            if key in banned or not self.allowed(token):
                banned.add(key)
                continue
            a, b = halves[key]
            self.add(token, a, b, count)
            if progress is not None:
                progress(1)
            touched: set = set()
            for i in where.pop(key, ()):
                f = freq[i]
                old = segs[i]
                for x, y in zip(old, old[1:], strict=False):
                    k = sim.merge_key(x, y)
                    counts[k] -= f
                    where[k].discard(i)
                new = sim.segment(vocab_words[i])
                segs[i] = new
                for x, y in zip(new, new[1:], strict=False):
                    k = sim.merge_key(x, y)
                    counts[k] += f
                    where[k].add(i)
                    halves.setdefault(k, (x, y))
                    touched.add(k)
            counts.pop(key, None)
            for k in touched:
                if counts[k] > 0:
                    heapq.heappush(heap, (-counts[k], sim.key_token(k), k))

    # -- strategy "syllables" ----------------------------------------------------------------

    def whole_units(
        self, targets: list[str], weights: dict[str, int], progress: Callable | None = None
    ) -> int:
        """Make each target (model form, in priority order) one token; returns how many were."""
        useful = substring_weights(targets[: max(4 * self.budget, 1000)], weights)
        made = 0
        for target in targets:
            if self.left <= 0:
                break
            if self.sim.is_token(target) or not all(self.sim.is_token(ch) for ch in target):
                continue
            seg = self.sim.segment(target)
            if len(seg) - 1 > self.left:
                continue
            before = self.used
            while len(seg) > 1:
                i = max(range(len(seg) - 1), key=lambda j: (useful.get(seg[j] + seg[j + 1], 0), j))
                a, b = seg[i], seg[i + 1]
                if not self.allowed(a + b):
                    break
                self.add(a + b, a, b, weights.get(target, 0))
                new = self.sim.segment(target)
                if len(new) >= len(seg):  # cannot happen with lowest-priority merges; never loop
                    raise RuntimeError(f"merge {a!r}+{b!r} did not shorten {target!r}: {new}")
                seg = new
            if len(seg) == 1:
                made += 1
            if progress is not None:
                progress(self.used - before)
        return made


def substring_weights(targets: list[str], weights: dict[str, int]) -> dict[str, int]:
    """Summed weight of the targets containing each substring (length >= 2)."""
    out: dict[str, int] = defaultdict(int)
    for t in targets:
        w = weights.get(t, 1)
        n = len(t)
        for i in range(n):
            for j in range(i + 2, n + 1):
                out[t[i:j]] += w
    return out

"""Word-level replicas of the two BPE encoders, used to plan which merges to add.

- :class:`SentencePieceBpe` replays ``sentencepiece``'s BPE encoder (``bpe_model.cc``): start
  from single characters, repeatedly merge the adjacent pair whose concatenation is a piece with
  the highest score (leftmost on ties), until no adjacent pair forms a piece. Any split of a
  piece merges, not just the one it was learnt from.
- :class:`TokenizersBpe` replays the ``tokenizers`` BPE model: start from characters (or byte
  tokens with byte fallback), repeatedly apply the listed merge with the lowest rank.

New tokens are always given the lowest priority (SentencePiece: a score below every finite
base score; ``tokenizers``: a rank after every base merge). So every merge of the base still
happens first, a word's extended segmentation is its base segmentation merged further, and a
text in which no new merge applies encodes exactly as before.

Hand-written: neither library can answer "how would this word split if I added this merge"
without rebuilding the whole tokenizer, which would cost seconds per added token. The plan is
checked against the real libraries afterwards (tests compare ids on real text).
"""

from __future__ import annotations

from collections.abc import Hashable

#: SentencePiece gives whitespace-only pieces a score of -1e9; "finite" scores are above this.
SCORE_FLOOR = -1e8


class SentencePieceBpe:
    """SentencePiece BPE encoding of one whitespace-free word (``▁`` marks the space)."""

    def __init__(self, scores: dict[str, float]):
        self.scores = dict(scores)
        finite = [s for s in self.scores.values() if s > SCORE_FLOOR]
        self.next_score = (min(finite) if finite else 0.0) - 1.0

    def is_token(self, token: str) -> bool:
        return token in self.scores

    @staticmethod
    def merge_key(left: str, right: str) -> Hashable:
        return left + right

    @staticmethod
    def key_token(key: Hashable) -> str:
        return str(key)

    def segment(self, word: str) -> list[str]:
        scores = self.scores
        syms = list(word)
        while len(syms) > 1:
            best_i, best = -1, 0.0
            for i in range(len(syms) - 1):
                s = scores.get(syms[i] + syms[i + 1])
                if s is not None and (best_i < 0 or s > best):
                    best_i, best = i, s
            if best_i < 0:
                break
            syms[best_i : best_i + 2] = [syms[best_i] + syms[best_i + 1]]
        return syms

    def add(self, token: str, left: str | None = None, right: str | None = None) -> bool:
        """Add ``token`` with the lowest score so far; True when it is a new vocabulary entry."""
        if token in self.scores:
            return False
        self.scores[token] = self.next_score
        self.next_score -= 1.0
        return True

    def score_of(self, token: str) -> float:
        return self.scores[token]


class TokenizersBpe:
    """``tokenizers`` BPE encoding of one pre-tokenized word, in the model's own alphabet."""

    def __init__(
        self,
        vocab: dict[str, int],
        merges: list[tuple[str, str]],
        byte_fallback: bool = False,
        ignore_merges: bool = False,
    ):
        self.vocab = dict(vocab)
        self.merges = list(merges)
        self.ranks = {pair: i for i, pair in enumerate(self.merges)}
        self.byte_fallback = byte_fallback
        self.ignore_merges = ignore_merges

    def is_token(self, token: str) -> bool:
        return token in self.vocab

    @staticmethod
    def merge_key(left: str, right: str) -> Hashable:
        return (left, right)

    @staticmethod
    def key_token(key: Hashable) -> str:
        left, right = key  # type: ignore[misc]
        return left + right

    def initial(self, word: str) -> list[str]:
        syms: list[str] = []
        for ch in word:
            if ch in self.vocab or not self.byte_fallback:
                syms.append(ch)
            else:
                syms.extend(f"<0x{b:02X}>" for b in ch.encode("utf-8"))
        return syms

    def segment(self, word: str) -> list[str]:
        if self.ignore_merges and word in self.vocab:
            return [word]
        ranks = self.ranks
        syms = self.initial(word)
        while len(syms) > 1:
            best_i, best = -1, 0
            for i in range(len(syms) - 1):
                r = ranks.get((syms[i], syms[i + 1]))
                if r is not None and (best_i < 0 or r < best):
                    best_i, best = i, r
            if best_i < 0:
                break
            syms[best_i : best_i + 2] = [syms[best_i] + syms[best_i + 1]]
        return syms

    def add(self, token: str, left: str | None = None, right: str | None = None) -> bool:
        """Add a merge ``left right`` (last rank) and/or the vocabulary entry ``token``.

        Returns True when ``token`` is a new vocabulary entry; a merge that produces a token the
        base already has (but could not reach) costs no vocabulary slot.
        """
        new_entry = token not in self.vocab
        if new_entry:
            self.vocab[token] = len(self.vocab)  # membership is what matters here, not the id
        if left is not None and right is not None and (left, right) not in self.ranks:
            self.ranks[(left, right)] = len(self.merges)
            self.merges.append((left, right))
        return new_entry

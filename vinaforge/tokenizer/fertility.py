"""Tokenizer fertility: tokens per Vietnamese syllable, tokens per English word, characters per
token, the share of syllables encoded as a single token, and the round-trip rate.

A syllable (and an English word) is a ``\\w+`` run, the project-wide definition of
:mod:`vinaforge.text.syllables`. A syllable counts as "single-token" when exactly one token
overlaps its characters (token offsets from the fast tokenizer); a token that also carries the
preceding space or a following comma still counts. Texts are encoded without special tokens,
with the tokenizer's own padding and truncation switched off (SmolLM's ``tokenizer.json`` pads
to 192 by default).

Hand-written: the metrics are a few lines over ``tokenizers``' batched encoder (Rust, all
cores); no library reports per-syllable fertility.
"""

from __future__ import annotations

import bisect
import copy
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vinaforge.text.syllables import SYLLABLE_RE

log = logging.getLogger(__name__)


@dataclass
class TextFigures:
    texts: int = 0
    units: int = 0
    tokens: int = 0
    chars: int = 0
    single_token_units: int = 0
    roundtrip_failures: int = 0
    roundtrip_examples: list[str] = field(default_factory=list)


@dataclass
class Fertility:
    """Fertility of one tokenizer on the given Vietnamese and English texts."""

    name: str
    vocab_size: int
    vi: TextFigures | None = None
    en: TextFigures | None = None

    @property
    def vi_tokens_per_syllable(self) -> float | None:
        return self.vi.tokens / self.vi.units if self.vi and self.vi.units else None

    @property
    def en_tokens_per_word(self) -> float | None:
        return self.en.tokens / self.en.units if self.en and self.en.units else None

    @property
    def chars_per_token(self) -> float | None:
        parts = [p for p in (self.vi, self.en) if p]
        tokens = sum(p.tokens for p in parts)
        return sum(p.chars for p in parts) / tokens if tokens else None

    @property
    def single_token_syllable_share(self) -> float | None:
        return self.vi.single_token_units / self.vi.units if self.vi and self.vi.units else None

    def to_dict(self) -> dict:
        def rate(p: TextFigures | None) -> float | None:
            return p.chars / p.tokens if p and p.tokens else None

        return {
            "name": self.name,
            "vocab_size": self.vocab_size,
            "vi_tokens_per_syllable": self.vi_tokens_per_syllable,
            "en_tokens_per_word": self.en_tokens_per_word,
            "chars_per_token": self.chars_per_token,
            "vi_chars_per_token": rate(self.vi),
            "en_chars_per_token": rate(self.en),
            "single_token_syllable_share": self.single_token_syllable_share,
            "vi": asdict(self.vi) if self.vi else None,
            "en": asdict(self.en) if self.en else None,
        }


def backend_of(tokenizer):
    """The ``tokenizers.Tokenizer`` behind a transformers tokenizer, without padding/truncation."""
    backend = copy.deepcopy(tokenizer.backend_tokenizer)
    backend.no_padding()
    backend.no_truncation()
    return backend


def measure(backend, texts: list[str], batch_size: int = 1024, roundtrip: bool = True) -> TextFigures:
    """Encode ``texts`` (batched, all cores) and count units, tokens and single-token units."""
    fig = TextFigures()
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        encs = backend.encode_batch(batch, add_special_tokens=False)
        decoded = (
            backend.decode_batch([e.ids for e in encs], skip_special_tokens=False) if roundtrip else None
        )
        for j, (text, enc) in enumerate(zip(batch, encs, strict=True)):
            fig.texts += 1
            fig.tokens += len(enc.ids)
            fig.chars += len(text)
            ends = [e for _, e in enc.offsets]
            starts = [s for s, _ in enc.offsets]
            for m in SYLLABLE_RE.finditer(text):
                fig.units += 1
                s, e = m.span()
                # tokens overlapping [s, e): start < e and end > s; offsets are sorted.
                lo = bisect.bisect_right(ends, s)
                hi = bisect.bisect_left(starts, e)
                if hi - lo == 1:
                    fig.single_token_units += 1
            if decoded is not None and decoded[j] != text:
                fig.roundtrip_failures += 1
                if len(fig.roundtrip_examples) < 5:
                    fig.roundtrip_examples.append(text[:200])
    return fig


def fertility(
    name: str,
    tokenizer,
    vi_texts: list[str] | None = None,
    en_texts: list[str] | None = None,
    roundtrip: bool = True,
) -> Fertility:
    """Fertility of a transformers (fast) tokenizer on Vietnamese and/or English texts."""
    backend = backend_of(tokenizer)
    out = Fertility(name=name, vocab_size=len(tokenizer))
    if vi_texts:
        out.vi = measure(backend, vi_texts, roundtrip=roundtrip)
    if en_texts:
        out.en = measure(backend, en_texts, roundtrip=roundtrip)
    return out


def load_texts(
    path: str | Path, field: str = "text", limit: int | None = None, nfc: bool = True
) -> list[str]:
    """Texts of a plain-text, JSONL(.gz) or CoNLL-U file (``# text =`` lines), NFC-normalized."""
    import unicodedata

    from vinaforge.io import iter_texts
    from vinaforge.tokenizer.resolve import TokenizerError

    p = Path(path)
    if not p.is_file():
        raise TokenizerError(f"text file {p} does not exist")
    out: list[str] = []
    try:
        for text in iter_texts(p, field=field):
            text = text.strip()
            if not text:
                continue
            out.append(unicodedata.normalize("NFC", text) if nfc else text)
            if limit is not None and len(out) >= limit:
                break
    except ValueError as err:
        raise TokenizerError(str(err)) from None
    if not out:
        raise TokenizerError(f"{p}: no texts found" + (f" in field {field!r}" if field != "text" else ""))
    return out


def plot_fertility(results: list[Fertility], path: Path, title: str = "Tokenizer fertility") -> None:
    """Bar chart of tokens per Vietnamese syllable (and per English word) for each tokenizer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vinaforge.io import atomic_path

    names = [r.name for r in results]
    vi = [r.vi_tokens_per_syllable or 0.0 for r in results]
    en = [r.en_tokens_per_word or 0.0 for r in results]
    has_en = any(en)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(results) + 2), 3.8))
    width = 0.38 if has_en else 0.6
    xs = range(len(results))
    bars = ax.bar(
        [x - (width / 2 if has_en else 0) for x in xs],
        vi,
        width,
        label="tokens / vi syllable",
        color="#c0504d",
    )
    ax.bar_label(bars, fmt="%.3f", fontsize=8)
    if has_en:
        bars = ax.bar([x + width / 2 for x in xs], en, width, label="tokens / en word", color="#2a7ab0")
        ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_xticks(list(xs), names, fontsize=8)
    ax.set_ylabel("tokens")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)

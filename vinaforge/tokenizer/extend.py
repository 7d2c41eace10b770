"""Extend a base tokenizer with Vietnamese tokens: count, plan, pad, write, verify, record.

The output is a Hugging Face tokenizer folder plus ``vinaforge_extension.json`` (the base and
its hash, the settings, the corpus sample, the candidate counts with every rejection reason,
and every added id with its token). It is written under a temporary name and renamed only once
it loads with ``AutoTokenizer`` and its length matches the record, so an interrupted run leaves
no half-written tokenizer behind.

Hand-written orchestration over :mod:`.candidates`, :mod:`.extend_sp` and :mod:`.extend_bpe`.
"""

from __future__ import annotations

import copy
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vinaforge import __version__
from vinaforge.io import atomic_path, atomic_write_json, sha256_path
from vinaforge.text.normalize import NormalizeConfig
from vinaforge.tokenizer.candidates import (
    SPACE,
    Planner,
    UnitCounts,
    count_units,
    keep_vietnamese,
    unit_reason,
    vietnamese_alphabet,
)
from vinaforge.tokenizer.corpus import CorpusStats, iter_corpus
from vinaforge.tokenizer.resolve import BaseTokenizer, TokenizerError, resolve_base

if TYPE_CHECKING:
    from vinaforge.tokenizer.extend_bpe import TokenizersBpeBase
    from vinaforge.tokenizer.extend_sp import SentencePieceBase

    Family = SentencePieceBase | TokenizersBpeBase

log = logging.getLogger(__name__)

EXTENSION_FILE = "vinaforge_extension.json"
PLACEHOLDER = "<|vf_reserved_{}|>"


class ExtendSettings(BaseModel):
    """How new tokens are chosen; shared by ``vinaforge tokenizer extend`` and the stage."""

    model_config = ConfigDict(extra="forbid")

    strategy: Literal["bpe", "syllables"] = Field(
        "bpe",
        description="bpe: continue BPE on syllable counts from the base's own segmentation; "
        "syllables: make the most frequent whole syllables single tokens.",
    )
    max_new_tokens: int = Field(8000, ge=1, description="Cap on new vocabulary entries.")
    pad_to_multiple_of: int = Field(
        128, ge=1, description="Make the new vocabulary size a multiple of this (GPU efficiency)."
    )
    min_frequency: int = Field(2, ge=1, description="Ignore pairs/units seen fewer times in the sample.")
    max_token_chars: int = Field(16, ge=2, description="Longest new token, in characters.")
    complete_alphabet: bool = Field(
        True, description="First add the Vietnamese letters the base lacks as single-character tokens."
    )
    only_vietnamese: bool = Field(
        False,
        description="Learn only from valid Vietnamese syllables (vinaforge.text.validate), not from "
        "foreign names and loanwords: fewer changes to English text.",
    )
    sample_bytes: int | None = Field(
        100_000_000, ge=1, description="Read at most this many bytes of corpus text (None: all)."
    )
    field: str = Field("text", description="JSON field holding the text in .jsonl inputs.")
    normalize: NormalizeConfig | None = Field(
        default_factory=NormalizeConfig,
        description="vinaforge.text normalization applied to the corpus (null: use it as is).",
    )


@dataclass
class ExtensionResult:
    output: Path
    base_vocab_size: int
    vocab_size: int
    added: int
    placeholders: int
    record: dict[str, Any] = field(default_factory=dict)


def load_family(base: BaseTokenizer) -> Family:
    """The family-specific view of a base: its encoder replay, alphabet and writer."""
    if base.family == "sentencepiece":
        from vinaforge.tokenizer.extend_sp import SentencePieceBase

        return SentencePieceBase(base)
    from vinaforge.tokenizer.extend_bpe import TokenizersBpeBase

    return TokenizersBpeBase(base)


def target_count(base_size: int, max_new: int, multiple: int) -> int:
    """Most new entries <= ``max_new`` that make the vocabulary a multiple of ``multiple``."""
    n = (base_size + max_new) // multiple * multiple - base_size
    if n <= 0:
        nxt = -(-base_size // multiple) * multiple - base_size or multiple
        raise TokenizerError(
            f"max_new_tokens={max_new} is too small to reach a vocabulary size that is a multiple of "
            f"{multiple} (base has {base_size} ids): use max_new_tokens >= {nxt}, or pad_to_multiple_of: 1"
        )
    return n


def vocab_targets(vocab_dir: Path, max_chars: int) -> tuple[list[str], Counter, Counter]:
    """Units from a trained tokenizer folder, in its own order (SentencePiece or tokenizers).

    Returns (targets in text form, weights by rank, rejected reasons).
    """
    from vinaforge.tokenizer.extend_bpe import detect_alphabet
    from vinaforge.tokenizer.resolve import check_sentencepiece, read_tokenizer_json

    vocab_dir = Path(vocab_dir)
    pieces: list[str] = []
    if (vocab_dir / "tokenizer.model").is_file():
        proto = check_sentencepiece(vocab_dir / "tokenizer.model")
        pieces = [p.piece for p in proto.pieces if p.type == 1]
    elif (vocab_dir / "tokenizer.json").is_file():
        data = read_tokenizer_json(vocab_dir / "tokenizer.json")
        alphabet = detect_alphabet(data, vocab_dir / "tokenizer.json")
        vocab = data["model"]["vocab"]
        items = sorted(vocab.items(), key=lambda kv: kv[1]) if isinstance(vocab, dict) else vocab
        special = {t["content"] for t in data.get("added_tokens", [])}
        pieces = [alphabet.to_text(t if isinstance(t, str) else t[0]) for t, *_ in items if t not in special]
    else:
        raise TokenizerError(f"--vocab {vocab_dir}: no tokenizer.model or tokenizer.json in this folder")
    targets: list[str] = []
    rejected: Counter = Counter()
    for piece in pieces:
        word = piece[1:] if piece.startswith(SPACE) else piece
        if not word or "\ufffd" in word or not word.replace(SPACE, "").isalpha() or SPACE in word:
            rejected["not-a-word"] += 1
            continue
        reason = unit_reason(word, max_chars)
        if reason:
            rejected[reason] += 1
            continue
        targets.append(piece)
    if not targets:
        raise TokenizerError(f"--vocab {vocab_dir}: no usable word pieces in this vocabulary")
    weights = Counter({t: len(targets) - i for i, t in enumerate(targets)})
    return targets, weights, rejected


def plan(
    fam: Family,
    settings: ExtendSettings,
    budget: int,
    units: UnitCounts | None = None,
    vocab: tuple[list[str], Counter] | None = None,
    progress: bool = True,
) -> Planner:
    """Run the chosen strategy against the base's encoder replay, within ``budget`` entries."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from vinaforge.logs import console

    planner = Planner(fam.sim, fam.alphabet, budget, settings.max_token_chars)
    if units is not None and settings.only_vietnamese:
        keep_vietnamese(units)
    source = units.counts if units is not None else Counter(vocab[1]) if vocab else Counter()
    if settings.complete_alphabet and not fam.alphabet.byte_level:
        n = planner.complete_alphabet(source, vietnamese_alphabet())
        if n:
            log.info("added %d Vietnamese letters the base lacks as single-character tokens", n)
    with Progress(
        TextColumn("[bold]planning new tokens"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not progress,
        transient=True,
        console=console(),  # the one console the log lines use: bar and logs never interleave
    ) as bar:
        task = bar.add_task("", total=budget, completed=planner.used)

        def advance(n: int) -> None:
            bar.advance(task, n)

        if vocab is not None:
            targets = [fam.alphabet.to_model(t) for t in vocab[0]]
            weights = {fam.alphabet.to_model(t): w for t, w in vocab[1].items()}
            planner.whole_units(targets, weights, progress=advance)
        else:
            assert units is not None
            words = planner.usable(units)
            words = Counter({w: n for w, n in words.items() if n >= settings.min_frequency})
            if settings.strategy == "bpe":
                planner.continue_bpe(words, min_count=settings.min_frequency, progress=advance)
            else:
                ordered = [w for w, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0]))]
                planner.whole_units(ordered, dict(words), progress=advance)
    return planner


def verify_output(out: Path, expected_len: int, base_tokens: list[str]) -> None:
    """Load the folder with AutoTokenizer; its length and every base id's token must match."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(out))
    except Exception as err:
        raise TokenizerError(f"the extended tokenizer in {out} does not load: {err}") from None
    if len(tok) != expected_len:
        raise TokenizerError(f"the extended tokenizer has {len(tok)} ids, expected {expected_len}")
    ids = tok.convert_ids_to_tokens(list(range(len(base_tokens))))
    changed = [i for i, (a, b) in enumerate(zip(base_tokens, ids, strict=True)) if a and a != b]
    if changed:
        i = changed[0]
        raise TokenizerError(
            f"{len(changed)} base ids changed token in {out}, e.g. id {i}: {base_tokens[i]!r} -> {ids[i]!r}"
        )


def count_corpus(
    corpus: list[str] | list[Path], settings: ExtendSettings, progress: bool = True
) -> tuple[UnitCounts, CorpusStats]:
    """Read, normalize and count the syllable units of a corpus sample."""
    stats = CorpusStats()
    texts = iter_corpus(
        list(corpus),
        field=settings.field,
        normalize=settings.normalize,
        sample_bytes=settings.sample_bytes,
        stats=stats,
        progress=progress,
    )
    units = count_units(texts, settings.max_token_chars)
    if not units.counts:
        raise TokenizerError(
            f"corpus {[str(c) for c in corpus]}: no candidate syllables "
            f"(rejected: {dict(units.summary()['rejected_occurrences'])})"
        )
    units.stats = stats
    return units, stats


def extend_tokenizer(
    base_spec: str | Path,
    output: str | Path,
    *,
    corpus: list[str] | list[Path] | None = None,
    vocab_dir: str | Path | None = None,
    settings: ExtendSettings | None = None,
    progress: bool = True,
    units: UnitCounts | None = None,
) -> ExtensionResult:
    """Extend ``base_spec`` with tokens from a corpus (or a trained vocabulary) into ``output``.

    ``units`` (from :func:`count_corpus`) skips reading the corpus again when one sample
    extends several bases; ``corpus`` then only labels the record.
    """
    settings = settings or ExtendSettings()
    if (corpus is None) == (vocab_dir is None):
        raise TokenizerError("give exactly one source of new tokens: a corpus or a trained vocabulary")
    t0 = time.perf_counter()
    base = resolve_base(base_spec)
    fam = load_family(base)
    base_size = fam.vocab_size
    budget = target_count(base_size, settings.max_new_tokens, settings.pad_to_multiple_of)

    stats = CorpusStats()
    vocab = None
    rejected_vocab: Counter = Counter()
    if corpus is not None:
        if units is None:
            units, stats = count_corpus(corpus, settings, progress=progress)
        else:
            units = copy.deepcopy(units)  # the plan records rejections in it
            stats = getattr(units, "stats", stats)
    else:
        targets, weights, rejected_vocab = vocab_targets(Path(vocab_dir), settings.max_token_chars)
        vocab = (targets, weights)
    t_count = time.perf_counter()

    planner = plan(fam, settings, budget, units=units, vocab=vocab, progress=progress)
    t_plan = time.perf_counter()
    n_real = planner.used
    placeholders: list[str] = []
    if n_real < budget:
        total = -(-(base_size + n_real) // settings.pad_to_multiple_of) * settings.pad_to_multiple_of
        placeholders = [PLACEHOLDER.format(i) for i in range(total - base_size - n_real)]
        log.warning(
            "only %d useful new tokens found (max_new_tokens=%d asked for up to %d); padding with %d "
            "reserved placeholder tokens to reach a vocabulary of %d (a multiple of %d). A larger "
            "corpus or a lower min_frequency gives more candidates.",
            n_real,
            settings.max_new_tokens,
            budget,
            len(placeholders),
            total,
            settings.pad_to_multiple_of,
        )

    out = Path(output)
    with atomic_path(out) as tmp:
        new_tokens = fam.write(planner.added, placeholders, tmp)
        vocab_size = base_size + len(new_tokens)
        verify_output(tmp, vocab_size, fam.base_tokens())
        record = extension_record(
            base,
            fam,
            settings,
            planner,
            new_tokens,
            placeholders,
            stats,
            units,
            rejected_vocab,
            corpus,
            vocab_dir,
        )
        record["timing_s"] = {
            "read_and_count": round(t_count - t0, 2),
            "plan": round(t_plan - t_count, 2),
            "write_and_verify": round(time.perf_counter() - t_plan, 2),
        }
        atomic_write_json(tmp / EXTENSION_FILE, record)
    log.info(
        "extended %s: %d -> %d ids (+%d new tokens, %d placeholders) in %s",
        base.spec,
        base_size,
        vocab_size,
        n_real,
        len(placeholders),
        out,
    )
    return ExtensionResult(out, base_size, vocab_size, n_real, len(placeholders), record)


def extension_record(
    base: BaseTokenizer,
    fam: Family,
    settings: ExtendSettings,
    planner: Planner,
    new_tokens: list[str],
    placeholders: list[str],
    stats: CorpusStats,
    units: UnitCounts | None,
    rejected_vocab: Counter,
    corpus,
    vocab_dir,
) -> dict[str, Any]:
    base_size = fam.vocab_size
    by_token = {t.token: t for t in planner.added if t.new_entry}
    added = []
    for i, tok in enumerate(new_tokens):
        t = by_token.get(tok)
        kind = "placeholder" if t is None else ("char" if t.left is None else "merge")
        entry = {"id": base_size + i, "token": fam.alphabet.to_text(tok) if t else tok, "kind": kind}
        if t is not None:
            entry["gain"] = t.gain
            if t.left is not None:
                entry["merge"] = [fam.alphabet.to_text(t.left), fam.alphabet.to_text(t.right)]
        added.append(entry)
    merges_only = [
        {
            "merge": [fam.alphabet.to_text(t.left), fam.alphabet.to_text(t.right)],
            "token": fam.alphabet.to_text(t.token),
        }
        for t in planner.added
        if not t.new_entry
    ]
    return {
        "vinaforge_version": __version__,
        "base": {
            "spec": base.spec,
            "family": base.family,
            "file": str(base.model_file),
            "sha256": sha256_path(base.model_file),
            "vocab_size": base_size,
        },
        "source": {
            "corpus": [str(c) for c in corpus] if corpus is not None else None,
            "vocab": str(vocab_dir) if vocab_dir is not None else None,
        },
        "settings": settings.model_dump(mode="json"),
        "corpus_sample": stats.to_dict() if corpus is not None else None,
        "candidates": units.summary() if units is not None else {"rejected_pieces": dict(rejected_vocab)},
        "vocab_size": base_size + len(new_tokens),
        "added": {
            "count": len(new_tokens),
            "new_tokens": len(new_tokens) - len(placeholders),
            "placeholders": len(placeholders),
            "first_id": base_size,
            "last_id": base_size + len(new_tokens) - 1,
            "tokens": added,
        },
        "merges_to_existing_tokens": merges_only,
    }


def read_extension(folder: str | Path) -> dict[str, Any]:
    """The ``vinaforge_extension.json`` of an extended tokenizer folder."""
    import json

    path = Path(folder) / EXTENSION_FILE
    if not path.is_file():
        raise TokenizerError(
            f"{folder}: no {EXTENSION_FILE} (not a tokenizer made by vinaforge tokenizer extend)"
        )
    return json.loads(path.read_text(encoding="utf-8"))

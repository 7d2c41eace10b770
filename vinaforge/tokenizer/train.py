"""Train a Vietnamese tokenizer on a normalized corpus sample, with sentencepiece or ``tokenizers``.

- ``sentencepiece`` (BPE or unigram): Llama/Mistral conventions (byte fallback, a dummy prefix
  space, ``<unk> <s> </s>`` at ids 0-2, digits split one by one). Our normalization already ran,
  so the model's own normalizer is ``identity``.
- ``tokenizers`` (BPE or unigram): byte-level BPE in the GPT-2 style, or a Metaspace unigram.

The output is a Hugging Face folder (``tokenizer.model`` when sentencepiece trained it, a
``tokenizer.json``, a ``tokenizer_config.json``) plus ``vinaforge_train.json`` with the settings,
the sample and the training time. Its pieces can feed ``vinaforge tokenizer extend --vocab``.

Hand-written glue: both trainers are the libraries' own; this module prepares the sample (one
line per sentence, long lines split) and writes the folder.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vinaforge import __version__
from vinaforge.io import atomic_path, atomic_write_json
from vinaforge.text.normalize import NormalizeConfig
from vinaforge.tokenizer.corpus import CorpusStats, iter_corpus
from vinaforge.tokenizer.resolve import TokenizerError

log = logging.getLogger(__name__)

TRAIN_FILE = "vinaforge_train.json"
SPECIALS = ["<unk>", "<s>", "</s>"]
#: sentencepiece skips longer input lines; we split lines at sentence ends below this size.
MAX_LINE_BYTES = 8192


class TrainSettings(BaseModel):
    """Options of ``vinaforge tokenizer train``."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["sentencepiece", "tokenizers"] = "sentencepiece"
    model_type: Literal["bpe", "unigram"] = "bpe"
    vocab_size: int = Field(24000, ge=300)
    character_coverage: float | None = Field(
        None, gt=0, le=1, description="sentencepiece: share of characters covered (default 0.9999)."
    )
    min_frequency: int | None = Field(
        None, ge=1, description="tokenizers: minimum pair frequency (sentencepiece has no such option)."
    )
    split_digits: bool = True
    max_token_chars: int = Field(16, ge=2)
    sample_bytes: int | None = Field(100_000_000, ge=1)
    field: str = "text"
    normalize: NormalizeConfig | None = Field(default_factory=NormalizeConfig)
    threads: int | None = Field(None, ge=1)

    def check(self) -> None:
        if self.backend == "sentencepiece" and self.min_frequency is not None:
            raise TokenizerError(
                "min_frequency is an option of the tokenizers backend; sentencepiece has no minimum "
                "frequency (use a smaller vocab_size, or --backend tokenizers)"
            )
        if self.backend == "tokenizers" and self.character_coverage is not None:
            raise TokenizerError(
                "character_coverage is a sentencepiece option; the tokenizers backend is byte-level "
                "BPE or a unigram over every character seen"
            )


def training_lines(texts: Iterator[str]) -> Iterator[str]:
    """One line per paragraph; paragraphs longer than MAX_LINE_BYTES are split into sentences."""
    from vinaforge.text.sentences import split_sentences

    for text in texts:
        for line in text.split("\n"):
            line = line.strip()
            if not line:
                continue
            if len(line.encode("utf-8")) <= MAX_LINE_BYTES:
                yield line
                continue
            for sent in split_sentences(line):
                sent = sent.strip()
                while len(sent.encode("utf-8")) > MAX_LINE_BYTES:
                    cut = sent.rfind(" ", 0, MAX_LINE_BYTES // 4)
                    cut = cut if cut > 0 else MAX_LINE_BYTES // 4
                    yield sent[:cut]
                    sent = sent[cut:].strip()
                if sent:
                    yield sent


def _train_sentencepiece(lines: Iterator[str], settings: TrainSettings, out: Path) -> int:
    import os

    import sentencepiece as spm

    with tempfile.TemporaryDirectory(prefix="vf-sptrain-") as tmp:
        data = Path(tmp) / "sample.txt"
        n = 0
        with open(data, "w", encoding="utf-8") as fh:
            for line in lines:
                fh.write(line + "\n")
                n += 1
        if n == 0:
            raise TokenizerError("corpus is empty after splitting into lines")
        prefix = Path(tmp) / "sp"
        try:
            spm.SentencePieceTrainer.train(
                input=str(data),
                model_prefix=str(prefix),
                model_type=settings.model_type,
                vocab_size=settings.vocab_size,
                character_coverage=settings.character_coverage or 0.9999,
                split_digits=settings.split_digits,
                byte_fallback=True,
                max_sentencepiece_length=settings.max_token_chars,
                max_sentence_length=MAX_LINE_BYTES * 2,
                normalization_rule_name="identity",
                add_dummy_prefix=True,
                remove_extra_whitespaces=False,
                allow_whitespace_only_pieces=True,
                input_sentence_size=0,
                shuffle_input_sentence=False,
                unk_id=0,
                bos_id=1,
                eos_id=2,
                pad_id=-1,
                num_threads=settings.threads or os.cpu_count() or 1,
                minloglevel=1,
            )
        except RuntimeError as err:
            raise TokenizerError(f"sentencepiece training failed: {err}") from None
        model_file = out / "tokenizer.model"
        model_file.write_bytes(prefix.with_suffix(".model").read_bytes())
    _write_sentencepiece_hf(model_file, settings, out)
    return n


def _write_sentencepiece_hf(model_file: Path, settings: TrainSettings, out: Path) -> None:
    from vinaforge.tokenizer.resolve import SENTENCEPIECE_TOKENIZER_CONFIG, load_sentencepiece_as_hf

    if settings.model_type == "bpe":
        cfg = dict(SENTENCEPIECE_TOKENIZER_CONFIG)
        tok = load_sentencepiece_as_hf(model_file, cfg)
        tok.backend_tokenizer.save(str(out / "tokenizer.json"))
    else:
        from vinaforge.tokenizer.resolve import check_sentencepiece, unigram_backend

        unigram_backend(check_sentencepiece(model_file)).save(str(out / "tokenizer.json"))
        cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False}
        cfg.update({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"})
    (out / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")


def _train_tokenizers(lines: Iterator[str], settings: TrainSettings, out: Path) -> int:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    count = [0]

    def counted() -> Iterator[str]:
        for line in lines:
            count[0] += 1
            yield line

    if settings.model_type == "bpe":
        backend = Tokenizer(models.BPE())
        parts = [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
        if settings.split_digits:
            parts.insert(0, pre_tokenizers.Digits(individual_digits=True))
        backend.pre_tokenizer = pre_tokenizers.Sequence(parts)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=settings.vocab_size,
            min_frequency=settings.min_frequency or 2,
            special_tokens=SPECIALS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            max_token_length=settings.max_token_chars,
            show_progress=False,
        )
    else:
        backend = Tokenizer(models.Unigram())
        parts = [pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")]
        if settings.split_digits:
            parts.insert(0, pre_tokenizers.Digits(individual_digits=True))
        backend.pre_tokenizer = pre_tokenizers.Sequence(parts)
        backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
        trainer = trainers.UnigramTrainer(
            vocab_size=settings.vocab_size - 256,  # room for the 256 byte-fallback pieces
            special_tokens=SPECIALS,
            unk_token="<unk>",
            max_piece_length=settings.max_token_chars,
            show_progress=False,
        )
    backend.train_from_iterator(counted(), trainer=trainer)
    if count[0] == 0:
        raise TokenizerError("corpus is empty after splitting into lines")
    if settings.model_type == "unigram":
        backend = _with_byte_fallback(backend)
    backend.save(str(out / "tokenizer.json"))
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "clean_up_tokenization_spaces": False,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
    }
    (out / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    return count[0]


def _with_byte_fallback(backend):
    """A trained ``tokenizers`` unigram plus ``<0xXX>`` pieces, so unseen characters round-trip."""
    from tokenizers import Tokenizer, decoders

    data = json.loads(backend.to_str())
    vocab = data["model"]["vocab"]
    have = {piece for piece, _ in vocab}
    floor = min(score for _, score in vocab) - 10.0
    vocab += [[f"<0x{b:02X}>", floor] for b in range(256) if f"<0x{b:02X}>" not in have]
    data["model"]["byte_fallback"] = True
    out = Tokenizer.from_str(json.dumps(data))
    out.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    return out


def train_tokenizer(
    corpus: list[str] | list[Path],
    output: str | Path,
    settings: TrainSettings | None = None,
    progress: bool = True,
) -> dict:
    """Train a tokenizer on a sample of ``corpus`` and write it as a HF folder at ``output``."""
    settings = settings or TrainSettings()
    settings.check()
    stats = CorpusStats()
    texts = iter_corpus(
        list(corpus),
        field=settings.field,
        normalize=settings.normalize,
        sample_bytes=settings.sample_bytes,
        stats=stats,
        progress=progress,
    )
    t0 = time.perf_counter()
    out = Path(output)
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        lines = training_lines(texts)
        if settings.backend == "sentencepiece":
            n_lines = _train_sentencepiece(lines, settings, tmp)
        else:
            n_lines = _train_tokenizers(lines, settings, tmp)
        seconds = time.perf_counter() - t0
        from transformers import AutoTokenizer

        try:
            vocab_size = len(AutoTokenizer.from_pretrained(str(tmp)))
        except Exception as err:
            raise TokenizerError(f"the trained tokenizer does not load with transformers: {err}") from None
        record = {
            "vinaforge_version": __version__,
            "corpus": [str(c) for c in corpus],
            "settings": settings.model_dump(mode="json"),
            "corpus_sample": stats.to_dict(),
            "lines": n_lines,
            "vocab_size": vocab_size,
            "seconds": round(seconds, 2),
            "seconds_note": "reading, normalizing and training (the sample is read while training)",
        }
        atomic_write_json(tmp / TRAIN_FILE, record)
    log.info(
        "trained a %s %s tokenizer of %d tokens on %.1f MB (%d lines) in %.1f s -> %s",
        settings.backend,
        settings.model_type,
        vocab_size,
        stats.bytes_read / 1e6,
        n_lines,
        seconds,
        out,
    )
    return record

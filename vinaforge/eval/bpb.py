"""Bits per byte and token perplexity of a model on held-out text files.

A thin wrapper: the figure itself is :func:`vinaforge.model.bpb.bits_per_byte`, the one shared
definition that the CPT stage's held-out evaluation also uses, so both agree to the last digit.
This module reads the files (plain text lines, JSONL ``field``, CoNLL-U ``# text``, parquet, as
``vinaforge.io.iter_texts``) and loads the model through ``vinaforge.model.load``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path

from vinaforge.io import expand_inputs, iter_texts

log = logging.getLogger(__name__)


def read_texts(
    paths: Iterable[str | os.PathLike], field: str = "text", max_texts: int | None = None
) -> list[str]:
    """Non-empty texts of every file (folders and globs expanded), in order."""
    files = expand_inputs([str(p) for p in paths])
    if not files:
        raise FileNotFoundError(f"no text file in {', '.join(map(str, paths))}")
    texts: list[str] = []
    for f in files:
        for text in iter_texts(f, field=field):
            if text.strip():
                texts.append(text)
                if max_texts and len(texts) >= max_texts:
                    return texts
    if not texts:
        raise ValueError(f"no text in {', '.join(map(str, files))}")
    return texts


def bpb_of_model(
    model,
    tokenizer,
    texts: list[str],
    max_length: int = 1024,
    batch_size: int = 8,
    allow_vocab_mismatch: bool = False,
) -> dict:
    """The shared bits-per-byte figure of a model already in memory, as a JSON-ready dict."""
    from vinaforge.model.bpb import bits_per_byte

    started = time.time()
    result = bits_per_byte(
        model,
        tokenizer,
        texts,
        max_length=max_length,
        batch_size=batch_size,
        allow_vocab_mismatch=allow_vocab_mismatch,
    )
    out = result.to_dict()
    out["max_length"] = max_length
    out["seconds"] = round(time.time() - started, 2)
    log.info(
        "bits per byte %.4f, token perplexity %.2f over %d texts (%d bytes, %d tokens)",
        result.bits_per_byte,
        result.token_perplexity,
        result.n_texts,
        result.n_bytes,
        result.n_tokens,
    )
    return out


def evaluate_bpb(
    model_path: str,
    text_paths: list[str | os.PathLike],
    *,
    field: str = "text",
    tokenizer_path: str | None = None,
    max_length: int = 1024,
    batch_size: int = 8,
    max_texts: int | None = None,
    device: str | None = None,
    dtype: str = "auto",
    allow_vocab_mismatch: bool = False,
) -> dict:
    """Load ``model_path`` and measure bits per byte on the texts of ``text_paths``."""
    from vinaforge.eval.harness import default_device
    from vinaforge.model.load import load_causal_lm, load_tokenizer

    texts = read_texts(text_paths, field=field, max_texts=max_texts)
    model = load_causal_lm(str(model_path), dtype=dtype, device=device or default_device())
    tokenizer = load_tokenizer(str(tokenizer_path or model_path))
    out = bpb_of_model(
        model,
        tokenizer,
        texts,
        max_length=max_length,
        batch_size=batch_size,
        allow_vocab_mismatch=allow_vocab_mismatch,
    )
    out["model"] = str(model_path)
    out["files"] = [str(Path(p)) for p in text_paths]
    return out

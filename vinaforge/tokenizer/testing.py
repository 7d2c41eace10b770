"""Build a real extended Mistral-v0.1 tokenizer in seconds, for other stages' tests.

``extended_mistral(tmp_dir, texts, max_new_tokens=300)`` extends the Mistral-7B-v0.1 tokenizer
shipped in ``mistral-common`` (no network) with tokens learnt from the texts and writes the
Hugging Face folder into ``tmp_dir``. The tokens are real BPE merges of the
base, exactly as ``vinaforge tokenizer extend`` makes them; only the corpus is small.

Hand-written convenience over :func:`vinaforge.tokenizer.extend.extend_tokenizer`.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from pathlib import Path

from vinaforge.tokenizer.extend import ExtendSettings, extend_tokenizer


def extended_mistral(
    tmp_dir: str | Path,
    corpus_texts: Iterable[str],
    max_new_tokens: int = 300,
    pad_to_multiple_of: int = 64,
    base: str = "mistral-v0.1",
) -> Path:
    """Extend ``base`` with up to ``max_new_tokens`` tokens learnt from ``corpus_texts``.

    The tokenizer folder is written *into* ``tmp_dir`` (replacing what is there) and returned;
    ``AutoTokenizer.from_pretrained(tmp_dir)`` loads it. The vocabulary is padded to a multiple
    of ``pad_to_multiple_of`` (placeholders if the texts run out of candidates, with a logged
    warning).
    """
    out = Path(tmp_dir)
    with tempfile.TemporaryDirectory(prefix="vf-corpus-") as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        with open(corpus, "w", encoding="utf-8") as fh:
            for text in corpus_texts:
                fh.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
        settings = ExtendSettings(
            max_new_tokens=max_new_tokens,
            pad_to_multiple_of=pad_to_multiple_of,
            min_frequency=2,
            sample_bytes=None,
        )
        extend_tokenizer(base, out, corpus=[corpus], settings=settings, progress=False)
    return out

"""Vietnamese word segmentation through a real library backend (optional).

Library, not hand-written: Vietnamese words span several syllables (``Hà Nội``, ``học sinh``)
and finding them needs a trained model. Two backends are supported and imported lazily:

- ``pyvi`` (CRF, ``pip install pyvi``): fast, small, the default;
- ``underthesea`` (``pip install underthesea``): larger toolkit, used when asked for.

Output: the list of words, syllables inside a word joined by ``_`` (the convention of VnCoreNLP,
pyvi and the VLSP corpora), so ``" ".join(words)`` round-trips through whitespace splitting.
"""

from __future__ import annotations

from functools import cache
from typing import Literal

Backend = Literal["pyvi", "underthesea"]
BACKENDS: tuple[str, ...] = ("pyvi", "underthesea")


class WordSegmenterUnavailable(ImportError):
    """The chosen word-segmentation library is not installed."""


@cache
def _load(backend: str):
    if backend == "pyvi":
        try:
            from pyvi import ViTokenizer
        except ImportError as err:
            raise WordSegmenterUnavailable(
                "word segmentation backend 'pyvi' is not installed: pip install pyvi "
                "(or pip install 'vinaforge[wordseg]')"
            ) from err
        return lambda text: ViTokenizer.tokenize(text).split()
    if backend == "underthesea":
        try:
            from underthesea import word_tokenize
        except ImportError as err:
            raise WordSegmenterUnavailable(
                "word segmentation backend 'underthesea' is not installed: pip install underthesea"
            ) from err
        return lambda text: [w.replace(" ", "_") for w in word_tokenize(text)]
    raise ValueError(f"unknown word segmentation backend {backend!r}; expected one of {', '.join(BACKENDS)}")


def available_backends() -> list[str]:
    """Backends that can be imported here."""
    found = []
    for name in BACKENDS:
        try:
            _load(name)
        except WordSegmenterUnavailable:
            continue
        found.append(name)
    return found


def segment_words(text: str, backend: Backend = "pyvi") -> list[str]:
    """Words of ``text``; syllables of one word are joined with ``_``."""
    if not text.strip():
        return []
    return _load(backend)(text)

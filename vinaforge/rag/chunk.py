"""Documents → passages of a few sentences, cut on Vietnamese paragraph and sentence bounds.

A passage never splits a sentence (the citation must point at whole statements), and a
paragraph boundary always ends a passage unless the passage is still short. Sizes are counted
in syllables, the unit Vietnamese text is measured in everywhere in vinaforge.

Hand-written (Vietnamese-specific): sentence splitting and syllable counts come from
:mod:`vinaforge.text`; generic splitters (LangChain's, LlamaIndex's) count characters or English
tokens and split Vietnamese abbreviations such as ``TP. Hồ Chí Minh``.

Documents are read as strict UTF-8: a line with invalid bytes is an error naming the file and
line, not a passage indexed with replacement characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from vinaforge.text.sentences import split_sentences
from vinaforge.text.syllables import count_syllables

_PARAGRAPHS = re.compile(r"\n\s*\n|\n")


@dataclass
class Passage:
    """One retrievable unit; ``doc`` names the document it comes from (used by recall@k)."""

    id: int
    doc: str
    text: str
    title: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


class DocumentError(ValueError):
    """A documents file that cannot be read (named with its line)."""


def chunk_document(text: str, max_syllables: int = 120, min_syllables: int = 30) -> list[str]:
    """Passages of at most ``max_syllables`` (a longer single sentence stays whole)."""
    out: list[str] = []
    current: list[str] = []
    size = 0
    for para in _PARAGRAPHS.split(text):
        para = para.strip()
        if not para:
            continue
        for sent in split_sentences(para):
            n = count_syllables(sent)
            if current and size + n > max_syllables:
                out.append(" ".join(current))
                current, size = [], 0
            current.append(sent)
            size += n
        if size >= min_syllables:  # a paragraph bound ends a passage unless it is still short
            out.append(" ".join(current))
            current, size = [], 0
    if current:
        out.append(" ".join(current))
    return out


def load_documents(path: str | Path, field: str = "text") -> Iterator[tuple[str, str, str]]:
    """``(doc_id, title, text)`` of each document: a ``.txt``/``.md`` file is one document, a
    ``.jsonl(.gz)`` file one per line (``text``, optional ``title`` and ``id``/``url``), a folder
    all of those inside it."""
    from vinaforge.io import iter_jsonl

    p = Path(path)
    if p.is_dir():
        for child in sorted(p.rglob("*")):
            if child.is_file() and (child.suffix in {".txt", ".md"} or child.name.endswith((".jsonl", ".jsonl.gz"))):
                yield from load_documents(child, field)
        return
    if not p.exists():
        raise DocumentError(f"{p}: no such file or folder")
    if p.name.endswith((".jsonl", ".jsonl.gz")):
        for lineno, rec in iter_jsonl(p, error=DocumentError, strict_utf8=True):
            text = rec.get(field)
            if not isinstance(text, str):
                raise DocumentError(f"{p}:{lineno}: no text field {field!r}")
            doc = str(rec.get("id") or rec.get("url") or f"{p.name}:{lineno}")
            yield doc, str(rec.get("title") or ""), text
        return
    yield p.name, p.stem, _read_text(p)


def _read_text(p: Path) -> str:
    from vinaforge.io import iter_strict_lines

    try:
        return "".join(iter_strict_lines(p, DocumentError))
    except OSError as err:
        raise DocumentError(f"{p}: cannot be read ({err.strerror or err})") from err


def passages_of(docs, max_syllables: int = 120) -> list[Passage]:
    """Number the passages of ``(doc_id, title, text)`` documents from 0."""
    if max_syllables < 1:
        raise DocumentError(f"max_syllables must be at least 1, got {max_syllables}")
    out: list[Passage] = []
    for doc, title, text in docs:
        for chunk in chunk_document(text, max_syllables):
            out.append(Passage(len(out), doc, chunk, title))
    return out

"""Protect-and-restore: what a translation must keep byte for byte never reaches the model as prose.

A message is cut into a *skeleton* of kept pieces (fenced code blocks, Markdown line prefixes
such as ``## ``, ``- ``, ``1. ``, ``> ``, table pipes and separator rows, blank lines) and
*units* of prose. Inside a unit, inline code, URLs, e-mail addresses, numbers with their units
and placeholders (``{name}``, ``{{var}}``, ``%s``, ``%(name)d``, ``$1``) are swapped for markers
``⟦0⟧``, ``⟦1⟧``... that the prompt asks the model to copy. After translation every marker must
come back exactly once, and the original span is put back in its place; a missing or repeated
marker is a rejected record, never a silently damaged one. Units longer than ``max_chars`` are
cut at sentence boundaries (:func:`vinaforge.text.sentences.split_sentences`) and rejoined.

Hand-written: translation-memory tools do this for XLIFF, not for Markdown chat data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MARK_RE = re.compile(r"⟦(\d+)⟧")
FENCE_RE = re.compile(r"^(```|~~~)[^\n]*\n.*?^\1[ \t]*$\n?", re.S | re.M)
LINE_PREFIX_RE = re.compile(r"^(\s*(?:#{1,6}\s+|>\s*|[-*+]\s+(?:\[[ xX]\]\s+)?|\d+[.)]\s+)*)")
TABLE_SEP_RE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
RULE_RE = re.compile(r"^\s*([-*_])(\s*\1){2,}\s*$")
UNITS = r"(?:%|‰|°[CF]?|km/h|km|kg|mg|ml|mm|cm|m²|m2|m|g|l|L|s|ms|h|GB|MB|KB|TB|kB|Hz|kHz|MHz|GHz|V|W|kW|USD|VND|\$|€)"
INLINE_RE = re.compile(
    r"(?P<code>`+[^`\n]+?`+)"
    r"|(?P<url>\b(?:https?|ftp)://[^\s<>()\"'`]+[^\s<>()\"'`.,;:!?])"
    r"|(?P<email>\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b)"
    r"|(?P<ph>\{\{[^{}\n]{1,60}\}\}|\{[A-Za-z_][\w.]{0,40}\}|\{\d*\}|%\([A-Za-z_]\w*\)[sdifr]|%[-+ 0#]?\d*(?:\.\d+)?[sdifrxXeEgGc%]|\$\d+)"
    r"|(?P<num>(?<![\w.])[-+]?\$?\d+(?:[.,:/]\d+)*(?:\s?" + UNITS + r")?(?![\w]))"
)


@dataclass
class Unit:
    """A piece of prose to translate, with its markers' original spans."""

    text: str
    spans: list[str] = field(default_factory=list)


@dataclass
class Skeleton:
    """A message as kept strings and unit slots (``int`` = index into ``units``)."""

    parts: list[str | int]
    units: list[Unit]

    @property
    def protected(self) -> list[str]:
        """Every span that must appear verbatim in the translation (code, URLs, numbers...)."""
        keep = [p for p in self.parts if isinstance(p, str) and p.strip() and not _is_markup(p)]
        return keep + [s for u in self.units for s in u.spans]


def _is_markup(piece: str) -> bool:
    """Markdown scaffolding (prefixes, pipes, rules): structure, not content the check counts."""
    return (
        not re.search(r"\w", piece)
        or bool(LINE_PREFIX_RE.fullmatch(piece))
        or bool(TABLE_SEP_RE.match(piece))
    )


def protect_inline(text: str) -> Unit:
    """Swap inline spans for markers."""
    spans: list[str] = []

    def sub(m: re.Match[str]) -> str:
        spans.append(m.group(0))
        return f"⟦{len(spans) - 1}⟧"

    return Unit(INLINE_RE.sub(sub, text), spans)


def restore(unit: Unit, translated: str) -> tuple[str | None, str | None]:
    """Put the spans back; ``(None, reason)`` when a marker is missing, repeated or invented."""
    found = [int(i) for i in MARK_RE.findall(translated)]
    expected = list(range(len(unit.spans)))
    if sorted(found) != expected:
        missing = sorted(set(expected) - set(found))
        extra = sorted({i for i in found if found.count(i) > 1 or i >= len(unit.spans)})
        what = []
        if missing:
            what.append("lost " + ", ".join(repr(unit.spans[i][:40]) for i in missing[:3]))
        if extra:
            what.append(f"repeated or invented markers {extra[:3]}")
        return None, "protected spans not preserved: " + "; ".join(what)
    return MARK_RE.sub(lambda m: unit.spans[int(m.group(1))], translated), None


def _line_parts(line: str) -> list[str | Unit]:
    if not line.strip() or TABLE_SEP_RE.match(line) or RULE_RE.match(line):
        return [line]
    if line.lstrip().startswith("|"):  # a table row: translate each cell, keep the pipes
        out: list[str | Unit] = []
        for i, cell in enumerate(line.split("|")):
            if i:
                out.append("|")
            lead = cell[: len(cell) - len(cell.lstrip())]
            body = cell.strip()
            trail = cell[len(lead) + len(body) :]
            out.extend([lead, protect_inline(body), trail] if body else [cell])
        return out
    prefix = LINE_PREFIX_RE.match(line).group(1)
    body = line[len(prefix) :]
    trail = body[len(body.rstrip()) :]
    body = body.rstrip()
    return [prefix, protect_inline(body), trail] if body else [line]


def skeleton(text: str) -> Skeleton:
    """Cut a message into kept pieces and units of prose."""
    parts: list[str | int] = []
    units: list[Unit] = []
    pos = 0
    for m in [*FENCE_RE.finditer(text), None]:
        chunk = text[pos : m.start()] if m else text[pos:]
        for line in chunk.splitlines(keepends=True):
            nl = line[len(line.rstrip("\r\n")) :]
            for piece in _line_parts(line.rstrip("\r\n")):
                if isinstance(piece, Unit):
                    if MARK_RE.sub("", piece.text).strip(" \t") and re.search(
                        r"[^\W\d_]", MARK_RE.sub("", piece.text)
                    ):
                        parts.append(len(units))
                        units.append(piece)
                    else:  # nothing to translate: numbers, code, a URL alone
                        parts.append(restore(piece, piece.text)[0] or "")
                elif piece:
                    parts.append(piece)
            if nl:
                parts.append(nl)
        if m:
            parts.append(m.group(0))
            pos = m.end()
    return Skeleton(parts, units)


def assemble(sk: Skeleton, translations: list[str]) -> str:
    return "".join(p if isinstance(p, str) else translations[p] for p in sk.parts)


def chunk_text(text: str, max_chars: int) -> list[str]:
    """``text`` in pieces of at most ``max_chars`` cut at sentence boundaries (a longer sentence stays whole)."""
    if len(text) <= max_chars:
        return [text]
    from vinaforge.text.sentences import split_sentences

    chunks: list[str] = []
    cur = ""
    for sent in split_sentences(text):
        if cur and len(cur) + 1 + len(sent) > max_chars:
            chunks.append(cur)
            cur = sent
        else:
            cur = f"{cur} {sent}" if cur else sent
    if cur:
        chunks.append(cur)
    return chunks


def split_unit(unit: Unit, max_chars: int) -> list[Unit]:
    """A long unit as several units, each with only its own markers (renumbered from 0)."""
    pieces = chunk_text(unit.text, max_chars)
    if len(pieces) == 1:
        return [unit]
    out = []
    for piece in pieces:
        spans: list[str] = []

        def renumber(m: re.Match[str], spans: list[str] = spans) -> str:
            spans.append(unit.spans[int(m.group(1))])
            return f"⟦{len(spans) - 1}⟧"

        out.append(Unit(MARK_RE.sub(renumber, piece), spans))
    return out

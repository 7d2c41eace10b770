"""Show how texts split into tokens, several tokenizers side by side (base against extended).

Each token is shown as the slice of the original text it covers (from the fast tokenizer's
offsets), so byte-level and byte-fallback tokens stay readable: the bytes of one character
split over several tokens show as that character with a count (``ờ×3``). New tokens of an
extended tokenizer (ids at or beyond the base's size) can be highlighted.

Hand-written: a few lines over ``tokenizers`` offsets and a rich table.
"""

from __future__ import annotations

from dataclasses import dataclass

from vinaforge.tokenizer.fertility import backend_of


@dataclass
class Split:
    name: str
    pieces: list[str]
    piece_ids: list[int]
    """Id of each shown piece (the first token's, for a character split over byte tokens)."""
    n_tokens: int


def split_text(backend, text: str) -> Split:
    """Token surface strings (space shown as ``▁``); byte pieces of one character are grouped."""
    enc = backend.encode(text, add_special_tokens=False)
    pieces: list[str] = []
    piece_ids: list[int] = []
    prev: tuple[int, int] | None = None
    repeat = 1
    for tid, (s, e) in zip(enc.ids, enc.offsets, strict=True):
        if prev == (s, e) and pieces:
            repeat += 1
            pieces[-1] = f"{pieces[-1].split('×')[0]}×{repeat}"
            continue
        repeat = 1
        surface = text[s:e]
        if s > 0 and text[s - 1] == " " and (prev is None or prev[1] < s):
            surface = " " + surface  # the space a Metaspace/byte-level token carries
        pieces.append(surface.replace(" ", "▁"))
        piece_ids.append(tid)
        prev = (s, e)
    return Split("", pieces, piece_ids, len(enc.ids))


def inspect_texts(tokenizers: list[tuple[str, object]], texts: list[str]) -> list[list[Split]]:
    """For each text, the split of every tokenizer (name, transformers tokenizer)."""
    backends = [(name, backend_of(tok)) for name, tok in tokenizers]
    out = []
    for text in texts:
        row = []
        for name, backend in backends:
            split = split_text(backend, text)
            split.name = name
            row.append(split)
        out.append(row)
    return out


def render(rows: list[list[Split]], texts: list[str], new_from: dict[str, int] | None = None) -> None:
    """Print a rich table per text: tokenizer, token count, the split (new tokens in green)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    new_from = new_from or {}
    for text, row in zip(texts, rows, strict=True):
        table = Table(
            title=text if len(text) <= 100 else text[:97] + "...", show_lines=True, title_justify="left"
        )
        table.add_column("tokenizer", no_wrap=True)
        table.add_column("tokens", justify="right")
        table.add_column("split", overflow="fold")
        for split in row:
            first_new = new_from.get(split.name)
            line = Text()
            for i, (piece, tid) in enumerate(zip(split.pieces, split.piece_ids, strict=True)):
                if i:
                    line.append("|", style="dim")
                is_new = first_new is not None and tid >= first_new
                line.append(piece, style="bold green" if is_new else None)
            table.add_row(split.name, str(split.n_tokens), line)
        console.print(table)

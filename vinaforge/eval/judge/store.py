"""Append-only JSONL logs that survive interruption (answers and judgments).

Answer and judgment files grow one record per model call, and a judging run makes hundreds of
calls: rewriting the whole file through :func:`vinaforge.io.atomic_path` after every call would be
quadratic. Instead each batch of finished records is appended as whole lines, flushed and
fsynced. A process killed mid-write can leave at most one incomplete last line; the next
:func:`read_jsonl` (with ``repair=True``) cuts it off, so the file is again a sequence of complete
records and the interrupted calls are simply redone. A malformed line anywhere else is an error
naming the file and line. Later records supersede earlier ones with the same key, so a failed
call that is retried on resume replaces its failure record. Hand-written: a few lines of glue.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from vinaforge.io import iter_jsonl

log = logging.getLogger(__name__)


class RecordFileError(ValueError):
    """A JSONL record file that cannot be read; the message names the file and line."""


def _repair_tail(path: Path) -> None:
    """Cut an incomplete last line (no final newline) left by an interrupted append."""
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    keep = data.rfind(b"\n") + 1
    log.warning(
        "%s: dropping an incomplete last line (%d bytes) left by an interrupted run", path, len(data) - keep
    )
    with open(path, "rb+") as fh:
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: str | os.PathLike, repair: bool = False) -> list[dict[str, Any]]:
    """All records of a JSONL file (empty list when absent); bad lines raise naming file:line."""
    p = Path(path)
    if not p.exists():
        return []
    if repair:
        _repair_tail(p)
    return [rec for _, rec in iter_jsonl(p, error=RecordFileError)]


def append_jsonl(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> int:
    """Append whole lines, then flush and fsync; returns how many records were written."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in records]
    if not lines:
        return 0
    with open(p, "a", encoding="utf-8") as fh:
        fh.write("".join(lines))
        fh.flush()
        os.fsync(fh.fileno())
    return len(lines)


def latest_by_key(records: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], Any]) -> dict[Any, dict]:
    """The last record for each key, in order of first appearance."""
    out: dict[Any, dict] = {}
    for rec in records:
        out[key(rec)] = rec
    return out

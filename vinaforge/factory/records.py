"""Records as the factory sees them: plain dicts, their texts, and stable ids.

Every factory tool reads chat data through :mod:`vinaforge.chat` (all its formats, with rejected
records and reasons) or plain ``{"text": ...}`` documents, and needs three things of a record:
the texts in it (for n-gram overlap), a stable id (for caches, reports and resume) and a way to
write it back. Hand-written glue.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from typing import Any

SKIP_KEYS = frozenset({"id", "role", "from", "answer", "label", "source", "format", "subject", "category"})


def as_dict(record: Any) -> dict[str, Any]:
    """A record (``Conversation``, ``Preference``, dict or plain string) as a JSON-ready dict."""
    if isinstance(record, dict):
        return record
    if isinstance(record, str):
        return {"text": record}
    if hasattr(record, "to_dict"):
        return record.to_dict()
    raise TypeError(f"cannot use a {type(record).__name__} as a record")


def texts_of(obj: Any, skip: frozenset[str] = SKIP_KEYS) -> Iterator[str]:
    """Every string inside a record (message contents, prompt, reply, text...), keys in ``skip`` aside."""
    if isinstance(obj, str):
        if obj.strip():
            yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            if k not in skip:
                yield from texts_of(v, skip)
    elif isinstance(obj, list | tuple):
        for v in obj:
            yield from texts_of(v, skip)


def record_id(record: dict[str, Any], fallback: str | None = None) -> str:
    """The record's own id, else ``fallback`` (its source position), else a content hash."""
    rid = record.get("id")
    if rid is not None:
        return str(rid)
    if fallback:
        return fallback
    return hashlib.sha1(json.dumps(record, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def text_key(*parts: str) -> str:
    """A stable sha256 over several strings (cache keys, seeds)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


def total_bytes(records: Iterable[dict[str, Any]]) -> int:
    return sum(len(t.encode("utf-8")) for r in records for t in texts_of(r))

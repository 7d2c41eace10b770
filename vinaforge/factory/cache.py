"""A call cache keyed by (model, prompt template, source text), so that no call is ever paid twice.

A re-run, a resumed run or another dataset with the same sentences reuses every answer already
received. Only successful answers are stored (a failed call is tried again next time). SQLite in
WAL mode lets several datatrove worker processes share one cache file; each insert is its own
transaction, so a killed run loses at most the calls still in flight.

Library: the standard library's ``sqlite3``. Hand-written: the key and the schema.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from vinaforge.factory.records import text_key


class CallCache:
    """``get``/``put`` completions by key; ``hits`` and ``misses`` count this process's lookups."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self.hits = 0
        self.misses = 0
        with self._conn() as con:
            con.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, text TEXT NOT NULL, "
                        "prompt_tokens INTEGER, completion_tokens INTEGER, meta TEXT)")  # fmt: skip

    def _conn(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            self._local.con = con
        return con

    @staticmethod
    def key(model: str, template: str, source: str) -> str:
        return text_key(model, template, source)

    def get(self, key: str) -> dict[str, Any] | None:
        row = (
            self._conn()
            .execute("SELECT text, prompt_tokens, completion_tokens FROM calls WHERE key = ?", (key,))
            .fetchone()
        )
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return {"text": row[0], "prompt_tokens": row[1], "completion_tokens": row[2]}

    def put(
        self, key: str, text: str, prompt_tokens: int = 0, completion_tokens: int = 0, **meta: Any
    ) -> None:
        self._conn().execute("INSERT OR REPLACE INTO calls VALUES (?, ?, ?, ?, ?)",
                             (key, text, prompt_tokens, completion_tokens, json.dumps(meta)))  # fmt: skip

    def __len__(self) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM calls").fetchone()[0]

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

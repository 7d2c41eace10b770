"""Helpers for the curation tests: writing inputs, reading outputs, near-duplicate edits."""

from __future__ import annotations

import gzip
import json
import os
import random
import re
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "corpus"
_WORD_RE = re.compile(r"\w+")


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return path


def read_jsonl(path: str | Path, limit: int | None = None) -> list[dict]:
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    out = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if limit is not None and len(out) >= limit:
                break
            out.append(json.loads(line))
    return out


def read_folder(folder: Path) -> list[dict]:
    """Every record of every ``*.jsonl.gz`` under ``folder`` (sorted by path)."""
    out = []
    for f in sorted(folder.rglob("*.jsonl.gz")):
        out.extend(read_jsonl(f))
    return out


def near_copy(text: str, frac: float = 0.05, seed: int = 0) -> str:
    """``text`` with word-level edits (replace, delete or insert a syllable, one-letter typos)
    until about ``frac`` of its characters have changed: how a re-published article differs."""
    rng = random.Random(seed)
    spans = [m.span() for m in _WORD_RE.finditer(text)]
    vocab = [text[a:b] for a, b in spans]
    ops, changed = [], 0
    while changed < frac * len(text):
        i = rng.randrange(len(spans))
        a, b = spans[i]
        op = rng.random()
        if op < 0.4:
            rep = rng.choice(vocab)
            ops.append((a, b, rep))
            changed += max(b - a, len(rep))
        elif op < 0.6:
            ops.append((a, b, ""))
            changed += b - a + 1
        elif op < 0.8:
            rep = rng.choice(vocab)
            ops.append((a, a, rep + " "))
            changed += len(rep) + 1
        else:
            k = rng.randrange(a, b)
            ops.append((k, k + 1, rng.choice("abcdeghiklmnopqrstuvxy")))
            changed += 1
    out, last = text, len(text) + 1
    for a, b, rep in sorted(ops, key=lambda o: o[0], reverse=True):
        if b > last:
            continue
        out = out[:a] + rep + out[b:]
        last = a
    return out

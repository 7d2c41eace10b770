"""Read conversations, prompts and preference pairs from the formats users actually have.

Formats (``format="auto"`` detects them per record from its keys):

- ``messages``: OpenAI ``{"messages": [{"role", "content"}, ...]}``;
- ``sharegpt``: ``{"conversations": [{"from": "human"|"gpt"|"system", "value"}, ...]}``;
- ``alpaca``: ``{"instruction", "input"?, "output", "system"?}``;
- ``prompt_response``: ``{"prompt", "response"}`` (also ``completion`` / ``output``), the format
  of ``shared/data/instruct``; the prompt may itself be a message list;
- ``preference``: ``{"prompt", "chosen", "rejected"}``, plain strings or TRL's conversational
  form, with an explicit prompt or the prompt implicit in both replies.

Sources: a JSONL/JSONL.gz/JSON/Parquet file, a folder of them, or ``hf:ORG/NAME[:SPLIT]`` (a
``datasets`` hub id, or a local ``save_to_disk`` folder). A record that cannot be used becomes a
:class:`Rejected` with ``file:line`` and its reason; ``ReadResult`` counts add up
(``n_in == len(kept) + len(rejected)``).

Hand-written glue: each format's field mapping is a few lines; ``datasets`` does the hub part.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vinaforge.chat.conversation import (
    Conversation,
    ConversationError,
    Preference,
    Rejected,
    validate_messages,
    validate_preference,
)

Format = Literal["auto", "messages", "sharegpt", "alpaca", "prompt_response", "preference"]
Kind = Literal["conversation", "prompt", "preference"]
FORMATS: tuple[str, ...] = ("auto", "messages", "sharegpt", "alpaca", "prompt_response", "preference")
FILE_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".parquet")
SHAREGPT_ROLES = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "bot": "assistant",
    "chatgpt": "assistant", "model": "assistant", "system": "system",
}  # fmt: skip
REPLY_KEYS = ("response", "completion", "output")
META_SKIP = {"messages", "conversations", "instruction", "input", "output", "prompt", "response",
             "completion", "chosen", "rejected", "system", "id"}  # fmt: skip


class ChatFormatError(ValueError):
    """A source that cannot be read at all (unknown format, missing file, no records)."""


@dataclass
class ReadResult:
    """Usable records, rejected ones with their reasons, and how many came in."""

    kept: list[Any] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    @property
    def n_in(self) -> int:
        return len(self.kept) + len(self.rejected)

    def reasons(self) -> dict[str, int]:
        """Rejection counts by reason (the part before the first colon)."""
        counts: dict[str, int] = {}
        for r in self.rejected:
            key = r.reason.split(":")[0]
            counts[key] = counts.get(key, 0) + 1
        return counts


# ----------------------------------------------------------------------------- format detection


def detect_format(record: dict[str, Any]) -> str:
    """Which format a record is in, judged from its keys."""
    if "chosen" in record and "rejected" in record:
        return "preference"
    if "messages" in record:
        return "messages"
    if "conversations" in record:
        convs = record["conversations"]
        if isinstance(convs, list) and convs and isinstance(convs[0], dict) and "role" in convs[0]:
            return "messages"
        return "sharegpt"
    if "instruction" in record:
        return "alpaca"
    if "prompt" in record:
        return "prompt_response"
    keys = ", ".join(sorted(record)[:8]) or "none"
    raise ConversationError(f"unknown format: keys {keys}; expected one of {', '.join(FORMATS[1:])}")


def _as_messages(value: Any, role: str) -> list[dict[str, Any]]:
    """A string becomes one message of ``role``; a list is taken as messages."""
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return value
    raise ConversationError(f"expected text or a message list, got {type(value).__name__}")


def _messages_of(record: dict[str, Any], fmt: str) -> list[dict[str, Any]]:
    if fmt == "messages":
        msgs = record.get("messages", record.get("conversations"))
        if not isinstance(msgs, list):
            raise ConversationError("'messages' is not a list")
        return msgs
    if fmt == "sharegpt":
        turns = record.get("conversations")
        if not isinstance(turns, list):
            raise ConversationError("'conversations' is not a list")
        msgs = []
        for i, turn in enumerate(turns):
            if not isinstance(turn, dict) or "from" not in turn:
                raise ConversationError(f"turn {i} has no 'from'")
            role = SHAREGPT_ROLES.get(str(turn["from"]).lower())
            if role is None:
                raise ConversationError(f"turn {i} has unknown speaker {turn['from']!r}")
            msgs.append({"role": role, "content": turn.get("value")})
        if record.get("system") and (not msgs or msgs[0]["role"] != "system"):
            msgs.insert(0, {"role": "system", "content": record["system"]})
        return msgs
    if fmt == "alpaca":
        instruction = record.get("instruction")
        if not isinstance(instruction, str):
            raise ConversationError("'instruction' is missing or not text")
        extra = record.get("input") or ""
        if not isinstance(extra, str):
            raise ConversationError("'input' is not text")
        user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
        msgs = [{"role": "user", "content": user}]
        if record.get("system"):
            msgs.insert(0, {"role": "system", "content": record["system"]})
        if "output" in record:
            msgs.append({"role": "assistant", "content": record["output"]})
        return msgs
    if fmt == "prompt_response":
        msgs = _as_messages(record.get("prompt"), "user")
        if record.get("system") and msgs[0].get("role") != "system":
            msgs = [{"role": "system", "content": record["system"]}, *msgs]
        for key in REPLY_KEYS:
            if key in record:
                msgs = [*msgs, *_as_messages(record[key], "assistant")]
                break
        return msgs
    raise ConversationError(f"format {fmt!r} holds preference pairs, not conversations")


def _preference_of(record: dict[str, Any]) -> Preference:
    chosen = _as_messages(record.get("chosen"), "assistant")
    rejected = _as_messages(record.get("rejected"), "assistant")
    if "prompt" in record and record["prompt"] is not None:
        prompt = _as_messages(record["prompt"], "user")
        if record.get("system") and prompt[0].get("role") != "system":
            prompt = [{"role": "system", "content": record["system"]}, *prompt]
    else:  # implicit prompt: both replies carry the same conversation before the final answer
        n = 0
        while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
            n += 1
        if n == 0:
            raise ConversationError("no 'prompt' and no shared prompt inside chosen/rejected")
        prompt, chosen, rejected = chosen[:n], chosen[n:], rejected[n:]
    return Preference(prompt, chosen, rejected)


def _meta(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in META_SKIP}


def parse_record(record: Any, *, fmt: str = "auto", kind: Kind = "conversation") -> Conversation | Preference:
    """One raw record → a validated :class:`Conversation` or :class:`Preference`.

    ``kind="prompt"`` accepts records with or without a final reply and returns the
    conversation cut before it (what a model is asked to answer).
    """
    if not isinstance(record, dict):
        raise ConversationError(f"expected a JSON object, got {type(record).__name__}")
    if fmt not in FORMATS:
        raise ChatFormatError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    fmt = detect_format(record) if fmt == "auto" else fmt
    rid = record.get("id")
    rid = None if rid is None else str(rid)
    if kind == "preference":
        if fmt != "preference":
            raise ConversationError(f"record is in {fmt!r} format, not a preference pair (prompt/chosen/rejected)")
        pref = _preference_of(record)
        pref.id, pref.meta = rid, _meta(record)
        return validate_preference(pref)
    if fmt == "preference":  # SFT on preference data: train on the chosen reply
        pref = validate_preference(_preference_of(record))
        msgs = [*pref.prompt, *pref.chosen]
    else:
        msgs = _messages_of(record, fmt)
    if kind == "prompt":
        clean = validate_messages(msgs, require_reply=False)
        if clean[-1]["role"] == "assistant":
            clean = clean[:-1]
        return Conversation(clean, rid, _meta(record))
    return Conversation(validate_messages(msgs), rid, _meta(record))


# ----------------------------------------------------------------------------- sources


def _open(path: Path) -> io.TextIOBase:
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="strict")
    return open(path, encoding="utf-8", errors="strict")


def _raw_records_of_file(path: Path) -> Iterator[tuple[str, Any]]:
    """``(where, record or exception)`` for every record of one file, bad lines included."""
    name = path.name
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
            yield str(path), ConversationError(f"damaged or not a parquet file ({err})")
            return
        for i, rec in enumerate(rows):
            yield f"{path}#{i}", rec
        return
    if name.endswith((".json", ".json.gz")):
        try:
            with _open(path) as fh:
                text = fh.read()
        except UnicodeDecodeError as err:
            yield str(path), ConversationError(f"not valid UTF-8 ({err.reason} at byte {err.start})")
            return
        except (EOFError, OSError, zlib.error) as err:
            yield str(path), ConversationError(f"truncated or damaged file ({err})")
            return
        if text.lstrip().startswith("["):
            try:
                data = json.loads(text)
            except json.JSONDecodeError as err:
                yield f"{path}:{err.lineno}", ConversationError(f"not valid JSON ({err.msg})")
                return
            for i, rec in enumerate(data):
                yield f"{path}#{i}", rec
            return
        lines: Iterable[str] = text.splitlines()
    else:
        lines = _iter_lines(path)
    for lineno, line in enumerate(lines, 1):
        if isinstance(line, Exception):
            yield f"{path}:{lineno}", line
            return
        if not line.strip():
            continue
        try:
            yield f"{path}:{lineno}", json.loads(line)
        except json.JSONDecodeError as err:
            yield f"{path}:{lineno}", ConversationError(f"not valid JSON ({err.msg})")


def _iter_lines(path: Path) -> Iterator[str | Exception]:
    try:
        with _open(path) as fh:
            yield from fh
    except UnicodeDecodeError as err:
        yield ConversationError(f"invalid UTF-8 ({err.reason})")
    except (EOFError, gzip.BadGzipFile, OSError) as err:
        yield ConversationError(f"truncated or damaged file ({err})")


def _raw_records_of_hf(spec: str) -> Iterator[tuple[str, Any]]:
    """Records of a hub dataset or a ``save_to_disk`` folder; one that cannot be loaded (not on
    the hub or offline, a damaged Arrow file) is a one-line error naming it, not a traceback."""
    name, _, split = spec[3:].partition(":")
    split = split or "train"
    try:
        ds = _load_hf(name, split)
        for i, rec in enumerate(ds):
            yield f"hf:{name}[{split}]#{i}", rec
    except ChatFormatError:
        raise
    except Exception as err:  # datasets and pyarrow raise many kinds; all mean "cannot read it"
        raise ChatFormatError(f"{spec}: cannot load the dataset ({type(err).__name__}: {str(err)[:300]})") from err


def _load_hf(name: str, split: str):
    local = Path(name)
    if local.is_dir() and ((local / "dataset_info.json").is_file() or (local / "state.json").is_file()
                           or (local / "dataset_dict.json").is_file()):
        from datasets import DatasetDict, load_from_disk

        ds = load_from_disk(str(local))
        if isinstance(ds, DatasetDict):
            if split not in ds:
                raise ChatFormatError(f"hf:{name}: no split {split!r} (splits: {', '.join(ds)})")
            ds = ds[split]
        return ds
    from datasets import load_dataset

    return load_dataset(name, split=split, streaming=True)


def expand_sources(sources: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """Files to read, in a stable order; folders expand to their data files."""
    items = [sources] if isinstance(sources, str | os.PathLike) else list(sources)
    out: list[str] = []
    for item in items:
        text = str(item)
        if text.startswith("hf:"):
            out.append(text)
            continue
        p = Path(text)
        if p.is_dir():
            files = sorted(str(q) for q in p.rglob("*") if q.is_file() and q.name.endswith(FILE_SUFFIXES))
            if not files:
                raise ChatFormatError(f"{p}: folder holds no {'/'.join(FILE_SUFFIXES)} files")
            out.extend(files)
        elif p.is_file():
            out.append(text)
        else:
            raise ChatFormatError(f"{p}: no such file or folder")
    return out


def iter_raw_records(sources: str | os.PathLike | Iterable[str | os.PathLike]) -> Iterator[tuple[str, Any]]:
    """``(where, raw record)`` of every source, or ``(where, error)`` for an unreadable line.

    For readers of record shapes this module does not parse (ranked lists, benchmark items).
    """
    for src in expand_sources(sources):
        yield from (_raw_records_of_hf(src) if src.startswith("hf:") else _raw_records_of_file(Path(src)))


def iter_records(
    sources: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    format: str = "auto",
    kind: Kind = "conversation",
) -> Iterator[Conversation | Preference | Rejected]:
    """Every record of every source, parsed, or a :class:`Rejected` saying where and why."""
    if format not in FORMATS:
        raise ChatFormatError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    for src in expand_sources(sources):
        raw = _raw_records_of_hf(src) if src.startswith("hf:") else _raw_records_of_file(Path(src))
        for where, rec in raw:
            if isinstance(rec, Exception):
                yield Rejected(where, str(rec), None)
                continue
            try:
                yield parse_record(rec, fmt=format, kind=kind)
            except ConversationError as err:
                yield Rejected(where, str(err), rec)


def read_records(
    sources: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    format: str = "auto",
    kind: Kind = "conversation",
    allow_empty: bool = False,
) -> ReadResult:
    """All records in memory, split into kept and rejected; empty input is an error by default."""
    result = ReadResult()
    for item in iter_records(sources, format=format, kind=kind):
        (result.rejected if isinstance(item, Rejected) else result.kept).append(item)
    if not result.kept and not allow_empty:
        srcs = ", ".join(expand_sources(sources))
        detail = f"; first rejection: {result.rejected[0].source}: {result.rejected[0].reason}" if result.rejected else ""
        raise ChatFormatError(f"{srcs}: no usable {kind} records ({result.n_in} read){detail}")
    return result


def read_conversations(sources, *, format: str = "auto", allow_empty: bool = False) -> ReadResult:
    return read_records(sources, format=format, kind="conversation", allow_empty=allow_empty)


def read_prompts(sources, *, format: str = "auto", allow_empty: bool = False) -> ReadResult:
    return read_records(sources, format=format, kind="prompt", allow_empty=allow_empty)


def read_preferences(sources, *, format: str = "auto", allow_empty: bool = False) -> ReadResult:
    return read_records(sources, format=format, kind="preference", allow_empty=allow_empty)


def write_jsonl(path: str | os.PathLike, records: Iterable[Any]) -> int:
    """Write records (dataclasses with ``to_dict`` or plain dicts) atomically; returns the count."""
    from vinaforge.io import atomic_path

    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for rec in records:
            obj = rec.to_dict() if hasattr(rec, "to_dict") else rec
            fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
            n += 1
    return n

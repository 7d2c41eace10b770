"""Pack curated shards into memory-mapped token files, one folder per data source.

Each source becomes ``tokens.bin`` (uint16 or uint32 ids, documents back to back, each closed by
EOS), ``docs.npy`` (the offset where each document starts: the doc-boundary index), optionally
``loss_mask.bin`` (uint8, 0 for prompt tokens of translation/instruction examples),
``rejected.jsonl`` (records left out, each with its reason) and ``meta.json`` (counts that add up,
the tokenizer fingerprint, the cache key). Training reads fixed-length blocks straight from the
memory map, so a corpus larger than RAM costs no memory and no start-up time.

With ``doc_masking``, :meth:`PackedSource.block` also returns position ids that restart at 0 at
each document start. transformers 5 turns such position ids into a block-diagonal causal mask for
``sdpa``/``eager``/``flex_attention`` when no attention mask is passed (``find_packed_sequence_indices``
in ``masking_utils``), and into variable-length kernels for ``flash_attention_2/3`` when the batch is
flattened into one row (``_is_packed_sequence``); the engine does that flattening.

Hand-written: the on-disk format is the usual nanoGPT/Megatron style (raw ids + index), which no
installed library writes for an arbitrary HF tokenizer with loss masks; numpy's memmap does the I/O.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vinaforge.io import atomic_write_json, expand_inputs, iter_jsonl, iter_texts, sha256_path
from vinaforge.train.config import SourceConfig
from vinaforge.train.examples import (
    DEFAULT_TRANSLATION_TEMPLATE,
    IGNORE_INDEX,
    Example,
    encode_conversation,
    encode_examples,
    translation_examples,
)

log = logging.getLogger(__name__)

PACK_FORMAT = 1
RECORD_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".parquet")


class PackingError(ValueError):
    """A source that cannot be packed; the message names the source and the file."""


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of everything that decides token ids: the fast tokenizer's full JSON, or the vocab."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        blob = backend.to_str()
    else:
        blob = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False)
    specials = json.dumps([tokenizer.bos_token_id, tokenizer.eos_token_id, len(tokenizer)])
    return hashlib.sha256((blob + specials).encode()).hexdigest()


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= np.iinfo(np.uint16).max + 1 else np.dtype(np.uint32)


# ----------------------------------------------------------------------------- reading records


@dataclass
class Record:
    """One input record: a plain document or an example with a prompt, and where it came from."""

    file: str
    line: int
    text: str | None = None
    examples: list[Example] | None = None
    messages: list[dict] | None = None  # kind: instruct (a vinaforge.chat conversation)


def _iter_json_records(path: Path) -> Iterator[tuple[int, dict]]:
    if path.name.endswith(".parquet"):
        import pyarrow.parquet as pq

        yield from enumerate(pq.read_table(path).to_pylist(), 1)
        return
    yield from iter_jsonl(path, error=PackingError)


def _field(rec: dict, name: str, path: Path, lineno: int) -> str:
    if name not in rec:
        raise PackingError(f"{path}:{lineno}: record has no field {name!r} (fields: {', '.join(rec)})")
    value = rec[name]
    return "" if value is None else str(value)


def iter_records(
    cfg: SourceConfig, files: list[Path], rejects: Callable[[Record, str, dict], None]
) -> Iterator[Record]:
    """Records of a source, in file order; unusable ones go to ``rejects`` with a reason."""
    for path in files:
        if cfg.kind == "text":
            for i, text in enumerate(iter_texts(path, cfg.field, error=PackingError), 1):
                rec = Record(str(path), i, text=text)
                if not text.strip():
                    rejects(rec, "empty text", {})
                    continue
                yield rec
            continue
        if not path.name.endswith(RECORD_SUFFIXES):
            raise PackingError(f"{path}: a {cfg.kind} source needs JSONL(.gz) or parquet records")
        for lineno, raw in _iter_json_records(path):
            if cfg.kind == "parallel":
                src = _field(raw, cfg.src_field, path, lineno).strip()
                tgt = _field(raw, cfg.tgt_field, path, lineno).strip()
                rec = Record(str(path), lineno)
                if not src or not tgt:
                    rejects(rec, "empty side", raw)
                    continue
                if src == tgt:
                    rejects(rec, "identical sides (untranslated)", raw)
                    continue
                rec.examples = translation_examples(
                    src,
                    tgt,
                    cfg.src_field,
                    cfg.tgt_field,
                    cfg.directions,
                    cfg.prompt_template or DEFAULT_TRANSLATION_TEMPLATE,
                )
            else:  # instruct
                rec = Record(str(path), lineno)
                try:
                    rec.messages = conversation_of(raw, cfg)
                except ValueError as err:  # vinaforge.chat's reason: bad role order, empty turn, ...
                    rejects(rec, str(err), raw)
                    continue
            yield rec


def conversation_of(raw: dict, cfg: SourceConfig) -> list[dict]:
    """The validated messages of one instruct record, in any format vinaforge.chat reads."""
    from vinaforge.chat import parse_record

    if cfg.prompt_field != "prompt" or cfg.response_field != "response":
        raw = dict(raw)
        for field, key in ((cfg.prompt_field, "prompt"), (cfg.response_field, "response")):
            if field in raw:
                raw[key] = raw.pop(field)
    return parse_record(raw, fmt=cfg.format, kind="conversation").messages


# ----------------------------------------------------------------------------- the packed source


@dataclass
class PackedSource:
    """A packed source on disk, memory-mapped for reading fixed-length training blocks."""

    name: str
    path: Path
    meta: dict

    def __post_init__(self) -> None:
        dtype = np.dtype(self.meta["dtype"])
        self.tokens = np.memmap(self.path / "tokens.bin", dtype=dtype, mode="r")
        self.doc_starts = np.load(self.path / "docs.npy")
        mask_file = self.path / "loss_mask.bin"
        self.loss_mask = np.memmap(mask_file, dtype=np.uint8, mode="r") if mask_file.is_file() else None
        if len(self.tokens) != self.meta["n_tokens"]:
            raise PackingError(
                f"{self.path}/tokens.bin holds {len(self.tokens)} tokens, meta.json says {self.meta['n_tokens']}: "
                "the packed files are damaged; delete the folder to re-pack"
            )

    @classmethod
    def open(cls, path: str | Path) -> PackedSource:
        path = Path(path)
        meta_file = path / "meta.json"
        if not meta_file.is_file():
            raise PackingError(f"{path} is not a packed source (no meta.json)")
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        return cls(meta["name"], path, meta)

    @property
    def n_tokens(self) -> int:
        return int(self.meta["n_tokens"])

    def n_blocks(self, seq_len: int) -> int:
        return self.n_tokens // seq_len

    def block(self, index: int, seq_len: int, doc_masking: bool = False):
        """``(input_ids, labels, position_ids or None)`` of block ``index``, as int64 numpy arrays."""
        start = index * seq_len
        end = start + seq_len
        if index < 0 or end > self.n_tokens:
            raise IndexError(
                f"source {self.name!r}: block {index} out of range ({self.n_blocks(seq_len)} blocks)"
            )
        ids = np.asarray(self.tokens[start:end], dtype=np.int64)
        labels = ids.copy()
        if self.loss_mask is not None:
            labels[np.asarray(self.loss_mask[start:end]) == 0] = IGNORE_INDEX
        positions = None
        if doc_masking:
            lo = np.searchsorted(self.doc_starts, start, side="right")
            hi = np.searchsorted(self.doc_starts, end, side="left")
            boundaries = self.doc_starts[lo:hi] - start  # documents starting inside the block
            offsets = np.arange(seq_len)
            seg_start = np.concatenate([[0], boundaries])[np.searchsorted(boundaries, offsets, side="right")]
            positions = offsets - seg_start
            # the first token of a document is not predicted from the previous document
            labels[boundaries] = IGNORE_INDEX
        return ids, labels, positions


# ----------------------------------------------------------------------------- packing


def source_key(name: str, cfg: SourceConfig, files: list[Path], tok_fp: str, add_bos: bool) -> str:
    inputs = [[str(p), sha256_path(p)] for p in files]
    blob = json.dumps(
        {
            "format": PACK_FORMAT,
            "name": name,
            "source": cfg.model_dump(mode="json"),
            "inputs": inputs,
            "tokenizer": tok_fp,
            "add_bos": add_bos,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


class _Writer:
    """Appends documents to the token/mask files of one source and keeps the counts."""

    def __init__(self, folder: Path, dtype: np.dtype, with_mask: bool):
        self.tokens = open(folder / "tokens.bin", "wb")
        self.mask = open(folder / "loss_mask.bin", "wb") if with_mask else None
        self.rejected = open(folder / "rejected.jsonl", "w", encoding="utf-8")
        self.dtype = dtype
        self.doc_starts: list[int] = []
        self.n_tokens = 0
        self.n_masked = 0
        self.reasons: Counter[str] = Counter()

    def add(self, ids: list[int], mask: list[int] | None) -> None:
        self.doc_starts.append(self.n_tokens)
        self.tokens.write(np.asarray(ids, dtype=self.dtype).tobytes())
        if self.mask is not None:
            m = np.asarray(mask if mask is not None else [1] * len(ids), dtype=np.uint8)
            self.n_masked += int((m == 0).sum())
            self.mask.write(m.tobytes())
        self.n_tokens += len(ids)

    def reject(self, rec: Record, reason: str, raw: dict) -> None:
        self.reasons[reason.split(":")[0]] += 1  # counted by kind; the record keeps the whole reason
        entry = {"file": rec.file, "line": rec.line, "reason": reason}
        if raw:
            entry["record"] = raw
        elif rec.text is not None:
            entry["text"] = rec.text
        self.rejected.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def close(self) -> None:
        for fh in (self.tokens, self.mask, self.rejected):
            if fh is not None:
                fh.flush()
                os.fsync(fh.fileno())
                fh.close()


def pack_source(
    name: str,
    cfg: SourceConfig,
    tokenizer,
    out_root: str | Path,
    add_bos: bool = False,
    batch_size: int = 512,
    progress: bool = True,
) -> PackedSource:
    """Tokenize one source into ``out_root/<name>-<key>/`` (reused when inputs and settings match)."""
    if cfg.kind == "packed":  # tokenized beforehand by `vinaforge train tokenize` (datatrove)
        from vinaforge.train.pretokenize import open_pretokenized

        return open_pretokenized(cfg.paths[0], tokenizer, name)
    files = []
    for pattern in cfg.paths:
        try:
            files.extend(expand_inputs([str(pattern)]))
        except FileNotFoundError as err:
            raise PackingError(f"data.sources.{name}.paths: {err}") from err
    if not files:
        raise PackingError(f"data.sources.{name}.paths: {cfg.paths} contain no data files")
    eos = tokenizer.eos_token_id
    if eos is None:
        raise PackingError(f"the tokenizer has no EOS token; source {name!r} cannot separate documents")
    bos = tokenizer.bos_token_id if add_bos else None
    if add_bos and bos is None:
        raise PackingError("data.add_bos is true but the tokenizer has no BOS token")
    key = source_key(name, cfg, files, tokenizer_fingerprint(tokenizer), add_bos)
    final = Path(out_root) / f"{name}-{key[:12]}"
    if (final / "meta.json").is_file():
        packed = PackedSource.open(final)
        if packed.meta.get("key") == key:
            log.info(
                "source %s: reusing packed tokens in %s (%s tokens)", name, final, f"{packed.n_tokens:,}"
            )
            return packed
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        meta = _pack_into(tmp, name, cfg, files, tokenizer, eos, bos, batch_size, progress)
        meta["key"] = key
        atomic_write_json(tmp / "meta.json", meta)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if meta["n_tokens"] == 0:
        raise PackingError(
            f"data.sources.{name}: no tokens from {len(files)} file(s) "
            f"({meta['n_records']} records read, rejected: {meta['rejected'] or 'none'})"
        )
    log.info(
        "source %s: packed %s records into %s documents, %s tokens (rejected: %s) in %s",
        name,
        f"{meta['n_records']:,}",
        f"{meta['n_docs']:,}",
        f"{meta['n_tokens']:,}",
        dict(meta["rejected"]) or "none",
        final,
    )
    return PackedSource.open(final)


def _pack_into(
    folder: Path,
    name: str,
    cfg: SourceConfig,
    files: list[Path],
    tokenizer,
    eos: int,
    bos: int | None,
    batch_size: int,
    progress: bool,
) -> dict:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    dtype = token_dtype(len(tokenizer))
    with_mask = cfg.kind != "text" and cfg.masks_prompt()
    template = None
    if cfg.kind == "instruct":
        from vinaforge.chat.templates import TemplateError, resolve_template_text

        try:
            template = resolve_template_text(cfg.chat_template)[1]
        except TemplateError as err:
            raise PackingError(f"data.sources.{name}.chat_template: {err}") from err
    writer = _Writer(folder, dtype, with_mask)
    n_records = 0
    limit_hit = None
    batch: list[Record] = []

    def flush() -> None:
        if not batch:
            return
        if cfg.kind == "text":
            enc = tokenizer([r.text for r in batch], add_special_tokens=False)["input_ids"]
            for ids in enc:
                writer.add(([bos] if bos is not None else []) + list(ids) + [eos], None)
        elif cfg.kind == "instruct":
            for r in batch:
                writer.add(*encode_conversation(tokenizer, r.messages, template, cfg.masks_prompt(), bos is not None))
        else:
            examples = [ex for r in batch for ex in r.examples]
            for ids, mask in encode_examples(tokenizer, examples, cfg.masks_prompt(), eos, bos):
                writer.add(ids, mask)
        batch.clear()

    columns = (
        TextColumn("packing {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files"),
        TextColumn("{task.fields[tokens]} tokens"),
        TimeElapsedColumn(),
    )
    from vinaforge.logs import console  # the bar shares the log lines' console: they never interleave

    with Progress(*columns, disable=not progress, transient=True, console=console()) as bar:
        task = bar.add_task(name, total=len(files), tokens="0")
        current_file = None
        for rec in iter_records(cfg, files, writer.reject):
            if rec.file != current_file:
                if current_file is not None:
                    bar.advance(task)
                current_file = rec.file
            n_records += 1
            batch.append(rec)
            if len(batch) >= batch_size:
                flush()
                bar.update(task, tokens=f"{writer.n_tokens:,}")
            if cfg.max_docs is not None and n_records >= cfg.max_docs:
                limit_hit = "max_docs"
                break
            if cfg.max_tokens is not None and writer.n_tokens >= cfg.max_tokens:
                limit_hit = "max_tokens"
                break
        flush()
        bar.update(task, completed=len(files), tokens=f"{writer.n_tokens:,}")
    writer.close()
    np.save(folder / "docs.npy", np.asarray(writer.doc_starts, dtype=np.int64))
    n_rejected = sum(writer.reasons.values())
    if not writer.reasons:
        (folder / "rejected.jsonl").unlink()
    return {
        "format": PACK_FORMAT,
        "name": name,
        "kind": cfg.kind,
        "files": [str(p) for p in files],
        "n_records": n_records + n_rejected,
        "n_records_used": n_records,
        "rejected": dict(writer.reasons),
        "n_docs": len(writer.doc_starts),
        "n_tokens": writer.n_tokens,
        "n_masked_tokens": writer.n_masked,
        "dtype": dtype.name,
        "eos_id": eos,
        "bos_id": bos,
        "vocab_size": len(tokenizer),
        "stopped_by": limit_hit,
    }


def pack_sources(
    sources: dict[str, SourceConfig],
    tokenizer,
    out_root: str | Path,
    add_bos: bool = False,
    batch_size: int = 512,
    progress: bool = True,
) -> dict[str, PackedSource]:
    return {
        name: pack_source(name, cfg, tokenizer, out_root, add_bos, batch_size, progress)
        for name, cfg in sources.items()
    }

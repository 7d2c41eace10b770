"""The factory on datatrove: read records in shards, transform them, write each shard atomically.

Library: datatrove runs the tasks. Its local executor (or Slurm, or Ray, chosen exactly as in
curation: :func:`vinaforge.data.curate.make_executor`) gives every task a rank, records finished
ranks in ``_work/logs/<step>/completions`` and skips them on the next run, so a killed run resumes
per shard; inside an unfinished shard, the call cache (:mod:`vinaforge.factory.cache`) makes the
redone work free. Hand-written: the three pipeline steps.

- :class:`RecordReader` streams every ``world_size``-th record of the inputs (JSONL lines are
  skipped before JSON parsing, so a task of a million-record file parses only its share) and
  carries unusable records on, marked rejected with ``file:line`` and the reason (a line with
  invalid UTF-8 is one such record; the unreadable rest of a truncated ``.gz`` is one more);
- a transform step (``TranslateStep``, ``DecontaminateStep``...) sets ``metadata["record"]`` and,
  for a record it turns down, ``metadata["rejected"]``;
- :class:`ShardWriter` writes ``kept/<rank>.jsonl`` and ``rejected/<rank>.jsonl`` (temp file,
  then rename) and ``_work/stats/<rank>.json``: counts, reasons, token usage, cache hits.

datatrove's own ``InferenceRunner`` drives vLLM/SGLang servers or raw HTTP through aiohttp; it
has no local-HF path, no per-item failure records and no template-keyed cache, so generation
goes through :mod:`vinaforge.generate` inside our steps instead.
"""

from __future__ import annotations

import gzip
import json
import shutil
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from pydantic import Field, model_validator

from vinaforge.io import atomic_write_json
from vinaforge.stage import StageConfig

READ_FORMATS = ("auto", "messages", "sharegpt", "alpaca", "prompt_response", "preference", "raw")


class FactoryError(ValueError):
    """Unusable input or output folder; the message names the file, key or setting."""


class ScaleConfig(StageConfig):
    """Where the work runs: datatrove tasks (shards) and executor, as in curation."""

    executor: Literal["local", "slurm", "ray"] = "local"
    tasks: int = Field(
        1, ge=1, description="datatrove tasks = output shards; each reads its share of records"
    )
    workers: int = Field(1, ge=0, description="parallel local processes (0: all cores)")
    slurm: dict = Field(
        default_factory=dict, description="SlurmPipelineExecutor settings (partition, time...)"
    )
    ray: dict = Field(default_factory=dict, description="RayPipelineExecutor settings")

    @model_validator(mode="after")
    def _slurm_needs_partition(self):
        if self.executor == "slurm" and not self.slurm.get("partition"):
            raise ValueError("executor: slurm needs slurm.partition (and usually slurm.time)")
        return self


# ----------------------------------------------------------------------------- reading


def _open_lines(path: Path) -> Iterator[str]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        yield from fh


def _binary_lines(path: Path) -> Iterator[bytes]:
    from vinaforge.io import open_binary

    with open_binary(path) as fh:
        yield from fh


def stream_records(
    sources: list[str], fmt: str = "auto", kind: str = "conversation", rank: int = 0, world_size: int = 1
) -> Iterator[tuple[str, dict[str, Any] | None, str | None, Any]]:
    """``(where, record dict or None, rejection reason or None, raw)`` for this rank's records."""
    from vinaforge.chat import ChatFormatError, ConversationError, expand_sources, iter_records, parse_record

    if fmt not in READ_FORMATS:
        raise FactoryError(f"unknown format {fmt!r}; expected one of {', '.join(READ_FORMATS)}")
    try:
        files = expand_sources(sources)
    except ChatFormatError as err:
        raise FactoryError(str(err)) from err
    i = -1
    for src in files:
        path = Path(src)
        if src.startswith("hf:") or not path.name.endswith((".jsonl", ".jsonl.gz", ".txt")):
            if fmt == "raw":
                raise FactoryError(f"{src}: format raw reads .jsonl, .jsonl.gz or .txt files")
            for n, item in enumerate(iter_records(src, format=fmt, kind=kind)):
                i += 1
                if i % world_size != rank:
                    continue
                if hasattr(item, "reason"):
                    yield item.source, None, item.reason, item.record
                else:
                    yield f"{src}#{n}", item.to_dict(), None, None
            continue
        lineno = 0
        try:
            # undecoded lines, each decoded on its own: one bad byte rejects one line, not the rest
            for lineno, raw_line in enumerate(_binary_lines(path), 1):
                if not raw_line.strip():
                    continue
                i += 1
                if i % world_size != rank:
                    continue
                where = f"{src}:{lineno}"
                try:
                    line = raw_line.decode("utf-8")
                except UnicodeDecodeError as err:
                    yield where, None, f"not valid UTF-8 ({err.reason} at byte {err.start})", None
                    continue
                if path.name.endswith(".txt"):
                    yield where, {"text": line.rstrip("\n")}, None, None
                    continue
                try:
                    raw = json.loads(line)
                except json.JSONDecodeError as err:
                    yield where, None, f"not valid JSON ({err.msg})", line[:2000]
                    continue
                if fmt == "raw":
                    if isinstance(raw, dict):
                        yield where, raw, None, None
                    else:
                        yield where, None, f"expected a JSON object, got {type(raw).__name__}", raw
                    continue
                try:
                    yield where, parse_record(raw, fmt=fmt, kind=kind).to_dict(), None, None
                except ChatFormatError as err:
                    raise FactoryError(f"{where}: {err}") from err
                except ConversationError as err:
                    yield where, None, str(err), raw
        except (EOFError, OSError, zlib.error) as err:
            i += 1  # the unreadable rest counts as one rejected record, on one rank only
            if i % world_size == rank:
                yield f"{src}:{lineno + 1}", None, f"truncated or damaged file from here on ({err})", None


def has_records(sources: list[str], fmt: str, kind: str) -> bool:
    """Whether the inputs hold any record at all (usable or not); reads only up to the first one."""
    return next(iter(stream_records(sources, fmt, kind)), None) is not None


class RecordReader(PipelineStep):
    name = "vf/factory-read"
    type = "📖 - READER"

    def __init__(self, sources: list[str], fmt: str = "auto", kind: str = "conversation"):
        super().__init__()
        self.sources, self.fmt, self.kind = list(sources), fmt, kind

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for where, rec, reason, raw in stream_records(self.sources, self.fmt, self.kind, rank, world_size):
            meta: dict[str, Any] = {"where": where, "record": rec}
            if reason is not None:
                meta.update(rejected=f"input: {reason}", record=raw)
            self.stat_update("read")
            yield Document(text="", id=where, metadata=meta)


# ----------------------------------------------------------------------------- writing


class ShardWriter(PipelineStep):
    """Kept and rejected records of one rank, plus its counts; files appear only when complete."""

    name = "vf/factory-write"
    type = "💽 - WRITER"

    def __init__(self, out: str):
        super().__init__()
        self.out = out

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        out = Path(self.out)
        files = {k: out / k / f"{rank:05d}.jsonl" for k in ("kept", "rejected")}
        tmps = {k: p.with_name(f".{p.name}.tmp") for k, p in files.items()}
        for p in tmps.values():
            p.parent.mkdir(parents=True, exist_ok=True)
        stats: dict[str, Any] = {
            "input": 0,
            "kept": 0,
            "rejected": 0,
            "reasons": Counter(),
            "usage": Counter(),
        }
        handles = {k: open(p, "w", encoding="utf-8") for k, p in tmps.items()}
        try:
            for doc in data or []:
                m = doc.metadata
                stats["input"] += 1
                stats["usage"].update(m.get("usage") or {})
                if m.get("rejected"):
                    stats["rejected"] += 1
                    stats["reasons"][m["rejected"].split(":")[0]] += 1
                    row = {"source": m["where"], "reason": m["rejected"], "record": m.get("record")}
                    handles["rejected"].write(json.dumps(row, ensure_ascii=False) + "\n")
                else:
                    stats["kept"] += 1
                    handles["kept"].write(json.dumps(m["record"], ensure_ascii=False) + "\n")
                yield doc
        finally:
            for h in handles.values():
                h.close()
        for k in files:
            tmps[k].replace(files[k])
        atomic_write_json(out / "_work" / "stats" / f"{rank:05d}.json",
                          {**stats, "reasons": dict(stats["reasons"]), "usage": dict(stats["usage"])})  # fmt: skip


# ----------------------------------------------------------------------------- running


def prepare_output(out: Path, settings: dict[str, Any], overwrite: bool, keep: tuple[str, ...] = ()) -> None:
    """Refuse to resume into a folder written with other settings; ``overwrite`` clears it first.

    The folder must be one this process can create (not a file, not under one), and ``overwrite``
    clears only a folder that holds a factory run: it used to delete any folder's files.
    """
    from vinaforge.checks import InputCheckError, check_output_dir

    try:
        check_output_dir(out)
    except InputCheckError as err:
        raise FactoryError(str(err)) from None
    fp = out / "_work" / "settings.json"
    if overwrite and out.is_dir() and any(out.iterdir()) and not fp.is_file():
        raise FactoryError(f"{out} holds files that are not a factory run; --overwrite clears only a run's "
                           "folder, so pick a new or empty one")  # fmt: skip
    try:
        _prepare(out, fp, settings, overwrite, keep)
    except OSError as err:
        raise FactoryError(f"output {out}: cannot be written ({err.strerror or err})") from err


def _prepare(out: Path, fp: Path, settings: dict[str, Any], overwrite: bool, keep: tuple[str, ...]) -> None:
    if overwrite and out.exists():
        for child in out.iterdir():
            if child.name in keep:
                continue
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    if fp.is_file():
        old = json.loads(fp.read_text(encoding="utf-8"))
        if old != json.loads(json.dumps(settings, default=str)):
            raise FactoryError(f"{out} holds a run with other settings; use a new folder or --overwrite")
    atomic_write_json(fp, settings)


def run_steps(cfg: ScaleConfig, steps: list, out: Path, name: str) -> dict[str, Any]:
    """Run ``reader → steps → writer`` on the configured executor; return the summed shard stats."""
    from vinaforge.data.curate import make_executor

    pipeline = [*steps, ShardWriter(str(out))]
    ex = make_executor(cfg, pipeline, cfg.tasks, out / "_work" / "logs" / name, name=f"factory-{name}")
    if cfg.executor == "ray":
        import ray

        if not ray.is_initialized():
            ray.init(address=cfg.ray.get("address"), ignore_reinit_error=True, log_to_driver=False)
    if cfg.executor == "slurm":
        ex.run()
        raise FactoryError(f"submitted {cfg.tasks} Slurm tasks; re-run the same command when they finish "
                           "to collect the summary")  # fmt: skip
    ex.run()
    return collect_stats(out)


def collect_stats(out: Path) -> dict[str, Any]:
    total: dict[str, Any] = {
        "input": 0,
        "kept": 0,
        "rejected": 0,
        "reasons": Counter(),
        "usage": Counter(),
        "shards": 0,
    }
    for p in sorted((out / "_work" / "stats").glob("*.json")):
        s = json.loads(p.read_text(encoding="utf-8"))
        total["shards"] += 1
        for k in ("input", "kept", "rejected"):
            total[k] += s[k]
        total["reasons"].update(s["reasons"])
        total["usage"].update(s["usage"])
    total["reasons"], total["usage"] = dict(total["reasons"]), dict(total["usage"])
    return total


def read_jsonl_folder(folder: Path) -> Iterator[dict[str, Any]]:
    for p in sorted(folder.glob("*.jsonl")):
        for line in _open_lines(p):
            if line.strip():
                yield json.loads(line)


def batched(docs: DocumentsPipeline, size: int) -> Iterator[list[Document]]:
    batch: list[Document] = []
    for doc in docs or []:
        batch.append(doc)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch

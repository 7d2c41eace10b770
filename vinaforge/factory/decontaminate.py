"""Decontamination: drop training records that share syllable n-grams with the benchmarks we report.

Every benchmark that :mod:`vinaforge.eval` evaluates (VMLU, ARC/MMLU/HellaSwag/TruthfulQA-vi,
belebele, XNLI, XCOPA) is found the way the evaluation finds it: the folders of
:data:`vinaforge.eval.data.BENCHMARKS` under a data dir (``$VINAFORGE_EVAL_DATA``, then
``../shared/data/benchmarks``), read with :func:`vinaforge.eval.data.read_records`. Any extra
JSONL/JSON/TSV file is indexed too. Every string of a benchmark item (question, choices,
passage...) is normalized by the text core (NFC, one tone-mark style) and cut into syllable
n-grams (8 by default, 8–13 allowed), hashed exactly as the curation MinHash hashes its shingles
(:func:`vinaforge.data.dedup.syllable_shingles`: lower case, numbers folded).

A record is contaminated by a benchmark item when it shares ``min_hits`` of the item's n-grams or
``min_coverage`` of them (whichever is smaller: a short question counts once it is wholly
inside). N-grams found in more than ``max_item_df`` items (boilerplate such as "Câu nào sau
đây...") are left out of the index, so they never flag a record alone.

For other stages (SFT/CPT data preparation)::

    from vinaforge.factory.decontaminate import DecontamConfig, decontaminate
    kept, dropped = decontaminate(records, DecontamConfig(benchmark_dirs=["../shared/data/benchmarks"]))

``records`` are dicts, ``vinaforge.chat`` conversations/preferences or strings; ``dropped``
holds each record with ``_decontam`` = the benchmarks, item ids and n-gram counts that matched.

Hand-written: no library decontaminates Vietnamese at syllable level against these formats
(lm-eval's decontamination works on its own 13-gram whitespace tokens and its task objects).
The index is a sorted numpy array searched with ``searchsorted``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from pydantic import Field

from vinaforge.factory.records import as_dict, texts_of
from vinaforge.stage import StageConfig, StageContext, StageResult
from vinaforge.text.normalize import NormalizeConfig, normalize_text

log = logging.getLogger(__name__)
RESUMABLE = True

_NORM = NormalizeConfig(from_legacy="none", fix_whitespace=False, fix_punctuation=False)
ITEM_SKIP = frozenset({"id", "answer", "label", "ind", "source_id", "split", "split_type", "language",
                       "subject", "category", "link", "dialect", "changed", "idx", "gold", "correct_answer_num",
                       "question_number", "source_annotations", "activity_label"})  # fmt: skip


class DecontamError(ValueError):
    """No benchmark to check against, or an unreadable benchmark/extra file."""


class DecontamConfig(StageConfig):
    """What to check against and when a record counts as contaminated."""

    benchmark_dirs: list[str] = Field(
        default_factory=list,
        description="benchmark data folders laid out like ../shared/data/benchmarks (default: the eval's)",
    )
    benchmarks: list[str] = Field(
        default_factory=list, description="only these (names in vinaforge.eval.data)"
    )
    splits: Literal["eval", "all"] = Field(
        "eval", description="evaluated splits (+ few-shot split), or every file"
    )
    extra_files: list[str] = Field(
        default_factory=list, description="more files whose strings count as benchmark"
    )
    ngram: int = Field(8, ge=8, le=13, description="syllables per n-gram")
    min_hits: int = Field(2, ge=1, description="shared n-grams with one item that flag a record")
    min_coverage: float = Field(0.5, gt=0, le=1, description="...or this share of the item's n-grams")
    max_item_df: int = Field(10, ge=1, description="n-grams in more items than this are boilerplate, ignored")
    drop: bool = Field(True, description="drop contaminated records (False: only flag them)")
    require_benchmarks: bool = Field(True, description="fail when no benchmark file is found")


# ----------------------------------------------------------------------------- n-grams


def normalized(text: str) -> str:
    return normalize_text(text, _NORM)


def ngram_hashes(text: str, n: int) -> np.ndarray:
    """Unique 64-bit hashes of the normalized syllable ``n``-grams of ``text``."""
    from vinaforge.data.dedup import syllable_shingles

    return np.unique(syllable_shingles(normalized(text), n))


# ----------------------------------------------------------------------------- benchmark index


@dataclass
class BenchmarkItem:
    benchmark: str
    split: str
    id: str
    n_ngrams: int


@dataclass
class BenchmarkIndex:
    """Sorted n-gram hashes with, for each, the item it comes from (one row per item and n-gram)."""

    ngram: int
    hashes: np.ndarray
    item_of: np.ndarray
    items: list[BenchmarkItem]
    files: list[str] = field(default_factory=list)
    boilerplate: int = 0

    def matches(self, text_hashes: np.ndarray) -> Counter:
        """Item index -> how many of ``text_hashes`` it holds."""
        return self.matches_many([text_hashes])[0]

    def matches_many(self, hash_lists: list[np.ndarray]) -> list[Counter]:
        """:meth:`matches` for many texts with one ``searchsorted`` (most n-grams miss)."""
        out = [Counter() for _ in hash_lists]
        if not len(self.hashes) or not hash_lists:
            return out
        needles = np.concatenate(hash_lists)
        if not len(needles):
            return out
        owner = np.repeat(np.arange(len(hash_lists)), [len(h) for h in hash_lists])
        lo = np.searchsorted(self.hashes, needles, side="left")
        hit = self.hashes[np.minimum(lo, len(self.hashes) - 1)] == needles
        if not hit.any():
            return out
        lo, needles, owner = lo[hit], needles[hit], owner[hit]
        hi = np.searchsorted(self.hashes, needles, side="right")
        for o, a, b in zip(owner.tolist(), lo.tolist(), hi.tolist(), strict=True):
            out[o].update(self.item_of[a:b].tolist())
        return out

    def benchmarks(self) -> dict[str, int]:
        return dict(Counter(i.benchmark for i in self.items))


def _item_text_parts(rec: dict[str, Any]) -> list[str]:
    return list(texts_of(rec, ITEM_SKIP))


def _benchmark_files(cfg: DecontamConfig) -> list[tuple[str, str, Path]]:
    """``(benchmark, split, path)`` of every benchmark file found in the data folders."""
    from vinaforge.eval.data import BENCHMARKS, resolve_data_dir, split_file

    dirs = [Path(d) for d in cfg.benchmark_dirs] or [resolve_data_dir()]
    unknown = [b for b in cfg.benchmarks if b not in BENCHMARKS]
    if unknown:
        raise DecontamError(
            f"unknown benchmark(s) {', '.join(unknown)} (benchmarks); known: {', '.join(BENCHMARKS)}"
        )
    out = []
    for d in dirs:
        if not d.is_dir():
            raise DecontamError(f"benchmark folder {d} does not exist (benchmark_dirs)")
        for bench in BENCHMARKS.values():
            if cfg.benchmarks and bench.name not in cfg.benchmarks:
                continue
            splits = {s.split for s in bench.eval_splits} | (
                {bench.fewshot_split} if bench.fewshot_split else set()
            )
            if cfg.splits == "all":
                splits = set(bench.files)
            for split in sorted(splits):
                p = split_file(bench, split, d)
                if p is not None:
                    out.append((bench.name, split, p))
    return out


def _read_items(path: Path, bench_name: str) -> Iterator[tuple[str, list[str]]]:
    from vinaforge.eval.data import TaskDataError, read_records

    try:
        rows = read_records(path)
    except (TaskDataError, OSError, ValueError) as err:
        raise DecontamError(f"{path}: cannot read benchmark file ({err})") from err
    for line, rec in rows:
        if not isinstance(rec, dict):
            raise DecontamError(f"{path}:{line}: expected a JSON object")
        if path.name.endswith(".tsv") and rec.get("language", "vi") != "vi":
            continue  # XNLI's TSV holds 15 languages
        rid = rec.get("id", rec.get("ind", rec.get("idx", line)))
        yield f"{rid}", _item_text_parts(rec)


def _extra_items(path: Path) -> Iterator[tuple[str, list[str]]]:
    if not path.is_file():
        raise DecontamError(f"extra benchmark file {path} does not exist (extra_files)")
    if path.suffix == ".txt":
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                yield str(i), [line]
        return
    yield from _read_items(path, path.stem)


def build_index(cfg: DecontamConfig) -> BenchmarkIndex:
    """Index every benchmark item's n-grams; boilerplate n-grams (in many items) are left out."""
    sources: list[tuple[str, str, Path, Iterable]] = [
        (name, split, p, _read_items(p, name)) for name, split, p in _benchmark_files(cfg)
    ]
    sources += [(f"extra:{Path(f).name}", "extra", Path(f), _extra_items(Path(f))) for f in cfg.extra_files]
    if not sources and cfg.require_benchmarks:
        where = (
            ", ".join(cfg.benchmark_dirs)
            or "the eval data dir ($VINAFORGE_EVAL_DATA or ../shared/data/benchmarks)"
        )
        raise DecontamError(f"no benchmark file found in {where}; give benchmark_dirs or extra_files")
    chunks, owners, items = [], [], []
    for name, split, _p, rows in sources:
        for rid, parts in rows:
            hs = ngram_hashes("\n".join(parts), cfg.ngram)  # across fields: short items still count
            if not len(hs):
                continue
            owners.append(np.full(len(hs), len(items), dtype=np.int32))
            chunks.append(hs)
            items.append(BenchmarkItem(name, split, rid, len(hs)))
    if not chunks:
        return BenchmarkIndex(
            cfg.ngram, np.empty(0, np.uint64), np.empty(0, np.int32), [], [str(s[2]) for s in sources]
        )
    hashes, owner = np.concatenate(chunks), np.concatenate(owners)
    order = np.argsort(hashes, kind="stable")
    hashes, owner = hashes[order], owner[order]
    uniq, start, df = np.unique(hashes, return_index=True, return_counts=True)
    common = uniq[df > cfg.max_item_df]
    keep = ~np.isin(hashes, common)
    idx = BenchmarkIndex(
        cfg.ngram, hashes[keep], owner[keep], items, [str(s[2]) for s in sources], int(len(common))
    )
    log.info("decontamination index: %d items, %d n-grams, %d boilerplate n-grams left out, from %d files",
             len(items), len(idx.hashes), idx.boilerplate, len(sources))  # fmt: skip
    return idx


# ----------------------------------------------------------------------------- checking records


def contamination(record: Any, index: BenchmarkIndex, cfg: DecontamConfig) -> list[dict[str, Any]]:
    """The benchmark items a record overlaps (empty when clean)."""
    return contamination_many([record], index, cfg)[0]


def contamination_many(
    records: list[Any], index: BenchmarkIndex, cfg: DecontamConfig
) -> list[list[dict[str, Any]]]:
    """:func:`contamination` for a batch of records (one index search for all of them)."""
    hash_lists = [ngram_hashes("\n".join(texts_of(as_dict(r))), index.ngram) for r in records]
    results = []
    for counts in index.matches_many(hash_lists):
        found = []
        for item_i, hits in counts.items():
            item = index.items[item_i]
            if hits >= min(cfg.min_hits, item.n_ngrams) or hits / item.n_ngrams >= cfg.min_coverage:
                found.append({"benchmark": item.benchmark, "split": item.split, "item": item.id,
                              "shared_ngrams": hits, "item_ngrams": item.n_ngrams})  # fmt: skip
        found.sort(key=lambda m: -m["shared_ngrams"])
        results.append(found)
    return results


BATCH = 256


def decontaminate(
    records: Iterable[Any], config: DecontamConfig | None = None, index: BenchmarkIndex | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split records into ``(kept, dropped)`` by benchmark overlap.

    ``records``: dicts in any :mod:`vinaforge.chat` format, ``Conversation``/``Preference``
    objects, or strings (become ``{"text": ...}``). Every record comes out in exactly one list
    (``len(kept) + len(dropped) == n``). A dropped record is the record plus
    ``"_decontam": {"reason": "contaminated: vmlu/dev#01-0001 (5 8-grams)", "matches": [...]}``.
    With ``config.drop = False`` contaminated records stay in ``kept`` with ``_decontam`` set.
    ``index`` (from :func:`build_index`) saves rebuilding it across calls.
    """
    cfg = config or DecontamConfig()
    index = index or build_index(cfg)
    kept, dropped = [], []
    for d, found in _checked(records, index, cfg):
        if not found:
            kept.append(d)
            continue
        top = found[0]
        reason = (f"contaminated: {top['benchmark']}/{top['split']}#{top['item']} "
                  f"({top['shared_ngrams']} shared {index.ngram}-grams)")  # fmt: skip
        flagged = {**d, "_decontam": {"reason": reason, "matches": found[:10]}}
        (dropped if cfg.drop else kept).append(flagged)
    return kept, dropped


def _checked(records: Iterable[Any], index: BenchmarkIndex, cfg: DecontamConfig):
    batch: list[dict[str, Any]] = []
    for rec in records:
        batch.append(as_dict(rec))
        if len(batch) >= BATCH:
            yield from zip(batch, contamination_many(batch, index, cfg), strict=True)
            batch = []
    if batch:
        yield from zip(batch, contamination_many(batch, index, cfg), strict=True)


def summarize(dropped: list[dict[str, Any]], n_in: int) -> dict[str, Any]:
    """Counts by benchmark and the items hit most, for reports."""
    by_bench: Counter = Counter()
    items: Counter = Counter()
    for d in dropped:
        seen = set()
        for m in d["_decontam"]["matches"]:
            if m["benchmark"] not in seen:
                by_bench[m["benchmark"]] += 1
                seen.add(m["benchmark"])
            items[f"{m['benchmark']}/{m['split']}#{m['item']}"] += 1
    return {"input": n_in, "contaminated": len(dropped), "kept": n_in - len(dropped),
            "by_benchmark": dict(by_bench), "top_items": dict(items.most_common(10))}  # fmt: skip


def default_benchmark_dirs() -> list[str]:
    """The eval's data folder if it exists (for CLI defaults)."""
    from vinaforge.eval.data import resolve_data_dir

    d = resolve_data_dir()
    return [str(d)] if d.is_dir() else []


# ----------------------------------------------------------------------------- stage and pipeline


class Config(DecontamConfig):
    """Settings of ``vinaforge data decontaminate`` and the ``decontaminate`` recipe stage."""

    inputs: list[str] = Field(..., min_length=1, description="datasets to check: files or folders")
    format: str = Field("raw", description="raw (any JSON object / text line) or a vinaforge.chat format")
    executor: Literal["local", "slurm", "ray"] = "local"
    tasks: int = Field(1, ge=1, description="datatrove tasks = output shards")
    workers: int = Field(1, ge=0, description="parallel local processes (0: all cores)")
    slurm: dict = Field(default_factory=dict)
    ray: dict = Field(default_factory=dict)
    report_examples: int = Field(5, ge=0)


class DecontaminateStep(PipelineStep):
    """Marks contaminated records rejected (or only flags them with ``drop: false``)."""

    name = "vf/decontaminate"
    type = "🧹 - DECONTAMINATE"

    def __init__(self, cfg: DecontamConfig):
        super().__init__()
        self.cfg = cfg

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        from vinaforge.factory.pipeline import batched

        index = build_index(self.cfg)
        for batch in batched(data, BATCH):
            todo = [d for d in batch if not d.metadata.get("rejected")]
            with self.track_time():
                results = contamination_many([d.metadata["record"] for d in todo], index, self.cfg)
            for doc, found in zip(todo, results, strict=True):
                m = doc.metadata
                m["usage"] = {"bytes": sum(len(t.encode("utf-8")) for t in texts_of(m["record"]))}
                if found:
                    top = found[0]
                    reason = (f"contaminated: {top['benchmark']}/{top['split']}#{top['item']} "
                              f"({top['shared_ngrams']} shared {index.ngram}-grams)")  # fmt: skip
                    m["record"] = {**m["record"], "_decontam": {"reason": reason, "matches": found[:10]}}
                    if self.cfg.drop:
                        m["rejected"] = reason
                    self.stat_update("contaminated")
            yield from batch


def run_decontaminate(cfg: Config, output: str | Path, overwrite: bool = False) -> dict[str, Any]:
    """Check ``cfg.inputs`` into ``output/kept`` and ``output/rejected``; returns the summary."""
    import time

    from vinaforge.factory.pipeline import (
        FactoryError,
        RecordReader,
        has_records,
        prepare_output,
        run_steps,
    )
    from vinaforge.io import atomic_write_json

    out = Path(output)
    kind = "conversation"
    if cfg.format != "raw":
        from vinaforge.factory.pipeline import READ_FORMATS

        if cfg.format not in READ_FORMATS:
            raise FactoryError(f"unknown format {cfg.format!r}; expected one of {', '.join(READ_FORMATS)}")
    if not has_records(cfg.inputs, cfg.format, kind):
        raise FactoryError(f"{', '.join(cfg.inputs)}: empty dataset (no records)")
    index = build_index(cfg)  # fails early on missing benchmarks
    prepare_output(out, cfg.model_dump(mode="json"), overwrite)
    t0 = time.perf_counter()
    stats = run_steps(
        cfg, [RecordReader(cfg.inputs, cfg.format, kind), DecontaminateStep(cfg)], out, "decontaminate"
    )
    stats["seconds"] = round(time.perf_counter() - t0, 2)
    stats["benchmarks"] = index.benchmarks()
    stats["benchmark_files"] = index.files
    from vinaforge.factory.pipeline import read_jsonl_folder

    flagged = [
        r["record"] for r in read_jsonl_folder(out / "rejected") if r["reason"].startswith("contaminated")
    ]
    if not cfg.drop:
        flagged = [r for r in read_jsonl_folder(out / "kept") if "_decontam" in r]
    stats["contamination"] = summarize(flagged, stats["input"])
    atomic_write_json(out / "summary.json", stats)
    return stats


def report_section(stats: dict[str, Any], cfg: Config, out: Path) -> str:
    from vinaforge.factory.pipeline import read_jsonl_folder

    c = stats["contamination"]
    mb = stats["usage"].get("bytes", 0) / 1e6
    lines = [
        f"Checked **{stats['input']}** records ({mb:.2f} MB) against {len(stats['benchmark_files'])} benchmark "
        f"file(s) ({', '.join(f'{k}: {v} items' for k, v in stats['benchmarks'].items())}) with syllable "
        f"{cfg.ngram}-grams: **{c['contaminated']}** contaminated "
        f"({'dropped' if cfg.drop else 'flagged, kept'}), {stats['rejected'] - (c['contaminated'] if cfg.drop else 0)} "
        f"unreadable, {stats['seconds']} s.",
    ]
    if c["by_benchmark"]:
        lines += ["", "| benchmark | contaminated records |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in sorted(c["by_benchmark"].items())]
    examples = [r for r in read_jsonl_folder(out / "rejected")][: cfg.report_examples]
    if examples:
        lines += ["", "Dropped examples:"]
        lines += [f"- `{e['source']}`: {e['reason'][:160]}" for e in examples]
    return "\n".join(lines)


def run(config: Config, ctx: StageContext) -> StageResult:
    stats = run_decontaminate(config, ctx.work_dir)
    metrics = {k: stats[k] for k in ("input", "kept", "rejected", "seconds")}
    metrics["contaminated_by_benchmark"] = stats["contamination"]["by_benchmark"]
    return StageResult(outputs={"kept": "kept", "rejected": "rejected", "summary": "summary.json"},
                       metrics=metrics, report=report_section(stats, config, ctx.work_dir))  # fmt: skip


__all__ = ["BenchmarkIndex", "Config", "DecontamConfig", "DecontamError", "build_index", "contamination", "decontaminate",
           "default_benchmark_dirs", "ngram_hashes", "run", "run_decontaminate", "summarize"]  # fmt: skip

"""Benchmark: our full curate stage vs the stock datatrove filters, same input, same run.

Stock pipeline (the baseline the issue names): ``JsonlReader`` -> ``GopherRepetitionFilter``
-> ``GopherQualityFilter`` -> ``FineWebQualityFilter`` (all ``language='vi'``, whose word
tokenizer is spaCy + pyvi) -> ``JsonlWriter``. Ours: ``vinaforge.data.curate.curate`` with its
defaults (reading, normalization, language ID, syllable Gopher/FineWeb filters, flagged words,
PII, quality score, exact and MinHash dedup, tiers, all seven datatrove stages).

Both read the first ``--limit`` records of the same file with the same number of workers (one
task: datatrove shards by file). Reports documents/s and MB/s (uncompressed input) and the
ratio. Needs ``spacy`` and ``pyvi`` for the stock side (``pip install -e .[wordseg]``).

    python bench/curate.py --limit 3000
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_INPUT = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "data"
    / "vi_text"
    / "news_baomoi_magizbox.jsonl.gz"
)


def input_bytes(path: Path, limit: int) -> tuple[int, int]:
    """(records, uncompressed bytes) of the first ``limit`` records (all when limit < 0)."""
    n = size = 0
    with gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb") as fh:
        for line in fh:
            if limit >= 0 and n >= limit:
                break
            if line.strip():
                n += 1
                size += len(line)
    return n, size


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (user + system)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn, *args) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds, result) of ``fn(*args)``."""
    c0, t0 = cpu_seconds(), time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t0, cpu_seconds() - c0, result


def run_stock(path: Path, out: Path, limit: int, workers: int) -> None:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.filters import FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    pipeline = [
        JsonlReader(str(path.parent), glob_pattern=path.name, limit=limit),
        GopherRepetitionFilter(language="vi"),
        GopherQualityFilter(language="vi"),
        FineWebQualityFilter(language="vi"),
        JsonlWriter(str(out / "output")),
    ]
    LocalPipelineExecutor(pipeline, tasks=1, workers=workers, logging_dir=str(out / "logs")).run()


def run_ours(path: Path, out: Path, limit: int, workers: int) -> dict:
    from vinaforge.data.config import Config
    from vinaforge.data.curate import curate

    return curate(Config(inputs=[str(path)], limit=limit, workers=workers), out / "curated")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", type=Path, default=DEFAULT_INPUT)
    ap.add_argument("--limit", type=int, default=3000, help="records to process (-1: the whole file)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    if not args.input.is_file():
        print(f"input not found: {args.input}", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    docs, size = input_bytes(args.input, args.limit)
    mb = size / 1e6
    with tempfile.TemporaryDirectory(prefix="vf-bench-curate-") as tmp:
        tmp_path = Path(tmp)
        stock_s, stock_cpu, _ = timed(run_stock, args.input, tmp_path / "stock", args.limit, args.workers)
        shutil.rmtree(tmp_path / "stock", ignore_errors=True)
        ours_s, ours_cpu, stats = timed(run_ours, args.input, tmp_path / "ours", args.limit, args.workers)
    result = {
        "input": str(args.input),
        "docs": docs,
        "mb": round(mb, 2),
        "workers": args.workers,
        "stock_s": round(stock_s, 2),
        "stock_docs_per_s": round(docs / stock_s, 1),
        "stock_mb_per_s": round(mb / stock_s, 3),
        "ours_s": round(ours_s, 2),
        "ours_docs_per_s": round(docs / ours_s, 1),
        "ours_mb_per_s": round(mb / ours_s, 3),
        "speedup": round(stock_s / ours_s, 2),
        "stock_cpu_s": round(stock_cpu, 2),
        "ours_cpu_s": round(ours_cpu, 2),
        "speedup_cpu": round(stock_cpu / ours_cpu, 2),
        "ours_kept": stats["kept"],
        "ours_duplicates": stats["duplicates"],
    }
    print(f"input: {docs} docs, {mb:.1f} MB uncompressed, {args.workers} worker(s)")
    print(
        f"stock datatrove filters: {stock_s:7.1f} s  {docs / stock_s:8.1f} docs/s  {mb / stock_s:6.3f} MB/s  CPU {stock_cpu:6.1f} s"
    )
    print(
        f"vinaforge curate (full): {ours_s:7.1f} s  {docs / ours_s:8.1f} docs/s  {mb / ours_s:6.3f} MB/s  CPU {ours_cpu:6.1f} s"
    )
    print(
        f"speed-up: {stock_s / ours_s:.2f}x wall, {stock_cpu / ours_cpu:.2f}x CPU (same input, same workers, same run)"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Read a tokenizer-training sample from a corpus: files, folders or globs, normalized, capped.

The sample takes records from the head of every file in proportion to the file's text size
(gzip files are sized by their trailer, so a ``.txt`` and a ``.jsonl.gz`` weigh what they hold),
so a capped sample still mixes every source. Every text goes through the same
``vinaforge.text`` normalization as the corpus, so tokens are learnt on the form the model sees.

Hand-written glue over :func:`vinaforge.io.iter_texts` and :func:`normalize_text`: the sampling
policy and the accounting (records, bytes, empty records) are ours.
"""

from __future__ import annotations

import logging
import struct
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vinaforge.io import expand_inputs, iter_texts
from vinaforge.text.normalize import NormalizeConfig, normalize_text
from vinaforge.tokenizer.resolve import TokenizerError

log = logging.getLogger(__name__)


@dataclass
class CorpusStats:
    """What was read: per-file records and bytes, and the records left out as empty."""

    files: list[str] = field(default_factory=list)
    records: int = 0
    empty_records: int = 0
    bytes_read: int = 0
    per_file: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def text_size(path: Path) -> int:
    """Approximate bytes of text a file holds (gzip: the uncompressed size in its trailer)."""
    size = path.stat().st_size
    if path.name.endswith(".gz") and size >= 18:
        with open(path, "rb") as fh:
            fh.seek(-4, 2)
            (isize,) = struct.unpack("<I", fh.read(4))
        # ISIZE is the size modulo 2**32; below 4 GiB it is exact, above it the ratio is a guess.
        return isize if size < 2**32 else size * 3
    if path.suffix == ".parquet":
        return size * 3
    return size


def corpus_files(paths: list[str] | list[Path]) -> list[Path]:
    try:
        files = expand_inputs([str(p) for p in paths])
    except FileNotFoundError as err:
        raise TokenizerError(f"corpus: {err}") from None
    if not files:
        raise TokenizerError(f"corpus {[str(p) for p in paths]}: no text files found")
    return files


def _normalize_batch(job: tuple[list[str], NormalizeConfig | None]) -> list[str]:
    texts, cfg = job
    return [normalize_text(t, cfg) for t in texts] if cfg is not None else texts


def _raw_batches(path: Path, field: str, quota: int | None, batch_bytes: int) -> Iterator[list[str]]:
    """Records of one file in batches of about ``batch_bytes``, stopping at ``quota`` bytes."""
    taken = 0
    batch: list[str] = []
    size = 0
    try:
        for raw in iter_texts(path, field=field):
            n = len(raw.encode("utf-8"))
            batch.append(raw)
            size += n
            taken += n
            if size >= batch_bytes:
                yield batch
                batch, size = [], 0
            if quota is not None and taken >= quota:
                break
    except ValueError as err:  # iter_texts names the file and line
        raise TokenizerError(f"corpus: {err}") from None
    if batch:
        yield batch


#: Below this many bytes a process pool costs more than it saves.
POOL_MIN_BYTES = 4_000_000


def iter_corpus(
    paths: list[str] | list[Path],
    *,
    field: str = "text",
    normalize: NormalizeConfig | None = None,
    sample_bytes: int | None = None,
    stats: CorpusStats | None = None,
    progress: bool = True,
    workers: int | None = None,
) -> Iterator[str]:
    """Yield the normalized, non-empty texts of a corpus sample (at most ``sample_bytes``).

    Normalization runs in ``workers`` forked processes (default: all cores) on large samples;
    the order of texts does not depend on it.
    """
    import multiprocessing as mp
    import os

    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from vinaforge.logs import console

    files = corpus_files(paths)
    stats = stats if stats is not None else CorpusStats()
    stats.files = [str(f) for f in files]
    sizes = [max(text_size(f), 1) for f in files]
    total = sum(sizes)
    quotas = [None if sample_bytes is None else max(1, sample_bytes * s // total) for s in sizes]
    goal = total if sample_bytes is None else min(sample_bytes, total)
    workers = workers or min(os.cpu_count() or 1, 8)
    pool = None
    # fork: workers inherit the loaded normalizer and need no importable __main__ (a spawned
    # worker re-runs an unguarded calling script). Not after torch is loaded: forking a process
    # whose OpenMP pool has started can hang, so such callers normalize in-process.
    if (
        normalize is not None
        and workers > 1
        and goal >= POOL_MIN_BYTES
        and "fork" in mp.get_all_start_methods()
        and "torch" not in sys.modules
    ):
        pool = mp.get_context("fork").Pool(workers)
    try:
        with Progress(
            TextColumn("[bold]reading corpus"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.description}"),
            disable=not progress,
            transient=True,
            console=console(),  # the one console the log lines use: bar and logs never interleave
        ) as bar:
            task = bar.add_task("", total=goal)
            for path, quota in zip(files, quotas, strict=True):
                bar.update(task, description=path.name)
                batches = _raw_batches(path, field, quota, 1 << 20)
                jobs = ((b, normalize) for b in batches)
                results = pool.imap(_normalize_batch, jobs) if pool else map(_normalize_batch, jobs)
                taken = records = empty = 0
                for texts in results:
                    for text in texts:
                        if not text.strip():
                            empty += 1
                            continue
                        records += 1
                        yield text
                    n = sum(len(t.encode("utf-8")) for t in texts)
                    taken += n
                    bar.advance(task, n)
                stats.per_file[str(path)] = {"records": records, "bytes": taken, "empty": empty}
                stats.records += records
                stats.empty_records += empty
                stats.bytes_read += taken
    finally:
        if pool is not None:
            pool.terminate()
    if stats.records == 0:
        raise TokenizerError(
            f"corpus is empty: no non-empty text in {', '.join(str(f) for f in files)}"
            + (f" (field {field!r})" if field != "text" else "")
        )
    log.info(
        "corpus sample: %d texts, %.1f MB from %d files (%d empty records skipped)",
        stats.records,
        stats.bytes_read / 1e6,
        len(files),
        stats.empty_records,
    )

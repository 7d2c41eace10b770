"""Our datatrove pipeline steps besides the filters: normalization, PII, writers, housekeeping.

Built on datatrove's ``PipelineStep``, ``JsonlReader``, ``JsonlWriter`` and ``ParquetWriter``.
Hand-written parts and why:

- :class:`Normalizer` and :class:`PIIRedactor` apply ``vinaforge.text`` normalization and our
  Vietnamese PII rules, counting what they changed (datatrove has no Vietnamese counterpart);
- :class:`FunnelJsonlWriter` / :class:`FunnelParquetWriter` count documents, characters and
  syllables written, so every funnel row is measured, not derived;
- outputs are gzip-compressed with a zero timestamp (``gzip-fixed``), so a resumed run writes
  byte-identical files to an uninterrupted one;
- :class:`CleanRankOutputs` deletes a task's half-written files before the task re-runs, and
  :class:`RankFileReader` reads exactly the intermediate shard of its own task, keeping document
  indices aligned with datatrove's dedup signatures even when some task wrote nothing.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import fsspec.compression
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.readers.jsonl import JsonlReader
from datatrove.pipeline.writers.jsonl import JsonlWriter
from datatrove.pipeline.writers.parquet import ParquetWriter

from vinaforge.data.pii import redact_pii
from vinaforge.data.textstats import syllables_of, tokens_of
from vinaforge.text.normalize import NormalizeConfig

FIXED_GZIP = "gzip-fixed"


def _fixed_gzip(infile, mode: str = "rb", **kwargs):
    """gzip with no timestamp or file name in the header: same content, same bytes."""
    kwargs.setdefault("compresslevel", 1)  # several times faster than 9; files about 15% larger
    return gzip.GzipFile(fileobj=infile, mode=mode, mtime=0, filename="", **kwargs)


fsspec.compression.register_compression(FIXED_GZIP, _fixed_gzip, [], force=True)

# Metadata written first, in this order, in kept and rejected records.
KEPT_FIRST = ("language", "language_score", "quality_score", "tier", "syllables")
INTERNAL_KEYS = frozenset({"filter", "reason", "value", "duplicate_count", "minhash_cluster_id"})


def intermediate_record(self, doc: Document) -> dict[str, Any]:
    """datatrove's own layout (text, id, metadata), without ``dataclasses.asdict``'s deep copy."""
    return {"text": doc.text, "id": doc.id, "metadata": doc.metadata}


def kept_record(self, doc: Document) -> dict[str, Any]:
    """A kept document as one flat JSON record: id, text, labels, then the source's fields."""
    md = doc.metadata
    rec: dict[str, Any] = {"id": doc.id, "text": doc.text}
    for key in KEPT_FIRST:
        if key in md:
            rec[key] = md[key]
    if "duplicate_count" in md:  # datatrove's ExactDedupFilter: exact copies removed
        rec["exact_duplicates"] = md["duplicate_count"]
    for key, val in md.items():
        if key not in rec and key not in INTERNAL_KEYS:
            rec[key] = val
    return rec


def rejected_record(self, doc: Document) -> dict[str, Any]:
    """A rejected document: id, filter, reason, measured value, text, then everything else."""
    md = doc.metadata
    rec: dict[str, Any] = {
        "id": doc.id,
        "filter": md.get("filter"),
        "reason": md.get("reason"),
        "value": md.get("value"),
        "text": doc.text,
    }
    for key, val in md.items():
        if key not in rec:
            rec[key] = val
    return rec


KEPT_PARQUET_COLUMNS = ("id", "text", "language", "language_score", "quality_score", "tier", "source")


def kept_parquet_record(self, doc: Document) -> dict[str, Any]:
    """A kept document for Parquet: fixed columns, the rest as a JSON string in ``metadata``."""
    rec = kept_record(self, doc)
    out = {k: rec.pop(k, None) for k in KEPT_PARQUET_COLUMNS}
    out["metadata"] = json.dumps(rec, ensure_ascii=False, default=str)
    return out


def kept_parquet_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("id", pa.string()),
            ("text", pa.string()),
            ("language", pa.string()),
            ("language_score", pa.float64()),
            ("quality_score", pa.float64()),
            ("tier", pa.string()),
            ("source", pa.string()),
            ("metadata", pa.string()),
        ]
    )


class _FunnelCounting:
    """Mixin for datatrove writers: count what is written (docs, chars, syllables, tiers).

    Counting happens in ``write`` because datatrove's dedup filters call their exclusion
    writer's ``write`` directly; the totals go to the step's stats when the writer closes.
    """

    row: str

    def write(self, document: Document, rank: int = 0, **kwargs) -> None:
        # datatrove's write also keeps per-file document stats, formatting the file name twice
        # per document; here the name is formatted once and only the funnel is counted.
        if self.max_file_size > 0:
            super().write(document, rank, **kwargs)
        else:
            fields = self.__dict__.get("_fields")
            if fields is None:
                fields = self._fields = self.output_filename.get_identifiers()
            values = {k: (str(rank).zfill(5) if k == "rank" else document.metadata[k]) for k in fields}
            name = self.output_filename.substitute(values)
            self._write(self.adapter(document), self._get_output_file_with_retry(name), name)
        counts = self.__dict__.setdefault("_funnel", Counter())
        n_chars, n_syl = len(document.text), syllables_of(document)
        counts["docs"] += 1
        counts["chars"] += n_chars
        counts["syllables"] += n_syl
        if "tier" in document.metadata:
            group = f"{document.metadata['tier']}/{document.metadata.get('language', 'und')}"
            counts[f"docs/{group}"] += 1
            counts[f"chars/{group}"] += n_chars
            counts[f"syllables/{group}"] += n_syl

    def close(self) -> None:
        super().close()
        for key, val in self.__dict__.pop("_funnel", Counter()).items():
            self.stat_update(key, value=val)


def written_totals(writer) -> dict[str, int]:
    """What a closed funnel writer wrote (docs, chars, syllables), for its owner's stats.

    Exclusion writers are not pipeline steps, so datatrove saves no stats for them.
    """
    if writer is None:
        return {}
    return {k: int(v.total) for k, v in writer.stats.stats.items() if k in ("docs", "chars", "syllables")}


class FunnelJsonlWriter(_FunnelCounting, JsonlWriter):
    """``JsonlWriter`` that counts what it writes (stats named ``vf/<row>``)."""

    def __init__(
        self, row: str, output_folder: str, output_filename: str, compression=FIXED_GZIP, adapter=None
    ):
        self.row = row
        self.name = f"vf/{row}"
        super().__init__(
            output_folder, output_filename=output_filename, compression=compression, adapter=adapter
        )


class FunnelParquetWriter(_FunnelCounting, ParquetWriter):
    """``ParquetWriter`` that counts what it writes (stats named ``vf/<row>``)."""

    def __init__(self, row: str, output_folder: str, output_filename: str, adapter=None, schema=None):
        self.row = row
        self.name = f"vf/{row}"
        super().__init__(
            output_folder,
            output_filename=output_filename,
            compression="zstd",
            adapter=adapter,
            schema=schema,
            max_file_size=-1,
            use_content_defined_chunking=False,
        )


def exact_rejected_record(self, doc: Document) -> dict[str, Any]:
    """An exact duplicate; its value is the hash of the normalized text it shares with the kept copy."""
    import xxhash

    from vinaforge.data.dedup import exact_key

    doc.metadata.update(
        filter="exact_dedup", reason="exact_duplicate", value=xxhash.xxh64_hexdigest(exact_key(doc))
    )
    return rejected_record(self, doc)


def minhash_rejected_record(self, doc: Document) -> dict[str, Any]:
    """A near duplicate; its value is the size of its MinHash cluster."""
    doc.metadata.update(
        filter="minhash_dedup", reason="near_duplicate", value=doc.metadata.get("minhash_cluster_size")
    )
    return rejected_record(self, doc)


def rejected_writer(root: Path, row: str, adapter=rejected_record) -> FunnelJsonlWriter:
    """Writer of ``rejected/<row>/<rank>.jsonl.gz``."""
    return FunnelJsonlWriter(
        f"rejected/{row}", str(root / "rejected" / row), "${rank}.jsonl.gz", adapter=adapter
    )


class RankFileReader(JsonlReader):
    """Reads the intermediate shard ``<rank>.jsonl`` of its own task, and only that one."""

    name = "vf/read/shard"

    def __init__(self, data_folder: str):
        super().__init__(data_folder, compression=None, add_file_path=False)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data
        shard = f"{rank:05d}.jsonl"
        if self.data_folder.exists(shard):
            yield from self.read_file(shard)


class CleanRankOutputs(PipelineStep):
    """First step of a task: delete what an interrupted earlier attempt of this task wrote."""

    type = "🧹 - CLEAN"
    name = "vf/clean"

    def __init__(self, patterns: list[str]):
        super().__init__()
        self.patterns = patterns  # globs with {rank}, e.g. "/out/rejected/*/{rank:05d}.jsonl.gz"

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        # Not a generator: the files go now, before any later step opens its outputs.
        import glob

        for pattern in self.patterns:
            for path in glob.glob(pattern.format(rank=rank)):
                Path(path).unlink(missing_ok=True)
        return data


# Control characters (except tab and newlines), C1 controls, private use, U+FFFD, non-characters:
# measured on the raw text, because normalization deletes the invisible ones.
_BAD_CHAR_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ue000-\uf8ff\ufffd\ufffe\uffff]")
_BAD_CHAR_SAMPLE = 100_000


class Normalizer(PipelineStep):
    """``vinaforge.text`` normalization: legacy encodings, NFC, tone style, invisible chars...

    Runs first, so that every filter measures the text that will be kept. Records the reader
    could not parse and documents over ``max_chars`` pass through untouched (the ``input``
    filter rejects them); the share of control/replacement characters of the raw text is noted
    in ``bad_char_ratio`` for the ``input`` filter's binary-junk rule.
    """

    type = "✂️ - FORMAT"
    name = "vf/normalize"

    def __init__(self, cfg: NormalizeConfig, max_chars: int):
        super().__init__()
        self.cfg = cfg
        self.max_chars = max_chars
        self._fixed = cfg.model_copy(update={"from_legacy": "none"})
        self._by_encoding = {
            enc: cfg.model_copy(update={"from_legacy": enc}) for enc in ("tcvn3", "vni", "viqr")
        }

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        from vinaforge.text.legacy import detect_legacy
        from vinaforge.text.normalize import normalize_text

        counts: Counter = Counter()
        auto = self.cfg.from_legacy == "auto"
        for doc in data:
            with self.track_time():
                before = doc.text
                counts["docs"] += 1
                counts["chars_in"] += len(before)
                if "read_error" in doc.metadata or len(before) > self.max_chars or not before:
                    counts["chars_out"] += len(before)
                    yield doc
                    continue
                sample = before[:_BAD_CHAR_SAMPLE]
                bad = len(_BAD_CHAR_RE.findall(sample))
                if bad:
                    doc.metadata["bad_char_ratio"] = round(bad / len(sample), 4)
                enc = detect_legacy(before) if auto else None
                if enc:
                    doc.metadata["repaired"] = f"legacy_{enc}"
                    counts[f"legacy/{enc}"] += 1
                after = normalize_text(
                    before, self._by_encoding[enc] if enc else self._fixed if auto else self.cfg
                )
                counts["chars_out"] += len(after)
                if after != before:
                    counts["changed"] += 1
                doc.text = after  # the same object the next steps' token cache will see
            yield doc
        for key, val in counts.items():
            self.stat_update(key, value=val)


class PIIRedactor(PipelineStep):
    """Replace e-mails, phones, citizen IDs, IPs and card numbers with typed placeholders."""

    type = "✂️ - FORMAT"
    name = "vf/pii"

    def __init__(self, types: list[str]):
        super().__init__()
        self.types = tuple(types)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        counts: Counter = Counter()
        for doc in data:
            with self.track_time():
                before = doc.text
                after, found = redact_pii(before, self.types)
                counts["docs"] += 1
                counts["chars_in"] += len(before)
                counts["chars_out"] += len(after)
                counts["syllables_in"] += len(tokens_of(before).words)
                counts["syllables_out"] += len(tokens_of(after).words)
                if found:
                    counts["docs_redacted"] += 1
                    for kind, n in found.items():
                        counts[f"redact/{kind}"] += n
                    doc.metadata["pii"] = dict(sorted(found.items()))
                    doc.text = after
            yield doc
        for key, val in counts.items():
            self.stat_update(key, value=val)


class ClusterRecorder(PipelineStep):
    """Notes which kept document stands for each MinHash cluster (for duplicate_clusters.jsonl)."""

    type = "🫂 - DEDUP"
    name = "vf/cluster-record"

    def __init__(self, folder: str, keep_cluster_size: bool):
        super().__init__()
        self.folder = folder
        self.keep_cluster_size = keep_cluster_size

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        out = Path(self.folder)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / f"{rank:05d}.jsonl", "w", encoding="utf-8") as fh:
            for doc in data:
                md = doc.metadata
                cluster = md.get("minhash_cluster_id", -1)
                if cluster >= 0:
                    fh.write(json.dumps({"cluster": cluster, "id": doc.id}, ensure_ascii=False) + "\n")
                if not self.keep_cluster_size:
                    md.pop("minhash_cluster_size", None)
                yield doc

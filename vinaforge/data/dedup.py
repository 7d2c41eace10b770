"""Deduplication on datatrove: exact (normalized-text hash) and MinHash LSH on syllable shingles.

Library: datatrove's ``ExactDedupSignature`` / ``ExactFindDedups`` / ``ExactDedupFilter`` and
its four MinHash stages (signature, buckets, cluster, filter) do the hashing, sorting,
bucketing, union-find clustering and filtering, locally or on Slurm/Ray.

Hand-written: the shingles. datatrove builds them from spaCy + pyvi words for Vietnamese;
here a shingle is ``n`` consecutive lower-cased syllables (``\\w+`` runs, numbers folded to
``0`` as datatrove's ``simplify_text`` does, diacritics kept: ``ma``/``má``/``mà`` are different
words). Each syllable is hashed once with xxhash and n-grams are combined with numpy, which is
an order of magnitude faster than hashing joined strings. Also the glue that lets exact and
near-duplicate removal share one pass (:class:`DedupSignatures`, :class:`DedupFilter`) and agree
on which copy to keep (:class:`KeepFirstMember`, :class:`RankedExactSignature`).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import xxhash
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.dedup.exact_dedup import ExactDedupSignature
from datatrove.pipeline.dedup.minhash import MinhashConfig as DTMinhashConfig
from datatrove.pipeline.dedup.minhash import MinhashDedupSignature
from datatrove.utils.hashing import HashConfig
from datatrove.utils.word_tokenizers import WordTokenizer

from vinaforge.data.config import MinhashConfig
from vinaforge.data.textstats import ngram_keys, syllables_of, tokens_of

_DIGITS_RE = re.compile(r"\d+")
_TOKEN_HASH_CACHE: dict[str, int] = {}
_TOKEN_HASH_CACHE_MAX = 2_000_000


def exact_key(doc: Document) -> bytes:
    """What two documents must share to be exact duplicates: their lower-cased syllables."""
    return " ".join(tokens_of(doc.text).lower).encode("utf-8")


def syllable_shingles(text: str, n: int) -> np.ndarray:
    """64-bit hashes of the ``n``-syllable shingles of ``text`` (numbers folded to ``0``).

    Stable across processes and machines: syllables are hashed with xxhash, not ``hash()``.
    """
    lower = tokens_of(text).lower
    cache = _TOKEN_HASH_CACHE
    missing = set(lower).difference(cache)
    if missing:
        if len(cache) + len(missing) > _TOKEN_HASH_CACHE_MAX:
            cache.clear()
            missing = set(lower)
        for w in missing:
            cache[w] = xxhash.xxh64_intdigest(_DIGITS_RE.sub("0", w).encode("utf-8"))
    hashes = np.fromiter(map(cache.__getitem__, lower), dtype=np.uint64, count=len(lower))
    return ngram_keys(hashes, n)


def datatrove_minhash_config(cfg: MinhashConfig) -> DTMinhashConfig:
    return DTMinhashConfig(
        n_grams=cfg.n_grams,
        num_buckets=cfg.num_buckets,
        hashes_per_bucket=cfg.hashes_per_bucket,
        seed=cfg.seed,
        hash_config=HashConfig(precision=32),
    )


class SyllableWordTokenizer(WordTokenizer):
    """datatrove word tokenizer on Vietnamese syllables (``\\w+`` runs), with no spaCy.

    datatrove's own Vietnamese and English tokenizers need spaCy (and pyvi); a syllable split
    is what every figure in vinaforge counts, and it is fast.
    """

    def __init__(self) -> None:
        super().__init__("vi")

    def word_tokenize(self, text: str) -> list[str]:
        from vinaforge.text.syllables import iter_syllables

        return list(iter_syllables(text))

    def sent_tokenize(self, text: str) -> list[str]:
        from vinaforge.text.sentences import split_sentences

        return split_sentences(text)

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in re.finditer(r"\w+", text)]


class SyllableMinhashSignature(MinhashDedupSignature):
    """datatrove's MinHash signature stage with syllable shingles.

    Also keeps each document's whole signature (``full_folder/<rank>.npy``, one row per
    document) so that :class:`VerifyPairs` can check a candidate pair on all its hashes.
    """

    name = "vf/minhash-signature"
    _params32: tuple[np.ndarray, np.ndarray] | None = None

    def __init__(self, output_folder: str, config: DTMinhashConfig, full_folder: str | None = None):
        super().__init__(output_folder, config=config, language=SyllableWordTokenizer())
        self.full_folder = full_folder

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1):
        self._rows: list[np.ndarray | None] = []
        super().run(data, rank, world_size)
        if self.full_folder is not None:
            width = self.config.num_buckets * self.config.hashes_per_bucket
            full = np.zeros((len(self._rows), width), dtype=np.uint32)
            for i, row in enumerate(self._rows):
                if row is not None:
                    full[i] = row
            folder = Path(self.full_folder)
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / f".{rank:05d}.npy.tmp", "wb") as fh:
                np.save(fh, full)
            (folder / f".{rank:05d}.npy.tmp").replace(folder / f"{rank:05d}.npy")

    def get_shingles(self, text: str) -> np.ndarray:
        if hasattr(self, "_rows"):
            self._rows.append(None)  # one row per document, in stream order
        return syllable_shingles(text, self.config.n_grams).reshape((-1, 1))

    def get_signature(self, shingles: np.ndarray) -> list[list[int]]:
        """Min-hash under ``a * x + b`` modulo 2**32 (``a`` odd) on the shingles' top 32 bits.

        A family of random permutations like datatrove's ``mod (2**61 - 1)`` on 64 bits, at a
        quarter of the memory traffic and without the slow modulo; signatures are 32-bit, the
        precision datatrove's ``HashConfig(precision=32)`` stores.
        """
        if self._params32 is None:
            a, b = self.parameters
            self._params32 = (
                (a & np.uint64(0xFFFFFFFF)).astype(np.uint32) | np.uint32(1),
                b.astype(np.uint32),
            )
        a32, b32 = self._params32
        x = (shingles >> np.uint64(32)).astype(np.uint32)
        with np.errstate(over="ignore"):
            phv = x * a32 + b32
        mins = phv.min(axis=0)
        if getattr(self, "_rows", None):
            self._rows[-1] = mins
        return mins.reshape(self.config.num_buckets, -1).tolist()


class RankedExactSignature(ExactDedupSignature):
    """datatrove's exact-dedup signature, with the task rank as priority.

    ``ExactFindDedups`` keeps the copy with the highest priority, then the lowest index: so the
    kept copy is the first one in (task, index) order, the same rule as :class:`KeepFirstMember`.
    """

    name = "vf/exact-signature"

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1):
        self._priority = max(1, 65535 - rank)
        return super().run(data, rank, world_size)

    def get_hashes(self, doc: Document, doc_idx: int) -> list[tuple[int, int, int]]:
        return [(self.hash_fc(self.config.content_getter(doc)), self._priority, doc_idx)]


class DedupSignatures(PipelineStep):
    """Feeds one document stream to both signature steps (exact and MinHash)."""

    type = "🫂 - DEDUP"
    name = "vf/dedup-signatures"

    def __init__(self, exact: RankedExactSignature | None, minhash: SyllableMinhashSignature | None):
        super().__init__()
        self.exact = exact
        self.minhash = minhash

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        exact_sigs: list = []
        if self.exact is not None:
            self.exact._priority = max(1, 65535 - rank)

        def stream():
            for idx, doc in enumerate(data):
                if self.exact is not None:
                    exact_sigs.extend(self.exact.get_hashes(doc, idx))
                yield doc

        if self.minhash is not None:
            self.minhash.run(stream(), rank, world_size)
        else:
            for _ in stream():
                pass
        if self.exact is not None:
            self.exact.save_hashes(rank, exact_sigs)
        return
        yield  # a generator, like every pipeline step


class VerifyPairs(PipelineStep):
    """Between ``MinhashDedupBuckets`` and ``MinhashDedupCluster``: drop candidate pairs whose
    whole signatures agree on fewer than ``min_similarity`` of their hashes.

    LSH banding proposes a pair when any one band matches, so two articles on the same story
    (Jaccard 0.3) share a band now and then; the share of equal hashes over all bands is an
    unbiased estimate of the Jaccard similarity and separates them cleanly from edited copies
    (0.7 and up). Rewrites the ``.dups`` files in place (idempotent: a re-run finds the same).
    """

    type = "🫂 - DEDUP"
    name = "vf/minhash-verify"

    def __init__(self, pairs_folder: str, full_folder: str, min_similarity: float):
        super().__init__()
        self.pairs_folder = pairs_folder
        self.full_folder = full_folder
        self.min_similarity = min_similarity

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        # eager, not a generator: the single-task steps around it ignore their input stream
        full: dict[int, np.ndarray] = {}

        def sig(task: int) -> np.ndarray:
            if task not in full:
                full[task] = np.load(Path(self.full_folder) / f"{task:05d}.npy", mmap_mode="r")
            return full[task]

        kept = dropped = 0
        for path in sorted(Path(self.pairs_folder).glob("*.dups")):
            pairs = np.fromfile(path, dtype="<u4").reshape(-1, 4)
            if len(pairs) == 0:
                continue
            keep = np.zeros(len(pairs), dtype=bool)
            for i, (f1, d1, f2, d2) in enumerate(pairs.tolist()):
                keep[i] = float(np.mean(sig(f1)[d1] == sig(f2)[d2])) >= self.min_similarity
            kept += int(keep.sum())
            dropped += int((~keep).sum())
            tmp = path.with_name(path.name + ".tmp")
            pairs[keep].tofile(tmp)
            tmp.replace(path)
        self.stat_update("pairs_kept", value=kept)
        self.stat_update("pairs_dropped", value=dropped)
        return data


def _read_pairs(path: Path) -> np.ndarray:
    if not path.is_file():
        return np.empty((0, 2), dtype="<u4")
    return np.fromfile(path, dtype="<u4").reshape(-1, 2)


class KeepFirstMember(PipelineStep):
    """After ``MinhashDedupCluster``: keep the first member of each cluster in (task, index) order.

    datatrove keeps the union-find root, which depends on the order pairs were merged. Keeping
    the first member instead makes MinHash and exact dedup agree: exact copies have identical
    signatures, so a cluster's first member is never a copy that exact dedup removes, and no
    cluster loses all its members. Rewrites the ``.remove`` files from the ``.clusters`` files.
    """

    type = "🫂 - DEDUP"
    name = "vf/minhash-keep-first"

    def __init__(self, folder: str, tasks: int):
        super().__init__()
        self.folder = folder
        self.tasks = tasks

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        # eager, not a generator: the single-task steps around it ignore their input stream
        folder = Path(self.folder)
        members = [_read_pairs(folder / f"{task:06d}.clusters") for task in range(self.tasks)]
        first: dict[int, tuple[int, int]] = {}
        for task, pairs in enumerate(members):
            for doc, cluster in pairs.tolist():
                key = (task, doc)
                if cluster not in first or key < first[cluster]:
                    first[cluster] = key
        for task, pairs in enumerate(members):
            remove = sorted(doc for doc, cluster in pairs.tolist() if first[cluster] != (task, doc))
            tmp = folder / f".{task:06d}.remove.tmp"
            np.asarray(remove, dtype="<u4").tofile(tmp)
            tmp.replace(folder / f"{task:06d}.remove")
        return data


def exact_removed(folder: str | Path, task: int) -> np.ndarray:
    """Indices of a task's documents that ``ExactFindDedups`` marked as exact copies."""
    parts = [np.fromfile(p, dtype="<u4") for p in sorted(Path(folder).glob(f"*/{task:05d}.c4_dup"))]
    return np.unique(np.concatenate(parts)) if parts else np.empty(0, dtype=np.uint32)


def exact_counts(folder: str | Path, task: int) -> dict[int, int]:
    """Number of exact copies removed, per kept document index of a task."""
    out: dict[int, int] = {}
    for p in sorted(Path(folder).glob(f"*/{task:05d}.c4_counts")):
        for doc, count in _read_pairs(p).tolist():
            out[doc] = out.get(doc, 0) + count
    return out


def minhash_removed(folder: str | Path, task: int) -> np.ndarray:
    """Indices of a task's documents that MinHash removes."""
    path = Path(folder) / f"{task:06d}.remove"
    if not path.is_file():
        return np.empty(0, dtype=np.uint32)
    return np.fromfile(path, dtype="<u4")


def removed_mask(
    n: int, task: int, exact_folder: str | Path | None, minhash_folder: str | Path | None
) -> np.ndarray:
    """Boolean mask of the ``n`` documents of a task that deduplication keeps."""
    keep = np.ones(n, dtype=bool)
    for idx in (
        exact_removed(exact_folder, task) if exact_folder else None,
        minhash_removed(minhash_folder, task) if minhash_folder else None,
    ):
        if idx is not None and len(idx):
            keep[idx[idx < n]] = False
    return keep


class DedupFilter(PipelineStep):
    """Drops exact copies and near duplicates, writing each to its own ``rejected/`` folder.

    One step instead of datatrove's ``ExactDedupFilter`` + ``MinhashDedupFilter`` because both
    number documents by their position in the stream they receive: chained, the second would
    see shifted positions. Reads the same files they read (``.c4_dup``, ``.c4_counts``,
    ``.remove``, ``.clusters``, ``.sizes``) and adds the same metadata (``minhash_cluster_id``,
    ``minhash_cluster_size``, exact ``duplicate_count``).
    """

    type = "🫂 - DEDUP"
    name = "vf/dedup-filter"

    def __init__(
        self, exact_folder: str | None, minhash_folder: str | None, exact_writer=None, minhash_writer=None
    ):
        super().__init__()
        self.exact_folder = exact_folder
        self.minhash_folder = minhash_folder
        self.exact_writer = exact_writer
        self.minhash_writer = minhash_writer

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        import contextlib

        exact = set(exact_removed(self.exact_folder, rank).tolist()) if self.exact_folder else set()
        copies = exact_counts(self.exact_folder, rank) if self.exact_folder else {}
        near: set[int] = set()
        cluster_of: dict[int, int] = {}
        size_of: dict[int, int] = {}
        if self.minhash_folder:
            folder = Path(self.minhash_folder)
            near = set(minhash_removed(folder, rank).tolist())
            cluster_of = dict(_read_pairs(folder / f"{rank:06d}.clusters").tolist())
            size_of = dict(_read_pairs(folder / f"{rank:06d}.sizes").tolist())
        counts: Counter = Counter()

        def count(prefix: str, doc: Document) -> None:
            counts[f"{prefix}_docs"] += 1
            counts[f"{prefix}_chars"] += len(doc.text)
            counts[f"{prefix}_syllables"] += syllables_of(doc)

        with contextlib.ExitStack() as stack:
            ew = stack.enter_context(self.exact_writer) if self.exact_writer else None
            mw = stack.enter_context(self.minhash_writer) if self.minhash_writer else None
            for idx, doc in enumerate(data):
                with self.track_time():
                    md = doc.metadata
                    if self.minhash_folder:
                        md["minhash_cluster_id"] = cluster_of.get(idx, -1)
                        md["minhash_cluster_size"] = size_of.get(idx, 1)
                    if self.exact_folder:
                        md["duplicate_count"] = copies.get(idx, 0)
                    count("in", doc)
                    if idx in exact:
                        count("exact", doc)
                        if ew is not None:
                            ew.write(doc, rank)
                        continue
                    count("after_exact", doc)
                    if idx in near:
                        count("near", doc)
                        if mw is not None:
                            mw.write(doc, rank)
                        continue
                    count("kept", doc)
                yield doc
        from vinaforge.data.blocks import written_totals

        for name, writer in (("exact", self.exact_writer), ("near", self.minhash_writer)):
            for key, val in written_totals(writer).items():
                counts[f"written_{name}_{key}"] += val
        for key, val in counts.items():
            self.stat_update(key, value=val)

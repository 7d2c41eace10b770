"""Tokenize a corpus with datatrove before the GPU job: ``vinaforge train tokenize``.

Packing inside the training job tokenizes in one process. For billions of tokens this step runs
instead as a datatrove pipeline on the same executors as curation (local processes, Slurm or
Ray; :func:`vinaforge.data.curate.make_executor`):

    JsonlReader -> LambdaFilter (empty texts, kept in rejected/) -> DocumentTokenizer

datatrove's ``DocumentTokenizer`` writes one ``NNNNN_unshuffled.ds`` token file per task (uint16
or uint32 ids, each document closed by EOS through its post-processor) and a ``.ds.index`` of
document ends. :func:`merge_shards` then concatenates the shards, in task order, into the format
:class:`~vinaforge.train.packing.PackedSource` memory-maps (``tokens.bin``, ``docs.npy``,
``meta.json`` with the tokenizer's fingerprint). A cpt source with ``kind: packed`` and the output
folder as its path trains on it directly, and refuses it when the run's tokenizer differs.

The ids are those :mod:`vinaforge.train.packing` writes for a ``kind: text`` source (same
tokenizer.json, no BOS, EOS after each document); ``tests/train/test_pretokenize.py`` checks it.
Re-running skips finished tasks (datatrove's completion files).

Hand-written: the merge into our format (a stream copy); reading, filtering and tokenizing are
datatrove's.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from vinaforge.stage import StageConfig

log = logging.getLogger(__name__)


class TokenizeConfig(StageConfig):
    """Settings of ``vinaforge train tokenize`` (executor keys as in the curation config)."""

    inputs: list[str] = Field(min_length=1, description="JSONL(.gz) files or folders of them")
    tokenizer: str = Field(description="HF tokenizer folder (with tokenizer.json)")
    name: str = Field("text", description="source name recorded in meta.json")
    field: str = Field("text", description="text field of the records")
    executor: Literal["local", "slurm", "ray"] = "local"
    tasks: int = Field(0, ge=0, description="datatrove tasks (0: one per input file, at most 64)")
    workers: int = Field(0, ge=0, description="parallel processes for local runs (0: all cores)")
    slurm: dict = Field(
        default_factory=dict, description="SlurmPipelineExecutor settings (partition, time...)"
    )
    ray: dict = Field(default_factory=dict, description="RayPipelineExecutor settings")
    batch_size: int = Field(10000, gt=0, description="documents per tokenizer call")


def _non_empty(doc) -> bool:
    return bool(doc.text and doc.text.strip())


def _input_files(inputs: list[str]) -> tuple[Path, list[str]]:
    from vinaforge.io import expand_inputs

    files = [Path(p).resolve() for p in expand_inputs(inputs)]
    files = [f for f in files if f.name.endswith((".jsonl", ".jsonl.gz", ".json"))]
    if not files:
        raise ValueError(f"inputs: no JSONL files in {', '.join(inputs)}")
    root = Path(os.path.commonpath([str(f.parent) for f in files]))
    return root, [str(f.relative_to(root)) for f in files]


def tokenize_corpus(cfg: TokenizeConfig, output: str | Path):
    """Run the datatrove pipeline into ``output/.datatrove`` and merge it into ``output``."""
    from datatrove.pipeline.filters import LambdaFilter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.tokens import DocumentTokenizer
    from datatrove.pipeline.writers import JsonlWriter

    from vinaforge.data.curate import default_tasks, make_executor
    from vinaforge.model.load import load_tokenizer

    out = Path(output)
    work = out / ".datatrove"
    work.mkdir(parents=True, exist_ok=True)
    tokenizer = load_tokenizer(cfg.tokenizer)
    tok_json = Path(cfg.tokenizer) / "tokenizer.json"
    if not tok_json.is_file():
        raise ValueError(
            f"tokenizer: {cfg.tokenizer} has no tokenizer.json (datatrove needs a fast tokenizer)"
        )
    if tokenizer.eos_token is None:
        raise ValueError(f"tokenizer: {cfg.tokenizer} has no EOS token; documents cannot be separated")
    root, rel = _input_files(cfg.inputs)
    paths_file = work / "inputs.txt"
    paths_file.write_text("\n".join(rel) + "\n", encoding="utf-8")
    tasks = cfg.tasks or default_tasks(len(rel))
    pipeline = [
        JsonlReader(str(root), paths_file=str(paths_file), text_key=cfg.field),
        LambdaFilter(_non_empty, exclusion_writer=JsonlWriter(str(work / "rejected"))),
        DocumentTokenizer(
            output_folder=str(work / "tokens"),
            tokenizer_name_or_path=str(tok_json),
            eos_token=tokenizer.eos_token,
            shuffle_documents=False,
            batch_size=cfg.batch_size,
        ),
    ]
    make_executor(cfg, pipeline, tasks, work / "logs", name="tokenize").run()
    return merge_shards(work, out, cfg.name, tokenizer)


def merge_shards(work: Path, out: Path, name: str, tokenizer):
    """datatrove's per-task ``.ds`` + ``.ds.index`` files -> one packed source folder in ``out``."""
    from vinaforge.io import atomic_write_json
    from vinaforge.train.packing import PACK_FORMAT, PackedSource, token_dtype, tokenizer_fingerprint

    shards = sorted((work / "tokens").glob("*.ds"))
    dtype = token_dtype(len(tokenizer))
    starts: list[np.ndarray] = []
    n_tokens = 0
    tmp = out / "tokens.bin.tmp"
    with open(tmp, "wb") as sink:
        for shard in shards:
            ends = np.fromfile(f"{shard}.index", dtype="<u8").astype(np.int64)
            starts.append(n_tokens + np.concatenate([[0], ends[:-1]]))
            with open(shard, "rb") as src:
                shutil.copyfileobj(src, sink, 1 << 24)
            n_tokens += int(ends[-1]) if len(ends) else 0
        sink.flush()
        os.fsync(sink.fileno())
    if tmp.stat().st_size != n_tokens * dtype.itemsize:
        raise ValueError(f"{work}/tokens: the shards hold {tmp.stat().st_size} bytes for {n_tokens} tokens")
    os.replace(tmp, out / "tokens.bin")
    doc_starts = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
    np.save(out / "docs.npy", doc_starts.astype(np.int64))
    rejected = sum(1 for f in (work / "rejected").glob("*.jsonl*") for _ in _lines(f))
    meta = {
        "format": PACK_FORMAT,
        "name": name,
        "kind": "text",
        "packed_by": "datatrove DocumentTokenizer",
        "shards": [s.name for s in shards],
        "n_records": len(doc_starts) + rejected,
        "n_records_used": len(doc_starts),
        "rejected": {"empty text": rejected} if rejected else {},
        "rejected_dir": str(work / "rejected"),
        "n_docs": len(doc_starts),
        "n_tokens": n_tokens,
        "n_masked_tokens": 0,
        "dtype": dtype.name,
        "eos_id": tokenizer.eos_token_id,
        "bos_id": None,
        "vocab_size": len(tokenizer),
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "stopped_by": None,
    }
    atomic_write_json(out / "meta.json", meta)
    log.info(
        "%s: %s documents, %s tokens from %d datatrove shard(s)",
        out,
        f"{len(doc_starts):,}",
        f"{n_tokens:,}",
        len(shards),
    )
    return PackedSource.open(out)


def _lines(path: Path):
    import gzip

    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        yield from (line for line in fh if line.strip())


def open_pretokenized(folder: str | Path, tokenizer, source_name: str):
    """A ``kind: packed`` source: the folder written by :func:`tokenize_corpus`, for this tokenizer."""
    from vinaforge.train.packing import PackedSource, PackingError, tokenizer_fingerprint

    folder = Path(folder)
    if not (folder / "meta.json").is_file():
        raise PackingError(
            f"data.sources.{source_name}.paths: {folder} is not a tokenized folder (no meta.json); "
            "write it with `vinaforge train tokenize`"
        )
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    if meta.get("tokenizer") != tokenizer_fingerprint(tokenizer):
        raise PackingError(
            f"data.sources.{source_name}.paths: {folder} was tokenized with another tokenizer; "
            "re-run `vinaforge train tokenize` with the model's tokenizer"
        )
    return PackedSource(source_name, folder, meta)

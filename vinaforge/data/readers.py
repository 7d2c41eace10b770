"""Readers that never lose a record: JSONL(.gz), Parquet, plain-text folders, HF datasets.

Built on datatrove's ``BaseDiskReader`` (fsspec folders, sharding files over tasks, ``limit``)
and ``HuggingFaceDatasetReader`` (hub streaming or ``load_from_disk``). Hand-written parts:
datatrove's readers skip malformed JSON lines, records without text and empty texts with only
a log line, and stop reading a file at the first invalid UTF-8 byte. Here every input record
becomes a document: unusable ones carry ``read_error`` metadata (``malformed_json``,
``missing_text_field``, ``text_not_string``, ``not_an_object``, ``corrupt_file``) and are
rejected with that reason by the ``input`` filter; invalid UTF-8 is repaired (U+FFFD) and noted
in ``repaired``. :func:`plan_inputs` checks paths and the text field before any work starts.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.readers.base import BaseDiskReader
from datatrove.pipeline.readers.huggingface import HuggingFaceDatasetReader

log = logging.getLogger(__name__)

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)
TEXT_SUFFIXES = (".txt", ".txt.gz")
SUPPORTED_SUFFIXES = JSONL_SUFFIXES + PARQUET_SUFFIXES + TEXT_SUFFIXES
_PREVIEW_LINES = 200


class InputError(ValueError):
    """An input that cannot be read at all: wrong path, unsupported format, wrong field name."""


def _json_safe(value: Any) -> Any:
    """Metadata values that JSON can carry (bytes become a size marker, not a crash)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, str):
        return _no_surrogates(value)
    return value


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _no_surrogates(text: str) -> str:
    """Replace lone surrogates (from ``\\ud800`` escapes) that no UTF-8 writer accepts."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


def record_to_document(
    data: Any, text_key: str, id_key: str, source: str, position: int | str, line: int | None = None
) -> Document:
    """A datatrove ``Document`` for one input record; unusable records carry ``read_error``."""
    default_id = f"{source}:{position}"
    md: dict[str, Any] = {"source": source}
    if line is not None:
        md["line"] = line
    if not isinstance(data, dict):
        md.update(read_error="not_an_object", read_error_value=type(data).__name__)
        return Document(
            text=_no_surrogates(json.dumps(data, ensure_ascii=False, default=str)), id=default_id, metadata=md
        )
    raw_id = data.get(id_key)
    doc_id = str(raw_id) if raw_id is not None and raw_id != "" else default_id
    text = data.get(text_key)
    if text is None or not isinstance(text, str):
        reason = "missing_text_field" if text is None else "text_not_string"
        value = sorted(map(str, data))[:20] if text is None else type(text).__name__
        md.update(read_error=reason, read_error_value=value)
        return Document(
            text=_no_surrogates(json.dumps(_json_safe(data), ensure_ascii=False, default=str)),
            id=doc_id,
            metadata=md,
        )
    for key, val in data.items():
        if key not in (text_key, id_key) and key not in md:
            md[key] = _json_safe(val)
    return Document(text=_no_surrogates(text), id=doc_id, metadata=md)


class CorpusFileReader(BaseDiskReader):
    """JSONL(.gz), Parquet and ``.txt`` files listed in a paths file, sharded over tasks."""

    name = "vf/read/files"

    def __init__(
        self,
        data_folder: str,
        paths_file: str,
        text_key: str = "text",
        id_key: str = "id",
        text_unit: str = "file",
        limit: int = -1,
        doc_progress: bool = False,
    ):
        super().__init__(
            data_folder,
            paths_file=paths_file,
            limit=limit,
            text_key=text_key,
            id_key=id_key,
            doc_progress=doc_progress,
            add_file_path=False,
        )
        self.text_unit = text_unit

    def read_file(self, filepath: str) -> DocumentsPipeline:
        name = filepath.lower()
        try:
            if name.endswith(PARQUET_SUFFIXES):
                yield from self._read_parquet(filepath)
            elif name.endswith(TEXT_SUFFIXES):
                yield from self._read_text(filepath)
            else:
                yield from self._read_jsonl(filepath)
        except (OSError, EOFError, ValueError) as err:
            # truncated gzip, unreadable parquet...: one record says so, the run goes on
            log.warning("%s: stopped reading: %s", filepath, err)
            yield Document(
                text="",
                id=f"{filepath}:corrupt",
                metadata={
                    "source": filepath,
                    "read_error": "corrupt_file",
                    "read_error_value": f"{type(err).__name__}: {err}"[:300],
                },
            )

    def _read_jsonl(self, filepath: str) -> Iterator[Document]:
        with self.data_folder.open(filepath, "rb", compression="infer") as fh:
            for lineno, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                with self.track_time():
                    doc = self._parse_line(raw, filepath, lineno)
                yield doc

    def _parse_line(self, raw: bytes, filepath: str, lineno: int) -> Document:
        repaired = None
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            text = raw.decode("utf-8", errors="replace")
            try:
                data = json.loads(text)  # also takes lone surrogate escapes and NaN, which orjson refuses
                repaired = "lenient_json" if _is_utf8(raw) else "invalid_utf8"
            except json.JSONDecodeError as err:
                return Document(
                    text=_no_surrogates(text.rstrip("\r\n")),
                    id=f"{filepath}:{lineno}",
                    metadata={
                        "source": filepath,
                        "line": lineno,
                        "read_error": "malformed_json",
                        "read_error_value": f"{err.msg} at column {err.colno}",
                    },
                )
        doc = record_to_document(data, self.text_key, self.id_key, filepath, lineno, line=lineno)
        if repaired:
            doc.metadata["repaired"] = repaired
        return doc

    def _read_parquet(self, filepath: str) -> Iterator[Document]:
        import pyarrow.parquet as pq

        with self.data_folder.open(filepath, "rb") as fh, pq.ParquetFile(fh) as pqf:
            row = 0
            for batch in pqf.iter_batches(batch_size=1000):
                for rec in batch.to_pylist():
                    row += 1
                    yield record_to_document(rec, self.text_key, self.id_key, filepath, row)

    def _read_text(self, filepath: str) -> Iterator[Document]:
        with self.data_folder.open(filepath, "rb", compression="infer") as fh:
            raw = fh.read()
        text = raw.decode("utf-8", errors="replace")
        md: dict[str, Any] = {"source": filepath}
        if not _is_utf8(raw):
            md["repaired"] = "invalid_utf8"
        if self.text_unit == "file":
            yield Document(text=text, id=filepath, metadata=md)
            return
        if self.text_unit == "paragraph":
            units = [p.strip() for p in text.replace("\r\n", "\n").split("\n\n")]
        else:
            units = [ln.strip() for ln in text.splitlines()]
        for i, unit in enumerate(u for u in units if u):
            yield Document(text=unit, id=f"{filepath}:{i + 1}", metadata=dict(md))


class HFDatasetReader(HuggingFaceDatasetReader):
    """A Hugging Face dataset (hub id, streamed; or a ``save_to_disk`` folder), keeping every row."""

    name = "vf/read/hf"

    def get_document_from_dict(self, data: dict, source_file: str, id_in_file: int | str):
        return record_to_document(dict(data), self.text_key, self.id_key, source_file, id_in_file)


# ----------------------------------------------------------------------------- planning


@dataclass
class HFInput:
    dataset: str
    load_from_disk: bool


@dataclass
class InputPlan:
    """What to read: local files (relative to ``base``) and Hugging Face datasets."""

    base: Path
    files: list[str] = field(default_factory=list)
    hf: list[HFInput] = field(default_factory=list)

    @property
    def n_sources(self) -> int:
        return len(self.files) + len(self.hf)


def _is_saved_dataset(p: Path) -> bool:
    return p.is_dir() and (
        (p / "dataset_info.json").is_file()
        or (p / "state.json").is_file()
        or (p / "dataset_dict.json").is_file()
    )


def _expand_one(spec: str) -> list[Path]:
    import glob

    p = Path(spec)
    if p.is_file():
        if not p.name.lower().endswith(SUPPORTED_SUFFIXES):
            raise InputError(
                f"input {spec!r}: unsupported file type (expected one of {', '.join(SUPPORTED_SUFFIXES)})"
            )
        return [p]
    if p.is_dir():
        found = sorted(q for q in p.rglob("*") if q.is_file() and q.name.lower().endswith(SUPPORTED_SUFFIXES))
        if not found:
            raise InputError(f"input folder {spec!r} holds no {', '.join(SUPPORTED_SUFFIXES)} file")
        return found
    matches = sorted(Path(m) for m in glob.glob(spec, recursive=True))
    files = [m for m in matches if m.is_file() and m.name.lower().endswith(SUPPORTED_SUFFIXES)]
    if not files:
        raise InputError(f"input {spec!r} matches no file or folder (working directory: {os.getcwd()})")
    return files


def _saved_dataset_path(p: Path, split: str) -> str:
    """A ``save_to_disk`` folder; for a DatasetDict, its ``split`` subfolder."""
    if (p / "dataset_dict.json").is_file():
        splits = json.loads((p / "dataset_dict.json").read_text()).get("splits", [])
        if split not in splits:
            raise InputError(
                f"{p}: the saved dataset has no split {split!r} (splits: {splits}); set hf_split"
            )
        p = p / split
    return str(p.resolve())


def plan_inputs(specs: list[str], hf_split: str = "train") -> InputPlan:
    """Expand inputs into files and datasets, failing at once on anything missing."""
    if not specs:
        raise InputError("no input given: pass files, folders, globs or hf:org/name")
    files: list[Path] = []
    hf: list[HFInput] = []
    for spec in specs:
        if spec.startswith("hf:"):
            hf.append(HFInput(spec[3:], load_from_disk=False))
        elif _is_saved_dataset(Path(spec)):
            hf.append(HFInput(_saved_dataset_path(Path(spec), hf_split), load_from_disk=True))
        else:
            files.extend(q.resolve() for q in _expand_one(spec))
    unique = list(dict.fromkeys(files))
    base = Path(os.path.commonpath([str(f.parent) for f in unique])) if unique else Path.cwd()
    return InputPlan(base=base, files=[f.relative_to(base).as_posix() for f in unique], hf=hf)


def _preview_jsonl_keys(path: Path) -> tuple[set[str], int]:
    """Keys seen in the first parsable records of a JSONL file, and how many records parsed."""
    import gzip

    opener = gzip.open if path.name.endswith(".gz") else open
    keys: set[str] = set()
    parsed = 0
    try:
        with opener(path, "rb") as fh:
            for i, raw in enumerate(fh):
                if i >= _PREVIEW_LINES:
                    break
                try:
                    rec = json.loads(raw.decode("utf-8", errors="replace"))
                except json.JSONDecodeError:
                    continue
                if isinstance(rec, dict):
                    keys.update(rec)
                    parsed += 1
    except (EOFError, OSError, zlib.error):
        # a truncated or corrupt file: the run reads what it can and records the rest as
        # a corrupt_file rejection; only a readable file can prove a wrong field name
        return keys, parsed if parsed else -1
    return keys, parsed


def check_fields(plan: InputPlan, text_key: str, id_key: str, id_key_explicit: bool) -> None:
    """Fail now, naming the file, when the text field (or an explicit id field) is not there."""
    import pyarrow.parquet as pq

    for rel in plan.files:
        path = plan.base / rel
        name = path.name.lower()
        if name.endswith(TEXT_SUFFIXES):
            continue
        if name.endswith(PARQUET_SUFFIXES):
            try:
                keys = set(pq.read_schema(path).names)
            except Exception as err:  # noqa: BLE001 - any parquet failure is an input error
                raise InputError(f"{path}: not a readable Parquet file ({err})") from err
            parsed = 1
        else:
            keys, parsed = _preview_jsonl_keys(path)
            if parsed == 0 and path.stat().st_size > 0:
                raise InputError(
                    f"{path}: none of the first {_PREVIEW_LINES} lines is a JSON object; is it JSON Lines?"
                )
        if parsed > 0 and text_key not in keys:
            raise InputError(
                f"{path}: no record has the text field {text_key!r} (fields: {', '.join(sorted(keys)[:15])}); "
                "set text_field"
            )
        if parsed > 0 and id_key_explicit and id_key not in keys:
            raise InputError(
                f"{path}: no record has the id field {id_key!r}; set id_field or leave it default"
            )
    for ds in plan.hf:
        if not ds.load_from_disk:
            continue
        from datasets import load_from_disk

        columns = load_from_disk(ds.dataset).column_names
        if text_key not in columns:
            raise InputError(f"{ds.dataset}: the dataset has no column {text_key!r} (columns: {columns})")

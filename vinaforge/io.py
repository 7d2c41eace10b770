"""Small file helpers every stage shares: atomic writes, content hashes, text readers.

Hand-written glue: each piece is a few lines over the standard library, and one shared copy
keeps "write to a temporary name, then rename" identical across stages.
"""

from __future__ import annotations

import contextlib
import glob
import gzip
import hashlib
import io
import json
import os
import shutil
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TEXT_SUFFIXES = (".txt", ".jsonl", ".jsonl.gz", ".json", ".conllu", ".parquet", ".gz")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it over ``path`` only if the block succeeds.

    A crash or ``kill -9`` leaves at most a ``.tmp-*`` file that no reader mistakes for the
    finished artifact.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        if tmp.is_file():
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def link_tree(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Expose ``src`` (file or folder) at ``dst`` by hard links (a copy across devices).

    Stage outputs named at the top of a stage folder, so ``@stage/name`` works, without doubling
    the disk a model takes. An existing ``dst`` (a resumed stage) is replaced.
    """
    src, dst = Path(src), Path(dst)

    def link(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    if dst.is_dir() and not dst.is_symlink():
        shutil.rmtree(dst)
    elif dst.exists() or dst.is_symlink():
        dst.unlink()
    if src.is_dir():
        shutil.copytree(src, dst, copy_function=link)
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        link(str(src), str(dst))
    return dst


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=2, default=str) + "\n")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_path(path: str | os.PathLike) -> str:
    """Content hash of a file, or of a folder (relative names and contents, in sorted order)."""
    p = Path(path)
    if p.is_file():
        return sha256_file(p)
    if not p.is_dir():
        raise FileNotFoundError(f"no such file or folder: {p}")
    h = hashlib.sha256()
    for f in sorted(q for q in p.rglob("*") if q.is_file()):
        rel = f.relative_to(p).as_posix()
        if any(part.startswith(".") and ".tmp-" in part for part in f.relative_to(p).parts):
            continue
        h.update(rel.encode())
        h.update(b"\0")
        h.update(sha256_file(f).encode())
    return h.hexdigest()


def stat_fingerprint(paths: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``path -> hash of (file name, size, mtime)`` for each existing path (files, folders, globs).

    Cheap enough to take on every start of a long job; a copy or a rebuild of an input changes
    it, which errs on the side of redoing work rather than resuming from something else.
    """
    out: dict[str, str] = {}
    for pattern in dict.fromkeys(str(p) for p in paths):
        p = Path(pattern)
        files = (
            [p] if p.is_file()
            else sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir()
            else sorted(Path(m) for m in glob.glob(pattern, recursive=True) if Path(m).is_file())
        )  # fmt: skip
        if not files:
            continue
        h = hashlib.sha256()
        for f in files:
            st = f.stat()
            h.update(f"{f.as_posix()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        out[pattern] = h.hexdigest()
    return out


def expand_inputs(
    patterns: list[str] | tuple[str, ...] | str, suffixes: tuple[str, ...] = TEXT_SUFFIXES
) -> list[Path]:
    """Files named by a list of files, folders (searched recursively) or globs, in stable order."""
    if isinstance(patterns, str):
        patterns = [patterns]
    found: list[Path] = []
    for pat in patterns:
        p = Path(pat)
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            found.extend(sorted(q for q in p.rglob("*") if q.is_file() and q.name.endswith(suffixes)))
        else:
            matches = sorted(Path(m) for m in glob.glob(str(pat), recursive=True))
            if not matches:
                raise FileNotFoundError(f"input {pat!r} matches no file or folder")
            found.extend(m for m in matches if m.is_file())
    return found


def open_text(path: str | os.PathLike) -> io.TextIOBase:
    """Open plain or gzip text as UTF-8, replacing invalid bytes instead of crashing."""
    p = Path(path)
    if p.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(p, "rb"), encoding="utf-8", errors="replace")
    return open(p, encoding="utf-8", errors="replace")


def _damaged(p: Path, err: Exception, error: type[Exception]) -> Exception:
    kind = "gzip file" if p.name.endswith(".gz") else "file"
    return error(f"{p}: truncated or damaged {kind} ({err or type(err).__name__})")


_READ_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)


def open_binary(path: str | os.PathLike) -> io.BufferedIOBase:
    """A plain or gzip file opened for reading bytes (lines decoded by the caller, one by one)."""
    p = Path(path)
    return gzip.open(p, "rb") if p.name.endswith(".gz") else open(p, "rb")


def iter_strict_lines(path: str | os.PathLike, error: type[Exception] = ValueError) -> Iterator[str]:
    """Lines of a plain or gzip file, each decoded as strict UTF-8.

    A line with invalid bytes raises ``error`` naming the file and line (``open_text`` would
    replace them, and a whole-file decoder would fail without saying where).
    """
    p = Path(path)
    with open_binary(p) as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise error(f"{p}:{lineno}: not valid UTF-8 ({err.reason} at byte {err.start})") from None


def iter_jsonl(
    path: str | os.PathLike, error: type[Exception] = ValueError, strict_utf8: bool = False
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` for each non-blank line of a JSONL(.gz) file.

    A line that is not a JSON object, or a truncated ``.gz`` file, raises ``error`` naming the
    file (and line), so every reader of JSONL in the project reports bad input the same way.
    ``strict_utf8``: a line with invalid UTF-8 raises too, instead of being read with U+FFFD.
    """
    p = Path(path)
    try:
        with contextlib.closing(iter_strict_lines(p, error)) if strict_utf8 else open_text(p) as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as err:
                    raise error(f"{p}:{lineno}: not valid JSON ({err.msg})") from err
                if not isinstance(rec, dict):
                    raise error(f"{p}:{lineno}: expected a JSON object, got {type(rec).__name__}")
                yield lineno, rec
    except _READ_ERRORS as err:
        raise _damaged(p, err, error) from err


def iter_texts(
    path: str | os.PathLike, field: str = "text", error: type[Exception] = ValueError
) -> Iterator[str]:
    """Texts of one file: plain text (one per line), JSONL(.gz) ``field``, CoNLL-U ``# text =``.

    A JSONL line that is not valid JSON or lacks ``field``, or a truncated ``.gz`` file, raises
    ``error`` naming the file and line: silently skipping it would bias every figure computed
    on the file.
    """
    p = Path(path)
    name = p.name
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(p)
        except (OSError, ValueError) as err:
            raise _damaged(p, err, error) from err
        if field not in table.column_names:
            raise error(f"{p}: no column {field!r} (columns: {', '.join(table.column_names)})")
        yield from (t for t in table.column(field).to_pylist() if t is not None)
        return
    if name.endswith((".jsonl", ".jsonl.gz", ".json")):
        for lineno, rec in iter_jsonl(p, error):
            if field not in rec:
                raise error(f"{p}:{lineno}: record has no field {field!r} (fields: {', '.join(rec)})")
            yield str(rec[field])
        return
    try:
        with open_text(p) as fh:
            if name.endswith(".conllu"):
                for line in fh:
                    if line.startswith("# text = "):
                        yield line[len("# text = ") :].rstrip("\n")
            else:
                for line in fh:
                    line = line.rstrip("\n")
                    if line:
                        yield line
    except _READ_ERRORS as err:
        raise _damaged(p, err, error) from err

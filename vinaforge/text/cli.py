"""``vinaforge text``: Unix-style Vietnamese text tools (files or stdin in, stdout out).

Hand-written typer commands over :mod:`vinaforge.text`. Input is read as bytes and decoded line
by line, so invalid UTF-8, NUL bytes, a 50 MB line or an empty file never stop the tool; every
input line gives exactly one output line (``normalize``, ``langid``), and what was repaired is
reported on stderr ("3 lines had invalid UTF-8 (replaced)"). Heavy imports stay inside the
commands so ``vinaforge --help`` is instant.
"""

from __future__ import annotations

import gzip
import json
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, BinaryIO

import typer

app = typer.Typer(
    help="Vietnamese text tools: normalize, stats, langid.",
    no_args_is_help=True,
    add_completion=False,
)

FilesArg = Annotated[
    list[Path] | None,
    typer.Argument(help="Input files (plain text or .gz; '-' or none: stdin).", show_default=False),
]


@dataclass
class InputReport:
    """What the reader met and repaired, reported on stderr at the end."""

    lines: int = 0
    invalid_utf8: int = 0
    nul: int = 0
    empty: int = 0
    notes: Counter = field(default_factory=Counter)

    def summary(self, verb: str) -> str:
        parts = [f"{verb} {self.lines} line{'s' * (self.lines != 1)}"]
        if self.lines == 0:
            parts.append("input was empty")
        if self.invalid_utf8:
            parts.append(
                f"{self.invalid_utf8} line{'s' * (self.invalid_utf8 != 1)} had invalid UTF-8 (replaced)"
            )
        if self.nul:
            parts.append(f"{self.nul} line{'s' * (self.nul != 1)} had NUL bytes")
        if self.empty:
            parts.append(f"{self.empty} empty line{'s' * (self.empty != 1)} (kept)")
        parts.extend(f"{n} {what}" for what, n in sorted(self.notes.items()))
        return "; ".join(parts)


def _open_binary(path: Path) -> BinaryIO:
    if str(path) == "-":
        return sys.stdin.buffer
    if not path.exists():
        raise typer.BadParameter(f"no such file: {path}")
    if path.is_dir():
        raise typer.BadParameter(f"{path} is a folder; give files")
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def read_lines(
    files: list[Path] | None, report: InputReport, legacy_bytes: str | None = None
) -> Iterator[str]:
    """Decoded lines (without line end) of ``files`` or stdin, counting what was repaired.

    A line that is not UTF-8 is replaced character by character, unless ``legacy_bytes`` says
    to try the single-byte legacy encodings first (``auto``, ``tcvn3`` or ``vni``): a TCVN3 or
    VNI file read as raw bytes is not UTF-8 at all.
    """
    for path in files or [Path("-")]:
        fh = _open_binary(path)
        try:
            for raw in fh:
                report.lines += 1
                if raw.endswith(b"\n"):
                    raw = raw[:-1]
                    if raw.endswith(b"\r"):
                        raw = raw[:-1]
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    line = _decode_legacy_bytes(raw, legacy_bytes, report)
                    if line is None:
                        report.invalid_utf8 += 1
                        line = raw.decode("utf-8", errors="replace")
                if "\x00" in line:
                    report.nul += 1
                if not line:
                    report.empty += 1
                yield line
        except (gzip.BadGzipFile, EOFError) as err:
            raise typer.BadParameter(f"{path}: not a readable gzip file ({err})") from err
        finally:
            if fh is not sys.stdin.buffer:
                fh.close()


def _decode_legacy_bytes(raw: bytes, choice: str | None, report: InputReport) -> str | None:
    """Unicode text of a non-UTF-8 line in TCVN3 or VNI bytes, or None."""
    if choice not in ("auto", "tcvn3", "vni"):
        return None
    from vinaforge.text.legacy import decode_legacy, detect_legacy

    text = raw.decode("latin-1")
    found = detect_legacy(text) if choice == "auto" else choice
    if found not in ("tcvn3", "vni"):
        return None
    report.notes[f"non-UTF-8 line(s) read as {found} bytes"] += 1
    return decode_legacy(text, found)


def _say(message: str) -> None:
    typer.echo(message, err=True)


@app.command()
def normalize(
    files: FilesArg = None,
    tone_style: Annotated[
        str, typer.Option("--tone-style", help="Tone-mark placement: old (hòa), new (hoà) or keep.")
    ] = "old",
    from_legacy: Annotated[
        str,
        typer.Option("--from-legacy", help="Convert legacy encodings: auto, tcvn3, vni, viqr or none."),
    ] = "auto",
    punctuation: Annotated[bool, typer.Option(help="Unify quotes, dashes, ellipsis, full-width.")] = True,
    whitespace: Annotated[bool, typer.Option(help="Collapse and trim white space.")] = True,
) -> None:
    """Normalize Vietnamese text, one output line per input line."""
    from pydantic import ValidationError

    from vinaforge.text.legacy import detect_legacy
    from vinaforge.text.normalize import NormalizeConfig, normalize_text

    try:
        cfg = NormalizeConfig(
            tone_style=tone_style,
            from_legacy=from_legacy,
            fix_punctuation=punctuation,
            fix_whitespace=whitespace,
        )
    except ValidationError as err:
        bad = err.errors()[0]
        raise typer.BadParameter(f"--{str(bad['loc'][0]).replace('_', '-')}: {bad['msg']}") from err
    auto = cfg.from_legacy == "auto"
    if auto:
        cfg = cfg.model_copy(update={"from_legacy": "none"})
    report = InputReport()
    out = sys.stdout.buffer
    changed = 0
    for line in read_lines(files, report, legacy_bytes=from_legacy):
        text = line
        if auto:
            found = detect_legacy(line)
            if found:
                from vinaforge.text.legacy import decode_legacy

                report.notes[f"line(s) converted from {found}"] += 1
                text = decode_legacy(line, found)
        result = normalize_text(text, cfg)
        if "\n" in result:
            report.notes["line(s) held inner line breaks (CR, U+2028), joined with a space"] += 1
            result = " ".join(part.strip() for part in result.split("\n"))
        changed += result != line
        out.write(result.encode("utf-8", errors="surrogatepass"))
        out.write(b"\n")
    out.flush()
    if changed:
        report.notes[f"line(s) changed (tone style {tone_style})"] = changed
    _say(report.summary("normalized"))


@app.command()
def stats(
    files: FilesArg = None,
    field_name: Annotated[
        str, typer.Option("--field", help="JSON field holding the text (.jsonl files).")
    ] = "text",
    langid: Annotated[bool, typer.Option(help="Also identify each document's language.")] = True,
) -> None:
    """JSON statistics: characters, syllables, valid-syllable ratio, language shares.

    Plain text counts one document per line; .jsonl(.gz) one per record (``--field``); .conllu
    one per ``# text =`` line; .parquet one per row.
    """
    from vinaforge.io import iter_texts
    from vinaforge.text.stats import TextStats

    total = TextStats()
    per_file: dict[str, dict] = {}
    report = InputReport()
    for path in files or [Path("-")]:
        st = TextStats()
        name = str(path)
        if name != "-" and name.endswith((".jsonl", ".jsonl.gz", ".json", ".conllu", ".parquet")):
            if not path.is_file():
                raise typer.BadParameter(f"no such file: {path}")
            try:
                for text in iter_texts(path, field=field_name):
                    st.add(text, langid=langid)
            except ValueError as err:
                raise typer.BadParameter(str(err)) from err
        else:
            for line in read_lines([path], report, legacy_bytes="auto"):
                st.add(line, langid=langid)
        per_file[name] = st.to_dict()
        total.merge(st)
    result = {"total": total.to_dict(), "files": per_file}
    if report.lines or report.invalid_utf8:
        result["input"] = {
            "lines": report.lines,
            "invalid_utf8_lines": report.invalid_utf8,
            "nul_lines": report.nul,
            "empty_lines": report.empty,
        }
    typer.echo(json.dumps(result, ensure_ascii=False, indent=2))
    _say(report.summary("read") if report.lines else f"read {total.docs} documents")


@app.command("langid")
def langid_cmd(files: FilesArg = None) -> None:
    """One ``label<TAB>score`` per input line; label is vi, en or other."""
    from vinaforge.text.langid import identify
    from vinaforge.text.stats import LANGID_PREFIX_CHARS

    report = InputReport()
    out = sys.stdout.buffer
    labels: Counter = Counter()
    for line in read_lines(files, report, legacy_bytes="auto"):
        label, score = identify(line[:LANGID_PREFIX_CHARS])
        labels[label] += 1
        out.write(f"{label}\t{score:.4f}\n".encode())
    out.flush()
    shares = ", ".join(f"{k} {v}" for k, v in sorted(labels.items()))
    _say(report.summary("identified") + (f"; {shares}" if shares else ""))

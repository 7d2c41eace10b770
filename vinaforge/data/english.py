"""The ``english`` stage: English prose for pretraining a base model from scratch.

Issue 20's base model is an English-only model that vinaforge pretrains itself (no pretrained
weights can be downloaded here), so that vocabulary extension and Vietnamese adaptation start from
a model that, like Llama-2 or Mistral, knows English and not Vietnamese. This stage gathers that
English from what the machine already has:

- the English sides of parallel corpora (JSONL ``en`` fields, TSV first columns, ``.en`` files),
  with the sentences of one document (``doc`` field) joined back into paragraphs;
- HTML documentation a Debian package ships (``<p>`` paragraphs, e.g. ``debian-handbook``);
- ``fortune`` files (``%``-separated entries, e.g. the ``fortunes`` package).

Every candidate is checked: at least ``min_words`` words, mostly letters (not a code or table
line), English by the project's language identifier (:mod:`vinaforge.text.langid`) at
``min_score`` or more, and not an exact duplicate. Rejected candidates are kept with their reason
in ``rejected.jsonl``; a hash of the text puts ``heldout_fraction`` of the kept ones aside in
``heldout/en.jsonl`` (English bits per byte, to measure forgetting); the counts add up:
``read = kept + heldout + rejected``.

Hand-written: the readers and checks are small and specific to these sources; language ID is
fastText (through :mod:`vinaforge.text.langid`), and Vietnamese-heavy text is never kept here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Literal

from pydantic import Field

from vinaforge.io import atomic_path, atomic_write_json, expand_inputs, iter_jsonl, open_text
from vinaforge.recipe import InputPaths
from vinaforge.stage import StageConfig, StageContext, StageResult

log = logging.getLogger(__name__)

Format = Literal["auto", "jsonl", "tsv", "lines", "html", "fortune"]
_ANY_FILE = ("",)


class EnglishSource(StageConfig):
    """One kind of English input."""

    paths: InputPaths = Field(min_length=1, description="files, folders or globs")
    format: Format = Field("auto", description="auto: from the file name (.jsonl, .tsv, .html, else lines)")
    field: str = Field("en", description="jsonl: the English field")
    same_as: str | None = Field(
        "vi", description="jsonl: reject a record whose English equals this field (untranslated strings)"
    )
    group_by: str | None = Field("doc", description="jsonl: join records sharing this field into paragraphs")
    group_lines: int = Field(1, ge=1, description="lines: join this many consecutive lines into one text")
    max_docs: int | None = Field(None, gt=0, description="read at most this many candidates")


class Config(StageConfig):
    """Settings of the ``english`` stage."""

    sources: dict[str, EnglishSource] = Field(min_length=1)
    min_words: int = Field(6, ge=1)
    max_words: int = Field(220, ge=10, description="joined paragraphs are cut into texts of at most this")
    min_alpha: float = Field(0.7, ge=0.0, le=1.0, description="least share of letters among non-space chars")
    min_score: float = Field(0.6, ge=0.0, le=1.0, description="least English confidence of the LID")
    heldout_fraction: float = Field(0.02, ge=0.0, lt=1.0)


# -- readers -------------------------------------------------------------------------------------

_SPACE_BEFORE = re.compile(r" ([.,;:!?%)\]}'](?:\s|$)|n't\b|'t\b|'s\b|'re\b|'ve\b|'ll\b|'d\b|'m\b)")
_SPACE_AFTER = re.compile(r"([(\[{$]) ")
_QUOTED = re.compile(r'" ([^"]*?) "')


def detokenize(text: str) -> str:
    """Undo Moses-style spacing (``word , word`` and ``" quoted "``) of parallel corpora."""
    text = text.replace("&quot;", '"').replace("&apos;", "'").replace("&amp;", "&")
    text = _QUOTED.sub(r'"\1"', text)
    for _ in range(2):
        text = _SPACE_BEFORE.sub(r"\1", text)
    return _SPACE_AFTER.sub(r"\1", text).strip()


class _Paragraphs(HTMLParser):
    """Text of every paragraph: ``<p>``, and DocBook/Publican's ``<div class="para">`` (the handbook).

    Code, preformatted text, tables and scripts inside a paragraph are dropped: they are not prose.
    """

    _SKIP = ("pre", "code", "script", "style", "table")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[bool] = []  # one per open <p>/<div>: does it start a paragraph?
        self.inside = 0
        self.skip = 0
        self.current: list[str] = []
        self.paragraphs: list[str] = []

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in ("p", "div"):
            classes = (dict(attrs).get("class") or "").split()
            starts = not self.inside and (tag == "p" or "para" in classes)
            self.blocks.append(starts)
            self.inside += starts
        elif tag in self._SKIP:
            self.skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("p", "div") and self.blocks:
            if self.blocks.pop():
                self.inside -= 1
                self.paragraphs.append(" ".join("".join(self.current).split()))
                self.current = []
        elif tag in self._SKIP and self.skip:
            self.skip -= 1

    def handle_data(self, data: str) -> None:
        if self.inside and not self.skip:
            self.current.append(data)


def _format_of(path: Path, fmt: Format) -> Format:
    if fmt != "auto":
        return fmt
    name = path.name
    if name.endswith((".jsonl", ".jsonl.gz")):
        return "jsonl"
    if name.endswith((".tsv", ".tsv.gz")):
        return "tsv"
    if name.endswith((".html", ".htm")):
        return "html"
    return "lines"


def _chunks(sentences: list[str], max_words: int) -> Iterator[str]:
    """Consecutive sentences joined into texts of at most ``max_words`` words."""
    out: list[str] = []
    words = 0
    for s in sentences:
        n = len(s.split())
        if out and words + n > max_words:
            yield " ".join(out)
            out, words = [], 0
        out.append(s)
        words += n
    if out:
        yield " ".join(out)


def _read_jsonl(path: Path, src: EnglishSource, max_words: int) -> Iterator[tuple[str, str | None]]:
    """``(text, reason or None)``: the English field, paragraphs rebuilt from ``group_by``."""
    group: list[str] = []
    key: object = object()
    for lineno, rec in iter_jsonl(path):
        if src.field not in rec:
            raise ValueError(f"{path}:{lineno}: record has no field {src.field!r} (fields: {', '.join(rec)})")
        text = detokenize(str(rec[src.field] or ""))
        if src.same_as and str(rec.get(src.same_as, "")).strip() == str(rec[src.field]).strip():
            yield text, "untranslated"
            continue
        if src.group_by is None or src.group_by not in rec:
            yield text, None
            continue
        if rec[src.group_by] != key and group:
            yield from ((t, None) for t in _chunks(group, max_words))
            group = []
        key = rec[src.group_by]
        group.append(text)
    yield from ((t, None) for t in _chunks(group, max_words))


def _read_file(path: Path, src: EnglishSource, max_words: int) -> Iterator[tuple[str, str | None]]:
    fmt = _format_of(path, src.format)
    if fmt == "jsonl":
        yield from _read_jsonl(path, src, max_words)
        return
    with open_text(path) as fh:
        raw = fh.read()
    if fmt == "html":
        parser = _Paragraphs()
        parser.feed(raw)
        for p in parser.paragraphs:
            yield from ((t, None) for t in _chunks([p], max_words))
    elif fmt == "fortune":
        for entry in re.split(r"^%\s*$", raw, flags=re.MULTILINE):
            yield entry.strip(), None
    elif fmt == "tsv":
        for line in raw.splitlines():
            if line.strip():
                yield line.split("\t", 1)[0].strip(), None
    else:
        lines = [ln.strip() for ln in raw.splitlines() if ln.strip()]
        for i in range(0, len(lines), src.group_lines):
            yield detokenize(" ".join(lines[i : i + src.group_lines])), None


def _files(src: EnglishSource) -> list[Path]:
    files = expand_inputs([str(p) for p in src.paths], suffixes=_ANY_FILE)
    # fortune folders hold index files next to the text: strfile's .dat and the .u8 links
    return [f for f in files if not f.name.endswith((".dat", ".u8", ".gz.dat"))]


# -- checks --------------------------------------------------------------------------------------


def _alpha_share(text: str) -> float:
    chars = [c for c in text if not c.isspace()]
    return sum(c.isalpha() for c in chars) / len(chars) if chars else 0.0


def check(text: str, config: Config) -> str | None:
    """Why ``text`` is not kept as English prose, or None when it is."""
    from vinaforge.text.langid import identify

    if len(text.split()) < config.min_words:
        return "too_short"
    if _alpha_share(text) < config.min_alpha:
        return "not_prose"
    lang, score = identify(text.replace("\n", " "))
    if lang != "en":
        return f"not_english:{lang}"
    if score < config.min_score:
        return "low_english_score"
    return None


def _is_heldout(text: str, fraction: float) -> bool:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


# -- the stage -----------------------------------------------------------------------------------


def run(config: Config, ctx: StageContext) -> StageResult:
    """Read every source, keep English prose, set a held-out share aside, keep the rejects."""
    from rich.progress import MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from vinaforge.logs import progress_bar

    counts: dict[str, Counter] = defaultdict(Counter)
    words: Counter = Counter()
    seen: set[bytes] = set()
    (ctx.work_dir / "kept").mkdir(parents=True, exist_ok=True)
    (ctx.work_dir / "heldout").mkdir(parents=True, exist_ok=True)
    kept_path = ctx.work_dir / "kept" / "en.jsonl"
    held_path = ctx.work_dir / "heldout" / "en.jsonl"
    rej_path = ctx.work_dir / "rejected.jsonl"
    with (
        atomic_path(kept_path) as kp,
        atomic_path(held_path) as hp,
        atomic_path(rej_path) as rp,
        open(kp, "w", encoding="utf-8") as kept,
        open(hp, "w", encoding="utf-8") as held,
        open(rp, "w", encoding="utf-8") as rejected,
        progress_bar(TextColumn("[bold]english[/] {task.description}"), MofNCompleteColumn(), TimeElapsedColumn()) as bar,
    ):
        for name, src in config.sources.items():
            files = _files(src)
            if not files:
                raise FileNotFoundError(f"sources.{name}.paths: {src.paths} name no file")
            task = bar.add_task(name, total=None)
            n = 0
            for path in files:
                for i, (text, reason) in enumerate(_read_file(path, src, config.max_words)):
                    if src.max_docs is not None and n >= src.max_docs:
                        break
                    n += 1
                    bar.advance(task)
                    counts[name]["read"] += 1
                    rec_id = f"{name}/{path.name}/{i}"
                    reason = reason or check(text, config)
                    if reason is None:
                        key = hashlib.sha256(" ".join(text.lower().split()).encode()).digest()
                        reason = "duplicate" if key in seen else None
                        seen.add(key)
                    if reason is not None:
                        counts[name][f"rejected:{reason.split(':')[0]}"] += 1
                        counts[name]["rejected"] += 1
                        row = {"id": rec_id, "source": name, "reason": reason, "text": text}
                        rejected.write(json.dumps(row, ensure_ascii=False) + "\n")
                        continue
                    split = "heldout" if _is_heldout(text, config.heldout_fraction) else "kept"
                    counts[name][split] += 1
                    words[split] += len(text.split())
                    out = held if split == "heldout" else kept
                    out.write(json.dumps({"id": rec_id, "source": name, "text": text}, ensure_ascii=False) + "\n")
            log.info("%s: %s", name, dict(counts[name]))
    total = Counter()
    for c in counts.values():
        total.update(c)
    assert total["read"] == total["kept"] + total["heldout"] + total["rejected"], total
    stats = {
        "total": dict(total),
        "sources": {k: dict(v) for k, v in counts.items()},
        "words": dict(words),
        "config": config.model_dump(mode="json"),
    }
    atomic_write_json(ctx.work_dir / "stats.json", stats)
    metrics = {
        "read": total["read"],
        "kept": total["kept"],
        "heldout": total["heldout"],
        "rejected": total["rejected"],
        "kept_words": words["kept"],
        "heldout_words": words["heldout"],
    }
    return StageResult(
        outputs={"kept": "kept", "heldout": "heldout", "rejected": "rejected.jsonl", "stats": "stats.json"},
        metrics=metrics,
        report=_report(counts, words),
    )


def _report(counts: dict[str, Counter], words: Counter) -> str:
    lines = [
        "English prose for the base model: every candidate checked (length, letters, language ID, "
        "exact duplicates); rejects kept with their reason in `rejected.jsonl`.",
        "",
        "| source | read | kept | held out | rejected | main reasons |",
        "|---|---|---|---|---|---|",
    ]
    for name, c in counts.items():
        reasons = sorted(((k.split(":", 1)[1], v) for k, v in c.items() if k.startswith("rejected:")), key=lambda kv: -kv[1])
        why = ", ".join(f"{k} {v:,}" for k, v in reasons[:3]) or "-"
        lines.append(f"| {name} | {c['read']:,} | {c['kept']:,} | {c['heldout']:,} | {c['rejected']:,} | {why} |")
    lines += ["", f"Kept {words['kept']:,} words for training and {words['heldout']:,} held out."]
    return "\n".join(lines) + "\n"

"""The ``text`` stage: normalize a corpus in memory and report its Vietnamese text statistics.

Hand-written glue over :mod:`vinaforge.text` and the run engine: reads files, folders, globs
or earlier stages' outputs (``@stage/...``), writes ``stats.json`` and a histogram of the
per-document share of valid Vietnamese syllables, and contributes a section to the run's
report card. Plots are matplotlib.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from pydantic import Field

from vinaforge.io import atomic_path, atomic_write_json, expand_inputs, iter_texts
from vinaforge.recipe import InputPaths
from vinaforge.stage import Figure, StageConfig, StageContext, StageResult
from vinaforge.text.normalize import NormalizeConfig

log = logging.getLogger(__name__)


class Config(StageConfig):
    """Settings of the ``text`` stage."""

    inputs: InputPaths = Field(description="Files, folders, globs or @stage/... references.")
    field: str = Field("text", description="JSON field holding the text in .jsonl inputs.")
    normalize: bool = Field(True, description="Compute the statistics on normalized text.")
    normalization: NormalizeConfig = Field(default_factory=NormalizeConfig)
    langid: bool = Field(True, description="Identify each document's language (vi/en/other).")
    max_docs: int | None = Field(None, ge=1, description="Stop after this many documents.")


def _plot(valid_ratios: list[float], syllables: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.hist(valid_ratios, bins=[i / 40 for i in range(41)], color="#2a7ab0")
    ax1.set_xlabel("share of valid Vietnamese syllables")
    ax1.set_ylabel("documents")
    ax1.set_title("Vietnamese-ness per document")
    ax2.hist(syllables, bins=40, color="#c0504d")
    ax2.set_xlabel("syllables per document")
    ax2.set_title("Document length")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def _report(summary: dict, files: list[str], normalized: int, legacy: Counter) -> str:
    t = summary
    langs = ", ".join(f"{k} {v:.1%}" for k, v in t["language_shares"].items()) or "n/a"
    rows = [
        ("documents", f"{t['docs']:,} ({t['empty_docs']:,} without any syllable)"),
        ("characters", f"{t['chars']:,} ({t['utf8_bytes']:,} UTF-8 bytes)"),
        ("syllables", f"{t['syllables']:,} ({t['syllables_per_doc']:,} per document)"),
        ("valid Vietnamese syllables", f"{t['valid_syllable_ratio']:.2%} of {t['countable_syllables']:,}"),
        ("syllables with diacritics", f"{t['diacritic_ratio']:.2%}"),
        ("languages (documents)", langs),
        ("changed by normalization", f"{normalized:,} documents"),
    ]
    if legacy:
        rows.append(("legacy encodings converted", ", ".join(f"{k} {v}" for k, v in sorted(legacy.items()))))
    lines = [f"Statistics of {len(files)} input file(s).", "", "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines) + "\n"


def run(config: Config, ctx: StageContext) -> StageResult:
    """Compute statistics over ``config.inputs`` and write ``stats.json`` and a plot."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from vinaforge.logs import console
    from vinaforge.text.legacy import decode_legacy, detect_legacy
    from vinaforge.text.normalize import normalize_text
    from vinaforge.text.stats import TextStats, doc_stats

    patterns = [str(p) for p in config.inputs]  # resolved by the engine
    files = expand_inputs(patterns)
    if not files:
        raise FileNotFoundError(f"stage {ctx.name!r}: inputs {config.inputs} contain no text files")
    norm_cfg = config.normalization
    auto_legacy = norm_cfg.from_legacy == "auto"
    if auto_legacy:
        norm_cfg = norm_cfg.model_copy(update={"from_legacy": "none"})

    total = TextStats()
    per_file: dict[str, dict] = {}
    valid_ratios: list[float] = []
    syllables: list[int] = []
    normalized = 0
    legacy: Counter = Counter()
    done = False
    with Progress(
        TextColumn("[bold]text stats[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
        console=console(),  # the one console the log lines use: bar and logs never interleave
    ) as progress:
        for path in files:
            task = progress.add_task(path.name, total=None)
            st = TextStats()
            for text in iter_texts(path, field=config.field):
                if config.normalize:
                    source = text
                    if auto_legacy and (found := detect_legacy(text)):
                        legacy[found] += 1
                        text = decode_legacy(text, found)
                    text = normalize_text(text, norm_cfg)
                    normalized += text != source
                d = doc_stats(text, langid=config.langid)
                st.add_doc(d)
                valid_ratios.append(d.valid_ratio)
                syllables.append(d.syllables)
                progress.advance(task)
                if config.max_docs is not None and total.docs + st.docs >= config.max_docs:
                    done = True
                    break
            per_file[str(path)] = st.to_dict()
            total.merge(st)
            log.info("%s: %d documents, valid syllables %.2f%%", path, st.docs, 100 * st.valid_syllable_ratio)
            if done:
                log.info("stopped at max_docs=%d", config.max_docs)
                break

    summary = total.to_dict()
    stats = {
        "total": summary,
        "files": per_file,
        "normalized_docs": normalized,
        "legacy_converted": dict(legacy),
        "config": config.model_dump(mode="json"),
    }
    atomic_write_json(ctx.work_dir / "stats.json", stats)
    plot = "valid_syllables.png"
    _plot(valid_ratios, syllables, ctx.work_dir / plot)
    metrics = {
        "docs": summary["docs"],
        "chars": summary["chars"],
        "syllables": summary["syllables"],
        "valid_syllable_ratio": summary["valid_syllable_ratio"],
        "diacritic_ratio": summary["diacritic_ratio"],
        "language_shares": summary["language_shares"],
        "normalized_docs": normalized,
    }
    return StageResult(
        outputs={"stats": "stats.json", "plot": plot},
        metrics=metrics,
        report=_report(summary, [str(f) for f in files], normalized, legacy),
        figures=[Figure(plot, "Share of valid Vietnamese syllables and syllables per document")],
    )

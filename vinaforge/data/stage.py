"""The ``curate`` recipe stage: :func:`vinaforge.data.curate.curate` inside the run engine.

Hand-written glue: runs (or resumes: ``RESUMABLE``) on inputs the engine resolved, the
datatrove pipeline in the stage's work folder, and hands the engine the outputs, key figures,
report section and quality-score histogram.
"""

from __future__ import annotations

import json

from vinaforge.data.config import Config
from vinaforge.stage import Figure, StageContext, StageResult

__all__ = ["Config", "RESUMABLE", "run"]

RESUMABLE = True


def run(config: Config, ctx: StageContext) -> StageResult:
    from vinaforge.data.curate import curate

    stats = curate(config, ctx.work_dir)
    out = ctx.work_dir
    section = (out / "_work" / "report_section.md").read_text(encoding="utf-8")
    metrics = {
        "input": stats["input"],
        "kept": stats["kept"],
        "rejected": sum(stats["rejected"].values()),
        "duplicates": stats["duplicates"],
        "redactions": sum(stats["redactions"].values()),
        "kept_high": sum(stats["tiers"].get("high", {}).values()),
        "kept_low": sum(stats["tiers"].get("low", {}).values()),
        "kept_syllables": stats["kept_syllables"],
        "funnel_balanced": stats["funnel_balanced"],
        "rejected_by_filter": stats["rejected"],
        "languages": stats["languages"],
    }
    figures = []
    if (out / "quality_hist.png").is_file():
        figures.append(
            Figure("quality_hist.png", "Quality score of kept documents (dashed: high-tier threshold)")
        )
    ctx.log.info("curate: %s", json.dumps({k: metrics[k] for k in ("input", "kept", "duplicates")}))
    return StageResult(
        outputs={
            "kept": "kept",
            "high": "kept/high",
            "low": "kept/low",
            "rejected": "rejected",
            "stats": "stats.json",
            "clusters": "duplicate_clusters.jsonl.gz",
        },
        metrics=metrics,
        report=section,
        figures=figures,
    )

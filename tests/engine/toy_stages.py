"""Two small real stage kinds used to test the run engine itself (not any model)."""

from __future__ import annotations

import time
from pathlib import Path

from vinaforge.recipe import InputPath
from vinaforge.stage import StageConfig, StageContext, StageResult


class Config(StageConfig):
    text: str = "xin chào"
    repeat: int = 1
    source: InputPath | None = None
    sleep_s: float = 0.0
    endpoint: str | None = None  # recorded in logs, metrics and the report (redaction tests)
    score: float | None = None  # reported as a metric (NaN tests)
    fail: str | None = None  # raise this message (error-reporting tests)


RESUMABLE = True


def run(config: Config, ctx: StageContext) -> StageResult:
    """Copy ``source`` (or ``text``) ``repeat`` times into out.txt, one part file per step."""
    base = Path(config.source).joinpath("out.txt").read_text() if config.source else config.text
    parts = ctx.work_dir / "parts"
    parts.mkdir(exist_ok=True)
    done_before = len(list(parts.glob("*.txt")))
    for i in range(config.repeat):
        part = parts / f"{i:04d}.txt"
        if part.exists():
            continue
        time.sleep(config.sleep_s)
        part.write_text(base)
    (ctx.work_dir / "out.txt").write_text("".join(p.read_text() for p in sorted(parts.glob("*.txt"))))
    ctx.log.info("wrote %d parts (%d reused)", config.repeat, done_before)
    if config.endpoint:
        ctx.log.warning("endpoint %s answered slowly", config.endpoint)
    if config.fail:
        raise RuntimeError(config.fail)
    metrics = {"parts": config.repeat, "reused_parts": done_before}
    if config.score is not None:
        metrics["score"] = config.score
    if config.endpoint:
        metrics["endpoint"] = config.endpoint
    return StageResult(
        outputs={"text": "out.txt"},
        metrics=metrics,
        report=f"Copied from {config.endpoint or 'text'}.",
    )

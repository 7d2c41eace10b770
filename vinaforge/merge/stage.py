"""The ``merge`` stage: one merge (mergekit, chat vector or LoRA), or a sweep that keeps the best.

Outputs ``model/`` (a plain Hugging Face folder with its tokenizer and chat template) and
``merge.json`` (what was merged, how, and the sweep's scores). A sweep resumes from the
candidates it has already scored (``RESUMABLE``).
"""

from __future__ import annotations

import logging
import time

from vinaforge.io import atomic_write_json
from vinaforge.merge.config import Config, merge_models
from vinaforge.stage import Figure, StageContext, StageResult

__all__ = ["Config", "run"]

RESUMABLE = True

log = logging.getLogger(__name__)


def _describe(info: dict) -> str:
    lines = [f"- method: **{info['method']}**"]
    if info.get("lam") is not None:
        lines.append(f"- λ: {info['lam']}" + (f", groups: {info['groups']}" if info.get("groups") else ""))
    if info.get("combination"):
        lines.append(f"- adapters: {', '.join(info['adapters'])} (weights {info['weights']}, {info['combination']})")
    for m in info.get("models", []):
        lines.append(f"- input: `{m}`")
    lines.append(f"- merge time: {info.get('seconds', 0):.1f} s")
    return "\n".join(lines) + "\n"


def run(config: Config, ctx: StageContext) -> StageResult:
    started = time.time()
    work = ctx.work_dir
    out = work / "model"
    figures: list[Figure] = []
    metrics: dict = {}
    if config.sweep is not None:
        from vinaforge.merge.sweep import run_sweep, sweep_markdown, sweep_plot

        result = run_sweep(config, out, ctx)
        keys = list(config.sweep.grid)
        best_row = result.rows[result.best]
        info = {"method": config.kind(), "sweep": result.rows, "best": result.best,
                "kept": {k: best_row[k] for k in keys}, "select": result.select, "scores": result.metrics}  # fmt: skip
        if sweep_plot(result, keys, work / "sweep.png"):
            figures.append(Figure("sweep.png", f"{result.select} of each merge candidate; the starred one is kept."))
        report = (
            f"Swept {', '.join(keys)} over {len(result.rows)} candidates ({config.kind()}); each was scored "
            f"by the eval stage.\n\n" + sweep_markdown(result, keys)
        )
        metrics = {"candidates": len(result.rows), result.select: best_row[result.select],
                   **{f"kept {k}": best_row[k] for k in keys}}  # fmt: skip
    else:
        if out.is_dir():
            log.info("merge: reusing the finished merge in %s", out)
            info = {"method": config.kind(), "reused": True}
        else:
            info = merge_models(config, out, seed=ctx.seed)
        report = _describe(info) if "models" in info or "adapters" in info else f"- method: {info['method']}\n"
        metrics = {"method": info["method"], "merge_seconds": info.get("seconds")}
    info["seconds_total"] = round(time.time() - started, 2)
    atomic_write_json(work / "merge.json", info)
    return StageResult(outputs={"model": "model", "merge": "merge.json"}, metrics=metrics, report=report,
                       figures=figures)  # fmt: skip

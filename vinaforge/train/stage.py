"""The ``cpt`` recipe stage: continued pretraining of the model built by an earlier stage.

Settings are those of ``vinaforge train cpt`` (:class:`~vinaforge.train.config.CptConfig`), with
``@stage/...`` paths resolved by the run engine. The stage resumes from its own checkpoints when the
run is interrupted (``RESUMABLE``). Outputs: ``final/`` (Hugging Face model + tokenizer),
``metrics.jsonl``, ``summary.json`` and the loss / held-out bits-per-byte curves for the report card.

Hand-written glue over :mod:`vinaforge.train.engine`.
"""

from __future__ import annotations

from pydantic import Field

from vinaforge.stage import Figure, StageContext, StageResult
from vinaforge.train.config import CptConfig

RESUMABLE = True


class Config(CptConfig):
    keep_checkpoints_after_success: bool = Field(
        False, description="keep checkpoints/ in the stage folder once the final model is saved"
    )
    progress: bool = True


def run(config: Config, ctx: StageContext) -> StageResult:
    from vinaforge.train.engine import METRICS_FILE, SUMMARY_FILE, train_cpt
    from vinaforge.train.report import plot_curves, read_metrics, render_report

    inputs = {i["path"]: i["sha256"] for i in ctx.inputs}  # what the checkpoints record
    summary = train_cpt(config, ctx.work_dir, resume=True, default_seed=ctx.seed, inputs=inputs)
    metrics = read_metrics(ctx.work_dir / METRICS_FILE)
    title = "training loss" + (" (tiny, randomly initialised model)" if summary.get("random_init") else "")
    pngs = plot_curves(metrics, ctx.work_dir / "loss.png", ctx.work_dir / "bpb.png", title=title)
    captions = {
        "loss.png": "Training loss per optimizer step; shaded bands are the phases.",
        "bpb.png": "Held-out bits per byte (comparable across tokenizers).",
    }
    figures = [Figure(p.name, captions[p.name]) for p in pngs]
    key = {
        k: summary.get(k)
        for k in (
            "random_init",
            "steps",
            "tokens",
            "init_bpb",
            "final_bpb",
            "first_loss",
            "final_loss",
            "tokens_per_s",
            "mfu",
            "precision",
            "processes",
        )
    }
    return StageResult(
        outputs={"model": "final", "metrics": METRICS_FILE, "summary": SUMMARY_FILE},
        metrics=key,
        report=render_report(summary),
        figures=figures,
    )

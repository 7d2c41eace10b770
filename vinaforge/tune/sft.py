"""Supervised fine-tuning (stage ``sft``, ``vinaforge tune sft``) on TRL's ``SFTTrainer``.

- Modes: full, LoRA, QLoRA (bitsandbytes 4-bit NF4; it runs on CPU too, slowly) and DoRA
  (:mod:`vinaforge.tune.common`); any ``from_pretrained`` model, extended vocabularies included
  (their new embedding rows stay trainable under LoRA).
- Data: every :mod:`vinaforge.chat` format, multi-turn included; weighted mixtures, an eval split,
  contamination and length checks (:mod:`vinaforge.tune.data`); our Vietnamese safety data can be
  mixed in (``safety``).
- Loss: assistant-only on *every* assistant turn through the chat template's ``{% generation %}``
  markers (TRL's ``assistant_only_loss``), or on the last turn only (``loss_turns: last``, as
  prompt-completion rows); padding-free BFD packing with per-sequence
  ``position_ids`` (TRL's ``packing``); NEFTune (``neftune_alpha``).
- Output: ``final/``, an HF model folder with its chat template (LoRA merged, or the adapter with
  ``merge_lora: false``), the loss curve, greedy answers to the same Vietnamese prompts before and
  after, and refusal / over-refusal rates on our held-out safety prompts.

The stage resumes from the trainer's last checkpoint (``RESUMABLE``). Hand-written glue; the
training loop is TRL's.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from vinaforge.stage import Figure, StageConfig, StageContext, StageResult
from vinaforge.tune.common import DEFAULT_PROMPTS, ModelFields, TrainSettings
from vinaforge.tune.data import DataSettings

RESUMABLE = True
log = logging.getLogger(__name__)


class SafetyMix(StageConfig):
    """Mix our Vietnamese safety data (refusals with helpful alternatives + benign look-alikes) into SFT."""

    weight: float = Field(0.1, gt=0, description="share of the training mix, relative to the other sources")
    system_prompts: bool = Field(True, description="prefix a random safety system prompt to half of the items")


class Config(ModelFields):
    data: DataSettings
    training: TrainSettings = TrainSettings()
    packing: bool = Field(True, description="padding-free BFD packing (TRL); position ids restart per conversation")
    assistant_only_loss: bool = Field(True, description="loss on assistant tokens only (generation markers)")
    loss_turns: Literal["every", "last"] = Field(
        "every", description="which assistant turns of a multi-turn conversation train: every one, or the last "
        "only (LLaMA-Factory's mask_history); held-out loss always scores every turn")  # fmt: skip
    neftune_alpha: float | None = Field(None, gt=0, description="NEFTune noise; e.g. 5")
    safety: SafetyMix | None = None
    prompts: list[str] = Field(default_factory=lambda: list(DEFAULT_PROMPTS),
                               description="answered greedily before and after tuning for the report")
    max_new_tokens: int = Field(48, ge=1)
    safety_eval: bool = Field(True, description="refusal and over-refusal rates on our held-out safety prompts")
    keep_checkpoints: bool = False


def _with_safety(cfg: Config, work_dir: Path, seed: int) -> DataSettings:
    if cfg.safety is None:
        return cfg.data
    from vinaforge.tune.data import Source
    from vinaforge.tune.safety import write_safety_sft

    path = write_safety_sft(work_dir / "safety_sft.jsonl", system_prompts=cfg.safety.system_prompts, seed=seed)
    total = sum(s.weight for s in cfg.data.sources.values())
    sources = dict(cfg.data.sources)
    sources["safety"] = Source(paths=[str(path)], weight=cfg.safety.weight / max(1e-9, 1 - cfg.safety.weight) * total
                               if cfg.safety.weight < 1 else total)  # fmt: skip
    return cfg.data.model_copy(update={"sources": sources})


def build_trainer(cfg: Config, loaded, train_rows: list[dict], eval_rows: list[dict], out_dir: Path, seed: int = 0):
    """TRL ``SFTTrainer`` for already-loaded model and rows (shared with the benchmark)."""
    from trl import SFTConfig, SFTTrainer

    from vinaforge.tune.data import to_dataset

    args = SFTConfig(
        **cfg.training.trl_kwargs(out_dir, seed=seed, has_eval=bool(eval_rows)),
        packing=cfg.packing,
        assistant_only_loss=cfg.assistant_only_loss,
        completion_only_loss=True,  # prompt-completion rows (loss_turns: last) train their completion only
        neftune_noise_alpha=cfg.neftune_alpha,
        dataset_num_proc=None,
    )
    return SFTTrainer(
        model=loaded.model, args=args, train_dataset=to_dataset(train_rows),
        eval_dataset=to_dataset(eval_rows) if eval_rows else None, processing_class=loaded.tokenizer,
    )  # fmt: skip


def train_sft(cfg: Config, out_dir: Path, *, seed: int = 0) -> dict[str, Any]:
    """Train and save ``out_dir/final``; returns the summary (also written to ``summary.json``)."""
    from vinaforge.io import atomic_write_json
    from vinaforge.model.tiny import is_random_init
    from vinaforge.tune.common import (
        answer_prompts,
        latest_checkpoint,
        load_model_for_training,
        save_tuned,
        set_threads,
    )
    from vinaforge.tune.data import conversation_rows, prepare

    set_threads(cfg.training.threads)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    loaded = load_model_for_training(cfg)
    data = _with_safety(cfg, out_dir, seed)
    prepared = prepare(data, kind="conversation", tokenizer=loaded.tokenizer, max_length=cfg.training.max_length,
                       seed=seed)  # fmt: skip
    prepared.write(out_dir)
    before = answer_prompts(loaded.model, loaded.tokenizer, cfg.prompts, max_new_tokens=cfg.max_new_tokens)
    trainer = build_trainer(cfg, loaded, conversation_rows(prepared.train, cfg.loss_turns),
                            conversation_rows(prepared.eval), out_dir / "checkpoints", seed)  # fmt: skip
    initial_eval = trainer.evaluate()["eval_loss"] if prepared.eval else None
    trainer.train(resume_from_checkpoint=latest_checkpoint(out_dir / "checkpoints"))
    final_eval = trainer.evaluate()["eval_loss"] if prepared.eval else None
    loaded.model = trainer.model
    after = answer_prompts(loaded.model, loaded.tokenizer, cfg.prompts, max_new_tokens=cfg.max_new_tokens)
    safety = _safety_rates(cfg, loaded)
    history = trainer.state.log_history
    train_losses = [h["loss"] for h in history if "loss" in h]
    save_tuned(loaded, out_dir / "final", merge=cfg.merge_lora,
               meta={"tuned": {"method": "sft", "mode": cfg.mode, "template": loaded.template.name}})  # fmt: skip
    summary = {
        "method": "sft", "mode": cfg.mode, "template": loaded.template.name, "added_tokens": loaded.added_tokens,
        "random_init": is_random_init(loaded.model.get_base_model() if loaded.is_peft else loaded.model),
        "steps": trainer.state.global_step, "first_loss": train_losses[0] if train_losses else None,
        "final_loss": train_losses[-1] if train_losses else None, "initial_eval_loss": initial_eval,
        "final_eval_loss": final_eval, "packing": cfg.packing, "loss_turns": cfg.loss_turns, "data": prepared.counts,
        "prompts": cfg.prompts, "before": before, "after": after, "safety": safety,
    }  # fmt: skip
    atomic_write_json(out_dir / "history.json", history)
    atomic_write_json(out_dir / "summary.json", summary)
    if not cfg.keep_checkpoints:
        shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    return summary


def _safety_rates(cfg: Config, loaded) -> dict | None:
    if not cfg.safety_eval:
        return None
    from vinaforge.eval.safety import refusal_rates
    from vinaforge.generate.local import LocalBackend
    from vinaforge.tune.safety import heldout_prompts

    harmful, benign = heldout_prompts()
    side = loaded.tokenizer.padding_side
    loaded.model.config.use_cache = True
    try:
        return refusal_rates(LocalBackend(loaded.model, loaded.tokenizer), harmful, benign,
                             max_new_tokens=cfg.max_new_tokens)  # fmt: skip
    finally:
        loaded.tokenizer.padding_side = side
        loaded.model.config.use_cache = False


def report_section(summary: dict, figures: list[Figure], title: str) -> str:
    """The report card's Markdown for a tune stage (loss, answers before/after, safety rates)."""
    from vinaforge.tune.common import answers_table

    lines = [f"**{title}**" + (" — a model vinaforge built from random weights and trained itself (the demo's, or a seed recipe's "
                               "small base): judge its answers against that, not against a pretrained base."
                              if summary.get("random_init") else "")]  # fmt: skip
    data = summary.get("data") or {}
    if data:
        lines.append(
            f"Data: {data.get('in')} records in → {data.get('kept_train')} train "
            f"({data.get('mixed_train')} after mixing), {data.get('eval')} held out, {data.get('rejected')} rejected "
            f"({data.get('rejected_by_reason')}), {data.get('contaminated')} overlapping a benchmark "
            f"(checked: {data.get('benchmarks_checked') or 'none found'})."
        )
    if summary.get("initial_eval_loss") is not None:
        lines.append(f"Held-out assistant loss: {summary['initial_eval_loss']:.3f} → {summary['final_eval_loss']:.3f}.")
    pref = summary.get("preference")
    if pref:
        lines.append(
            f"Held-out pairs ({pref['n']}): reward accuracy {pref['reward_accuracy']:.2f}, mean reward margin "
            f"{pref['reward_margin']:.3f}; chosen-over-rejected log-prob margin {pref['margin_before']:.3f} → "
            f"{pref['margin_after']:.3f}."
        )
    if summary.get("prompts"):
        lines += ["", "Greedy answers to the same Vietnamese prompts:", "",
                  answers_table(summary["prompts"], summary["before"], summary["after"])]  # fmt: skip
    s = summary.get("safety")
    if s:
        lines += ["", f"Safety (held-out prompts we wrote): refusal rate on harmful requests {s['refusal_rate']:.2f} "
                  f"({s['n_harmful']}), over-refusal rate on benign look-alikes {s['over_refusal_rate']:.2f} "
                  f"({s['n_benign']})."]  # fmt: skip
    return "\n".join(lines)


def run(config: Config, ctx: StageContext) -> StageResult:
    from vinaforge.tune.common import plot_history

    summary = train_sft(config, ctx.work_dir, seed=ctx.seed)
    import json

    history = json.loads((ctx.work_dir / "history.json").read_text(encoding="utf-8"))
    png = plot_history(history, ctx.work_dir / "loss.png", title="SFT loss (assistant tokens)")
    figures = [Figure("loss.png", "SFT training loss per step and held-out assistant loss.")] if png else []
    keys = ("mode", "steps", "first_loss", "final_loss", "initial_eval_loss", "final_eval_loss", "random_init")
    metrics = {k: summary.get(k) for k in keys}
    if summary.get("safety"):
        metrics.update({k: summary["safety"][k] for k in ("refusal_rate", "over_refusal_rate")})
    metrics["contaminated"] = summary["data"].get("contaminated")
    return StageResult(
        outputs={"model": "final", "summary": "summary.json", "rejected": "rejected.jsonl"},
        metrics=metrics, report=report_section(summary, figures, "Supervised fine-tuning"), figures=figures,
    )  # fmt: skip

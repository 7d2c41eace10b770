"""What DPO, ORPO and KTO share: held-out margins, reward accuracy, and one training flow.

**Held-out measurement** (the same for every method, reference-free ones included): the summed
log-probability of each held-out pair's chosen and rejected reply under the model *before* and
*after* tuning. The implicit reward of a reply is ``beta * (log p_after - log p_before)``;
reward accuracy is the share of pairs whose chosen reward beats the rejected one, the reward margin
their mean difference — TRL's ``rewards/accuracies`` and ``rewards/margins``, computed on pairs
never trained on. The chosen-over-rejected log-prob margin before and after shows whether the
model itself now prefers the chosen replies.

Reply tokens are found from the chat template's generation markers (the last assistant span),
so the prompt never counts. Hand-written measurement; training is TRL's.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field

from vinaforge.chat import Preference, render
from vinaforge.tune.common import DEFAULT_PROMPTS, ModelFields, TrainSettings
from vinaforge.tune.data import DataSettings

log = logging.getLogger(__name__)


class PreferenceFields(ModelFields):
    """Settings every preference method shares."""

    data: DataSettings
    training: TrainSettings = TrainSettings(learning_rate=5e-5)
    beta: float = Field(0.1, gt=0)
    prompts: list[str] = Field(default_factory=lambda: list(DEFAULT_PROMPTS))
    max_new_tokens: int = Field(48, ge=1)
    safety_eval: bool = True
    keep_checkpoints: bool = False


def _reply_ids(tokenizer, prompt: list[dict], reply: list[dict]) -> tuple[list[int], list[int]]:
    rendered = render([*prompt, *reply], tokenizer.chat_template, bos_token=tokenizer.bos_token or "",
                      eos_token=tokenizer.eos_token or "")  # fmt: skip
    if not rendered.assistant_spans:
        raise ValueError("chat template marks no assistant reply")
    start, end = rendered.assistant_spans[-1]
    enc = tokenizer(rendered.text, add_special_tokens=False, return_offsets_mapping=True)
    mask = [int(e > s and s < end and e > start) for s, e in enc["offset_mapping"]]
    return list(enc["input_ids"]), mask


def reply_logps(model, tokenizer, pairs: list[Preference], *, batch_size: int = 8) -> tuple[list[float], list[float]]:
    """Summed log-probabilities of every pair's chosen and rejected reply given its prompt."""
    import torch

    seqs = []
    for p in pairs:
        seqs.append(_reply_ids(tokenizer, p.prompt, p.chosen))
        seqs.append(_reply_ids(tokenizer, p.prompt, p.rejected))
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id or 0
    out: list[float] = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for i in range(0, len(seqs), batch_size):
            chunk = seqs[i : i + batch_size]
            width = max(len(ids) for ids, _ in chunk)
            ids = torch.tensor([s + [pad] * (width - len(s)) for s, _ in chunk], device=device)
            att = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s, _ in chunk], device=device)
            mask = torch.tensor([m + [0] * (width - len(m)) for _, m in chunk], device=device, dtype=torch.float32)
            logits = model(input_ids=ids, attention_mask=att, use_cache=False).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
            out.extend((logp * mask[:, 1:]).sum(-1).tolist())
    model.train(was_training)
    return out[0::2], out[1::2]


def margins_report(before: tuple[list[float], list[float]], after: tuple[list[float], list[float]],
                   beta: float) -> dict[str, Any]:
    """Reward accuracy and margins on held-out pairs from log-probs before and after tuning."""
    bc, br = before
    ac, ar = after
    n = len(bc)
    rewards = [beta * ((ac[i] - bc[i]) - (ar[i] - br[i])) for i in range(n)]
    return {
        "n": n,
        "reward_accuracy": sum(r > 0 for r in rewards) / n if n else 0.0,
        "reward_margin": sum(rewards) / n if n else 0.0,
        "margin_before": sum(bc[i] - br[i] for i in range(n)) / n if n else 0.0,
        "margin_after": sum(ac[i] - ar[i] for i in range(n)) / n if n else 0.0,
        "prefers_chosen_before": sum(bc[i] > br[i] for i in range(n)) / n if n else 0.0,
        "prefers_chosen_after": sum(ac[i] > ar[i] for i in range(n)) / n if n else 0.0,
    }


TrainerFactory = Callable[[Any, Any, list, list, Path, int], Any]
"""``(cfg, loaded, train_items, eval_items, checkpoint_dir, seed) -> TRL trainer``."""


def train_preference(method: str, cfg: PreferenceFields, out_dir: Path, make_trainer: TrainerFactory, *,
                     seed: int = 0, reader=None, peft: bool = True) -> dict[str, Any]:
    """Load, prepare, measure, train (resuming), measure again, save ``final/`` and ``summary.json``."""
    from vinaforge.io import atomic_write_json
    from vinaforge.model.tiny import is_random_init
    from vinaforge.tune.common import (
        answer_prompts,
        latest_checkpoint,
        load_model_for_training,
        save_tuned,
        set_threads,
    )
    from vinaforge.tune.data import prepare

    set_threads(cfg.training.threads)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    loaded = load_model_for_training(cfg, peft=peft)
    prepared = prepare(cfg.data, kind="preference", tokenizer=loaded.tokenizer, max_length=cfg.training.max_length,
                       seed=seed, reader=reader)  # fmt: skip
    prepared.write(out_dir)
    heldout = [p for p in prepared.eval if isinstance(p, Preference)]
    before_answers = answer_prompts(loaded.model, loaded.tokenizer, cfg.prompts, max_new_tokens=cfg.max_new_tokens)
    before = reply_logps(loaded.model, loaded.tokenizer, heldout) if heldout else ([], [])
    trainer = make_trainer(cfg, loaded, prepared.train, prepared.eval, out_dir / "checkpoints", seed)
    trainer.train(resume_from_checkpoint=latest_checkpoint(out_dir / "checkpoints"))
    loaded.model = trainer.model
    after = reply_logps(loaded.model, loaded.tokenizer, heldout) if heldout else ([], [])
    pref = margins_report(before, after, cfg.beta) if heldout else None
    after_answers = answer_prompts(loaded.model, loaded.tokenizer, cfg.prompts, max_new_tokens=cfg.max_new_tokens)
    from vinaforge.tune.sft import _safety_rates

    safety = _safety_rates(cfg, loaded)  # type: ignore[arg-type]
    history = trainer.state.log_history
    losses = [h["loss"] for h in history if "loss" in h]
    save_tuned(loaded, out_dir / "final", merge=cfg.merge_lora, meta={"tuned": {"method": method, "mode": cfg.mode}})
    summary = {
        "method": method, "mode": cfg.mode, "template": loaded.template.name,
        "random_init": is_random_init(loaded.model.get_base_model() if loaded.is_peft else loaded.model),
        "steps": trainer.state.global_step, "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None, "data": prepared.counts, "preference": pref,
        "prompts": cfg.prompts, "before": before_answers, "after": after_answers, "safety": safety,
    }  # fmt: skip
    atomic_write_json(out_dir / "history.json", history)
    atomic_write_json(out_dir / "summary.json", summary)
    if not cfg.keep_checkpoints:
        shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    return summary


def stage_result(method: str, title: str, summary: dict, work_dir: Path):
    """The StageResult of a preference stage: curves, margins, answers, safety."""
    from vinaforge.stage import Figure, StageResult
    from vinaforge.tune.common import plot_history
    from vinaforge.tune.sft import report_section

    history = json.loads((work_dir / "history.json").read_text(encoding="utf-8"))
    figures = []
    if plot_history(history, work_dir / "loss.png", title=f"{method.upper()} loss"):
        figures.append(Figure("loss.png", f"{method.upper()} training loss per step."))
    keys = ("rewards/accuracies", "rewards/margins")
    if plot_history(history, work_dir / "rewards.png", title="training-batch rewards", keys=keys):
        figures.append(Figure("rewards.png", "Reward accuracy and margin on training batches (TRL's logs)."))
    metrics = {k: summary.get(k) for k in ("mode", "steps", "first_loss", "final_loss", "random_init")}
    if summary.get("preference"):
        metrics.update({k: summary["preference"][k] for k in ("reward_accuracy", "reward_margin", "margin_before",
                                                               "margin_after")})  # fmt: skip
    if summary.get("safety"):
        metrics.update({k: summary["safety"][k] for k in ("refusal_rate", "over_refusal_rate")})
    return StageResult(
        outputs={"model": "final", "summary": "summary.json", "rejected": "rejected.jsonl"},
        metrics=metrics, report=report_section(summary, figures, title), figures=figures,
    )  # fmt: skip

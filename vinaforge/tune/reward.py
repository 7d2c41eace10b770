"""Reward model from preference pairs or ranked lists (stage ``reward``, ``vinaforge tune reward``).

The community loop (Open-Assistant style) ranks several replies of the same prompt; a reward model
learns those preferences and later scores new replies for RL and self-preference. Training is
TRL's ``RewardTrainer`` (Bradley–Terry loss on a one-output sequence-classification head over any
causal LM vinaforge loads, extended vocabularies included), full or LoRA.

Data:

- preference pairs in any :mod:`vinaforge.chat` format (the collection app's ``preferences.jsonl``
  included);
- ranked lists ``{"prompt", "replies": [...], "ranks": [1, 2, 2, 3]}`` (lower is better, equal
  ranks are ties) or ``{"prompt", "ranked": [best, …, worst]}``, expanded into every ordered pair
  or adjacent pairs only; ties are dropped or trained as half-wins both ways; pair weights are
  uniform, per prompt (each list counts once) or by rank gap.

A list with one reply, contradictory duplicate rankings of the same replies by the same rater (or
by unnamed records) and an empty data set are refused with the file and line; different raters
(``ranked_by`` or ``rater``) may disagree, and their disagreements are counted in the summary. The report gives held-out pairwise accuracy, accuracy by rank
gap, chosen/rejected reward distributions and calibration (predicted P(chosen ≻ rejected) =
σ(r_c − r_r) against observed accuracy, with the expected calibration error).

Hand-written: ranked-list expansion, weighting (a small ``RewardTrainer`` subclass, since TRL's
loss takes a margin but no weight) and the report; training is TRL's.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from vinaforge.chat import ConversationError, Preference, Rejected, validate_messages, validate_preference
from vinaforge.chat.readers import iter_raw_records
from vinaforge.recipe import InputPaths
from vinaforge.stage import Figure, StageContext, StageResult
from vinaforge.tune.common import ModelFields, TrainSettings, TuneError

log = logging.getLogger(__name__)
RESUMABLE = True


class Config(ModelFields):
    """Stage ``reward``."""

    data: InputPaths = Field(..., min_length=1, description="preference pairs and/or ranked lists")
    format: str = "auto"
    pairs: Literal["all", "adjacent"] = Field("all", description="ranked lists: every ordered pair or neighbours only")
    ties: Literal["drop", "half"] = Field("drop", description="tied replies: dropped, or trained as half-wins both ways")
    weighting: Literal["uniform", "per_prompt", "rank_gap"] = "uniform"
    eval_fraction: float = Field(0.2, ge=0, lt=1, description="prompts held out of data (when no eval_data)")
    eval_data: InputPaths = Field(default_factory=list, description="held-out pairs and/or ranked lists; "
                                  "then every prompt of data trains")  # fmt: skip
    training: TrainSettings = TrainSettings(learning_rate=1e-4, epochs=1.0, batch_size=8)
    keep_checkpoints: bool = False


@dataclass
class Pair:
    """One training comparison: ``chosen`` beat ``rejected`` (or tied, when ``tie``)."""

    prompt: list[dict[str, str]]
    chosen: str
    rejected: str
    gap: float = 1.0
    weight: float = 1.0
    tie: bool = False
    group: str = ""
    source: str = ""

    def rows(self) -> list[dict]:
        c = [*self.prompt, {"role": "assistant", "content": self.chosen}]
        r = [*self.prompt, {"role": "assistant", "content": self.rejected}]
        if self.tie:  # a half-win each way pulls the two rewards together
            return [{"chosen": c, "rejected": r, "weight": self.weight / 2},
                    {"chosen": r, "rejected": c, "weight": self.weight / 2}]  # fmt: skip
        return [{"chosen": c, "rejected": r, "weight": self.weight}]


@dataclass
class RewardData:
    pairs: list[Pair] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    n_in: int = 0
    n_lists: int = 0
    rater_disagreements: int = 0  # pairs that two different raters order in opposite ways (both kept)


def _prompt_messages(value: Any) -> list[dict[str, str]]:
    msgs = [{"role": "user", "content": value}] if isinstance(value, str) else value
    clean = validate_messages(msgs, require_reply=False)
    if clean[-1]["role"] != "user":
        raise ConversationError("the prompt must end with a user turn")
    return clean


def _reply_text(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("content")
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        value = value[0].get("content")
    if not isinstance(value, str) or not value.strip():
        raise ConversationError("every reply must be non-empty text")
    return value


def ranked_list_pairs(record: dict, *, pairs: str = "all", ties: str = "drop", weighting: str = "uniform") -> list[Pair]:
    """Expand one ranked list into weighted pairs (raises :class:`ConversationError` when unusable)."""
    prompt = _prompt_messages(record.get("prompt"))
    if "ranked" in record:
        replies = [_reply_text(r) for r in record["ranked"]]
        ranks = list(range(1, len(replies) + 1))
    else:
        replies = [_reply_text(r) for r in record.get("replies") or []]
        ranks = record.get("ranks")
        if not isinstance(ranks, list) or len(ranks) != len(replies):
            raise ConversationError("'ranks' must be a list with one rank per reply")
        if not all(isinstance(r, int | float) and math.isfinite(r) for r in ranks):
            raise ConversationError("ranks must be finite numbers")
    if len(replies) < 2:
        raise ConversationError(f"a ranking needs at least two replies, got {len(replies)}")
    if len({r.strip() for r in replies}) < len(replies):
        raise ConversationError("the same reply appears twice in one ranking")
    order = sorted(range(len(replies)), key=lambda i: ranks[i])
    out: list[Pair] = []
    candidates = [(order[a], order[b]) for a in range(len(order)) for b in range(a + 1, len(order))]
    if pairs == "adjacent":
        distinct = sorted(set(ranks))
        nxt = {r: distinct[i + 1] for i, r in enumerate(distinct[:-1])}
        candidates = [(i, j) for i, j in candidates if ranks[i] == ranks[j] or nxt.get(ranks[i]) == ranks[j]]
    for i, j in candidates:
        tie = ranks[i] == ranks[j]
        if tie and ties == "drop":
            continue
        out.append(Pair(prompt, replies[i], replies[j], gap=float(ranks[j] - ranks[i]), tie=tie))
    if not out:
        raise ConversationError("no usable pair: every reply is tied")
    for p in out:
        p.weight = {"uniform": 1.0, "per_prompt": 1.0 / len(out), "rank_gap": max(p.gap, 0.5)}[weighting]
    return out


def _is_ranked_list(rec: Any) -> bool:
    return isinstance(rec, dict) and ("ranked" in rec or ("replies" in rec and "ranks" in rec))


def rater_of(rec: Any) -> str | None:
    """Who ranked a record: ``ranked_by`` (the loop's lists) or ``rater`` (the collection app's export)."""
    if not isinstance(rec, dict):
        return None
    who = rec.get("ranked_by", rec.get("rater"))
    return None if who is None else str(who)


def read_reward_data(sources: list[str], cfg: Config) -> RewardData:
    """Pairs from every source; unusable records rejected with ``file:line`` and their reason.

    Two raters may disagree: both pairs are kept (Bradley–Terry expects noisy labels, and the
    disagreements are counted). One rater (or unnamed records) ordering the same two replies both
    ways is a data error and is refused.
    """
    data = RewardData()
    seen: dict[tuple, tuple[str, str]] = {}  # (rater, prompt, sorted pair) -> (winner, where)
    winners: dict[tuple, set[str]] = defaultdict(set)  # (prompt, sorted pair) -> winners by any rater
    keyed: list[tuple[tuple, Pair]] = []
    for where, rec in iter_raw_records(sources):
        data.n_in += 1
        try:
            if isinstance(rec, Exception):
                raise rec
            if _is_ranked_list(rec):
                new = ranked_list_pairs(rec, pairs=cfg.pairs, ties=cfg.ties, weighting=cfg.weighting)
                data.n_lists += 1
            else:
                from vinaforge.chat import parse_record

                pref = parse_record(rec, fmt=cfg.format, kind="preference")
                assert isinstance(pref, Preference)
                validate_preference(pref)
                new = [Pair(pref.prompt, pref.chosen[-1]["content"], pref.rejected[-1]["content"])]
        except ConversationError as err:
            data.rejected.append(Rejected(where, str(err), None if isinstance(rec, Exception) else rec))
            continue
        rater = rater_of(rec)
        for p in new:
            p.group, p.source = json.dumps(p.prompt, ensure_ascii=False, sort_keys=True), where
            key = (p.group, *sorted((p.chosen.strip(), p.rejected.strip())))
            if not p.tie:
                prev = seen.get((rater, *key))
                if prev and prev[0] != p.chosen.strip():
                    who = f" (both by rater {rater!r})" if rater is not None else ""
                    raise TuneError(f"inconsistent duplicate rankings: {prev[1]} and {where} order the same two replies "
                                    f"of the same prompt in opposite ways{who}; resolve or drop one of them")  # fmt: skip
                seen[(rater, *key)] = (p.chosen.strip(), where)
                if winners[key] and p.chosen.strip() not in winners[key]:
                    data.rater_disagreements += 1
                winners[key].add(p.chosen.strip())
            keyed.append((key, p))
    data.pairs = [p for _, p in keyed]
    if not data.pairs:
        first = f"; first rejection: {data.rejected[0].source}: {data.rejected[0].reason}" if data.rejected else ""
        raise TuneError(f"reward data {', '.join(map(str, sources))}: no usable pairs ({data.n_in} records read){first}")
    if cfg.weighting != "uniform":  # mean weight 1 keeps the learning rate meaningful
        mean = sum(p.weight for p in data.pairs) / len(data.pairs)
        for p in data.pairs:
            p.weight /= mean
    return data


def split_by_prompt(pairs: list[Pair], fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """Held-out pairs come from held-out prompts: no eval prompt is ever trained on."""
    groups = sorted({p.group for p in pairs})
    random.Random(seed).shuffle(groups)
    n_eval = round(len(groups) * fraction) if fraction else 0
    held = set(groups[:n_eval])
    return [p for p in pairs if p.group not in held], [p for p in pairs if p.group in held]


# ----------------------------------------------------------------------------- training


def _weighted_trainer_cls():
    import torch
    import torch.nn.functional as F
    from trl import RewardTrainer
    from trl.trainer.reward_trainer import DataCollatorForPreference

    class WeightedCollator(DataCollatorForPreference):
        def torch_call(self, examples):
            out = super().torch_call(examples)
            if "weight" in examples[0]:
                out["weight"] = torch.tensor([float(e["weight"]) for e in examples], dtype=torch.float)
            return out

    class WeightedRewardTrainer(RewardTrainer):
        """TRL's reward trainer with a per-pair weight on the Bradley–Terry loss."""

        def _set_signature_columns_if_needed(self):
            if self._signature_columns is None:
                self._signature_columns = ["chosen_ids", "rejected_ids", "margin", "weight"]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            weight = inputs.pop("weight", None)
            if weight is None:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
            chosen, rejected = torch.chunk(outputs.logits.squeeze(-1), chunks=2)
            per_pair = -F.logsigmoid(chosen - rejected)
            loss = (per_pair * weight.to(per_pair.dtype)).sum() / weight.sum()
            return (loss, outputs) if return_outputs else loss

    return WeightedRewardTrainer, WeightedCollator


def load_reward_model_for_training(cfg: Config):
    """Tokenizer with a marked chat template, and a one-output classification head over the LM."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from vinaforge.checks import check_tokenizer_fits
    from vinaforge.model.load import ModelLoadError, check_model_source
    from vinaforge.model.resize import read_resize_info
    from vinaforge.tune.common import load_tokenizer_with_template

    source = str(cfg.model)
    check_model_source(source)
    tok, choice = load_tokenizer_with_template(source, cfg.chat_template)
    if cfg.mode == "qlora":
        raise TuneError("mode: qlora is not supported for reward models here; use lora or full")
    try:
        model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as err:
        raise ModelLoadError(f"cannot load {source!r} as a reward model (sequence classification): {err}") from err
    rows = model.get_input_embeddings().weight.shape[0]
    check_tokenizer_fits(model, tok, source, added_ids=len(choice.added_tokens))
    if len(tok) > rows:
        model.resize_token_embeddings(len(tok), mean_resizing=True)
    model.config.pad_token_id = tok.pad_token_id
    info = read_resize_info(model)
    peft_cfg = None
    if cfg.mode in ("lora", "dora"):
        from vinaforge.tune.common import check_lora_targets, lora_config

        check_lora_targets(model, cfg.lora.target_modules, source)
        num_base = int(info["num_base_rows"]) if info else (rows if len(tok) > rows else None)
        peft_cfg = replace(lora_config(model, cfg.lora, dora=cfg.mode == "dora", num_base_rows=num_base),
                           task_type="SEQ_CLS")  # fmt: skip
    return model, tok, choice, peft_cfg


def train_reward(cfg: Config, out_dir: Path, *, seed: int = 0) -> dict[str, Any]:
    """Train, save ``out_dir/final`` (HF folder + chat template), evaluate; returns the summary."""
    from trl import RewardConfig

    from vinaforge.chat import write_jsonl
    from vinaforge.io import atomic_write_json
    from vinaforge.tune.common import latest_checkpoint, set_threads
    from vinaforge.tune.data import to_dataset

    set_threads(cfg.training.threads)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = read_reward_data(list(cfg.data), cfg)
    if cfg.eval_data:
        extra = read_reward_data(list(cfg.eval_data), cfg)
        train, held = data.pairs, extra.pairs
        data.n_in, data.n_lists = data.n_in + extra.n_in, data.n_lists + extra.n_lists
        data.rejected += extra.rejected
        data.rater_disagreements += extra.rater_disagreements
    else:
        train, held = split_by_prompt(data.pairs, cfg.eval_fraction, seed)
    write_jsonl(out_dir / "rejected.jsonl", data.rejected)
    if not train:
        raise TuneError("every prompt fell into the eval split; lower eval_fraction or add data")
    model, tok, choice, peft_cfg = load_reward_model_for_training(cfg)
    trainer_cls, collator_cls = _weighted_trainer_cls()
    kwargs = cfg.training.trl_kwargs(out_dir / "checkpoints", seed=seed, has_eval=False)
    args = RewardConfig(**kwargs, center_rewards_coefficient=0.01, remove_unused_columns=False)
    rows = [r for p in train for r in p.rows()]
    trainer = trainer_cls(model=model, args=args, train_dataset=to_dataset(rows), processing_class=tok,
                          peft_config=peft_cfg, data_collator=collator_cls(pad_token_id=tok.pad_token_id))  # fmt: skip
    before = evaluate_pairs(trainer.model, tok, held) if held else None
    trainer.train(resume_from_checkpoint=latest_checkpoint(out_dir / "checkpoints"))
    final = trainer.model
    if peft_cfg is not None and cfg.merge_lora:
        final = final.merge_and_unload()
    after = evaluate_pairs(final, tok, held) if held else None
    save_reward_model(final, tok, out_dir / "final", meta={"method": "reward", "mode": cfg.mode,
                                                            "template": choice.name})  # fmt: skip
    history = trainer.state.log_history
    losses = [h["loss"] for h in history if "loss" in h]
    summary = {
        "method": "reward", "mode": cfg.mode, "template": choice.name, "pairs_in": len(data.pairs),
        "eval_source": "eval_data" if cfg.eval_data else "eval_fraction", "records_in": data.n_in,
        "ranked_lists": data.n_lists, "rejected": len(data.rejected),
        "rater_disagreements": data.rater_disagreements,
        "train_pairs": len(train), "eval_pairs": len(held), "steps": trainer.state.global_step,
        "first_loss": losses[0] if losses else None, "final_loss": losses[-1] if losses else None,
        "eval_before": before, "eval": after, "eval_accuracy": (after or {}).get("accuracy"),
    }  # fmt: skip
    atomic_write_json(out_dir / "history.json", history)
    atomic_write_json(out_dir / "summary.json", summary)
    if not cfg.keep_checkpoints:
        shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    return summary


def save_reward_model(model, tokenizer, out_dir: Path, meta: dict) -> Path:
    from vinaforge.io import atomic_path
    from vinaforge.model.tiny import update_vinaforge_meta

    update_vinaforge_meta(model, tuned=meta)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        model.save_pretrained(tmp)
        from vinaforge.model.load import save_tokenizer

        save_tokenizer(tokenizer, tmp)
    return Path(out_dir)


# ----------------------------------------------------------------------------- evaluation


def evaluate_pairs(model, tokenizer, pairs: list[Pair], bins: int = 5) -> dict[str, Any]:
    """Held-out accuracy, accuracy by rank gap, reward distributions and calibration."""
    from vinaforge.generate.reward import RewardModel

    was_training = model.training
    rm = RewardModel(model, tokenizer, device=str(next(model.parameters()).device))
    decided = [p for p in pairs if not p.tie]
    chosen = rm.score([[*p.prompt, {"role": "assistant", "content": p.chosen}] for p in decided])
    rejected = rm.score([[*p.prompt, {"role": "assistant", "content": p.rejected}] for p in decided])
    model.train(was_training)
    diffs = [c - r for c, r in zip(chosen, rejected, strict=True)]
    correct = [d > 0 for d in diffs]
    by_gap: dict[str, list[bool]] = defaultdict(list)
    for p, ok in zip(decided, correct, strict=True):
        by_gap["3+" if p.gap >= 3 else str(int(p.gap))].append(ok)
    calib, ece = [], 0.0
    probs = [1 / (1 + math.exp(-max(-50.0, min(50.0, d)))) for d in diffs]
    for b in range(bins):
        lo, hi = 0.5 + b * 0.5 / bins, 0.5 + (b + 1) * 0.5 / bins
        idx = [i for i, q in enumerate(probs) if lo <= max(q, 1 - q) < hi or (b == bins - 1 and max(q, 1 - q) == 1.0)]
        if not idx:
            continue
        conf = sum(max(probs[i], 1 - probs[i]) for i in idx) / len(idx)
        acc = sum(correct[i] if probs[i] >= 0.5 else not correct[i] for i in idx) / len(idx)
        calib.append({"bin": f"{lo:.1f}-{hi:.1f}", "n": len(idx), "confidence": round(conf, 4), "accuracy": round(acc, 4)})
        ece += len(idx) / len(probs) * abs(conf - acc)
    return {
        "pairs": len(decided),
        "accuracy": round(sum(correct) / len(correct), 4) if correct else None,
        "accuracy_by_gap": {k: {"n": len(v), "accuracy": round(sum(v) / len(v), 4)} for k, v in sorted(by_gap.items())},
        "mean_margin": round(sum(diffs) / len(diffs), 4) if diffs else None,
        "chosen_rewards": [round(x, 4) for x in chosen],
        "rejected_rewards": [round(x, 4) for x in rejected],
        "calibration": calib,
        "ece": round(ece, 4),
    }


def _plot_distributions(ev: dict, path: Path) -> Path | None:
    if not ev or not ev.get("chosen_rewards"):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.2))
    a.hist(ev["chosen_rewards"], bins=20, alpha=0.6, label="chosen")
    a.hist(ev["rejected_rewards"], bins=20, alpha=0.6, label="rejected")
    a.set_title("held-out rewards")
    a.legend()
    conf = [c["confidence"] for c in ev["calibration"]]
    acc = [c["accuracy"] for c in ev["calibration"]]
    b.plot([0.5, 1], [0.5, 1], "--", color="grey")
    b.plot(conf, acc, marker="o")
    b.set_xlabel("predicted P(chosen ≻ rejected)")
    b.set_ylabel("observed accuracy")
    b.set_title(f"calibration (ECE {ev['ece']:.3f})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def report_section(summary: dict) -> str:
    ev = summary.get("eval") or {}
    lines = [
        "**Reward model**", "",
        f"{summary['records_in']} records ({summary['ranked_lists']} ranked lists) → {summary['pairs_in']} pairs; "
        f"{summary['rejected']} rejected (kept in `rejected.jsonl`). Trained on {summary['train_pairs']} pairs, "
        f"{summary['steps']} steps, {summary['mode']}; held out {summary['eval_pairs']} pairs of unseen prompts.", "",
    ]  # fmt: skip
    if ev:
        before = (summary.get("eval_before") or {}).get("accuracy")
        lines += [f"- held-out pairwise accuracy: **{ev['accuracy']}** (before training: {before})",
                  f"- mean reward margin: {ev['mean_margin']}; expected calibration error: {ev['ece']}", "",
                  "| rank gap | pairs | accuracy |", "|---|---:|---:|"]  # fmt: skip
        lines += [f"| {k} | {v['n']} | {v['accuracy']} |" for k, v in ev["accuracy_by_gap"].items()]
    return "\n".join(lines) + "\n"


def run(config: Config, ctx: StageContext) -> StageResult:
    from vinaforge.tune.common import plot_history

    summary = train_reward(config, ctx.work_dir, seed=ctx.seed)
    history = json.loads((ctx.work_dir / "history.json").read_text(encoding="utf-8"))
    figures = []
    if plot_history(history, ctx.work_dir / "loss.png", title="reward model loss", keys=("loss", "accuracy")):
        figures.append(Figure("loss.png", "Reward-model training loss and batch accuracy."))
    if _plot_distributions(summary.get("eval") or {}, ctx.work_dir / "rewards.png"):
        figures.append(Figure("rewards.png", "Held-out chosen vs rejected rewards, and calibration."))
    ev = summary.get("eval") or {}
    metrics = {"eval_accuracy": ev.get("accuracy"), "ece": ev.get("ece"), "eval_pairs": summary["eval_pairs"],
               "train_pairs": summary["train_pairs"], "final_loss": summary["final_loss"]}  # fmt: skip
    return StageResult(outputs={"model": "final", "summary": "summary.json", "rejected": "rejected.jsonl"},
                       metrics=metrics, report=report_section(summary), figures=figures)  # fmt: skip

"""Kahneman–Tversky optimisation (stage ``kto``) on TRL's ``KTOTrainer``, for thumbs-up/down data.

Data: unpaired records ``{"prompt", "completion", "label": true|false}`` (prompt and completion as
text or message lists — what the collection app's ratings export), and preference pairs, each
split into a desirable and an undesirable example. Bad records are kept with ``file:line`` and
their reason. The reference is handled as in :mod:`vinaforge.tune.dpo` (adapter disabled under
LoRA, a second load or precomputed log-probs in full mode). Held-out pairs get the same reward
accuracy / margin measurement as DPO and ORPO. Hand-written glue; the trainer is TRL's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from vinaforge.stage import StageContext, StageResult
from vinaforge.tune.preference import PreferenceFields

RESUMABLE = True


@dataclass
class Unpaired:
    """One reply to a prompt with a thumbs-up (``label=True``) or thumbs-down."""

    prompt: list[dict[str, str]]
    completion: list[dict[str, str]]
    label: bool
    id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "completion": self.completion, "label": self.label, "id": self.id}


def parse_unpaired(rec: Any) -> Unpaired:
    from vinaforge.chat.conversation import ConversationError, validate_messages

    if not isinstance(rec, dict):
        raise ConversationError(f"expected a JSON object, got {type(rec).__name__}")
    missing = [k for k in ("prompt", "completion", "label") if k not in rec]
    if missing:
        raise ConversationError(f"missing {', '.join(missing)}; KTO records need prompt, completion, label "
                                "(or prompt/chosen/rejected pairs)")  # fmt: skip
    if not isinstance(rec["label"], bool):
        raise ConversationError(f"label must be true or false, got {rec['label']!r}")
    prompt = [{"role": "user", "content": rec["prompt"]}] if isinstance(rec["prompt"], str) else rec["prompt"]
    completion = ([{"role": "assistant", "content": rec["completion"]}] if isinstance(rec["completion"], str)
                  else rec["completion"])  # fmt: skip
    validate_messages([*prompt, *completion])
    return Unpaired(prompt, completion, rec["label"], None if rec.get("id") is None else str(rec["id"]))


def read_kto(paths, fmt: str = "auto"):
    """Unpaired records and preference pairs from every source, rejected ones with file:line."""
    from vinaforge.chat import ChatFormatError, ConversationError, ReadResult, Rejected, parse_record
    from vinaforge.chat.readers import _raw_records_of_file, expand_sources

    result = ReadResult()
    for src in expand_sources(paths):
        for where, rec in _raw_records_of_file(__import__("pathlib").Path(src)):
            if isinstance(rec, Exception):
                result.rejected.append(Rejected(where, str(rec)))
                continue
            try:
                item = (parse_record(rec, kind="preference") if isinstance(rec, dict) and "chosen" in rec
                        else parse_unpaired(rec))  # fmt: skip
                result.kept.append(item)
            except ConversationError as err:
                result.rejected.append(Rejected(where, str(err), rec))
    if not result.kept:
        raise ChatFormatError(f"{', '.join(map(str, paths))}: no usable KTO records ({result.n_in} read)"
                              + (f"; first rejection: {result.rejected[0].source}: {result.rejected[0].reason}"
                                 if result.rejected else ""))  # fmt: skip
    return result


def kto_rows(items: list) -> list[dict]:
    rows = []
    for it in items:
        if isinstance(it, Unpaired):
            rows.append({"prompt": it.prompt, "completion": it.completion, "label": it.label})
        else:
            rows.append({"prompt": it.prompt, "completion": it.chosen, "label": True})
            rows.append({"prompt": it.prompt, "completion": it.rejected, "label": False})
    return rows


class Config(PreferenceFields):
    desirable_weight: float = Field(1.0, gt=0)
    undesirable_weight: float = Field(1.0, gt=0)
    precompute_ref_log_probs: bool = False


def make_trainer(cfg: Config, loaded, train, eval_items, out_dir, seed):
    from trl import KTOConfig, KTOTrainer

    from vinaforge.model.load import load_causal_lm
    from vinaforge.tune.data import to_dataset

    if cfg.training.batch_size < 2:
        raise ValueError("training.batch_size must be >= 2 for KTO (its KL term pairs examples within a batch)")
    args = KTOConfig(
        **cfg.training.trl_kwargs(out_dir, seed=seed, has_eval=bool(eval_items)),
        beta=cfg.beta, desirable_weight=cfg.desirable_weight, undesirable_weight=cfg.undesirable_weight,
        precompute_ref_log_probs=cfg.precompute_ref_log_probs, dataset_num_proc=None,
    )  # fmt: skip
    ref = None
    if not loaded.is_peft and not cfg.precompute_ref_log_probs:
        ref = load_causal_lm(str(cfg.model), dtype=str(loaded.model.dtype).replace("torch.", ""))
    return KTOTrainer(
        model=loaded.model, ref_model=ref, args=args, train_dataset=to_dataset(kto_rows(train)),
        eval_dataset=to_dataset(kto_rows(eval_items)) if eval_items else None, processing_class=loaded.tokenizer,
    )  # fmt: skip


def train_kto(cfg: Config, out_dir, *, seed: int = 0) -> dict:
    from vinaforge.tune.preference import train_preference

    return train_preference("kto", cfg, out_dir, make_trainer, seed=seed, reader=read_kto)


def run(config: Config, ctx: StageContext) -> StageResult:
    from vinaforge.tune.preference import stage_result

    summary = train_kto(config, ctx.work_dir, seed=ctx.seed)
    return stage_result("kto", "Preference alignment: KTO (unpaired feedback)", summary, ctx.work_dir)

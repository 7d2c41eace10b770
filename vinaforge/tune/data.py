"""Training data for every tune method: read, split, clean, mix, and account for every record.

Sources are read by :mod:`vinaforge.chat` (every conversation and preference format it knows,
``file:line`` reasons for bad records). Then, in this order:

1. **eval split** — a stable hash of each record's text picks ``eval_fraction`` of every source
   (or the eval comes from ``eval_paths``), before any mixing, so no eval item is ever trained on;
2. **contamination** — records sharing a syllable n-gram with any benchmark vinaforge evaluates
   (VMLU, ARC/MMLU/HellaSwag/TruthfulQA-vi, belebele, xnli, xcopa; every split file found in the
   benchmark folders) are reported and dropped by default (:mod:`vinaforge.tune.contamination`);
3. **length** — conversations longer than ``max_length`` tokens are dropped or left for the trainer
   to truncate (``over_length``), with counts;
4. **mixing** — sources are combined with weights (each source's share of the training set,
   VinaSmol's Vietnamese + some English), down- or up-sampled deterministically.

Every record in is kept, in the eval split, or rejected with its reason: ``in = kept + rejected``,
and ``rejected.jsonl`` holds them. Hand-written: the bookkeeping is ours; reading is
:mod:`vinaforge.chat`, datasets are ``datasets.Dataset``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vinaforge.chat import Conversation, Preference, Rejected, read_records, render
from vinaforge.recipe import InputPaths

log = logging.getLogger(__name__)


class Source(BaseModel):
    """One dataset of a mixture."""

    model_config = ConfigDict(extra="forbid")

    paths: InputPaths = Field(..., description="files, folders or hf:NAME[:SPLIT] in any vinaforge.chat format")
    weight: float = Field(1.0, gt=0, description="share of the training set, relative to the other sources")
    format: str = "auto"
    limit: int | None = Field(None, ge=1, description="read at most this many usable records")


class DataSettings(BaseModel):
    """Where the data comes from and how it is cleaned (shared by every method)."""

    model_config = ConfigDict(extra="forbid")

    sources: dict[str, Source] = Field(..., min_length=1)
    eval_paths: InputPaths = []
    eval_fraction: float = Field(0.1, ge=0, lt=1)
    eval_max: int = Field(200, ge=1)
    decontaminate: bool = Field(True, description="drop records that overlap a benchmark (else only report)")
    benchmark_dirs: list[str] = Field(
        ["auto"], description="benchmark folders to check against; auto: examples/eval and the eval data folder"
    )
    ngram: int = Field(8, ge=3, description="syllable n-gram length of the contamination check")
    over_length: Literal["drop", "truncate"] = "drop"
    mix_size: int | None = Field(None, ge=1, description="training-set size of a weighted mix (default: sum of sizes)")


@dataclass
class Prepared:
    """The datasets a trainer gets, and the account of every record."""

    train: list[Any]
    eval: list[Any]
    rejected: list[Rejected] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    contaminated: list[dict] = field(default_factory=list)

    def write(self, folder) -> None:
        """``rejected.jsonl`` (every dropped record with its reason) and ``data_counts.json``."""
        from vinaforge.chat import write_jsonl
        from vinaforge.io import atomic_write_json

        write_jsonl(folder / "rejected.jsonl", self.rejected)
        atomic_write_json(folder / "data_counts.json", {**self.counts, "contaminated": self.contaminated[:200]})


def record_text(rec: Conversation | Preference | Any) -> str:
    """All the text of a record (what the contamination check and the split hash look at)."""
    if isinstance(rec, Conversation):
        return "\n".join(m["content"] for m in rec.messages)
    if isinstance(rec, Preference):
        return "\n".join(m["content"] for m in [*rec.prompt, *rec.chosen, *rec.rejected])
    if isinstance(rec, dict):
        return json.dumps(rec, ensure_ascii=False, sort_keys=True)
    return str(rec)


def _in_eval(rec: Any, fraction: float) -> bool:
    digest = hashlib.sha1(record_text(rec).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def _mix(per_source: dict[str, list], weights: dict[str, float], total: int | None, seed: int) -> tuple[list, dict]:
    """Sample each source to its weighted share; equal weights and no size just concatenate."""
    rng = random.Random(seed)
    sizes = {k: len(v) for k, v in per_source.items()}
    if total is None and len(set(weights.values())) <= 1:
        out = [r for v in per_source.values() for r in v]
        rng.shuffle(out)
        return out, sizes
    total = total or sum(sizes.values())
    wsum = sum(weights[k] for k in per_source)
    out, used = [], {}
    for name, items in per_source.items():
        n = round(total * weights[name] / wsum)
        if not items:
            used[name] = 0
            continue
        reps, rest = divmod(n, len(items))
        picked = items * reps + rng.sample(items, rest)
        used[name] = len(picked)
        out.extend(picked)
    rng.shuffle(out)
    return out, used


def conversation_length(tokenizer, messages: list[dict]) -> int:
    text = render(messages, tokenizer.chat_template, bos_token=tokenizer.bos_token or "",
                  eos_token=tokenizer.eos_token or "").text  # fmt: skip
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _messages_of(rec: Any) -> list[list[dict]]:
    if isinstance(rec, Conversation):
        return [rec.messages]
    if isinstance(rec, Preference):
        return [[*rec.prompt, *rec.chosen], [*rec.prompt, *rec.rejected]]
    return []


def prepare(
    settings: DataSettings,
    *,
    kind: Literal["conversation", "preference"],
    tokenizer: Any = None,
    max_length: int | None = None,
    seed: int = 0,
    reader=None,
) -> Prepared:
    """Read, split, decontaminate, length-check and mix ``settings.sources``.

    ``reader(paths, format) -> ReadResult`` replaces :func:`vinaforge.chat.read_records` for
    record kinds that module does not know (KTO's unpaired labels).
    """
    from vinaforge.tune.contamination import ContaminationIndex

    read = reader or (lambda paths, fmt: read_records(paths, format=fmt, kind=kind))
    rejected: list[Rejected] = []
    counts: dict[str, Any] = {"in": 0, "sources": {}}
    per_source: dict[str, list] = {}
    eval_items: list = []
    for name, src in settings.sources.items():
        res = read(src.paths, src.format)
        kept = res.kept[: src.limit] if src.limit else res.kept
        over_limit = len(res.kept) - len(kept)
        rejected.extend(res.rejected)
        counts["in"] += res.n_in
        train_part = []
        for rec in kept:
            (eval_items if not settings.eval_paths and _in_eval(rec, settings.eval_fraction) else train_part).append(rec)
        per_source[name] = train_part
        counts["sources"][name] = {"read": res.n_in, "usable": len(res.kept), "rejected": len(res.rejected),
                                   "over_limit": over_limit}  # fmt: skip
        counts["in"] -= over_limit  # records past `limit` are not read into this run
    if settings.eval_paths:
        res = read(settings.eval_paths, "auto")
        eval_items = res.kept
        rejected.extend(res.rejected)
        counts["in"] += res.n_in
    if len(eval_items) > settings.eval_max:
        counts["eval_unused"] = len(eval_items) - settings.eval_max
        rng = random.Random(seed)
        extra = eval_items
        eval_items = rng.sample(extra, settings.eval_max)
        chosen = {id(x) for x in eval_items}
        rejected.extend(Rejected("eval split", "eval split larger than eval_max", r.to_dict())
                        for r in extra if id(r) not in chosen)  # fmt: skip

    index = ContaminationIndex.for_dirs(settings.benchmark_dirs, n=settings.ngram)
    contaminated: list[dict] = []

    def clean(items: list, split: str) -> list:
        out = []
        for rec in items:
            hit = index.match(rec if not isinstance(rec, Conversation | Preference) else rec.to_dict())
            if hit:
                contaminated.append({"split": split, "benchmark": hit[0], "item": hit[1], "shared_ngrams": hit[2],
                                     "text": record_text(rec)[:200]})  # fmt: skip
                if settings.decontaminate:
                    rejected.append(Rejected(f"{split}", f"contaminated: shares an n-gram with {hit[0]} {hit[1]}",
                                             rec.to_dict() if hasattr(rec, "to_dict") else rec))  # fmt: skip
                    continue
            if tokenizer is not None and max_length and settings.over_length == "drop":
                longest = max((conversation_length(tokenizer, m) for m in _messages_of(rec)), default=0)
                if longest > max_length:
                    counts["too_long_dropped"] = counts.get("too_long_dropped", 0) + 1
                    rejected.append(Rejected(split, f"too long: {longest} tokens > max_length {max_length}",
                                             rec.to_dict() if hasattr(rec, "to_dict") else rec))  # fmt: skip
                    continue
            out.append(rec)
        return out

    per_source = {k: clean(v, f"train:{k}") for k, v in per_source.items()}
    eval_items = clean(eval_items, "eval")
    n_kept_unique = sum(len(v) for v in per_source.values())
    train, used = _mix(per_source, {k: s.weight for k, s in settings.sources.items()}, settings.mix_size, seed)
    if not train:
        raise ValueError(
            "no training records left after the eval split and cleaning "
            f"({counts['in']} read, {len(rejected)} rejected, {len(eval_items)} in eval); see rejected.jsonl"
        )
    counts.update(
        kept_train=n_kept_unique, eval=len(eval_items), rejected=len(rejected), mixed_train=len(train),
        mix=used, contaminated=len(contaminated), benchmarks_checked=index.describe(),
        rejected_by_reason=_reasons(rejected),
    )  # fmt: skip
    counts["accounted"] = counts["in"] == n_kept_unique + len(eval_items) + len(rejected)
    log.info("data: %d in, %d train (%d after mixing), %d eval, %d rejected, %d contaminated",
             counts["in"], n_kept_unique, len(train), len(eval_items), len(rejected), len(contaminated))  # fmt: skip
    return Prepared(train, eval_items, rejected, counts, contaminated)


def _reasons(rejected: list[Rejected]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rejected:
        key = r.reason.split(":")[0]
        out[key] = out.get(key, 0) + 1
    return out


def conversation_rows(items: list[Conversation], loss_turns: str = "every") -> list[dict]:
    """TRL's conversational rows. ``every``: language-modeling rows (``{"messages": [...]}``), whose
    loss covers every assistant turn. ``last``: prompt-completion rows (the conversation up to its
    final reply, then that reply), on which TRL's completion-only loss trains the final turn only
    (LLaMA-Factory's ``mask_history``); the earlier turns are context."""
    if loss_turns == "every":
        return [{"messages": c.messages} for c in items]
    if loss_turns != "last":
        raise ValueError(f"loss_turns must be 'every' or 'last', not {loss_turns!r}")
    rows = []
    for c in items:
        if c.last_reply is None:
            raise ValueError(f"loss_turns 'last' needs a final assistant reply: {record_text(c)[:80]!r}")
        rows.append({"prompt": c.prompt_messages, "completion": c.messages[-1:]})
    return rows


def preference_rows(items: list[Preference]) -> list[dict]:
    """TRL's conversational preference rows (``prompt`` / ``chosen`` / ``rejected`` message lists)."""
    return [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in items]


def to_dataset(rows: list[dict]):
    from datasets import Dataset

    return Dataset.from_list(rows)

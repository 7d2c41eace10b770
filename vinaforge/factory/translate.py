"""``translate``: English instruction and chat data → Vietnamese, turn by turn, roles kept.

Reads every format :mod:`vinaforge.chat` reads. Each message is cut by
:mod:`vinaforge.factory.protect` (code, URLs, e-mails, numbers and units, placeholders and the
Markdown structure never reach the model as prose), long prose is chunked at sentence
boundaries, and the pieces go through :class:`vinaforge.factory.calls.Caller` (call cache keyed
by model, template and source text; the backend's concurrency and rate limits). Every record is
then checked; one that fails is kept in ``rejected/`` with its reason:

- ``protected``: a marker lost or repeated, or a code block / URL / number missing afterwards;
- ``language``: the text core's language ID does not say Vietnamese;
- ``length_ratio``: translated / source characters outside ``[min_ratio, max_ratio]``;
- ``english_residue``: too many English function words left in the output;
- ``back_translation``: optional; chrF++ (sacrebleu) of the back-translation against the source;
- ``call_failed``: the endpoint failed after its retries (the error is kept).

Runs as datatrove steps (:mod:`vinaforge.factory.pipeline`): sharded, resumable per shard, and
a re-run makes no call that was already answered. Hand-written: the steps and the checks.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vinaforge.factory.pipeline import (
    READ_FORMATS,
    FactoryError,
    RecordReader,
    ScaleConfig,
    batched,
    has_records,
    prepare_output,
    run_steps,
)
from vinaforge.factory.protect import Skeleton, assemble, restore, skeleton, split_unit
from vinaforge.generate import BackendConfig, SamplingConfig
from vinaforge.stage import StageContext, StageResult

RESUMABLE = True
EN_FUNCTION_WORDS = frozenset(
    "the and with for that this is are was were of from which would should have has been will your their "
    "what when where there these those into about because".split()
)
_WORD_RE = re.compile(r"[^\W\d_]+")


class BackTranslation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    template: str = "back_translate"
    min_chrf: float = Field(40.0, ge=0, le=100, description="chrF++ of back-translation vs source, 0-100")


class Checks(BaseModel):
    model_config = ConfigDict(extra="forbid")

    language: bool = True
    min_ratio: float = Field(0.6, gt=0)
    max_ratio: float = Field(2.5, gt=0)
    max_english_residue: float = Field(0.05, ge=0, le=1, description="English function words / words")
    back_translation: BackTranslation = Field(default_factory=BackTranslation)

    @model_validator(mode="after")
    def _ratio_range(self):
        if self.min_ratio > self.max_ratio:  # every record would be rejected as length_ratio
            raise ValueError(f"checks.min_ratio {self.min_ratio} is above checks.max_ratio {self.max_ratio}")
        return self


class Config(ScaleConfig):
    """Settings of ``vinaforge data translate`` and the ``translate`` recipe stage."""

    inputs: list[str] = Field(
        ..., min_length=1, description="English chat/instruction files or folders, hf:ORG/NAME"
    )
    format: str = Field("auto", description=f"one of {', '.join(READ_FORMATS[:-1])}")
    backend: BackendConfig
    sampling: SamplingConfig = Field(default_factory=lambda: SamplingConfig(max_new_tokens=512))
    template: str = Field(
        "translate", description="a template name in resources/prompts.yaml or text with {text}"
    )
    max_chunk_chars: int = Field(1200, ge=50, description="longer prose is cut at sentence boundaries")
    batch_records: int = Field(
        32, ge=1, description="records per generate call (the backend bounds concurrency)"
    )
    stream: bool = Field(
        False, description="endpoint: stream each answer (a cut stream is a recorded failure)"
    )
    limit: int = Field(0, ge=0, description="translate at most this many records (0: all)")
    checks: Checks = Field(default_factory=Checks)
    cache: str | None = Field(None, description="call cache file (default: OUTPUT/cache.sqlite), shareable")
    price_per_1k_prompt: float = Field(0.0, ge=0, description="for the cost line of the report")
    price_per_1k_completion: float = Field(0.0, ge=0)
    currency: str = "USD"
    report_examples: int = Field(3, ge=0)

    @field_validator("format")
    @classmethod
    def _known_format(cls, v: str) -> str:
        if v not in READ_FORMATS[:-1]:
            raise ValueError(f"unknown format {v!r}; expected one of {', '.join(READ_FORMATS[:-1])}")
        return v

    @field_validator("template")
    @classmethod
    def _has_slot(cls, v: str) -> str:
        from vinaforge.factory.prompts import resolve_template

        resolve_template(v, "template")
        return v


# ----------------------------------------------------------------------------- checks


def english_residue(text: str) -> float:
    words = [w.lower() for w in _WORD_RE.findall(text)]
    return sum(w in EN_FUNCTION_WORDS for w in words) / len(words) if words else 0.0


def check_record(src: list[dict], out: list[dict], skeletons: list[Skeleton], checks: Checks) -> str | None:
    """The first failed check as ``"name: detail"``, or None."""
    from vinaforge.text.langid import identify

    for sk, msg in zip(skeletons, out, strict=True):
        for span in sk.protected:
            if span not in msg["content"]:
                return f"protected: {span[:40]!r} missing from the translation"
    src_text = "\n".join(m["content"] for m in src)
    out_text = "\n".join(m["content"] for m in out)
    prose_out = "\n".join(m["content"] for m in out if m)
    if checks.language and any(sk.units for sk in skeletons):
        from vinaforge.factory.protect import INLINE_RE

        label, score = identify(INLINE_RE.sub(" ", prose_out)[:2000])
        if label != "vi":
            return f"language: identified as {label} ({score:.2f}), not vi"
    ratio = len(out_text) / max(1, len(src_text))
    if not checks.min_ratio <= ratio <= checks.max_ratio:
        return f"length_ratio: {ratio:.2f} outside [{checks.min_ratio}, {checks.max_ratio}]"
    residue = english_residue(out_text)
    if residue > checks.max_english_residue:
        return f"english_residue: {residue:.1%} English function words"
    return None


# ----------------------------------------------------------------------------- the step


class TranslateStep(PipelineStep):
    name = "vf/translate"
    type = "🔤 - TRANSLATE"

    def __init__(self, cfg: Config, cache_path: str):
        super().__init__()
        self.cfg, self.cache_path = cfg, cache_path

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        from vinaforge.factory.calls import Caller
        from vinaforge.factory.prompts import resolve_template

        caller = Caller(self.cfg.backend, self.cfg.sampling, self.cache_path, stream=self.cfg.stream)
        template = resolve_template(self.cfg.template, "template")
        back = resolve_template(self.cfg.checks.back_translation.template, "checks.back_translation.template")
        seen = 0
        try:
            for batch in batched(data, self.cfg.batch_records):
                todo = []
                for doc in batch:
                    if doc.metadata.get("rejected"):
                        continue
                    if self.cfg.limit and seen >= self.cfg.limit:
                        doc.metadata["rejected"] = f"limit: beyond limit={self.cfg.limit}"
                        continue
                    seen += 1
                    todo.append(doc)
                with self.track_time():
                    self._translate(todo, caller, template, back)
                if batch:
                    batch[0].metadata["usage"] = caller.take_usage()
                for doc in batch:
                    self.stat_update("rejected" if doc.metadata.get("rejected") else "kept")
                yield from batch
        finally:
            caller.close()

    def _translate(self, docs: list, caller, template: str, back_template: str) -> None:
        from vinaforge.factory.prompts import fill

        plans = []  # per doc: list of (message, skeleton, [per unit: list of pieces])
        prompts: list[str] = []
        for doc in docs:
            rec = doc.metadata["record"]
            msgs = _messages(rec)
            plan = []
            for m in msgs:
                sk = skeleton(m["content"])
                pieces = [split_unit(u, self.cfg.max_chunk_chars) for u in sk.units]
                for unit_pieces in pieces:
                    prompts.extend(fill(template, text=p.text) for p in unit_pieces)
                plan.append((m, sk, pieces))
            plans.append(plan)
        answers = iter(caller.complete(template, prompts))
        for doc, plan in zip(docs, plans, strict=True):
            out_msgs, skeletons, reason = [], [], None
            for m, sk, pieces in plan:
                texts = []
                for unit_pieces in pieces:
                    parts = []
                    for piece in unit_pieces:
                        text, err = next(answers)
                        if err is not None:
                            reason = reason or f"call_failed: {err}"
                            parts.append("")
                            continue
                        restored, why = restore(piece, _clean(text))
                        reason = reason or (f"protected: {why}" if why else None)
                        parts.append(restored or "")
                    texts.append(" ".join(parts))
                out_msgs.append({"role": m["role"], "content": assemble(sk, texts)})
                skeletons.append(sk)
            src_msgs = [m for m, _, _ in plan]
            reason = reason or check_record(src_msgs, out_msgs, skeletons, self.cfg.checks)
            doc.metadata["record"] = _with_messages(doc.metadata["record"], out_msgs, src_msgs)
            if reason:
                doc.metadata["rejected"] = reason
        if self.cfg.checks.back_translation.enabled:
            self._back_check([d for d in docs if not d.metadata.get("rejected")], caller, back_template)

    def _back_check(self, docs: list, caller, back_template: str) -> None:
        from sacrebleu.metrics import CHRF

        from vinaforge.factory.prompts import fill

        chrf = CHRF(word_order=2)
        pairs = [
            (d, d.metadata["record"]["translation"]["source"], d.metadata["record"]["messages"]) for d in docs
        ]
        prompts = [fill(back_template, text=m["content"]) for _, _, msgs in pairs for m in msgs]
        answers = iter(caller.complete(back_template, prompts))
        for doc, src, msgs in pairs:
            backs = [next(answers) for _ in msgs]
            if any(err for _, err in backs):
                doc.metadata["rejected"] = "call_failed: back-translation failed"
                continue
            score = chrf.sentence_score(
                "\n".join(t for t, _ in backs), ["\n".join(m["content"] for m in src)]
            ).score
            doc.metadata["record"]["translation"]["back_chrf"] = round(score, 1)
            if score < self.cfg.checks.back_translation.min_chrf:
                doc.metadata["rejected"] = (
                    f"back_translation: chrF++ {score:.1f} < {self.cfg.checks.back_translation.min_chrf}"
                )


def _clean(text: str) -> str:
    """Strip what chat models wrap a translation in (surrounding quotes, a lead-in line)."""
    t = text.strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'“":
        t = t[1:-1].strip()
    return t


def _messages(rec: dict[str, Any]) -> list[dict[str, str]]:
    if "messages" in rec:
        return rec["messages"]
    return [*rec["prompt"], *rec["chosen"]] if "prompt" in rec else []


def _with_messages(rec: dict[str, Any], out_msgs: list[dict], src_msgs: list[dict]) -> dict[str, Any]:
    new = {k: v for k, v in rec.items() if k not in ("messages", "prompt", "chosen", "rejected")}
    new["messages"] = out_msgs
    new["translation"] = {"source": src_msgs}
    return new


# ----------------------------------------------------------------------------- entry points


def translate(cfg: Config, output: str | Path, overwrite: bool = False) -> dict[str, Any]:
    """Translate ``cfg.inputs`` into ``output/kept`` and ``output/rejected``; returns the summary."""
    from vinaforge.factory.calls import cost
    from vinaforge.generate.endpoint import resolve_api_key

    out = Path(output)
    if cfg.backend.kind == "openai":
        resolve_api_key(cfg.backend.api_key_env)  # an unset key variable fails here, before any work
    if not has_records(cfg.inputs, cfg.format, "conversation"):
        raise FactoryError(f"{', '.join(cfg.inputs)}: empty dataset (no records)")
    cache_path = cfg.cache or str(out / "cache.sqlite")
    prepare_output(out, cfg.model_dump(mode="json"), overwrite, keep=("cache.sqlite",))
    t0 = time.perf_counter()
    steps = [RecordReader(cfg.inputs, cfg.format, "conversation"), TranslateStep(cfg, cache_path)]
    stats = run_steps(cfg, steps, out, "translate")
    stats["seconds"] = round(time.perf_counter() - t0, 2)
    stats["cost"] = round(cost(stats["usage"], cfg.price_per_1k_prompt, cfg.price_per_1k_completion), 4)
    stats["currency"] = cfg.currency
    from vinaforge.io import atomic_write_json

    atomic_write_json(out / "summary.json", stats)
    return stats


def report_section(stats: dict[str, Any], cfg: Config, out: Path) -> str:
    from vinaforge.factory.pipeline import read_jsonl_folder

    u = stats["usage"]
    lines = [
        f"Translated **{stats['input']}** records with `{cfg.backend.kind}:{cfg.backend.model}`: "
        f"**{stats['kept']}** kept, **{stats['rejected']}** rejected ({stats['shards']} shard(s), {stats['seconds']} s).",
        "",
        "| calls | cache hits | failed calls | attempts | prompt tokens | completion tokens | cost |",
        "|---|---|---|---|---|---|---|",
        f"| {u.get('calls', 0)} | {u.get('cache_hits', 0)} | {u.get('failed_calls', 0)} | {u.get('attempts', 0)} | "
        f"{u.get('prompt_tokens', 0)} | {u.get('completion_tokens', 0)} | {stats['cost']} {stats['currency']} |",
    ]
    if stats["reasons"]:
        lines += [
            "",
            "Rejected by check: " + ", ".join(f"{k} {v}" for k, v in sorted(stats["reasons"].items())),
        ]
    examples = list(read_jsonl_folder(out / "rejected"))[: cfg.report_examples]
    if examples:
        lines += ["", "Rejected examples:"]
        lines += [f"- `{e['source']}`: {e['reason'][:160]}" for e in examples]
    return "\n".join(lines)


def run(config: Config, ctx: StageContext) -> StageResult:
    stats = translate(config, ctx.work_dir)
    from vinaforge.factory.calls import tiny_model_note

    section = report_section(stats, config, ctx.work_dir) + tiny_model_note(config.backend)
    metrics = {k: stats[k] for k in ("input", "kept", "rejected", "reasons", "usage", "cost", "seconds")}
    return StageResult(outputs={"kept": "kept", "rejected": "rejected", "summary": "summary.json"},
                       metrics=metrics, report=section)  # fmt: skip

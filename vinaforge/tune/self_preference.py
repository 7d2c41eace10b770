"""Self-preference pairs (SeaLLMs), stage ``self_preference``: the model's own replies, judged.

For every prompt: sample ``n`` replies from the policy (:mod:`vinaforge.generate`, any backend),
score each with a judge, and keep the best vs the worst reply as chosen / rejected when their
scores differ by at least ``margin``. Judges:

- ``self`` / ``openai`` — a model (the policy itself, or any OpenAI-compatible endpoint) asked,
  with a Vietnamese judging prompt, for a 1–10 score; an unreadable answer scores nothing (recorded);
- ``reward_model`` — a sequence-classification reward model folder (its logit is the score);
- ``vi_ratio`` — a rule: the share of valid Vietnamese syllables (:mod:`vinaforge.text.validate`),
  a cheap judge for "answer in Vietnamese" data;
- ``rules`` — a rule: Vietnamese share × the reply's own bigram diversity
  (:mod:`vinaforge.text.reply_score`), which also ranks looping replies last.

Every score is recorded (``scores.jsonl``). Resumable: samples and scores are appended one prompt
at a time (fsync'd); a rerun skips every prompt already sampled, so a killed run repeats no
finished generation. ``pairs.jsonl`` (TRL / vinaforge.chat preference format) and ``rejected.jsonl``
(prompts without a pair, with the reason) are written at the end, atomically.

Hand-written: the flow and the Vietnamese judging prompt; generation and scoring are the
generation engine's and transformers'.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from vinaforge.generate import BackendConfig, SamplingConfig
from vinaforge.recipe import InputPath, InputPaths
from vinaforge.stage import StageConfig, StageContext, StageResult

RESUMABLE = True
OUTPUTS = ("samples.jsonl", "scores.jsonl", "pairs.jsonl", "rejected.jsonl")  # for recipe check
log = logging.getLogger(__name__)

JUDGE_PROMPT = (
    "Bạn là giám khảo công tâm. Hãy chấm điểm câu trả lời của trợ lý cho câu hỏi dưới đây theo thang "
    "từ 1 đến 10, dựa trên độ chính xác, mức hữu ích, sự an toàn và việc trả lời bằng tiếng Việt tự nhiên.\n\n"
    "### Câu hỏi:\n{prompt}\n\n### Câu trả lời:\n{reply}\n\n"
    "Chỉ viết một con số từ 1 đến 10."
)
_SCORE = re.compile(r"\b(10|[1-9])(?:[.,]\d+)?\b")


class JudgeConfig(StageConfig):
    kind: Literal["self", "openai", "reward_model", "vi_ratio", "rules"] = "self"
    backend: BackendConfig | None = Field(None, description="openai: the judge endpoint")
    reward_model: InputPath | None = Field(None, description="reward_model: a sequence-classification folder")
    max_new_tokens: int = Field(8, ge=1)
    max_char_run: int = Field(8, ge=1, description="rules: a longer run of one character scores as a loop")


class Config(StageConfig):
    prompts: InputPaths = Field(..., description="prompt sources in any vinaforge.chat format")
    backend: BackendConfig = Field(..., description="the policy that samples replies (kind: local, model: PATH)")
    n: int = Field(4, ge=2, description="replies sampled per prompt")
    sampling: SamplingConfig = SamplingConfig(temperature=0.8, top_p=0.95, max_new_tokens=128)
    judge: JudgeConfig = JudgeConfig()
    margin: float = Field(1.0, ge=0, description="keep a pair only if best - worst >= margin")
    limit: int | None = Field(None, ge=1)


def parse_score(text: str | None) -> float | None:
    """The first 1–10 number in a judge's answer, or None."""
    m = _SCORE.search(text or "")
    return float(m.group(1)) if m else None


Scorer = Callable[[list[dict], list[str]], list[float | None]]


def make_scorer(cfg: JudgeConfig, policy: Any) -> Scorer:
    """``scorer(prompt_messages, replies) -> scores`` for the configured judge."""
    if cfg.kind == "rules":
        from vinaforge.text.reply_score import reply_score

        return lambda _prompt, replies: [round(10 * reply_score(r, max_char_run=cfg.max_char_run), 3) for r in replies]
    if cfg.kind == "vi_ratio":
        from vinaforge.text.validate import valid_syllable_ratio

        return lambda _prompt, replies: [round(10 * valid_syllable_ratio(r), 3) if r.strip() else 0.0 for r in replies]
    if cfg.kind == "reward_model":
        if not cfg.reward_model:
            raise ValueError("judge.reward_model is required for judge.kind: reward_model")
        return _reward_model_scorer(cfg.reward_model)
    if cfg.kind == "openai":
        if cfg.backend is None:
            raise ValueError("judge.backend is required for judge.kind: openai")
        judge = cfg.backend.build()
    else:
        judge = policy

    def score(prompt: list[dict], replies: list[str]) -> list[float | None]:
        from vinaforge.generate import SamplingParams

        question = prompt[-1]["content"]
        asks = [[{"role": "user", "content": JUDGE_PROMPT.format(prompt=question, reply=r)}] for r in replies]
        out = judge.generate(asks, SamplingParams(max_new_tokens=cfg.max_new_tokens, temperature=0.0))
        return [parse_score(c.text) if c.ok else None for c in out]

    return score


def _reward_model_scorer(path: str) -> Scorer:
    """Scores from a reward-stage folder, through the one reward-model loader (it refuses a causal LM)."""
    from vinaforge.generate.reward import RewardModel

    rm = RewardModel(path)

    def score(prompt: list[dict], replies: list[str]) -> list[float | None]:
        return list(rm.score([[*prompt, {"role": "assistant", "content": r}] for r in replies]))

    return score


def _read_done(path: Path) -> dict[str, dict]:
    """Finished prompts of an earlier run; a half-written last line (a kill mid-write) is ignored."""
    done: dict[str, dict] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            done[rec["key"]] = rec
    return done


def _append(path: Path, rec: dict) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _key(messages: list[dict]) -> str:
    import hashlib

    return hashlib.sha1(json.dumps(messages, ensure_ascii=False, sort_keys=True).encode()).hexdigest()[:16]


def build_pairs(cfg: Config, out_dir: Path, *, policy: Any = None, scorer: Scorer | None = None) -> dict[str, Any]:
    """Sample, judge and pair every prompt (resuming); returns counts."""
    from vinaforge.chat import Preference, Rejected, read_prompts, write_jsonl
    from vinaforge.generate import group_samples
    from vinaforge.logs import console

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    res = read_prompts(cfg.prompts)
    prompts = res.kept[: cfg.limit] if cfg.limit else res.kept
    policy = policy or cfg.backend.build()
    scorer = scorer or make_scorer(cfg.judge, policy)
    samples_file, scores_file = out_dir / "samples.jsonl", out_dir / "scores.jsonl"
    sampled, scored = _read_done(samples_file), _read_done(scores_file)
    params = cfg.sampling.model_copy(update={"n": cfg.n}).params()
    generated = 0
    from rich.progress import Progress

    with Progress(console=console(), transient=True) as bar:
        task = bar.add_task("self-preference", total=len(prompts))
        for conv in prompts:
            key = _key(conv.messages)
            if key not in sampled:
                comps = group_samples(policy.generate([conv.messages], params), 1)[0]
                sampled[key] = {"key": key, "prompt": conv.messages, "replies": [c.text if c.ok else None for c in comps],
                                "errors": [c.error for c in comps if not c.ok]}  # fmt: skip
                _append(samples_file, sampled[key])
                generated += 1
            if key not in scored:
                replies = [r for r in sampled[key]["replies"] if r]
                scored[key] = {"key": key, "replies": replies, "scores": scorer(conv.messages, replies) if replies else []}
                _append(scores_file, scored[key])
            bar.advance(task)
    pairs, rejected = [], list(res.rejected)
    for conv in prompts:
        s = scored[_key(conv.messages)]
        valid = [(sc, r) for sc, r in zip(s["scores"], s["replies"], strict=True) if sc is not None]
        if len(valid) < 2:
            rejected.append(Rejected(f"prompt {_key(conv.messages)}", "fewer than two scored replies", s))
            continue
        best, worst = max(valid, key=lambda t: t[0]), min(valid, key=lambda t: t[0])
        if best[0] - worst[0] < cfg.margin or best[1].strip() == worst[1].strip():
            rejected.append(Rejected(f"prompt {_key(conv.messages)}",
                                     f"score gap {best[0] - worst[0]:.3g} below margin {cfg.margin}", s))  # fmt: skip
            continue
        pairs.append(Preference(conv.messages, [{"role": "assistant", "content": best[1]}],
                                [{"role": "assistant", "content": worst[1]}], conv.id,
                                {"chosen_score": best[0], "rejected_score": worst[0]}))  # fmt: skip
    write_jsonl(out_dir / "pairs.jsonl", pairs)
    write_jsonl(out_dir / "rejected.jsonl", rejected)
    counts = {"prompts_in": res.n_in, "prompts": len(prompts), "pairs": len(pairs), "rejected": len(rejected),
              "generated_this_run": generated, "judge": cfg.judge.kind}  # fmt: skip
    log.info("self-preference: %s", counts)
    return counts


def run(config: Config, ctx: StageContext) -> StageResult:
    counts = build_pairs(config, ctx.work_dir)
    report = (f"Self-preference: {counts['prompts']} prompts × {config.n} samples judged by `{config.judge.kind}` → "
              f"{counts['pairs']} pairs (margin ≥ {config.margin}); {counts['rejected']} prompts without a pair.")  # fmt: skip
    return StageResult(outputs={"pairs": "pairs.jsonl", "scores": "scores.jsonl", "rejected": "rejected.jsonl"},
                       metrics=counts, report=report)  # fmt: skip

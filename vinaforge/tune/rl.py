"""Policy optimisation from a reward (stage ``rl``, ``vinaforge tune rl``): GRPO, RLOO, online DPO.

The last step of the community loop: the policy samples replies to prompts, a reward scores them,
and the policy moves towards higher reward while a KL term keeps it near the reference model.
TRL 1.16 has no PPO trainer; its stable GRPO and RLOO trainers and the experimental online DPO
trainer do the optimisation here. Rewards, combined by weights:

- ``model``: a reward model trained by :mod:`vinaforge.tune.reward` (:class:`~vinaforge.generate.reward.RewardModel`);
- ``vietnamese``: the reply is Vietnamese (text core: language ID and the share of valid
  Vietnamese syllables);
- ``rules``: Vietnamese share × the reply's own bigram diversity (:mod:`vinaforge.text.reply_score`),
  so that a looping reply earns less than one that goes on;
- ``length``: the reply's syllable count lies in a band (smooth fall-off outside it);
- ``citations``: every ``[đoạn k]`` cited exists among the prompt's passages, or the reply is the
  fixed "Thật tiếc, …" refusal.

A NaN reward stops the run with a clear error. The report card gets reward, KL and length curves
and the rule-satisfaction and reward of greedy replies to held-out prompts before and after.
GPU users generate with vLLM through TRL's own switch (``use_vllm: true``; see docs/rlhf.md).

Hand-written: the rule rewards (Vietnamese-specific) and the glue; optimisation is TRL's.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vinaforge.recipe import InputPath, InputPaths
from vinaforge.stage import Figure, StageContext, StageResult
from vinaforge.tune.common import ModelFields, TrainSettings, TuneError

log = logging.getLogger(__name__)
RESUMABLE = True
CITATION_RE = re.compile(r"\[đoạn\s+(\d+)\]", re.IGNORECASE)
PASSAGE_RE = re.compile(r"^Đoạn\s+(\d+)\s*:", re.IGNORECASE | re.MULTILINE)
REFUSAL = "Thật tiếc"


class RewardSpec(BaseModel):
    """One reward term and its weight."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["model", "vietnamese", "rules", "length", "citations"]
    weight: float = 1.0
    model: InputPath | None = Field(None, description="kind: model — a folder written by the reward stage")
    min_syllables: int = Field(1, ge=0)
    max_syllables: int = Field(60, ge=1)

    @model_validator(mode="after")
    def _model_needs_path(self) -> RewardSpec:
        if self.kind == "model" and not self.model:
            raise ValueError("a reward of kind 'model' needs `model:` (the reward stage's output folder)")
        if self.min_syllables > self.max_syllables:
            raise ValueError("min_syllables must not exceed max_syllables")
        if self.weight <= 0:
            # every reward kind here is "higher is better": a negative weight trains toward what
            # the term penalises (a non-Vietnamese, uncited or wrong-length reply), zero does nothing
            raise ValueError(f"reward {self.kind!r} has weight {self.weight}; weights must be > 0 (every reward "
                             "here scores higher for better replies: a negative weight would train toward worse "
                             "ones; leave a term out to turn it off)")  # fmt: skip
        return self


class Config(ModelFields):
    """Stage ``rl``."""

    algorithm: Literal["grpo", "rloo", "online_dpo"] = "grpo"
    prompts: InputPaths = Field(..., min_length=1, description="prompts in any vinaforge.chat format")
    format: str = "auto"
    rewards: list[RewardSpec] = Field(..., min_length=1)
    num_generations: int = Field(4, ge=2, description="replies sampled per prompt (the group of GRPO/RLOO)")
    max_completion_length: int = Field(32, ge=1)
    temperature: float = Field(1.0, gt=0)
    beta: float = Field(0.04, ge=0, description="KL coefficient against the reference model (0 disables it)")
    eval_fraction: float = Field(0.2, ge=0, lt=1)
    eval_max_new_tokens: int = Field(32, ge=1)
    eval_samples: int = Field(1, ge=1, description="1: greedy replies; N: N sampled replies per held-out prompt")
    use_vllm: bool = Field(False, description="GPU only: generate with vLLM (TRL's switch)")
    training: TrainSettings = TrainSettings(learning_rate=1e-5, batch_size=4, max_steps=20)
    keep_checkpoints: bool = False


# ----------------------------------------------------------------------------- rule rewards


def _text(completion: Any) -> str:
    if isinstance(completion, list):  # conversational: [{"role": "assistant", "content": ...}]
        return "".join(m.get("content", "") for m in completion if isinstance(m, dict))
    return str(completion)


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, list):
        return "\n".join(m.get("content", "") for m in prompt if isinstance(m, dict))
    return str(prompt)


def vietnamese_score(text: str) -> float:
    """0–1: half the share of valid Vietnamese syllables, half whether language ID says Vietnamese."""
    from vinaforge.text import valid_syllable_ratio
    from vinaforge.text.langid import identify

    if not re.search(r"\w", text):
        return 0.0
    lang, _ = identify(text)
    return 0.5 * valid_syllable_ratio(text) + 0.5 * float(lang == "vi")


def length_score(text: str, lo: int, hi: int) -> float:
    """1 inside the syllable band, decaying smoothly with the relative distance outside it."""
    from vinaforge.text import count_syllables

    n = count_syllables(text)
    if lo <= n <= hi:
        return 1.0
    gap = (lo - n) / max(lo, 1) if n < lo else (n - hi) / hi
    return math.exp(-3 * gap)


def citation_score(prompt: str, reply: str) -> float:
    """1 when every cited passage exists (and at least one is cited) or the reply is the refusal."""
    if reply.strip().startswith(REFUSAL):
        return 1.0
    available = {int(k) for k in PASSAGE_RE.findall(prompt)}
    cited = [int(k) for k in CITATION_RE.findall(reply)]
    if not cited:
        return 0.0
    return sum(k in available for k in cited) / len(cited)


def make_reward_funcs(specs: list[RewardSpec], policy_tokenizer: Any = None) -> tuple[list, list[float]]:
    """TRL reward callables (``f(prompts, completions, **kw) -> list[float]``) and their weights."""
    from vinaforge.generate.reward import RewardError, RewardModel

    funcs, weights = [], []
    for spec in specs:
        if spec.kind == "model":
            rm = RewardModel(str(spec.model))
            if policy_tokenizer is not None:
                check_reward_tokenizer(policy_tokenizer, rm.tokenizer, str(spec.model))

            def model_reward(prompts, completions, _rm=rm, **kw):
                convs = [(p if isinstance(p, list) else [{"role": "user", "content": str(p)}])
                         + [{"role": "assistant", "content": _text(c)}] for p, c in zip(prompts, completions, strict=True)]  # fmt: skip
                return _rm.score(convs)

            fn = model_reward
        elif spec.kind == "vietnamese":
            def fn(prompts, completions, **kw):
                return [vietnamese_score(_text(c)) for c in completions]
            fn.__name__ = "vietnamese"
        elif spec.kind == "rules":
            from vinaforge.text.reply_score import reply_score

            def fn(prompts, completions, **kw):
                return [reply_score(_text(c)) for c in completions]
            fn.__name__ = "rules"
        elif spec.kind == "length":
            def fn(prompts, completions, _lo=spec.min_syllables, _hi=spec.max_syllables, **kw):
                return [length_score(_text(c), _lo, _hi) for c in completions]
            fn.__name__ = "length"
        else:
            def fn(prompts, completions, **kw):
                return [citation_score(_prompt_text(p), _text(c)) for p, c in zip(prompts, completions, strict=True)]
            fn.__name__ = "citations"

        def checked(prompts, completions, _fn=fn, **kw):
            values = _fn(prompts, completions, **kw)
            if any(v is None or not math.isfinite(v) for v in values):
                raise RewardError(f"reward {_fn.__name__!r} is NaN/inf for some completions; check the reward model")
            return values

        checked.__name__ = fn.__name__
        funcs.append(checked)
        weights.append(spec.weight)
    return funcs, weights


def check_reward_tokenizer(policy_tok: Any, reward_tok: Any, where: str) -> None:
    """Refuse a reward model that cannot read what the policy writes (its tokenizer turns it into unknowns).

    Rewards score decoded text, so different tokenizers are fine as long as the reward model's one
    covers the policy's characters; where it does not, the reward would be noise.
    """
    if type(policy_tok) is type(reward_tok) and policy_tok.get_vocab() == reward_tok.get_vocab():
        return
    probe = "Thủ đô của Việt Nam là Hà Nội; phở bò, bánh mì và cà phê sữa đá rất ngon."
    unk = reward_tok.unk_token_id
    ids = reward_tok(probe, add_special_tokens=False)["input_ids"]
    if unk is not None and ids and sum(i == unk for i in ids) / len(ids) > 0.05:
        raise TuneError(f"rewards: the reward model {where} uses a tokenizer that maps Vietnamese text to unknown "
                        "tokens; it cannot score this policy's replies — train it on a tokenizer that covers them")  # fmt: skip


# ----------------------------------------------------------------------------- training


def _trainer(cfg: Config, model, tok, funcs, weights, train_rows, out_dir: Path, seed: int, peft_cfg):
    from vinaforge.tune.data import to_dataset

    kw = cfg.training.trl_kwargs(out_dir, seed=seed, has_eval=False)
    kw.pop("max_length", None)
    common = dict(num_generations=cfg.num_generations, max_completion_length=cfg.max_completion_length,
                  temperature=cfg.temperature, beta=cfg.beta, remove_unused_columns=False)  # fmt: skip
    ds = to_dataset(train_rows)
    if cfg.algorithm == "grpo":
        from trl import GRPOConfig, GRPOTrainer

        args = GRPOConfig(**kw, **common, reward_weights=weights, use_vllm=cfg.use_vllm, log_completions=False)
        return GRPOTrainer(model=model, reward_funcs=funcs, args=args, train_dataset=ds, processing_class=tok,
                           peft_config=peft_cfg)  # fmt: skip
    if cfg.algorithm == "rloo":
        from trl import RLOOConfig, RLOOTrainer

        args = RLOOConfig(**kw, **common, reward_weights=weights, use_vllm=cfg.use_vllm)
        return RLOOTrainer(model=model, reward_funcs=funcs, args=args, train_dataset=ds, processing_class=tok,
                           peft_config=peft_cfg)  # fmt: skip
    from trl.experimental.online_dpo import OnlineDPOConfig, OnlineDPOTrainer

    args = OnlineDPOConfig(**kw, max_new_tokens=cfg.max_completion_length, temperature=cfg.temperature,
                           beta=cfg.beta or 0.1, reward_weights=weights, use_vllm=cfg.use_vllm)  # fmt: skip
    return OnlineDPOTrainer(model=model, reward_funcs=funcs, args=args, train_dataset=ds, processing_class=tok,
                            peft_config=peft_cfg)  # fmt: skip


def score_replies(prompts: list[list[dict]], replies: list[str], funcs, weights) -> dict[str, float]:
    """Mean of each reward term and of the weighted total over the replies."""
    out: dict[str, float] = {}
    total = [0.0] * len(replies)
    for fn, w in zip(funcs, weights, strict=True):
        vals = fn(prompts, [[{"role": "assistant", "content": r}] for r in replies])
        out[fn.__name__] = round(sum(vals) / len(vals), 4)
        total = [t + w * v for t, v in zip(total, vals, strict=True)]
    out["weighted_total"] = round(sum(total) / len(total), 4)
    return out


def eval_replies(loaded, msgs: list[list[dict]], cfg: Config) -> tuple[list[list[dict]], list[str]]:
    """Replies of the policy to held-out prompts: greedy, or ``eval_samples`` seeded samples each."""
    from vinaforge.generate import SamplingParams
    from vinaforge.generate.local import LocalBackend

    model, tok = loaded.model, loaded.tokenizer
    side, use_cache, was_training = tok.padding_side, model.config.use_cache, model.training
    model.config.use_cache = True
    try:
        n = cfg.eval_samples
        params = SamplingParams(max_new_tokens=cfg.eval_max_new_tokens, n=n, seed=0,
                                temperature=cfg.temperature if n > 1 else 0.0)  # fmt: skip
        outs = LocalBackend(model, tok, batch_size=8).generate(msgs, params)
    finally:
        tok.padding_side, model.config.use_cache = side, use_cache
        model.train(was_training)
    return [msgs[c.request_index] for c in outs], [(c.text or "").strip() for c in outs]


def train_rl(cfg: Config, out_dir: Path, *, seed: int = 0) -> dict[str, Any]:
    """Optimise the policy; save ``out_dir/final`` with its chat template; returns the summary."""
    from vinaforge.chat import read_prompts, write_jsonl
    from vinaforge.io import atomic_write_json
    from vinaforge.tune.common import (
        latest_checkpoint,
        load_model_for_training,
        peft_config_for,
        save_tuned,
        set_threads,
    )
    from vinaforge.tune.data import _in_eval

    set_threads(cfg.training.threads)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    res = read_prompts(list(cfg.prompts), format=cfg.format, allow_empty=True)
    write_jsonl(out_dir / "rejected.jsonl", res.rejected)
    if not res.kept:
        raise TuneError(f"prompts {', '.join(map(str, cfg.prompts))}: empty prompt set ({res.n_in} records read, "
                        f"{len(res.rejected)} rejected)")  # fmt: skip
    held = [c for c in res.kept if _in_eval(c, cfg.eval_fraction)]
    train = [c for c in res.kept if not _in_eval(c, cfg.eval_fraction)] or res.kept
    loaded = load_model_for_training(cfg, peft=False)
    peft_cfg = peft_config_for(loaded, cfg)
    funcs, weights = make_reward_funcs(cfg.rewards, loaded.tokenizer)
    eval_msgs = [c.messages for c in held] or [c.messages for c in train[:8]]
    before_msgs, before_replies = eval_replies(loaded, eval_msgs, cfg)
    before = score_replies(before_msgs, before_replies, funcs, weights)
    trainer = _trainer(cfg, loaded.model, loaded.tokenizer, funcs, weights,
                       [{"prompt": c.messages} for c in train], out_dir / "checkpoints", seed, peft_cfg)  # fmt: skip
    trainer.train(resume_from_checkpoint=latest_checkpoint(out_dir / "checkpoints"))
    loaded.model = trainer.model
    after_msgs, after_replies = eval_replies(loaded, eval_msgs, cfg)
    after = score_replies(after_msgs, after_replies, funcs, weights)
    save_tuned(loaded, out_dir / "final", merge=cfg.merge_lora,
               meta={"tuned": {"method": f"rl-{cfg.algorithm}", "mode": cfg.mode, "template": loaded.template.name}})  # fmt: skip
    history = trainer.state.log_history
    kls = [h["kl"] for h in history if "kl" in h]
    summary = {
        "method": "rl", "algorithm": cfg.algorithm, "mode": cfg.mode, "steps": trainer.state.global_step,
        "prompts": {"in": res.n_in, "train": len(train), "eval": len(held), "rejected": len(res.rejected)},
        "rewards": [s.model_dump(mode="json") for s in cfg.rewards], "beta": cfg.beta,
        "eval_before": before, "eval_after": after, "max_kl": max(kls) if kls else None,
        "final_kl": kls[-1] if kls else None, "examples": [
            {"prompt": m[-1]["content"], "before": b, "after": a}
            for m, b, a in zip(before_msgs[:: cfg.eval_samples][:5], before_replies[:: cfg.eval_samples],
                               after_replies[:: cfg.eval_samples], strict=False)
        ],
    }  # fmt: skip
    atomic_write_json(out_dir / "history.json", history)
    atomic_write_json(out_dir / "summary.json", summary)
    if not cfg.keep_checkpoints:
        shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    return summary


def plot_curves(history: list[dict], path: Path) -> Path | None:
    """Reward, KL and completion length per step (the report card's RL figure)."""
    keys = [("reward", "reward"), ("kl", "KL to reference"), ("completions/mean_length", "reply length (tokens)")]
    series = [(label, [(h["step"], h[k]) for h in history if k in h]) for k, label in keys]
    series = [(label, pts) for label, pts in series if pts]
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(series), figsize=(3.4 * len(series), 3))
    for ax, (label, pts) in zip([axes] if len(series) == 1 else axes, series, strict=True):
        xs, ys = zip(*pts, strict=True)
        ax.plot(xs, ys)
        ax.set_title(label)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def report_section(summary: dict) -> str:
    from vinaforge.tune.common import _cell

    b, a = summary["eval_before"], summary["eval_after"]
    lines = [f"**RL ({summary['algorithm']})**", "",
             f"{summary['steps']} steps on {summary['prompts']['train']} prompts, KL coefficient {summary['beta']}; "
             f"KL to the reference at the end {_num(summary['final_kl'])} (max {_num(summary['max_kl'])}).", "",
             "Greedy replies to held-out prompts, mean reward terms:", "",
             "| reward | before | after |", "|---|---:|---:|"]  # fmt: skip
    lines += [f"| {k} | {b[k]} | {a.get(k)} |" for k in b]
    lines += ["", "| prompt | before | after |", "|---|---|---|"]
    lines += [f"| {_cell(e['prompt'])} | {_cell(e['before'])} | {_cell(e['after'])} |" for e in summary["examples"]]
    return "\n".join(lines) + "\n"


def run(config: Config, ctx: StageContext) -> StageResult:
    summary = train_rl(config, ctx.work_dir, seed=ctx.seed)
    history = json.loads((ctx.work_dir / "history.json").read_text(encoding="utf-8"))
    figures = [Figure("curves.png", "Reward, KL to the reference and reply length per step.")] \
        if plot_curves(history, ctx.work_dir / "curves.png") else []  # fmt: skip
    metrics = {"reward_before": summary["eval_before"]["weighted_total"],
               "reward_after": summary["eval_after"]["weighted_total"], "final_kl": summary["final_kl"],
               "steps": summary["steps"]}  # fmt: skip
    return StageResult(outputs={"model": "final", "summary": "summary.json"}, metrics=metrics,
                       report=report_section(summary), figures=figures)  # fmt: skip

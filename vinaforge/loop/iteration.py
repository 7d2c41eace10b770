"""One iteration of the Vietnamese LLMs community loop, resumable step by step.

1. **prompts** — read prompts (the collection app's export or any :mod:`vinaforge.chat` file);
2. **sample** — ``samples`` replies per prompt from the current policy (:mod:`vinaforge.generate`);
3. **rank** — by the current reward model, by an LLM judge scoring each reply against a Vietnamese
   rubric, by simulated raters (each ranks by :func:`vinaforge.text.reply_score.reply_score` plus
   their own noise, one ranked list per rater, as the collection app's export has one per person;
   for offline recipes and tests, never mistaken for people: ``ranked_by`` says so), or by people: replies are pushed to a running collection app (``app_url`` +
   ``app_token_env``) and the loop stops until enough rankings exist;
4. **rankings** — ranked lists ``{prompt, replies, ranks}`` (from the ranker, or the app's export);
5. **reward** — train or update the reward model on them (:mod:`vinaforge.tune.reward`);
6. **rl** — optimise the policy against it (:mod:`vinaforge.tune.rl`);
7. **judge** — the new policy against the old one with the pairwise LLM judge, Elo and
   Bradley–Terry (:mod:`vinaforge.eval.judge`), when a judge is configured.

Each step writes into ``steps/<n>-<name>/`` and marks itself done only when finished, so a killed
iteration resumes at the first unfinished step. Hand-written orchestration; each step is a library
call of its own stage.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vinaforge.generate import BackendConfig, SamplingConfig
from vinaforge.io import atomic_write_json
from vinaforge.recipe import InputPath, InputPaths
from vinaforge.stage import StageConfig

log = logging.getLogger(__name__)
STEPS = ("prompts", "sample", "rank", "rankings", "reward", "rl", "judge")
RUBRIC = (
    "Bạn là giám khảo. Hãy chấm câu trả lời sau cho câu hỏi của người dùng trên thang 1–10, dựa trên: đúng "
    "sự thật, hữu ích, viết bằng tiếng Việt tự nhiên, ngắn gọn. Chỉ trả lời bằng một số.\n\n"
    "Câu hỏi:\n{prompt}\n\nCâu trả lời:\n{reply}\n\nĐiểm:"
)


class LoopError(RuntimeError):
    """A loop step that cannot go on; the message says which step and what to do."""


class WaitingForRankings(LoopError):
    """Replies were pushed to the collection app; the loop resumes once people ranked them."""


class RankerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["reward_model", "judge", "simulated", "app"] = "reward_model"
    reward_model: InputPath | None = Field(None, description="kind reward_model: the current reward model folder")
    judge: BackendConfig | None = Field(None, description="kind judge: the model that scores replies 1–10")
    rubric: str = RUBRIC
    app_url: str | None = Field(None, description="kind app: base URL of a running collection app")
    app_token_env: str | None = Field(None, description="kind app: env var holding an admin API token")
    min_rankings: int = Field(3, ge=1, description="kind app: rankings per prompt before it counts")
    raters: int = Field(3, ge=1, description="kind simulated: raters, each ranking every prompt once")
    noise: float = Field(0.15, ge=0, description="kind simulated: sd of each rater's noise on the 0–1 rule score")

    @model_validator(mode="after")
    def _complete(self) -> RankerConfig:
        need = {"reward_model": "reward_model", "judge": "judge", "app": "app_url"}.get(self.kind)
        if need and getattr(self, need) is None:
            raise ValueError(f"ranker kind {self.kind!r} needs `{need}`")
        if self.kind == "app" and not self.app_token_env:
            raise ValueError("ranker kind 'app' needs `app_token_env` (the name of the env var with the API token)")
        return self


class Config(StageConfig):
    """One loop iteration (stage ``loop``; ``vinaforge loop run --config``)."""

    policy: InputPath = Field(..., description="the current policy (HF folder with its chat template)")
    prompts: InputPaths = Field(..., min_length=1)
    format: str = "auto"
    max_prompts: int | None = Field(None, ge=1)
    samples: int = Field(4, ge=2, description="replies sampled per prompt (a ranking needs at least two)")
    sampling: SamplingConfig = SamplingConfig(temperature=0.9, top_p=0.95, max_new_tokens=64)
    ranker: RankerConfig
    reward: dict[str, Any] = Field(default_factory=dict, description="overrides of the reward stage's settings")
    rl: dict[str, Any] = Field(default_factory=dict, description="overrides of the rl stage's settings")
    judge: BackendConfig | str | None = Field(None, description="pairwise judge of new vs old policy (optional)")
    judge_settings: dict[str, Any] = Field(
        default_factory=lambda: {"limit": 2, "answer_max_new_tokens": 128, "judge_max_new_tokens": 64},
        description="other settings of the judge stage (questions, categories, limit, ...)",
    )


def _done(step_dir: Path) -> bool:
    return (step_dir / ".done").is_file()


def _finish(step_dir: Path, info: dict) -> None:
    atomic_write_json(step_dir / ".done", {"finished": time.time(), **info})


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    from vinaforge.chat import write_jsonl

    write_jsonl(path, rows)


# ----------------------------------------------------------------------------- steps


def step_prompts(cfg: Config, out: Path) -> dict:
    from vinaforge.chat import read_prompts

    res = read_prompts(list(cfg.prompts), format=cfg.format, allow_empty=True)
    if not res.kept:
        raise LoopError(f"prompts: empty prompt set ({res.n_in} records read, {len(res.rejected)} rejected)")
    kept = res.kept[: cfg.max_prompts] if cfg.max_prompts else res.kept
    _write_jsonl(out / "prompts.jsonl", [{"id": c.id or f"p{i}", "messages": c.messages} for i, c in enumerate(kept)])
    _write_jsonl(out / "rejected.jsonl", res.rejected)
    return {"prompts": len(kept), "rejected": len(res.rejected)}


def step_sample(cfg: Config, prompts: Path, out: Path) -> dict:
    from vinaforge.generate import load_backend

    rows = _read_jsonl(prompts)
    params = cfg.sampling.params()
    params.n = cfg.samples
    backend = load_backend(str(cfg.policy))
    outs = backend.generate([r["messages"] for r in rows], params)
    samples = []
    for i, r in enumerate(rows):
        replies = [c.text.strip() for c in outs if c.request_index == i and c.ok and c.text and c.text.strip()]
        samples.append({"id": r["id"], "messages": r["messages"], "replies": list(dict.fromkeys(replies))})
    _write_jsonl(out / "samples.jsonl", samples)
    return {"prompts": len(samples), "replies": sum(len(s["replies"]) for s in samples), **backend.usage.to_dict()}


def _score_with_judge(cfg: RankerConfig, samples: list[dict]) -> list[list[float]]:
    from vinaforge.generate import SamplingParams, load_backend

    backend = load_backend(cfg.judge)
    reqs, index = [], []
    for i, s in enumerate(samples):
        for j, reply in enumerate(s["replies"]):
            reqs.append([{"role": "user", "content": cfg.rubric.format(prompt=s["messages"][-1]["content"], reply=reply)}])
            index.append((i, j))
    outs = backend.generate(reqs, SamplingParams(max_new_tokens=8))
    scores = [[float("nan")] * len(s["replies"]) for s in samples]
    for (i, j), c in zip(index, outs, strict=True):
        m = re.search(r"\d+(?:[.,]\d+)?", c.text or "")
        scores[i][j] = float(m.group().replace(",", ".")) if m else float("nan")
    return scores


def _simulated_rankings(cfg: RankerConfig, samples: list[dict], seed: int) -> tuple[list[dict], int]:
    """One ranked list per (prompt, rater): the rule score plus the rater's Gaussian noise."""
    import random

    from vinaforge.text.reply_score import reply_score

    lists, unusable = [], 0
    for i, s in enumerate(samples):
        base = [reply_score(x) for x in s["replies"]]
        for rater in range(cfg.raters):
            rng = random.Random(f"{seed}-{i}-{rater}")
            noisy = [round(b + rng.gauss(0.0, cfg.noise), 4) for b in base]
            if len(set(noisy)) < 2:
                unusable += 1
                continue
            order = sorted(zip(s["replies"], noisy, strict=True), key=lambda p: -p[1])
            lists.append({"prompt": s["messages"], "replies": [x for x, _ in order],
                          "ranks": list(range(1, len(order) + 1)), "scores": [v for _, v in order],
                          "ranked_by": f"simulated-rater-{rater}"})  # fmt: skip
    return lists, unusable


def step_rank(cfg: Config, samples_path: Path, out: Path, seed: int = 0) -> dict:
    samples = [s for s in _read_jsonl(samples_path) if len(s["replies"]) >= 2]
    if not samples:
        raise LoopError("rank: no prompt has two distinct replies to rank; raise samples or temperature")
    r = cfg.ranker
    if r.kind == "app":
        from vinaforge.loop.app import push_replies

        pushed = push_replies(r.app_url, os.environ.get(r.app_token_env or "", ""), samples, Path(str(cfg.policy)).name or str(cfg.policy))
        atomic_write_json(out / "pushed.json", pushed)
        stored = sum(i.get("parent_id") is not None for i in pushed.get("items", []))
        return {"pushed": stored, "ranked_by": "people", **pushed.get("counts", {})}
    if r.kind == "simulated":
        lists, unusable = _simulated_rankings(r, samples, seed)
        _write_jsonl(out / "rankings.jsonl", lists)
        return {"ranked": len(lists), "unusable": unusable, "ranked_by": f"{r.raters} simulated raters"}
    if r.kind == "reward_model":
        from vinaforge.generate.reward import RewardModel

        rm = RewardModel(str(r.reward_model))
        scores = [rm.score([[*s["messages"], {"role": "assistant", "content": x}] for x in s["replies"]]) for s in samples]
    else:
        scores = _score_with_judge(r, samples)
    lists, unusable = [], 0
    for s, sc in zip(samples, scores, strict=True):
        pairs = [(x, v) for x, v in zip(s["replies"], sc, strict=True) if v == v]  # drop NaN (unparsable judge)
        if len(pairs) < 2 or len({v for _, v in pairs}) < 2:
            unusable += 1
            continue
        order = sorted(pairs, key=lambda p: -p[1])
        ranks = [1 + sorted({-v for _, v in order}).index(-v) for _, v in order]
        lists.append({"prompt": s["messages"], "replies": [x for x, _ in order], "ranks": ranks,
                      "scores": [v for _, v in order], "ranked_by": r.kind})  # fmt: skip
    _write_jsonl(out / "rankings.jsonl", lists)
    return {"ranked": len(lists), "unusable": unusable, "ranked_by": r.kind}


def step_rankings(cfg: Config, rank_dir: Path, out: Path) -> dict:
    if cfg.ranker.kind == "app":
        from vinaforge.loop.app import fetch_rankings

        pushed = json.loads((rank_dir / "pushed.json").read_text(encoding="utf-8"))
        token = os.environ.get(cfg.ranker.app_token_env or "", "")
        lists = fetch_rankings(cfg.ranker.app_url, token, pushed, cfg.ranker.min_rankings)
        if not lists:
            raise WaitingForRankings(
                f"rankings: replies are in the collection app at {cfg.ranker.app_url}; no prompt has "
                f"{cfg.ranker.min_rankings} rankings yet — run the loop again once people ranked them"
            )
    else:
        lists = _read_jsonl(rank_dir / "rankings.jsonl")
    _write_jsonl(out / "rankings.jsonl", lists)
    return {"ranked_lists": len(lists)}


def step_reward(cfg: Config, rankings: Path, out: Path, seed: int) -> dict:
    from vinaforge.tune.reward import Config as RewardConfig
    from vinaforge.tune.reward import train_reward

    init = cfg.ranker.reward_model if cfg.ranker.kind == "reward_model" else cfg.policy
    settings = {"model": str(init), "mode": "full", **cfg.reward}
    settings["data"] = [str(rankings), *settings.get("data", [])]
    summary = train_reward(RewardConfig(**settings), out, seed=seed)
    return {"eval_accuracy": (summary.get("eval") or {}).get("accuracy"), "pairs": summary["pairs_in"]}


def step_rl(cfg: Config, prompts: Path, reward_model: Path, out: Path, seed: int) -> dict:
    from vinaforge.tune.rl import Config as RLConfig
    from vinaforge.tune.rl import train_rl

    settings = {"model": str(cfg.policy), "mode": "full", "prompts": [str(prompts)], **cfg.rl}
    settings["rewards"] = [{"kind": "model", "model": str(reward_model)}, *settings.get("rewards", [])]
    summary = train_rl(RLConfig(**settings), out, seed=seed)
    return {"reward_before": summary["eval_before"]["weighted_total"],
            "reward_after": summary["eval_after"]["weighted_total"], "final_kl": summary["final_kl"]}  # fmt: skip


def step_judge(cfg: Config, new_policy: Path, out: Path) -> dict:
    from vinaforge.eval.judge.pipeline import JudgeConfig, run_judge_pipeline

    jc = JudgeConfig(models={"old": str(cfg.policy), "new": str(new_policy)}, judge=cfg.judge,
                     **cfg.judge_settings)  # fmt: skip
    ratings = run_judge_pipeline(jc, out, progress=False)
    return {"ratings": _compact_ratings(ratings)}


def _compact_ratings(ratings: dict[str, Any]) -> dict[str, Any]:
    """The headline of the judge's ratings (Elo / Bradley–Terry per model), small enough for a report row."""
    keep = {}
    for key in ("elo", "bt", "win_rate", "totals"):
        if key in ratings:
            keep[key] = ratings[key]
    return keep or {k: ratings[k] for k in list(ratings)[:4]}


def run_iteration(cfg: Config, work: Path, *, seed: int = 0) -> dict[str, Any]:
    """Run (or resume) every step; returns each step's figures. Raises :class:`WaitingForRankings`."""
    work = Path(work)
    dirs = {name: work / "steps" / f"{i + 1}-{name}" for i, name in enumerate(STEPS)}
    figures: dict[str, Any] = {}
    for name, d in dirs.items():
        if name == "judge" and cfg.judge is None:
            continue
        if _done(d):
            figures[name] = json.loads((d / ".done").read_text(encoding="utf-8"))
            log.info("loop: step %s already done", name)
            continue
        d.mkdir(parents=True, exist_ok=True)
        log.info("loop: step %s", name)
        if name == "prompts":
            info = step_prompts(cfg, d)
        elif name == "sample":
            info = step_sample(cfg, dirs["prompts"] / "prompts.jsonl", d)
        elif name == "rank":
            info = step_rank(cfg, dirs["sample"] / "samples.jsonl", d, seed)
        elif name == "rankings":
            info = step_rankings(cfg, dirs["rank"], d)
        elif name == "reward":
            info = step_reward(cfg, dirs["rankings"] / "rankings.jsonl", d, seed)
        elif name == "rl":
            info = step_rl(cfg, dirs["prompts"] / "prompts.jsonl", dirs["reward"] / "final", d, seed)
        else:
            info = step_judge(cfg, dirs["rl"] / "final", d)
        _finish(d, info)
        figures[name] = info
    return figures


def report_section(figures: dict[str, Any]) -> str:
    lines = ["**Community loop (one iteration)**", "", "| step | figures |", "|---|---|"]
    for name in STEPS:
        if name in figures:
            info = {k: v for k, v in figures[name].items() if k != "finished"}
            lines.append(f"| {name} | {json.dumps(info, ensure_ascii=False)[:300]} |")
    return "\n".join(lines) + "\n"

"""Stage ``loop``: one iteration of the community loop inside a recipe (see :mod:`.iteration`).

Its outputs are linked at the top of the stage folder (``@loop/policy``, ``@loop/reward_model``,
``@loop/rankings.jsonl``) so later stages can name them.
"""

from __future__ import annotations

from vinaforge.io import link_tree
from vinaforge.loop.iteration import Config, WaitingForRankings, report_section, run_iteration
from vinaforge.stage import StageContext, StageResult

RESUMABLE = True
__all__ = ["Config", "run"]


def run(config: Config, ctx: StageContext) -> StageResult:
    try:
        figures = run_iteration(config, ctx.work_dir, seed=ctx.seed)
    except WaitingForRankings as err:  # not a failure: people have to rank first
        raise RuntimeError(str(err)) from None
    outputs = {"policy": "policy", "reward_model": "reward_model", "rankings": "rankings.jsonl"}
    steps = {"policy": "steps/6-rl/final", "reward_model": "steps/5-reward/final",
             "rankings.jsonl": "steps/4-rankings/rankings.jsonl"}  # fmt: skip
    for name, src in steps.items():
        link_tree(ctx.work_dir / src, ctx.work_dir / name)
    metrics = {k: v for name in ("reward", "rl") for k, v in (figures.get(name) or {}).items() if k != "finished"}
    return StageResult(outputs=outputs, metrics=metrics, report=report_section(figures))

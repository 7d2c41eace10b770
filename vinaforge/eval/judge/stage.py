"""The ``judge`` stage: pairwise LLM-as-judge of several models, with Elo and Bradley–Terry ratings.

Its config is :class:`~vinaforge.eval.judge.pipeline.JudgeConfig`, the same one that
``vinaforge eval judge all --config`` reads. Answers and judgments are appended to files in the
stage folder as they come, so an interrupted stage resumes where it stopped (``RESUMABLE``).
The report card gets the leaderboard, the judge's position bias and consistency, and the plot.

Hand-written glue over :mod:`vinaforge.eval.judge.pipeline`.
"""

from __future__ import annotations

from vinaforge.eval.judge.pipeline import JudgeConfig
from vinaforge.stage import Figure, StageContext, StageResult

RESUMABLE = True


class Config(JudgeConfig):
    """Settings of the ``judge`` stage (see :class:`JudgeConfig`)."""


def run(config: Config, ctx: StageContext) -> StageResult:
    from vinaforge.eval.judge.pipeline import run_judge_pipeline
    from vinaforge.eval.judge.report import (
        FIGURE_FILE,
        GAMES_FILE,
        LEADERBOARD_FILE,
        RATINGS_FILE,
        leaderboard_markdown,
    )

    ratings = run_judge_pipeline(config, ctx.work_dir)
    counts = ratings.get("counts", {})
    metrics = {f"bt_{m}": round(v, 2) for m, v in ratings.get("bt", {}).items()}
    metrics.update({f"elo_{m}": round(v, 2) for m, v in ratings.get("elo", {}).items()})
    metrics.update({k: counts[k] for k in ("games", "games_rated", "consistency", "first_position_share")
                    if k in counts})  # fmt: skip
    figures = [Figure(FIGURE_FILE, "LLM-as-judge ratings (Bradley–Terry, 95% bootstrap intervals).")] if (
        ctx.work_dir / FIGURE_FILE
    ).is_file() else []
    return StageResult(
        outputs={"ratings": RATINGS_FILE, "leaderboard": LEADERBOARD_FILE, "games": GAMES_FILE,
                 "answers": "answers", "judgments": "judgments.jsonl"},  # fmt: skip
        metrics=metrics,
        report=leaderboard_markdown(ratings, heading="###"),  # the engine adds the figure below it
        figures=figures,
    )

"""Auto-evaluation of merges: try a small grid of weights or λs, evaluate each, keep the best.

Each candidate is the merge config with some keys set (``{"chat_vector.lam": 0.5}``,
``{"models.0.parameters.weight": 0.7}``). It is merged into ``candidates/<i>/model`` and
evaluated by the eval stage itself (:func:`vinaforge.eval.stage.run`: bits per byte on
held-out Vietnamese, the chosen benchmarks, and whatever else that stage is configured to do),
so a sweep scores candidates exactly as the ``eval`` stage would. With ``judge`` settings (a judge
model or endpoint), all candidates also go through one pairwise LLM-as-judge run (the ``judge``
stage) and ``select: judge`` keeps the best Bradley–Terry rating. Finished candidates are kept
with their scores, so an interrupted sweep resumes where it stopped. The winner's folder is
renamed to the output; the others are deleted unless ``keep_candidates``.

Hand-written: the grid, the bookkeeping and the choice; merging and scoring are reused.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vinaforge.io import atomic_write_json
from vinaforge.merge.checks import MergeInputError
from vinaforge.stage import StageContext

log = logging.getLogger(__name__)


def set_dotted(data: dict, key: str, value: Any) -> None:
    """``set_dotted(d, "models.0.parameters.weight", 0.7)``; a missing last key is created."""
    parts = key.split(".")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        nxt = node[int(part)] if isinstance(node, list) else node.get(part)
        if nxt is None:
            if isinstance(node, list):
                raise MergeInputError(f"sweep.grid.{key}: {'.'.join(parts[: i + 1])} does not exist")
            nxt = node[part] = {}
        node = nxt
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise MergeInputError(f"sweep.grid.{key}: {'.'.join(parts[:-1])} is not a mapping or list")


def candidate_configs(config) -> list[tuple[dict[str, float], Any]]:
    """Each combination of the grid's values, as ``(values, Config)``."""
    from pydantic import ValidationError

    grid = config.sweep.grid
    base = config.model_dump(mode="python", exclude={"sweep"}, exclude_none=True)
    out = []
    for combo in itertools.product(*grid.values()):
        values = dict(zip(grid, combo, strict=True))
        data = json.loads(json.dumps(base))
        for key, value in values.items():
            try:
                set_dotted(data, key, value)
            except (KeyError, IndexError, ValueError) as err:
                raise MergeInputError(f"sweep.grid.{key}: no such key in the merge config ({err})") from None
        try:
            out.append((values, type(config).model_validate(data)))
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise MergeInputError(f"sweep.grid: value {values} is invalid: {where}: {first['msg']}") from None
    return out


@dataclass
class SweepResult:
    rows: list[dict[str, Any]]
    best: int
    select: str
    lower_is_better: bool
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)


def _evaluate(model_dir: Path, eval_settings: dict, ctx: StageContext, work: Path) -> dict[str, float]:
    from vinaforge.eval import stage as eval_stage

    eval_cfg = eval_stage.Config.model_validate({"model": str(model_dir), **eval_settings})
    sub = StageContext(
        name=f"{ctx.name}-{work.parent.name}", kind="eval", run_dir=ctx.run_dir, work_dir=work,
        final_dir=work, upstream=ctx.upstream, log=ctx.log, seed=ctx.seed,
    )  # fmt: skip
    work.mkdir(parents=True, exist_ok=True)
    return dict(eval_stage.run(eval_cfg, sub).metrics)


def _judge(candidates: dict[str, Path], judge_settings: dict, ctx: StageContext, work: Path) -> dict[str, float]:
    """All candidates in one pairwise LLM-as-judge run; their Bradley–Terry ratings by candidate name."""
    from vinaforge.eval.judge import stage as judge_stage

    cfg = judge_stage.Config.model_validate({"models": {k: str(v) for k, v in candidates.items()}, **judge_settings})
    work.mkdir(parents=True, exist_ok=True)
    sub = StageContext(name=f"{ctx.name}-judge", kind="judge", run_dir=ctx.run_dir, work_dir=work, final_dir=work,
                       upstream=ctx.upstream, log=ctx.log, seed=ctx.seed)  # fmt: skip
    metrics = judge_stage.run(cfg, sub).metrics
    return {name: float(metrics[f"bt_{name}"]) for name in candidates if f"bt_{name}" in metrics}


def run_sweep(config, out_dir: Path, ctx: StageContext) -> SweepResult:
    """Merge and evaluate every candidate, keep the best as ``out_dir``."""
    from vinaforge.eval.report import lower_is_better
    from vinaforge.merge.config import merge_models

    sweep = config.sweep
    root = ctx.work_dir / "candidates"
    rows: list[dict[str, Any]] = []
    metrics: dict[str, dict[str, float]] = {}
    candidates = candidate_configs(config)
    for i, (values, cand) in enumerate(candidates):
        folder = root / f"{i:02d}"
        score_file = folder / "score.json"
        if score_file.is_file() and (folder / "model").is_dir():
            log.info("candidate %d/%d %s: reusing its earlier score", i + 1, len(candidates), values)
            scores = json.loads(score_file.read_text(encoding="utf-8"))
        else:
            log.info("candidate %d/%d: %s", i + 1, len(candidates), values)
            if (folder / "model").exists():
                shutil.rmtree(folder / "model")
            merge_models(cand, folder / "model", seed=ctx.seed)
            scores = _evaluate(folder / "model", sweep.eval, ctx, folder / "eval") if sweep.eval else {}
            atomic_write_json(score_file, scores)
        rows.append({"candidate": i, **values})
        metrics[str(i)] = scores
    if sweep.judge is not None:
        ratings = _judge({f"c{i:02d}": root / f"{i:02d}" / "model" for i in range(len(rows))}, sweep.judge, ctx,
                         ctx.work_dir / "judge")  # fmt: skip
        for i in range(len(rows)):
            metrics[str(i)]["judge"] = ratings.get(f"c{i:02d}", float("-inf"))
    for i, row in enumerate(rows):
        if sweep.select not in metrics[str(i)]:
            raise MergeInputError(f"sweep.select: metric {sweep.select!r} is not among the candidates' scores: "
                                  f"{', '.join(sorted(metrics[str(i)]))}")  # fmt: skip
        row[sweep.select] = metrics[str(i)][sweep.select]
    lower = lower_is_better(sweep.select)
    pick = min if lower else max
    best = pick(range(len(rows)), key=lambda j: rows[j][sweep.select])
    log.info("best candidate: %d %s (%s = %.4f)", best, {k: rows[best][k] for k in sweep.grid},
             sweep.select, rows[best][sweep.select])  # fmt: skip
    best_dir = root / f"{best:02d}" / "model"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(best_dir, out_dir)
    if not sweep.keep_candidates:
        for i in range(len(rows)):
            shutil.rmtree(root / f"{i:02d}" / "model", ignore_errors=True)
    return SweepResult(rows, best, sweep.select, lower, metrics)


def sweep_markdown(result: SweepResult, grid_keys: list[str]) -> str:
    head = ["candidate", *grid_keys, result.select]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in result.rows:
        mark = " **(kept)**" if row["candidate"] == result.best else ""
        cells = [f"{row['candidate']}{mark}", *(f"{row[k]:g}" for k in grid_keys), f"{row[result.select]:.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    better = "lower" if result.lower_is_better else "higher"
    return "\n".join(lines) + f"\n\nKept the candidate with the {better} {result.select}.\n"


def sweep_plot(result: SweepResult, grid_keys: list[str], path: Path) -> bool:
    """Score against the swept value (one key) or per candidate (several keys)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ys = [r[result.select] for r in result.rows]
    if len(grid_keys) == 1:
        xs = [r[grid_keys[0]] for r in result.rows]
        ax.plot(xs, ys, marker="o")
        ax.plot([xs[result.best]], [ys[result.best]], marker="*", markersize=14, color="tab:red")
        ax.set_xlabel(grid_keys[0])
    else:
        labels = [",".join(f"{r[k]:g}" for k in grid_keys) for r in result.rows]
        colors = ["tab:red" if i == result.best else "tab:blue" for i in range(len(ys))]
        ax.bar(range(len(ys)), ys, color=colors)
        ax.set_xticks(range(len(ys)), labels, rotation=30, fontsize=7)
        ax.set_xlabel(", ".join(grid_keys))
    ax.set_ylabel(result.select)
    ax.set_title("merge sweep (star/red: kept)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True

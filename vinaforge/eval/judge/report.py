"""Judge results on disk: ``games.jsonl``, ``ratings.json``, ``leaderboard.md``, ``ratings.png``,
and the Markdown section for a run's report card.

Hand-written: the layout of our result files and tables; the plot is matplotlib.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from vinaforge.eval.judge.judging import JUDGMENTS_FILE, games_from_judgments, judge_stats
from vinaforge.eval.judge.ratings import RatingSettings, compute_ratings
from vinaforge.eval.judge.store import read_jsonl
from vinaforge.io import atomic_path, atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

RATINGS_FILE = "ratings.json"
GAMES_FILE = "games.jsonl"
LEADERBOARD_FILE = "leaderboard.md"
FIGURE_FILE = "ratings.png"


def write_ratings(
    judgments: str | Path,
    out_dir: str | Path | None = None,
    settings: RatingSettings | None = None,
    models: list[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Games, ratings, leaderboard and plot from a judgments file; returns the ratings dict.

    ``models`` restricts the ratings to those models; ``extra`` keys are added to ratings.json.
    """
    path = Path(judgments)
    if path.is_dir():
        path = path / JUDGMENTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"judgments file {path} not found (run `vinaforge eval judge run` first)")
    out = Path(out_dir) if out_dir is not None else path.parent
    out.mkdir(parents=True, exist_ok=True)
    records = read_jsonl(path)
    if not records:
        raise ValueError(f"{path}: no judgments in file")
    for i, rec in enumerate(records, 1):
        missing = [k for k in ("question_id", "first", "second", "status") if k not in rec]
        if missing:
            raise ValueError(f"{path}: record {i} lacks {', '.join(missing)}; is this a judgments file?")
    if models:
        present = {m for r in records for m in (r["first"], r["second"])}
        absent = sorted(set(models) - present)
        if absent:
            raise ValueError(
                f"{path}: no judgments for models {', '.join(absent)}; it has {', '.join(sorted(present))}"
            )
    games = games_from_judgments(records, models)
    stats = judge_stats([r for r in records if not models or {r["first"], r["second"]} <= set(models)], games)
    with atomic_path(out / GAMES_FILE) as tmp:
        tmp.write_text(
            "".join(json.dumps(g.to_dict(), ensure_ascii=False) + "\n" for g in games), encoding="utf-8"
        )
    names = sorted({m for g in games for m in (g.model_a, g.model_b)})
    ratings = compute_ratings([(g.model_a, g.model_b, g.winner) for g in games if g.rated], names, settings)
    ratings["judge"] = records[-1].get("judge", {})  # one judge per file: run_judging enforces it
    ratings["lang"] = records[-1].get("lang")
    ratings["counts"] = stats
    ratings["questions"] = len({g.question_id for g in games})
    ratings["categories"] = sorted({g.category for g in games})
    if ratings["judge"].get("random_init"):
        ratings["notes"].insert(0, "the judge is a randomly initialised model: its verdicts are noise")
    if stats["games"] and stats["games_rated"] < stats["games"]:
        ratings["notes"].append(
            f"{stats['games'] - stats['games_rated']} of {stats['games']} games are not rated "
            f"({stats['games_unparseable']} unparseable, {stats['games_failed']} failed, "
            f"{stats['games_incomplete']} incomplete)"
        )
    if extra and extra.get("skipped_questions"):
        ratings["notes"].append(
            f"{len(extra['skipped_questions'])} questions skipped because not every model answered them"
        )
    ratings.update(extra or {})
    atomic_write_json(out / RATINGS_FILE, ratings)
    atomic_write_text(out / LEADERBOARD_FILE, leaderboard_markdown(ratings))
    if ratings["bt"]:
        plot_ratings(ratings, out / FIGURE_FILE)
    elif (out / FIGURE_FILE).exists():
        (out / FIGURE_FILE).unlink()  # a plot of earlier ratings would contradict this file
    log.info(
        "ratings of %d models from %d rated games -> %s", len(ratings["models"]), ratings["games_rated"], out
    )
    return ratings


def _fmt_ci(ci: list[float] | None) -> str:
    return f"{ci[0]:.0f} – {ci[1]:.0f}" if ci else "–"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def leaderboard_markdown(ratings: dict[str, Any], heading: str = "#") -> str:
    """Leaderboard, win-rate matrix and judge statistics as Markdown."""
    c = ratings.get("counts", {})
    level = ratings.get("ci", {}).get("level", 0.95)
    lines = [f"{heading} LLM-as-judge leaderboard", ""]
    judge = ratings.get("judge", {})
    if judge:
        where = f" at {judge['base_url']}" if judge.get("base_url") else ""
        lines.append(
            f"Judge: `{judge.get('model')}`{where} ({judge.get('kind')}), prompt language `{ratings.get('lang')}`; "
            f"{ratings.get('questions', 0)} questions, pairwise with position swap."
        )
        lines.append("")
    for note in ratings.get("notes", []):
        lines.append(f"> **Note:** {note}")
    if ratings.get("notes"):
        lines.append("")
    if ratings.get("bt"):
        pct = f"{100 * level:.0f}%"
        lines += [
            f"| Rank | Model | Bradley–Terry | {pct} CI | Elo | {pct} CI | Win rate | W / T / L |",
            "|---:|---|---:|---|---:|---|---:|---|",
        ]
        for rank, m in enumerate(ratings["models"], 1):
            t = ratings["totals"][m]
            lines.append(
                f"| {rank} | {m} | {ratings['bt'][m]:.0f} | {_fmt_ci(ratings['ci']['bt'].get(m))} | "
                f"{ratings['elo'][m]:.0f} | {_fmt_ci(ratings['ci']['elo'].get(m))} | {_pct(t['win_rate'])} | "
                f"{t['wins']} / {t['ties']} / {t['losses']} |"
            )
        lines += ["", "Win rate of the row model against the column model (ties count ½):", ""]
        models = ratings["models"]
        lines.append("| | " + " | ".join(models) + " |")
        lines.append("|---|" + "---:|" * len(models))
        for m in models:
            cells = ["–" if o == m else _pct(ratings["win_rate"][m].get(o)) for o in models]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    else:
        lines += ["No rated games: no ratings.", ""]
    if c:
        lines += [
            f"Judge calls: {c['judge_calls']} ({c['calls_ok']} with a verdict, {c['calls_unparseable']} unparseable, "
            f"{c['calls_failed']} failed). Games: {c['games']} ({c['games_consistent']} consistent across both "
            f"orders, {c['games_inconsistent']} inconsistent → tie, {c['games_unparseable']} unparseable, "
            f"{c['games_failed']} failed, {c['games_incomplete']} incomplete). Position consistency: "
            f"{_pct(c['consistency'])}; share of decisive verdicts for the answer shown first: "
            f"{_pct(c['first_position_share'])}.",
            "",
        ]
    s = ratings.get("settings", {})
    if s:
        lines.append(
            f"Elo: online, K={s['k']:g}, scale {s['scale']:g}, base {s['base']:g}, initial {s['init']:g}, mean over "
            f"{s['n_shuffles']} game orders. Bradley–Terry: maximum likelihood on the same scale (prior sd "
            f"{s['bt_prior_sd']:g}), centred at {s['init']:g}. Intervals: {s['n_bootstrap']} bootstrap resamples of games."
        )
        lines.append("")
    return "\n".join(lines)


def plot_ratings(ratings: dict[str, Any], path: str | Path) -> Path:
    """Horizontal bars of Bradley–Terry and Elo ratings with their bootstrap intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = ratings["models"][::-1]  # best at the top
    fig, axes = plt.subplots(1, 2, figsize=(10, 1.2 + 0.45 * len(models)), sharey=True)
    for ax, key, title in ((axes[0], "bt", "Bradley–Terry"), (axes[1], "elo", "Elo (mean over orders)")):
        values = [ratings[key][m] for m in models]
        cis = ratings["ci"].get(key, {})
        lo = [v - cis[m][0] if m in cis else 0.0 for m, v in zip(models, values, strict=True)]
        hi = [cis[m][1] - v if m in cis else 0.0 for m, v in zip(models, values, strict=True)]
        ax.errorbar(values, range(len(models)), xerr=[lo, hi], fmt="o", capsize=4, color="tab:blue")
        ax.axvline(ratings["settings"]["init"], color="grey", lw=0.8, ls="--")
        ax.set_title(title)
        ax.set_xlabel("rating")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(models)), models)
    level = ratings["ci"].get("level", 0.95)
    fig.suptitle(f"LLM-as-judge ratings ({100 * level:.0f}% bootstrap intervals)")
    fig.tight_layout()
    out = Path(path)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return out


def report_section(results_dir: str | Path, image_prefix: str = "", heading: str = "###") -> str:
    """Markdown for a report card from a judge results folder (holding ``ratings.json``).

    ``image_prefix`` is prepended to ``ratings.png`` in the image link, so the caller can make it
    relative to wherever the report lives.
    """
    d = Path(results_dir)
    f = d / RATINGS_FILE
    if not f.is_file():
        raise FileNotFoundError(f"{f} not found: compute ratings first (`vinaforge eval judge ratings`)")
    ratings = json.loads(f.read_text(encoding="utf-8"))
    text = leaderboard_markdown(ratings, heading=heading)
    if (d / FIGURE_FILE).is_file():
        text += f"\n![LLM-as-judge ratings]({image_prefix}{FIGURE_FILE})\n"
    return text

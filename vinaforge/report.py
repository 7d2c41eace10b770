"""The run's report card (``runs/<name>/report.md``), in the spirit of nanochat's report.

Each stage writes its own section; the card stitches them in recipe order, with a header
about the run and a closing summary table. Credentials in URLs are masked before writing. Hand-written: a few dozen lines of Markdown.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import subprocess
from pathlib import Path
from typing import Any

from vinaforge import __version__
from vinaforge.io import atomic_write_text
from vinaforge.redact import redact_text


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def format_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict | list):
        return json.dumps(v, ensure_ascii=False)[:120]
    return str(v)


def metrics_table(metrics: dict[str, Any]) -> str:
    flat = {k: v for k, v in metrics.items() if not isinstance(v, dict | list)}
    if not flat:
        return ""
    rows = "\n".join(f"| {k} | {format_value(v)} |" for k, v in flat.items())
    return "| metric | value |\n|---|---|\n" + rows + "\n"


def stage_section(name: str, kind: str, result: dict, skipped: bool) -> str:
    status = " (unchanged, reused)" if skipped else ""
    parts = [f"## {name} (`{kind}`){status}\n"]
    if result.get("report"):
        parts.append(result["report"].strip() + "\n")
    else:
        table = metrics_table(result.get("metrics", {}))
        if table:
            parts.append(table)
    for fig in result.get("figures", []):
        parts.append(f"![{fig.get('caption', '')}]({name}/{fig['path']})\n")
        if fig.get("caption"):
            parts.append(f"*{fig['caption']}*\n")
    wall = result.get("wall_time_s")
    if wall is not None:
        parts.append(f"\n_Wall time: {wall:.1f} s._\n")
    return "\n".join(parts)


def write_report(
    run_dir: Path, recipe_name: str, sections: list[tuple[str, str, dict, bool]], description: str | None = None
) -> Path:
    now = dt.datetime.now().isoformat(timespec="seconds")
    head = [
        f"# vinaforge report card: {recipe_name}\n",
        *([" ".join(description.split()) + "\n"] if description else []),
        f"- generated: {now}",
        f"- vinaforge {__version__}, git {_git_commit()}",
        f"- python {platform.python_version()} on {platform.machine()} ({platform.system()})",
        "",
    ]
    body = [stage_section(n, k, r, s) for n, k, r, s in sections]
    summary = ["## Summary\n", "| stage | kind | status | wall time (s) |", "|---|---|---|---|"]
    for n, k, r, s in sections:
        wall = r.get("wall_time_s")
        summary.append(
            f"| {n} | {k} | {'reused' if s else 'ran'} | {'' if wall is None else f'{wall:.1f}'} |"
        )
    text = "\n".join(head) + "\n" + "\n".join(body) + "\n" + "\n".join(summary) + "\n"
    return atomic_write_text(run_dir / "report.md", redact_text(text))

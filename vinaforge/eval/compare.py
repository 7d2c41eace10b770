"""``vinaforge eval compare``: several models' or runs' results side by side, as Markdown and HTML.

Each input is a run folder (``runs/<name>/``, whose eval stage wrote ``<stage>/results.json``), a
stage folder holding ``results.json``, or a results JSON file (``vinaforge eval --output``). The
output is a table (one row per benchmark/split/metric, one column per model, the best in bold)
and a grouped bar chart, written as ``NAME.md`` + ``NAME.png`` and a self-contained
``NAME.html`` (the chart embedded) that opens in any browser. Hand-written: a few tables.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path

from vinaforge.eval import report
from vinaforge.io import atomic_write_text


class CompareError(ValueError):
    """An input that holds no evaluation results; the message names it."""


def _is_results(obj) -> bool:
    return isinstance(obj, dict) and (
        bool(report.benchmark_rows(obj)) or any(k in obj for k in ("bpb", "fertility", "translation"))
    )


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise CompareError(f"{path}: cannot read evaluation results ({err})") from None


def find_results(source: str | os.PathLike) -> tuple[str, dict]:
    """(label, results) of a run folder, a stage folder or a results file."""
    p = Path(source)
    if p.is_file():
        obj = _read_json(p)
        if not _is_results(obj):
            raise CompareError(f"{p}: not an evaluation results file (no benchmark, bpb or translation)")
        label = p.parent.parent.name if p.name == "results.json" and p.parent.parent.name else p.stem
        return label, obj
    if not p.is_dir():
        raise CompareError(f"{p}: no such run folder or results file")
    candidates = [p / "results.json", *sorted(p.glob("*/results.json"))]
    for c in candidates:
        if c.is_file():
            obj = _read_json(c)
            if _is_results(obj):
                return p.name, obj
    raise CompareError(f"{p}: no results.json of an eval stage in this folder")


def unique_labels(labels: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return out


def table(series: dict[str, dict[str, tuple[float, float | None]]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows (strings) of the side-by-side table; the best value of a row in bold."""
    models = list(series)
    names = list(dict.fromkeys(k for s in series.values() for k in s))
    rows = []
    for name in names:
        vals = {m: series[m][name] for m in models if name in series[m]}
        pick = min if report.lower_is_better(name) else max
        best = pick(v[0] for v in vals.values()) if len(vals) > 1 else None
        cells = []
        for m in models:
            if m not in vals:
                cells.append("–")
                continue
            value, se = vals[m]
            text = report.fmt(value, se if isinstance(se, float) else None)
            cells.append(f"**{text}**" if best is not None and value == best else text)
        rows.append([name, *cells])
    return ["metric", *models], rows


def markdown(header: list[str], rows: list[list[str]], png_name: str | None) -> str:
    lines = ["# Evaluation comparison\n", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    text = (
        "\n".join(lines)
        + "\n\n_Values ± one standard error; best of each row in bold (lower is better for bits per byte, perplexity and fertility)._\n"
    )
    if png_name:
        text += f"\n![scores]({png_name})\n"
    return text


def html_page(header: list[str], rows: list[list[str]], png: Path | None) -> str:
    def cell(text: str, tag: str = "td") -> str:
        bold = text.startswith("**") and text.endswith("**")
        inner = html.escape(text.strip("*"))
        return f"<{tag}>{'<b>' + inner + '</b>' if bold else inner}</{tag}>"

    img = ""
    if png and png.is_file():
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        img = f'<p><img alt="scores" src="data:image/png;base64,{data}"></p>'
    body = "".join("<tr>" + "".join(cell(c) for c in r) + "</tr>\n" for r in rows)
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>vinaforge eval compare</title>\n'
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child{text-align:left}"
        "th{background:#f3f3f3}</style></head><body>\n<h1>Evaluation comparison</h1>\n"
        "<table>\n<tr>" + "".join(cell(h, "th") for h in header) + "</tr>\n" + body + "</table>\n"
        "<p>Values ± one standard error; best of each row in bold (lower is better for bits per byte, "
        "perplexity and fertility).</p>\n" + img + "\n</body></html>\n"
    )


def compare(sources: list[str | os.PathLike], output: str | os.PathLike) -> dict[str, Path]:
    """Write ``output`` (.md), its .html and .png; return their paths."""
    if not sources:
        raise CompareError("nothing to compare: give run folders or results files")
    found = [find_results(s) for s in sources]
    labels = unique_labels([label for label, _ in found])
    series = {label: report.flatten(res) for label, (_, res) in zip(labels, found, strict=True)}
    header, rows = table(series)
    out_md = Path(output).with_suffix(".md")
    png = report.bar_chart(series, out_md.with_suffix(".png"), title="accuracy by benchmark")
    atomic_write_text(out_md, markdown(header, rows, png.name if png else None))
    out_html = out_md.with_suffix(".html")
    atomic_write_text(out_html, html_page(header, rows, png))
    paths = {"markdown": out_md, "html": out_html}
    if png:
        paths["png"] = png
    return paths

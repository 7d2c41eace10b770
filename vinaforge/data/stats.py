"""``stats.json``, the per-filter funnel, duplicate clusters and the report-card section.

Hand-written glue over datatrove's per-task stats files (``_work/logs/<stage>/stats/*.json``):
every count comes from a step that measured it (filters count what they keep and reject,
writers count what they write), and the funnel is checked to add up exactly before it is
written. The histogram is drawn with matplotlib.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from vinaforge.data.config import Config
from vinaforge.io import atomic_path, atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

FILTER_ROWS = ("input", "language", "gopher_repetition", "gopher_quality", "fineweb_quality", "flagged_words")
MEASURES = ("docs", "chars", "syllables")


def load_step_totals(logs_dir: Path) -> dict[str, Counter]:
    """Sum, over a stage's tasks, the stats of each step (keyed by the step's ``name``)."""
    totals: dict[str, Counter] = defaultdict(Counter)
    for f in sorted((Path(logs_dir) / "stats").glob("*.json")):
        for step in json.loads(f.read_text()):
            name = step["name"].split(": ", 1)[-1]
            for key, val in step.get("stats", {}).items():
                totals[name][key] += val["total"] if isinstance(val, dict) else val
    return totals


def _row(step: str, kind: str, src_in: dict, src_kept: dict, src_rej: dict | None, keys) -> dict[str, Any]:
    row: dict[str, Any] = {"step": step, "kind": kind}
    for m in MEASURES:
        row[f"{m}_in"] = int(src_in.get(keys[0].format(m=m), 0))
        row[f"{m}_kept"] = int(src_kept.get(keys[1].format(m=m), 0))
        row[f"{m}_rejected"] = int(src_rej.get(keys[2].format(m=m), 0)) if src_rej is not None else 0
    return row


def build_funnel(cfg: Config, logs: Path) -> tuple[list[dict], dict[str, dict[str, int]], dict[str, Counter]]:
    """Funnel rows in pipeline order, rejection reasons per filter, and the raw step totals."""
    a = load_step_totals(logs / "filter")
    f = load_step_totals(logs / "final")
    rows: list[dict] = []
    reasons: dict[str, dict[str, int]] = {}
    filt_keys = ("in_{m}", "kept_{m}", "rejected_{m}")
    if "vf/normalize" in a:
        n = a["vf/normalize"]
        rows.append(
            {
                "step": "normalize",
                "kind": "transform",
                "docs_in": int(n["docs"]),
                "docs_kept": int(n["docs"]),
                "docs_rejected": 0,
                "chars_in": int(n["chars_in"]),
                "chars_kept": int(n["chars_out"]),
                "chars_rejected": 0,
                "syllables_in": None,  # raw text is not tokenized: syllables are counted from here on
                "syllables_kept": None,
                "syllables_rejected": 0,
                "changed": int(n["changed"]),
            }
        )
    for row in FILTER_ROWS:
        t = a.get(f"vf/{row}")
        if t is None:
            continue
        rows.append(_row(row, "filter", t, t, t, filt_keys))
        for m in MEASURES:  # what the filter rejected is what its writer wrote to rejected/<row>/
            if int(t.get(f"rejected_{m}", 0)) != int(t.get(f"written_{m}", 0)):
                rows[-1].setdefault("checks", []).append(
                    f"{row} rejected {int(t.get(f'rejected_{m}', 0))} {m} but wrote {int(t.get(f'written_{m}', 0))}"
                )
        reasons[row] = {k.split("/", 1)[1]: int(v) for k, v in sorted(t.items()) if k.startswith("reason/")}
    if "vf/pii" in a:
        p = a["vf/pii"]
        rows.append(
            {
                "step": "pii",
                "kind": "transform",
                "docs_in": int(p["docs"]),
                "docs_kept": int(p["docs"]),
                "docs_rejected": 0,
                "chars_in": int(p["chars_in"]),
                "chars_kept": int(p["chars_out"]),
                "chars_rejected": 0,
                "syllables_in": int(p["syllables_in"]),
                "syllables_kept": int(p["syllables_out"]),
                "syllables_rejected": 0,
                "changed": int(p["docs_redacted"]),
            }
        )
    if "vf/dedup-filter" in f:
        d = f["vf/dedup-filter"]
        meas = lambda prefix: {m: d[f"{prefix}_{m}"] for m in MEASURES}  # noqa: E731
        checks = [("in", a.get("vf/filtered", Counter()), "documents written by the filter stage")]
        if cfg.dedup.exact:
            rows.append(_dedup_row("exact_dedup", meas("in"), meas("after_exact"), meas("exact")))
            checks.append(
                ("exact", {m: d[f"written_exact_{m}"] for m in MEASURES}, "rejected/exact_dedup records")
            )
        if cfg.dedup.minhash.enabled:
            rows.append(_dedup_row("minhash_dedup", meas("after_exact"), meas("kept"), meas("near")))
            checks.append(
                ("near", {m: d[f"written_near_{m}"] for m in MEASURES}, "rejected/minhash_dedup records")
            )
        checks.append(("kept", f.get("vf/kept", Counter()), "kept records written"))
        for prefix, written, what in checks:
            for m in MEASURES:
                if int(d[f"{prefix}_{m}"]) != int(written.get(m, 0)):
                    rows[-1].setdefault("checks", []).append(
                        f"dedup counted {int(d[f'{prefix}_{m}'])} {m} ({prefix}) but {int(written.get(m, 0))} in {what}"
                    )
    return rows, reasons, {"filter": a, "final": f}


def _dedup_row(step: str, src_in: dict, src_kept: dict, src_rej: dict) -> dict[str, Any]:
    row: dict[str, Any] = {"step": step, "kind": "dedup"}
    for m in MEASURES:
        row[f"{m}_in"] = int(src_in.get(m, 0))
        row[f"{m}_kept"] = int(src_kept.get(m, 0))
        row[f"{m}_rejected"] = int(src_rej.get(m, 0))
    return row


def check_funnel(rows: list[dict]) -> list[str]:
    """Every way the funnel fails to add up (empty when it is exact)."""
    problems = [p for r in rows for p in r.get("checks", [])]
    for r in rows:
        if r["kind"] == "transform":
            if r["docs_in"] != r["docs_kept"]:
                problems.append(f"{r['step']}: {r['docs_in']} documents in but {r['docs_kept']} out")
            continue
        for m in MEASURES:
            if r[f"{m}_in"] is None:
                continue
            if r[f"{m}_in"] != r[f"{m}_kept"] + r[f"{m}_rejected"]:
                problems.append(
                    f"{r['step']}: {m} in {r[f'{m}_in']} != kept {r[f'{m}_kept']} + rejected {r[f'{m}_rejected']}"
                )
    for prev, cur in zip(rows, rows[1:], strict=False):
        if prev["docs_kept"] != cur["docs_in"]:
            problems.append(
                f"{prev['step']} keeps {prev['docs_kept']} documents but {cur['step']} gets {cur['docs_in']}"
            )
        for m in ("chars", "syllables"):
            if prev[f"{m}_kept"] is None or cur[f"{m}_in"] is None:
                continue
            if prev[f"{m}_kept"] != cur[f"{m}_in"]:
                problems.append(
                    f"{prev['step']} keeps {prev[f'{m}_kept']} {m} but {cur['step']} gets {cur[f'{m}_in']}"
                )
    return problems


def collect_clusters(out: Path) -> list[dict]:
    """MinHash duplicate clusters: the kept document and the removed ones, by cluster id."""
    clusters: dict[int, dict] = {}
    for f in sorted((out / "_work" / "clusters").glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            clusters.setdefault(rec["cluster"], {"cluster": rec["cluster"], "kept": None, "removed": []})[
                "kept"
            ] = rec["id"]
    for f in sorted((out / "rejected" / "minhash_dedup").glob("*.jsonl.gz")):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            for line in fh:
                rec = json.loads(line)
                cid = rec.get("minhash_cluster_id", -1)
                entry = clusters.setdefault(cid, {"cluster": cid, "kept": None, "removed": []})
                entry["removed"].append(rec["id"])
    result = []
    for cid in sorted(clusters):
        c = clusters[cid]
        c["size"] = len(c["removed"]) + (c["kept"] is not None)
        result.append({"cluster": cid, "size": c["size"], "kept": c["kept"], "removed": c["removed"]})
    return result


def rejected_examples(out: Path, rows: list[str], k: int, max_chars: int = 240) -> dict[str, list[dict]]:
    """The first ``k`` rejected records of each filter, text shortened."""
    examples: dict[str, list[dict]] = {}
    for row in rows:
        found: list[dict] = []
        for f in sorted((out / "rejected" / row).glob("*.jsonl.gz")):
            with gzip.open(f, "rt", encoding="utf-8") as fh:
                for line in fh:
                    rec = json.loads(line)
                    text = " ".join(str(rec.get("text", "")).split())
                    found.append(
                        {
                            "id": rec.get("id"),
                            "reason": rec.get("reason"),
                            "value": rec.get("value"),
                            "text": text[:max_chars] + ("…" if len(text) > max_chars else ""),
                        }
                    )
                    if len(found) >= k:
                        break
            if len(found) >= k:
                break
        if found:
            examples[row] = found
    return examples


def plot_histogram(scores: dict[str, list[float]], thresholds: dict[str, float], path: Path) -> bool:
    """Histogram of the kept documents' quality scores, one colour per language."""
    if not any(scores.values()):
        return False
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6), dpi=100)  # no pyplot: a third of the import time
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    bins = [i / 40 for i in range(41)]
    for lang, vals in sorted(scores.items()):
        ax.hist(vals, bins=bins, alpha=0.6, label=f"{lang} ({len(vals)})")
        if lang in thresholds:
            ax.axvline(thresholds[lang], linestyle="--", linewidth=1)
    ax.set_xlabel("quality score")
    ax.set_ylabel("documents")
    ax.set_title("Quality score of kept documents (dashed: high-tier threshold)")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    return True


def _fmt(n: int | None) -> str:
    return "–" if n is None else f"{n:,}"


def report_markdown(stats: dict, examples: dict[str, list[dict]]) -> str:
    """The stage's section of the report card (the engine adds the title and the figure)."""
    tiers = stats["tiers"]
    tier_txt = ", ".join(f"{t}: {_fmt(sum(v.values()))}" for t, v in sorted(tiers.items()))
    lang_txt = ", ".join(f"{k}: {_fmt(v)}" for k, v in sorted(stats["languages"].items()))
    red = stats["redactions"]
    lines = [
        f"**{_fmt(stats['input'])}** records in, **{_fmt(stats['kept'])}** kept ({tier_txt}; {lang_txt}), "
        f"{_fmt(sum(stats['rejected'].values()))} rejected, of which {_fmt(stats['duplicates'])} duplicates. "
        f"PII redactions: {', '.join(f'{k} {_fmt(v)}' for k, v in red.items()) or 'none'}.",
        "",
        "| step | docs in | kept | rejected | chars in | chars kept | syllables in | syllables kept | main reasons |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    reasons = stats["rejected_reasons"]
    for r in stats["funnel"]:
        top = sorted(reasons.get(r["step"], {}).items(), key=lambda kv: -kv[1])[:3]
        note = ", ".join(f"{k} {v}" for k, v in top)
        if r["kind"] == "transform":
            note = f"{r['changed']} documents changed"
        lines.append(
            f"| {r['step']} | {_fmt(r['docs_in'])} | {_fmt(r['docs_kept'])} | {_fmt(r['docs_rejected'])} "
            f"| {_fmt(r['chars_in'])} | {_fmt(r['chars_kept'])} | {_fmt(r['syllables_in'])} "
            f"| {_fmt(r['syllables_kept'])} | {note} |"
        )
    lines.append("")
    lines.append(
        "The funnel adds up exactly (each row: in = kept + rejected)."
        if stats["funnel_balanced"]
        else "**The funnel does not add up:** " + "; ".join(stats["funnel_problems"])
    )
    if examples:
        lines += ["", "Example rejected documents:", ""]
        for row, exs in examples.items():
            for ex in exs:
                text = ex["text"].replace("|", "\\|")
                lines.append(f"- `{row}` / `{ex['reason']}` (value {ex['value']}): {text}")
    return "\n".join(lines) + "\n"


def summarize(cfg: Config, out: Path, tasks: int) -> dict:
    """Write ``stats.json``, ``duplicate_clusters.jsonl.gz``, the histogram and the report section."""
    logs = out / "_work" / "logs"
    rows, reasons, totals = build_funnel(cfg, logs)
    problems = check_funnel(rows)
    if problems:
        log.error("curate funnel does not add up: %s", "; ".join(problems))
    a, f = totals["filter"], totals["final"]
    rejected = {r["step"]: r["docs_rejected"] for r in rows if r["kind"] != "transform"}
    reasons["exact_dedup"] = {"exact_duplicate": rejected.get("exact_dedup", 0)} if cfg.dedup.exact else {}
    if cfg.dedup.minhash.enabled:
        reasons["minhash_dedup"] = {"near_duplicate": rejected.get("minhash_dedup", 0)}
    kept = f.get("vf/kept", Counter())
    tiers: dict[str, dict[str, int]] = defaultdict(dict)
    languages: Counter = Counter()
    for key, val in sorted(kept.items()):
        if key.startswith("docs/"):
            _, tier, lang = key.split("/")
            tiers[tier][lang] = int(val)
            languages[lang] += int(val)
    clusters = collect_clusters(out) if cfg.dedup.minhash.enabled else []
    with atomic_path(out / "duplicate_clusters.jsonl.gz") as tmp, open(tmp, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as fh:  # same bytes every run
            for c in clusters:
                fh.write((json.dumps(c, ensure_ascii=False) + "\n").encode("utf-8"))
    sizes = Counter(c["size"] for c in clusters)
    thresholds = json.loads((out / "_work" / "tiers.json").read_text())
    pii = a.get("vf/pii", Counter())
    normalize = a.get("vf/normalize", Counter())
    repaired = Counter({k.split("/", 1)[1]: v for k, v in normalize.items() if k.startswith("legacy/")})
    stats = {
        "input": rows[0]["docs_in"] if rows else 0,
        "kept": int(kept.get("docs", 0)),
        "rejected": rejected,
        "rejected_reasons": reasons,
        "redactions": {k.split("/", 1)[1]: int(v) for k, v in sorted(pii.items()) if k.startswith("redact/")},
        "documents_redacted": int(pii.get("docs_redacted", 0)),
        "duplicates": int(rejected.get("exact_dedup", 0) + rejected.get("minhash_dedup", 0)),
        "duplicate_clusters": {
            "clusters": len(clusters),
            "documents_in_clusters": sum(c["size"] for c in clusters),
            "largest": max(sizes) if sizes else 0,
            "sizes": {str(k): v for k, v in sorted(sizes.items())},
        },
        "repaired": {f"legacy_{k}": int(v) for k, v in sorted(repaired.items())},
        "normalized_changed": int(normalize.get("changed", 0)),
        "languages": dict(sorted(languages.items())),
        "tiers": {t: dict(sorted(v.items())) for t, v in sorted(tiers.items())},
        "tier_thresholds": thresholds,
        "kept_chars": int(kept.get("chars", 0)),
        "kept_syllables": int(kept.get("syllables", 0)),
        "tasks": tasks,
        "funnel": rows,
        "funnel_balanced": not problems,
        "funnel_problems": problems,
    }
    atomic_write_json(out / "stats.json", stats)
    from vinaforge.data.tiers import kept_scores

    w = out / "_work"
    scores = kept_scores(
        w / "scores",
        w / "exact_dups" if cfg.dedup.exact else None,
        w / "minhash_remove" if cfg.dedup.minhash.enabled else None,
    )
    has_plot = plot_histogram(scores, thresholds.get("thresholds", {}), out / "quality_hist.png")
    present = [r["step"] for r in rows if r["kind"] != "transform"]
    examples = rejected_examples(out, present, cfg.report_examples)
    section = report_markdown(stats, examples)
    atomic_write_text(out / "_work" / "report_section.md", section)
    figure = "\n![Quality score of kept documents](quality_hist.png)\n" if has_plot else ""
    atomic_write_text(out / "report.md", "# Curation report\n\n" + section + figure)
    return stats


class WriteSummary(PipelineStep):
    """Single task run after everything else: :func:`summarize`."""

    type = "📊 - STATS"
    name = "vf/summary"

    def __init__(self, cfg: Config, out: str, tasks: int):
        super().__init__()
        self.cfg = cfg
        self.out = out
        self.tasks = tasks

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        # eager, not a generator: the single-task steps around it ignore their input stream
        summarize(self.cfg, Path(self.out), self.tasks)
        return data

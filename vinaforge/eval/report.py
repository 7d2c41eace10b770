"""Evaluation results as Markdown tables and bar charts, for the report card and for people.

``results.json`` maps each benchmark to its splits and each split to metrics (``acc``,
``acc_stderr``, ``n``...); bits per byte, tokenizer fertility and translation scores sit beside
them under ``bpb``, ``fertility`` and ``translation``. Keys starting with ``_`` hold settings.
Hand-written: a few tables over matplotlib.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from vinaforge.io import atomic_path

# metrics where lower is better (everything else: higher is better)
LOWER_IS_BETTER = {"bits_per_byte", "token_perplexity", "tokens_per_syllable", "tokens_per_word", "assistant loss", "degenerate_share"}
HEADLINE = ("acc", "acc_norm", "acc_bytes", "mc1", "mc2")
NON_BENCHMARK = {"bpb", "bpb_sets", "samples", "chat", "fertility", "translation", "judge"}


def fmt(value: Any, stderr: Any = None, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        text = f"{value:.{digits}f}"
        if isinstance(stderr, float) and not math.isnan(stderr):
            text += f" ± {stderr:.{digits}f}"
        return text
    return str(value)


def benchmark_rows(results: dict) -> list[tuple[str, str, dict]]:
    """(benchmark, split, metrics) for every scored split, in file order."""
    rows = []
    for bench, splits in results.items():
        if bench.startswith("_") or bench in NON_BENCHMARK or not isinstance(splits, dict):
            continue
        for split, metrics in splits.items():
            if isinstance(metrics, dict):
                rows.append((bench, split, metrics))
    return rows


def headline(metrics: dict) -> tuple[str, float] | None:
    """The metric that sums up a split: ``acc`` (or ``mc1``/``mc2`` for TruthfulQA)."""
    for key in HEADLINE:
        if isinstance(metrics.get(key), int | float):
            return key, float(metrics[key])
    return None


def flatten(results: dict) -> dict[str, tuple[float, float | None]]:
    """``{"vmlu/dev acc": (value, stderr)}`` for every number worth comparing across models."""
    flat: dict[str, tuple[float, float | None]] = {}
    for bench, split, m in benchmark_rows(results):
        for key in HEADLINE:
            if isinstance(m.get(key), int | float):
                flat[f"{bench}/{split} {key}"] = (float(m[key]), m.get(f"{key}_stderr"))
        for cat, cm in (m.get("by_category") or {}).items():
            flat[f"{bench}/{split} acc [{cat}]"] = (float(cm["acc"]), cm.get("acc_stderr"))
    bpb = results.get("bpb") or {}
    for key in ("bits_per_byte", "token_perplexity"):
        if isinstance(bpb.get(key), int | float):
            flat[f"held-out {key}"] = (float(bpb[key]), None)
    for name, set_bpb in (results.get("bpb_sets") or {}).items():
        for key in ("bits_per_byte", "token_perplexity"):
            if isinstance(set_bpb.get(key), int | float):
                flat[f"held-out {name} {key}"] = (float(set_bpb[key]), None)
    chat = results.get("chat") or {}
    if "assistant_loss" in chat:
        flat["held-out assistant loss"] = (float(chat["assistant_loss"]["loss"]), None)
        flat["held-out assistant bits_per_byte"] = (float(chat["assistant_loss"]["bits_per_byte"]), None)
    for key in ("vietnamese_share", "degenerate_share", "distinct_2"):
        if key in chat.get("answers", {}):
            flat[f"answers {key}"] = (float(chat["answers"][key]), None)
    fert = results.get("fertility") or {}
    for key, value in fert.items():
        if isinstance(value, int | float) and ("tokens_per" in key or key == "single_token_syllable_share"):
            flat[f"tokenizer {key}"] = (float(value), None)
    for direction, t in (results.get("translation") or {}).items():
        for key in ("chrf++", "bleu"):
            if isinstance(t.get(key), int | float):
                flat[f"translation {direction} {key}"] = (float(t[key]), None)
    return flat


def lower_is_better(name: str) -> bool:
    return any(key in name for key in LOWER_IS_BETTER)


def benchmarks_markdown(results: dict) -> str:
    rows = benchmark_rows(results)
    if not rows:
        return ""
    lines = ["| benchmark | split | n | acc | acc_norm (per char) | acc_bytes (per byte) |", "|---|---|---|---|---|---|"]
    for bench, split, m in rows:
        if "submission" in m or "answer_shares" in m:
            shares = ", ".join(f"{k} {v:.0%}" for k, v in (m.get("answer_shares") or {}).items())
            lines.append(f"| {bench} | {split} | {m.get('n', '')} | submission written ({shares}) | | |")
        elif "mc1" in m or "mc2" in m:
            lines.append(
                f"| {bench} | {split} | {m.get('n', '')} | mc1 {fmt(m.get('mc1'), m.get('mc1_stderr'))}"
                f" | mc2 {fmt(m.get('mc2'), m.get('mc2_stderr'))} | |"
            )
        else:
            lines.append(
                f"| {bench} | {split} | {m.get('n', '')} | {fmt(m.get('acc'), m.get('acc_stderr'))}"
                f" | {fmt(m.get('acc_norm'), m.get('acc_norm_stderr'))}"
                f" | {fmt(m.get('acc_bytes'), m.get('acc_bytes_stderr'))} |"
            )
    out = "\n".join(lines) + "\n"
    for bench, split, m in rows:
        cats = m.get("by_category")
        if cats:
            out += f"\n{bench} {split} by category:\n\n| category | n | acc |\n|---|---|---|\n"
            out += "".join(
                f"| {c} | {cm['n']} | {fmt(cm['acc'], cm.get('acc_stderr'))} |\n" for c, cm in cats.items()
            )
    return out


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell (no pipes, no line breaks, HTML escaped)."""
    import html

    return html.escape(" ".join(text.split())).replace("|", "\\|") or "∅"


def extras_markdown(results: dict) -> str:
    parts = []
    bpb = results.get("bpb")
    if bpb:
        parts.append(
            f"Held-out text: **{fmt(bpb['bits_per_byte'])} bits per byte**, token perplexity "
            f"{fmt(bpb['token_perplexity'], digits=2)} ({bpb['n_texts']} texts, {bpb['n_bytes']:,} bytes, "
            f"{bpb['n_tokens']:,} tokens).\n"
        )
    sets = results.get("bpb_sets")
    if sets:
        lines = ["| held-out set | bits per byte | token perplexity | texts | bytes |", "|---|---|---|---|---|"]
        for name, b in sets.items():
            lines.append(
                f"| {name} | {fmt(b['bits_per_byte'])} | {fmt(b['token_perplexity'], digits=2)} | "
                f"{b['n_texts']} | {b['n_bytes']:,} |"
            )
        parts.append("\n".join(lines) + "\n")
    samples = results.get("samples")
    if samples:
        lines = ["Greedy continuations of raw prompts:", "", "| prompt | continuation |", "|---|---|"]
        for s in samples:
            lines.append(f"| {_cell(s['prompt'])} | {_cell(s['completion'])} |")
        parts.append("\n".join(lines) + "\n")
    chat = results.get("chat") or {}
    if "assistant_loss" in chat:
        a = chat["assistant_loss"]
        parts.append(
            f"Held-out assistant loss: **{fmt(a['bits_per_byte'])} bits per byte**, {fmt(a['loss'])} nats per token "
            f"({a['n_conversations']} conversations, "
            f"{a['n_tokens']:,} assistant tokens, `{a['template']}` template).\n"
        )
    if "answers" in chat:
        q = chat["answers"]
        lines = [
            f"Greedy answers to {q['n']} held-out prompts: {q['vietnamese_share']:.0%} Vietnamese, "
            f"{q['degenerate_share']:.0%} degenerate, distinct-2 {fmt(q['distinct_2'])}.",
            "",
            "| prompt | answer |",
            "|---|---|",
        ]
        lines += [f"| {_cell(a['prompt'])} | {_cell(a['answer'])} |" for a in q["answers"][:8]]
        parts.append("\n".join(lines) + "\n")
    fert = results.get("fertility")
    if fert:
        cells = ", ".join(
            f"{k.replace('_', ' ')} {fmt(v, digits=3)}" for k, v in fert.items() if isinstance(v, float)
        )
        parts.append(f"Tokenizer fertility: {cells}.\n")
    trans = results.get("translation")
    if trans:
        lines = ["| direction | pairs | chrF++ | BLEU |", "|---|---|---|---|"]
        for direction, t in trans.items():
            lines.append(
                f"| {direction} | {t['n']} | {fmt(t['chrf++'], digits=2)} | {fmt(t['bleu'], digits=2)} |"
            )
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def results_markdown(results: dict) -> str:
    """The report-card section of one evaluation."""
    parts = [p for p in (extras_markdown(results), benchmarks_markdown(results)) if p]
    meta = results.get("_meta") or {}
    if meta.get("tasks"):
        shots = meta.get("num_fewshot") or 0
        parts.append(
            f"_Benchmarks: {shots}-shot, {meta.get('template', 'vi')} template"
            f"{', chat template' if meta.get('chat_template') else ''}"
            f"{', limit ' + str(meta['limit']) if meta.get('limit') else ''}; lm-eval {meta.get('lm_eval_version')}._\n"
        )
    return "\n".join(parts)


def bar_chart(
    series: dict[str, dict[str, tuple[float, float | None]]], path: str | Path, title: str = ""
) -> Path | None:
    """Grouped bars: one group per metric, one bar per model, with ±1 standard-error whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # benchmark scores only ("bench/split metric", 0..1); acc_norm/acc_bytes would triple most bars
    names = [
        n for n in dict.fromkeys(k for s in series.values() for k in s) if "/" in n and "acc_norm" not in n and "acc_bytes" not in n
    ]
    if not names:
        return None
    models = list(series)
    width = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(names) * max(1, len(models)) ** 0.5 + 2), 4.2))
    for j, model in enumerate(models):
        xs = [i + (j - (len(models) - 1) / 2) * width for i in range(len(names))]
        vals = [series[model].get(n, (float("nan"), None))[0] for n in names]
        errs = [series[model].get(n, (0.0, None))[1] or 0.0 for n in names]
        errs = [0.0 if (e is None or isinstance(e, str) or math.isnan(e)) else e for e in errs]
        ax.bar(xs, vals, width, yerr=errs, capsize=2, label=model)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("score")
    if title:
        ax.set_title(title)
    if len(models) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(path)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return out

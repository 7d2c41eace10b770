"""Curves and the report-card section of a continued-pretraining run.

Reads ``metrics.jsonl`` and ``summary.json`` written by the engine; plots with matplotlib (Agg).
Hand-written: a few plots and a Markdown table.
"""

from __future__ import annotations

import json
from pathlib import Path

from vinaforge.io import atomic_path


def read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _phase_spans(steps: list[dict]) -> list[tuple[str, int, int]]:
    spans: list[tuple[str, int, int]] = []
    for r in steps:
        if spans and spans[-1][0] == r["phase"]:
            spans[-1] = (r["phase"], spans[-1][1], r["step"])
        else:
            spans.append((r["phase"], r["step"], r["step"]))
    return spans


def plot_curves(metrics: list[dict], loss_png: Path, bpb_png: Path, title: str = "") -> list[Path]:
    """Training loss per step (phases shaded) and held-out bits per byte; returns the PNGs written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r for r in metrics if "loss" in r]
    evals = [r for r in metrics if "eval_bpb" in r]
    written = []
    if steps:
        fig, ax = plt.subplots(figsize=(6, 3.2))
        ax.plot([r["step"] for r in steps], [r["loss"] for r in steps], lw=1.2, color="C0")
        for i, (name, lo, hi) in enumerate(_phase_spans(steps)):
            ax.axvspan(lo - 0.5, hi + 0.5, color=f"C{i + 1}", alpha=0.12, lw=0)
            ax.text(
                (lo + hi) / 2,
                0.97,
                name,
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="top",
                fontsize=8,
            )
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("training loss (nats/token)")
        ax.set_title(title or "training loss")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        with atomic_path(loss_png) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        plt.close(fig)
        written.append(loss_png)
    if evals:
        fig, ax = plt.subplots(figsize=(6, 3.2))
        ax.plot([r["step"] for r in evals], [r["eval_bpb"] for r in evals], marker="o", lw=1.2, color="C3")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("held-out bits per byte")
        ax.set_title("held-out Vietnamese bits per byte")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        with atomic_path(bpb_png) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        plt.close(fig)
        written.append(bpb_png)
    return written


def render_report(summary: dict) -> str:
    """Markdown section: provenance warning, per-phase table, key figures."""
    from vinaforge.model.tiny import RANDOM_INIT_LABEL

    lines = []
    if summary.get("random_init"):
        lines.append(
            f"**Model weights: {RANDOM_INIT_LABEL}**: they know only what vinaforge runs taught them "
            "(the demo's few steps, or a seed recipe's own pretraining, recipes/seeds/). Figures on "
            "them measure those runs, not a real pretrained base.\n"
        )
    lines += [
        "| phase | trainable | trainable params | steps | tokens | realised mixture |",
        "|---|---|---|---|---|---|",
    ]
    for p in summary.get("phases", []):
        mix = ", ".join(f"{k} {v:.1%}" for k, v in p["realised_mixture"].items())
        lines.append(
            f"| {p['name']} | {p['trainable']} | {p['trainable_params']:,} of {p['total_params']:,} "
            f"| {p['steps']} | {p['tokens']:,} | {mix} |"
        )
    lines.append("")

    def fmt(v, spec=".4f"):
        return "n/a" if v is None else format(v, spec)

    mfu = summary.get("mfu")
    lines += [
        "| | |",
        "|---|---|",
        f"| held-out bits per byte, start → end | {fmt(summary.get('init_bpb'))} → {fmt(summary.get('final_bpb'))} |",
        f"| training loss, first → last step | {fmt(summary.get('first_loss'))} → {fmt(summary.get('final_loss'))} |",
        f"| tokens trained | {summary.get('tokens', 0):,} in {summary.get('steps', 0)} steps |",
        f"| throughput (median) | {fmt(summary.get('tokens_per_s'), ',.0f')} tokens/s, "
        f"MFU {'n/a' if mfu is None else f'{mfu:.1%}'} ({summary.get('peak_source', '')}) |",
        f"| precision, processes | {summary.get('precision')}, {summary.get('processes')} |",
        f"| final model | `{Path(summary.get('final', 'final')).name}/` (Hugging Face format, with tokenizer) |",
    ]
    return "\n".join(lines) + "\n"

"""Should a team extend this base's vocabulary at all? ``vinaforge tokenizer advise``.

Qwen and Llama-3 already cover Vietnamese far better than Mistral-v0.1 or Llama-2, so the answer
depends on the base. For a base tokenizer and a Vietnamese corpus sample this extends the base at
several sizes (0, 1k, 2k, 4k, 8k, 16k by default: the real extension of
:func:`vinaforge.tokenizer.extend.extend_tokenizer`, the corpus counted once), measures each on
held-out text, and, given the model's ``config.json``, predicts the cost of a Vietnamese workload:

- **tokens per syllable** (Vietnamese) and tokens per word (English, to see that it does not move);
- **new embedding parameters**: added tokens × hidden size, twice when input and output
  embeddings are untied — rows that start from a mean and must be trained;
- **training compute per Vietnamese syllable**: tokens/syllable × 6 × (body + LM-head
  parameters), the usual 6·N·D (input embeddings do no matmul), relative to the base;
- **inference compute per generated syllable**: the same with 2·N, and the syllables a context
  window holds.

The recommendation: no extension when the base already spends at most ``good_fertility`` tokens
per syllable or no size saves ``min_saving`` of the training compute (new rows then cost more than
they save); otherwise the smallest size within 2% of the best compute saving, with its reason.

Hand-written: no anchor ships this (issue 21); the extension, fertility and parameter counts are
the project's own tokenizer code and transformers' (meta-device model, no weights loaded).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vinaforge.tokenizer.extend import ExtendSettings

DEFAULT_SIZES = (0, 1000, 2000, 4000, 8000, 16000)


@dataclass
class ModelShape:
    """What the cost model needs from a model's config.json."""

    body_params: int  # every parameter but the input embeddings and the LM head
    hidden: int
    vocab: int
    tied: bool


@dataclass
class SizeRow:
    asked: int
    added: int
    vocab_size: int
    vi_tokens_per_syllable: float | None
    en_tokens_per_word: float | None
    roundtrip_failures: int
    new_embedding_params: int | None = None
    train_cost: float | None = None  # relative to the base, per Vietnamese syllable
    infer_cost: float | None = None
    syllables_per_4k_context: float | None = None


@dataclass
class Advice:
    base: str
    rows: list[SizeRow]
    shape: ModelShape | None
    recommended: int
    reason: str
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"base": self.base, "recommended_new_tokens": self.recommended, "reason": self.reason,
                "model": asdict(self.shape) if self.shape else None, "rows": [asdict(r) for r in self.rows],
                "settings": self.settings}  # fmt: skip


def model_shape(model_dir: str | Path) -> ModelShape:
    """Parameter counts of a model folder from its config alone (meta device: nothing is allocated)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(str(model_dir))
    text_cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    total = sum(p.numel() for p in model.parameters())  # tied weights are counted once
    hidden = int(text_cfg.hidden_size)
    vocab = int(text_cfg.vocab_size)
    tied = bool(getattr(text_cfg, "tie_word_embeddings", getattr(cfg, "tie_word_embeddings", False)))
    body = total - vocab * hidden * (1 if tied else 2)
    return ModelShape(body_params=int(body), hidden=hidden, vocab=vocab, tied=tied)


def sweep(
    base: str,
    corpus: list[str],
    vi_texts: list[str],
    en_texts: list[str] | None = None,
    sizes: tuple[int, ...] | list[int] = DEFAULT_SIZES,
    settings: ExtendSettings | None = None,
    work_dir: str | Path | None = None,
    progress: bool = False,
) -> list[SizeRow]:
    """Extend ``base`` at every size (the corpus counted once) and measure each on the texts."""
    from vinaforge.tokenizer.extend import count_corpus, extend_tokenizer
    from vinaforge.tokenizer.fertility import fertility
    from vinaforge.tokenizer.resolve import resolve_tokenizer

    settings = settings or ExtendSettings()
    rows: list[SizeRow] = []
    units = None
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        for size in sorted(set(int(s) for s in sizes)):
            if size == 0:
                tok, added = resolve_tokenizer(base), 0
            else:
                if units is None:
                    units, stats = count_corpus(corpus, settings, progress=progress)
                    units.stats = stats
                out = Path(tmp) / f"extended-{size}"
                step = settings.model_copy(update={"max_new_tokens": size, "pad_to_multiple_of": 1})
                res = extend_tokenizer(base, out, corpus=corpus, settings=step, progress=False, units=units)
                tok, added = resolve_tokenizer(out), res.added
            fig = fertility(f"+{size}", tok, vi_texts, en_texts or None)
            fails = sum(p.roundtrip_failures for p in (fig.vi, fig.en) if p)
            rows.append(SizeRow(asked=size, added=added, vocab_size=fig.vocab_size,
                                vi_tokens_per_syllable=fig.vi_tokens_per_syllable,
                                en_tokens_per_word=fig.en_tokens_per_word, roundtrip_failures=fails))  # fmt: skip
    return rows


def add_costs(rows: list[SizeRow], shape: ModelShape) -> None:
    """Fill each row's new embedding parameters and compute relative to the base (row 0)."""
    base = rows[0]
    if not base.vi_tokens_per_syllable:
        return

    def per_token(vocab: int) -> int:  # matmul parameters a token passes through
        return shape.body_params + vocab * shape.hidden

    base_cost = base.vi_tokens_per_syllable * per_token(base.vocab_size)
    for r in rows:
        r.new_embedding_params = r.added * shape.hidden * (1 if shape.tied else 2)
        if r.vi_tokens_per_syllable:
            cost = r.vi_tokens_per_syllable * per_token(r.vocab_size)
            r.train_cost = r.infer_cost = cost / base_cost  # 6·N·D and 2·N·D: the same ratio
            r.syllables_per_4k_context = 4096 / r.vi_tokens_per_syllable


def recommend(rows: list[SizeRow], good_fertility: float = 1.6, min_saving: float = 0.15) -> tuple[int, str]:
    """(tokens to add, reason) from the sweep; 0 means "do not extend"."""
    base = rows[0]
    f0 = base.vi_tokens_per_syllable
    if f0 is None:
        return 0, "no Vietnamese text was measured"
    costed = [r for r in rows[1:] if r.vi_tokens_per_syllable]
    if not costed:
        return 0, "no extension could be measured"

    def cost(r: SizeRow) -> float:
        return r.train_cost if r.train_cost is not None else r.vi_tokens_per_syllable / f0

    best = min(costed, key=cost)
    saving = 1 - cost(best)
    what = "training compute" if best.train_cost is not None else "tokens"
    if f0 <= good_fertility:
        return 0, (f"the base already spends {f0:.2f} tokens per Vietnamese syllable (≤ {good_fertility}); "
                   f"the best extension (+{best.added:,}) saves {saving:.0%} of the {what}, and its new rows "
                   "start untrained: keep the vocabulary")  # fmt: skip
    if saving < min_saving:
        return 0, (f"no size saves {min_saving:.0%} of the {what} per Vietnamese syllable (best: +{best.added:,}, "
                   f"{saving:.0%}): keep the vocabulary")  # fmt: skip
    pick = next(r for r in costed if cost(r) <= cost(best) + 0.02)
    extra = (f", {pick.new_embedding_params:,} new embedding parameters to train"
             if pick.new_embedding_params is not None else "")  # fmt: skip
    return pick.added, (f"+{pick.added:,} tokens: {f0:.2f} → {pick.vi_tokens_per_syllable:.2f} tokens per syllable, "
                        f"{1 - cost(pick):.0%} less {what} per Vietnamese syllable{extra}; larger sizes save "
                        f"under 2 points more")  # fmt: skip


def advise(
    base: str,
    corpus: list[str],
    vi_texts: list[str],
    en_texts: list[str] | None = None,
    model: str | Path | None = None,
    sizes: tuple[int, ...] | list[int] = DEFAULT_SIZES,
    settings: ExtendSettings | None = None,
    work_dir: str | Path | None = None,
    progress: bool = False,
) -> Advice:
    """The whole advice: sweep, costs (when ``model`` is given), recommendation."""
    sizes = sorted({0, *map(int, sizes)})
    rows = sweep(base, corpus, vi_texts, en_texts, sizes, settings, work_dir, progress)
    shape = model_shape(model) if model else None
    if shape:
        add_costs(rows, shape)
    n, reason = recommend(rows)
    used = (settings or ExtendSettings()).model_dump(mode="json")
    return Advice(base=base, rows=rows, shape=shape, recommended=n, reason=reason, settings={"sizes": sizes, **used})


def markdown(advice: Advice) -> str:
    def f(x, fmt):
        return "–" if x is None else fmt.format(x)

    lines = [
        "| new tokens | vocab | tokens / vi syllable | tokens / en word | new embedding params | "
        "train & inference compute / vi syllable | vi syllables in 4k tokens | round-trip failures |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in advice.rows:
        lines.append(
            f"| {r.added:,} | {r.vocab_size:,} | {f(r.vi_tokens_per_syllable, '{:.3f}')} | "
            f"{f(r.en_tokens_per_word, '{:.3f}')} | {f(r.new_embedding_params, '{:,}')} | "
            f"{f(r.train_cost, '×{:.3f}')} | {f(r.syllables_per_4k_context, '{:,.0f}')} | {r.roundtrip_failures} |"
        )
    if advice.shape:
        s = advice.shape
        lines += ["", f"Model: {s.body_params:,} body parameters, hidden {s.hidden}, "
                      f"{'tied' if s.tied else 'untied'} embeddings. Compute = tokens × (body + LM head)."]  # fmt: skip
    else:
        lines += ["", "No model config given (`--model`): compute and embedding columns are left out."]
    verdict = "do not extend" if advice.recommended == 0 else f"extend by {advice.recommended:,} tokens"
    lines += ["", f"**Recommendation: {verdict}** — {advice.reason}."]
    return "\n".join(lines)


def plot(advice: Advice, path: str | Path) -> None:
    """Tokens per syllable (and relative compute) against added tokens."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vinaforge.io import atomic_path

    xs = [r.added for r in advice.rows]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(xs, [r.vi_tokens_per_syllable for r in advice.rows], "o-", color="#c0504d", label="tokens / vi syllable")
    if any(r.en_tokens_per_word for r in advice.rows):
        ax.plot(xs, [r.en_tokens_per_word for r in advice.rows], "s--", color="#2a7ab0", label="tokens / en word")
    ax.set_xlabel("added tokens")
    ax.set_ylabel("tokens")
    ax.set_title(f"Should {advice.base} be extended?", fontsize=9)
    if any(r.train_cost for r in advice.rows):
        ax2 = ax.twinx()
        ax2.plot(xs, [r.train_cost for r in advice.rows], "^:", color="#555555", label="compute / vi syllable (rel.)")
        ax2.set_ylabel("relative compute")
        ax2.legend(fontsize=7, loc="upper center")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def write(advice: Advice, out_dir: str | Path) -> None:
    """``advise.json``, ``advise.md`` and ``advise.png`` in ``out_dir``."""
    from vinaforge.io import atomic_write_json, atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "advise.json", advice.to_dict())
    atomic_write_text(out / "advise.md", markdown(advice) + "\n")
    plot(advice, out / "advise.png")


def load(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))

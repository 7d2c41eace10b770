"""The ``tokenizer`` stage: extend a base tokenizer with Vietnamese tokens, then measure the gain.

Writes ``tokenizer/`` (the Hugging Face folder, with ``vinaforge_extension.json``),
``fertility.json`` (base against extended) and ``fertility.png``, and a report section.
Fertility is measured on ``vi_eval``/``en_eval`` files when given, else on the first texts of
the corpus (the report says which). Resumable: a finished ``tokenizer/`` made with the same
settings is reused; the fertility figures are recomputed (seconds).

Hand-written glue between :mod:`vinaforge.tokenizer` and the run engine.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pydantic import Field, model_validator

from vinaforge.io import atomic_write_json
from vinaforge.recipe import InputPath, InputPaths
from vinaforge.stage import Figure, StageConfig, StageContext, StageResult
from vinaforge.tokenizer.extend import EXTENSION_FILE, ExtendSettings

log = logging.getLogger(__name__)

RESUMABLE = True


class AdviseConfig(StageConfig):
    """``advise``: also extend at several sizes and say which is worth it (``vinaforge tokenizer advise``)."""

    sizes: list[int] = Field(default_factory=lambda: [1000, 2000, 4000, 8000, 16000], min_length=1)
    model: InputPath | None = Field(None, description="the model folder (config.json): adds compute costs")

    @model_validator(mode="after")
    def _sizes(self) -> AdviseConfig:
        if any(s < 0 for s in self.sizes):
            raise ValueError("advise.sizes: numbers of tokens to add must not be negative")
        return self


class Config(StageConfig, ExtendSettings):
    """Settings of the ``tokenizer`` stage (the extension settings plus sources and evaluation)."""

    base: str = Field("mistral-v0.1", description="Base tokenizer: packaged name, .model, folder or hub id.")
    corpus: InputPaths | None = Field(None, description="Corpus files/folders/globs or @stage/... outputs.")
    vocab: InputPath | None = Field(None, description="A trained tokenizer folder to take pieces from.")
    vi_eval: InputPaths = Field(default_factory=list, description="Vietnamese texts for fertility.")
    en_eval: InputPaths = Field(default_factory=list, description="English texts for fertility.")
    eval_field: str = Field("text", description="JSON field of the evaluation texts.")
    eval_max_texts: int = Field(2000, ge=1, description="At most this many texts per evaluation file.")
    advise: AdviseConfig | None = Field(None, description="Sweep extension sizes and recommend one (corpus only).")

    @model_validator(mode="after")
    def _one_source(self) -> Config:
        if (self.corpus is None) == (self.vocab is None):
            raise ValueError(
                "give exactly one of `corpus` (texts to learn tokens from) or `vocab` (a trained tokenizer)"
            )
        return self

    @model_validator(mode="after")
    def _advise_needs_corpus(self) -> Config:
        if self.advise is not None and self.corpus is None:
            raise ValueError("advise sweeps extensions learnt from `corpus`; it cannot use `vocab`")
        return self

    def settings(self) -> ExtendSettings:
        return ExtendSettings(**{k: getattr(self, k) for k in ExtendSettings.model_fields})


def _eval_texts(ctx: StageContext, paths: list[str], field: str, limit: int) -> list[str]:
    from vinaforge.io import expand_inputs
    from vinaforge.tokenizer.fertility import load_texts

    texts: list[str] = []
    for f in expand_inputs([str(p) for p in paths]):
        texts += load_texts(f, field, limit)
    return texts


def _reusable(folder: Path, settings: ExtendSettings, base: str, source: dict) -> bool:
    """A finished extension in ``folder`` made from the same base, source and settings."""
    path = folder / EXTENSION_FILE
    if not path.is_file():
        return False
    rec = json.loads(path.read_text(encoding="utf-8"))
    return (
        rec.get("settings") == settings.model_dump(mode="json")
        and rec["base"]["spec"] == base
        and rec.get("source") == source
    )


def _report(config: Config, rec: dict, results: list, eval_source: str) -> str:
    added = rec["added"]
    cand = rec["candidates"]
    lines = [
        f"Extended **{config.base}** ({rec['base']['family']}, {rec['base']['vocab_size']:,} ids) with "
        f"**{added['new_tokens']:,} new tokens**"
        + (f" and {added['placeholders']} reserved placeholders" if added["placeholders"] else "")
        + f" → {rec['vocab_size']:,} ids (strategy `{config.strategy}`, padded to a multiple of "
        f"{config.pad_to_multiple_of}). Every new token is reached by the base's own BPE merges.",
        "",
        f"Fertility on {eval_source}:",
        "",
        "| tokenizer | vocab | tokens / vi syllable | single-token syllables | tokens / en word | chars / token | round-trip failures |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]

    def f(x, fmt):
        return "–" if x is None else fmt.format(x)

    for r in results:
        fails = sum(p.roundtrip_failures for p in (r.vi, r.en) if p)
        lines.append(
            f"| {r.name} | {r.vocab_size:,} | {f(r.vi_tokens_per_syllable, '{:.3f}')} | "
            f"{f(r.single_token_syllable_share, '{:.1%}')} | {f(r.en_tokens_per_word, '{:.3f}')} | "
            f"{f(r.chars_per_token, '{:.2f}')} | {fails} |"
        )
    if "total_occurrences" in cand:
        rej = ", ".join(f"{k} {v:,}" for k, v in sorted(cand["rejected_occurrences"].items())) or "none"
        lines += [
            "",
            f"Candidates: {cand['total_occurrences']:,} syllable occurrences in the sample, "
            f"{cand['accepted_occurrences']:,} usable ({cand['accepted_distinct']:,} distinct); rejected by rule: {rej}.",
        ]
    top = [t for t in added["tokens"] if t["kind"] == "merge"][:20]
    if top:
        lines += ["", "First new tokens: " + ", ".join(f"`{t['token']}`" for t in top) + "."]
    return "\n".join(lines)


def run(config: Config, ctx: StageContext) -> StageResult:
    from vinaforge.tokenizer.extend import extend_tokenizer, read_extension
    from vinaforge.tokenizer.fertility import fertility, plot_fertility
    from vinaforge.tokenizer.resolve import resolve_tokenizer

    out = ctx.work_dir / "tokenizer"
    settings = config.settings()
    corpus = [str(p) for p in config.corpus] if config.corpus else None  # resolved by the engine
    vocab = Path(config.vocab) if config.vocab else None
    source = {"corpus": corpus, "vocab": str(vocab) if vocab is not None else None}
    if _reusable(out, settings, config.base, source):
        ctx.log.info("reusing the extended tokenizer already in %s", out)
    else:
        extend_tokenizer(config.base, out, corpus=corpus, vocab_dir=vocab, settings=settings, progress=True)
    rec = read_extension(out)

    if config.vi_eval:
        vi = _eval_texts(ctx, config.vi_eval, config.eval_field, config.eval_max_texts)
        source = f"{len(vi):,} Vietnamese texts from {', '.join(config.vi_eval)}"
    elif config.corpus:
        vi = _eval_texts(ctx, config.corpus, config.field, config.eval_max_texts)
        source = f"the first {len(vi):,} texts of the corpus (the training sample: not held out)"
    else:
        vi = []
        source = "no Vietnamese texts"
    en = (
        _eval_texts(ctx, config.en_eval, config.eval_field, config.eval_max_texts) if config.en_eval else None
    )
    if en:
        source += f" and {len(en):,} English texts from {', '.join(config.en_eval)}"
    results = [
        fertility(f"{config.base} (base)", resolve_tokenizer(config.base), vi or None, en),
        fertility("extended", resolve_tokenizer(out), vi or None, en),
    ]
    atomic_write_json(ctx.work_dir / "fertility.json", {r.name: r.to_dict() for r in results})
    plot_fertility(
        results, ctx.work_dir / "fertility.png", title="Tokens per syllable / word: base vs extended"
    )

    figures = [Figure("fertility.png", "Tokens per Vietnamese syllable (and English word), base vs extended")]
    report = _report(config, rec, results, source)
    advice = None
    if config.advise is not None and vi:
        from vinaforge.tokenizer import advise as adv

        advice = adv.advise(config.base, corpus or [], vi, en, model=config.advise.model, sizes=config.advise.sizes,
                            settings=settings, work_dir=ctx.work_dir)  # fmt: skip
        adv.write(advice, ctx.work_dir / "advise")
        report += "\n\n**Should this base be extended?** (`vinaforge tokenizer advise`, on the same texts)\n\n"
        report += adv.markdown(advice)
        figures.append(Figure("advise/advise.png", "Tokens per syllable and relative compute against added tokens"))

    base_r, ext_r = results
    metrics = {
        "base_vocab_size": rec["base"]["vocab_size"],
        "vocab_size": rec["vocab_size"],
        "new_tokens": rec["added"]["new_tokens"],
        "placeholders": rec["added"]["placeholders"],
        "base_vi_tokens_per_syllable": base_r.vi_tokens_per_syllable,
        "vi_tokens_per_syllable": ext_r.vi_tokens_per_syllable,
        "single_token_syllable_share": ext_r.single_token_syllable_share,
        "base_en_tokens_per_word": base_r.en_tokens_per_word,
        "en_tokens_per_word": ext_r.en_tokens_per_word,
    }
    if advice is not None:
        metrics["advised_new_tokens"] = advice.recommended
    return StageResult(
        outputs={"tokenizer": "tokenizer", "fertility": "fertility.json"},
        metrics=metrics,
        report=report,
        figures=figures,
    )

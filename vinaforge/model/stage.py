"""The ``model`` stage: load a base (or build a tiny random one), extend it to the new tokenizer.

Output ``model/``: a Hugging Face folder (weights, config, extended tokenizer) that
``AutoModelForCausalLM.from_pretrained`` loads, plus ``new_tokens.jsonl`` (each new token, its text
and the base sub-tokens its rows were averaged from) and ``resize.json``. A tiny model is
labelled "randomly initialised" in the report and in ``config.json``.

Hand-written glue over :mod:`vinaforge.model.load`, :mod:`~vinaforge.model.tiny` and
:mod:`~vinaforge.model.resize`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vinaforge.io import atomic_path, atomic_write_json
from vinaforge.recipe import InputPath
from vinaforge.stage import Figure, StageConfig, StageContext, StageResult

log = logging.getLogger(__name__)


class TinySpec(BaseModel):
    """Architecture of a tiny randomly initialised model (vocabulary = the base tokenizer)."""

    model_config = ConfigDict(extra="forbid")

    arch: Literal["mistral", "llama", "qwen2", "gemma2", "gemma3", "phi3"] = "mistral"
    layers: int = Field(2, gt=0)
    hidden: int = Field(128, gt=0)
    heads: int = Field(4, gt=0)
    kv_heads: int | None = Field(None, gt=0)
    intermediate: int | None = Field(None, gt=0)
    max_position: int = Field(2048, gt=0)
    tie_word_embeddings: bool | None = Field(None, description="default: the family's own (qwen2, gemma tie)")


class Config(StageConfig):
    base: str | None = Field(None, description="base model: HF folder or hub id")
    tiny: TinySpec | None = Field(None, description="build a tiny random model instead of loading a base")
    base_tokenizer: str | None = Field(
        None, description="the base model's tokenizer (name, HF folder or .model); default: the base's own"
    )
    tokenizer: InputPath | None = Field(
        None, description="extended tokenizer folder, e.g. @tokenizer/tokenizer"
    )
    init: Literal["mean", "mean_resizing", "random", "zero"] = "mean"
    pad_to_multiple_of: int = Field(64, ge=1)
    untie: bool = Field(False, description="give a tied head its own matrix (default: tied stays tied)")
    dtype: str = "auto"
    seed: int | None = Field(None, description="default: the recipe's seed")

    @model_validator(mode="after")
    def _one_source(self) -> Config:
        if (self.base is None) == (self.tiny is None):
            raise ValueError("give exactly one of `base` (a model to load) or `tiny` (an architecture)")
        if self.tiny is not None and self.base_tokenizer is None:
            raise ValueError(
                "`tiny` needs `base_tokenizer` (its vocabulary), e.g. base_tokenizer: mistral-v0.1"
            )
        return self


def load_base_tokenizer(name_or_path: str):
    """A HF tokenizer folder, a SentencePiece ``.model``, a hub id or a packaged name (``mistral-v0.1``)."""
    from vinaforge.model.load import load_tokenizer

    if Path(name_or_path).expanduser().is_dir():
        return load_tokenizer(str(name_or_path))
    from vinaforge.tokenizer.resolve import resolve_tokenizer

    return resolve_tokenizer(name_or_path)


def build_or_load(config: Config, base_tok, seed: int):
    from vinaforge.model.load import load_causal_lm
    from vinaforge.model.tiny import tiny_model_for

    if config.tiny is None:
        return load_causal_lm(config.base, dtype=config.dtype)
    t = config.tiny
    return tiny_model_for(
        base_tok,
        t.arch,
        layers=t.layers,
        hidden=t.hidden,
        heads=t.heads,
        kv_heads=t.kv_heads,
        intermediate=t.intermediate,
        max_position=t.max_position,
        tie_word_embeddings=t.tie_word_embeddings,
        seed=seed,
    )


def write_sources(path: Path, info, base_tok) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for s in info.sources:
            rec = {
                "id": s.id,
                "token": s.token,
                "text": s.text,
                "base_ids": s.base_ids,
                "base_tokens": base_tok.convert_ids_to_tokens(s.base_ids),
                "how": s.how,
            }
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")


def pieces_histogram(path: Path, info) -> bool:
    """Histogram of base sub-tokens per new token (how much each new token compresses)."""
    if not info.sources:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = [len(s.base_ids) for s in info.sources]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.hist(counts, bins=range(0, max(counts) + 2), align="left", rwidth=0.85)
    ax.set_xlabel("base sub-tokens per new token")
    ax.set_ylabel("new tokens")
    ax.set_title(f"{len(counts)} new tokens, init=mean")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return True


def render_report(config: Config, model, info, random_init: bool, params: int, base_tok=None) -> str:
    from vinaforge.model.tiny import RANDOM_INIT_LABEL

    source = (
        f"tiny {config.tiny.arch} ({config.tiny.layers} layers, hidden {config.tiny.hidden})"
        if config.tiny
        else config.base
    )
    lines = []
    if random_init:
        lines.append(
            f"**Model weights: {RANDOM_INIT_LABEL}.** Figures measured on it say nothing about a real base.\n"
        )
    lines += [
        "| | |",
        "|---|---|",
        f"| source | {source} |",
        f"| architecture | {type(model).__name__} |",
        f"| parameters | {params:,} |",
    ]
    if info is None:
        lines.append("| embeddings | not resized (no extended tokenizer given) |")
        return "\n".join(lines) + "\n"
    lines += [
        f"| embedding rows | {info.num_rows_before:,} → {info.num_rows:,} (multiple of {config.pad_to_multiple_of}) |",
        f"| new tokens | {info.num_new_tokens:,} (ids {info.num_base_tokens:,}–{info.num_base_tokens + info.num_new_tokens - 1:,}) |",
        f"| padding rows | {info.num_padding_rows:,} |",
        f"| init | `{info.init}` |",
        f"| input/output embeddings | {'tied (one matrix)' if info.tied else 'untied (initialised separately)'} |",
    ]
    if info.init == "mean":
        lines.append(f"| new tokens with no base segmentation (mean of all rows) | {info.num_fallback} |")
        if info.num_reserved:
            lines.append(f"| reserved placeholder tokens (mean of all rows) | {info.num_reserved} |")
        # the longest new tokens show the compression best (the first ids are often single letters)
        examples = sorted((s for s in info.sources if s.base_ids), key=lambda s: (-len(s.text), s.id))[:8]
        if examples:
            lines += ["", "Examples (new token ← mean of base sub-tokens):", ""]
            for s in examples:
                pieces = base_tok.convert_ids_to_tokens(s.base_ids) if base_tok is not None else s.base_ids
                lines.append(f"- `{s.token}` ← " + " ".join(f"`{p}`" for p in pieces))
    return "\n".join(lines) + "\n"


def run(config: Config, ctx: StageContext) -> StageResult:
    from vinaforge.model.load import load_tokenizer
    from vinaforge.model.resize import extend_model
    from vinaforge.model.tiny import is_random_init, save_model

    seed = ctx.seed if config.seed is None else config.seed
    if config.base_tokenizer:  # paths and @stage references arrive resolved by the engine
        base_tok = load_base_tokenizer(config.base_tokenizer)
    else:
        base_tok = load_tokenizer(config.base)
    model = build_or_load(config, base_tok, seed)
    info = None
    out_tok = base_tok
    if config.tokenizer:
        out_tok = load_tokenizer(config.tokenizer)
        info = extend_model(
            model,
            base_tok,
            out_tok,
            init=config.init,
            pad_to_multiple_of=config.pad_to_multiple_of,
            seed=seed,
            untie=config.untie,
        )
    save_model(model, out_tok, ctx.work_dir / "model")
    outputs = {"model": "model"}
    figures = []
    if info is not None:
        atomic_write_json(ctx.work_dir / "resize.json", info.summary())
        write_sources(ctx.work_dir / "new_tokens.jsonl", info, base_tok)
        outputs.update({"resize": "resize.json", "new_tokens": "new_tokens.jsonl"})
        if pieces_histogram(ctx.work_dir / "new_token_pieces.png", info):
            figures.append(
                Figure("new_token_pieces.png", "Base sub-tokens averaged per new token (mean init)")
            )
    random_init = is_random_init(model)
    params = model.num_parameters()
    metrics = {
        "parameters": params,
        "random_init": random_init,
        "vocab_rows": model.get_input_embeddings().weight.shape[0],
    }
    if info is not None:
        metrics.update(
            {
                "new_tokens": info.num_new_tokens,
                "padding_rows": info.num_padding_rows,
                "init": info.init,
                "tied": info.tied,
            }
        )
    return StageResult(
        outputs=outputs,
        metrics=metrics,
        report=render_report(config, model, info, random_init, params, base_tok),
        figures=figures,
    )

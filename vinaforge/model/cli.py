"""``vinaforge model``: build tiny models, extend a model to a new tokenizer, inspect a model folder.

A typer shell over :mod:`vinaforge.model`; torch and transformers are imported inside the commands
so that ``vinaforge --help`` stays fast.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
log = logging.getLogger(__name__)


def _fail(err: Exception) -> None:
    from vinaforge.logs import fail

    fail(str(err))


@app.command()
def tiny(
    tokenizer: Annotated[str, typer.Option(help="Base tokenizer: name (mistral-v0.1), HF folder or hub id.")],
    output: Annotated[Path, typer.Option(help="Output HF folder (model + tokenizer).")],
    arch: Annotated[str, typer.Option(help="mistral, llama, qwen2, gemma2, gemma3 or phi3.")] = "mistral",
    layers: Annotated[int, typer.Option()] = 2,
    hidden: Annotated[int, typer.Option()] = 128,
    heads: Annotated[int, typer.Option()] = 4,
    kv_heads: Annotated[int | None, typer.Option(help="Key/value heads (GQA); default: heads.")] = None,
    intermediate: Annotated[int | None, typer.Option(help="MLP width; default 8/3 of hidden.")] = None,
    max_position: Annotated[int, typer.Option()] = 2048,
    tie: Annotated[
        bool | None,
        typer.Option("--tie/--no-tie", help="Tie input and output embeddings; default: the family's own."),
    ] = None,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Build a randomly initialised model in Hugging Face format (labelled random in config.json)."""
    from vinaforge.logs import setup_console
    from vinaforge.model.load import ModelLoadError
    from vinaforge.model.stage import load_base_tokenizer
    from vinaforge.model.tiny import ARCHS, RANDOM_INIT_LABEL, save_model, tiny_model_for

    setup_console()
    if arch not in ARCHS:
        _fail(ValueError(f"--arch {arch!r}: expected one of {', '.join(ARCHS)}"))
    try:
        tok = load_base_tokenizer(tokenizer)
        model = tiny_model_for(
            tok,
            arch,  # type: ignore[arg-type]
            layers=layers,
            hidden=hidden,
            heads=heads,
            kv_heads=kv_heads,
            intermediate=intermediate,
            max_position=max_position,
            tie_word_embeddings=tie,
            seed=seed,
        )
    except (ModelLoadError, ValueError, FileNotFoundError) as err:
        _fail(err)
        return
    save_model(model, tok, output)
    tied = "tied" if model.config.tie_word_embeddings else "untied"
    typer.echo(f"{output}: {arch}, {model.num_parameters():,} parameters, {tied}, {RANDOM_INIT_LABEL}")


@app.command()
def extend(
    model: Annotated[str, typer.Option(help="Model HF folder (or hub id).")],
    tokenizer: Annotated[Path, typer.Option(help="Extended tokenizer folder.")],
    output: Annotated[Path, typer.Option(help="Output HF folder (resized model + extended tokenizer).")],
    init: Annotated[str, typer.Option(help="mean, mean_resizing, random or zero.")] = "mean",
    base_tokenizer: Annotated[
        str | None, typer.Option(help="The model's tokenizer; default: the one saved with the model.")
    ] = None,
    pad_to_multiple_of: Annotated[int, typer.Option()] = 64,
    dtype: Annotated[str, typer.Option(help="auto, float32, bfloat16 or float16.")] = "auto",
    seed: Annotated[int, typer.Option()] = 0,
    untie: Annotated[
        bool, typer.Option(help="Give a tied head its own matrix (default: tied models stay tied).")
    ] = False,
) -> None:
    """Resize embeddings and head to the extended tokenizer and initialise the new rows."""
    from vinaforge.io import atomic_write_json
    from vinaforge.logs import setup_console
    from vinaforge.model.load import ModelLoadError, check_model_source, load_causal_lm, load_tokenizer
    from vinaforge.model.resize import INIT_METHODS, TokenizerMismatchError, extend_model
    from vinaforge.model.stage import load_base_tokenizer, write_sources
    from vinaforge.model.tiny import save_model

    setup_console()
    if init not in INIT_METHODS:
        _fail(ValueError(f"--init {init!r}: expected one of {', '.join(INIT_METHODS)}"))
    try:
        check_model_source(model)
        base_tok = load_base_tokenizer(base_tokenizer) if base_tokenizer else load_tokenizer(model)
        new_tok = load_tokenizer(str(tokenizer))
        lm = load_causal_lm(model, dtype=dtype)
        info = extend_model(
            lm, base_tok, new_tok, init=init, pad_to_multiple_of=pad_to_multiple_of, seed=seed, untie=untie
        )  # type: ignore[arg-type]
    except (ModelLoadError, TokenizerMismatchError, ValueError, FileNotFoundError) as err:
        _fail(err)
        return
    save_model(lm, new_tok, output)
    atomic_write_json(output / "vinaforge_resize.json", info.summary())
    if info.sources:
        write_sources(output / "vinaforge_new_tokens.jsonl", info, base_tok)
    typer.echo(
        f"{output}: {info.num_rows_before:,} -> {info.num_rows:,} rows, {info.num_new_tokens:,} new tokens, "
        f"init={info.init}, {'tied' if info.tied else 'untied'}"
    )


@app.command()
def info(
    model: Annotated[Path, typer.Argument(help="Model HF folder.")],
) -> None:
    """Show a model folder's architecture, size, provenance (random init?) and resize record."""
    import json

    from vinaforge.model.load import ModelLoadError, check_weights, read_model_config
    from vinaforge.model.tiny import RANDOM_INIT_LABEL

    try:
        cfg = read_model_config(model)
        meta = dict(cfg.get("vinaforge") or {})
        weights = check_weights(model)
    except ModelLoadError as err:
        _fail(err)
        return
    typer.echo(f"architecture: {', '.join(cfg.get('architectures') or ['?'])}")
    for key in (
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "tie_word_embeddings",
    ):
        typer.echo(f"{key}: {cfg.get(key)}")
    typer.echo(f"weights: {RANDOM_INIT_LABEL if meta.get('random_init') else 'from a checkpoint'}")
    typer.echo(f"weight files: {', '.join(f.name for f in weights) or 'none (.safetensors)'}")
    if meta.get("resize"):
        typer.echo(f"resize: {json.dumps(meta['resize'], ensure_ascii=False)}")

"""``vinaforge tokenizer``: train, extend, fertility, inspect, advise, import-gguf.

A typer shell over :mod:`vinaforge.tokenizer`. Settings can also come from a YAML file
(``--config``) and ``--set key=value`` overrides, validated like recipe stages. Heavy imports
(transformers, sentencepiece) stay inside the commands so ``vinaforge --help`` is instant;
every expected failure prints one ``error:`` line, never a traceback.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
log = logging.getLogger(__name__)

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML file of settings.")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="Override a setting: KEY=VALUE.")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")]


def _settings(cls, config: Path | None, sets: list[str] | None, given: dict):
    """Settings from --config, then the explicit options, then --set (last wins)."""
    from vinaforge.recipe import load_stage_config

    base = {k: v for k, v in given.items() if v is not None}
    if config is not None:
        from vinaforge.recipe import load_yaml

        data, _ = load_yaml(config)
        base = {**data, **base}
    return load_stage_config(cls, None, sets, base=base)


def _run(fn):
    """Call ``fn`` turning expected errors into one clean line."""
    from vinaforge.logs import fail, setup_console
    from vinaforge.recipe import RecipeError
    from vinaforge.tokenizer.resolve import TokenizerError

    setup_console()
    try:
        return fn()
    except (TokenizerError, RecipeError, FileNotFoundError) as err:
        fail(str(err))
    except KeyboardInterrupt:
        fail("interrupted; nothing was written", code=130)


@app.command()
def train(
    corpus: Annotated[list[str], typer.Option(help="Corpus files, folders or globs (repeatable).")],
    output: Annotated[Path, typer.Option(help="Output tokenizer folder.")],
    vocab_size: Annotated[int | None, typer.Option(help="Vocabulary size (default 24000).")] = None,
    backend: Annotated[str | None, typer.Option(help="sentencepiece (default) or tokenizers.")] = None,
    model_type: Annotated[str | None, typer.Option(help="bpe (default) or unigram.")] = None,
    character_coverage: Annotated[
        float | None, typer.Option(help="sentencepiece: character coverage.")
    ] = None,
    min_frequency: Annotated[int | None, typer.Option(help="tokenizers: minimum pair frequency.")] = None,
    split_digits: Annotated[bool | None, typer.Option("--split-digits/--no-split-digits")] = None,
    sample_mb: Annotated[float | None, typer.Option(help="Train on at most this many MB of text.")] = None,
    field: Annotated[str | None, typer.Option(help="JSON field of the text in .jsonl files.")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Train a Vietnamese tokenizer (sentencepiece or HF tokenizers) on a normalized corpus sample."""

    def go():
        from vinaforge.tokenizer.train import TrainSettings, train_tokenizer

        given = {
            "vocab_size": vocab_size,
            "backend": backend,
            "model_type": model_type,
            "character_coverage": character_coverage,
            "min_frequency": min_frequency,
            "split_digits": split_digits,
            "sample_bytes": int(sample_mb * 1e6) if sample_mb is not None else None,
            "field": field,
        }
        settings = _settings(TrainSettings, config, set_, given)
        rec = train_tokenizer(corpus, output, settings, progress=progress)
        typer.echo(
            f"{output}: {rec['vocab_size']} tokens, trained on {rec['corpus_sample']['bytes_read'] / 1e6:.1f} MB "
            f"in {rec['seconds']:.1f} s"
        )

    _run(go)


@app.command()
def extend(
    base: Annotated[
        str,
        typer.Option(help="Base tokenizer: mistral-v0.1, a .model, a tokenizer.json, a folder or hub id."),
    ],
    output: Annotated[Path, typer.Option(help="Output tokenizer folder.")],
    corpus: Annotated[
        list[str] | None, typer.Option(help="Corpus files, folders or globs (repeatable).")
    ] = None,
    vocab: Annotated[
        Path | None, typer.Option(help="A trained tokenizer folder whose pieces to add.")
    ] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Cap on new tokens (default 8000).")] = None,
    strategy: Annotated[str | None, typer.Option(help="bpe (default) or syllables.")] = None,
    pad_to_multiple_of: Annotated[
        int | None, typer.Option(help="Vocabulary size multiple (default 128).")
    ] = None,
    sample_mb: Annotated[float | None, typer.Option(help="Read at most this many MB of corpus text.")] = None,
    field: Annotated[str | None, typer.Option(help="JSON field of the text in .jsonl files.")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Add Vietnamese tokens to a base tokenizer as real merges; writes a HF folder."""

    def go():
        from vinaforge.tokenizer.extend import ExtendSettings, extend_tokenizer
        from vinaforge.tokenizer.resolve import TokenizerError

        if (corpus is None) == (vocab is None):
            raise TokenizerError("give --corpus PATH... or --vocab DIR (exactly one)")
        given = {
            "max_new_tokens": max_new_tokens,
            "strategy": strategy,
            "pad_to_multiple_of": pad_to_multiple_of,
            "sample_bytes": int(sample_mb * 1e6) if sample_mb is not None else None,
            "field": field,
        }
        settings = _settings(ExtendSettings, config, set_, given)
        res = extend_tokenizer(
            base, output, corpus=corpus, vocab_dir=vocab, settings=settings, progress=progress
        )
        extra = f" + {res.placeholders} placeholders" if res.placeholders else ""
        typer.echo(f"{output}: {res.base_vocab_size} -> {res.vocab_size} tokens (+{res.added} new{extra})")

    _run(go)


@app.command()
def fertility(
    tokenizer: Annotated[
        list[str], typer.Option(help="Tokenizer name, .model, folder or hub id (repeatable).")
    ],
    vi_text: Annotated[
        Path | None, typer.Option(help="Vietnamese texts: .txt, .jsonl(.gz), .conllu.")
    ] = None,
    en_text: Annotated[Path | None, typer.Option(help="English texts: .txt, .jsonl(.gz), .conllu.")] = None,
    field: Annotated[str, typer.Option(help="JSON field of the Vietnamese text.")] = "text",
    en_field: Annotated[
        str | None, typer.Option(help="JSON field of the English text (default: --field).")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Use at most this many texts per file.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the figures as JSON here.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write a bar chart (PNG) here.")] = None,
) -> None:
    """Tokens per syllable/word, characters per token, single-token syllables, round trips."""

    def go():
        from vinaforge.io import atomic_write_json
        from vinaforge.tokenizer.fertility import fertility as measure
        from vinaforge.tokenizer.fertility import load_texts, plot_fertility
        from vinaforge.tokenizer.resolve import TokenizerError, resolve_tokenizer

        if vi_text is None and en_text is None:
            raise TokenizerError("give --vi-text FILE and/or --en-text FILE")
        vi = load_texts(vi_text, field, limit) if vi_text else None
        en = load_texts(en_text, en_field or field, limit) if en_text else None
        results = [measure(spec, resolve_tokenizer(spec), vi, en) for spec in tokenizer]
        print_table(results)
        if json_out is not None:
            atomic_write_json(json_out, {r.name: r.to_dict() for r in results})
            typer.echo(f"wrote {json_out}")
        if plot is not None:
            plot_fertility(results, plot)
            typer.echo(f"wrote {plot}")

    _run(go)


def print_table(results) -> None:
    """The fertility table, readable at 80 columns: tokenizers are numbered, their names listed below whole."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    def f(x, fmt="{:.3f}"):
        return "-" if x is None else fmt.format(x)

    table = Table(title="Tokenizer fertility", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in (
        "#",
        "vocab",
        "tokens per\nvi syllable",
        "one-token\nsyllables",
        "tokens per\nen word",
        "chars per\ntoken",
        "round-trip\nfailures",
    ):
        table.add_column(col, justify="right")
    for i, r in enumerate(results, 1):
        fails = sum(p.roundtrip_failures for p in (r.vi, r.en) if p)
        table.add_row(
            str(i),
            f"{r.vocab_size:,}",
            f(r.vi_tokens_per_syllable, "{:.4f}"),
            f(r.single_token_syllable_share, "{:.1%}"),
            f(r.en_tokens_per_word, "{:.4f}"),
            f(r.chars_per_token, "{:.2f}"),
            str(fails),
        )
    console = Console()
    console.print(table)
    for i, r in enumerate(results, 1):
        console.print(f"{i:>3}  {r.name}", soft_wrap=True, highlight=False, markup=False)


@app.command()
def inspect(
    tokenizer: Annotated[
        list[str], typer.Option(help="Tokenizers to compare, e.g. the base then the extended.")
    ],
    text: Annotated[list[str] | None, typer.Option(help="A text to split (repeatable).")] = None,
    file: Annotated[Path | None, typer.Option(help="Texts from a file (.txt, .jsonl(.gz), .conllu).")] = None,
    field: Annotated[str, typer.Option(help="JSON field of the text in .jsonl files.")] = "text",
    limit: Annotated[int, typer.Option(help="At most this many texts from --file.")] = 5,
) -> None:
    """Show how texts split, tokenizer by tokenizer (new tokens of an extension in green)."""

    def go():
        from vinaforge.tokenizer.extend import EXTENSION_FILE, read_extension
        from vinaforge.tokenizer.fertility import load_texts
        from vinaforge.tokenizer.inspect import inspect_texts, render
        from vinaforge.tokenizer.resolve import TokenizerError, resolve_tokenizer

        texts = list(text or [])
        if file is not None:
            texts += load_texts(file, field, limit)
        if not texts:
            raise TokenizerError("give --text TEXT or --file FILE")
        toks = [(spec, resolve_tokenizer(spec)) for spec in tokenizer]
        new_from = {}
        for spec in tokenizer:
            if (Path(spec) / EXTENSION_FILE).is_file():
                new_from[spec] = read_extension(spec)["added"]["first_id"]
        render(inspect_texts(toks, texts), texts, new_from)

    _run(go)


@app.command()
def advise(
    base: Annotated[str, typer.Option(help="Base tokenizer: mistral-v0.1, a .model, a folder or hub id.")],
    corpus: Annotated[list[str], typer.Option(help="Vietnamese corpus sample to learn tokens from (repeatable).")],
    vi_text: Annotated[Path, typer.Option(help="Held-out Vietnamese texts: .txt, .jsonl(.gz), .conllu.")],
    en_text: Annotated[Path | None, typer.Option(help="English texts (tokens per word must not move).")] = None,
    model: Annotated[
        Path | None, typer.Option(help="The model's folder (config.json is enough): adds compute and embedding costs.")
    ] = None,
    sizes: Annotated[str, typer.Option(help="Comma-separated numbers of tokens to add.")] = "1000,2000,4000,8000,16000",
    sample_mb: Annotated[float, typer.Option(help="Read at most this many MB of corpus text.")] = 20.0,
    limit: Annotated[int, typer.Option(help="Use at most this many texts per evaluation file.")] = 2000,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write advise.json/.md/.png here.")] = None,
) -> None:
    """Should this base be extended? Tokens per syllable and cost against added tokens, and a verdict."""

    def go():
        from vinaforge.tokenizer import advise as adv
        from vinaforge.tokenizer.extend import ExtendSettings
        from vinaforge.tokenizer.fertility import load_texts
        from vinaforge.tokenizer.resolve import TokenizerError

        try:
            wanted = [int(s) for s in sizes.split(",") if s.strip()]
        except ValueError:
            raise TokenizerError(f"--sizes {sizes!r}: give comma-separated whole numbers, e.g. 1000,4000") from None
        if any(s < 0 for s in wanted):
            raise TokenizerError(f"--sizes {sizes!r}: sizes must not be negative")
        if model is not None and not (model / "config.json").is_file():
            raise TokenizerError(f"--model {model}: no config.json there")
        vi = load_texts(vi_text, limit=limit)
        en = load_texts(en_text, limit=limit) if en_text else None
        settings = ExtendSettings(sample_bytes=int(sample_mb * 1e6))
        advice = adv.advise(base, list(corpus), vi, en, model=model, sizes=wanted, settings=settings, progress=True)
        typer.echo(adv.markdown(advice))
        if output is not None:
            adv.write(advice, output)
            typer.echo(f"wrote {output}/advise.json, advise.md, advise.png")

    _run(go)


@app.command("import-gguf")
def import_gguf_cmd(
    gguf_file: Annotated[Path, typer.Argument(help="A GGUF file with a tokenizer (a model or a vocab-only file).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output Hugging Face tokenizer folder.")],
) -> None:
    """A Hugging Face tokenizer folder from a GGUF file, checked against llama.cpp's .inp/.out if present."""

    def go():
        from vinaforge.tokenizer.gguf_import import import_gguf
        from vinaforge.tokenizer.resolve import TokenizerError

        if output.exists():
            raise TokenizerError(f"{output} already exists; choose a new folder")
        rec = import_gguf(gguf_file, output)
        typer.echo(f"{output}: {rec['vocab_size']:,} tokens ({rec['gguf']['model']}, pre {rec['gguf']['pre']})")
        for fix in rec["fixes"]:
            typer.echo(f"  fixed: {fix}")
        ref = rec["reference"]
        if ref is not None:
            typer.echo(f"  llama.cpp reference encodings: {ref['matched']}/{ref['texts']} identical")
            for m in ref["mismatches"]:
                typer.echo(f"    differs: {m['text']!r}: ours {m['ours']} llama.cpp {m['llama.cpp']}")
        sp_ref = rec.get("sentencepiece_reference")
        if sp_ref is not None:
            typer.echo(f"  tokenizer.model written back from the GGUF: {sp_ref['matched']}/{sp_ref['texts']} identical")

    _run(go)

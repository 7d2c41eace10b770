"""``vinaforge eval``: benchmarks (the group's own command), ``bpb``, ``translate``, ``compare``, ``judge``.

Kept cheap to import: torch, transformers and lm-eval load inside the commands.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Benchmarks, bits per byte, translation, comparison reports, LLM-as-judge.",
    invoke_without_command=True,
    no_args_is_help=False,
    pretty_exceptions_enable=False,
)


def _print_results(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from vinaforge.eval import report

    table = Table(title="vinaforge eval")
    for col in ("benchmark", "split", "n", "metric", "value"):
        table.add_column(col, overflow="fold")
    files = []
    for bench, split, m in report.benchmark_rows(results):
        if "answer_shares" in m:
            table.add_row(bench, split, str(m.get("n")), "submission", "written" if m.get("submission") else "-")
            if m.get("submission"):
                files.append(m["submission"])
            continue
        for key in report.HEADLINE:
            if key in m:
                table.add_row(bench, split, str(m.get("n")), key, report.fmt(m[key], m.get(f"{key}_stderr")))
        for cat, cm in (m.get("by_category") or {}).items():
            table.add_row(
                bench, split, str(cm["n"]), f"acc [{cat}]", report.fmt(cm["acc"], cm.get("acc_stderr"))
            )
    Console().print(table)
    for path in files:  # paths stay whole on their own line, whatever the terminal width
        typer.echo(f"submission: {path}")


def _fail_on_errors(fn):
    """Run ``fn``; bad input becomes a one-line error and exit code 2."""
    from vinaforge.eval.compare import CompareError
    from vinaforge.eval.data import TaskDataError
    from vinaforge.eval.translate import ParallelDataError, TranslationError
    from vinaforge.generate.endpoint import EndpointConfigError
    from vinaforge.logs import fail
    from vinaforge.model.load import ModelLoadError
    from vinaforge.recipe import RecipeError

    try:
        return fn()
    except (
        TaskDataError,
        ModelLoadError,
        RecipeError,
        ParallelDataError,
        TranslationError,
        EndpointConfigError,
        CompareError,
        FileNotFoundError,
        ValueError,
    ) as err:
        fail(str(err))


@app.callback(invoke_without_command=True)
def benchmarks(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model folder (or hub id).")] = None,
    tasks: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated: vmlu, arc_vi, mmlu_vi, hellaswag_vi, truthfulqa_vi, "
            "belebele_vie, xnli_vi, xcopa_vi, vmlu_mini, or lm-eval task names like vf_vmlu_dev "
            "(default: vmlu,arc_vi,mmlu_vi)."
        ),
    ] = None,
    num_fewshot: Annotated[int | None, typer.Option(help="Examples in the prompt (default 0).")] = None,
    data_dir: Annotated[
        str | None, typer.Option(help="Folder laid out like ../shared/data/benchmarks.")
    ] = None,
    limit: Annotated[float | None, typer.Option(help="Items per split (a count, or a fraction < 1).")] = None,
    output: Annotated[str | None, typer.Option("--output", "-o", help="Write the results JSON here.")] = None,
    template: Annotated[str | None, typer.Option(help="Prompt language: vi (default) or en.")] = None,
    chat_template: Annotated[
        bool, typer.Option("--chat-template", help="Apply the model's chat template.")
    ] = False,
    batch_size: Annotated[str | None, typer.Option(help="Batch size or 'auto' (default).")] = None,
    device: Annotated[
        str | None, typer.Option(help="cuda, cuda:1, cpu... (default: cuda if available).")
    ] = None,
    dtype: Annotated[str | None, typer.Option(help="auto, bfloat16, float16, float32.")] = None,
    submission_dir: Annotated[
        str | None, typer.Option(help="Where VMLU test submissions go (default: next to --output).")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML file with the keys of the eval recipe stage.")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", "-s", help="Override a setting: KEY=VALUE.")
    ] = None,
) -> None:
    """Run Vietnamese benchmarks through lm-evaluation-harness.

    Every key of the `eval` recipe stage can be set with --config FILE and --set KEY=VALUE
    (held-out bits per byte, fertility, translation too); flags override both.

    Example: vinaforge eval --model runs/x/sft/final --tasks vmlu,arc_vi --num-fewshot 5 --output out.json
    """
    if ctx.invoked_subcommand is not None:
        return
    if all(v is None or v is False or v == () for v in ctx.params.values()):  # a bare `vinaforge eval`
        typer.echo(ctx.get_help())
        raise typer.Exit(0)

    from vinaforge.logs import setup_console

    setup_console()

    def go() -> None:
        import tempfile

        from vinaforge.eval.harness import DEFAULT_TASKS
        from vinaforge.eval.stage import Config, evaluate
        from vinaforge.io import atomic_write_json
        from vinaforge.recipe import apply_sets, load_yaml, validate_config

        values: dict = {}
        lines: dict = {}
        if config is not None:
            values, lines = load_yaml(config)
        apply_sets(values, set_)
        flags = dict(
            model=model,
            tasks=tasks.split(",") if tasks else None,
            num_fewshot=num_fewshot,
            data_dir=data_dir,
            limit=limit,
            template=template,
            chat_template=chat_template or None,
            device=device,
            dtype=dtype,
            batch_size=(int(batch_size) if batch_size and batch_size.isdigit() else batch_size),
        )
        values.update({k: v for k, v in flags.items() if v is not None})
        if "model" not in values:
            raise ValueError("missing option --model (or 'model:' in --config): the model to evaluate")
        if not any(values.get(k) for k in ("tasks", "heldout", "fertility", "translation")):
            values["tasks"] = list(DEFAULT_TASKS)
        cfg = validate_config(Config, values, str(config or "command line"), (), lines)
        out = Path(output) if output else None
        subs = Path(submission_dir) if submission_dir else (out.parent if out else Path("."))
        with tempfile.TemporaryDirectory(prefix="vinaforge-eval-") as work:
            results = evaluate(cfg, Path(work), cfg.seed if cfg.seed is not None else 1234, subs)
        _print_results(results)
        if out:
            atomic_write_json(out, results)
            typer.echo(f"results written to {out}")

    _fail_on_errors(go)


@app.command()
def bpb(
    model: Annotated[str, typer.Option("--model", "-m", help="Model folder (or hub id).")],
    text: Annotated[
        list[str], typer.Option("--text", "-t", help="Text file(s): .txt lines, .jsonl, .conllu, .parquet.")
    ],
    json_out: Annotated[
        Path | None, typer.Option("--json", "--output", "-o", help="Write the result JSON here.")
    ] = None,
    field: Annotated[str, typer.Option(help="JSONL/parquet field holding the text.")] = "text",
    tokenizer: Annotated[str | None, typer.Option(help="Tokenizer folder (default: the model's).")] = None,
    max_length: Annotated[int, typer.Option(min=1, help="Tokens per window.")] = 1024,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    max_texts: Annotated[int | None, typer.Option(min=1, help="Use only the first N texts.")] = None,
    device: Annotated[str | None, typer.Option()] = None,
    dtype: Annotated[str, typer.Option()] = "auto",
    allow_vocab_mismatch: Annotated[
        bool, typer.Option(help="Accept a tokenizer much smaller than the model's vocabulary.")
    ] = False,
) -> None:
    """Bits per byte and token perplexity on held-out text.

    The same definition (and code) as the CPT stage's held-out figure.
    """
    from vinaforge.logs import setup_console

    setup_console()

    def go() -> None:
        from vinaforge.eval.bpb import evaluate_bpb
        from vinaforge.io import atomic_write_json

        res = evaluate_bpb(
            model,
            text,
            field=field,
            tokenizer_path=tokenizer,
            max_length=max_length,
            batch_size=batch_size,
            max_texts=max_texts,
            device=device,
            dtype=dtype,
            allow_vocab_mismatch=allow_vocab_mismatch,
        )
        typer.echo(f"bits per byte: {res['bits_per_byte']:.6f}")
        typer.echo(f"token perplexity: {res['token_perplexity']:.4f}")
        typer.echo(f"texts: {res['n_texts']}, bytes: {res['n_bytes']}, tokens: {res['n_tokens']}")
        if json_out:
            atomic_write_json(json_out, res)
            typer.echo(f"written to {json_out}")

    _fail_on_errors(go)


@app.command()
def translate(
    model: Annotated[
        str, typer.Option("--model", "-m", help="Model folder, hub id, or openai:NAME with --base-url.")
    ],
    pairs: Annotated[Path | None, typer.Option(help="JSONL {en, vi} or TSV en<TAB>vi file.")] = None,
    en_file: Annotated[Path | None, typer.Option(help="English side, one sentence per line.")] = None,
    vi_file: Annotated[Path | None, typer.Option(help="Vietnamese side, aligned with --en-file.")] = None,
    direction: Annotated[list[str] | None, typer.Option(help="en-vi and/or vi-en (default both).")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder.")] = Path("translation"),
    shots: Annotated[int, typer.Option(help="Use the first K pairs as prompt examples.")] = 0,
    max_pairs: Annotated[int | None, typer.Option(help="Score at most N pairs.")] = None,
    max_new_tokens: Annotated[int, typer.Option()] = 128,
    batch_size: Annotated[int, typer.Option()] = 8,
    sample: Annotated[bool, typer.Option("--sample", help="Sample instead of greedy decoding.")] = False,
    temperature: Annotated[float, typer.Option()] = 0.7,
    top_p: Annotated[float, typer.Option()] = 0.9,
    seed: Annotated[int, typer.Option()] = 0,
    chat: Annotated[
        bool, typer.Option("--chat", help="Wrap the request in the model's chat template.")
    ] = False,
    device: Annotated[str | None, typer.Option()] = None,
    dtype: Annotated[str, typer.Option()] = "auto",
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible endpoint for openai:NAME models.")
    ] = None,
    api_key_env: Annotated[
        str | None, typer.Option(help="Name of the env variable holding the endpoint's key.")
    ] = None,
) -> None:
    """Translate En→Vi / Vi→En; score with chrF++ and BLEU.

    Generation is vinaforge.generate (a local model or an OpenAI-compatible endpoint);
    scores are sacrebleu's corpus chrF++ and BLEU, with their signatures.
    """
    from vinaforge.logs import setup_console

    setup_console()

    def go() -> None:
        from vinaforge.eval import translate as tr
        from vinaforge.generate import BackendConfig, SamplingParams, load_backend
        from vinaforge.io import atomic_write_json

        if pairs is not None:
            data = tr.read_pairs(pairs)
        elif en_file is not None and vi_file is not None:
            data = tr.read_aligned(en_file, vi_file)
        else:
            raise ValueError("give --pairs FILE, or both --en-file and --vi-file")
        directions = direction or list(tr.DIRECTIONS)
        for d in directions:
            tr.sides(data[0], d)  # checks the direction name before the model loads
        if model.startswith("openai:"):
            spec = BackendConfig(kind="openai", model=model.removeprefix("openai:"), base_url=base_url,
                                 api_key_env=api_key_env)  # fmt: skip
        else:
            spec = BackendConfig(model=model, device=device, dtype=dtype, batch_size=batch_size)
        params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature if sample else 0.0,
                                top_p=top_p if sample else 1.0, seed=seed)  # fmt: skip
        results = {}
        with load_backend(spec) as backend:
            for d in directions:
                results[d] = tr.translate_pairs(backend, data, d, output, shots=shots, chat=chat,
                                                max_pairs=max_pairs, params=params)  # fmt: skip
                typer.echo(
                    f"{d}: chrF++ {results[d]['chrf++']:.2f}  BLEU {results[d]['bleu']:.2f}  ({results[d]['n']} pairs)"
                )
        atomic_write_json(output / "results.json", {"translation": results, "_meta": {"model": model}})

    _fail_on_errors(go)


@app.command()
def compare(
    sources: Annotated[list[str], typer.Argument(help="Run folders (runs/<name>) or results JSON files.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Report path (.md; .html and .png beside it).")
    ] = Path("compare.md"),
) -> None:
    """Compare runs or models side by side (Markdown, HTML, chart).

    Each source is a run folder, a stage folder or a results JSON file.
    """

    def go() -> None:
        from vinaforge.eval.compare import compare as run_compare

        paths = run_compare(sources, output)
        for kind, path in paths.items():
            typer.echo(f"{kind}: {path}")

    _fail_on_errors(go)


def _mount_judge() -> None:
    """``vinaforge eval judge`` comes from the judge package, when it is there."""
    try:
        found = importlib.util.find_spec("vinaforge.eval.judge.cli") is not None
    except ModuleNotFoundError:
        found = False
    if found:
        from vinaforge.eval.judge.cli import app as judge_app

        app.add_typer(judge_app, name="judge", help="LLM-as-judge: pairwise judging, Elo and Bradley-Terry.")


_mount_judge()

"""``vinaforge data translate|synth|decontaminate``: thin typer commands over :mod:`vinaforge.factory`.

Settings come from the same ``Config`` as the recipe stages (``--config FILE.yaml``, then
``--set key=value``); the few common ones have their own options. Hand-written typer glue.

Errors are one line with credentials masked (:func:`vinaforge.logs.fail`: a key pasted where the
env var *name* goes is not echoed back), and a translate or synth run in which every call failed (a URL
that refuses connections, an endpoint answering garbage) exits 1 saying so, instead of 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML file of settings.")]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="Override one setting: key=value (dotted keys).")
]
OutOpt = Annotated[Path, typer.Option("--output", "-o", help="Output folder (resumed if it exists).")]
ModelOpt = Annotated[
    str | None, typer.Option("--model", "-m", help="Local model folder, or the served model name.")
]
UrlOpt = Annotated[
    str | None, typer.Option("--base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
]
KeyOpt = Annotated[str | None, typer.Option("--api-key-env", help="Name of the env var holding the API key.")]
OverwriteOpt = Annotated[
    bool, typer.Option(help="Clear an earlier run's output first (the call cache stays).")
]


def _backend(model: str | None, base_url: str | None, api_key_env: str | None) -> dict[str, Any]:
    if model is None:
        return {}
    b: dict[str, Any] = {"kind": "openai" if base_url else "local", "model": model}
    if base_url:
        b["base_url"] = base_url
    if api_key_env:
        b["api_key_env"] = api_key_env
    return {"backend": b}


def _run(
    fn,
    model_cls,
    config: Path | None,
    sets: list[str] | None,
    base: dict[str, Any],
    output: Path,
    overwrite: bool,
):
    from vinaforge.chat import ChatFormatError
    from vinaforge.checks import InputCheckError
    from vinaforge.factory.decontaminate import DecontamError
    from vinaforge.factory.pipeline import FactoryError
    from vinaforge.factory.prompts import TemplateSlotError
    from vinaforge.generate.endpoint import EndpointConfigError
    from vinaforge.logs import fail, setup_console
    from vinaforge.recipe import RecipeError, load_stage_config

    setup_console()
    try:
        cfg = load_stage_config(model_cls, config, list(sets or []), base=base)
        return fn(cfg, output, overwrite=overwrite)
    except (
        RecipeError,
        FactoryError,
        DecontamError,
        ChatFormatError,
        TemplateSlotError,
        EndpointConfigError,
        InputCheckError,
    ) as err:
        fail(str(err))


def _fail_if_no_call_worked(s: dict[str, Any], base_url: str | None) -> None:
    u = s.get("usage") or {}
    if s["kept"] == 0 and u.get("calls", 0) > 0 and u.get("failed_calls", 0) == u["calls"]:
        from vinaforge.logs import fail

        fail(f"every call to {base_url or 'the model'} failed ({u['calls']} calls; reasons in the rejected "
             "folder); check --base-url and the server, then re-run with --overwrite (the call cache "
             "is kept, so answered calls are not paid twice)", code=1)  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add the factory commands to the ``vinaforge data`` group."""

    @app.command()
    def translate(
        inputs: Annotated[
            list[str], typer.Argument(help="English chat/instruction files, folders or hf:ORG/NAME.")
        ],
        output: OutOpt,
        model: ModelOpt = None,
        base_url: UrlOpt = None,
        api_key_env: KeyOpt = None,
        format: Annotated[
            str, typer.Option(help="auto, messages, sharegpt, alpaca, prompt_response, preference")
        ] = "auto",
        config: ConfigOpt = None,
        set_: SetOpt = None,
        overwrite: OverwriteOpt = False,
    ) -> None:
        """Translate chat data into Vietnamese: DIR/kept/, DIR/rejected/ (with reasons), DIR/summary.json."""
        from vinaforge.factory.translate import Config
        from vinaforge.factory.translate import translate as run

        base = {"inputs": list(inputs), "format": format, **_backend(model, base_url, api_key_env)}
        s = _run(run, Config, config, set_, base, output, overwrite)
        u = s["usage"]
        typer.echo(
            f"{s['input']} in, {s['kept']} kept, {s['rejected']} rejected; {u.get('calls', 0)} calls, "
            f"{u.get('cache_hits', 0)} cache hits, cost {s['cost']} {s['currency']}; see {output}/summary.json"
        )
        _fail_if_no_call_worked(s, base_url)

    @app.command()
    def synth(
        output: OutOpt,
        model: ModelOpt = None,
        base_url: UrlOpt = None,
        api_key_env: KeyOpt = None,
        mode: Annotated[str, typer.Option(help="instructions or textbook")] = "instructions",
        n: Annotated[int | None, typer.Option(help="instructions: self-instruct prompts")] = None,
        docs: Annotated[
            list[str] | None, typer.Option("--docs", help="textbook: curated documents to rewrite")
        ] = None,
        config: ConfigOpt = None,
        set_: SetOpt = None,
        overwrite: OverwriteOpt = False,
    ) -> None:
        """Synthesize Vietnamese instructions or textbook-style text: DIR/kept/, DIR/rejected/, DIR/summary.json."""
        from vinaforge.factory.synth import Config
        from vinaforge.factory.synth import synth as run

        base: dict[str, Any] = {"mode": mode, **_backend(model, base_url, api_key_env)}
        if n is not None:
            base["instructions"] = {"n": n}
        if docs:
            base["textbook"] = {"inputs": list(docs)}
        s = _run(run, Config, config, set_, base, output, overwrite)
        typer.echo(
            f"{s['input']} generated, {s['kept']} kept, {s['rejected']} rejected; see {output}/summary.json"
        )
        _fail_if_no_call_worked(s, base_url)

    @app.command()
    def decontaminate(
        inputs: Annotated[
            list[str], typer.Argument(help="Datasets to check: files or folders (JSONL, text).")
        ],
        output: OutOpt,
        benchmarks_dir: Annotated[
            list[str] | None, typer.Option("--benchmarks-dir", help="Benchmark data folder(s).")
        ] = None,
        extra: Annotated[list[str] | None, typer.Option("--extra", help="More benchmark files.")] = None,
        ngram: Annotated[int | None, typer.Option(help="Syllables per n-gram (8-13).")] = None,
        keep: Annotated[bool, typer.Option("--keep", help="Only flag contaminated records.")] = False,
        format: Annotated[
            str, typer.Option(help="raw (any JSON object / text line) or a chat format")
        ] = "raw",
        config: ConfigOpt = None,
        set_: SetOpt = None,
        overwrite: OverwriteOpt = False,
    ) -> None:
        """Drop records that overlap a benchmark: DIR/kept/, DIR/rejected/ (which benchmark item), DIR/summary.json."""
        from vinaforge.factory.decontaminate import Config, run_decontaminate

        base: dict[str, Any] = {"inputs": list(inputs), "format": format, "drop": not keep}
        if benchmarks_dir:
            base["benchmark_dirs"] = list(benchmarks_dir)
        if extra:
            base["extra_files"] = list(extra)
        if ngram is not None:
            base["ngram"] = ngram
        s = _run(run_decontaminate, Config, config, set_, base, output, overwrite)
        c = s["contamination"]
        by = ", ".join(f"{k} {v}" for k, v in c["by_benchmark"].items()) or "none"
        typer.echo(f"{s['input']} in, {c['contaminated']} contaminated ({by}); see {output}/summary.json")

"""``vinaforge export``: HF folder + GGUF + Ollama Modelfile + model card, verified against llama.cpp.

A typer shell over :mod:`vinaforge.export`; the settings are the ``export`` stage's.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
log = logging.getLogger(__name__)


@app.command("run")
def run_cmd(
    model: Annotated[Path, typer.Argument(help="Model folder (Hugging Face format).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Export folder (must not exist).")],
    dtype: Annotated[str, typer.Option(help="bf16, fp16 or fp32 for the HF safetensors.")] = "bf16",
    gguf: Annotated[list[str] | None, typer.Option(help="GGUF type (repeatable): f16, q8_0, q4_k_m...")] = None,
    chat_template: Annotated[str | None, typer.Option(help="Template name, .jinja file; default: the model's.")] = None,
    run_dir: Annotated[Path | None, typer.Option("--run", help="Run folder whose manifest feeds the model card.")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML with export settings.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", "-s", help="Override a key: KEY=VALUE.")] = None,
) -> None:
    """Export a model: HF folder, GGUF files, Ollama Modelfile, model card; verified when llama.cpp is installed."""
    from vinaforge.export.config import Config
    from vinaforge.export.export import export_model
    from vinaforge.export.llamacpp import ExportError
    from vinaforge.export.verify import VerificationError
    from vinaforge.io import atomic_path
    from vinaforge.logs import fail, setup_console
    from vinaforge.model.load import ModelLoadError
    from vinaforge.recipe import RecipeError, load_stage_config

    setup_console()
    if output.exists():
        fail(f"output folder {output} exists; remove it or choose another --output")
    from vinaforge.checks import InputCheckError, check_output_dir

    try:
        check_output_dir(output)
    except InputCheckError as err:
        fail(str(err))
    base: dict = {"model": str(model), "dtype": dtype}
    if gguf:
        base["gguf"] = gguf
    if chat_template:
        base["chat_template"] = chat_template
    try:
        cfg = load_stage_config(Config, config, set_, base=base)
        with atomic_path(output) as tmp:
            record = export_model(cfg, tmp, name=cfg.card.name or output.name, run_dir=run_dir)
    except (RecipeError, ExportError, VerificationError, ModelLoadError, FileNotFoundError, ValueError) as err:
        fail(str(err))
        return
    _print_summary(output, record)


def _print_summary(output: Path, record: dict) -> None:
    from vinaforge.export.stage import _state

    typer.echo(f"{output}/hf: {record['hf']['dtype']} safetensors + tokenizer + chat template + README.md")
    for g, v in zip(record["gguf"], record["verification"], strict=True):
        typer.echo(f"{output}/{g['file']}: {g['bytes'] / 1e6:.1f} MB in {g['seconds']:.1f} s; {_state(v)}")


@app.command()
def verify(
    export_dir: Annotated[Path, typer.Argument(help="A folder written by `vinaforge export run` or the export stage.")],
    max_new_tokens: Annotated[int, typer.Option(min=1)] = 16,
) -> None:
    """Verify an export's GGUF files against its HF folder (needs the llama.cpp runtime)."""
    import json

    from vinaforge.export import llamacpp
    from vinaforge.export.export import GENERATION_TYPES
    from vinaforge.export.hf import choose_template
    from vinaforge.export.verify import INSTALL_HINT, VERIFY_TEXTS, failure_message, verify_gguf
    from vinaforge.io import atomic_write_json
    from vinaforge.logs import fail, setup_console
    from vinaforge.model.load import load_tokenizer

    setup_console()
    record_file = export_dir / "export.json"
    if not record_file.is_file():
        fail(f"{record_file} not found: not an export folder")
    try:
        record = json.loads(record_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        fail(f"{record_file} is damaged ({err}); re-run `vinaforge export run` to rewrite it")
    if not isinstance(record, dict) or not isinstance(record.get("gguf"), list) or not isinstance(record.get("hf"), dict):
        fail(f"{record_file}: not an export record (it needs `hf` and a `gguf` list)")
    missing = [g.get("file") for g in record["gguf"] if not (export_dir / str(g.get("file"))).is_file()]
    if missing:
        fail(f"{export_dir}: GGUF file(s) named in export.json are missing: {', '.join(map(str, missing))}")
    if not llamacpp.runtime_available():
        fail(f"llama-cpp-python is not installed: {INSTALL_HINT}")
    if len(record.get("verification") or []) != len(record["gguf"]):
        record["verification"] = [None] * len(record["gguf"])
    hf_dir = export_dir / "hf"
    tok = load_tokenizer(str(hf_dir))
    hf_info = {**record["hf"], "jinja": choose_template(tok, None)[1]}
    config = json.loads((hf_dir / "config.json").read_text(encoding="utf-8"))
    first_new = ((config.get("vinaforge") or {}).get("resize") or {}).get("first_new_id")
    failed = []
    for i, g in enumerate(record["gguf"]):
        path = export_dir / g["file"]
        try:
            metadata = llamacpp.read_metadata(path)
        except Exception as err:  # a truncated or foreign file: gguf's reader raises many kinds
            fail(f"{path}: not a readable GGUF file ({type(err).__name__}: {err})")
        rep = verify_gguf(hf_dir, path, g["type"], metadata, hf_info, list(VERIFY_TEXTS),
                          max_new_tokens, first_new, compare_generation=g["type"] in GENERATION_TYPES)  # fmt: skip
        rep["gguf"] = g["file"]
        record["verification"][i] = rep
        typer.echo(f"{g['file']}: {'verified' if rep['verified'] else 'FAILED: ' + failure_message(rep)}")
        failed += [] if rep["verified"] else [g["file"]]
    record["verified"] = not failed
    atomic_write_json(record_file, record)
    if failed:
        fail(f"verification failed for {', '.join(failed)}", code=1)


@app.command("fetch-converter")
def fetch_converter() -> None:
    """Download llama.cpp's converter (from the llama-cpp-python sdist on PyPI) into the cache."""
    from vinaforge.export.llamacpp import ExportError, converter_dir
    from vinaforge.logs import fail, setup_console

    setup_console()
    try:
        typer.echo(converter_dir(download=True))
    except ExportError as err:
        fail(str(err))

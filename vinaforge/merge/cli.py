"""``vinaforge merge``: mergekit merges, chat vectors and LoRA merges from the command line.

A typer shell over :mod:`vinaforge.merge`; every command takes the same settings as the recipe's
``merge`` stage (``run`` reads them from a YAML file: a mergekit config works as it is).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
log = logging.getLogger(__name__)

OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="Output folder (must not exist).")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="Override a key: KEY=VALUE.")]


def _merge(data: dict | None, config_file: Path | None, sets: list[str] | None, output: Path, seed: int) -> None:
    from vinaforge.logs import fail, setup_console
    from vinaforge.merge.checks import MergeInputError
    from vinaforge.merge.config import Config, merge_models
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
    try:
        cfg = load_stage_config(Config, config_file, sets, base=data)
        if cfg.sweep is not None:
            _run_sweep(cfg, output, seed)
            return
        info = merge_models(cfg, output, seed=seed)
    except (RecipeError, MergeInputError, ModelLoadError, FileNotFoundError) as err:
        fail(str(err))
        return
    typer.echo(f"{output}: {info['method']} merge done in {info['seconds']:.1f} s")


def _run_sweep(cfg, output: Path, seed: int) -> None:
    """A sweep runs as the stage does: in a .partial folder renamed to ``output`` when done."""
    import os

    from vinaforge.merge.stage import run
    from vinaforge.stage import StageContext

    work = output.with_name(f".{output.name}.partial")
    work.mkdir(parents=True, exist_ok=True)
    ctx = StageContext(name="merge", kind="merge", run_dir=output.parent, work_dir=work, final_dir=output,
                       upstream={}, log=log, seed=seed)  # fmt: skip
    result = run(cfg, ctx)
    os.replace(work, output)
    typer.echo(f"{output / 'model'}: kept the best of {result.metrics['candidates']} candidates")


@app.command("run")
def run_cmd(
    config: Annotated[Path, typer.Argument(help="YAML: a mergekit config as it is, or the merge stage's keys.")],
    output: OutputOpt,
    set_: SetOpt = None,
    seed: Annotated[int, typer.Option(help="Seed for randomised methods (DARE, DELLA).")] = 0,
) -> None:
    """Merge models as a YAML config says (mergekit methods, chat_vector:, lora:, sweep:)."""
    _merge(None, config, set_, output, seed)


@app.command("chat-vector")
def chat_vector(
    vi_base: Annotated[str, typer.Option(help="Vietnamese continued-pretrained model folder.")],
    instruct: Annotated[str, typer.Option(help="The original instruct (chat) model folder.")],
    base: Annotated[str, typer.Option(help="The original base model the instruct model came from.")],
    output: OutputOpt,
    lam: Annotated[float, typer.Option("--lambda", help="λ in θ_vi + λ·(θ_instruct − θ_base), 0 to 2.")] = 1.0,
    set_: SetOpt = None,
) -> None:
    """θ = θ_vi_base + λ·(θ_instruct − θ_base): a Vietnamese chat model without SFT."""
    data = {"chat_vector": {"vi_base": vi_base, "instruct": instruct, "base": base, "lam": lam}}
    _merge(data, None, set_, output, 0)


@app.command()
def lora(
    base: Annotated[str, typer.Option(help="Base model folder.")],
    adapter: Annotated[list[str], typer.Option(help="Adapter folder, optionally PATH:WEIGHT (repeatable).")],
    output: OutputOpt,
    combination: Annotated[str, typer.Option(help="cat (exact), linear, svd, ties, dare_ties...")] = "cat",
    density: Annotated[float | None, typer.Option(help="For ties/dare/magnitude_prune.")] = None,
) -> None:
    """Fold one LoRA adapter into its base, or combine several (PEFT add_weighted_adapter)."""
    specs = []
    for item in adapter:
        path, _, weight = item.rpartition(":") if ":" in item and not Path(item).exists() else (item, "", "")
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            raise typer.BadParameter(f"{item!r}: the weight after ':' must be a number (PATH:WEIGHT)",
                                     param_hint="--adapter") from None
        specs.append({"path": path, "weight": value})
    lora_cfg = {"base": base, "adapters": specs, "combination": combination}
    if density is not None:
        lora_cfg["density"] = density
    _merge({"lora": lora_cfg}, None, None, output, 0)


@app.command()
def methods() -> None:
    """List the merge methods."""
    from vinaforge.merge.mergekit_run import MERGEKIT_METHODS

    typer.echo("mergekit: " + ", ".join(MERGEKIT_METHODS))
    typer.echo("vinaforge: chat_vector (instruct residual), lora (merge / add_weighted_adapter)")

"""``vinaforge train ...`` commands (typer). Heavy imports stay inside the commands.

Launch on several processes with accelerate (``accelerate launch --config_file
configs/accelerate/ddp.yaml -m vinaforge.train cpt ...``) or torchrun; see docs/training.md.
Hand-written: a thin shell over :mod:`vinaforge.train.engine`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Continued pretraining and fine-tuning.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Continued pretraining and fine-tuning."""


@app.command("cpt")
def cpt(
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML file of CptConfig settings.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Run folder: checkpoints/, final/, metrics.")
    ],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="Override a key: KEY=VALUE, e.g. phases.0.lr=1e-3."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the newest good checkpoint.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Continued pretraining: the final model goes in OUTPUT/final/, checkpoints in OUTPUT/checkpoints/."""
    from vinaforge.logs import fail, log_to_file, setup_console
    from vinaforge.recipe import RecipeError, load_stage_config

    rank = int(os.environ.get("RANK", "0"))
    setup_console(logging.DEBUG if verbose else (logging.INFO if rank == 0 else logging.WARNING))
    try:
        from vinaforge.train.config import CptConfig

        cfg = load_stage_config(CptConfig, config, set_)
    except RecipeError as err:
        fail(str(err))
        return
    from vinaforge.model.load import ModelLoadError
    from vinaforge.model.resize import TokenizerMismatchError
    from vinaforge.train.checkpoint import CheckpointError
    from vinaforge.train.engine import TrainingError, TrainingInterrupted, train_cpt
    from vinaforge.train.mixture import MixtureError
    from vinaforge.train.packing import PackingError

    output.mkdir(parents=True, exist_ok=True)
    log_file = output / ("log.txt" if rank == 0 else f"log.rank{rank}.txt")
    try:
        with log_to_file(log_file):
            summary = train_cpt(cfg, output, resume=resume)
    except TrainingInterrupted as err:
        fail(str(err), code=130)
        return
    except (
        TrainingError,
        CheckpointError,
        PackingError,
        MixtureError,
        ModelLoadError,
        TokenizerMismatchError,
    ) as err:
        fail(str(err))
        return
    if rank == 0:
        _print_summary(summary, output)


@app.command("plan")
def plan_cmd(
    config: Annotated[Path, typer.Argument(help="YAML file of CptConfig settings.")],
    gpus: Annotated[int, typer.Option("--gpus", min=1, help="GPUs in the job (all machines).")] = 1,
    gpu_mem: Annotated[float, typer.Option("--gpu-mem", min=1, help="GiB of memory per GPU.")] = 80.0,
    set_: Annotated[
        list[str] | None, typer.Option("--set", "-s", help="Override a key: KEY=VALUE.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the estimate as JSON.")] = False,
) -> None:
    """Memory per GPU for DDP, FSDP2, ZeRO-2/3; says whether it fits and what to change if not."""
    import json

    from vinaforge.logs import fail, setup_console
    from vinaforge.recipe import RecipeError, load_stage_config

    setup_console(logging.WARNING)
    try:
        from vinaforge.train.config import CptConfig

        cfg = load_stage_config(CptConfig, config, set_)
    except RecipeError as err:
        fail(str(err))
        return
    from vinaforge.train.plan import plan, render

    try:
        result = plan(cfg, gpus, gpu_mem)
    except (OSError, ValueError) as err:
        fail(f"{config}: model: cannot read the config of {cfg.model!r}: {err}")
        return
    typer.echo(json.dumps(result, indent=1) if as_json else render(result))
    if not result["fits"]:
        raise typer.Exit(1)


@app.command("tokenize")
def tokenize_cmd(
    inputs: Annotated[list[str], typer.Argument(help="JSONL(.gz) files or folders (e.g. curated/kept/high).")],
    tokenizer: Annotated[str, typer.Option("--tokenizer", "-t", help="HF tokenizer folder.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the tokenized source.")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="KEY=VALUE: executor, workers, tasks, slurm.partition, field..."),
    ] = None,
) -> None:
    """Tokenize with datatrove (local, Slurm or Ray) into a folder a cpt source reads (kind: packed)."""
    from vinaforge.logs import fail, setup_console
    from vinaforge.recipe import RecipeError, load_stage_config

    setup_console(logging.INFO)
    try:
        from vinaforge.train.pretokenize import TokenizeConfig

        cfg = load_stage_config(
            TokenizeConfig, None, set_, base={"inputs": list(inputs), "tokenizer": tokenizer}
        )
    except RecipeError as err:
        fail(str(err))
        return
    from vinaforge.model.load import ModelLoadError
    from vinaforge.train.pretokenize import tokenize_corpus

    try:
        packed = tokenize_corpus(cfg, output)
    except (ValueError, FileNotFoundError, ModelLoadError) as err:
        fail(str(err))
        return
    typer.echo(
        f"{packed.meta['n_docs']:,} documents, {packed.n_tokens:,} tokens -> {output} "
        f"(use it as a cpt source: {{kind: packed, paths: [{output}]}})"
    )


def _print_summary(summary: dict, output: Path) -> None:
    from rich.console import Console

    def f(v, spec=".4f"):
        return "n/a" if v is None else format(v, spec)

    console = Console(stderr=True)
    console.print(
        f"[green]done:[/] {summary['steps']} steps, {summary['tokens']:,} tokens; "
        f"held-out bits/byte {f(summary.get('init_bpb'))} -> {f(summary.get('final_bpb'))}; "
        f"loss {f(summary.get('first_loss'))} -> {f(summary.get('final_loss'))}; "
        f"{f(summary.get('tokens_per_s'), ',.0f')} tokens/s"
    )
    console.print(f"final model: {output / 'final'}")

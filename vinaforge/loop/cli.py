"""``vinaforge loop run --config loop.yaml``: one iteration of the community loop, resumable."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="The community loop: sample, rank, reward model, RL, judge.", no_args_is_help=True)


@app.command("run")
def run_cmd(
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML with the loop settings (see docs/rlhf.md).")],
    work: Annotated[Path, typer.Option("--work", "-o", help="Folder of this iteration (resumes what is there).")],
    set_: Annotated[list[str] | None, typer.Option("--set", "-s", help="Override KEY=VALUE (repeatable).")] = None,
    seed: int = 0,
) -> None:
    """Run one iteration; re-running resumes at the first unfinished step."""
    from vinaforge.checks import check_output_dir
    from vinaforge.logs import fail, setup_console
    from vinaforge.loop.app import AppError
    from vinaforge.loop.iteration import Config, LoopError, WaitingForRankings, run_iteration
    from vinaforge.model.load import ModelLoadError
    from vinaforge.recipe import RecipeError, load_stage_config

    setup_console(logging.INFO)
    try:
        cfg = load_stage_config(Config, config, set_)
        check_output_dir(work, "--work")
        figures = run_iteration(cfg, work, seed=seed)
    except WaitingForRankings as err:
        typer.echo(str(err))
        raise typer.Exit(3) from None
    except (RecipeError, LoopError, AppError, ModelLoadError, ValueError, OSError) as err:
        fail(str(err))
        return
    for name, info in figures.items():
        typer.echo(f"{name}: {({k: v for k, v in info.items() if k != 'finished'})}")

"""``vinaforge data``: corpus curation commands.

Hand-written typer glue over :func:`vinaforge.data.curate.curate`; settings come from the same
``Config`` as the ``curate`` recipe stage (``--config FILE.yaml`` then ``--set key=value``).
Heavy imports (datatrove) happen inside the command so ``vinaforge --help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Corpus curation on datatrove.", no_args_is_help=True, add_completion=False)


@app.callback()
def main() -> None:
    """Corpus curation: clean, filter, deduplicate and tier text on datatrove."""


def _register_factory() -> None:
    from vinaforge.factory.cli import register  # translate, synth, decontaminate (logic in vinaforge.factory)

    register(app)


_register_factory()


@app.command()
def curate(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Files, folders, globs (JSONL[.gz], Parquet, .txt), save_to_disk folders or hf:org/name."
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Output folder (created; resumed if it exists).")
    ],
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML file of curate settings.")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override one setting: key=value (dotted keys).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Delete an earlier run's output in the folder first.")
    ] = False,
) -> None:
    """Clean, filter, deduplicate and tier a corpus: DIR/kept/<tier>/<lang>/, DIR/rejected/<filter>/, DIR/stats.json."""
    from vinaforge.data.config import Config
    from vinaforge.data.curate import CurateError
    from vinaforge.data.curate import curate as run_curate
    from vinaforge.data.readers import InputError
    from vinaforge.logs import setup_console
    from vinaforge.recipe import RecipeError, load_stage_config

    setup_console()
    try:
        cfg = load_stage_config(Config, config, list(set_ or []))
        cfg = cfg.model_copy(update={"inputs": list(inputs)})
        stats = run_curate(cfg, output, overwrite=overwrite)
    except (RecipeError, InputError, CurateError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    typer.echo(
        f"{stats['input']} in, {stats['kept']} kept, {sum(stats['rejected'].values())} rejected "
        f"({stats['duplicates']} duplicates); see {output}/stats.json and {output}/report.md"
    )

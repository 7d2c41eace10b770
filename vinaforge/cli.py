"""The ``vinaforge`` command: a thin typer shell over the stage packages.

Each stage group lives in ``vinaforge/<group>/cli.py`` as a typer app named ``app``; a group
appears here only once its package exists, so there are no placeholder commands.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from pathlib import Path
from typing import Annotated

import typer

from vinaforge import __version__

GROUPS: dict[str, tuple[str, str]] = {
    "text": ("vinaforge.text.cli", "Vietnamese text tools: normalize, stats, langid."),
    "data": ("vinaforge.data.cli", "Corpus curation and the data factory: curate, translate, synth, decontaminate."),
    "tokenizer": ("vinaforge.tokenizer.cli", "Tokenizer training, extension and fertility."),
    "model": ("vinaforge.model.cli", "Tiny models and embedding surgery."),
    "train": ("vinaforge.train.cli", "Continued pretraining, memory planning, tokenization at scale."),
    "tune": ("vinaforge.tune.cli", "Post-training: sft, dpo, orpo, kto, self-preference, reward, rl."),
    "merge": ("vinaforge.merge.cli", "Merge models and adapters."),
    "export": ("vinaforge.export.cli", "Export to HF folders, GGUF (llama.cpp) and Ollama, verified."),
    "eval": ("vinaforge.eval.cli", "Benchmarks, bits per byte, translation, LLM-as-judge."),
    "serve": ("vinaforge.serve.cli", "OpenAI-compatible API and web chat."),
    "chat": ("vinaforge.serve.chat_cli", "Terminal chat."),
    "rag": ("vinaforge.rag.cli", "Retrieval with citations: index, ask, eval."),
    "loop": ("vinaforge.loop.cli", "The community loop: sample, rank, reward model, RL, judge."),
}

app = typer.Typer(
    name="vinaforge",
    help="Turn an English or multilingual LLM into a strong Vietnamese one, end to end.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # click's plain help for every command: it wraps to the terminal (80 columns and less) and
    # never truncates an option name, where rich's option tables cut them off ("--pad-to-multiple…")
    rich_markup_mode=None,
)
recipe_app = typer.Typer(help="Check recipes without running them.", no_args_is_help=True)
app.add_typer(recipe_app, name="recipe")


def _mount_groups() -> None:
    for name, (module_name, help_text) in GROUPS.items():
        if importlib.util.find_spec(module_name.rsplit(".", 1)[0]) is None:
            continue
        try:
            if importlib.util.find_spec(module_name) is None:
                continue
        except ModuleNotFoundError:
            continue
        module = importlib.import_module(module_name)
        app.add_typer(module.app, name=name, help=help_text)


PLUGIN_GROUP = "vinaforge.cli_plugins"


def _mount_plugins() -> None:
    """Mount typer apps that other installed packages register under ``vinaforge.cli_plugins``.

    Deployables beside the library (``apps/collect``) add commands this way; vinaforge never
    imports them by name. A plugin that fails to load is reported and skipped.
    """
    from importlib.metadata import entry_points

    taken = {g.name for g in app.registered_groups} | set(GROUPS)
    for ep in entry_points(group=PLUGIN_GROUP):
        if ep.name in taken:
            continue
        try:
            plugin = ep.load()
        except Exception as err:  # a broken plugin must not break the whole CLI
            logging.getLogger("vinaforge").warning("CLI plugin %s (%s) not loaded: %s", ep.name, ep.value, err)
            continue
        app.add_typer(plugin, name=ep.name)


SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a key: STAGE.KEY=VALUE (repeatable)."),
]


AllowModuleOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-module",
        help="Let `kind:` name this module of your own (repeatable). A recipe with such modules is code: "
        "only allow modules you trust.",
    ),
]


@app.command()
def run(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")],
    set_: SetOpt = None,
    from_stage: Annotated[
        str | None, typer.Option("--from", help="Re-run this stage and all after it.")
    ] = None,
    only: Annotated[str | None, typer.Option("--only", help="Run only this stage (forced).")] = None,
    run_dir: Annotated[
        Path | None, typer.Option(help="Parent folder of runs (default: the recipe's run_dir).")
    ] = None,
    verify: Annotated[
        bool, typer.Option("--verify", help="Re-hash reused outputs (size/mtime are always checked).")
    ] = False,
    allow_module: AllowModuleOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logs and full tracebacks.")] = False,
) -> None:
    """Run a recipe: every stage in order, reusing those whose config and inputs are unchanged."""
    from vinaforge.logs import console, fail, setup_console
    from vinaforge.recipe import RecipeError, load_recipe
    from vinaforge.runner import RunLocked, StageFailed, run_recipe

    setup_console(logging.DEBUG if verbose else logging.INFO)
    try:
        rec = load_recipe(recipe, set_, allow_modules=tuple(allow_module or ()))
        out = run_recipe(rec, from_stage=from_stage, only=only, run_root=run_dir, verify=verify)
    except (RecipeError, RunLocked) as err:
        fail(str(err))
        return
    except StageFailed as err:
        if verbose:
            raise
        fail(str(err), code=1)
        return
    except KeyboardInterrupt:
        fail("interrupted; run again to resume", code=130)
        return
    console().print(f"[green]done:[/] report card at {out / 'report.md'}", highlight=False)


@recipe_app.command("check")
def recipe_check(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")],
    set_: SetOpt = None,
    run_dir: Annotated[
        Path | None,
        typer.Option(help="Parent folder of runs: paths inside finished stages there are checked too."),
    ] = None,
    allow_module: AllowModuleOpt = None,
) -> None:
    """Validate a recipe (keys, types, files, stage references) and list its stages."""
    from rich.console import Console
    from rich.table import Table

    from vinaforge.logs import fail
    from vinaforge.recipe import RecipeError, load_recipe
    from vinaforge.runner import check_recipe_inputs

    try:
        rec = load_recipe(recipe, set_, allow_modules=tuple(allow_module or ()))
        check_recipe_inputs(rec, run_dir)
    except RecipeError as err:
        fail(str(err))
        return
    table = Table(title=f"recipe {rec.name} ({recipe})")
    for col in ("stage", "kind", "uses", "config hash"):
        table.add_column(col)
    for s in rec.stages:
        table.add_row(s.name, s.kind, ", ".join(f"@{r}" for r in s.refs), s.config_hash()[:12])
    Console().print(table)
    Console().print(f"[green]ok:[/] {len(rec.stages)} stages, runs in {(run_dir or rec.run_dir) / rec.name}")


@app.command()
def version() -> None:
    """Print the vinaforge version."""
    typer.echo(__version__)


_mount_groups()
_mount_plugins()


def main() -> None:
    app()


if __name__ == "__main__":
    main()

"""``vinaforge tune``: sft, dpo, orpo, kto and self-preference from a YAML config + ``--set`` overrides.

Each command takes the same settings as its recipe stage (one ``Config`` for both) and writes the
same folder (``final/``, ``summary.json``, ``rejected.jsonl``...). Thin: the work is in the method
modules; torch and TRL load inside the commands.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="YAML file of the method's settings.")]
OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="Output folder (final/, summary.json...).")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="Override a key: KEY=VALUE, e.g. training.max_steps=10.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v")]
StageOpt = Annotated[str | None, typer.Option("--stage", help="CONFIG is a recipe: use this stage's settings.")]


def _stage_config(config: Path, stage: str, output: Path) -> Path:
    """A recipe's stage settings as a stand-alone YAML (for `accelerate launch ... tune sft --stage`)."""
    import yaml

    from vinaforge.io import atomic_write_text

    data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    stages = data.get("stages") if isinstance(data, dict) else None
    if not isinstance(stages, dict) or stage not in stages:
        raise ValueError(f"{config}: no stages.{stage} in this recipe")
    settings = {k: v for k, v in stages[stage].items() if k != "kind"}
    out = output / f"{stage}.config.yaml"
    atomic_write_text(out, yaml.safe_dump(settings, allow_unicode=True, sort_keys=False))
    return out


def _run(method: str, entry: str, config: Path, output: Path, sets: list[str] | None, verbose: bool,
         stage: str | None = None) -> None:
    from vinaforge.logs import fail, log_to_file, setup_console
    from vinaforge.recipe import RecipeError, load_stage_config

    setup_console(logging.DEBUG if verbose else logging.INFO)
    from vinaforge.checks import InputCheckError, check_output_dir

    module = importlib.import_module(f"vinaforge.tune.{method}")
    try:
        check_output_dir(output)
        if stage:
            output.mkdir(parents=True, exist_ok=True)
            config = _stage_config(config, stage, output)
        cfg = load_stage_config(module.Config, config, sets)
    except (RecipeError, InputCheckError, ValueError, OSError) as err:
        fail(str(err))
        return
    output.mkdir(parents=True, exist_ok=True)
    try:
        with log_to_file(output / "log.txt"):
            result = getattr(module, entry)(cfg, output)
    except (ValueError, OSError, RuntimeError) as err:
        if verbose:
            raise
        fail(f"{method}: {err}")
        return
    from vinaforge.io import atomic_write_json

    summary_path = output / "summary.json"
    if not summary_path.exists():  # methods that write none (self-preference) still leave one
        atomic_write_json(summary_path, result)
    for line in summary_lines(method, result, output):
        typer.echo(line)  # plain lines: no wrapping of long paths


def _num(value) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def summary_lines(method: str, result: dict, output: Path) -> list[str]:
    """A few lines for the terminal, like the other stages print; the whole result is in summary.json."""
    facts = []
    for key, label in (("steps", "steps"), ("final_loss", "final loss"), ("final_eval_loss", "held-out loss"),
                       ("eval_accuracy", "held-out accuracy"), ("pairs", "pairs"), ("prompts", "prompts"),
                       ("rejected", "rejected")):  # fmt: skip
        value = result.get(key)
        if isinstance(value, list):
            value = len(value)
        if isinstance(value, dict):
            value = value.get("n", len(value))
        if value is not None:
            facts.append(f"{label} {_num(value)}")
    pref = result.get("preference")
    if isinstance(pref, dict) and "reward_accuracy" in pref:
        facts.append(f"pair accuracy {_num(pref['reward_accuracy'])}")
        if "prefers_chosen_before" in pref:
            facts.append(f"prefers chosen {_num(pref['prefers_chosen_before'])} → {_num(pref['prefers_chosen_after'])}")
    safety = result.get("safety")
    if isinstance(safety, dict) and "refusal_rate" in safety:
        facts.append(f"refusal {_num(safety['refusal_rate'])}, over-refusal {_num(safety.get('over_refusal_rate'))}")
    lines = [f"{method}: " + (", ".join(facts) or "done")]
    if (output / "final").is_dir():
        lines.append(f"model: {output / 'final'}")
    lines.append(f"summary: {output / 'summary.json'}")
    return lines


@app.command()
def sft(config: ConfigOpt, output: OutputOpt, set_: SetOpt = None, stage: StageOpt = None,
        verbose: VerboseOpt = False) -> None:
    """Supervised fine-tuning (full / LoRA / QLoRA / DoRA); the model lands in OUTPUT/final."""
    _run("sft", "train_sft", config, output, set_, verbose, stage)


@app.command()
def dpo(config: ConfigOpt, output: OutputOpt, set_: SetOpt = None, verbose: VerboseOpt = False) -> None:
    """DPO and its variants (loss_type list: sigmoid, ipo, hinge, robust, apo_zero, sigmoid+sft = RPO)."""
    _run("dpo", "train_dpo", config, output, set_, verbose)


@app.command()
def orpo(config: ConfigOpt, output: OutputOpt, set_: SetOpt = None, verbose: VerboseOpt = False) -> None:
    """Reference-free ORPO."""
    _run("orpo", "train_orpo", config, output, set_, verbose)


@app.command()
def kto(config: ConfigOpt, output: OutputOpt, set_: SetOpt = None, verbose: VerboseOpt = False) -> None:
    """KTO on unpaired thumbs-up/down data (or pairs split in two)."""
    _run("kto", "train_kto", config, output, set_, verbose)


@app.command("self-preference")
def self_preference(config: ConfigOpt, output: OutputOpt, set_: SetOpt = None, verbose: VerboseOpt = False) -> None:
    """Sample N replies per prompt, judge them, keep best vs worst as pairs (resumable)."""
    _run("self_preference", "build_pairs", config, output, set_, verbose)


@app.command()
def reward(config: ConfigOpt, output: OutputOpt, set_: SetOpt = None, verbose: VerboseOpt = False) -> None:
    """Reward model from preference pairs or ranked lists (TRL RewardTrainer); held-out accuracy, calibration."""
    _run("reward", "train_reward", config, output, set_, verbose)


@app.command()
def rl(config: ConfigOpt, output: OutputOpt, set_: SetOpt = None, verbose: VerboseOpt = False) -> None:
    """Policy optimisation against a reward model and rule rewards: GRPO, RLOO or online DPO."""
    _run("rl", "train_rl", config, output, set_, verbose)

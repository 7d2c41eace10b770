"""The ``recipe`` stage: run another recipe (reusing what it already finished) and take its outputs.

The seed recipes (``recipes/seeds/*.yaml``) all start from the same English base model, made by
``recipes/seeds/base-en.yaml`` in 30 minutes. Each one names that recipe as its first stage, so a
fresh clone runs ``vinaforge run recipes/seeds/vbd.yaml`` alone: the base is made once, in its own
run folder, and every later seed recipe finds it finished there and reuses it (the engine's usual
reuse: same config, same inputs). The outputs named in ``outputs`` are linked (hard links, or
copies across file systems) into this stage's folder, so ``@base/model`` works like any stage
output and this run's manifest records their hashes.

Hand-written: recipe composition is part of our run engine (:mod:`vinaforge.runner`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from vinaforge.io import link_tree
from vinaforge.recipe import InputPath
from vinaforge.stage import StageConfig, StageContext, StageResult


class Config(StageConfig):
    """Settings of the ``recipe`` stage."""

    recipe: InputPath = Field(description="the recipe YAML to run (paths inside it are relative to the cwd)")
    sets: list[str] = Field(default_factory=list, description="--set items for it, e.g. scale=gpu")
    outputs: dict[str, str] = Field(
        min_length=1, description="name -> STAGE/PATH inside its run folder, e.g. {model: pretrain/final}"
    )
    run_root: str | None = Field(None, description="parent of its run folder (default: its own run_dir)")

    @model_validator(mode="after")
    def _valid_recipe(self) -> Config:
        from vinaforge.recipe import load_recipe

        sub = load_recipe(self.recipe, self.sets)
        names = {s.name for s in sub.stages}
        for name, target in self.outputs.items():
            stage = target.split("/", 1)[0]
            if stage not in names:
                raise ValueError(
                    f"outputs.{name}: {target!r} names no stage of {self.recipe} (stages: {', '.join(sorted(names))})"
                )
        return self


def declared_outputs(config: Config) -> list[str]:
    """For ``recipe check``: this stage's folder holds exactly the outputs it names."""
    return list(config.outputs)


def run(config: Config, ctx: StageContext) -> StageResult:
    from vinaforge.recipe import load_recipe
    from vinaforge.runner import _load_manifest, run_recipe

    sub = load_recipe(config.recipe, config.sets)
    run_dir = run_recipe(sub, run_root=Path(config.run_root) if config.run_root else None)
    outputs: dict[str, str] = {}
    for name, target in config.outputs.items():
        src = run_dir / target
        if not src.exists():
            raise FileNotFoundError(f"outputs.{name}: {src} does not exist after running {config.recipe}")
        link_tree(src, ctx.work_dir / name)
        outputs[name] = name
    stages = _load_manifest(run_dir / "manifest.json")["stages"]
    walls = {k: v.get("wall_time_s") for k, v in stages.items()}
    metrics = {"run_dir": str(run_dir), "wall_time_s": walls}
    taken = ", ".join(f"`{k}` ← `{v}`" for k, v in config.outputs.items())
    report = (
        f"From recipe `{config.recipe}` ({' '.join(config.sets) or 'its defaults'}), run in `{run_dir}` "
        f"(report card: `{run_dir / 'report.md'}`): {taken}. Its stages took "
        + ", ".join(f"{k} {v:.0f} s" for k, v in walls.items() if isinstance(v, int | float))
        + ".\n"
    )
    return StageResult(outputs=outputs, metrics=metrics, report=report)

"""The contract between the run engine and each pipeline stage.

A stage kind is a module that exposes:

- ``Config``: a pydantic model (subclass :class:`StageConfig`) of the stage's settings;
- ``run(config, ctx) -> StageResult``: does the work, writing only under ``ctx.work_dir``.

The engine resolves every input before a stage runs: each ``@stage/...`` reference, at any depth
of the config (lists, nested mappings), becomes the path it names, and is checked to exist. A
stage receives plain paths in its ``config`` and never resolves anything itself.

The engine owns atomicity: a stage writes into ``ctx.work_dir`` (a ``.partial`` folder),
and only after ``run`` returns does the engine rename it to the final stage folder and record
it in the manifest. A stage that can resume (``RESUMABLE = True`` in its module) finds its own
unfinished work in ``ctx.work_dir`` on the next run; any other stage gets an empty folder.

Hand-written: no library offers a stage contract for recipe-driven LLM pipelines.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ConfigDict

# kind -> module. Each stage's issue adds its own line; modules are imported lazily so that
# `vinaforge --help` and the text tools do not pay for torch or datatrove.
STAGE_KINDS: dict[str, str] = {
    "text": "vinaforge.text.stage",
    "curate": "vinaforge.data.stage",
    "english": "vinaforge.data.english",
    "split": "vinaforge.data.split",
    "recipe": "vinaforge.subrecipe",
    "tokenizer": "vinaforge.tokenizer.stage",
    "model": "vinaforge.model.stage",
    "cpt": "vinaforge.train.stage",
    "translate": "vinaforge.factory.translate",
    "synth": "vinaforge.factory.synth",
    "decontaminate": "vinaforge.factory.decontaminate",
    "sft": "vinaforge.tune.sft",
    "dpo": "vinaforge.tune.dpo",
    "orpo": "vinaforge.tune.orpo",
    "kto": "vinaforge.tune.kto",
    "self_preference": "vinaforge.tune.self_preference",
    "eval": "vinaforge.eval.stage",
    "judge": "vinaforge.eval.judge.stage",
    "reward": "vinaforge.tune.reward",
    "rl": "vinaforge.tune.rl",
    "loop": "vinaforge.loop.stage",
    "merge": "vinaforge.merge.stage",
    "export": "vinaforge.export.stage",
    "serve_smoke": "vinaforge.serve.stage",
}


class StageConfig(BaseModel):
    """Base for stage configs: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


@dataclass
class Figure:
    """A PNG written by a stage (path relative to the stage folder) and its caption."""

    path: str
    caption: str = ""


@dataclass
class StageResult:
    """What a stage hands back to the engine.

    ``outputs`` names the artifacts a later stage may use, as paths relative to the stage
    folder (``{"kept": "kept", "stats": "stats.json"}``). ``metrics`` are the key figures
    (JSON-serialisable) and ``report`` is the stage's Markdown section for the report card.
    """

    outputs: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    report: str = ""
    figures: list[Figure] = field(default_factory=list)


@dataclass
class StageContext:
    """Where a stage works and what came before it."""

    name: str
    kind: str
    run_dir: Path
    work_dir: Path
    final_dir: Path
    upstream: dict[str, Path]
    log: logging.Logger
    seed: int = 0
    inputs: list[dict] = field(default_factory=list)
    """The stage's inputs with their content hashes (``{"path", "sha256"}``), as the engine
    recorded them; a stage that keeps its own resumable state (checkpoints) records them too."""

    def upstream_dir(self, stage: str) -> Path:
        try:
            return self.upstream[stage]
        except KeyError as err:
            raise KeyError(
                f"stage {self.name!r} needs the output of stage {stage!r}, which is not in this recipe"
            ) from err

    def resolve(self, value: str | Path) -> Path:
        """Turn ``@stage/sub/path`` into a path inside that stage's folder; plain paths pass through.

        Stages no longer need this (their config arrives resolved); it stays for tools that
        build a context by hand.
        """
        text = str(value)
        if not text.startswith("@"):
            return Path(text)
        stage, _, rest = text[1:].partition("/")
        base = self.upstream_dir(stage)
        return base / rest if rest else base

    def resolve_all(self, values: list[str]) -> list[Path]:
        return [self.resolve(v) for v in values]


def load_stage_module(kind: str, allow_modules: list[str] | tuple[str, ...] = ()) -> ModuleType:
    """Import a stage kind: a registered name, or a module the user allowed by name.

    A recipe is data; a recipe that names its own modules is code. Nothing outside
    ``STAGE_KINDS`` is imported unless the command line names it (``--allow-module``), so
    checking an untrusted recipe never runs its top-level code.
    """
    if not isinstance(kind, str) or not kind:
        raise KeyError(f"stage kind must be a name, got {kind!r}")
    if kind in STAGE_KINDS:
        return importlib.import_module(STAGE_KINDS[kind])
    known = ", ".join(sorted(STAGE_KINDS))
    if kind not in allow_modules:
        raise KeyError(
            f"unknown stage kind {kind!r}; known kinds: {known} "
            f"(a module of your own runs only with --allow-module {kind})"
        )
    try:
        module = importlib.import_module(kind)
    except ModuleNotFoundError as err:
        if err.name != kind.split(".")[0] and err.name != kind:
            raise
        raise KeyError(f"stage module {kind!r} (allowed with --allow-module) cannot be imported") from None
    if not (hasattr(module, "Config") and hasattr(module, "run")):
        raise KeyError(f"module {kind!r} is not a stage: it needs a `Config` model and a `run` function")
    return module


def declared_outputs(module: ModuleType, config: StageConfig) -> frozenset[str] | None:
    """The names a stage always writes at the top of its folder, known before it runs, or None.

    A stage module declares them as ``OUTPUTS`` (a tuple), or as ``declared_outputs(config)`` when
    they depend on its config (the ``recipe`` stage: its ``outputs`` keys). ``recipe check`` then
    refuses a reference into the stage that names anything else, before an hour of upstream work
    (a ``@self_preference/pairs`` for ``pairs.jsonl`` used to fail only when the DPO stage started).
    Modules that declare nothing are checked only once they have run. Every stage also writes its
    log and result file.
    """
    if hasattr(module, "declared_outputs"):
        names = module.declared_outputs(config)
    elif hasattr(module, "OUTPUTS"):
        names = module.OUTPUTS
    else:
        return None
    return frozenset(names) | {"log.txt", "result.json"}


def is_resumable(module: ModuleType) -> bool:
    return bool(getattr(module, "RESUMABLE", False))

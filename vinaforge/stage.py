"""The contract between the run engine and each pipeline stage.

A stage kind is a module that exposes:

- ``Config``: a pydantic model (subclass :class:`StageConfig`) of the stage's settings;
- ``run(config, ctx) -> StageResult``: does the work, writing only under ``ctx.work_dir``.

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
    "tokenizer": "vinaforge.tokenizer.stage",
    "model": "vinaforge.model.stage",
    "cpt": "vinaforge.train.stage",
    "eval": "vinaforge.eval.stage",
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

    def upstream_dir(self, stage: str) -> Path:
        try:
            return self.upstream[stage]
        except KeyError as err:
            raise KeyError(
                f"stage {self.name!r} needs the output of stage {stage!r}, which is not in this recipe"
            ) from err

    def resolve(self, value: str | Path) -> Path:
        """Turn ``@stage/sub/path`` into a path inside that stage's folder; plain paths pass through."""
        text = str(value)
        if not text.startswith("@"):
            return Path(text)
        stage, _, rest = text[1:].partition("/")
        base = self.upstream_dir(stage)
        return base / rest if rest else base

    def resolve_all(self, values: list[str]) -> list[Path]:
        return [self.resolve(v) for v in values]


def load_stage_module(kind: str) -> ModuleType:
    """Import a stage kind: a registered name, or a dotted module path for a user's own stage."""
    if kind in STAGE_KINDS:
        return importlib.import_module(STAGE_KINDS[kind])
    try:
        module = importlib.import_module(kind)
    except ModuleNotFoundError as err:
        if err.name != kind.split(".")[0] and err.name != kind:
            raise
        known = ", ".join(sorted(STAGE_KINDS))
        raise KeyError(
            f"unknown stage kind {kind!r}; known kinds: {known} (or an importable module)"
        ) from None
    if not (hasattr(module, "Config") and hasattr(module, "run")):
        raise KeyError(f"module {kind!r} is not a stage: it needs a `Config` model and a `run` function")
    return module


def is_resumable(module: ModuleType) -> bool:
    return bool(getattr(module, "RESUMABLE", False))

"""Prompt templates, seed tasks, rubric and personas shipped in ``vinaforge/factory/resources``.

A template is a name from ``prompts.yaml`` or literal text; either way it must hold a ``{text}``
slot. Slots are filled with :func:`fill` (plain replacement, so braces in user text or in code
never break a template). Hand-written; the Vietnamese resources are ours.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml


class TemplateSlotError(ValueError):
    """A prompt template without its ``{text}`` slot (the message names the key)."""


def _resource(name: str) -> str:
    return resources.files("vinaforge.factory").joinpath("resources", name).read_text(encoding="utf-8")


@cache
def builtin_templates() -> dict[str, str]:
    return yaml.safe_load(_resource("prompts.yaml"))


def resolve_template(spec: str, key: str) -> str:
    """The template text for ``spec`` (a built-in name, a ``.txt`` file, or literal text)."""
    text = builtin_templates().get(spec)
    if text is None and spec.endswith((".txt", ".md")) and Path(spec).is_file():
        text = Path(spec).read_text(encoding="utf-8")
    if text is None:
        text = spec
    if "{text}" not in text:
        raise TemplateSlotError(f"{key}: prompt template has no {{text}} slot: {text[:60]!r}")
    return text


def fill(template: str, **slots: Any) -> str:
    out = template
    for k, v in slots.items():
        out = out.replace("{" + k + "}", str(v))
    return out


@cache
def seed_tasks() -> tuple[dict[str, Any], ...]:
    return tuple(json.loads(line) for line in _resource("seed_tasks.jsonl").splitlines() if line.strip())


@cache
def rubric() -> str:
    return _resource("rubric.md").strip()


@cache
def personas() -> tuple[str, ...]:
    return tuple(line.strip() for line in _resource("personas.txt").splitlines() if line.strip())

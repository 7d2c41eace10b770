"""Recipes: YAML files of named stages, validated by each stage's pydantic ``Config``.

Every error is found before any work starts and names the file, the line, the key path and
what was expected. ``--set stage.key=value`` overrides any key, as in torchtune and
LLaMA-Factory. Hand-written: the glue between PyYAML, pydantic and our stage registry.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, ValidationError

from vinaforge.stage import StageConfig, load_stage_module

RECIPE_KEYS = {"name", "run_dir", "seed", "description", "stages", "scale", "scales"}

# Stage names become folder names and ``--set STAGE.key`` prefixes; recipe names become the run
# folder. Both are plain identifiers, so neither can climb out of the run directory.
STAGE_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
RECIPE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class RecipeError(ValueError):
    """A recipe or stage config that cannot be used; the message says where and why."""


def _check_input_path(value: str) -> str:
    if isinstance(value, str) and value.startswith("@"):
        return value  # an earlier stage's output: checked against the recipe's stage order
    if not Path(value).exists():
        raise ValueError(f"file or folder not found: {value!r} (relative to {os.getcwd()})")
    return value


def _check_input_paths(values: list[str]) -> list[str]:
    for v in values:
        if isinstance(v, str) and not v.startswith(("@", "hf:")) and not any(c in v for c in "*?["):
            _check_input_path(v)
    return values


InputPath = Annotated[str, AfterValidator(_check_input_path)]
"""A path that must exist when the config is validated, or an ``@stage/...`` reference."""

InputPaths = Annotated[list[str], AfterValidator(_check_input_paths)]
"""Files, folders or globs that must exist (globs are checked when expanded), references, or
``hf:`` dataset ids. Use these types for every input of a stage Config, at any depth: they make
``recipe check`` catch a missing file before anything runs."""


# ----------------------------------------------------------------------------- YAML + lines


def _line_map(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Map each key path of a YAML document to its 1-based line, for error messages."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[(*path, key)] = key_node.start_mark.line + 1
            _line_map(value_node, (*path, key), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, (*path, i), out)
    return out


def load_yaml(path: str | Path) -> tuple[dict, dict[tuple, int]]:
    p = Path(path)
    if not p.is_file():
        raise RecipeError(f"{p}: file not found")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise RecipeError(
            f"{p}:{line}: not valid UTF-8 (byte 0x{raw[err.start]:02x} at offset {err.start}); save the file as UTF-8"
        ) from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise RecipeError(f"{p}: not valid YAML: {err}") from err
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"{p}: expected a mapping of keys at the top level, got {type(data).__name__}")
    return data, (_line_map(node) if node is not None else {})


# ----------------------------------------------------------------------------- overrides


def parse_set(item: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (["a","b","c"], value), the value parsed as YAML (so 3, true, [1,2] work)."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise RecipeError(f"--set {item!r}: expected KEY=VALUE, e.g. --set curate.min_syllables=50")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_sets(data: dict, sets: list[str] | None) -> dict:
    """Apply ``--set`` overrides in place; list items are addressed by index (``phases.0.lr``)."""
    for item in sets or []:
        keys, value = parse_set(item)
        node: Any = data
        for depth, key in enumerate(keys[:-1]):
            if isinstance(node, list):
                node = node[_list_index(node, key, item)]
                continue
            if key not in node or node[key] is None:
                node[key] = {}
            node = node[key]
            if not isinstance(node, dict | list):
                where = ".".join(keys[: depth + 1])
                raise RecipeError(f"--set {item!r}: {where} is a value, not a section")
        last = keys[-1]
        if isinstance(node, list):
            node[_list_index(node, last, item)] = value
        else:
            node[last] = value
    return data


def _list_index(node: list, key: str, item: str) -> int:
    if not key.isdigit() or int(key) >= len(node):
        raise RecipeError(f"--set {item!r}: {key!r} is not an index of a list of {len(node)} items")
    return int(key)


# ----------------------------------------------------------------------------- validation


def _describe_error(
    err: dict, source: str, prefix: tuple, lines: dict[tuple, int], model: type[BaseModel]
) -> str:
    loc = tuple(err["loc"])
    full = (*prefix, *loc)
    line = None
    for n in range(len(full), 0, -1):
        if full[:n] in lines:
            line = lines[full[:n]]
            break
    where = f"{source}:{line}" if line else source
    key = ".".join(str(p) for p in full)
    if err["type"] == "extra_forbidden":
        allowed = ", ".join(sorted(_fields_at(model, loc[:-1])))
        return f"{where}: {key}: unknown key; expected one of: {allowed}"
    if err["type"] == "missing":
        return f"{where}: {key}: required key is missing"
    got = err.get("input")
    got_text = f" (got {got!r})" if not isinstance(got, dict | list) else ""
    return f"{where}: {key}: {err['msg']}{got_text}"


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        info = getattr(current, "model_fields", {}).get(part)
        if info is None:
            return []
        ann = info.annotation
        current = next((a for a in getattr(ann, "__args__", ()) if hasattr(a, "model_fields")), ann)
    return list(getattr(current, "model_fields", {}))


def validate_config(
    model: type[BaseModel],
    data: dict,
    source: str,
    prefix: tuple = (),
    lines: dict[tuple, int] | None = None,
) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        msgs = [_describe_error(e, source, prefix, lines or {}, model) for e in err.errors()]
        raise RecipeError("invalid config:\n  " + "\n  ".join(msgs)) from None


def load_stage_config(
    model: type[BaseModel], path: str | Path | None, sets: list[str] | None = None, base: dict | None = None
) -> BaseModel:
    """Config for a single-stage CLI command: optional YAML file, then ``--set`` overrides."""
    data: dict = dict(base or {})
    lines: dict = {}
    source = "command line"
    if path is not None:
        file_data, lines = load_yaml(path)
        data.update(file_data)
        source = str(path)
    apply_sets(data, sets)
    return validate_config(model, data, source, (), lines)


# ----------------------------------------------------------------------------- recipes


@dataclass
class StageSpec:
    name: str
    kind: str
    config: StageConfig
    module: Any
    refs: list[str] = field(default_factory=list)

    def config_hash(self) -> str:
        blob = json.dumps({"kind": self.kind, "config": self.config.model_dump(mode="json")}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class Recipe:
    path: Path
    name: str
    run_dir: Path
    seed: int
    stages: list[StageSpec]
    raw: dict
    lines: dict[tuple, int] = field(default_factory=dict)

    def stage(self, name: str) -> StageSpec:
        for s in self.stages:
            if s.name == name:
                return s
        raise RecipeError(
            f"{self.path}: no stage named {name!r}; stages: {', '.join(s.name for s in self.stages)}"
        )


def _stage_refs(value: Any) -> list[str]:
    return [text[1:].split("/", 1)[0] for _, text in iter_refs(value)]


def iter_refs(value: Any, key: tuple = ()) -> list[tuple[tuple, str]]:
    """``(key path, "@stage/...")`` for every stage reference in a config, at any depth."""
    if isinstance(value, str) and value.startswith("@"):
        return [(key, value)]
    if isinstance(value, dict):
        return [r for k, v in value.items() for r in iter_refs(v, (*key, k))]
    if isinstance(value, list | tuple):
        return [r for i, v in enumerate(value) for r in iter_refs(v, (*key, i))]
    return []


def _check_name(kind: str, name: Any, pattern: re.Pattern, where: str) -> str:
    if not isinstance(name, str) or not pattern.match(name):
        raise RecipeError(
            f"{where}: {kind} name {name!r} is not an identifier: use letters, digits, '_' and '-' "
            "(no '/', '..' or leading '.'), as it becomes a folder name"
        )
    return name


def load_recipe(
    path: str | Path, sets: list[str] | None = None, allow_modules: list[str] | tuple[str, ...] = ()
) -> Recipe:
    """Read, override and validate a whole recipe; nothing runs until all of it is valid.

    ``kind:`` resolves to a registered stage kind, or to a module named in ``allow_modules``
    (the command line's ``--allow-module``): a recipe never imports code on its own.
    """
    p = Path(path)
    data, lines = load_yaml(p)
    apply_sets_recipe(data, [s for s in sets or [] if parse_set(s)[0][0] in ("scale", "scales")])
    apply_scale(data, p, lines)
    apply_sets_recipe(data, [s for s in sets or [] if parse_set(s)[0][0] not in ("scale", "scales")])
    unknown = set(data) - RECIPE_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise RecipeError(
            f"{p}:{lines.get((key,), '?')}: {key}: unknown key; expected one of: {', '.join(sorted(RECIPE_KEYS))}"
        )
    raw_name = data.get("name") or p.stem
    raw_name = str(raw_name) if isinstance(raw_name, int) and not isinstance(raw_name, bool) else raw_name
    name = _check_name("recipe", raw_name, RECIPE_NAME_RE, f"{p}:{lines.get(('name',), 1)}")
    stages_raw = data.get("stages")
    if not isinstance(stages_raw, dict) or not stages_raw:
        raise RecipeError(f"{p}: stages: expected a mapping of stage name -> settings, in run order")
    specs: list[StageSpec] = []
    errors: list[str] = []
    seen: set[str] = set()
    for stage_name, cfg in stages_raw.items():
        line = lines.get(("stages", stage_name), "?")
        try:
            _check_name("stage", stage_name, STAGE_NAME_RE, f"{p}:{line}: stages.{stage_name}")
        except RecipeError as err:
            errors.append(str(err))
            continue
        if cfg is not None and not isinstance(cfg, dict):
            errors.append(f"{p}:{line}: stages.{stage_name}: expected a mapping of settings")
            continue
        cfg = dict(cfg or {})
        kind = cfg.pop("kind", stage_name)
        try:
            module = load_stage_module(kind, allow_modules)
        except (KeyError, ImportError) as err:
            errors.append(f"{p}:{line}: stages.{stage_name}.kind: {err.args[0] if err.args else err}")
            seen.add(stage_name)
            continue
        refs = _stage_refs(cfg)
        for ref in refs:
            if ref not in seen:
                errors.append(
                    f"{p}:{line}: stages.{stage_name}: refers to @{ref}, which is not an earlier stage of this recipe"
                )
        try:
            config = validate_config(module.Config, cfg, str(p), ("stages", stage_name), lines)
        except RecipeError as err:
            errors.append(str(err).removeprefix("invalid config:\n  "))
            seen.add(stage_name)
            continue
        specs.append(
            StageSpec(name=stage_name, kind=kind, config=config, module=module, refs=sorted(set(refs)))
        )
        seen.add(stage_name)
    if errors:
        raise RecipeError(f"{p}: invalid recipe:\n  " + "\n  ".join(errors))
    try:
        seed = int(data.get("seed", 0))
    except (TypeError, ValueError):
        raise RecipeError(f"{p}:{lines.get(('seed',), '?')}: seed: expected an integer") from None
    return Recipe(
        path=p,
        name=name,
        run_dir=Path(data.get("run_dir", "runs")),
        seed=seed,
        stages=specs,
        raw=data,
        lines=lines,
    )


def ref_targets(spec: StageSpec, stage_dirs: dict[str, Path]) -> list[tuple[str, str, Path]]:
    """``(key path, "@stage/...", path)`` for every stage reference in the stage's config."""
    data = spec.config.model_dump(mode="python")
    found: list[tuple[str, str, Path]] = []
    for key, ref in iter_refs(data):
        stage, _, rest = ref[1:].partition("/")
        where = f"stages.{spec.name}.{_dotted(key)}"
        if stage not in stage_dirs:
            raise RecipeError(f"{where}: {ref} names no earlier stage")
        found.append((where, ref, stage_dirs[stage] / rest if rest else stage_dirs[stage]))
    return found


def resolved_config(spec: StageSpec, stage_dirs: dict[str, Path]) -> StageConfig:
    """The stage's config with every ``@stage/...`` replaced by the path it names, at any depth.

    The run engine hands stages this config, so no stage resolves anything itself. The config
    hash is always taken on the unresolved config: where the run folder lives does not change
    what a stage computes.
    """
    return resolve_refs(spec.config, stage_dirs, f"stage {spec.name!r}", ("stages", spec.name))


def resolve_refs(
    config: StageConfig, stage_dirs: dict[str, Path], source: str = "config", prefix: tuple = ()
) -> StageConfig:
    """``config`` with each ``@stage/rest`` string, at any depth, replaced by ``stage_dirs[stage]/rest``.

    Also for code that calls a stage's ``run`` itself (tests, tools), as the engine would.
    """
    data = config.model_dump(mode="python")
    refs = iter_refs(data)
    if not refs:
        return config
    for key, ref in refs:
        stage, _, rest = ref[1:].partition("/")
        if stage not in stage_dirs:
            raise RecipeError(f"{source}: {_dotted(key)}: {ref} names no stage given")
        _set_at(data, key, str(stage_dirs[stage] / rest if rest else stage_dirs[stage]))
    return validate_config(type(config), data, source, prefix)


def _dotted(key: tuple) -> str:
    return ".".join(str(k) for k in key)


def _set_at(data: Any, key: tuple, value: Any) -> None:
    node = data
    for part in key[:-1]:
        node = node[part]
    node[key[-1]] = value


def apply_scale(data: dict, path: Path, lines: dict[tuple, int]) -> None:
    """Apply the overrides of the chosen ``scale`` (``--set scale=gpu``) from the recipe's ``scales``.

    ``scales`` maps a scale name to ``{"STAGE.key.path": value}`` overrides, the same keys as
    ``--set``; the recipe's own values are one scale, and the command line's ``--set`` items still
    win over the chosen scale. A recipe without ``scales`` accepts no ``scale``.
    """
    scales = data.get("scales")
    scale = data.get("scale")
    if scales is None:
        if scale is not None:
            raise RecipeError(f"{path}:{lines.get(('scale',), '?')}: scale: this recipe defines no scales")
        return
    if not isinstance(scales, dict) or not all(isinstance(v, dict | type(None)) for v in scales.values()):
        raise RecipeError(
            f"{path}:{lines.get(('scales',), '?')}: scales: expected a mapping of scale name -> "
            "{STAGE.key: value} overrides"
        )
    if scale is None:
        scale = next(iter(scales))
        data["scale"] = scale
    if scale not in scales:
        raise RecipeError(
            f"{path}:{lines.get(('scale',), '?')}: scale: {scale!r} is not one of this recipe's scales "
            f"({', '.join(map(str, scales))})"
        )
    items = []
    for key, value in (scales[scale] or {}).items():
        items.append(f"{key}={json.dumps(value, ensure_ascii=False)}")
    try:
        apply_sets_recipe(data, items)
    except RecipeError as err:
        raise RecipeError(f"{path}:{lines.get(('scales', scale), '?')}: scales.{scale}: {err}") from None


def apply_sets_recipe(data: dict, sets: list[str] | None) -> dict:
    """In a recipe, ``--set curate.x=1`` means ``stages.curate.x``; top-level keys stay top-level."""
    stages = data.get("stages") or {}
    routed = []
    for item in sets or []:
        keys, _ = parse_set(item)
        if keys[0] in stages and keys[0] not in RECIPE_KEYS:
            routed.append("stages." + item)
        elif keys[0] in RECIPE_KEYS:
            routed.append(item)
        else:
            raise RecipeError(
                f"--set {item!r}: {keys[0]!r} is neither a stage ({', '.join(stages)}) nor a recipe key"
            )
    return apply_sets(data, routed)

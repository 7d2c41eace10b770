"""The run engine: runs a recipe's stages in order, skipping what is already done.

``runs/<name>/manifest.json`` records, per stage, the config hash, the input artifacts with
their content hashes, the outputs, the wall time and the package version. A stage is reused
only when its config and inputs are unchanged and its folder is whole. A stage works in
``.<stage>.partial/`` and is renamed into place only when it finished, so a ``kill -9`` can
never leave a folder that looks done. Hand-written: a small, dependency-free make for stages.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from vinaforge import __version__
from vinaforge.io import atomic_write_json, sha256_path
from vinaforge.logs import log_to_file
from vinaforge.recipe import Recipe, RecipeError, StageSpec
from vinaforge.report import write_report
from vinaforge.stage import StageContext, StageResult, is_resumable

log = logging.getLogger("vinaforge.run")
PARTIAL_MARK = ".vinaforge_partial.json"
RESULT_FILE = "result.json"


def _load_manifest(path: Path) -> dict:
    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            log.warning("manifest %s is damaged; every stage will run again", path)
    return {"stages": {}}


def _path_inputs(value: Any) -> list[str]:
    """Plain (non-reference) strings in a config that name existing files or folders."""
    if isinstance(value, str):
        return [value] if not value.startswith("@") and value and os.path.exists(value) else []
    if isinstance(value, dict):
        return [p for v in value.values() for p in _path_inputs(v)]
    if isinstance(value, list):
        return [p for v in value for p in _path_inputs(v)]
    return []


class StageFailed(RuntimeError):
    """A stage raised; the message says which, why, and where its full log is."""

    def __init__(self, stage: str, log_path: Path, cause: BaseException):
        self.stage, self.log_path, self.cause = stage, log_path, cause
        super().__init__(f"stage {stage!r} failed: {type(cause).__name__}: {cause} (full log: {log_path})")


class HashCache:
    """Content hashes keyed by (path, size, mtime), so unchanged big inputs are not re-read."""

    def __init__(self, store: dict):
        self.store = store

    def __call__(self, path: str) -> str:
        p = Path(path)
        if p.is_file():
            st = p.stat()
            key = f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}"
        else:
            stats = [
                (str(q), q.stat().st_size, q.stat().st_mtime_ns) for q in sorted(p.rglob("*")) if q.is_file()
            ]
            digest = hashlib.sha256(repr(stats).encode()).hexdigest()
            key = f"{p.resolve()}|{digest}"
        if key not in self.store:
            self.store[key] = sha256_path(p)
        return self.store[key]


def stage_inputs(spec: StageSpec, manifest: dict, hasher: HashCache) -> list[dict]:
    config = spec.config.model_dump(mode="json")
    inputs = [{"path": p, "sha256": hasher(p)} for p in sorted(set(_path_inputs(config)))]
    for ref in spec.refs:
        upstream = manifest["stages"].get(ref, {})
        inputs.append({"path": f"@{ref}", "sha256": upstream.get("output_sha256", "missing")})
    return inputs


def _is_reusable(entry: dict | None, spec: StageSpec, inputs: list[dict], final_dir: Path) -> bool:
    return bool(
        entry
        and entry.get("status") == "done"
        and entry.get("config_hash") == spec.config_hash()
        and entry.get("inputs") == inputs
        and (final_dir / RESULT_FILE).is_file()
    )


def _prepare_work_dir(work_dir: Path, spec: StageSpec, resumable: bool) -> None:
    mark = work_dir / PARTIAL_MARK
    if work_dir.exists():
        same = mark.is_file() and json.loads(mark.read_text()).get("config_hash") == spec.config_hash()
        if resumable and same:
            log.info("stage %s: resuming unfinished work in %s", spec.name, work_dir)
            return
        log.info("stage %s: discarding unfinished work in %s", spec.name, work_dir)
        shutil.rmtree(work_dir)
    work_dir.mkdir(parents=True)
    atomic_write_json(mark, {"config_hash": spec.config_hash(), "kind": spec.kind})


def _result_dict(result: StageResult, wall: float) -> dict:
    if not isinstance(result, StageResult):
        raise TypeError(f"stage returned {type(result).__name__}, expected StageResult")
    d = dataclasses.asdict(result)
    d["wall_time_s"] = wall
    return d


def _finalise(work_dir: Path, final_dir: Path) -> None:
    """Swap the finished work folder into place; the old folder is removed only afterwards."""
    (work_dir / PARTIAL_MARK).unlink(missing_ok=True)
    trash = final_dir.with_name(f".{final_dir.name}.old")
    if trash.exists():
        shutil.rmtree(trash)
    if final_dir.exists():
        os.replace(final_dir, trash)
    os.replace(work_dir, final_dir)
    if trash.exists():
        shutil.rmtree(trash)


def run_recipe(
    recipe: Recipe,
    from_stage: str | None = None,
    only: str | None = None,
    run_root: Path | None = None,
) -> Path:
    """Run (or reuse) every stage; returns the run folder holding ``manifest.json`` and ``report.md``."""
    run_dir = (run_root or recipe.run_dir) / recipe.name
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = run_dir / "manifest.json"
    manifest = _load_manifest(manifest_path)
    manifest.update({"recipe": str(recipe.path), "name": recipe.name, "vinaforge_version": __version__})
    hasher = HashCache(manifest.setdefault("hash_cache", {}))
    names = [s.name for s in recipe.stages]
    for flag, value in (("--from", from_stage), ("--only", only)):
        if value is not None and value not in names:
            raise RecipeError(f"{flag} {value}: no such stage; stages: {', '.join(names)}")
    forced_from = names.index(from_stage) if from_stage else len(names)
    sections: list[tuple[str, str, dict, bool]] = []
    for index, spec in enumerate(recipe.stages):
        final_dir = run_dir / spec.name
        entry = manifest["stages"].get(spec.name)
        if only is not None and spec.name != only:
            if not _is_done(entry, final_dir):
                if spec.name in _needed_by(recipe, only):
                    raise RecipeError(f"--only {only}: it needs stage {spec.name!r}, which has not run yet")
                continue
            sections.append((spec.name, spec.kind, _read_result(final_dir), True))
            continue
        inputs = stage_inputs(spec, manifest, hasher)
        forced = index >= forced_from or only == spec.name
        if not forced and _is_reusable(entry, spec, inputs, final_dir):
            log.info("stage %s: unchanged, reusing %s", spec.name, final_dir)
            sections.append((spec.name, spec.kind, _read_result(final_dir), True))
            continue
        result = _run_stage(recipe, spec, run_dir, final_dir, manifest)
        manifest["stages"][spec.name] = {
            "kind": spec.kind,
            "status": "done",
            "config_hash": spec.config_hash(),
            "config": spec.config.model_dump(mode="json"),
            "inputs": inputs,
            "outputs": {k: str(final_dir / v) for k, v in result["outputs"].items()},
            "output_sha256": sha256_path(final_dir),
            "wall_time_s": result["wall_time_s"],
            "vinaforge_version": __version__,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        atomic_write_json(manifest_path, manifest)
        sections.append((spec.name, spec.kind, result, False))
    atomic_write_json(manifest_path, manifest)
    write_report(run_dir, recipe.name, sections)
    return run_dir


def _is_done(entry: dict | None, final_dir: Path) -> bool:
    return bool(entry and entry.get("status") == "done" and (final_dir / RESULT_FILE).is_file())


def _needed_by(recipe: Recipe, name: str) -> set[str]:
    needed: set[str] = set()
    todo = list(recipe.stage(name).refs)
    while todo:
        ref = todo.pop()
        if ref not in needed:
            needed.add(ref)
            todo.extend(recipe.stage(ref).refs)
    return needed


def _read_result(final_dir: Path) -> dict:
    return json.loads((final_dir / RESULT_FILE).read_text(encoding="utf-8"))


def _run_stage(recipe: Recipe, spec: StageSpec, run_dir: Path, final_dir: Path, manifest: dict) -> dict:
    work_dir = run_dir / f".{spec.name}.partial"
    _prepare_work_dir(work_dir, spec, is_resumable(spec.module))
    upstream = {ref: run_dir / ref for ref in spec.refs}
    with log_to_file(work_dir / "log.txt") as logger:
        ctx = StageContext(
            name=spec.name,
            kind=spec.kind,
            run_dir=run_dir,
            work_dir=work_dir,
            final_dir=final_dir,
            upstream=upstream,
            log=logging.getLogger(f"vinaforge.stage.{spec.name}"),
            seed=recipe.seed,
        )
        logger.info("stage %s (%s): starting in %s", spec.name, spec.kind, work_dir)
        start = time.perf_counter()
        try:
            result = spec.module.run(spec.config, ctx)
        except KeyboardInterrupt:
            logger.warning("stage %s interrupted; unfinished work kept in %s", spec.name, work_dir)
            raise
        except Exception as err:
            logger.exception("stage %s failed; unfinished work kept in %s", spec.name, work_dir)
            raise StageFailed(spec.name, work_dir / "log.txt", err) from err
        wall = time.perf_counter() - start
        logger.info("stage %s: finished in %.1f s", spec.name, wall)
    record = _result_dict(result, wall)
    atomic_write_json(work_dir / RESULT_FILE, record)
    _finalise(work_dir, final_dir)
    return record

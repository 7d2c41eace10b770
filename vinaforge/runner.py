"""The run engine: runs a recipe's stages in order, skipping what is already done.

``runs/<name>/manifest.json`` records, per stage, the config hash, the input artifacts with
their content hashes, the outputs (with their size and mtime, and one content hash), the wall
time and the package version. The guarantees (see ``docs/engine.md``):

- a stage is reused only when its config and inputs are unchanged and its folder still holds
  exactly what was recorded (size/mtime always; content hashes with ``verify=True``);
- a stage works in ``.<stage>.partial/`` and is renamed into place only when it finished, so a
  ``kill -9`` never leaves a folder that looks done; unfinished work is resumed only when the
  config *and* the input hashes match what it was started with (recorded in the folder);
- one process at a time owns a run folder (an exclusive lock that says who holds it);
- nothing is deleted outside the run folder, and a metric that comes out NaN fails its stage;
- every ``@stage/...`` reference is resolved (and checked to exist) before the stage runs;
- credentials in URLs never reach the manifest, the report or the logs.

Hand-written: a small, dependency-free make for stages.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import fcntl
import glob
import hashlib
import json
import logging
import math
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vinaforge import __version__
from vinaforge.io import atomic_write_json, sha256_path
from vinaforge.logs import log_to_file
from vinaforge.recipe import Recipe, RecipeError, StageSpec, ref_targets, resolved_config
from vinaforge.redact import redact_obj, redact_text
from vinaforge.report import write_report
from vinaforge.stage import StageContext, StageResult, declared_outputs, is_resumable

log = logging.getLogger("vinaforge.run")
PARTIAL_MARK = ".vinaforge_partial.json"
RESULT_FILE = "result.json"
LOCK_FILE = ".lock"


class StageFailed(RuntimeError):
    """A stage raised; the message says which, why (one line), and where its full log is."""

    def __init__(self, stage: str, log_path: Path, cause: BaseException | str):
        self.stage, self.log_path, self.cause = stage, log_path, cause
        if isinstance(cause, BaseException):
            text = str(cause).strip().splitlines()
            why = f"{type(cause).__name__}: {text[0] if text else ''}".rstrip(": ")
        else:
            why = cause
        super().__init__(redact_text(f"stage {stage!r} failed: {why} (full log: {log_path})"))


class RunLocked(RuntimeError):
    """Another live process holds the run folder."""


# ----------------------------------------------------------------------------- lock


_HELD: set[Path] = set()  # run folders this process holds (POSIX locks do not exclude oneself)


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[dict]:
    """Hold an exclusive lock on ``run_dir`` for the duration of the block.

    A POSIX record lock (``lockf``): the kernel releases it when its holder dies, so the lock of
    a ``kill -9``'d run is taken over by the next run without any clean-up, and, unlike
    ``flock``, worker processes forked by a stage do not inherit it. The file's contents (pid,
    host, start time) only serve to say who holds a live lock.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    key = run_dir.resolve()
    path = run_dir / LOCK_FILE
    if key in _HELD:
        # not _describe_holder: reading the file would close a descriptor and drop our own lock
        raise RunLocked(f"run folder {run_dir} is in use by pid {os.getpid()} (this process)")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise RunLocked(
                    f"cannot lock run folder {run_dir}: {err.strerror} (a file system without POSIX "
                    "locks?); use a local --run-dir"
                ) from None
            raise RunLocked(f"run folder {run_dir} is in use by {_describe_holder(path)}") from None
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": dt.datetime.now().isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        _HELD.add(key)
        try:
            yield holder
        finally:
            _HELD.discard(key)
    finally:
        os.close(fd)  # releases the lock


def _describe_holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, json.JSONDecodeError):
        info = {}
    if not info:
        return "another process (it has not written its details yet)"
    return f"pid {info.get('pid')} on {info.get('host')} since {info.get('started')}"


# ----------------------------------------------------------------------------- safety


def _remove_tree(path: Path, run_dir: Path) -> None:
    """``rmtree`` that refuses anything but a strict sub-folder of the run folder."""
    target, root = path.resolve(), run_dir.resolve()
    if target == root or root not in target.parents:
        raise RuntimeError(f"refusing to delete {path}: it is not inside the run folder {run_dir}")
    shutil.rmtree(target)


def _nan_metrics(value: Any, key: str = "") -> list[str]:
    if isinstance(value, float) and math.isnan(value):
        return [key or "metric"]
    if isinstance(value, dict):
        return [
            k for name, v in value.items() for k in _nan_metrics(v, f"{key}.{name}" if key else str(name))
        ]
    if isinstance(value, list | tuple):
        return [k for i, v in enumerate(value) for k in _nan_metrics(v, f"{key}.{i}")]
    return []


# ----------------------------------------------------------------------------- inputs


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
    """The stage's inputs with content hashes: plain paths hashed, upstream stages by output hash."""
    config = spec.config.model_dump(mode="json")
    inputs = [{"path": p, "sha256": hasher(p)} for p in sorted(set(_path_inputs(config)))]
    for ref in spec.refs:
        upstream = manifest["stages"].get(ref, {})
        inputs.append({"path": f"@{ref}", "sha256": upstream.get("output_sha256", "missing")})
    return inputs


def check_refs(recipe: Recipe, spec: StageSpec, run_dir: Path, only_done: dict | None = None) -> None:
    """Every ``@stage/...`` path of ``spec`` must exist in that stage's folder.

    With ``only_done`` (a manifest's stages), references into stages that have not finished
    yet are skipped: ``recipe check`` checks what it can before anything ran.
    """
    dirs = {s.name: run_dir / s.name for s in recipe.stages}
    line = recipe.lines.get(("stages", spec.name), "?")
    for key, ref, target in ref_targets(spec, dirs):
        stage = ref[1:].split("/", 1)[0]
        if only_done is not None and (only_done.get(stage) or {}).get("status") != "done":
            _check_declared(recipe, ref, f"{recipe.path}:{line}: {key}")
            continue
        text = str(target)
        found = bool(glob.glob(text)) if any(c in text for c in "*?[") else target.exists()
        if not found:
            raise RecipeError(
                f"{recipe.path}:{line}: {key}: {ref} does not exist in the output of stage {stage!r} "
                f"(looked for {target})"
            )


def _check_declared(recipe: Recipe, ref: str, where: str) -> None:
    """A reference into a stage that has not run yet must name one of its declared outputs."""
    stage, _, rest = ref[1:].partition("/")
    first = rest.split("/", 1)[0]
    if not first or any(c in first for c in "*?["):
        return
    upstream = recipe.stage(stage)
    names = declared_outputs(upstream.module, upstream.config)
    if names is not None and first not in names:
        raise RecipeError(
            f"{where}: {ref}: stage {stage!r} ({upstream.kind}) writes no {first!r}; "
            f"its outputs are {', '.join(sorted(names - {'log.txt', 'result.json'}))}"
        )


# ----------------------------------------------------------------------------- reuse


def _file_stats(folder: Path) -> dict[str, list[int]]:
    return {
        q.relative_to(folder).as_posix(): [q.stat().st_size, q.stat().st_mtime_ns]
        for q in sorted(folder.rglob("*"))
        if q.is_file()
    }


def _output_drift(entry: dict, final_dir: Path, verify: bool) -> str | None:
    """Why a finished stage's folder no longer holds what the manifest recorded (None: intact)."""
    if not (final_dir / RESULT_FILE).is_file():
        return f"{final_dir / RESULT_FILE} is missing"
    recorded = entry.get("files")
    if recorded is not None:
        current = _file_stats(final_dir)
        for rel in sorted(set(recorded) | set(current)):
            if rel not in current:
                return f"{final_dir / rel} is missing"
            if rel not in recorded:
                return f"{final_dir / rel} was added"
            if current[rel] != recorded[rel]:
                return f"{final_dir / rel} changed (size or modification time)"
    if verify or recorded is None:
        if sha256_path(final_dir) != entry.get("output_sha256"):
            return f"the contents of {final_dir} do not match the recorded hash"
    return None


def _reuse_verdict(
    entry: dict | None, spec: StageSpec, inputs: list[dict], final_dir: Path, verify: bool
) -> tuple[bool, str]:
    if not entry or entry.get("status") != "done":
        return False, "not run yet"
    if entry.get("config_hash") != spec.config_hash():
        return False, "its settings changed"
    if entry.get("inputs") != inputs:
        return False, "its inputs changed"
    drift = _output_drift(entry, final_dir, verify)
    if drift:
        return False, f"its output was modified since it finished: {drift}"
    return True, ""


# ----------------------------------------------------------------------------- stage run


def _prepare_work_dir(
    work_dir: Path, run_dir: Path, spec: StageSpec, inputs: list[dict], resumable: bool
) -> None:
    """Keep unfinished work only when it was started with the same config AND the same inputs."""
    mark = work_dir / PARTIAL_MARK
    wanted = {"config_hash": spec.config_hash(), "kind": spec.kind, "inputs": inputs}
    if work_dir.exists():
        try:
            started = json.loads(mark.read_text(encoding="utf-8")) if mark.is_file() else {}
        except (OSError, json.JSONDecodeError):
            started = {}
        same = all(started.get(k) == v for k, v in wanted.items())
        if resumable and same:
            log.info("stage %s: resuming unfinished work in %s", spec.name, work_dir)
            return
        why = "its settings or inputs changed" if started else "it has no record of how it was started"
        log.info("stage %s: discarding unfinished work in %s (%s)", spec.name, work_dir, why)
        _remove_tree(work_dir, run_dir)
    work_dir.mkdir(parents=True)
    atomic_write_json(mark, wanted)


def _result_dict(result: StageResult, wall: float) -> dict:
    if not isinstance(result, StageResult):
        raise TypeError(f"stage returned {type(result).__name__}, expected StageResult")
    d = dataclasses.asdict(result)
    d["wall_time_s"] = wall
    return d


def _finalise(work_dir: Path, final_dir: Path, run_dir: Path) -> None:
    """Swap the finished work folder into place; the old folder is removed only afterwards."""
    (work_dir / PARTIAL_MARK).unlink(missing_ok=True)
    trash = final_dir.with_name(f".{final_dir.name}.old")
    if trash.exists():
        _remove_tree(trash, run_dir)
    if final_dir.exists():
        os.replace(final_dir, trash)
    os.replace(work_dir, final_dir)
    if trash.exists():
        _remove_tree(trash, run_dir)


def seed_everything(seed: int) -> None:
    """Reset the global random generators before each stage.

    A stage that draws from them before its trainer seeds itself (a new reward head, rows added by
    ``resize_token_embeddings``) would otherwise depend on what earlier stages in the same process
    drew, so ``--from`` in a new process gave another model than the chained run.
    """
    import random

    random.seed(seed)
    with contextlib.suppress(ImportError):
        import numpy

        numpy.random.seed(seed % 2**32)
    with contextlib.suppress(ImportError):
        import torch

        torch.manual_seed(seed)


def _run_stage(recipe: Recipe, spec: StageSpec, run_dir: Path, final_dir: Path, inputs: list[dict]) -> dict:
    check_refs(recipe, spec, run_dir)
    config = resolved_config(spec, {s.name: run_dir / s.name for s in recipe.stages})
    work_dir = run_dir / f".{spec.name}.partial"
    _prepare_work_dir(work_dir, run_dir, spec, inputs, is_resumable(spec.module))
    log_path = work_dir / "log.txt"
    with log_to_file(log_path) as logger:
        ctx = StageContext(
            name=spec.name,
            kind=spec.kind,
            run_dir=run_dir,
            work_dir=work_dir,
            final_dir=final_dir,
            upstream={ref: run_dir / ref for ref in spec.refs},
            log=logging.getLogger(f"vinaforge.stage.{spec.name}"),
            seed=recipe.seed,
            inputs=inputs,
        )
        logger.info("stage %s (%s): starting in %s", spec.name, spec.kind, work_dir)
        start = time.perf_counter()
        seed_everything(recipe.seed)
        try:
            result = spec.module.run(config, ctx)
            record = _result_dict(result, time.perf_counter() - start)
        except KeyboardInterrupt:
            logger.warning("stage %s interrupted; unfinished work kept in %s", spec.name, work_dir)
            raise
        except Exception as err:
            # the traceback goes to the stage log only; the console shows the one-line StageFailed
            logger.error("stage %s failed; unfinished work kept in %s", spec.name, work_dir, exc_info=True)
            raise StageFailed(spec.name, log_path, err) from err
        nans = _nan_metrics(record["metrics"])
        if nans:
            logger.error("stage %s: metric %s is NaN", spec.name, ", ".join(nans))
            raise StageFailed(spec.name, log_path, f"metric {', '.join(nans)} is NaN")
        logger.info("stage %s: finished in %.1f s", spec.name, record["wall_time_s"])
    atomic_write_json(work_dir / RESULT_FILE, redact_obj(record))
    _finalise(work_dir, final_dir, run_dir)
    return record


# ----------------------------------------------------------------------------- recipe run


def run_recipe(
    recipe: Recipe,
    from_stage: str | None = None,
    only: str | None = None,
    run_root: Path | None = None,
    verify: bool = False,
) -> Path:
    """Run (or reuse) every stage; returns the run folder holding ``manifest.json`` and ``report.md``.

    ``verify`` re-hashes the outputs of every stage that would be reused (a size/mtime check
    is always done). Raises :class:`RunLocked` when another process holds the run folder.
    """
    run_dir = (run_root or recipe.run_dir) / recipe.name
    names = [s.name for s in recipe.stages]
    for flag, value in (("--from", from_stage), ("--only", only)):
        if value is not None and value not in names:
            raise RecipeError(f"{flag} {value}: no such stage; stages: {', '.join(names)}")
    with run_lock(run_dir):
        return _run_locked(recipe, run_dir, from_stage, only, verify)


def _run_locked(
    recipe: Recipe, run_dir: Path, from_stage: str | None, only: str | None, verify: bool
) -> Path:
    manifest_path = run_dir / "manifest.json"
    manifest = _load_manifest(manifest_path)
    manifest.update({"recipe": str(recipe.path), "name": recipe.name, "vinaforge_version": __version__})
    hasher = HashCache(manifest.setdefault("hash_cache", {}))
    names = [s.name for s in recipe.stages]
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
            drift = _output_drift(entry, final_dir, verify) if spec.name in _needed_by(recipe, only) else None
            if drift:
                raise RecipeError(
                    f"--only {only}: the output of stage {spec.name!r} was modified since it finished "
                    f"({drift}); run without --only to redo it"
                )
            sections.append((spec.name, spec.kind, _read_result(final_dir), True))
            continue
        inputs = stage_inputs(spec, manifest, hasher)
        forced = index >= forced_from or only == spec.name
        if not forced:
            reusable, why = _reuse_verdict(entry, spec, inputs, final_dir, verify)
            if reusable:
                log.info("stage %s: unchanged, reusing %s", spec.name, final_dir)
                sections.append((spec.name, spec.kind, _read_result(final_dir), True))
                continue
            if entry and entry.get("status") == "done":
                log.warning("stage %s: running it again, as %s", spec.name, why)
        manifest["stages"].pop(spec.name, None)  # not done until it is done again
        atomic_write_json(manifest_path, redact_obj(manifest))
        result = _run_stage(recipe, spec, run_dir, final_dir, inputs)
        manifest["stages"][spec.name] = {
            "kind": spec.kind,
            "status": "done",
            "config_hash": spec.config_hash(),
            "config": spec.config.model_dump(mode="json"),
            "inputs": inputs,
            "outputs": {k: str(final_dir / v) for k, v in result["outputs"].items()},
            "output_sha256": sha256_path(final_dir),
            "files": _file_stats(final_dir),
            "wall_time_s": result["wall_time_s"],
            "vinaforge_version": __version__,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        atomic_write_json(manifest_path, redact_obj(manifest))
        sections.append((spec.name, spec.kind, result, False))
    atomic_write_json(manifest_path, redact_obj(manifest))
    write_report(run_dir, recipe.name, sections, description=recipe.raw.get("description"))
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


def check_recipe_inputs(recipe: Recipe, run_root: Path | None = None) -> None:
    """``recipe check``: references into stages already finished in the run folder must exist."""
    run_dir = (run_root or recipe.run_dir) / recipe.name
    done = _load_manifest(run_dir / "manifest.json")["stages"] if run_dir.is_dir() else {}
    for spec in recipe.stages:
        check_refs(recipe, spec, run_dir, only_done=done)

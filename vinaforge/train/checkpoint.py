"""Atomic, verifiable training checkpoints.

accelerate's ``save_state`` writes the model, optimizer and RNG states (and handles DDP, FSDP and
DeepSpeed); what it does not do is make the folder safe against a crash or a full disk. Here each
checkpoint is written into a hidden ``.tmp-step-N`` folder, completed with ``checkpoint.json`` (the
size and xxh64 of every file, the step, the hash of the settings that determine the trajectory),
fsynced, and only then renamed to ``step-N``. When resuming, a checkpoint whose manifest is missing
or whose files do not match it is skipped with a warning, never loaded; a good checkpoint written
under different settings is refused with the list of keys that differ.

Hand-written: the manifest and the temp-folder-then-rename protocol; serialisation is accelerate's
and torch's.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import xxhash

from vinaforge.train.config import diff_keys

log = logging.getLogger(__name__)

MANIFEST = "checkpoint.json"
TRAINER_STATE = "trainer_state.json"
STEP_RE = re.compile(r"^step-(\d{8})$")
FORMAT = 1


class CheckpointError(RuntimeError):
    """A checkpoint could not be written or read; the message says which and why."""


class CheckpointMismatchError(CheckpointError):
    """A good checkpoint of a run with other settings."""


@dataclass
class Checkpoint:
    path: Path
    step: int
    manifest: dict

    def trainer_state(self) -> dict:
        return json.loads((self.path / TRAINER_STATE).read_text(encoding="utf-8"))


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def file_digest(path: Path, chunk: int = 1 << 22) -> str:
    h = xxhash.xxh64()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_json_synced(path: Path, obj: dict) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, ensure_ascii=False, indent=1, default=str)
        fh.flush()
        os.fsync(fh.fileno())


def list_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """Finished checkpoint folders (``step-N``), oldest first; temp folders are not listed."""
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = STEP_RE.match(p.name)
        if m and p.is_dir():
            found.append((int(m.group(1)), p))
    return sorted(found)


def verify_checkpoint(path: Path) -> dict:
    """The manifest of a whole checkpoint; raises :class:`CheckpointError` naming what is wrong."""
    manifest_file = path / MANIFEST
    if not manifest_file.is_file():
        raise CheckpointError(f"{path}: no {MANIFEST} (the checkpoint was never completed)")
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        files = manifest["files"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise CheckpointError(f"{manifest_file}: damaged manifest ({err})") from err
    for rel, info in files.items():
        f = path / rel
        if not f.is_file():
            raise CheckpointError(f"{path}: file {rel} is missing")
        if f.stat().st_size != info["size"]:
            raise CheckpointError(
                f"{path}: file {rel} has {f.stat().st_size} bytes, the manifest says {info['size']}"
            )
        if file_digest(f) != info["xxh64"]:
            raise CheckpointError(f"{path}: file {rel} does not match its checksum (damaged)")
    return manifest


def latest_checkpoint(root: Path, config_hash: str, config: dict | None = None) -> Checkpoint | None:
    """The newest good checkpoint; damaged ones are skipped (with a warning), other configs refused."""
    for step, path in reversed(list_checkpoints(root)):
        try:
            manifest = verify_checkpoint(path)
        except CheckpointError as err:
            log.warning("ignoring damaged checkpoint: %s", err)
            continue
        if manifest.get("config_hash") != config_hash:
            differ = diff_keys(manifest.get("config") or {}, config or {}) if config is not None else []
            keys = f"; settings that differ: {', '.join(differ[:12])}" if differ else ""
            raise CheckpointMismatchError(
                f"checkpoint {path} was written by a run with other settings (config hash "
                f"{str(manifest.get('config_hash'))[:12]} vs {config_hash[:12]}){keys}. "
                "Resume with the same config, or train into another --output folder."
            )
        return Checkpoint(path=path, step=step, manifest=manifest)
    return None


def write_checkpoint(
    root: Path,
    step: int,
    save_states: Callable[[Path], None],
    trainer_state: dict,
    config_hash: str,
    config: dict,
    is_main: bool = True,
    barrier: Callable[[], None] = lambda: None,
) -> Path:
    """Write ``root/step-N`` atomically; ``save_states(folder)`` runs on every process.

    On an error (a full disk...) the temp folder is removed and :class:`CheckpointError` raised;
    the checkpoints already there are untouched.
    """
    final = root / checkpoint_name(step)
    tmp = root / f".tmp-{checkpoint_name(step)}"
    if is_main:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    barrier()
    try:
        save_states(tmp)
        barrier()
        if is_main:
            _write_json_synced(tmp / TRAINER_STATE, trainer_state)
            files = {}
            for f in sorted(q for q in tmp.rglob("*") if q.is_file()):
                with open(f, "rb+") as fh:
                    os.fsync(fh.fileno())
                files[f.relative_to(tmp).as_posix()] = {"size": f.stat().st_size, "xxh64": file_digest(f)}
            manifest = {
                "format": FORMAT,
                "step": step,
                "config_hash": config_hash,
                "config": config,
                "files": files,
                "written_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
            _write_json_synced(tmp / MANIFEST, manifest)
            _fsync_dir(tmp)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            _fsync_dir(root)
    except OSError as err:
        if is_main:
            shutil.rmtree(tmp, ignore_errors=True)
        previous = [p.name for _, p in list_checkpoints(root)]
        kept = (
            f"the previous checkpoint {previous[-1]} is intact"
            if previous
            else "no earlier checkpoint exists"
        )
        raise CheckpointError(
            f"could not write checkpoint {final}: {err.strerror or err} (errno {err.errno}); {kept}. "
            "Free disk space (or lower keep_checkpoints) and resume with --resume."
        ) from err
    barrier()
    return final


def prune_checkpoints(root: Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest finished checkpoints, and stale temp folders."""
    removed = []
    ckpts = list_checkpoints(root)
    for _, path in ckpts[: max(0, len(ckpts) - keep)]:
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    for p in root.glob(".tmp-step-*") if root.is_dir() else []:
        shutil.rmtree(p, ignore_errors=True)
    return removed

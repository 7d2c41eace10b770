"""The ``split`` stage: one held-out split of a dataset that every later stage agrees on.

A held-out figure is honest only if no stage trains on it. When continued pretraining mixes in
instructions (hybrid pretraining) and SFT then tunes on the same instructions, each stage's own
``eval_fraction`` would hold out different records, and the CPT stage would train on SFT's
held-out ones. This stage splits once, by a hash of each record's text (stable across runs and
machines), and writes ``train.jsonl`` and ``heldout.jsonl``; recipes point every training stage at
``@split/train`` and every evaluation at ``@split/heldout``. Records are copied as they are (any
format the readers know); a record that is not a JSON object is an error naming its line, and
exact duplicates are kept in ``duplicates.jsonl``, so ``read = train + heldout + duplicates``.

Hand-written: a few lines over :mod:`vinaforge.io`; no library splits JSONL files by hash.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import Field

from vinaforge.io import atomic_path, atomic_write_json, expand_inputs, iter_jsonl
from vinaforge.recipe import InputPaths
from vinaforge.stage import StageConfig, StageContext, StageResult

OUTPUTS = ("train.jsonl", "heldout.jsonl", "duplicates.jsonl", "stats.json")  # for recipe check


class Config(StageConfig):
    """Settings of the ``split`` stage."""

    inputs: InputPaths = Field(min_length=1, description="JSONL(.gz) files or folders")
    heldout_fraction: float = Field(0.02, gt=0.0, lt=1.0)
    heldout_max: int | None = Field(None, gt=0, description="at most this many held-out records (the rest train)")
    max_records: int | None = Field(None, gt=0, description="read at most this many records")


def record_key(rec: dict) -> bytes:
    """The hash a record is split by: its JSON with sorted keys and squeezed whitespace."""
    text = json.dumps(rec, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).digest()


def run(config: Config, ctx: StageContext) -> StageResult:
    files = expand_inputs([str(p) for p in config.inputs], suffixes=(".jsonl", ".jsonl.gz"))
    if not files:
        raise FileNotFoundError(f"stage {ctx.name!r}: inputs {config.inputs} contain no .jsonl files")
    counts = {"read": 0, "train": 0, "heldout": 0, "duplicates": 0}
    seen: set[bytes] = set()
    paths = {k: ctx.work_dir / f"{k}.jsonl" for k in ("train", "heldout", "duplicates")}
    with (
        atomic_path(paths["train"]) as tp,
        atomic_path(paths["heldout"]) as hp,
        atomic_path(paths["duplicates"]) as dp,
        open(tp, "w", encoding="utf-8") as train,
        open(hp, "w", encoding="utf-8") as held,
        open(dp, "w", encoding="utf-8") as dups,
    ):
        for path in files:
            for _, rec in iter_jsonl(Path(path)):
                if config.max_records is not None and counts["read"] >= config.max_records:
                    break
                counts["read"] += 1
                key = record_key(rec)
                line = json.dumps(rec, ensure_ascii=False) + "\n"
                if key in seen:
                    counts["duplicates"] += 1
                    dups.write(line)
                    continue
                seen.add(key)
                in_heldout = int.from_bytes(key[:8], "big") / 2**64 < config.heldout_fraction
                if in_heldout and (config.heldout_max is None or counts["heldout"] < config.heldout_max):
                    counts["heldout"] += 1
                    held.write(line)
                else:
                    counts["train"] += 1
                    train.write(line)
    assert counts["read"] == counts["train"] + counts["heldout"] + counts["duplicates"], counts
    atomic_write_json(ctx.work_dir / "stats.json", {**counts, "files": [str(f) for f in files]})
    report = (
        f"Split {counts['read']:,} records of {len(files)} file(s) by hash: {counts['train']:,} to train, "
        f"{counts['heldout']:,} held out (no stage of this recipe trains on them), "
        f"{counts['duplicates']:,} exact duplicates set aside.\n"
    )
    return StageResult(
        outputs={"train": "train.jsonl", "heldout": "heldout.jsonl", "duplicates": "duplicates.jsonl"},
        metrics=counts,
        report=report,
    )

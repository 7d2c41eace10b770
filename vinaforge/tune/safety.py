"""Our own Vietnamese safety data (SeaLLMs-style), written by the vinaforge authors.

``resources/`` holds:

- ``safety_system_prompts.jsonl`` — five Vietnamese system prompts that ask for helpful, honest,
  safe answers and for no needless refusals;
- ``refusals.jsonl`` — harmful requests (weapons, drugs, hacking, fraud, self-harm, violence,
  privacy, hate) each with a safe refusal *and* a helpful alternative; ``split`` train / test;
- ``benign_lookalikes.jsonl`` — questions that sound risky but are fine ("kill a process",
  first aid, history, chemistry homework) with helpful answers, to measure over-refusal.

The ``train`` items can be mixed into SFT (:func:`write_safety_sft`); the ``test`` items are the
held-out prompts of the refusal / over-refusal rates (:func:`heldout_prompts`,
:mod:`vinaforge.eval.safety`).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

RESOURCES = Path(__file__).parent / "resources"
SYSTEM_PROMPTS = RESOURCES / "safety_system_prompts.jsonl"
REFUSALS = RESOURCES / "refusals.jsonl"
BENIGN = RESOURCES / "benign_lookalikes.jsonl"


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def system_prompts() -> list[str]:
    return [r["prompt"] for r in _read(SYSTEM_PROMPTS)]


def items(split: str | None = None) -> tuple[list[dict], list[dict]]:
    """``(harmful, benign)`` records of one split (``train`` / ``test``) or all."""
    harmful, benign = _read(REFUSALS), _read(BENIGN)
    if split:
        harmful = [r for r in harmful if r["split"] == split]
        benign = [r for r in benign if r["split"] == split]
    return harmful, benign


def heldout_prompts() -> tuple[list[str], list[str]]:
    """Harmful and benign look-alike prompts never mixed into training."""
    harmful, benign = items("test")
    return [r["prompt"] for r in harmful], [r["prompt"] for r in benign]


def write_safety_sft(path: Path, *, system_prompts: bool = True, seed: int = 0) -> Path:
    """The ``train`` items as SFT conversations (half with a safety system prompt), atomically."""
    from vinaforge.chat import write_jsonl

    rng = random.Random(seed)
    prompts = globals()["system_prompts"]()
    rows = []
    harmful, benign = items("train")
    for rec in [*harmful, *benign]:
        msgs = [{"role": "user", "content": rec["prompt"]}, {"role": "assistant", "content": rec["response"]}]
        if system_prompts and rng.random() < 0.5:
            msgs.insert(0, {"role": "system", "content": rng.choice(prompts)})
        rows.append({"id": rec["id"], "messages": msgs})
    write_jsonl(path, rows)
    return Path(path)

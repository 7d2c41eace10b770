"""Run by tests/train/test_plan.py in a fresh process: peak memory of two real training steps on CPU.

Prints one JSON line: {"peak": bytes}, the process's peak RSS minus its RSS before the model was
built (torch, transformers and the model code are imported first, so they are not counted).
"""

from __future__ import annotations

import json
import sys

import torch
import transformers.models.llama.modeling_llama  # noqa: F401

from vinaforge.model.tiny import build_tiny_model
from vinaforge.train.levers import apply_levers


def _status(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def rss() -> int:
    return _status("VmRSS")


def reset_peak() -> None:
    """Reset the kernel's peak-RSS mark: a process started from a big parent (pytest in a long
    suite) otherwise inherits the parent's high-water mark through fork."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def main() -> None:
    spec = json.loads(sys.argv[1])
    torch.set_num_threads(1)
    reset_peak()
    before = rss()
    model = build_tiny_model(
        "llama", vocab_size=spec["vocab"], layers=spec["layers"], hidden=spec["hidden"], heads=4, seed=0
    )
    if spec.get("checkpointing"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    apply_levers(model, spec.get("fused_loss", "none"), chunk_size=spec.get("chunk", 1024))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    ids = torch.randint(0, spec["vocab"], (spec["batch"], spec["seq"]))
    for _ in range(2):
        loss = model(input_ids=ids, labels=ids, use_cache=False).loss  # logits dropped, as the trainer does
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        del loss
    peak = _status("VmHWM") - before
    print(json.dumps({"peak": peak}))


if __name__ == "__main__":
    main()

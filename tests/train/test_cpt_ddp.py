"""Scale-out: a 2-process DDP run on CPU (gloo, launched by torchrun) computes what one process computes.

Each optimizer step's global batch is drawn once and split across processes, and the loss is
normalised by the global count of scored tokens, so 2 processes x micro-batch 2 must give the same
losses as 1 process x micro-batch 4 (up to float reduction order).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _losses(out: Path) -> list[float]:
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in recs if "loss" in r]


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(tmp_path, base_config, tiny_model_dir, corpus_dir):
    from transformers import AutoModelForCausalLM

    cfg = base_config(tiny_model_dir, corpus_dir, micro_batch_size=2, grad_accum=2, save_every=100)
    cfg["phases"][0]["max_steps"] = 2
    cfg["phases"][1]["max_steps"] = 3
    cfg_file = tmp_path / "ddp.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(_free_port()),
        "-m",
        "vinaforge.train",
        "cpt",
        "--config",
        str(cfg_file),
        "--output",
        str(tmp_path / "ddp"),
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["processes"] == 2

    from vinaforge.train.config import CptConfig
    from vinaforge.train.engine import train_cpt

    train_cpt(CptConfig.model_validate(dict(cfg, micro_batch_size=4)), tmp_path / "single")

    ddp, one = _losses(tmp_path / "ddp"), _losses(tmp_path / "single")
    assert len(ddp) == len(one) == 5
    for a, b in zip(ddp, one, strict=True):
        assert abs(a - b) < 1e-5, (ddp, one)  # measured: at most 1e-6
    AutoModelForCausalLM.from_pretrained(tmp_path / "ddp" / "final")  # the final model loads

"""Resume: a run stopped at step k (SIGKILL, or SIGTERM -> checkpoint) continues with the same losses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from vinaforge.train.config import CptConfig
from vinaforge.train.engine import TrainingInterrupted, train_cpt

REPO = Path(__file__).resolve().parents[2]


def _losses(out: Path) -> dict[int, float]:
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in recs if "loss" in r}


def _evals(out: Path) -> dict[int, float]:
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["eval_bpb"] for r in recs if "eval_bpb" in r}


def _assert_same(a: dict[int, float], b: dict[int, float]) -> None:
    assert sorted(a) == sorted(b)
    for step in a:
        assert abs(a[step] - b[step]) <= 1e-6, (step, a[step], b[step])


def test_sigterm_checkpoints_and_resume_is_exact(
    tmp_path, base_config, tiny_model_dir, corpus_dir, heldout_file
):
    cfg = CptConfig.model_validate(base_config(tiny_model_dir, corpus_dir, heldout_file, save_every=100))
    ref = train_cpt(cfg, tmp_path / "ref")

    def terminate_at_5(record: dict) -> None:
        if record["step"] == 5:
            os.kill(os.getpid(), signal.SIGTERM)

    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted, match="stopped by SIGTERM at step 5"):
        train_cpt(cfg, out, callbacks=[terminate_at_5])
    assert (out / "checkpoints" / "step-00000005").is_dir() and not (out / "final").exists()
    resumed = train_cpt(cfg, out, resume=True)
    _assert_same(_losses(tmp_path / "ref"), _losses(out))
    _assert_same(_evals(tmp_path / "ref"), _evals(out))
    assert resumed["final_bpb"] == pytest.approx(ref["final_bpb"], abs=1e-6)
    assert resumed["phases"] == ref["phases"]  # same realised mixture, same sequences per source


def _launch(cfg_file: Path, out: Path, resume: bool = False) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    cmd = [sys.executable, "-m", "vinaforge.train", "cpt", "--config", str(cfg_file), "--output", str(out)]
    if resume:
        cmd.append("--resume")
    return subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


@pytest.mark.slow
def test_sigkill_then_resume_gives_identical_losses(tmp_path, base_config, tiny_model_dir, corpus_dir):
    cfg = base_config(tiny_model_dir, corpus_dir, save_every=2)
    cfg["phases"][1]["max_steps"] = 9  # 12 steps in all
    cfg_file = tmp_path / "cpt.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    ref = _launch(cfg_file, tmp_path / "ref")
    killed = _launch(cfg_file, tmp_path / "run")
    ckpt = tmp_path / "run" / "checkpoints" / "step-00000006"
    deadline = time.monotonic() + 240
    while not ckpt.is_dir() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL, killed.stdout.read()
    assert not (tmp_path / "run" / "final").exists()  # it was killed before the end
    out, _ = ref.communicate(timeout=240)
    assert ref.returncode == 0, out
    resumed = _launch(cfg_file, tmp_path / "run", resume=True)
    out, _ = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, out
    assert "resuming from" in out
    _assert_same(_losses(tmp_path / "ref"), _losses(tmp_path / "run"))

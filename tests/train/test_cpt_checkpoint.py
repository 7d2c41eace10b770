"""Checkpoints: out-of-disk, damaged and foreign checkpoints give clear errors and never load."""

from __future__ import annotations

import errno
import logging

import pytest

from vinaforge.train.checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    list_checkpoints,
    verify_checkpoint,
)
from vinaforge.train.config import CptConfig
from vinaforge.train.engine import TrainingError, train_cpt


def _cfg(base_config, tiny_model_dir, corpus_dir, **kw):
    return CptConfig.model_validate(base_config(tiny_model_dir, corpus_dir, **kw))


def test_out_of_disk_while_checkpointing(tmp_path, monkeypatch, base_config, tiny_model_dir, corpus_dir):
    import torch

    real_save = torch.save
    calls = {"n": 0}

    def save_until_full(obj, f, *args, **kwargs):
        # the first checkpoint (step 2) succeeds; the disk is full while writing the second one
        if "step-00000004" in str(f):
            raise OSError(errno.ENOSPC, "No space left on device", str(f))
        calls["n"] += 1
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_until_full)
    out = tmp_path / "run"
    with pytest.raises(CheckpointError) as err:
        train_cpt(_cfg(base_config, tiny_model_dir, corpus_dir), out)
    msg = str(err.value)
    assert "No space left on device" in msg and "step-00000003 is intact" in msg
    assert [s for s, _ in list_checkpoints(out / "checkpoints")] == [2, 3]
    for _, path in list_checkpoints(out / "checkpoints"):
        verify_checkpoint(path)  # the good checkpoints are whole
    assert not list((out / "checkpoints").glob(".tmp-*"))  # the partial one is gone


def test_damaged_checkpoint_is_skipped_and_foreign_one_refused(
    tmp_path, caplog, base_config, tiny_model_dir, corpus_dir
):
    out = tmp_path / "run"
    cfg = _cfg(base_config, tiny_model_dir, corpus_dir, keep_checkpoints=5)
    cfg.phases[1].max_steps = 3  # 6 steps in all, checkpoints at 2, 3 (phase end), 4, 6
    train_cpt(cfg, out)
    ckpts = dict(list_checkpoints(out / "checkpoints"))
    assert sorted(ckpts) == [2, 3, 4, 6]
    # damage the newest: flip bytes inside the optimizer state (same size)
    opt = ckpts[6] / "optimizer.bin"
    data = bytearray(opt.read_bytes())
    data[len(data) // 2] ^= 0xFF
    opt.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match its checksum"):
        verify_checkpoint(ckpts[6])
    (out / "summary.json").unlink()
    import shutil

    shutil.rmtree(out / "final")
    with caplog.at_level(logging.WARNING, logger="vinaforge"):
        summary = train_cpt(cfg, out, resume=True)
    assert "ignoring damaged checkpoint" in caplog.text and "step-00000006" in caplog.text
    assert summary["steps"] == 6
    # a checkpoint written under other settings is refused, naming the keys that differ
    other = _cfg(base_config, tiny_model_dir, corpus_dir, keep_checkpoints=5)
    other.phases[1].max_steps = 3
    other.phases[1].lr = 1e-2
    (out / "summary.json").unlink()
    with pytest.raises(CheckpointMismatchError, match=r"phases\.1\.lr"):
        train_cpt(other, out, resume=True)


def test_existing_run_needs_resume(tmp_path, base_config, tiny_model_dir, corpus_dir):
    cfg = _cfg(base_config, tiny_model_dir, corpus_dir, report_to=["tensorboard"])
    cfg.phases[0].max_steps = 2
    cfg.phases[1].max_steps = 1
    out = tmp_path / "run"
    train_cpt(cfg, out)
    assert list((out / "logs").rglob("events.out.tfevents.*"))  # TensorBoard through accelerate
    with pytest.raises(TrainingError, match="pass --resume"):
        train_cpt(cfg, out)
    again = train_cpt(cfg, out, resume=True)  # finished: nothing to redo
    assert again["steps"] == 3


def test_tokenizer_larger_than_model(tmp_path, base_config, tok_dir, corpus_dir, tokenizer):
    from vinaforge.model.resize import TokenizerMismatchError
    from vinaforge.model.tiny import build_tiny_model, save_model

    small = tmp_path / "small"
    model = build_tiny_model(
        "mistral",
        vocab_size=len(tokenizer) - 100,
        layers=1,
        hidden=32,
        heads=2,
        eos_token_id=tokenizer.eos_token_id,
    )
    save_model(model, None, small)
    cfg = base_config(small, corpus_dir, tokenizer=str(tok_dir))
    with pytest.raises(TokenizerMismatchError, match="768 ids but the model has only 668 embedding rows"):
        train_cpt(CptConfig.model_validate(cfg), tmp_path / "run")

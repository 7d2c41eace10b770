"""The same stage graph builds for Slurm (chained jobs) and is validated before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from vinaforge.data.config import Config
from vinaforge.data.curate import STAGES, Layout, build_stages, make_executor
from vinaforge.data.readers import plan_inputs

from .helpers import EXAMPLES


def test_slurm_stages_are_chained_jobs(tmp_path):
    from datatrove.executor import SlurmPipelineExecutor

    cfg = Config(inputs=[str(EXAMPLES)], executor="slurm", slurm={"partition": "cpu", "time": "02:00:00"})
    stages = build_stages(cfg, Layout(tmp_path), plan_inputs(cfg.inputs), 3)
    assert [name for name, _, _ in stages] == list(STAGES)
    previous = None
    for name, pipeline, tasks in stages:
        ex = make_executor(cfg, pipeline, tasks, Layout(tmp_path).logs(name), depends=previous, name=name)
        assert isinstance(ex, SlurmPipelineExecutor)
        assert ex.partition == "cpu" and ex.time == "02:00:00" and ex.depends is previous
        previous = ex
    assert [t for _, _, t in stages] == [3, 1, cfg.dedup.minhash.num_buckets, 1, 3, 1]


def test_slurm_needs_a_partition():
    with pytest.raises(ValidationError, match="slurm.partition"):
        Config(inputs=[str(EXAMPLES)], executor="slurm")


def test_disabled_dedup_drops_its_stages(tmp_path):
    cfg = Config(inputs=[str(EXAMPLES)], dedup={"exact": False, "minhash": {"enabled": False}})
    names = [n for n, _, _ in build_stages(cfg, Layout(Path(tmp_path)), plan_inputs(cfg.inputs), 3)]
    assert names == ["filter", "cluster", "final", "summary"]

"""The same settings run on Ray (datatrove's RayPipelineExecutor) give the same output as locally."""

from __future__ import annotations

import pytest

from vinaforge.data.config import Config
from vinaforge.data.curate import curate

from .helpers import EXAMPLES, read_folder

pytestmark = pytest.mark.slow


def test_ray_executor_matches_local(tmp_path):
    ray = pytest.importorskip("ray")
    settings = {"inputs": [str(EXAMPLES / "noisy.jsonl")], "dedup": {"minhash": {"enabled": False}}}
    local = curate(Config(**settings), tmp_path / "local")
    try:
        on_ray = curate(Config(**settings, executor="ray", ray={"cpus_per_task": 1}), tmp_path / "ray")
    finally:
        ray.shutdown()
    assert on_ray == local
    assert read_folder(tmp_path / "ray" / "kept") == read_folder(tmp_path / "local" / "kept")

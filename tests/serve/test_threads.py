"""The local server's torch threads: half the usable cores by default (issue 22), overridable."""

from __future__ import annotations

import os


def test_default_torch_threads_leave_cores_free():
    from vinaforge.serve.config import ServeConfig, default_torch_threads

    usable = len(os.sched_getaffinity(0))
    assert default_torch_threads() == max(1, usable // 2)
    assert ServeConfig(model="m").resolved_torch_threads() == default_torch_threads()
    assert ServeConfig(model="m", torch_threads=3).resolved_torch_threads() == 3


def test_set_torch_threads_applies_the_config():
    import torch

    from vinaforge.serve.config import ServeConfig
    from vinaforge.serve.engines import set_torch_threads

    before = torch.get_num_threads()
    try:
        assert set_torch_threads(ServeConfig(model="m", torch_threads=1)) == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)

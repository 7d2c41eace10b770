"""Shared helpers of the fault-injection tests (test_faults.py, test_faults_post.py): run a recipe
in a subprocess, ``kill -9`` it when an event holds, and compare weights with a clean run's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
    "COLUMNS": "1000",  # log lines unwrapped, so that the checks can read them
}


class RecipeRuns:
    """``vinaforge run RECIPE --run-dir RUNS`` started, finished or killed from a test."""

    def __init__(self, recipe: str, runs: Path, timeout: float = 300) -> None:
        self.recipe, self.runs, self.timeout = recipe, runs, timeout

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "vinaforge", "run", self.recipe, "--run-dir", str(self.runs), *args]

    def ok(self, *args: str) -> str:
        """Run to the end; the console log, one line, whitespace collapsed."""
        out = subprocess.run(self.command(*args), cwd=REPO, env=ENV, capture_output=True, text=True,
                             timeout=self.timeout)  # fmt: skip
        assert out.returncode == 0, out.stderr[-3000:]
        return " ".join(out.stderr.split())

    def start(self, *args: str, stderr=subprocess.DEVNULL) -> subprocess.Popen:
        """Start in its own session, so that :func:`kill_tree` reaches every worker it forks."""
        self.runs.mkdir(parents=True, exist_ok=True)
        return subprocess.Popen(self.command(*args), cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=stderr,
                                start_new_session=True)  # fmt: skip

    def kill_when(self, event: Callable[[], bool], *args: str, what: str) -> bool:
        """Start a run and ``kill -9`` it as soon as ``event()`` holds.

        False when the run finished by itself before the event could be seen (a short window on a
        fast machine); fails on any other ending.
        """
        log = self.runs.parent / f"kill-{time.monotonic_ns()}.log"
        with open(log, "w") as err:
            proc = self.start(*args, stderr=err)
        deadline = time.monotonic() + self.timeout
        try:
            while not event():
                if proc.poll() is not None:
                    assert proc.returncode == 0, log.read_text()[-3000:]
                    return False
                if time.monotonic() > deadline:
                    pytest.fail(f"timed out waiting for {what}")
                time.sleep(0.005)
        finally:
            if proc.poll() is None:
                kill_tree(proc)
            proc.wait()
        assert proc.returncode == -signal.SIGKILL, f"the run ended by itself before {what}"
        return True


def kill_tree(proc: subprocess.Popen) -> None:
    """``kill -9`` the run and every worker it forked (its own session), as a crash of the machine would."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def assert_close(a: dict, b: dict, what: str, atol: float = 1e-5) -> None:
    import torch

    assert a.keys() == b.keys(), what
    for k in a:
        torch.testing.assert_close(a[k].float(), b[k].float(), rtol=0, atol=atol, msg=f"{what}: {k}")

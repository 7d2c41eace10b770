"""A run killed with SIGKILL and started again gives the same output as an uninterrupted run
(which here uses two worker processes, the resumed one a single one)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vinaforge.data.config import Config
from vinaforge.data.curate import curate

from .helpers import EXAMPLES, read_jsonl, write_jsonl

pytestmark = pytest.mark.slow
OUTPUTS = ("kept", "rejected", "stats.json", "duplicate_clusters.jsonl.gz")


def _files(root: Path) -> dict[str, bytes]:
    out = {}
    for name in OUTPUTS:
        p = root / name
        for f in sorted([p] if p.is_file() else p.rglob("*")):
            if f.is_file():
                out[f.relative_to(root).as_posix()] = f.read_bytes()
    return out


def _inputs(root: Path) -> Path:
    docs = read_jsonl(EXAMPLES / "vi_docs.jsonl") + read_jsonl(EXAMPLES / "en_docs.jsonl")
    docs += read_jsonl(EXAMPLES / "noisy.jsonl")
    # eight files, so eight tasks: the kill lands between the first and the last
    for k in range(8):
        part = [{"id": f"{k}-{d.get('id', i)}", "text": d.get("text", "")} for i, d in enumerate(docs[k::4])]
        write_jsonl(root / f"part{k}.jsonl", part)
    return root


def test_kill_9_then_resume_gives_identical_output(tmp_path):
    inp = _inputs(tmp_path / "in")
    reference = tmp_path / "reference"
    curate(Config(inputs=[str(inp)], workers=2), reference)  # also shows: workers do not change the bytes

    out = tmp_path / "resumed"
    cmd = [
        sys.executable,
        "-m",
        "vinaforge",
        "data",
        "curate",
        str(inp),
        "--output",
        str(out),
        "--set",
        "workers=1",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    completions = out / "_work" / "logs" / "filter" / "completions"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if completions.is_dir() and any(completions.iterdir()):
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    done_before = {p.name: p.stat().st_mtime_ns for p in completions.iterdir()}
    assert 1 <= len(done_before) < 8
    assert not (out / "stats.json").exists()

    subprocess.run(
        cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300
    )
    # finished tasks were not run again
    for name, mtime in done_before.items():
        assert (completions / name).stat().st_mtime_ns == mtime
    assert len(list(completions.iterdir())) == 8
    ref, got = _files(reference), _files(out)
    assert sorted(ref) == sorted(got)
    for name in ref:
        assert ref[name] == got[name], name


def test_other_settings_in_the_same_folder_are_refused(tmp_path):
    from vinaforge.data.curate import CurateError

    inp = write_jsonl(tmp_path / "a.jsonl", read_jsonl(EXAMPLES / "vi_docs.jsonl")[:10])
    out = tmp_path / "out"
    curate(Config(inputs=[str(inp)], dedup={"minhash": {"enabled": False}}), out)
    with pytest.raises(CurateError, match="other settings"):
        curate(
            Config(inputs=[str(inp)], tiers={"high_fraction": 0.3}, dedup={"minhash": {"enabled": False}}),
            out,
        )
    stats = curate(
        Config(inputs=[str(inp)], tiers={"high_fraction": 0.3}, dedup={"minhash": {"enabled": False}}),
        out,
        overwrite=True,
    )
    assert stats["tier_thresholds"]["high_fraction"] == 0.3

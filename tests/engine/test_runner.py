from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from vinaforge.recipe import load_recipe
from vinaforge.runner import StageFailed, run_recipe

HERE = Path(__file__).parent


def load_toy(path, sets=None):
    return load_recipe(path, sets, allow_modules=("toy_stages",))


def recipe_file(tmp_path: Path, repeat: int = 2, sleep: float = 0.0) -> Path:
    p = tmp_path / "toy.yaml"
    p.write_text(
        textwrap.dedent(f"""\
        name: toy
        stages:
          first: {{kind: toy_stages, text: "xin chào ", repeat: {repeat}, sleep_s: {sleep}}}
          second: {{kind: toy_stages, source: "@first", repeat: 2}}
        """)
    )
    return p


def test_run_writes_manifest_report_and_skips_unchanged(tmp_path):
    rec = load_toy(recipe_file(tmp_path))
    run_dir = run_recipe(rec, run_root=tmp_path / "runs")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    first = manifest["stages"]["first"]
    for key in ("config_hash", "inputs", "outputs", "wall_time_s", "vinaforge_version"):
        assert key in first
    assert manifest["stages"]["second"]["inputs"][0]["path"] == "@first"
    assert (run_dir / "second" / "out.txt").read_text() == "xin chào " * 4
    assert (run_dir / "first" / "log.txt").read_text().count("wrote 2 parts") == 1
    report = (run_dir / "report.md").read_text()
    assert "## first" in report and "## second" in report and "## Summary" in report

    stamp = (run_dir / "second" / "out.txt").stat().st_mtime_ns
    run_recipe(load_toy(recipe_file(tmp_path)), run_root=tmp_path / "runs")
    assert (run_dir / "second" / "out.txt").stat().st_mtime_ns == stamp  # reused
    assert "reused" in (run_dir / "report.md").read_text()

    # a changed config re-runs that stage, and the stage downstream of it
    run_recipe(load_toy(recipe_file(tmp_path), ["first.repeat=3"]), run_root=tmp_path / "runs")
    assert (run_dir / "second" / "out.txt").read_text() == "xin chào " * 6


def test_from_and_only_force_reruns(tmp_path):
    rec = load_toy(recipe_file(tmp_path))
    run_dir = run_recipe(rec, run_root=tmp_path / "runs")
    t_first = (run_dir / "first" / "result.json").stat().st_mtime_ns
    t_second = (run_dir / "second" / "result.json").stat().st_mtime_ns
    run_recipe(rec, only="second", run_root=tmp_path / "runs")
    assert (run_dir / "first" / "result.json").stat().st_mtime_ns == t_first
    assert (run_dir / "second" / "result.json").stat().st_mtime_ns > t_second
    run_recipe(rec, from_stage="first", run_root=tmp_path / "runs")
    assert (run_dir / "first" / "result.json").stat().st_mtime_ns > t_first


def test_failed_stage_is_never_taken_for_done(tmp_path):
    rec = load_toy(recipe_file(tmp_path))
    run_dir = tmp_path / "runs" / "toy"
    rec.stages[1].config.__dict__["sleep_s"] = -1.0  # a run-time failure inside the stage
    with pytest.raises(StageFailed, match="stage 'second' failed: ValueError") as err:
        run_recipe(rec, run_root=tmp_path / "runs")
    assert "Traceback" in err.value.log_path.read_text()  # the full story is in the log
    assert (run_dir / "first" / "result.json").is_file()
    assert not (run_dir / "second").exists()
    assert "second" not in json.loads((run_dir / "manifest.json").read_text())["stages"]


@pytest.mark.slow
def test_kill_9_mid_stage_then_resume(tmp_path):
    recipe = recipe_file(tmp_path, repeat=30, sleep=0.1)
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cmd = [
        sys.executable,
        "-m",
        "vinaforge",
        "run",
        str(recipe),
        "--allow-module",
        "toy_stages",
        "--run-dir",
        str(tmp_path / "runs"),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    partial = tmp_path / "runs" / "toy" / ".first.partial" / "parts"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(partial.glob("*.txt"))) < 5:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run_dir = tmp_path / "runs" / "toy"
    assert not (run_dir / "first").exists()  # nothing looks finished
    done_parts = len(list(partial.glob("*.txt")))
    assert 5 <= done_parts < 30
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads((run_dir / "first" / "result.json").read_text())
    assert result["metrics"]["reused_parts"] >= done_parts  # resumed, not redone
    assert (run_dir / "second" / "out.txt").read_text() == "xin chào " * 60


def test_cli_recipe_check_reports_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages:\n  first: {kind: toy_stages, repeat: x}\n")
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run(
        [sys.executable, "-m", "vinaforge", "recipe", "check", str(bad), "--allow-module", "toy_stages"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "stages.first.repeat" in out.stderr and "Traceback" not in out.stderr
    good = recipe_file(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "vinaforge", "recipe", "check", str(good), "--allow-module", "toy_stages"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "2 stages" in out.stdout


def test_the_recipe_description_heads_the_report_card(tmp_path):
    p = recipe_file(tmp_path)
    p.write_text(p.read_text().replace("name: toy\n", "name: toy\ndescription: >-\n  A smoke test;\n  see recipes/seeds.\n"))
    run_dir = run_recipe(load_toy(p), run_root=tmp_path / "runs")
    head = (run_dir / "report.md").read_text().splitlines()[:4]
    assert "A smoke test; see recipes/seeds." in head


def test_the_quickstart_report_card_points_to_the_recipe_that_speaks():
    import yaml

    raw = yaml.safe_load((HERE.parents[1] / "recipes" / "quickstart.yaml").read_text())
    assert "recipes/seeds/vbd.yaml" in raw["description"]

"""Run-engine integrity on small real stages (tests/engine/toy_stages.py): issue 10's cases.

Each test reproduces a way the engine used to give a wrong answer with exit code 0, or to touch
files it does not own, and asserts the guarantee written in docs/engine.md.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import toy_stages

from vinaforge.recipe import RecipeError, load_recipe, ref_targets, resolved_config
from vinaforge.runner import RunLocked, StageFailed, check_recipe_inputs, run_lock, run_recipe

HERE = Path(__file__).parent
REPO = HERE.parents[1]
ENV = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "COLUMNS": "80"}
SECRET = "sk-proj-abcdefghij1234567890"
URL = f"http://alice:{SECRET}@llm.example:8000/v1"


def load(path: Path, sets: list[str] | None = None):
    return load_recipe(path, sets, allow_modules=("toy_stages",))


def toy(tmp_path: Path, first: str = 'text: "a", repeat: 2', second: str = "repeat: 5") -> Path:
    p = tmp_path / "toy.yaml"
    p.write_text(
        textwrap.dedent(f"""\
        name: toy
        stages:
          first: {{kind: toy_stages, {first}}}
          second: {{kind: toy_stages, source: "@first", {second}}}
        """)
    )
    return p


def vinaforge(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "vinaforge", *args]
    return subprocess.run(cmd, env=ENV, capture_output=True, text=True, cwd=cwd, timeout=120)


# ----------------------------------------------------------------------------- issue 10.1 / 10.2


def test_partial_is_resumed_only_when_its_inputs_are_unchanged(tmp_path, monkeypatch):
    """An interrupted stage whose upstream then changed starts clean instead of mixing old parts in."""
    runs = tmp_path / "runs"
    run_recipe(load(toy(tmp_path)), run_root=runs)
    calls = {"n": 0}
    real_sleep = time.sleep

    def interrupt_on_third_part(seconds: float) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        real_sleep(0)

    monkeypatch.setattr(toy_stages.time, "sleep", interrupt_on_third_part)
    with pytest.raises(KeyboardInterrupt):
        run_recipe(load(toy(tmp_path)), from_stage="second", run_root=runs)
    partial = runs / "toy" / ".second.partial"
    assert len(list((partial / "parts").glob("*.txt"))) == 2  # "aa" twice, kept for a resume
    monkeypatch.setattr(toy_stages.time, "sleep", real_sleep)

    # the upstream stage changes; the interrupted stage's own settings do not
    run_recipe(load(toy(tmp_path, first='text: "b", repeat: 2')), run_root=runs)
    assert (runs / "toy" / "second" / "out.txt").read_text() == "bb" * 5
    result = json.loads((runs / "toy" / "second" / "result.json").read_text())
    assert result["metrics"]["reused_parts"] == 0


def test_partial_with_same_config_and_inputs_is_resumed(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    calls = {"n": 0}

    def interrupt_on_fourth_part(seconds: float) -> None:
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(toy_stages.time, "sleep", interrupt_on_fourth_part)
    with pytest.raises(KeyboardInterrupt):
        run_recipe(load(toy(tmp_path)), run_root=runs)  # first: 2 parts; second: 1 part, then stop
    monkeypatch.undo()
    run_recipe(load(toy(tmp_path)), run_root=runs)
    result = json.loads((runs / "toy" / "second" / "result.json").read_text())
    assert result["metrics"]["reused_parts"] == 1
    mark = runs / "toy" / ".second.partial"
    assert not mark.exists()


# ----------------------------------------------------------------------------- issue 10.3


def test_modified_output_is_detected_and_the_stage_runs_again(tmp_path):
    runs = tmp_path / "runs"
    run_recipe(load(toy(tmp_path)), run_root=runs)
    out = runs / "toy" / "first" / "out.txt"
    out.write_text("corrupted")  # new size and mtime: caught by the cheap check
    run_recipe(load(toy(tmp_path)), run_root=runs)
    assert out.read_text() == "aa"
    assert (runs / "toy" / "second" / "out.txt").read_text() == "aa" * 5


def test_same_size_same_mtime_corruption_needs_verify(tmp_path):
    runs = tmp_path / "runs"
    run_recipe(load(toy(tmp_path)), run_root=runs)
    out = runs / "toy" / "second" / "out.txt"
    st = out.stat()
    out.write_text("zz" * 5)  # same size
    os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the old mtime: only a hash sees it
    run_recipe(load(toy(tmp_path)), run_root=runs)
    assert out.read_text() == "zz" * 5  # the cheap check cannot tell (documented)
    run_recipe(load(toy(tmp_path)), run_root=runs, verify=True)
    assert out.read_text() == "aa" * 5


def test_only_refuses_a_modified_upstream(tmp_path):
    runs = tmp_path / "runs"
    run_recipe(load(toy(tmp_path)), run_root=runs)
    (runs / "toy" / "first" / "out.txt").write_text("corrupted")
    with pytest.raises(RecipeError, match="output of stage 'first' was modified"):
        run_recipe(load(toy(tmp_path)), only="second", run_root=runs)


def test_nan_metric_fails_the_stage(tmp_path):
    runs = tmp_path / "runs"
    with pytest.raises(StageFailed, match="stage 'second' failed: metric score is NaN"):
        run_recipe(load(toy(tmp_path, second="repeat: 1, score: .nan")), run_root=runs)
    assert not (runs / "toy" / "second").exists()
    manifest = json.loads((runs / "toy" / "manifest.json").read_text())
    assert "second" not in manifest["stages"]


# ----------------------------------------------------------------------------- issue 10.4: lock


def test_lock_names_its_holder_and_a_dead_holder_is_taken_over(tmp_path):
    runs = tmp_path / "runs"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from vinaforge.runner import run_lock\n"
            "with run_lock(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(60)",
            str(runs / "toy"),
        ],
        env=ENV,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLocked, match=rf"in use by pid {holder.pid} on \S+ since 20"):
            run_recipe(load(toy(tmp_path)), run_root=runs)
        cli = vinaforge("run", str(toy(tmp_path)), "--allow-module", "toy_stages", "--run-dir", str(runs))
        assert cli.returncode == 2 and f"in use by pid {holder.pid}" in cli.stderr
        assert not (runs / "toy" / "manifest.json").exists()  # nothing was written
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    run_recipe(load(toy(tmp_path)), run_root=runs)  # the dead holder's lock is taken over
    assert (runs / "toy" / "second" / "out.txt").read_text() == "aa" * 5


def test_lock_is_exclusive_within_one_process_too(tmp_path):
    with run_lock(tmp_path / "r"):
        with pytest.raises(RunLocked, match=f"pid {os.getpid()}"):
            with run_lock(tmp_path / "r"):
                pass


# ----------------------------------------------------------------------------- issue 10.6: names


@pytest.mark.parametrize("name", ["../victim", "/tmp/victim", "a/b", ".hidden", "x y", ""])
def test_stage_names_must_be_identifiers(tmp_path, name):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    p = tmp_path / "r.yaml"
    p.write_text(f'name: r\nstages:\n  "{name}": {{kind: toy_stages}}\n')
    with pytest.raises(RecipeError, match="is not an identifier"):
        load(p)
    assert (victim / "keep.txt").read_text() == "precious"


def test_recipe_name_cannot_escape_the_run_dir(tmp_path):
    with pytest.raises(RecipeError, match=r"recipe name '\.\./\.\./escape' is not an identifier"):
        load(toy(tmp_path), ["name=../../escape"])
    out = vinaforge(
        "recipe", "check", str(toy(tmp_path)), "--allow-module", "toy_stages", "--set", "name=/abs"
    )
    assert out.returncode == 2 and "is not an identifier" in out.stderr


def test_engine_never_deletes_outside_the_run_dir(tmp_path):
    from vinaforge.runner import _remove_tree

    outside = tmp_path / "outside"
    outside.mkdir()
    with pytest.raises(RuntimeError, match="not inside the run folder"):
        _remove_tree(tmp_path / "run" / ".." / "outside", tmp_path / "run")
    with pytest.raises(RuntimeError, match="not inside the run folder"):
        _remove_tree(tmp_path / "run", tmp_path / "run")
    assert outside.is_dir()


# ----------------------------------------------------------------------------- issue 10.7: kind


def test_kind_never_imports_a_module_that_was_not_allowed(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "evil_stage.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    p = tmp_path / "r.yaml"
    p.write_text("stages:\n  a: {kind: evil_stage}\n")
    with pytest.raises(RecipeError, match="unknown stage kind 'evil_stage'.*--allow-module evil_stage"):
        load_recipe(p)
    out = vinaforge("recipe", "check", str(p), cwd=tmp_path)
    assert out.returncode == 2 and "unknown stage kind" in out.stderr
    assert not marker.exists()  # its top-level code never ran
    with pytest.raises(RecipeError, match="is not a stage"):
        load_recipe(p, allow_modules=("evil_stage",))  # named on the command line: imported
    assert marker.exists()


# ----------------------------------------------------------------------------- issue 10.8: secrets


def test_credentials_in_urls_never_reach_files_or_the_console(tmp_path):
    recipe = toy(tmp_path, first=f'text: "a", endpoint: "{URL}"')
    runs = tmp_path / "runs"
    out = vinaforge("run", str(recipe), "--allow-module", "toy_stages", "--run-dir", str(runs))
    assert out.returncode == 0, out.stderr
    assert SECRET not in out.stderr + out.stdout
    assert "alice:***@llm.example" in out.stderr  # the warning is still there, masked
    written = [f for f in runs.rglob("*") if f.is_file()]
    assert {"manifest.json", "report.md", "log.txt", "result.json"} <= {f.name for f in written}
    for f in written:
        assert SECRET not in f.read_text(errors="replace"), f
    failing = toy(tmp_path, first=f'text: "a", fail: "cannot reach {URL}"')
    out = vinaforge("run", str(failing), "--allow-module", "toy_stages", "--run-dir", str(runs))
    assert out.returncode == 1 and SECRET not in out.stderr and "alice:***@" in out.stderr


# ----------------------------------------------------------------------------- errors


def test_run_prints_one_line_error_and_keeps_the_traceback_in_the_log(tmp_path):
    recipe = toy(tmp_path, second='repeat: 1, fail: "the disk is on fire"')
    out = vinaforge("run", str(recipe), "--allow-module", "toy_stages", "--run-dir", str(tmp_path / "runs"))
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "stage 'second' failed: RuntimeError: the disk is on fire" in errors[0]
    log = tmp_path / "runs" / "toy" / ".second.partial" / "log.txt"
    assert f"full log: {log}" in errors[0]
    assert "Traceback" in log.read_text()


def test_recipe_with_invalid_utf8_names_file_and_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_bytes(b'name: r\nstages:\n  a: {kind: toy_stages, text: "caf\xe9"}\n')
    with pytest.raises(RecipeError, match=rf"{p}:3: not valid UTF-8 \(byte 0xe9"):
        load(p)


# ----------------------------------------------------------------------------- issue 9 section 3


def test_references_are_resolved_at_any_depth_before_a_stage_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    rec = load_recipe(HERE / "tiny_pipeline.yaml")
    dirs = {s.name: tmp_path / s.name for s in rec.stages}
    keys = {key: target for key, _, target in ref_targets(rec.stage("cpt"), dirs)}
    assert keys == {
        "stages.cpt.model": tmp_path / "model" / "model",
        "stages.cpt.data.sources.vi_high.paths.0": tmp_path / "curate" / "kept" / "high" / "vi",
    }
    for target in keys.values():
        target.mkdir(parents=True)
    cfg = resolved_config(rec.stage("cpt"), dirs)
    assert cfg.model == str(tmp_path / "model" / "model")
    assert cfg.data.sources["vi_high"].paths == [str(tmp_path / "curate" / "kept" / "high" / "vi")]
    assert cfg.data.sources["parallel"].paths == ["examples/parallel/en_vi.jsonl"]  # plain paths kept
    assert rec.stage("cpt").config.model == "@model/model"  # the hash stays on the recipe's text


def test_recipe_check_names_a_missing_input_at_any_depth(monkeypatch):
    monkeypatch.chdir(REPO)
    with pytest.raises(RecipeError, match=r"stages\.cpt\.data\.sources\.parallel\.paths.*nope\.jsonl"):
        load_recipe(
            HERE / "tiny_pipeline.yaml", ["cpt.data.sources.parallel.paths=[examples/parallel/nope.jsonl]"]
        )
    with pytest.raises(RecipeError, match=r"stages\.curate\.inputs.*examples/no_corpus"):
        load_recipe(HERE / "tiny_pipeline.yaml", ["curate.inputs=[examples/no_corpus]"])
    out = vinaforge(
        "recipe",
        "check",
        "recipes/quickstart.yaml",
        "--set",
        "cpt.data.sources.parallel.paths=[examples/parallel/nope.jsonl]",
        cwd=REPO,
    )
    assert out.returncode == 2, out.stdout
    assert "stages.cpt.data.sources.parallel.paths" in out.stderr and "nope.jsonl" in out.stderr


def test_reference_into_a_finished_stage_must_exist(tmp_path):
    runs = tmp_path / "runs"
    run_recipe(load(toy(tmp_path)), run_root=runs)
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        'name: toy\nstages:\n  first: {kind: toy_stages, text: "a", repeat: 2}\n'
        '  second: {kind: toy_stages, source: "@first/nope", repeat: 5}\n'
    )
    with pytest.raises(
        RecipeError, match=r"stages\.second\.source: @first/nope does not exist in the output"
    ):
        check_recipe_inputs(load(bad), runs)
    out = vinaforge("recipe", "check", str(bad), "--allow-module", "toy_stages", "--run-dir", str(runs))
    assert out.returncode == 2 and "stages.second.source" in out.stderr
    with pytest.raises(RecipeError, match=r"stages\.second\.source: @first/nope does not exist"):
        run_recipe(load(bad), run_root=runs)


def test_reference_to_an_undeclared_output_fails_recipe_check_before_anything_runs(tmp_path):
    """A stage that declares its outputs (``OUTPUTS``, or ``declared_outputs`` for a sub-recipe)
    lets ``recipe check`` refuse ``@split/train`` (for ``train.jsonl``) with nothing run yet: the
    seallm recipe's ``@self_preference/pairs`` used to fail only when its DPO stage started."""
    sub = tmp_path / "sub.yaml"
    sub.write_text('name: sub\nstages:\n  split: {inputs: ["recipes/seeds/data/vi_heldout_prompts.jsonl"]}\n')
    recipe = tmp_path / "refs.yaml"
    body = (f"name: refs\nstages:\n  split: {{inputs: [{REPO / 'recipes/seeds/data/vi_heldout_prompts.jsonl'}]}}\n"
            f"  up: {{kind: recipe, recipe: {sub}, outputs: {{prompts: split/train.jsonl}}}}\n"
            '  again: {kind: split, inputs: ["{ref}"]}\n')  # fmt: skip
    runs = tmp_path / "runs"
    for ref, where in (("@split/train", "'split' (split) writes no 'train'; its outputs are duplicates.jsonl, "
                        "heldout.jsonl, stats.json, train.jsonl"),
                       ("@up/model", "'up' (recipe) writes no 'model'; its outputs are prompts")):  # fmt: skip
        recipe.write_text(body.replace("{ref}", ref))
        with pytest.raises(RecipeError, match=re.escape(f"stages.again.inputs.0: {ref}: stage {where}")):
            check_recipe_inputs(load(recipe), runs)
        assert not runs.exists()
    for ok in ("@split/train.jsonl", "@up/prompts", "@split/*.jsonl", "@split"):
        recipe.write_text(body.replace("{ref}", ok))
        check_recipe_inputs(load(recipe), runs)

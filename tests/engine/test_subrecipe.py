"""The ``recipe`` stage: another recipe runs once in its own folder, its outputs become ours."""

from __future__ import annotations

import json
import textwrap

import pytest

from vinaforge.recipe import RecipeError, load_recipe
from vinaforge.runner import run_recipe


def _write(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"q{i}", "response": f"a{i}"}) + "\n" for i in range(50)))
    inner = tmp_path / "inner.yaml"
    inner.write_text(textwrap.dedent(f"""\
        name: inner
        run_dir: {tmp_path / "runs"}
        stages:
          split: {{inputs: ["{data}"], heldout_fraction: 0.2}}
        """))
    outer = tmp_path / "outer.yaml"
    outer.write_text(textwrap.dedent(f"""\
        name: outer
        run_dir: {tmp_path / "runs"}
        stages:
          base:
            kind: recipe
            recipe: {inner}
            outputs: {{held: split/heldout.jsonl}}
          again:
            kind: split
            inputs: ["@base/held"]
            heldout_fraction: 0.5
        """))
    return inner, outer


def test_a_recipe_stage_runs_the_inner_recipe_once_and_links_its_outputs(tmp_path):
    inner, outer = _write(tmp_path)
    run_dir = run_recipe(load_recipe(outer))
    held = (tmp_path / "runs" / "inner" / "split" / "heldout.jsonl").read_text()
    assert (run_dir / "base" / "held").read_text() == held
    again = json.loads((run_dir / "again" / "stats.json").read_text())
    assert again["read"] == len(held.splitlines())
    report = (run_dir / "report.md").read_text()
    assert "From recipe" in report and "inner" in report
    inner_manifest = json.loads((tmp_path / "runs" / "inner" / "manifest.json").read_text())
    finished = inner_manifest["stages"]["split"]["finished_at"]
    # a second outer recipe over the same inner one reuses its finished stages
    other = outer.with_name("outer2.yaml")
    other.write_text(outer.read_text().replace("name: outer", "name: outer2"))
    run_recipe(load_recipe(other))
    again_manifest = json.loads((tmp_path / "runs" / "inner" / "manifest.json").read_text())
    assert again_manifest["stages"]["split"]["finished_at"] == finished


def test_an_output_naming_no_stage_of_the_inner_recipe_is_refused(tmp_path):
    _, outer = _write(tmp_path)
    outer.write_text(outer.read_text().replace("split/heldout.jsonl", "nope/heldout.jsonl"))
    with pytest.raises(RecipeError, match=r"outputs.held: 'nope/heldout.jsonl' names no stage"):
        load_recipe(outer)

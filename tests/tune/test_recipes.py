"""The GPU recipes a user runs as they are: `recipe check` validates every key and input."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner


@pytest.mark.parametrize("recipe", ["recipes/sft-lora-7b.yaml", "recipes/sft-full-fsdp.yaml"])
def test_gpu_recipes_pass_recipe_check(recipe, repo_root, monkeypatch, tmp_path):
    from vinaforge.cli import app

    monkeypatch.chdir(repo_root)
    res = CliRunner().invoke(app, ["recipe", "check", recipe, "--run-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output


def test_quickstart_has_the_tune_stages(repo_root, monkeypatch):
    from vinaforge.recipe import load_recipe

    monkeypatch.chdir(repo_root)
    rec = load_recipe(repo_root / "recipes" / "quickstart.yaml")
    kinds = [s.kind for s in rec.stages]
    assert "sft" in kinds and ("dpo" in kinds or "orpo" in kinds)
    assert kinds.index("cpt") < kinds.index("sft")

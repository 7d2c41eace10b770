"""The shipped recipes must stay valid as stages are added."""

from __future__ import annotations

from pathlib import Path

import pytest

from vinaforge.recipe import load_recipe

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_shipped_recipes_validate(recipe, monkeypatch):
    monkeypatch.chdir(recipe.parents[1])
    rec = load_recipe(recipe)
    assert rec.stages

"""Every seed recipe (recipes/seeds/*.yaml) passes ``recipe check`` at each of its scales.

The recipes read ../shared/data and the English prose of two Debian packages (fortunes,
debian-handbook; .ci/run installs them); without them the check is skipped.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vinaforge.recipe import load_recipe
from vinaforge.runner import check_recipe_inputs

SEEDS = sorted((Path(__file__).resolve().parents[2] / "recipes" / "seeds").glob("*.yaml"))


def test_there_are_seed_recipes():
    assert {p.stem for p in SEEDS} >= {"base-en", "vbd", "seallm", "vinasmol", "vinallama", "community"}


@pytest.mark.parametrize("path", SEEDS, ids=[p.stem for p in SEEDS])
@pytest.mark.parametrize("scale", ["cpu", "gpu"])
def test_seed_recipe_checks(path, scale, tmp_path):
    recipe = load_recipe(path, [f"scale={scale}"])
    check_recipe_inputs(recipe, run_root=tmp_path)
    assert recipe.stages

"""Recipe scales: ``scales`` maps a name to ``--set``-style overrides; ``--set scale=NAME`` picks one."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from vinaforge.recipe import RecipeError, load_recipe

TOY = "toy_stages"


def load_toy(path: Path, sets: list[str] | None = None):
    return load_recipe(path, sets, allow_modules=(TOY,))


def write(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(textwrap.dedent(body))
    return p

SCALED = f"""\
    name: scaled
    scale: cpu
    scales:
      cpu: {{}}
      gpu: {{"first.repeat": 8, "first.text": "lớn"}}
    stages:
      first: {{kind: {TOY}, text: "nhỏ", repeat: 1}}
    """


def _first(rec):
    return rec.stages[0].config


def test_default_scale_keeps_the_recipe_and_a_chosen_scale_overrides_it(tmp_path):
    p = write(tmp_path, SCALED)
    cpu = _first(load_toy(p))
    assert (cpu.repeat, cpu.text) == (1, "nhỏ")
    gpu = _first(load_toy(p, ["scale=gpu"]))
    assert (gpu.repeat, gpu.text) == (8, "lớn")


def test_set_items_win_over_the_scale(tmp_path):
    p = write(tmp_path, SCALED)
    cfg = _first(load_toy(p, ["first.repeat=3", "scale=gpu"]))
    assert (cfg.repeat, cfg.text) == (3, "lớn")


def test_unknown_scale_and_bad_scale_keys_name_the_line(tmp_path):
    p = write(tmp_path, SCALED)
    with pytest.raises(RecipeError, match=r"r.yaml:2: scale: 'tpu' is not one of this recipe's scales \(cpu, gpu\)"):
        load_toy(p, ["scale=tpu"])
    bad = write(tmp_path, SCALED.replace('"first.repeat": 8', '"nope.repeat": 8'))
    with pytest.raises(RecipeError, match=r"r.yaml:\d+: scales.gpu: .*nope"):
        load_toy(bad, ["scale=gpu"])
    plain = write(tmp_path, f"name: p\nstages:\n  first: {{kind: {TOY}}}\n")
    with pytest.raises(RecipeError, match="scale: this recipe defines no scales"):
        load_toy(plain, ["scale=gpu"])

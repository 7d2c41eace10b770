from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from vinaforge.recipe import RecipeError, apply_sets, load_recipe, load_stage_config, parse_set

TOY = "toy_stages"


def load_toy(path, sets=None):
    return load_recipe(path, sets, allow_modules=(TOY,))


def write(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(textwrap.dedent(body))
    return p


def test_valid_recipe_and_refs(tmp_path):
    p = write(
        tmp_path,
        f"""\
        name: demo
        stages:
          first: {{kind: {TOY}, text: "a"}}
          second: {{kind: {TOY}, source: "@first"}}
        """,
    )
    rec = load_toy(p)
    assert [s.name for s in rec.stages] == ["first", "second"]
    assert rec.stages[1].refs == ["first"]


def test_unknown_key_names_file_line_and_key(tmp_path):
    p = write(
        tmp_path,
        f"""\
        name: demo
        stages:
          first:
            kind: {TOY}
            txet: "typo"
        """,
    )
    with pytest.raises(RecipeError) as err:
        load_toy(p)
    msg = str(err.value)
    assert f"{p}:5: stages.first.txet: unknown key" in msg
    assert "text" in msg  # lists what was expected


def test_wrong_type_and_missing_file(tmp_path):
    p = write(
        tmp_path,
        f"""\
        stages:
          first: {{kind: {TOY}, repeat: many, source: /no/such/file}}
        """,
    )
    with pytest.raises(RecipeError) as err:
        load_toy(p)
    msg = str(err.value)
    assert "stages.first.repeat" in msg and "integer" in msg and "'many'" in msg
    assert "stages.first.source" in msg and "not found" in msg


def test_reference_to_later_stage_is_an_error(tmp_path):
    p = write(
        tmp_path,
        f"""\
        stages:
          first: {{kind: {TOY}, source: "@second"}}
          second: {{kind: {TOY}}}
        """,
    )
    with pytest.raises(RecipeError, match="not an earlier stage"):
        load_toy(p)


def test_unknown_kind(tmp_path):
    p = write(tmp_path, "stages:\n  first: {kind: nonsense}\n")
    with pytest.raises(RecipeError, match="unknown stage kind 'nonsense'"):
        load_toy(p)


def test_set_overrides(tmp_path):
    p = write(tmp_path, f"stages:\n  first: {{kind: {TOY}, repeat: 1}}\n")
    rec = load_toy(p, ["first.repeat=3", "first.text=chào bạn", "name=other"])
    assert rec.stages[0].config.repeat == 3
    assert rec.stages[0].config.text == "chào bạn"
    assert rec.name == "other"
    with pytest.raises(RecipeError, match="neither a stage"):
        load_toy(p, ["nostage.x=1"])
    with pytest.raises(RecipeError, match="integer"):
        load_toy(p, ["first.repeat=abc"])


def test_parse_set_and_lists():
    assert parse_set("a.b=3") == (["a", "b"], 3)
    assert parse_set("a=[1, 2]") == (["a"], [1, 2])
    data = {"phases": [{"lr": 1.0}, {"lr": 2.0}]}
    apply_sets(data, ["phases.1.lr=0.5"])
    assert data["phases"][1]["lr"] == 0.5
    with pytest.raises(RecipeError):
        apply_sets(data, ["phases.7.lr=1"])
    with pytest.raises(RecipeError):
        parse_set("novalue")


def test_load_stage_config_cli(tmp_path):
    from toy_stages import Config

    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("repeat: 2\n")
    cfg = load_stage_config(Config, cfg_file, ["text=hello"])
    assert (cfg.repeat, cfg.text) == (2, "hello")
    cfg_file.write_text("repeat: 2\nbogus: 1\n")
    with pytest.raises(RecipeError, match=r"c.yaml:2: bogus: unknown key"):
        load_stage_config(Config, cfg_file, [])

"""Every arm of ``bench/adaptation.py`` is a recipe that loads and validates (``load_recipe``),
so a broken row fails here rather than an hour into the benchmark. Needs ../shared/data (conftest)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from vinaforge.recipe import load_recipe


@pytest.fixture
def bench(repo_root, tmp_path, monkeypatch):  # the conftest has already moved to repo_root
    spec = importlib.util.spec_from_file_location("adaptation", repo_root / "bench" / "adaptation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "OUT", tmp_path / "out")
    return module


def test_every_arm_recipe_loads(bench, tmp_path):
    scale = bench.SCALES["cpu"]
    prep = bench.prep_recipe("cpu")
    data = tuple(tmp_path / f"{split}.jsonl" for split in ("train", "heldout"))
    conv = [{"role": "user", "content": "Xin chào"}, {"role": "assistant", "content": "Chào bạn"}] * 3
    for path in data:
        path.write_text(json.dumps({"messages": conv}, ensure_ascii=False) + "\n", encoding="utf-8")
    names = set()
    for row, arms in bench.ROWS.items():
        for arm in arms:
            names.add(load_recipe(bench.arm_recipe(row, arm, 0, 1000, scale, prep)).name)
    for row, arms in bench.SFT_ROWS.items():
        for arm, loss_turns in arms.items():
            recipe = load_recipe(bench.sft_recipe(row, arm, 0, 1000, scale, prep, data))
            sft = next(s for s in recipe.stages if s.name == "sft")
            assert sft.config.loss_turns == loss_turns
            names.add(recipe.name)
    for row in bench.PREF_ROWS:
        recipe = load_recipe(bench.pref_recipe(row, 0, 1000, scale, prep, data))
        kinds = {s.name: s.kind for s in recipe.stages}
        assert {"reward"} <= set(kinds) if row == "reward" else {"sft", "dpo", "orpo"} <= set(kinds)
    merge = load_recipe(bench.merge_recipe(0, 1000, scale, prep, data, data))
    assert {"linear", "ties"} <= {s.name for s in merge.stages}
    self_pref = {s.name: s for s in load_recipe(bench.self_pref_recipe(0, 1000, scale, prep, data)).stages}
    assert self_pref["dpo_self"].kind == "dpo" and self_pref["self_preference"].config.judge.kind == "rules"
    vector = {s.name: s for s in load_recipe(bench.chat_vector_recipe(0, 1000, scale, prep)).stages}
    assert [vector[n].config.chat_vector.lam for n in ("cv_half", "cv_one")] == [0.5, 1.0]
    assert vector["instruct"].kind == "sft" and vector["instruct"].config.model == "@prep/base"
    # an arm in several rows is one run: 12 CPT arms, of which the extended mean-init arm is in
    # three rows (10 runs), + 2 SFT arms
    assert len(names) == 12

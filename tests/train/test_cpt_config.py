"""CptConfig: cross-field checks name the key; the resume hash ignores watch-only settings."""

from __future__ import annotations

import pytest
import yaml

from vinaforge.recipe import RecipeError, load_stage_config
from vinaforge.train.config import CptConfig


def _write(tmp_path, cfg: dict):
    path = tmp_path / "cpt.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return path


def test_mixture_weight_for_unknown_source_names_the_key(tmp_path, tiny_model_dir, corpus_dir, base_config):
    cfg = base_config(tiny_model_dir, corpus_dir)
    cfg["data"]["mixture"] = {"high": 0.5, "code": 0.5}
    with pytest.raises(RecipeError) as err:
        load_stage_config(CptConfig, _write(tmp_path, cfg), [])
    msg = str(err.value)
    assert "cpt.yaml" in msg and "data.mixture.0.weights.code" in msg and "no data source named 'code'" in msg


def test_phase_mixture_unknown_source_and_missing_budget(tmp_path, tiny_model_dir, corpus_dir, base_config):
    cfg = base_config(tiny_model_dir, corpus_dir)
    cfg["phases"][1]["mixture"] = {"parallel": 1.0}
    with pytest.raises(RecipeError, match=r"phases\.1\.mixture\.0\.weights\.parallel"):
        load_stage_config(CptConfig, _write(tmp_path, cfg), [])
    cfg = base_config(tiny_model_dir, corpus_dir)
    del cfg["phases"][0]["max_steps"]
    with pytest.raises(RecipeError, match="set exactly one of max_steps or tokens"):
        load_stage_config(CptConfig, _write(tmp_path, cfg), [])


def test_set_overrides_and_curriculum_order(tmp_path, tiny_model_dir, corpus_dir, base_config):
    path = _write(tmp_path, base_config(tiny_model_dir, corpus_dir))
    cfg = load_stage_config(CptConfig, path, ["phases.1.lr=0.01", "seq_len=32"])
    assert cfg.phases[1].lr == 0.01 and cfg.seq_len == 32
    bad = base_config(tiny_model_dir, corpus_dir)
    bad["data"]["mixture"] = [{"until": 0.5, "weights": {"high": 1}}, {"until": 0.4, "weights": {"low": 1}}]
    with pytest.raises(RecipeError, match="must be larger than the previous one"):
        load_stage_config(CptConfig, _write(tmp_path, bad), [])


def test_trajectory_hash_ignores_watch_only_keys(tiny_model_dir, corpus_dir, base_config):
    a = CptConfig.model_validate(base_config(tiny_model_dir, corpus_dir))
    b = CptConfig.model_validate(
        base_config(tiny_model_dir, corpus_dir, eval_every=7, save_every=9, progress=True)
    )
    c = CptConfig.model_validate(base_config(tiny_model_dir, corpus_dir, seq_len=32))
    assert a.trajectory_hash() == b.trajectory_hash() != c.trajectory_hash()


def test_token_budget_becomes_steps(tiny_model_dir, corpus_dir, base_config):
    cfg = base_config(tiny_model_dir, corpus_dir)
    cfg["phases"][0] = {"name": "warm", "tokens": 1000, "lr": 1e-3}
    phase = CptConfig.model_validate(cfg).phases[0]
    assert phase.num_steps(tokens_per_step=512) == 2

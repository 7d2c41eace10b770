"""The mergekit methods run on real tiny models, from our keys and from a mergekit YAML file as is."""

from __future__ import annotations

import shutil

import pytest
import torch
import yaml
from typer.testing import CliRunner

from vinaforge.merge.config import Config, merge_models
from vinaforge.merge.testing import load_tensors as tensors

METHODS = {
    "linear": {},
    "slerp": {"parameters": {"t": 0.3}},
    "ties": {"parameters": {"density": 0.5}},
    "dare_ties": {"parameters": {"density": 0.5}},
    "della": {"parameters": {"density": 0.5, "epsilon": 0.1}},
    "task_arithmetic": {},
    "model_stock": {},
    "breadcrumbs": {"parameters": {"density": 0.8, "gamma": 0.05}},
}


@pytest.fixture(scope="module")
def second_instruct(family, tmp_path_factory):
    """Another fine-tune of the same base (model_stock needs two)."""
    from vinaforge.merge.testing import _perturb
    from vinaforge.model.load import load_causal_lm, load_tokenizer
    from vinaforge.model.tiny import save_model

    model = load_causal_lm(str(family["base"]), dtype="float32")
    _perturb(model, seed=9)
    out = tmp_path_factory.mktemp("instruct2") / "m"
    save_model(model, load_tokenizer(str(family["instruct"])), out)
    return out


def test_every_method_merges_and_generates(family, second_instruct, tmp_path):
    from vinaforge.model.load import load_causal_lm, load_tokenizer

    base = tensors(family["base"])
    for method, extra in METHODS.items():
        models = [{"model": str(family["instruct"]), "parameters": {"weight": 0.6, **extra.get("parameters", {})}},
                  {"model": str(second_instruct), "parameters": {"weight": 0.4, **extra.get("parameters", {})}}]  # fmt: skip
        cfg = {"merge_method": method, "models": models, "dtype": "float32"}
        if method == "slerp":
            cfg = {"merge_method": "slerp", "base_model": str(family["instruct"]), "models": [{"model": str(family["instruct"])}, {"model": str(second_instruct)}], "parameters": {"t": 0.3}, "dtype": "float32"}  # fmt: skip
        elif method != "linear":
            cfg["base_model"] = str(family["base"])
        merge_models(Config(**cfg), tmp_path / method, seed=0)
        out = tensors(tmp_path / method)
        assert set(out) == set(base), method
        assert not torch.equal(out["model.layers.0.mlp.up_proj.weight"], base["model.layers.0.mlp.up_proj.weight"])
    model = load_causal_lm(str(tmp_path / "ties"))
    tok = load_tokenizer(str(tmp_path / "ties"))
    ids = tok("Xin chào", return_tensors="pt")["input_ids"]
    assert model.generate(ids, max_new_tokens=4, do_sample=False).shape[1] == ids.shape[1] + 4


def test_mergekit_yaml_file_as_is_via_cli(family, tmp_path):
    from vinaforge.cli import app

    spec = {"merge_method": "linear", "dtype": "float32",
            "models": [{"model": str(family["base"]), "parameters": {"weight": 1.0}},
                       {"model": str(family["instruct"]), "parameters": {"weight": 3.0}}]}  # fmt: skip
    path = tmp_path / "mergekit.yml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    res = CliRunner().invoke(app, ["merge", "run", str(path), "--output", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    out, a, b = tensors(tmp_path / "out"), tensors(family["base"]), tensors(family["instruct"])
    name = "model.layers.0.self_attn.q_proj.weight"
    torch.testing.assert_close(out[name], 0.25 * a[name] + 0.75 * b[name], rtol=0, atol=1e-6)
    # relative paths in a mergekit file work too (mergekit alone would look them up on the hub)
    shutil.copytree(family["base"], tmp_path / "rel_a")
    cfg = Config(config=str(path))
    assert cfg.kind() == "mergekit"

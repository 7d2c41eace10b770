"""Vocabulary-aware merges and the chat vector, checked exactly on tiny models."""

from __future__ import annotations

import json

import pytest
import torch

from vinaforge.merge.checks import MergeInputError
from vinaforge.merge.config import Config, merge_models
from vinaforge.merge.testing import load_tensors as tensors

EMB = ("model.embed_tokens.weight", "lm_head.weight")


def test_linear_merge_takes_new_rows_only_from_the_extended_model(family, tmp_path, vi_sentence):
    cfg = Config(
        merge_method="linear",
        models=[{"model": str(family["vi"]), "parameters": {"weight": 0.7}},
                {"model": str(family["instruct"]), "parameters": {"weight": 0.3}}],
        tokenizer={"source": str(family["vi"])},
        dtype="float32",
    )  # fmt: skip
    merge_models(cfg, tmp_path / "out")
    out, vi, ins = tensors(tmp_path / "out"), tensors(family["vi"]), tensors(family["instruct"])
    n_base = ins["model.embed_tokens.weight"].shape[0]
    n_tok = len(json.loads((family["ext_tokenizer"] / "tokenizer.json").read_text())["model"]["vocab"])
    assert n_tok > n_base
    for name in EMB:
        # the extended model's padded row count is kept
        assert out[name].shape == vi[name].shape
        # rows of new tokens: only from the model that has them
        assert torch.equal(out[name][n_base:n_tok], vi[name][n_base:n_tok])
        # old rows: merged normally
        torch.testing.assert_close(out[name][:n_base], 0.7 * vi[name][:n_base] + 0.3 * ins[name], rtol=0, atol=1e-6)
    name = "model.layers.1.mlp.up_proj.weight"
    torch.testing.assert_close(out[name], 0.7 * vi[name] + 0.3 * ins[name], rtol=0, atol=1e-6)

    from vinaforge.model.load import load_tokenizer

    merged_tok, vi_tok = load_tokenizer(str(tmp_path / "out")), load_tokenizer(str(family["vi"]))
    ids = merged_tok(vi_sentence)["input_ids"]
    assert ids == vi_tok(vi_sentence)["input_ids"]
    assert max(ids) >= n_base  # the sentence uses new tokens


def test_mismatched_vocabularies_without_a_setting_fail_clearly(family, tmp_path):
    cfg = Config(merge_method="linear", models=[{"model": str(family["vi"]), "parameters": {"weight": 0.5}},
                                                {"model": str(family["instruct"]), "parameters": {"weight": 0.5}}])  # fmt: skip
    with pytest.raises(MergeInputError, match=r"vocabularies differ .*`tokenizer: \{source:"):
        merge_models(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_chat_vector_arithmetic_is_exact_with_per_group_lambda(family, tmp_path):
    cfg = Config(chat_vector={
        "vi_base": str(family["vi"]), "instruct": str(family["instruct"]), "base": str(family["base"]),
        "lam": 0.8, "groups": [{"layers": [0, 1], "lam": 0.5}, {"match": "lm_head", "lam": 0.0},
                               {"layers": [1, 2], "match": "mlp", "lam": 1.5}],
    })  # fmt: skip
    info = merge_models(cfg, tmp_path / "cv")
    assert info["method"] == "chat_vector"
    out, vi, ins, base = (tensors(p) for p in (tmp_path / "cv", family["vi"], family["instruct"], family["base"]))

    def lam(name: str) -> float:
        if name.startswith("model.layers.0."):
            return 0.5
        if name == "lm_head.weight":
            return 0.0
        if name.startswith("model.layers.1.mlp"):
            return 1.5
        return 0.8

    n_base = base["model.embed_tokens.weight"].shape[0]
    n_tok = len(json.loads((family["ext_tokenizer"] / "tokenizer.json").read_text())["model"]["vocab"])
    for name, got in out.items():
        assert got.shape == vi[name].shape, name
        if name in EMB:
            # old rows get the residual; new-token rows have no delta: exactly the Vietnamese model's.
            # (Padding rows past the tokenizer, never produced by it, get mergekit's mean row.)
            expect = vi[name][:n_base] + lam(name) * (ins[name] - base[name])
            torch.testing.assert_close(got[:n_base], expect, rtol=0, atol=1e-6, msg=name)
            assert torch.equal(got[n_base:n_tok], vi[name][n_base:n_tok])
        else:
            expect = vi[name] + lam(name) * (ins[name] - base[name])
            torch.testing.assert_close(got, expect, rtol=0, atol=1e-6, msg=name)
    assert set(out) == set(vi)
    # the instruct model's chat template travels with the merged tokenizer
    from vinaforge.model.load import load_tokenizer

    assert "[INST]" in load_tokenizer(str(tmp_path / "cv")).chat_template

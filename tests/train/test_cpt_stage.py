"""The cpt stage on an extended tiny model: new-embeddings phase freezes the base, report and outputs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from vinaforge.recipe import resolve_refs
from vinaforge.stage import StageContext
from vinaforge.train.config import CptConfig
from vinaforge.train.engine import train_cpt

NEW_WORDS = ["Việt Nam", "người dân", "thành phố", "nông nghiệp", "giáo dục", "sông Cửu Long", "văn hoá"]


@pytest.fixture(scope="module")
def extended_model_dir(tmp_path_factory, tok_dir) -> Path:
    """The tiny model resized to its tokenizer plus Vietnamese words, new rows mean-initialised."""
    from transformers import AutoTokenizer

    from vinaforge.model.resize import extend_model
    from vinaforge.model.tiny import build_tiny_model, save_model

    base = AutoTokenizer.from_pretrained(tok_dir)
    ext = AutoTokenizer.from_pretrained(tok_dir)
    ext.add_tokens(NEW_WORDS)
    model = build_tiny_model(
        "mistral",
        vocab_size=len(base),
        layers=2,
        hidden=64,
        heads=4,
        bos_token_id=base.bos_token_id,
        eos_token_id=base.eos_token_id,
        seed=1,
    )
    info = extend_model(model, base, ext, init="mean")
    assert info.num_base_rows == len(base) and len(info.new_token_ids) == len(NEW_WORDS)
    out = tmp_path_factory.mktemp("extended") / "model"
    save_model(model, ext, out)
    return out


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(path / "model.safetensors")


def test_new_embeddings_phase_changes_only_new_rows(
    tmp_path, base_config, extended_model_dir, corpus_dir, tokenizer
):
    cfg = base_config(extended_model_dir, corpus_dir)
    cfg["phases"] = [
        {"name": "latent", "trainable": "new_embeddings", "max_steps": 3, "lr": 1e-2, "weight_decay": 0.1}
    ]
    train_cpt(CptConfig.model_validate(cfg), tmp_path / "run")
    before, after = _weights(extended_model_dir), _weights(tmp_path / "run" / "final")
    n = len(tokenizer)  # base rows
    new = slice(n, n + len(NEW_WORDS))
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        assert torch.equal(before[name][:n], after[name][:n]), name  # bit-identical despite weight decay
        assert not torch.equal(before[name][new], after[name][new]), name
    for name in before:
        if name not in ("model.embed_tokens.weight", "lm_head.weight"):
            assert torch.equal(before[name], after[name]), name


def test_cpt_stage_report_and_outputs(tmp_path, base_config, extended_model_dir, corpus_dir, heldout_file):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from vinaforge.train import stage

    curate = tmp_path / "curate"  # laid out as the curate stage's folder: kept/high, kept/low
    curate.mkdir()
    (curate / "kept").symlink_to(corpus_dir)
    raw = base_config(extended_model_dir, corpus_dir, heldout_file)
    raw["model"] = "@model/model"
    raw["data"]["sources"] = {
        "high": {"paths": ["@curate/kept/high"]},
        "low": {"paths": ["@curate/kept/low"]},
    }
    raw["phases"][0].update(trainable="new_embeddings", max_steps=2)
    raw["phases"][1]["max_steps"] = 2
    config = stage.Config.model_validate(raw)
    run_dir = tmp_path / "runs" / "demo"
    work = run_dir / ".cpt.partial"
    work.mkdir(parents=True)
    ctx = StageContext(
        name="cpt",
        kind="cpt",
        run_dir=run_dir,
        work_dir=work,
        final_dir=run_dir / "cpt",
        upstream={"model": extended_model_dir.parent, "curate": curate},
        log=logging.getLogger("vinaforge.stage.cpt"),
        seed=0,
    )
    result = stage.run(resolve_refs(config, ctx.upstream), ctx)  # the engine resolves references
    assert result.outputs["model"] == "final"
    final = work / "final"
    model = AutoModelForCausalLM.from_pretrained(final)
    tok = AutoTokenizer.from_pretrained(final)
    assert model.get_input_embeddings().weight.shape[0] >= len(tok)
    assert {f.path for f in result.figures} == {"loss.png", "bpb.png"}
    assert all((work / f.path).stat().st_size > 1000 for f in result.figures)
    assert "randomly initialised" in result.report and "new_embeddings" in result.report
    assert result.metrics["random_init"] is True
    assert result.metrics["steps"] == 4 and result.metrics["init_bpb"] > 0
    assert not (work / "checkpoints").exists()  # removed after success in a recipe stage

"""The model card is built from the run's records: recipe, data with licences, evaluation results."""

from __future__ import annotations

import json
from pathlib import Path

from vinaforge.export.card import data_inputs, model_card

REPO = Path(__file__).resolve().parents[2]


def test_card_from_manifest(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.jsonl").write_text("{}\n")
    manifest = {
        "name": "quickstart", "recipe": "recipes/quickstart.yaml", "vinaforge_version": "0.1.0",
        "stages": {
            "curate": {"kind": "curate", "status": "done", "config_hash": "abc123def4567", "wall_time_s": 11.0,
                       "inputs": [{"path": "examples/corpus", "sha256": "1"}, {"path": str(tmp_path / "data" / "x.jsonl")}],
                       "config": {}},
            "model": {"kind": "model", "status": "done", "config": {"tiny": {"arch": "mistral"}},
                      "inputs": [{"path": "@tokenizer", "sha256": "2"}]},
            "eval": {"kind": "eval", "status": "done", "config": {}, "inputs": []},
        },
    }  # fmt: skip
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "result.json").write_text(json.dumps({"metrics": {"held-out bits_per_byte": 2.5, "note": "x"}}))
    rows = dict(data_inputs(manifest, {str(tmp_path / "data"): "CC-BY-4.0"}))
    assert rows["examples/corpus"].startswith("Apache-2.0")  # from examples/README.md's "Licence:" line
    assert rows[str(tmp_path / "data" / "x.jsonl")] == "CC-BY-4.0"
    hf = {"chat_template": "vi_qa", "bos_token_id": 1, "eos_token_id": 2}
    card = model_card(name="vi-demo", model_config={"vinaforge": {"random_init": True}}, hf_info=hf,
                      files=[("hf/", "HF folder")], verification=[{"gguf": "gguf/model-f16.gguf", "verified": True}],
                      manifest=manifest, run_dir=tmp_path, card={"licence": "apache-2.0"})  # fmt: skip
    assert "license: apache-2.0" in card and "# vi-demo" in card
    assert "a tiny mistral model built by vinaforge (random initialisation)" in card
    assert "| curate | curate | `abc123def456` | 11.0 |" in card
    assert "| held-out bits_per_byte | 2.5 |" in card and "note" not in card.split("## Evaluation")[1].split("##")[0]
    assert "`gguf/model-f16.gguf`: verified" in card and "## Intended use and limitations" in card
    assert "random" in card.split("## Intended use")[1]

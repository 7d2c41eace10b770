"""The demo's ``serve_smoke`` stage on the tiny model: server up, two requests, server down."""

from __future__ import annotations

import json
import logging
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_serve_smoke_stage(tiny_model_dir, tmp_path, caplog):
    from vinaforge.serve import stage
    from vinaforge.stage import StageContext

    work, final = tmp_path / "serve_smoke.partial", tmp_path / "serve_smoke"
    work.mkdir()
    ctx = StageContext("serve_smoke", "serve_smoke", tmp_path, work, final, {}, logging.getLogger("vinaforge.test"))
    cfg = stage.Config(model=str(tiny_model_dir), docs=[str(REPO / "examples" / "corpus" / "vi_docs.jsonl")],
                       max_tokens=8, recall_queries=20)  # fmt: skip
    with caplog.at_level(logging.INFO, logger="vinaforge"):
        result = stage.run(cfg, ctx)
    smoke = json.loads((work / "smoke.json").read_text(encoding="utf-8"))
    assert smoke["chat"]["chunks"] >= 2 and smoke["chat"]["answer"]
    assert len(smoke["rag"]["passages"]) == 3 and "Cửu Long" in smoke["rag"]["passages"][0]["text"]
    assert set(smoke["rag"]["citations"]) >= {"cited", "invalid", "ok"}
    assert (work / "rag_index" / "meta.json").is_file()
    assert 0 <= result.metrics["recall@5"] <= 1 and result.metrics["rag_passages"] == 3
    assert f"vinaforge serve {tiny_model_dir} --rag-index {final / 'rag_index'}" in result.report
    assert "vinaforge serve" in caplog.text

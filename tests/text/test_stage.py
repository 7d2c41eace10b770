"""The ``text`` stage: statistics, plot and report section on files we wrote ourselves."""

from __future__ import annotations

import json
import logging

import pytest
from pydantic import ValidationError

from vinaforge.recipe import resolve_refs
from vinaforge.stage import StageContext, load_stage_module
from vinaforge.text.legacy import encode_legacy

VI_DOCS = [
    "Hà Nội là thủ đô của Việt Nam, nằm bên bờ sông Hồng.",
    "Mùa thu ở Hà Nội thường mát mẻ, trời trong xanh và có hương hoa sữa.",
    "Hoà bình và khoẻ mạnh là mong ước của mọi người.",  # new style: normalization changes it
]


def _ctx(tmp_path, upstream=None) -> StageContext:
    run_dir = tmp_path / "run"
    work = run_dir / ".text.partial"
    work.mkdir(parents=True)
    return StageContext(
        name="text",
        kind="text",
        run_dir=run_dir,
        work_dir=work,
        final_dir=run_dir / "text",
        upstream=upstream or {},
        log=logging.getLogger("vinaforge.test"),
    )


def _write_inputs(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with open(data / "vi.jsonl", "w", encoding="utf-8") as fh:
        for t in VI_DOCS:
            fh.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
        fh.write(json.dumps({"text": encode_legacy("Trường Đại học Bách khoa Hà Nội", "vni")}) + "\n")
    (data / "en.txt").write_text(
        "The weather is lovely today.\nWe walked along the river.\n", encoding="utf-8"
    )
    return data


def test_stage_writes_stats_plot_and_report(tmp_path) -> None:
    module = load_stage_module("text")
    data = _write_inputs(tmp_path)
    cfg = module.Config(inputs=[str(data)])
    ctx = _ctx(tmp_path)
    result = module.run(cfg, ctx)

    stats = json.loads((ctx.work_dir / "stats.json").read_text(encoding="utf-8"))
    assert stats["total"]["docs"] == 6
    assert stats["legacy_converted"] == {"vni": 1}
    assert stats["normalized_docs"] == 2  # the new-style line and the VNI line
    assert stats["total"]["languages"] == {"en": 2, "vi": 4}
    png = ctx.work_dir / result.outputs["plot"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.figures and result.figures[0].path == "valid_syllables.png"
    assert result.metrics["docs"] == 6
    assert 0.5 < result.metrics["valid_syllable_ratio"] < 1.0
    assert "| documents | 6" in result.report
    assert "vni 1" in result.report


def test_stage_max_docs_and_references(tmp_path) -> None:
    module = load_stage_module("text")
    data = _write_inputs(tmp_path)
    cfg = module.Config(inputs=["@curate/vi.jsonl"], max_docs=2, langid=False)
    ctx = _ctx(tmp_path, upstream={"curate": data})
    result = module.run(resolve_refs(cfg, ctx.upstream), ctx)  # the engine resolves references
    assert result.metrics["docs"] == 2
    assert result.metrics["language_shares"] == {}


def test_config_errors(tmp_path) -> None:
    module = load_stage_module("text")
    with pytest.raises(ValidationError, match="inputs"):
        module.Config(inputs=[str(tmp_path / "missing.jsonl")])
    with pytest.raises(ValidationError, match="extra"):
        module.Config(inputs=["@x"], unknown_key=1)
    with pytest.raises(ValidationError, match="tone_style"):
        module.Config(inputs=["@x"], normalization={"tone_style": "modern"})

"""The merge stage: a λ sweep scored by the eval stage keeps the best candidate; a plain merge; the engine."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from vinaforge.merge.config import Config, merge_models
from vinaforge.merge.stage import run
from vinaforge.merge.testing import load_tensors as tensors
from vinaforge.stage import StageContext

REPO = Path(__file__).resolve().parents[2]
HELDOUT = str(REPO / "examples" / "heldout_vi.txt")


def _ctx(tmp_path: Path) -> StageContext:
    work = tmp_path / ".merge.partial"
    work.mkdir()
    return StageContext(name="merge", kind="merge", run_dir=tmp_path, work_dir=work, final_dir=tmp_path / "merge",
                        upstream={}, log=logging.getLogger("test"), seed=0)  # fmt: skip


def test_sweep_keeps_the_candidate_with_the_lowest_heldout_bpb(family, tmp_path):
    heldout = tmp_path / "heldout.txt"
    heldout.write_text("\n".join(Path(HELDOUT).read_text(encoding="utf-8").splitlines()[:10]), encoding="utf-8")
    cv = {"vi_base": str(family["vi"]), "instruct": str(family["instruct"]), "base": str(family["base"])}
    cfg = Config(chat_vector=cv, sweep={"grid": {"chat_vector.lam": [0.0, 2.0]},
                                        "eval": {"heldout": [str(heldout)], "bpb_batch_size": 16}})  # fmt: skip
    ctx = _ctx(tmp_path)
    result = run(cfg, ctx)
    record = json.loads((ctx.work_dir / "merge.json").read_text(encoding="utf-8"))
    scores = [row["held-out bits_per_byte"] for row in record["sweep"]]
    assert len(scores) == 2 and scores[0] != scores[1]
    best = min(range(2), key=scores.__getitem__)
    assert record["best"] == best and result.metrics["held-out bits_per_byte"] == scores[best]
    # the kept model is exactly the merge at the winning λ
    again = merge_models(Config(chat_vector={**cv, "lam": [0.0, 2.0][best]}), tmp_path / "again")
    assert again["method"] == "chat_vector"
    kept, ref = tensors(ctx.work_dir / "model"), tensors(tmp_path / "again")
    assert all(torch.equal(kept[k], ref[k]) for k in ref)
    # the losers' folders are gone; the scores, table and plot stay
    assert not any((ctx.work_dir / "candidates").glob("*/model"))
    assert (ctx.work_dir / "sweep.png").stat().st_size > 0 and result.figures[0].path == "sweep.png"
    assert "**(kept)**" in result.report and "chat_vector.lam" in result.report


def test_plain_merge_stage_and_report(family, tmp_path):
    cfg = Config(merge_method="slerp", base_model=str(family["base"]), parameters={"t": 0.5},
                 models=[{"model": str(family["base"])}, {"model": str(family["instruct"])}])  # fmt: skip
    result = run(cfg, _ctx(tmp_path))
    assert result.outputs["model"] == "model" and result.metrics["method"] == "slerp"
    assert "method: **slerp**" in result.report
    assert (tmp_path / ".merge.partial" / "model" / "config.json").is_file()


def test_sweep_can_score_candidates_with_the_judge_stage(family, tmp_path):
    """All candidates in one pairwise LLM-as-judge run (a tiny local judge: its verdicts are noise)."""
    cv = {"vi_base": str(family["vi"]), "instruct": str(family["instruct"]), "base": str(family["base"])}
    judge = {"judge": str(family["instruct"]), "categories": ["writing"], "limit": 1, "answer_max_new_tokens": 4,
             "judge_max_new_tokens": 4, "n_bootstrap": 0, "n_shuffles": 1}  # fmt: skip
    cfg = Config(chat_vector=cv, sweep={"grid": {"chat_vector.lam": [0.5, 1.0]}, "judge": judge, "select": "judge"})
    ctx = _ctx(tmp_path)
    result = run(cfg, ctx)
    record = json.loads((ctx.work_dir / "merge.json").read_text(encoding="utf-8"))
    assert all("judge" in row for row in record["sweep"]) and result.metrics["candidates"] == 2
    assert (ctx.work_dir / "judge" / "judgments.jsonl").is_file()
    assert (ctx.work_dir / "model" / "config.json").is_file()

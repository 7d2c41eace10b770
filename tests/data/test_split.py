"""The ``split`` stage: one stable hash split, duplicates set aside, counts that add up."""

from __future__ import annotations

import json
import logging

import pytest

from vinaforge.data.split import Config, run
from vinaforge.stage import StageContext


def _ctx(tmp_path) -> StageContext:
    work = tmp_path / "run" / ".split.partial"
    work.mkdir(parents=True)
    return StageContext("split", "split", tmp_path / "run", work, tmp_path / "run" / "split", {},
                        logging.getLogger("vinaforge.test"))  # fmt: skip


def _write(path, n=200):
    rows = [{"prompt": f"Câu hỏi số {i}?", "response": f"Trả lời {i}."} for i in range(n)]
    rows.append(rows[3])  # an exact duplicate
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return rows


def test_split_is_stable_disjoint_and_counts_add_up(tmp_path):
    data = tmp_path / "data.jsonl"
    _write(data)
    outs = []
    for i in range(2):
        ctx = _ctx(tmp_path / str(i))
        res = run(Config(inputs=[str(data)], heldout_fraction=0.1), ctx)
        train = (ctx.work_dir / "train.jsonl").read_text().splitlines()
        held = (ctx.work_dir / "heldout.jsonl").read_text().splitlines()
        dups = (ctx.work_dir / "duplicates.jsonl").read_text().splitlines()
        assert res.metrics["read"] == 201 == len(train) + len(held) + len(dups)
        assert len(dups) == 1 and not set(train) & set(held)
        assert 5 <= len(held) <= 40
        outs.append(held)
    assert outs[0] == outs[1]


def test_heldout_max_caps_the_heldout_set(tmp_path):
    data = tmp_path / "data.jsonl"
    _write(data)
    ctx = _ctx(tmp_path)
    res = run(Config(inputs=[str(data)], heldout_fraction=0.5, heldout_max=7), ctx)
    assert res.metrics["heldout"] == 7 and res.metrics["train"] == 200 - 7


def test_a_broken_line_names_the_file_and_line(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text('{"prompt": "a", "response": "b"}\nnot json\n')
    with pytest.raises(ValueError, match=r"data.jsonl:2: not valid JSON"):
        run(Config(inputs=[str(data)]), _ctx(tmp_path))

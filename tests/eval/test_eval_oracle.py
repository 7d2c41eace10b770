"""Known-answer checks: gold answers through the whole scoring path give 100%; a fixed letter gives
exactly that letter's share of the data. Run on our fixtures and on the real VMLU / ARC-vi files."""

from __future__ import annotations

import csv
import json

import pytest

from vinaforge.eval import data
from vinaforge.eval.harness import run_benchmarks

ALL = ["vmlu", "arc_vi", "mmlu_vi", "hellaswag_vi", "truthfulqa_vi", "belebele_vie", "xnli_vi", "xcopa_vi"]


def test_gold_answers_score_100_percent_on_every_task(oracle_lm, fixtures_dir, tmp_path):
    res = run_benchmarks(oracle_lm, ALL, data_dir=fixtures_dir, submission_dir=tmp_path)
    labeled = [(b, s) for b in ALL for s in res[b] if "n" in res[b][s] and "submission" not in res[b][s]]
    assert len(labeled) == 9  # vmlu dev + valid, then one split for each other benchmark
    for bench, split in labeled:
        m = res[bench][split]
        keys = ("mc1", "mc2") if bench == "truthfulqa_vi" else ("acc", "acc_norm", "acc_bytes")
        for key in keys:
            assert m[key] == pytest.approx(1.0), (bench, split, key, m)
            assert f"{key}_stderr" in m
    cats = res["vmlu"]["dev"]["by_category"]
    assert set(cats) == {"STEM", "Social Science", "Humanities", "Other"}
    assert sum(c["n"] for c in cats.values()) == res["vmlu"]["dev"]["n"] == 10
    assert all(c["acc"] == 1.0 for c in cats.values())


def _share(items: list[dict], k: int) -> float:
    return sum(it["gold"] == k for it in items) / len(items)


@pytest.mark.parametrize("k", [0, 1])
def test_fixed_letter_scores_that_letters_share(fixed_choice_lm, fixtures_dir, k):
    res = run_benchmarks(
        fixed_choice_lm(k), ["vmlu_dev", "arc_vi", "mmlu_vi", "belebele_vie"], data_dir=fixtures_dir
    )
    for bench, split in (("vmlu", "dev"), ("arc_vi", "test"), ("mmlu_vi", "val"), ("belebele_vie", "test")):
        items = data.load_split(bench, split, fixtures_dir)
        assert res[bench][split]["acc"] == pytest.approx(_share(items, k))


def test_unlabelled_vmlu_test_writes_a_submission(known_answer, fixtures_dir, tmp_path):
    lm = known_answer(lambda doc, idx: 0.0 if idx == len(doc["choices"]) - 1 else -1e4)
    res = run_benchmarks(lm, ["vmlu_test"], data_dir=fixtures_dir, submission_dir=tmp_path)
    out = res["vmlu"]["test"]
    assert "acc" not in out and out["n"] == 4
    with open(out["submission"], encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows == [["id", "answer"], ["01-0201", "D"], ["35-0201", "C"], ["46-0201", "D"], ["58-0201", "E"]]
    assert out["answer_shares"] == {"C": 0.25, "D": 0.5, "E": 0.25}
    json.dumps(res)  # results are plain JSON


@pytest.mark.shared_data
def test_known_answers_on_real_vmlu_dev_and_arc_vi_test(benchmarks_dir, oracle_lm, fixed_choice_lm):
    res = run_benchmarks(oracle_lm, ["vmlu_dev", "arc_vi"], data_dir=benchmarks_dir)
    assert res["vmlu"]["dev"]["acc"] == 1.0 and res["vmlu"]["dev"]["n"] == 303
    assert res["arc_vi"]["test"]["acc"] == 1.0 and res["arc_vi"]["test"]["n"] == 1170
    res = run_benchmarks(fixed_choice_lm(0), ["vmlu_dev", "arc_vi"], data_dir=benchmarks_dir)
    assert res["vmlu"]["dev"]["acc"] == pytest.approx(75 / 303)  # 75 of VMLU's 303 dev answers are A
    assert res["arc_vi"]["test"]["acc"] == pytest.approx(265 / 1170)  # 265 of ARC-vi's 1170 are A
    by_cat = res["vmlu"]["dev"]["by_category"]
    assert sum(c["n"] for c in by_cat.values()) == 303
    items = data.load_split("vmlu", "dev", benchmarks_dir)
    for cat, m in by_cat.items():
        mine = [it for it in items if it["category"] == cat]
        assert m["acc"] == pytest.approx(_share(mine, 0))

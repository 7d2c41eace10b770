"""Decontamination against every benchmark format vinaforge evaluates, and a planted check on real data."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest

from vinaforge.chat import Conversation
from vinaforge.factory.decontaminate import (
    Config,
    DecontamConfig,
    DecontamError,
    build_index,
    decontaminate,
    run_decontaminate,
)
from vinaforge.factory.pipeline import read_jsonl_folder

FIXTURES = Path(__file__).resolve().parents[1] / "eval" / "fixtures" / "benchmarks"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def index_cfg():
    cfg = DecontamConfig(benchmark_dirs=[str(FIXTURES)])
    return cfg, build_index(cfg)


def test_every_benchmark_format_is_indexed(index_cfg):
    _, idx = index_cfg
    assert {
        "vmlu",
        "arc_vi",
        "mmlu_vi",
        "hellaswag_vi",
        "truthfulqa_vi",
        "belebele_vie",
        "xnli_vi",
        "xcopa_vi",
    } <= set(idx.benchmarks())


def test_lightly_reworded_items_are_found_clean_ones_kept(index_cfg):
    cfg, idx = index_cfg
    xcopa = json.loads((FIXTURES / "xcopa" / "test.vi.jsonl").read_text(encoding="utf-8").splitlines()[0])
    vmlu = json.loads((FIXTURES / "vmlu" / "dev.jsonl").read_text(encoding="utf-8").splitlines()[0])
    planted = [
        {
            "prompt": f"Cho tình huống: {xcopa['premise']} {xcopa['choice1']} {xcopa['choice2']} Chọn hệ quả.",
            "response": "Đáp án 1.",
        },
        Conversation(
            [
                {
                    "role": "user",
                    "content": "Câu hỏi: "
                    + vmlu["question"].replace(",", "")
                    + " "
                    + " ".join(vmlu["choices"]),
                },
                {"role": "assistant", "content": "A"},
            ],
            id="conv",
        ),
    ]
    clean = [
        json.loads(line)
        for line in (REPO / "examples" / "instruct" / "vi_instruct.jsonl")
        .read_text(encoding="utf-8")
        .splitlines()
    ]
    kept, dropped = decontaminate([*planted, *clean], cfg, idx)
    assert len(kept) + len(dropped) == len(clean) + 2
    assert [d["_decontam"]["matches"][0]["benchmark"] for d in dropped] == ["xcopa_vi", "vmlu"]
    assert dropped[1]["id"] == "conv" and dropped[1]["_decontam"]["reason"].startswith("contaminated: vmlu/")
    kept2, flagged = decontaminate(planted, cfg.model_copy(update={"drop": False}), idx)
    assert len(kept2) == 2 and not flagged and all("_decontam" in k for k in kept2)


def test_pipeline_shards_report_and_bad_inputs(tmp_path):
    data = tmp_path / "sft.jsonl"
    vm = json.loads((FIXTURES / "vmlu" / "dev.jsonl").read_text(encoding="utf-8").splitlines()[1])
    rows = [
        json.loads(line)
        for line in (REPO / "examples" / "instruct" / "vi_instruct.jsonl")
        .read_text(encoding="utf-8")
        .splitlines()
    ]
    rows.insert(7, {"prompt": vm["question"], "response": vm["choices"][0]})
    data.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) + "not json\n", encoding="utf-8"
    )
    cfg = Config(inputs=[str(data)], benchmark_dirs=[str(FIXTURES)], tasks=2)
    stats = run_decontaminate(cfg, tmp_path / "out")
    assert stats["input"] == len(rows) + 1 and stats["shards"] == 2
    assert stats["contamination"]["by_benchmark"] == {"vmlu": 1} and stats["reasons"] == {
        "contaminated": 1,
        "input": 1,
    }
    assert sorted(p.name for p in (tmp_path / "out" / "kept").iterdir()) == ["00000.jsonl", "00001.jsonl"]
    assert sum(1 for _ in read_jsonl_folder(tmp_path / "out" / "kept")) == len(rows) - 1
    again = run_decontaminate(cfg, tmp_path / "out")  # finished shards are not redone
    assert again["kept"] == stats["kept"]
    with pytest.raises(DecontamError, match="does not exist"):
        build_index(DecontamConfig(benchmark_dirs=[str(tmp_path / "none")]))
    with pytest.raises(DecontamError, match="no benchmark file found"):
        build_index(DecontamConfig(benchmark_dirs=[str(tmp_path)]))


def test_planted_benchmark_questions_in_real_instruct_data(shared_data):
    """Plant 60 lightly reworded VMLU/ARC/MMLU questions among 3,000 real instruction records."""
    bench = shared_data / "benchmarks"
    cfg = DecontamConfig(benchmark_dirs=[str(bench)])
    idx = build_index(cfg)
    rng = random.Random(0)
    with gzip.open(shared_data / "instruct" / "vi_alpaca_reduced.jsonl.gz", "rt", encoding="utf-8") as fh:
        clean = [json.loads(next(fh)) for _ in range(3000)]
    questions = [
        json.loads(line)["question"]
        for line in (bench / "vmlu" / "test.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    for name in ("m_arc_vi_test.json", "m_mmlu_vi_val.json"):
        questions += [
            r["instruction"] for r in json.loads((bench / "okapi_vi" / name).read_text(encoding="utf-8"))
        ]
    questions = [q for q in questions if len(q.split()) >= 15]
    planted = []
    for q in rng.sample(questions, 60):
        words = q.split()
        for _ in range(1):  # light rewording: drop one word, swap two neighbours
            words.pop(rng.randrange(len(words)))
            i = rng.randrange(len(words) - 1)
            words[i], words[i + 1] = words[i + 1], words[i]
        planted.append(
            {"prompt": "Trả lời câu hỏi sau: " + " ".join(words), "response": "Đáp án là B.", "planted": True}
        )
    kept, dropped = decontaminate(clean + planted, cfg, idx)
    recall = sum(d.get("planted", False) for d in dropped) / len(planted)
    false_pos = sum(not d.get("planted", False) for d in dropped) / len(clean)
    print(f"planted recall {recall:.3f}, false-positive rate {false_pos:.4f}")
    assert recall >= 0.75 and false_pos <= 0.01  # measured: 0.817 and 0.0053 (see docs/factory.md)


def test_cli_decontaminate_and_translate_errors(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from vinaforge.data.cli import app

    runner = CliRunner()
    sft = REPO / "examples" / "instruct"
    res = runner.invoke(app, ["decontaminate", str(sft), "-o", str(tmp_path / "d"), "--benchmarks-dir", str(FIXTURES)])
    assert res.exit_code == 0, res.output
    assert " 0 contaminated (none)" in res.output
    res = runner.invoke(app, ["decontaminate", str(sft), "-o", str(tmp_path / "e"), "--format", "xml",
                              "--benchmarks-dir", str(FIXTURES)])  # fmt: skip
    assert res.exit_code == 2 and "unknown format 'xml'" in res.output
    monkeypatch.delenv("VF_UNSET_KEY", raising=False)
    res = runner.invoke(app, ["translate", str(REPO / "examples" / "factory" / "en_chat.jsonl"), "-o", str(tmp_path / "t"),
                              "-m", "m", "--base-url", "http://127.0.0.1:9/v1", "--api-key-env", "VF_UNSET_KEY"])  # fmt: skip
    assert res.exit_code == 2 and "VF_UNSET_KEY (api_key_env) is not set" in res.output
    res = runner.invoke(app, ["translate", str(REPO / "examples" / "factory" / "en_chat.jsonl"), "-o", str(tmp_path / "u"),
                              "-m", "m", "--set", "template=Dịch đi"])  # fmt: skip
    assert res.exit_code == 2 and "template" in res.output and "{text}" in res.output
